import { useEffect, useRef, useState } from "preact/hooks";
import { api } from "../api";
import { Head } from "../ui";

/** One request as `/api/v1/requests/logs` returns it. */
interface LogRecord {
  at: string;
  method: string;
  endpoint: string;
  table: string | null;
  operation: string | null;
  status: number;
  latency_ms: number;
  bytes_in: number;
  bytes_out: number;
  id: number | null;
}

interface Page {
  logs: LogRecord[];
  next_before: string | null;
}

interface Filters {
  method: string;
  endpoint: string;
  status: string;
  errors: boolean;
  since: string;
}

const METHODS = ["", "GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"];
/** Minutes back, or "" for no bound. */
const SINCE: [string, string][] = [
  ["15", "Last 15 minutes"],
  ["60", "Last hour"],
  ["1440", "Last 24 hours"],
  ["", "Any time"],
];
const PAGE = 100;
const REFRESH_MS = 5000;

function keyOf(r: LogRecord): string {
  return `${r.at}~${r.id ?? ""}`;
}

function query(filters: Filters, before: string | null): string {
  const q = new URLSearchParams({ limit: String(PAGE) });
  if (filters.method) q.set("method", filters.method);
  if (filters.endpoint) q.set("endpoint", filters.endpoint);
  if (filters.status) q.set("status", filters.status);
  if (filters.errors) q.set("errors", "true");
  if (filters.since) q.set("from", new Date(Date.now() - Number(filters.since) * 60000).toISOString());
  if (before) q.set("before", before);
  return `/api/v1/requests/logs?${q}`;
}

function size(bytes: number): string {
  return bytes < 1024 ? `${bytes} B` : bytes < 1048576 ? `${(bytes / 1024).toFixed(1)} KB` : `${(bytes / 1048576).toFixed(1)} MB`;
}

/**
 * The instance's request log, newest first: filters, older pages on
 * demand, and every 5 s the newest page again, merged in by record id (the
 * records already shown stay; a record is never shown twice).
 */
export function Logs() {
  const [filters, setFilters] = useState<Filters>({ method: "", endpoint: "", status: "", errors: false, since: "60" });
  const [records, setRecords] = useState<LogRecord[]>([]);
  const [next, setNext] = useState<string | null>(null);
  const [state, setState] = useState<"loading" | "ready" | "error">("loading");
  const [error, setError] = useState("");
  const [live, setLive] = useState(true);
  const [endpoints, setEndpoints] = useState<string[]>([]);
  // The filters the records on screen were read with: a refresh that
  // answers after the filters changed is dropped.
  const shown = useRef(filters);

  useEffect(() => {
    const from = new Date(Date.now() - 86400000).toISOString();
    api<{ endpoints: { endpoint: string }[] }>(`/api/v1/requests/analytics?bucket=day&from=${encodeURIComponent(from)}`)
      .then((a) => setEndpoints([...new Set(a.endpoints.map((e) => e.endpoint))].sort()))
      .catch(() => setEndpoints([]));
  }, []);

  useEffect(() => {
    shown.current = filters;
    setState("loading");
    api<Page>(query(filters, null)).then(
      (page) => {
        if (shown.current !== filters) return;
        setRecords(page.logs);
        setNext(page.next_before);
        setState("ready");
      },
      (err: unknown) => {
        if (shown.current !== filters) return;
        setError(err instanceof Error ? err.message : String(err));
        setState("error");
      },
    );
  }, [filters]);

  useEffect(() => {
    if (!live || state !== "ready") return;
    const timer = setInterval(() => {
      const asked = filters;
      api<Page>(query(asked, null)).then(
        (page) => {
          if (shown.current !== asked) return;
          setRecords((old) => {
            const seen = new Set(old.map(keyOf));
            const fresh = page.logs.filter((r) => !seen.has(keyOf(r)));
            return fresh.length ? [...fresh, ...old] : old;
          });
        },
        () => {
          // The next tick tries again; the records shown stay.
        },
      );
    }, REFRESH_MS);
    return () => clearInterval(timer);
  }, [live, state, filters]);

  async function older() {
    if (!next) return;
    try {
      const page = await api<Page>(query(filters, next));
      setRecords((old) => {
        const seen = new Set(old.map(keyOf));
        return [...old, ...page.logs.filter((r) => !seen.has(keyOf(r)))];
      });
      setNext(page.next_before);
    } catch (err) {
      setError(err instanceof Error ? err.message : String(err));
      setState("error");
    }
  }

  const set = (patch: Partial<Filters>) => setFilters({ ...filters, ...patch });
  return (
    <div class="logs">
      <form class="filters" onSubmit={(e) => e.preventDefault()} aria-label="Filters">
        <label>
          Method
          <select value={filters.method} onChange={(e) => set({ method: e.currentTarget.value })}>
            {METHODS.map((m) => (
              <option value={m}>{m || "Any"}</option>
            ))}
          </select>
        </label>
        <label>
          Endpoint
          <select value={filters.endpoint} onChange={(e) => set({ endpoint: e.currentTarget.value })}>
            <option value="">Any</option>
            {endpoints.map((e) => (
              <option value={e}>{e}</option>
            ))}
          </select>
        </label>
        <label>
          Status
          <input
            inputMode="numeric"
            placeholder="any"
            value={filters.status}
            onChange={(e) => set({ status: e.currentTarget.value.replace(/\D/g, "").slice(0, 3) })}
          />
        </label>
        <label>
          Since
          <select value={filters.since} onChange={(e) => set({ since: e.currentTarget.value })}>
            {SINCE.map(([value, label]) => (
              <option value={value}>{label}</option>
            ))}
          </select>
        </label>
        <label class="check">
          <input type="checkbox" checked={filters.errors} onChange={(e) => set({ errors: e.currentTarget.checked })} />
          Errors only
        </label>
        <label class="check">
          <input type="checkbox" checked={live} onChange={(e) => setLive(e.currentTarget.checked)} />
          Refresh every 5 s
        </label>
      </form>
      {state === "loading" && (
        <p class="muted" aria-busy="true">
          Loading…
        </p>
      )}
      {state === "error" && (
        <p class="error" role="alert">
          {error}
        </p>
      )}
      {state === "ready" && records.length === 0 && <p class="muted">No requests match these filters.</p>}
      {state === "ready" && records.length > 0 && (
        <>
          <table data-testid="log-table">
            <Head columns={["Time", "Method", "Endpoint", "Table", "Status", { label: "Latency", numeric: true }, { label: "In / out", numeric: true }]} />
            <tbody>
              {records.map((r) => (
                <tr key={keyOf(r)} class={r.status >= 400 ? "failed" : undefined}>
                  <td>{new Date(r.at).toLocaleTimeString()}</td>
                  <td>{r.method}</td>
                  <td>
                    <code>{r.endpoint}</code>
                  </td>
                  <td>{r.table ?? ""}</td>
                  <td>{r.status}</td>
                  <td class="num">{r.latency_ms.toFixed(1)} ms</td>
                  <td class="num">
                    {size(r.bytes_in)} / {size(r.bytes_out)}
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
          {next && (
            <button type="button" class="secondary" onClick={() => void older()}>
              Older requests
            </button>
          )}
        </>
      )}
    </div>
  );
}
