import { useEffect, useMemo, useRef, useState } from "preact/hooks";
import { api, ApiError } from "../api";
import { Editor, unitsOf, type EditorHandle } from "../editor";
import { Grid, type GridColumn } from "../grid";
import { NoteLine, Failure } from "../ui";

interface StatementResult {
  statement: number;
  command: string | null;
  row_count: number;
  columns?: GridColumn[];
  rows?: unknown[][];
  truncated: boolean;
  duration_ms: number;
}

interface Notice {
  severity: string;
  message: string;
}

interface Outcome {
  results: StatementResult[];
  notices: Notice[];
  duration_ms: number;
}

interface Failure {
  statement: number;
  sqlstate: string;
  position: number | null;
  detail: string | null;
  hint: string | null;
  results: StatementResult[];
  notices: Notice[];
}

interface Snippet {
  id: string;
  name: string;
  sql: string;
  updated_at: string;
}

interface BriefTable {
  name: string;
  kind: string;
  columns: { name: string; type: string }[];
}

type Run =
  | { state: "idle" }
  | { state: "running" }
  | { state: "done"; outcome: Outcome }
  | { state: "failed"; message: string; failure: Failure | null; where: string | null };

const DRAFT = "selfdb.sql.draft";
const FIRST = "-- Ctrl+Enter runs the selection, or everything when nothing is selected.\nselect now();\n";

function summary(r: StatementResult): string {
  const rows = r.columns ? `${r.row_count} row${r.row_count === 1 ? "" : "s"}` : r.row_count ? `${r.row_count} affected` : "";
  return [r.command ?? "statement", rows, `${r.duration_ms.toFixed(1)} ms`].filter(Boolean).join(" · ");
}

/** Line and column (from 1) of a UTF-16 offset. */
function lineAndColumn(text: string, offset: number): string {
  const before = text.slice(0, offset).split("\n");
  return `line ${before.length}, column ${before[before.length - 1].length + 1}`;
}

