import { useEffect, useState } from "preact/hooks";
import { api, messageOf } from "../api";
import { TimeChart } from "../chart";
import { Show, useLoaded } from "../load";
import { NoteLine, Failure, useHashParts, Head } from "../ui";

/** A project as `/api/v1/projects` describes it (no password, no key). */
interface Project {
  projectId: number;
  name: string;
  database_url: string;
  key_prefix: string;
  paused: boolean;
  schemas: string[];
  pool_size: number;
  schema_detection: string;
  endpoints: Record<string, string>;
  created_at: string;
  tables?: string[];
}

interface Stats {
  requests: number;
  avg_latency_ms: number;
  p95_latency_ms: number;
  error_rate: number;
}

interface Analytics {
  totals: Stats;
  endpoints: (Stats & { endpoint: string; table: string | null; operation: string | null })[];
  series: (Stats & { at: string })[];
}

interface LogRecord {
  at: string;
  id: number | null;
  method: string;
  endpoint: string;
  table: string | null;
  operation: string | null;
  status: number;
  latency_ms: number;
}

interface Change {
  id: number;
  detected_at: string;
  changes: unknown;
}

const JSON_HEADERS = { "content-type": "application/json" };

const TABS: [string, string][] = [
  ["analytics", "Analytics"],
  ["logs", "Logs"],
  ["schema", "Schema changes"],
  ["settings", "Key and settings"],
];

export function Projects() {
  // `#/projects/<id>/<tab>`.
  const parts = useHashParts();
  const at = { id: parts[0] || null, tab: parts[1] || "analytics" };
  const [version, setVersion] = useState(0);
  const [created, setCreated] = useState<{ id: number; key: string } | null>(null);
  const list = useLoaded(() => api<{ projects: Project[] }>("/api/v1/projects"), version);
  return (
    <div class="tables">
      <aside class="side" aria-label="Projects">
        <a class="button" href="#/projects">
          Add a database
        </a>
        <Show loaded={list}>
          {({ projects }) =>
            projects.length === 0 ? (
              <p class="muted">No projects yet.</p>
            ) : (
              <ul class="tree" data-testid="project-list">
                {projects.map((p) => (
                  <li>
                    <a href={`#/projects/${p.projectId}/analytics`} aria-current={String(p.projectId) === at.id ? "page" : undefined}>
                      {p.name}
                    </a>
                    {p.paused && <span class="type"> paused</span>}
                  </li>
                ))}
              </ul>
            )
          }
        </Show>
      </aside>
      <section class="work">
        {created && String(created.id) === at.id && <KeyShown apiKey={created.key} />}
        {at.id ? (
          <ProjectView
            key={`${at.id}.${version}`}
            id={at.id}
            tab={at.tab}
            onChanged={() => setVersion(version + 1)}
            onKey={(id, key) => {
              setCreated({ id, key });
              setVersion(version + 1);
            }}
          />
        ) : (
          <Register
            onCreated={(id, key) => {
              setCreated({ id, key });
              setVersion(version + 1);
              location.hash = `#/projects/${id}/analytics`;
            }}
          />
        )}
      </section>
    </div>
  );
}

function KeyShown(props: { apiKey: string }) {
  return (
    <p class="ok" role="status" data-testid="project-key">
      The project's API key: <code class="key">{props.apiKey}</code>. Copy it now: it is not shown again (rotate it to get a
      new one).
    </p>
  );
}

