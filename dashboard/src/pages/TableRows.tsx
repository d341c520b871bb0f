import { useEffect, useState } from "preact/hooks";
import { ApiError, asAdmin, messageOf } from "../api";
import type { Column, Table } from "./TableStructure";
import { Failure, ActionsHead } from "../ui";

/** Rows per page: a table of any size is read a page at a time. */
export const PAGE_ROWS = 50;

const OPERATORS: [string, string][] = [
  ["eq", "="],
  ["neq", "≠"],
  ["gt", ">"],
  ["gte", "≥"],
  ["lt", "<"],
  ["lte", "≤"],
  ["ilike", "contains"],
  ["is", "is"],
];

interface Filter {
  column: string;
  operator: string;
  value: string;
}

interface Page {
  rows: Record<string, unknown>[];
  total: number | null;
  /** Where these rows start: the offset they were read at. */
  offset: number;
}

const NUMBER = /^(smallint|integer|bigint|real|double precision|numeric)/;

/** A form's text as the JSON value the column takes; `undefined` leaves it out. */
export function valueFor(column: Column, text: string, empty: "omit" | "null"): unknown {
  if (text === "") return empty === "omit" ? undefined : null;
  if (column.type === "boolean") return text === "true" ? true : text === "false" ? false : text;
  if (NUMBER.test(column.type) && text.trim() !== "" && !Number.isNaN(Number(text))) {
    // Wide numbers stay text: PostgreSQL reads them exactly.
    return /^(bigint|numeric)/.test(column.type) ? text : Number(text);
  }
  if (column.type === "json" || column.type === "jsonb") {
    try {
      return JSON.parse(text);
    } catch {
      return text;
    }
  }
  return text;
}

/** A value as a form shows it. */
export function textOf(value: unknown): string {
  if (value === null || value === undefined) return "";
  return typeof value === "object" ? JSON.stringify(value) : String(value);
}

/** The schema, for the REST API (`Accept-Profile` to read, `Content-Profile` to write). */
function profile(schema: string, write: boolean): Record<string, string> {
  return { [write ? "content-profile" : "accept-profile"]: schema };
}

function path(table: Table, query: URLSearchParams): string {
  return `/rest/v1/${encodeURIComponent(table.name)}?${query}`;
}

/** `?pk=eq.value` for one row, or null when the table has no primary key. */
function rowKey(table: Table, row: Record<string, unknown>): URLSearchParams | null {
  if (table.primary_key.length === 0) return null;
  const query = new URLSearchParams();
  for (const column of table.primary_key) query.set(column, `eq.${textOf(row[column])}`);
  return query;
}

