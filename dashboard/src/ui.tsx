// Small pieces every page uses the same way.
import { useEffect, useState } from "preact/hooks";

/** A result to tell the admin: what worked, or why not. */
export type Note = { error: boolean; text: string } | null;

/** A note as a status line (an alert when it is an error). */
export function NoteLine(props: { note: Note }) {
  const { note } = props;
  if (!note) return null;
  return (
    <p class={note.error ? "error" : "ok"} role={note.error ? "alert" : "status"}>
      {note.text}
    </p>
  );
}

/** An error message, when there is one. */
export function Failure(props: { text: string | null | undefined }) {
  if (!props.text) return null;
  return (
    <p class="error" role="alert">
      {props.text}
    </p>
  );
}

/** The header cell of a column of row actions (named for screen readers). */
export function ActionsHead() {
  return (
    <th scope="col">
      <span class="hidden">Actions</span>
    </th>
  );
}

/** The parts of `#/<page>/<a>/<b>...` after the page, decoded, kept current. */
export function useHashParts(): string[] {
  const read = () => location.hash.replace(/^#\/?/, "").split("/").slice(1).map(decodeURIComponent);
  const [parts, setParts] = useState(read);
  useEffect(() => {
    const follow = () => setParts(read());
    addEventListener("hashchange", follow);
    return () => removeEventListener("hashchange", follow);
  }, []);
  return parts;
}

/** A column heading: its text, or with `numeric` (right-aligned) or `hidden` (for screen readers only). */
export type Column = string | { label: string; numeric?: boolean; hidden?: boolean };

/** A table's header row. */
export function Head(props: { columns: Column[] }) {
  return (
    <thead>
      <tr>
        {props.columns.map((c) =>
          typeof c === "string" ? (
            <th scope="col">{c}</th>
          ) : (
            <th scope="col" class={c.numeric ? "num" : undefined}>
              {c.hidden ? <span class="hidden">{c.label}</span> : c.label}
            </th>
          ),
        )}
      </tr>
    </thead>
  );
}
