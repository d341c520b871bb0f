import { useEffect, useState } from "preact/hooks";
import type { ComponentChildren } from "preact";

/** A value being loaded: loading, failed, or there. */
export type Loaded<T> =
  | { state: "loading" }
  | { state: "error"; message: string }
  | { state: "ready"; value: T };

/** Loads `load()` now and whenever `version` changes. */
export function useLoaded<T>(load: () => Promise<T>, version = 0): Loaded<T> {
  const [loaded, setLoaded] = useState<Loaded<T>>({ state: "loading" });
  useEffect(() => {
    let live = true;
    // Loading again keeps what is shown until the new value arrives (no
    // flicker, and the page's own state, such as a message, survives).
    setLoaded((shown) => (shown.state === "ready" ? shown : { state: "loading" }));
    load().then(
      (value) => live && setLoaded({ state: "ready", value }),
      (error: unknown) =>
        live && setLoaded({ state: "error", message: error instanceof Error ? error.message : String(error) }),
    );
    return () => {
      live = false;
    };
  }, [version]);
  return loaded;
}

/** The loading and error states every page shows the same way. */
export function Show<T>(props: { loaded: Loaded<T>; children: (value: T) => ComponentChildren }) {
  const { loaded } = props;
  if (loaded.state === "loading") return <p class="muted" aria-busy="true">Loading…</p>;
  if (loaded.state === "error")
    return (
      <p class="error" role="alert">
        {loaded.message}
      </p>
    );
  return <>{props.children(loaded.value)}</>;
}