export function Rows(props: { table: Table }) {
  const { table } = props;
  const [offset, setOffset] = useState(0);
  const [order, setOrder] = useState<{ column: string; ascending: boolean } | null>(
    table.primary_key.length ? { column: table.primary_key[0], ascending: true } : null,
  );
  const [filter, setFilter] = useState<Filter>({ column: table.columns[0]?.name ?? "", operator: "eq", value: "" });
  const [applied, setApplied] = useState<Filter | null>(null);
  const [page, setPage] = useState<Page | null>(null);
  const [error, setError] = useState("");
  const [version, setVersion] = useState(0);
  const [editing, setEditing] = useState<Record<string, unknown> | "new" | null>(null);

  useEffect(() => {
    let live = true;
    setError("");
    const query = new URLSearchParams({ select: "*", limit: String(PAGE_ROWS), offset: String(offset) });
    if (order) query.set("order", `${order.column}.${order.ascending ? "asc" : "desc"}`);
    if (applied) {
      const value = applied.operator === "ilike" ? `*${applied.value}*` : applied.value;
      query.append(applied.column, `${applied.operator}.${value}`);
    }
    const read = async (attempt: number): Promise<void> => {
      try {
        const response = await asAdmin(path(table, query), {
          headers: { ...profile(table.schema, false), prefer: "count=exact" },
        });
        const rows = (await response.json()) as Record<string, unknown>[];
        const range = response.headers.get("content-range") ?? "";
        const total = Number(range.split("/")[1]);
        if (live) setPage({ rows, total: Number.isFinite(total) ? total : null, offset });
      } catch (err) {
        // A table made a moment ago reaches the REST API's schema cache
        // within moments (PostgreSQL notifies it): ask again for a while.
        if (err instanceof ApiError && err.status === 404 && attempt < 15 && live) {
          await new Promise((resolve) => setTimeout(resolve, 200));
          return read(attempt + 1);
        }
        if (live) setError(messageOf(err));
      }
    };
    void read(0);
    return () => {
      live = false;
    };
  }, [offset, order, applied, version]);

  function sortBy(column: string) {
    setOffset(0);
    setOrder(order?.column === column ? { column, ascending: !order.ascending } : { column, ascending: true });
  }

  async function remove(row: Record<string, unknown>) {
    const key = rowKey(table, row);
    if (!key || !confirm("Delete this row?")) return;
    try {
      await asAdmin(path(table, key), { method: "DELETE", headers: profile(table.schema, true) });
      setVersion(version + 1);
    } catch (err) {
      setError(messageOf(err));
    }
  }

  const total = page?.total ?? null;
  const canEdit = table.kind === "table" && table.primary_key.length > 0;
  return (
    <div class="rows">
      <form
        class="filters"
        aria-label="Filter rows"
        onSubmit={(e) => {
          e.preventDefault();
          setOffset(0);
          setApplied(filter.value === "" && filter.operator !== "is" ? null : { ...filter });
        }}
      >
        <label>
          Column
          <select value={filter.column} onChange={(e) => setFilter({ ...filter, column: e.currentTarget.value })}>
            {table.columns.map((c) => (
              <option value={c.name}>{c.name}</option>
            ))}
          </select>
        </label>
        <label>
          Operator
          <select value={filter.operator} onChange={(e) => setFilter({ ...filter, operator: e.currentTarget.value })}>
            {OPERATORS.map(([op, label]) => (
              <option value={op}>{label}</option>
            ))}
          </select>
        </label>
        <label>
          Value
          <input
            value={filter.value}
            placeholder={filter.operator === "is" ? "null, true or false" : ""}
            onInput={(e) => setFilter({ ...filter, value: e.currentTarget.value })}
          />
        </label>
        <button type="submit" class="secondary">
          Filter
        </button>
        {applied && (
          <button
            type="button"
            class="link"
            onClick={() => {
              setApplied(null);
              setOffset(0);
            }}
          >
            Clear filter
          </button>
        )}
        {table.kind === "table" && (
          <button type="button" onClick={() => setEditing("new")}>
            Insert row
          </button>
        )}
      </form>
      {editing && (
        <RowForm
          table={table}
          row={editing === "new" ? null : editing}
          onDone={(saved) => {
            setEditing(null);
            if (saved) setVersion(version + 1);
          }}
        />
      )}
      <Failure text={error} />
      {!page && !error && (
        <p class="muted" aria-busy="true">
          Loading…
        </p>
      )}
      {page && (
        <>
          <p class="muted" data-testid="row-count">
            {total === null
              ? `${page.rows.length} rows`
              : `${total.toLocaleString("en-US")} row${total === 1 ? "" : "s"}` +
                (total > 0 ? `, showing ${page.offset + 1}–${page.offset + page.rows.length}` : "")}
          </p>
          {page.rows.length > 0 && (
            <div class="grid" role="region" aria-label="Rows" tabIndex={0}>
              <table>
                <thead>
                  <tr>
                    {table.columns.map((c) => (
                      <th scope="col" aria-sort={order?.column === c.name ? (order.ascending ? "ascending" : "descending") : undefined}>
                        <button type="button" class="link" onClick={() => sortBy(c.name)} aria-label={`Sort by ${c.name}`}>
                          {c.name}
                          {order?.column === c.name ? (order.ascending ? " ▲" : " ▼") : ""}
                        </button>{" "}
                        <span class="type">{c.type}</span>
                      </th>
                    ))}
                    {canEdit && (
                      <ActionsHead />
                    )}
                  </tr>
                </thead>
                <tbody>
                  {page.rows.map((row) => (
                    <tr>
                      {table.columns.map((c) => {
                        const value = row[c.name];
                        return (
                          <td class={value === null ? "null" : undefined}>{value === null ? "NULL" : textOf(value)}</td>
                        );
                      })}
                      {canEdit && (
                        <td class="actions">
                          <button type="button" class="link" onClick={() => setEditing(row)}>
                            Edit
                          </button>
                          <button type="button" class="link danger" onClick={() => void remove(row)}>
                            Delete
                          </button>
                        </td>
                      )}
                    </tr>
                  ))}
                </tbody>
              </table>
            </div>
          )}
          <div class="pager">
            <button type="button" class="secondary" disabled={offset === 0} onClick={() => setOffset(Math.max(0, offset - PAGE_ROWS))}>
              Previous page
            </button>
            <button
              type="button"
              class="secondary"
              disabled={total === null ? page.rows.length < PAGE_ROWS : offset + PAGE_ROWS >= total}
              onClick={() => setOffset(offset + PAGE_ROWS)}
            >
              Next page
            </button>
          </div>
          {!canEdit && table.kind === "table" && (
            <p class="muted">Rows of a table without a primary key cannot be edited or deleted here: use the SQL editor.</p>
          )}
        </>
      )}
    </div>
  );
}

