import { useState } from "preact/hooks";
import { api, messageOf } from "../api";
import { TypeSuggestions } from "./TableStructure";
import { Failure } from "../ui";

interface ColumnForm {
  name: string;
  type: string;
  default: string;
  nullable: boolean;
  primary_key: boolean;
  identity: boolean;
  unique: boolean;
  /** `schema.table.column`, or empty. */
  references: string;
}

const ID: ColumnForm = {
  name: "id",
  type: "bigint",
  default: "",
  nullable: false,
  primary_key: true,
  identity: true,
  unique: false,
  references: "",
};
const CREATED_AT: ColumnForm = { ...ID, name: "created_at", type: "timestamptz", default: "now()", primary_key: false, identity: false };
const BLANK: ColumnForm = { ...ID, name: "", type: "text", nullable: true, primary_key: false, identity: false };

function reference(text: string): { schema: string; table: string; column: string } | undefined {
  const parts = text.split(".").map((p) => p.trim());
  if (parts.length === 2) return { schema: "public", table: parts[0], column: parts[1] };
  if (parts.length === 3) return { schema: parts[0], table: parts[1], column: parts[2] };
  return undefined;
}

/** A new table from a form: starts, as Supabase's does, with an identity id and created_at. */
export function NewTable(props: { schema: string; onDone: (name: string | null) => void }) {
  const [name, setName] = useState("");
  const [rls, setRls] = useState(true);
  const [realtime, setRealtime] = useState(false);
  const [columns, setColumns] = useState<ColumnForm[]>([ID, CREATED_AT]);
  const [error, setError] = useState("");

  const update = (i: number, patch: Partial<ColumnForm>) =>
    setColumns(columns.map((c, j) => (j === i ? { ...c, ...patch } : c)));

  async function create(event: Event) {
    event.preventDefault();
    setError("");
    const body = {
      schema: props.schema,
      name,
      rls,
      realtime,
      columns: columns
        .filter((c) => c.name.trim())
        .map((c) => ({
          name: c.name.trim(),
          type: c.type.trim(),
          default: c.identity ? undefined : c.default || undefined,
          nullable: c.nullable,
          primary_key: c.primary_key,
          identity: c.identity,
          unique: c.unique,
          references: c.references ? reference(c.references) : undefined,
        })),
    };
    try {
      await api("/api/v1/tables", {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify(body),
      });
      props.onDone(name);
    } catch (err) {
      setError(messageOf(err));
    }
  }

  return (
    <form class="new-table" onSubmit={(e) => void create(e)} aria-label="New table">
      <TypeSuggestions />
      <h2>New table in {props.schema}</h2>
      <label>
        Name
        <input required name="table-name" value={name} onInput={(e) => setName(e.currentTarget.value)} />
      </label>
      <label class="check">
        <input type="checkbox" checked={rls} onChange={(e) => setRls(e.currentTarget.checked)} />
        Row level security (recommended: rows reach users only through policies)
      </label>
      <label class="check">
        <input type="checkbox" checked={realtime} onChange={(e) => setRealtime(e.currentTarget.checked)} />
        Realtime
      </label>
      <table class="columns-form">
        <thead>
          <tr>
            <th scope="col">Column</th>
            <th scope="col">Type</th>
            <th scope="col">Default</th>
            <th scope="col">References</th>
            <th scope="col">Nullable</th>
            <th scope="col">Primary key</th>
            <th scope="col">Identity</th>
            <th scope="col">Unique</th>
            <th scope="col">
              <span class="hidden">Remove</span>
            </th>
          </tr>
        </thead>
        <tbody>
          {columns.map((c, i) => (
            <tr>
              <td>
                <input aria-label={`Column ${i + 1} name`} value={c.name} onInput={(e) => update(i, { name: e.currentTarget.value })} />
              </td>
              <td>
                <input
                  aria-label={`Column ${i + 1} type`}
                  list="pg-types"
                  value={c.type}
                  onInput={(e) => update(i, { type: e.currentTarget.value })}
                />
              </td>
              <td>
                <input
                  aria-label={`Column ${i + 1} default`}
                  value={c.default}
                  disabled={c.identity}
                  onInput={(e) => update(i, { default: e.currentTarget.value })}
                />
              </td>
              <td>
                <input
                  aria-label={`Column ${i + 1} references`}
                  placeholder="table.column"
                  value={c.references}
                  onInput={(e) => update(i, { references: e.currentTarget.value })}
                />
              </td>
              <td>
                <input
                  type="checkbox"
                  aria-label={`Column ${i + 1} nullable`}
                  checked={c.nullable}
                  onChange={(e) => update(i, { nullable: e.currentTarget.checked })}
                />
              </td>
              <td>
                <input
                  type="checkbox"
                  aria-label={`Column ${i + 1} primary key`}
                  checked={c.primary_key}
                  onChange={(e) => update(i, { primary_key: e.currentTarget.checked })}
                />
              </td>
              <td>
                <input
                  type="checkbox"
                  aria-label={`Column ${i + 1} identity`}
                  checked={c.identity}
                  onChange={(e) => update(i, { identity: e.currentTarget.checked })}
                />
              </td>
              <td>
                <input
                  type="checkbox"
                  aria-label={`Column ${i + 1} unique`}
                  checked={c.unique}
                  onChange={(e) => update(i, { unique: e.currentTarget.checked })}
                />
              </td>
              <td>
                <button type="button" class="link danger" onClick={() => setColumns(columns.filter((_, j) => j !== i))}>
                  Remove
                </button>
              </td>
            </tr>
          ))}
        </tbody>
      </table>
      <button type="button" class="secondary" onClick={() => setColumns([...columns, BLANK])}>
        Add a column
      </button>
      <Failure text={error} />
      <div class="buttons">
        <button type="submit">Create table</button>
        <button type="button" class="secondary" onClick={() => props.onDone(null)}>
          Cancel
        </button>
      </div>
    </form>
  );
}