function Register(props: { onCreated: (id: number, key: string) => void }) {
  const [form, setForm] = useState({ name: "", database_url: "", schemas: "public", pool_size: "5" });
  const [error, setError] = useState("");
  const [busy, setBusy] = useState(false);
  async function register(event: Event) {
    event.preventDefault();
    setBusy(true);
    setError("");
    try {
      const made = await api<Project & { apiKey: string }>("/api/v1/projects", {
        method: "POST",
        headers: JSON_HEADERS,
        body: JSON.stringify({
          name: form.name,
          database_url: form.database_url,
          schemas: form.schemas
            .split(",")
            .map((s) => s.trim())
            .filter(Boolean),
          pool_size: Number(form.pool_size) || undefined,
        }),
      });
      props.onCreated(made.projectId, made.apiKey);
    } catch (err) {
      setError(messageOf(err));
    } finally {
      setBusy(false);
    }
  }
  const set = (key: keyof typeof form) => (e: Event) => setForm({ ...form, [key]: (e.currentTarget as HTMLInputElement).value });
  return (
    <form class="row-form" onSubmit={(e) => void register(e)} aria-label="Add a database">
      <h2>Add a database</h2>
      <p class="muted">
        Any PostgreSQL this host can reach gets an API at once: <code>POST /query</code> with the project's key, and a REST API
        under <code>/projects/&lt;id&gt;/rest/v1</code>.
      </p>
      <label>
        Name
        <input required value={form.name} onInput={set("name")} />
      </label>
      <label>
        Database URL
        <input
          required
          type="password"
          autoComplete="off"
          value={form.database_url}
          placeholder="postgres://user:password@host:5432/db?sslmode=require"
          onInput={set("database_url")}
        />
      </label>
      <label>
        Schemas (comma-separated)
        <input value={form.schemas} onInput={set("schemas")} />
      </label>
      <label>
        Connections
        <input inputMode="numeric" value={form.pool_size} onInput={set("pool_size")} />
      </label>
      <Failure text={error} />
      <button type="submit" disabled={busy}>
        {busy ? "Connecting…" : "Add database"}
      </button>
    </form>
  );
}

function ProjectView(props: {
  id: string;
  tab: string;
  onChanged: () => void;
  /** A new key, to show once above the page. */
  onKey: (id: number, key: string) => void;
}) {
  const project = useLoaded(() => api<Project>(`/api/v1/projects/${encodeURIComponent(props.id)}`));
  return (
    <Show loaded={project}>
      {(p) => (
        <>
          <h2>
            {p.name} <span class="type">#{p.projectId}</span>
          </h2>
          <nav class="tabs" aria-label="Project views">
            {TABS.map(([tab, title]) => (
              <a href={`#/projects/${p.projectId}/${tab}`} aria-current={tab === props.tab ? "page" : undefined}>
                {title}
              </a>
            ))}
          </nav>
          {props.tab === "logs" ? (
            <ProjectLogs project={p} />
          ) : props.tab === "schema" ? (
            <SchemaChanges project={p} />
          ) : props.tab === "settings" ? (
            <ProjectSettings project={p} onChanged={props.onChanged} onKey={props.onKey} />
          ) : (
            <ProjectAnalytics project={p} />
          )}
        </>
      )}
    </Show>
  );
}

const RANGES: [string, string, number][] = [
  ["1h", "Last hour", 3600],
  ["24h", "Last 24 hours", 86400],
  ["7d", "Last 7 days", 7 * 86400],
];

