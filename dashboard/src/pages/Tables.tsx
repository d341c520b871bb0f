import { useState } from "preact/hooks";
import { api } from "../api";
import { Show, useLoaded } from "../load";
import { Rows } from "./TableRows";
import { Structure, Policies, type Table } from "./TableStructure";
import { NewTable } from "./TableNew";
import { useHashParts } from "../ui";

interface BriefTable {
  name: string;
  kind: string;
}

export function go(schema: string, table: string | null, tab = "rows") {
  const path = ["tables", schema, ...(table ? [table, tab] : [])].map(encodeURIComponent).join("/");
  location.hash = `#/${path}`;
}

const TABS: [string, string][] = [
  ["rows", "Rows"],
  ["structure", "Structure"],
  ["policies", "Policies"],
];

export function Tables() {
  // `#/tables/<schema>/<table>/<tab>`, each part optional.
  const parts = useHashParts();
  const where = { schema: parts[0] || "public", table: parts[1] || null, tab: parts[2] || "rows" };
  const [version, setVersion] = useState(0);
  const [creating, setCreating] = useState(false);
  const schemas = useLoaded(() => api<{ schemas: { name: string; exposed: boolean }[] }>("/api/v1/schemas"));
  const tables = useLoaded(
    () => api<{ tables: BriefTable[] }>(`/api/v1/tables?brief=true&schema=${encodeURIComponent(where.schema)}`),
    version * 1000 + hash(where.schema),
  );
  const exposed =
    schemas.state === "ready" && schemas.value.schemas.some((s) => s.name === where.schema && s.exposed);

  return (
    <div class="tables">
      <aside class="side" aria-label="Tables">
        <Show loaded={schemas}>
          {({ schemas: list }) => (
            <label>
              Schema
              <select value={where.schema} onChange={(e) => go(e.currentTarget.value, null)}>
                {list.map((s) => (
                  <option value={s.name}>{s.name}</option>
                ))}
              </select>
            </label>
          )}
        </Show>
        <button type="button" onClick={() => setCreating(true)}>
          New table
        </button>
        <Show loaded={tables}>
          {({ tables: list }) =>
            list.length === 0 ? (
              <p class="muted">No tables in {where.schema} yet.</p>
            ) : (
              <ul class="tree" data-testid="table-list">
                {list.map((t) => (
                  <li>
                    <a
                      href={`#/tables/${encodeURIComponent(where.schema)}/${encodeURIComponent(t.name)}/rows`}
                      aria-current={t.name === where.table ? "page" : undefined}
                    >
                      {t.name}
                    </a>
                    {t.kind !== "table" && <span class="type"> {t.kind.replace("_", " ")}</span>}
                  </li>
                ))}
              </ul>
            )
          }
        </Show>
      </aside>
      <section class="work">
        {creating ? (
          <NewTable
            schema={where.schema}
            onDone={(name) => {
              setCreating(false);
              setVersion(version + 1);
              if (name) go(where.schema, name, "rows");
            }}
          />
        ) : where.table ? (
          <TableView
            key={`${where.schema}.${where.table}.${version}`}
            schema={where.schema}
            name={where.table}
            tab={where.tab}
            exposed={exposed}
            onChanged={(renamed) => {
              setVersion(version + 1);
              if (renamed !== undefined) go(where.schema, renamed, where.tab);
            }}
          />
        ) : (
          <p class="muted">Choose a table, or make a new one.</p>
        )}
      </section>
    </div>
  );
}

function hash(text: string): number {
  let h = 0;
  for (const ch of text) h = (h * 31 + ch.charCodeAt(0)) % 1000;
  return h;
}

function TableView(props: {
  schema: string;
  name: string;
  tab: string;
  exposed: boolean;
  /** After a change; with the table's new name (null: dropped) when that changed. */
  onChanged: (renamed?: string | null) => void;
}) {
  const [version, setVersion] = useState(0);
  const table = useLoaded(
    () => api<Table>(`/api/v1/tables/${encodeURIComponent(props.schema)}/${encodeURIComponent(props.name)}`),
    version,
  );
  return (
    <>
      <h2>
        {props.schema}.{props.name}
      </h2>
      <nav class="tabs" aria-label="Table views">
        {TABS.map(([tab, title]) => (
          <a
            href={`#/tables/${encodeURIComponent(props.schema)}/${encodeURIComponent(props.name)}/${tab}`}
            aria-current={tab === props.tab ? "page" : undefined}
          >
            {title}
          </a>
        ))}
      </nav>
      <Show loaded={table}>
        {(t) =>
          props.tab === "structure" ? (
            <Structure
              table={t}
              onChanged={(renamed) => {
                if (renamed !== undefined) props.onChanged(renamed);
                else setVersion(version + 1);
              }}
            />
          ) : props.tab === "policies" ? (
            <Policies table={t} onChanged={() => setVersion(version + 1)} />
          ) : props.exposed ? (
            <Rows table={t} />
          ) : (
            <p class="muted">
              The REST API does not serve the schema {props.schema} (see <code>--db-schemas</code>): browse its rows in
              the <a href="#/sql">SQL editor</a>.
            </p>
          )
        }
      </Show>
    </>
  );
}

