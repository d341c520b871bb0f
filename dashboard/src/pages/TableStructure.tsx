import { useState } from "preact/hooks";
import { api, messageOf } from "../api";
import { ActionsHead, Head } from "../ui";

export interface Column {
  name: string;
  type: string;
  nullable: boolean;
  default: string | null;
  is_identity: boolean;
  is_generated: boolean;
  is_primary_key: boolean;
  is_unique: boolean;
  comment: string | null;
}

interface ForeignKey {
  name: string;
  columns: string[];
  ref_schema: string;
  ref_table: string;
  ref_columns: string[];
  on_delete: string;
}

interface Reference {
  name: string;
  schema: string;
  table: string;
  columns: string[];
}

interface Policy {
  name: string;
  command: string;
  permissive: boolean;
  roles: string[];
  using: string | null;
  with_check: string | null;
}

export interface Table {
  schema: string;
  name: string;
  kind: string;
  rls_enabled: boolean;
  realtime: boolean;
  row_estimate: number;
  comment: string | null;
  primary_key: string[];
  columns: Column[];
  foreign_keys: ForeignKey[];
  referenced_by: Reference[];
  policies: Policy[];
}

/** Common PostgreSQL types for the type fields' suggestions. */
export const TYPES = [
  "bigint",
  "integer",
  "smallint",
  "numeric",
  "real",
  "double precision",
  "text",
  "varchar(255)",
  "boolean",
  "uuid",
  "timestamptz",
  "timestamp",
  "date",
  "time",
  "interval",
  "jsonb",
  "json",
  "bytea",
  "text[]",
];

export function TypeSuggestions() {
  return (
    <datalist id="pg-types">
      {TYPES.map((t) => (
        <option value={t} />
      ))}
    </datalist>
  );
}

function base(table: Table): string {
  return `/api/v1/tables/${encodeURIComponent(table.schema)}/${encodeURIComponent(table.name)}`;
}

const JSON_HEADERS = { "content-type": "application/json" };

/** A change's answer: the SQL that ran, shown to the admin. */
interface Changed {
  sql: string;
}

function useChange() {
  const [message, setMessage] = useState<{ error: boolean; text: string } | null>(null);
  async function change(path: string, method: string, body?: unknown): Promise<boolean> {
    try {
      const answer = await api<Changed>(path, {
        method,
        headers: body === undefined ? undefined : JSON_HEADERS,
        body: body === undefined ? undefined : JSON.stringify(body),
      });
      setMessage({ error: false, text: answer.sql });
      return true;
    } catch (err) {
      setMessage({ error: true, text: messageOf(err) });
      return false;
    }
  }
  const shown = message && (
    <pre class={message.error ? "error" : "ran"} role={message.error ? "alert" : "status"}>
      {message.error ? message.text : `Ran: ${message.text}`}
    </pre>
  );
  return { change, shown };
}