function ProjectAnalytics(props: { project: Project }) {
  const [range, setRange] = useState("1h");
  const seconds = RANGES.find((r) => r[0] === range)?.[2] ?? 3600;
  const bucket = seconds <= 3600 ? "minute" : seconds <= 86400 ? "hour" : "day";
  const loaded = useLoaded(async () => {
    const from = new Date(Date.now() - seconds * 1000).toISOString();
    return api<Analytics>(
      `/api/v1/projects/${props.project.projectId}/analytics?bucket=${bucket}&from=${encodeURIComponent(from)}`,
    );
  }, seconds);
  return (
    <div class="overview">
      <label class="short">
        Range
        <select value={range} onChange={(e) => setRange(e.currentTarget.value)}>
          {RANGES.map(([value, label]) => (
            <option value={value}>{label}</option>
          ))}
        </select>
      </label>
      <Show loaded={loaded}>
        {(a) => {
          const times = a.series.map((s) => Math.floor(Date.parse(s.at) / 1000));
          return (
            <>
              <ul class="counts" data-testid="project-totals">
                <li>
                  <strong>{a.totals.requests}</strong> requests
                </li>
                <li>
                  <strong>{a.totals.avg_latency_ms.toFixed(1)}</strong> ms average
                </li>
                <li>
                  <strong>{a.totals.p95_latency_ms.toFixed(1)}</strong> ms p95
                </li>
                <li>
                  <strong>{(a.totals.error_rate * 100).toFixed(1)}%</strong> errors
                </li>
              </ul>
              {a.series.length === 0 ? (
                <p class="muted">No requests in this range.</p>
              ) : (
                <>
                  <section>
                    <h3>Requests per {bucket}</h3>
                    <TimeChart times={times} values={a.series.map((s) => s.requests)} label={`Requests per ${bucket}`} />
                  </section>
                  <section>
                    <h3>Latency (p95, ms)</h3>
                    <TimeChart times={times} values={a.series.map((s) => s.p95_latency_ms)} label="p95 latency" height={140} />
                  </section>
                  <section>
                    <h3>Error rate (%)</h3>
                    <TimeChart times={times} values={a.series.map((s) => s.error_rate * 100)} label="Error rate" height={120} />
                  </section>
                </>
              )}
              {a.endpoints.length > 0 && (
                <table data-testid="project-endpoints">
                  <Head columns={["Endpoint", "Table", "Operation", { label: "Requests", numeric: true }, { label: "Average", numeric: true }, { label: "p95", numeric: true }, { label: "Errors", numeric: true }]} />
                  <tbody>
                    {a.endpoints.map((e) => (
                      <tr>
                        <td>
                          <code>{e.endpoint}</code>
                        </td>
                        <td>{e.table ?? ""}</td>
                        <td>{e.operation ?? ""}</td>
                        <td class="num">{e.requests}</td>
                        <td class="num">{e.avg_latency_ms.toFixed(1)} ms</td>
                        <td class="num">{e.p95_latency_ms.toFixed(1)} ms</td>
                        <td class="num">{(e.error_rate * 100).toFixed(1)}%</td>
                      </tr>
                    ))}
                  </tbody>
                </table>
              )}
            </>
          );
        }}
      </Show>
    </div>
  );
}