/** Insert (no `row`) or edit a row; empty fields take the column's default on insert, NULL on edit. */
function RowForm(props: { table: Table; row: Record<string, unknown> | null; onDone: (saved: boolean) => void }) {
  const { table, row } = props;
  const editable = table.columns.filter((c) => !c.is_generated && !(row === null && c.is_identity));
  const [values, setValues] = useState<Record<string, string>>(() =>
    Object.fromEntries(editable.map((c) => [c.name, row ? textOf(row[c.name]) : ""])),
  );
  const [error, setError] = useState("");

  async function save(event: Event) {
    event.preventDefault();
    const body: Record<string, unknown> = {};
    for (const column of editable) {
      const value = valueFor(column, values[column.name], row ? "null" : "omit");
      if (value !== undefined) body[column.name] = value;
    }
    try {
      const headers = { ...profile(table.schema, true), "content-type": "application/json", prefer: "return=minimal" };
      if (row) {
        const key = rowKey(table, row);
        if (!key) return;
        await asAdmin(path(table, key), { method: "PATCH", headers, body: JSON.stringify(body) });
      } else {
        await asAdmin(path(table, new URLSearchParams()), { method: "POST", headers, body: JSON.stringify(body) });
      }
      props.onDone(true);
    } catch (err) {
      setError(messageOf(err));
    }
  }

  return (
    <form class="card row-form" onSubmit={(e) => void save(e)} aria-label={row ? "Edit row" : "Insert row"}>
      <h3>{row ? "Edit row" : "Insert a row"}</h3>
      {editable.map((c) => (
        <label>
          <span>
            {c.name} <span class="type">{c.type}</span>
            {!row && c.default !== null && <span class="type"> default {c.default}</span>}
          </span>
          <input
            name={c.name}
            value={values[c.name]}
            placeholder={row ? (c.nullable ? "NULL" : "") : c.default !== null || c.nullable ? "default" : "required"}
            onInput={(e) => setValues({ ...values, [c.name]: e.currentTarget.value })}
          />
        </label>
      ))}
      <Failure text={error} />
      <div class="buttons">
        <button type="submit">{row ? "Save" : "Insert"}</button>
        <button type="button" class="secondary" onClick={() => props.onDone(false)}>
          Cancel
        </button>
      </div>
    </form>
  );
}