export function Structure(props: { table: Table; onChanged: (renamed?: string | null) => void }) {
  const { table } = props;
  const { change, shown } = useChange();
  const [column, setColumn] = useState({ name: "", type: "text", default: "", nullable: true, unique: false });
  const [newName, setNewName] = useState(table.name);
  const [comment, setComment] = useState(table.comment ?? "");

  async function addColumn(event: Event) {
    event.preventDefault();
    const body = { ...column, default: column.default || undefined };
    if (await change(`${base(table)}/columns`, "POST", body)) {
      setColumn({ name: "", type: "text", default: "", nullable: true, unique: false });
      props.onChanged();
    }
  }

  async function renameColumn(c: Column) {
    const name = prompt(`New name for the column ${c.name}:`, c.name);
    if (!name || name === c.name) return;
    if (await change(`${base(table)}/columns/${encodeURIComponent(c.name)}`, "PATCH", { name })) props.onChanged();
  }

  async function dropColumn(c: Column) {
    if (!confirm(`Drop the column ${c.name} and its data?`)) return;
    if (await change(`${base(table)}/columns/${encodeURIComponent(c.name)}`, "DELETE")) props.onChanged();
  }

  async function toggle(field: "rls_enabled" | "realtime", on: boolean) {
    if (await change(base(table), "PATCH", { [field]: on })) props.onChanged();
  }

  async function saveTable(event: Event) {
    event.preventDefault();
    const body: Record<string, unknown> = {};
    if (newName && newName !== table.name) body.name = newName;
    if (comment !== (table.comment ?? "")) body.comment = comment || null;
    if (Object.keys(body).length === 0) return;
    if (await change(base(table), "PATCH", body)) props.onChanged(body.name ? newName : undefined);
  }

  async function dropTable() {
    const typed = prompt(`Drop ${table.schema}.${table.name} and all its rows? Type its name to confirm.`);
    if (typed !== table.name) return;
    if (await change(base(table), "DELETE")) props.onChanged(null);
  }

  const isTable = table.kind === "table";
  return (
    <div class="structure">
      {shown}
      <table>
        <thead>
          <tr>
            <th scope="col">Column</th>
            <th scope="col">Type</th>
            <th scope="col">Nullable</th>
            <th scope="col">Default</th>
            <th scope="col">Keys</th>
            {isTable && (
              <ActionsHead />
            )}
          </tr>
        </thead>
        <tbody>
          {table.columns.map((c) => (
            <tr>
              <td>{c.name}</td>
              <td>
                <code>{c.type}</code>
              </td>
              <td>{c.nullable ? "yes" : "no"}</td>
              <td>
                <code>{c.is_identity ? "identity" : (c.default ?? "")}</code>
              </td>
              <td>
                {[
                  c.is_primary_key ? "primary key" : "",
                  c.is_unique ? "unique" : "",
                  ...table.foreign_keys
                    .filter((f) => f.columns.includes(c.name))
                    .map((f) => `→ ${f.ref_schema}.${f.ref_table}(${f.ref_columns.join(", ")})`),
                ]
                  .filter(Boolean)
                  .join(", ")}
              </td>
              {isTable && (
                <td class="actions">
                  <button type="button" class="link" onClick={() => void renameColumn(c)}>
                    Rename
                  </button>
                  <button type="button" class="link danger" onClick={() => void dropColumn(c)}>
                    Drop
                  </button>
                </td>
              )}
            </tr>
          ))}
        </tbody>
      </table>
      {table.foreign_keys.length > 0 && (
        <section>
          <h3>Foreign keys</h3>
          <ul data-testid="foreign-keys">
            {table.foreign_keys.map((f) => (
              <li>
                {f.name}: ({f.columns.join(", ")}) → {f.ref_schema}.{f.ref_table} ({f.ref_columns.join(", ")}), on delete{" "}
                {f.on_delete.toLowerCase()}
              </li>
            ))}
          </ul>
        </section>
      )}
      {table.referenced_by.length > 0 && (
        <section>
          <h3>Referenced by</h3>
          <ul>
            {table.referenced_by.map((r) => (
              <li>
                {r.schema}.{r.table} ({r.columns.join(", ")})
              </li>
            ))}
          </ul>
        </section>
      )}
      {isTable && (
        <>
          <form class="inline-row" onSubmit={(e) => void addColumn(e)} aria-label="Add a column">
            <TypeSuggestions />
            <h3>Add a column</h3>
            <label>
              Name
              <input required value={column.name} onInput={(e) => setColumn({ ...column, name: e.currentTarget.value })} />
            </label>
            <label>
              Type
              <input
                required
                list="pg-types"
                value={column.type}
                onInput={(e) => setColumn({ ...column, type: e.currentTarget.value })}
              />
            </label>
            <label>
              Default
              <input
                value={column.default}
                placeholder="SQL, e.g. now()"
                onInput={(e) => setColumn({ ...column, default: e.currentTarget.value })}
              />
            </label>
            <label class="check">
              <input
                type="checkbox"
                checked={column.nullable}
                onChange={(e) => setColumn({ ...column, nullable: e.currentTarget.checked })}
              />
              Nullable
            </label>
            <label class="check">
              <input
                type="checkbox"
                checked={column.unique}
                onChange={(e) => setColumn({ ...column, unique: e.currentTarget.checked })}
              />
              Unique
            </label>
            <button type="submit">Add column</button>
          </form>
          <section class="settings">
            <h3>Table</h3>
            <label class="check">
              <input
                type="checkbox"
                checked={table.rls_enabled}
                onChange={(e) => void toggle("rls_enabled", e.currentTarget.checked)}
              />
              Row level security (with no policy, only the service role sees rows)
            </label>
            <label class="check">
              <input type="checkbox" checked={table.realtime} onChange={(e) => void toggle("realtime", e.currentTarget.checked)} />
              Realtime (changes published to subscribers)
            </label>
            <form class="inline-row" onSubmit={(e) => void saveTable(e)} aria-label="Rename or describe the table">
              <label>
                Table name
                <input required value={newName} onInput={(e) => setNewName(e.currentTarget.value)} />
              </label>
              <label>
                Comment
                <input value={comment} onInput={(e) => setComment(e.currentTarget.value)} />
              </label>
              <button type="submit" class="secondary">
                Save
              </button>
            </form>
            <button type="button" class="danger-button" onClick={() => void dropTable()}>
              Drop table
            </button>
          </section>
        </>
      )}
    </div>
  );
}

