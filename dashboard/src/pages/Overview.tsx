import { useState } from "preact/hooks";
import { api, health } from "../api";
import { Show, useLoaded } from "../load";
import { TimeChart } from "../chart";
import { Failure } from "../ui";

interface Instance {
  version: string;
  urls: Record<string, string>;
  anon_key: string;
  counts: Record<string, number>;
  request_log: { enabled: boolean; sink?: string };
}

interface Secrets {
  service_key: string;
  s3: { endpoint: string; access_key_id: string; secret_access_key: string };
}

interface Analytics {
  totals: { requests: number };
  series: { at: string; requests: number }[];
}

function uptime(seconds: number): string {
  const days = Math.floor(seconds / 86400);
  const hours = Math.floor((seconds % 86400) / 3600);
  const minutes = Math.floor((seconds % 3600) / 60);
  return days > 0 ? `${days} d ${hours} h` : hours > 0 ? `${hours} h ${minutes} min` : `${minutes} min`;
}

/** The last hour by the minute, with the minutes that had no request as 0. */
async function lastHour(): Promise<{ times: number[]; values: number[]; total: number }> {
  const now = Math.floor(Date.now() / 60000) * 60;
  const from = new Date((now - 59 * 60) * 1000).toISOString();
  const answer = await api<Analytics>(`/api/v1/requests/analytics?bucket=minute&from=${encodeURIComponent(from)}`);
  const byMinute = new Map(answer.series.map((s) => [Math.floor(Date.parse(s.at) / 1000), s.requests]));
  const times: number[] = [];
  const values: number[] = [];
  for (let t = now - 59 * 60; t <= now; t += 60) {
    times.push(t);
    values.push(byMinute.get(t) ?? 0);
  }
  return { times, values, total: answer.totals.requests };
}

const COUNTS: [string, string][] = [
  ["tables", "Tables"],
  ["users", "Users"],
  ["buckets", "Buckets"],
  ["objects", "Objects"],
  ["functions", "Functions"],
  ["projects", "Projects"],
  ["admins", "Admins"],
];

export function Overview() {
  const status = useLoaded(health);
  const instance = useLoaded(() => api<Instance>("/api/v1/instance"));
  const hour = useLoaded(lastHour);
  const [secrets, setSecrets] = useState<Secrets | null>(null);
  const [revealError, setRevealError] = useState<string | null>(null);

  async function reveal() {
    setRevealError(null);
    try {
      setSecrets(await api<Secrets>("/api/v1/instance/secrets", { method: "POST" }));
    } catch (err) {
      setRevealError(err instanceof Error ? err.message : String(err));
    }
  }

  return (
    <div class="overview">
      <section>
        <h2>Health</h2>
        <Show loaded={status}>
          {(h) => (
            <dl class="facts">
              <dt>Status</dt>
              <dd data-testid="status">{h.status}</dd>
              <dt>Version</dt>
              <dd data-testid="version">{h.version}</dd>
              <dt>Up for</dt>
              <dd>{uptime(h.uptime_seconds)}</dd>
              <dt>Database</dt>
              <dd>
                {h.database.reachable
                  ? `reachable${h.database.latency_ms !== undefined ? ` (${h.database.latency_ms.toFixed(1)} ms)` : ""}`
                  : "unreachable"}
              </dd>
              <dt>Object storage</dt>
              <dd>{h.storage?.backend ?? "—"}</dd>
            </dl>
          )}
        </Show>
      </section>
      <Show loaded={instance}>
        {(i) => (
          <>
            <section>
              <h2>Counts</h2>
              <ul class="counts">
                {COUNTS.map(([key, label]) => (
                  <li key={key} data-testid={`count-${key}`}>
                    <strong>{i.counts[key] ?? 0}</strong> {label}
                  </li>
                ))}
              </ul>
            </section>
            <section>
              <h2>Connect</h2>
              <dl class="facts">
                <dt>API URL</dt>
                <dd>
                  <code>{i.urls.api}</code>
                </dd>
                <dt>S3 endpoint</dt>
                <dd>
                  <code>{i.urls.s3}</code>
                </dd>
                <dt>Anon key</dt>
                <dd>
                  <code class="key" data-testid="anon-key">
                    {i.anon_key}
                  </code>
                </dd>
                <dt>Service key, S3 secret</dt>
                <dd>
                  {secrets ? (
                    <div class="secrets" data-testid="secrets">
                      <code class="key">{secrets.service_key}</code>
                      <code>
                        {secrets.s3.access_key_id} / {secrets.s3.secret_access_key}
                      </code>
                    </div>
                  ) : (
                    <button type="button" onClick={() => void reveal()}>
                      Reveal
                    </button>
                  )}
                  <Failure text={revealError} />
                </dd>
              </dl>
            </section>
          </>
        )}
      </Show>
      <section>
        <h2>Requests in the last hour</h2>
        <Show loaded={hour}>
          {(h) => (
            <>
              <p class="muted" data-testid="requests-hour">
                {h.total} requests
              </p>
              <TimeChart times={h.times} values={h.values} label="Requests per minute" />
            </>
          )}
        </Show>
      </section>
    </div>
  );
}