function ProjectLogs(props: { project: Project }) {
  const [filters, setFilters] = useState({ table: "", operation: "", errors: false });
  const [records, setRecords] = useState<LogRecord[] | null>(null);
  const [next, setNext] = useState<string | null>(null);
  const [error, setError] = useState("");
  const base = `/api/v1/projects/${props.project.projectId}/logs`;
  const query = (before: string | null) => {
    const q = new URLSearchParams({ limit: "100" });
    if (filters.table) q.set("table", filters.table);
    if (filters.operation) q.set("operation", filters.operation);
    if (filters.errors) q.set("errors", "true");
    if (before) q.set("before", before);
    return `${base}?${q}`;
  };
  useEffect(() => {
    setRecords(null);
    api<{ logs: LogRecord[]; next_before: string | null }>(query(null)).then(
      (page) => {
        setRecords(page.logs);
        setNext(page.next_before);
      },
      (err: unknown) => setError(messageOf(err)),
    );
  }, [filters]);
  async function older() {
    if (!next) return;
    try {
      const page = await api<{ logs: LogRecord[]; next_before: string | null }>(query(next));
      setRecords([...(records ?? []), ...page.logs]);
      setNext(page.next_before);
    } catch (err) {
      setError(messageOf(err));
    }
  }
  return (
    <div>
      <form class="filters" aria-label="Filter project logs" onSubmit={(e) => e.preventDefault()}>
        <label>
          Table
          <select value={filters.table} onChange={(e) => setFilters({ ...filters, table: e.currentTarget.value })}>
            <option value="">Any</option>
            {(props.project.tables ?? []).map((t) => (
              <option value={t}>{t}</option>
            ))}
          </select>
        </label>
        <label>
          Operation
          <select value={filters.operation} onChange={(e) => setFilters({ ...filters, operation: e.currentTarget.value })}>
            {["", "read", "create", "update", "delete", "rpc"].map((o) => (
              <option value={o}>{o || "Any"}</option>
            ))}
          </select>
        </label>
        <label class="check">
          <input type="checkbox" checked={filters.errors} onChange={(e) => setFilters({ ...filters, errors: e.currentTarget.checked })} />
          Errors only
        </label>
      </form>
      <Failure text={error} />
      {records === null && !error && <p class="muted">Loading…</p>}
      {records?.length === 0 && <p class="muted">No requests match.</p>}
      {records && records.length > 0 && (
        <table data-testid="project-logs">
          <Head columns={["Time", "Method", "Endpoint", "Table", "Operation", "Status", { label: "Latency", numeric: true }]} />
          <tbody>
            {records.map((r) => (
              <tr class={r.status >= 400 ? "failed" : undefined}>
                <td>{new Date(r.at).toLocaleTimeString()}</td>
                <td>{r.method}</td>
                <td>
                  <code>{r.endpoint}</code>
                </td>
                <td>{r.table ?? ""}</td>
                <td>{r.operation ?? ""}</td>
                <td>{r.status}</td>
                <td class="num">{r.latency_ms.toFixed(1)} ms</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      {next && (
        <button type="button" class="secondary" onClick={() => void older()}>
          Older requests
        </button>
      )}
    </div>
  );
}

function SchemaChanges(props: { project: Project }) {
  const loaded = useLoaded(() =>
    api<{ changes: Change[] }>(`/api/v1/projects/${props.project.projectId}/schema-changes?limit=50`),
  );
  return (
    <Show loaded={loaded}>
      {({ changes }) =>
        changes.length === 0 ? (
          <p class="muted">No schema changes seen since the database was added ({props.project.schema_detection}).</p>
        ) : (
          <ul class="changes" data-testid="schema-changes">
            {changes.map((c) => (
              <li>
                <strong>{new Date(c.detected_at).toLocaleString()}</strong>
                <pre class="ran">{JSON.stringify(c.changes, null, 2)}</pre>
              </li>
            ))}
          </ul>
        )
      }
    </Show>
  );
}

function ProjectSettings(props: { project: Project; onChanged: () => void; onKey: (id: number, key: string) => void }) {
  const p = props.project;
  const [message, setMessage] = useState<{ error: boolean; text: string } | null>(null);
  async function post(path: string, done: string) {
    try {
      const answer = await api<{ apiKey?: string }>(`/api/v1/projects/${p.projectId}/${path}`, { method: "POST" });
      if (answer.apiKey) {
        props.onKey(p.projectId, answer.apiKey);
        return;
      }
      setMessage({ error: false, text: done });
      props.onChanged();
    } catch (err) {
      setMessage({ error: true, text: messageOf(err) });
    }
  }
  async function remove() {
    if (prompt(`Remove the project ${p.name}? Its key stops working; the database itself is not touched. Type its name to confirm.`) !== p.name)
      return;
    try {
      await api(`/api/v1/projects/${p.projectId}`, { method: "DELETE" });
      location.hash = "#/projects";
      props.onChanged();
    } catch (err) {
      setMessage({ error: true, text: messageOf(err) });
    }
  }
  return (
    <div class="settings">
      <NoteLine note={message} />
      <dl class="facts">
        <dt>Database</dt>
        <dd>
          <code>{p.database_url}</code>
        </dd>
        <dt>Key</dt>
        <dd>
          <code>{p.key_prefix}…</code>
        </dd>
        <dt>Schemas</dt>
        <dd>{p.schemas.join(", ")}</dd>
        <dt>Connections</dt>
        <dd>{p.pool_size}</dd>
        <dt>Schema changes</dt>
        <dd>{p.schema_detection === "trigger" ? "seen at once (event trigger)" : "polled"}</dd>
        <dt>Endpoints</dt>
        <dd>
          {Object.values(p.endpoints).map((e) => (
            <code>{e} </code>
          ))}
        </dd>
        <dt>State</dt>
        <dd>{p.paused ? "paused: requests are refused" : "serving"}</dd>
      </dl>
      <div class="buttons">
        <button type="button" class="secondary" onClick={() => confirm("A new key replaces the current one at once. Go on?") && void post("rotate-key", "Rotated.")}>
          Rotate key
        </button>
        {p.paused ? (
          <button type="button" class="secondary" onClick={() => void post("resume", "Serving again.")}>
            Resume
          </button>
        ) : (
          <button type="button" class="secondary" onClick={() => void post("pause", "Paused.")}>
            Pause
          </button>
        )}
        <button type="button" class="danger-button" onClick={() => void remove()}>
          Remove project
        </button>
      </div>
    </div>
  );
}