export function Sql() {
  const editor = useRef<EditorHandle | null>(null);
  const draft = useRef(localStorage.getItem(DRAFT) ?? FIRST);
  const [run, setRun] = useState<Run>({ state: "idle" });
  const [shown, setShown] = useState(0);
  const [readOnly, setReadOnly] = useState(false);
  const [timeoutSeconds, setTimeoutSeconds] = useState(15);
  const [maxRows, setMaxRows] = useState(1000);
  const [schemas, setSchemas] = useState<string[]>(["public"]);
  const [schemaName, setSchemaName] = useState("public");
  const [tables, setTables] = useState<BriefTable[] | null>(null);
  const [tablesError, setTablesError] = useState("");
  const [snippets, setSnippets] = useState<Snippet[]>([]);
  const [snippet, setSnippet] = useState<Snippet | null>(null);
  const [snippetName, setSnippetName] = useState("");
  const [message, setMessage] = useState<{ error: boolean; text: string } | null>(null);

  useEffect(() => {
    api<{ schemas: { name: string }[] }>("/api/v1/schemas?all=true")
      .then((s) => setSchemas(s.schemas.map((x) => x.name)))
      .catch(() => setSchemas(["public"]));
    loadSnippets();
  }, []);

  useEffect(() => {
    setTables(null);
    setTablesError("");
    api<{ tables: BriefTable[] }>(`/api/v1/tables?brief=true&schema=${encodeURIComponent(schemaName)}`).then(
      (t) => setTables(t.tables),
      (err: unknown) => setTablesError(err instanceof Error ? err.message : String(err)),
    );
  }, [schemaName, run.state === "done"]);

  const completion = useMemo(() => {
    const map: Record<string, string[]> = {};
    for (const t of tables ?? []) map[t.name] = t.columns.map((c) => c.name);
    return map;
  }, [tables]);

  function loadSnippets() {
    api<{ snippets: Snippet[] }>("/api/v1/sql/snippets").then(
      (s) => setSnippets(s.snippets),
      (err: unknown) => setMessage({ error: true, text: err instanceof Error ? err.message : String(err) }),
    );
  }

  async function execute() {
    const handle = editor.current;
    if (!handle || run.state === "running") return;
    const { text, offset } = handle.runnable();
    handle.markError(null);
    setRun({ state: "running" });
    try {
      const outcome = await api<Outcome>("/api/v1/sql", {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ query: text, read_only: readOnly, timeout_ms: timeoutSeconds * 1000, max_rows: maxRows }),
      });
      const withRows = outcome.results.map((r) => r.columns !== undefined);
      setShown(Math.max(0, withRows.lastIndexOf(true)));
      setRun({ state: "done", outcome });
    } catch (err) {
      if (err instanceof ApiError && err.code === "sql_error") {
        const failure = err.details as Failure;
        let where: string | null = null;
        if (failure.position !== null) {
          const at = offset + unitsOf(text, failure.position - 1);
          handle.markError(at);
          where = lineAndColumn(draft.current, at);
        }
        setRun({ state: "failed", message: err.message, failure, where });
      } else {
        setRun({ state: "failed", message: err instanceof Error ? err.message : String(err), failure: null, where: null });
      }
    }
  }

  async function saveSnippet(event: Event) {
    event.preventDefault();
    const name = snippetName.trim();
    if (!name) return;
    const body = JSON.stringify({ name, sql: draft.current });
    const headers = { "content-type": "application/json" };
    try {
      const saved =
        snippet && snippet.name === name
          ? await api<Snippet>(`/api/v1/sql/snippets/${snippet.id}`, { method: "PUT", headers, body })
          : await api<Snippet>("/api/v1/sql/snippets", { method: "POST", headers, body });
      setSnippet(saved);
      setMessage({ error: false, text: `Saved "${saved.name}".` });
      loadSnippets();
    } catch (err) {
      setMessage({ error: true, text: err instanceof Error ? err.message : String(err) });
    }
  }

  async function removeSnippet(s: Snippet) {
    if (!confirm(`Delete the snippet "${s.name}"?`)) return;
    try {
      await api(`/api/v1/sql/snippets/${s.id}`, { method: "DELETE" });
      if (snippet?.id === s.id) setSnippet(null);
      loadSnippets();
    } catch (err) {
      setMessage({ error: true, text: err instanceof Error ? err.message : String(err) });
    }
  }

  function open(s: Snippet) {
    editor.current?.setText(s.sql);
    setSnippet(s);
    setSnippetName(s.name);
    setMessage(null);
  }

  const results = run.state === "done" ? run.outcome.results : run.state === "failed" ? (run.failure?.results ?? []) : [];
  const notices = run.state === "done" ? run.outcome.notices : run.state === "failed" ? (run.failure?.notices ?? []) : [];
  const current = results[shown];
  return (
    <div class="sql">
      <aside class="side" aria-label="Schema and snippets">
        <label>
          Schema
          <select value={schemaName} onChange={(e) => setSchemaName(e.currentTarget.value)}>
            {schemas.map((s) => (
              <option value={s}>{s}</option>
            ))}
          </select>
        </label>
        <Failure text={tablesError} />
        {tables === null && !tablesError && <p class="muted">Loading…</p>}
        {tables?.length === 0 && <p class="muted">No tables in {schemaName}.</p>}
        <ul class="tree" data-testid="schema-tables">
          {tables?.map((t) => (
            <li>
              <details>
                <summary>
                  {t.name}
                  {t.kind !== "table" && <span class="muted"> {t.kind.replace("_", " ")}</span>}
                </summary>
                <ul>
                  {t.columns.map((c) => (
                    <li>
                      {c.name} <span class="type">{c.type}</span>
                    </li>
                  ))}
                </ul>
              </details>
            </li>
          ))}
        </ul>
        <h2>Snippets</h2>
        {snippets.length === 0 && <p class="muted">No saved snippets.</p>}
        <ul class="snippets">
          {snippets.map((s) => (
            <li>
              <button type="button" class="link" onClick={() => open(s)}>
                {s.name}
              </button>
              <button type="button" class="link danger" aria-label={`Delete ${s.name}`} onClick={() => void removeSnippet(s)}>
                ×
              </button>
            </li>
          ))}
        </ul>
      </aside>
      <section class="work">
        <Editor
          initial={draft.current}
          label="SQL"
          schema={completion}
          handle={editor}
          onRun={() => void execute()}
          onChange={(text) => {
            draft.current = text;
            localStorage.setItem(DRAFT, text);
          }}
        />
        <div class="toolbar">
          <button type="button" onClick={() => void execute()} disabled={run.state === "running"}>
            {run.state === "running" ? "Running…" : "Run"}
          </button>
          <label class="check">
            <input type="checkbox" checked={readOnly} onChange={(e) => setReadOnly(e.currentTarget.checked)} />
            Read-only
          </label>
          <label class="short">
            Timeout (s)
            <input
              type="number"
              min={1}
              max={120}
              value={timeoutSeconds}
              onChange={(e) => setTimeoutSeconds(Math.min(120, Math.max(1, Number(e.currentTarget.value) || 15)))}
            />
          </label>
          <label class="short">
            Row cap
            <input
              type="number"
              min={1}
              max={10000}
              value={maxRows}
              onChange={(e) => setMaxRows(Math.min(10000, Math.max(1, Number(e.currentTarget.value) || 1000)))}
            />
          </label>
          <form class="save" onSubmit={(e) => void saveSnippet(e)}>
            <label class="short">
              Snippet name
              <input value={snippetName} onInput={(e) => setSnippetName(e.currentTarget.value)} />
            </label>
            <button type="submit" class="secondary" disabled={!snippetName.trim()}>
              Save snippet
            </button>
          </form>
        </div>
        <NoteLine note={message} />
        {run.state === "failed" && (
          <div class="error sql-error" role="alert" data-testid="sql-error">
            <strong>{run.message}</strong>
            {run.failure && (
              <span>
                {" "}
                (statement {run.failure.statement + 1}
                {run.where ? `, ${run.where}` : ""}, SQLSTATE {run.failure.sqlstate})
              </span>
            )}
            {run.failure?.detail && <p>{run.failure.detail}</p>}
            {run.failure?.hint && <p>Hint: {run.failure.hint}</p>}
            {run.failure && results.length > 0 && <p>Nothing of this run was kept (unless it committed itself).</p>}
          </div>
        )}
        {notices.length > 0 && (
          <ul class="notices" aria-label="Notices">
            {notices.map((n) => (
              <li>
                {n.severity}: {n.message}
              </li>
            ))}
          </ul>
        )}
        {results.length > 0 && (
          <div data-testid="sql-results">
            <ol class="statements">
              {results.map((r, i) => (
                <li>
                  <button type="button" class="link" aria-pressed={i === shown} onClick={() => setShown(i)}>
                    {summary(r)}
                  </button>
                </li>
              ))}
            </ol>
            {run.state === "done" && <p class="muted">Done in {run.outcome.duration_ms.toFixed(1)} ms.</p>}
            {current?.columns && (
              <>
                {current.truncated && (
                  <p class="muted" role="status">
                    Showing the first {current.rows?.length} of {current.row_count} rows (the row cap).
                  </p>
                )}
                {current.rows?.length === 0 ? (
                  <p class="muted">No rows.</p>
                ) : (
                  <Grid columns={current.columns} rows={current.rows ?? []} label="Results" />
                )}
              </>
            )}
          </div>
        )}
      </section>
    </div>
  );
}
