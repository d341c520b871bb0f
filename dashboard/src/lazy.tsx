import { useEffect, useState } from "preact/hooks";
import type { ComponentType } from "preact";

/**
 * A page loaded when first shown: the editor pages bring CodeMirror
 * (about 130 KB gzipped), which sign-in and the overview do without.
 */
export function lazy(load: () => Promise<ComponentType>): ComponentType {
  let loaded: ComponentType | null = null;
  let pending: Promise<ComponentType> | null = null;
  return function Lazy() {
    const [page, setPage] = useState<ComponentType | null>(() => loaded);
    const [error, setError] = useState("");
    useEffect(() => {
      if (page) return;
      pending ??= load().then((component) => (loaded = component));
      pending.then(
        (component) => setPage(() => component),
        (err: unknown) => {
          pending = null;
          setError(err instanceof Error ? err.message : String(err));
        },
      );
    }, []);
    if (page) {
      const Page = page;
      return <Page />;
    }
    if (error)
      return (
        <p class="error" role="alert">
          This page could not be loaded ({error}): reload to try again.
        </p>
      );
    return (
      <p class="muted" aria-busy="true">
        Loading…
      </p>
    );
  };
}
