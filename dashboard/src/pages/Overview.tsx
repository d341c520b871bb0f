import { health } from "../api";
import { Show, useLoaded } from "../load";

function uptime(seconds: number): string {
  const days = Math.floor(seconds / 86400);
  const hours = Math.floor((seconds % 86400) / 3600);
  const minutes = Math.floor((seconds % 3600) / 60);
  return days > 0 ? `${days} d ${hours} h` : hours > 0 ? `${hours} h ${minutes} min` : `${minutes} min`;
}

export function Overview() {
  const loaded = useLoaded(health);
  return (
    <Show loaded={loaded}>
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
              ? `reachable${h.database.latency_ms !== undefined ? ` (${h.database.latency_ms} ms)` : ""}`
              : "unreachable"}
          </dd>
          <dt>Object storage</dt>
          <dd>{h.storage?.backend ?? "—"}</dd>
        </dl>
      )}
    </Show>
  );
}