export function Policies(props: { table: Table; onChanged: () => void }) {
  const { table } = props;
  const { change, shown } = useChange();
  const [policy, setPolicy] = useState({ name: "", command: "select", roles: "authenticated", using: "", with_check: "" });

  async function add(event: Event) {
    event.preventDefault();
    const body = {
      name: policy.name,
      command: policy.command,
      roles: policy.roles
        .split(",")
        .map((r) => r.trim())
        .filter(Boolean),
      using: policy.using || undefined,
      with_check: policy.with_check || undefined,
    };
    if (await change(`${base(table)}/policies`, "POST", body)) {
      setPolicy({ name: "", command: "select", roles: "authenticated", using: "", with_check: "" });
      props.onChanged();
    }
  }

  async function remove(p: Policy) {
    if (!confirm(`Drop the policy "${p.name}"?`)) return;
    if (await change(`${base(table)}/policies/${encodeURIComponent(p.name)}`, "DELETE")) props.onChanged();
  }

  const usesUsing = policy.command !== "insert";
  const usesCheck = policy.command !== "select" && policy.command !== "delete";
  return (
    <div class="policies">
      {shown}
      <p class={table.rls_enabled ? "ok" : "error"} data-testid="rls-state">
        {table.rls_enabled
          ? "Row level security is on: only rows a policy allows reach anon and signed-in users."
          : "Row level security is off: every row is open to anyone with the anon key. Turn it on under Structure."}
      </p>
      {table.policies.length === 0 ? (
        <p class="muted">No policies.</p>
      ) : (
        <table>
          <Head columns={["Policy", "Command", "Roles", "Using", "With check", { label: "Actions", hidden: true }]} />
          <tbody>
            {table.policies.map((p) => (
              <tr>
                <td>
                  {p.name}
                  {p.permissive ? "" : " (restrictive)"}
                </td>
                <td>{p.command}</td>
                <td>{p.roles.join(", ")}</td>
                <td>
                  <code>{p.using ?? ""}</code>
                </td>
                <td>
                  <code>{p.with_check ?? ""}</code>
                </td>
                <td>
                  <button type="button" class="link danger" onClick={() => void remove(p)}>
                    Drop
                  </button>
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      <form class="card policy-form" onSubmit={(e) => void add(e)} aria-label="New policy">
        <h3>New policy</h3>
        <label>
          Name
          <input required value={policy.name} onInput={(e) => setPolicy({ ...policy, name: e.currentTarget.value })} />
        </label>
        <label>
          Command
          <select value={policy.command} onChange={(e) => setPolicy({ ...policy, command: e.currentTarget.value })}>
            {["select", "insert", "update", "delete", "all"].map((c) => (
              <option value={c}>{c}</option>
            ))}
          </select>
        </label>
        <label>
          Roles (comma-separated)
          <input value={policy.roles} onInput={(e) => setPolicy({ ...policy, roles: e.currentTarget.value })} />
        </label>
        {usesUsing && (
          <label>
            Using (which rows it reads)
            <input
              value={policy.using}
              placeholder="e.g. owner = auth.uid()"
              onInput={(e) => setPolicy({ ...policy, using: e.currentTarget.value })}
            />
          </label>
        )}
        {usesCheck && (
          <label>
            With check (which rows it writes)
            <input
              value={policy.with_check}
              placeholder="e.g. owner = auth.uid()"
              onInput={(e) => setPolicy({ ...policy, with_check: e.currentTarget.value })}
            />
          </label>
        )}
        <button type="submit">Create policy</button>
      </form>
    </div>
  );
}
