import { useEffect, useRef, useState } from "preact/hooks";
import { api, instanceBasics, messageOf, onSession, refresh, session } from "../api";
import { Head } from "../ui";

/**
 * A live view of a table's changes or a channel's broadcasts, over the
 * same websocket supabase-js uses (`/realtime/v1/websocket`, Phoenix
 * frames, vsn 1.0.0), as the admin: the anon key opens the socket, the
 * admin's token joins (service role: every row, RLS aside), and a
 * refreshed token is pushed to the channel as realtime-js does.
 */

interface Message {
  at: string;
  kind: string;
  table: string;
  body: unknown;
}

interface Frame {
  topic: string;
  event: string;
  payload: Record<string, unknown>;
  ref: string | null;
  join_ref?: string | null;
}

type Status = "idle" | "connecting" | "joined" | "closed" | "error";

const HEARTBEAT_MS = 25000;
const KEPT = 200;

class Channel {
  private socket: WebSocket | null = null;
  private ref = 0;
  private joinRef = "";
  private heartbeat: ReturnType<typeof setInterval> | null = null;
  private stopSession: (() => void) | null = null;

  constructor(
    private readonly topic: string,
    private readonly config: Record<string, unknown>,
    private readonly on: { status: (s: Status, detail?: string) => void; message: (m: Message) => void },
  ) {}

  async open() {
    this.on.status("connecting");
    const { anon_key } = await instanceBasics();
    const signedIn = session() ?? (await refresh());
    if (!signedIn) {
      this.on.status("error", "signed out");
      return;
    }
    const scheme = location.protocol === "https:" ? "wss" : "ws";
    const socket = new WebSocket(
      `${scheme}://${location.host}/realtime/v1/websocket?apikey=${encodeURIComponent(anon_key)}&vsn=1.0.0`,
    );
    this.socket = socket;
    socket.onopen = () => {
      this.joinRef = this.nextRef();
      this.send({
        topic: this.topic,
        event: "phx_join",
        payload: { config: this.config, access_token: signedIn.accessToken },
        ref: this.joinRef,
        join_ref: this.joinRef,
      });
      this.heartbeat = setInterval(() => {
        this.send({ topic: "phoenix", event: "heartbeat", payload: {}, ref: this.nextRef() });
        // Nothing else on this page calls the API: the token is renewed
        // here before it expires (and pushed below).
        const current = session();
        if (current && current.expiresAt - Date.now() / 1000 < 90) void refresh();
      }, HEARTBEAT_MS);
      // The admin token lasts 10 minutes: each new one goes to the channel.
      this.stopSession = onSession((next) => {
        if (next) this.send({ topic: this.topic, event: "access_token", payload: { access_token: next.accessToken }, ref: this.nextRef() });
      });
    };
    socket.onmessage = (event) => this.receive(JSON.parse(String(event.data)) as Frame);
    socket.onerror = () => this.on.status("error", "the connection failed");
    socket.onclose = () => {
      this.cleanup();
      this.on.status("closed");
    };
  }

  close() {
    if (this.socket && this.socket.readyState === WebSocket.OPEN) {
      this.send({ topic: this.topic, event: "phx_leave", payload: {}, ref: this.nextRef() });
    }
    this.cleanup();
    // Closed on purpose: nothing more is reported.
    if (this.socket) {
      this.socket.onclose = null;
      this.socket.onerror = null;
      this.socket.onmessage = null;
      this.socket.close();
    }
  }

  private cleanup() {
    if (this.heartbeat) clearInterval(this.heartbeat);
    this.heartbeat = null;
    this.stopSession?.();
    this.stopSession = null;
  }

  private nextRef(): string {
    this.ref += 1;
    return String(this.ref);
  }

  private send(frame: Frame) {
    if (this.socket?.readyState === WebSocket.OPEN) this.socket.send(JSON.stringify(frame));
  }

  private receive(frame: Frame) {
    if (frame.topic !== this.topic) return;
    const at = new Date().toLocaleTimeString();
    if (frame.event === "phx_reply" && frame.ref === this.joinRef) {
      const status = frame.payload.status;
      const response = frame.payload.response as Record<string, unknown> | undefined;
      if (status === "ok") this.on.status("joined");
      else this.on.status("error", String(response?.reason ?? JSON.stringify(response)));
      return;
    }
    if (frame.event === "postgres_changes") {
      const data = frame.payload.data as Record<string, unknown>;
      this.on.message({
        at,
        kind: String(data.type),
        table: `${String(data.schema)}.${String(data.table)}`,
        body: data.type === "DELETE" ? data.old_record : data.record,
      });
    } else if (frame.event === "broadcast") {
      this.on.message({ at, kind: `broadcast ${String(frame.payload.event)}`, table: "", body: frame.payload.payload });
    } else if (frame.event === "system") {
      const payload = frame.payload;
      if (payload.status === "error") this.on.status("error", String(payload.message));
    } else if (frame.event === "phx_error" || frame.event === "phx_close") {
      this.on.status("closed");
    }
  }
}

export function Realtime() {
  const [mode, setMode] = useState<"changes" | "broadcast">("changes");
  const [schema, setSchema] = useState("public");
  const [tables, setTables] = useState<{ name: string; realtime: boolean }[]>([]);
  const [table, setTable] = useState("");
  const [event, setEvent] = useState("*");
  const [filter, setFilter] = useState("");
  const [channelName, setChannelName] = useState("room-1");
  const [status, setStatus] = useState<{ state: Status; detail?: string }>({ state: "idle" });
  const [messages, setMessages] = useState<Message[]>([]);
  const channel = useRef<Channel | null>(null);

  useEffect(() => {
    api<{ tables: { name: string; realtime: boolean }[] }>(`/api/v1/tables?schema=${encodeURIComponent(schema)}`).then(
      (t) => {
        setTables(t.tables);
        setTable((current) => current || t.tables[0]?.name || "");
      },
      (err: unknown) => setStatus({ state: "error", detail: messageOf(err) }),
    );
  }, [schema]);
  useEffect(() => () => channel.current?.close(), []);

  function listen(e: Event) {
    e.preventDefault();
    channel.current?.close();
    setMessages([]);
    const config =
      mode === "changes"
        ? {
            broadcast: { self: false },
            presence: { key: "" },
            postgres_changes: [{ event, schema, table, ...(filter ? { filter } : {}) }],
          }
        : { broadcast: { self: false }, presence: { key: "" }, postgres_changes: [] };
    const topic = mode === "changes" ? `realtime:dashboard-${schema}-${table}` : `realtime:${channelName}`;
    const opened = new Channel(topic, config, {
      status: (state, detail) => setStatus({ state, detail }),
      message: (m) => setMessages((old) => [m, ...old].slice(0, KEPT)),
    });
    channel.current = opened;
    void opened.open();
  }

  function stop() {
    channel.current?.close();
    channel.current = null;
    setStatus({ state: "idle" });
  }

  const selected = tables.find((t) => t.name === table);
  const listening = status.state === "connecting" || status.state === "joined";
  return (
    <div class="realtime">
      <form class="filters" onSubmit={listen} aria-label="Listen">
        <label>
          Listen to
          <select value={mode} onChange={(e) => setMode(e.currentTarget.value as "changes" | "broadcast")}>
            <option value="changes">a table's changes</option>
            <option value="broadcast">a broadcast channel</option>
          </select>
        </label>
        {mode === "changes" ? (
          <>
            <label>
              Schema
              <input value={schema} onChange={(e) => setSchema(e.currentTarget.value)} />
            </label>
            <label>
              Table
              <select aria-label="Table" value={table} onChange={(e) => setTable(e.currentTarget.value)}>
                {tables.map((t) => (
                  <option value={t.name}>{t.name}</option>
                ))}
              </select>
            </label>
            <label>
              Event
              <select value={event} onChange={(e) => setEvent(e.currentTarget.value)}>
                {["*", "INSERT", "UPDATE", "DELETE"].map((x) => (
                  <option value={x}>{x === "*" ? "all" : x}</option>
                ))}
              </select>
            </label>
            <label>
              Filter
              <input value={filter} placeholder="e.g. id=eq.1" onInput={(e) => setFilter(e.currentTarget.value)} />
            </label>
          </>
        ) : (
          <label>
            Channel
            <input value={channelName} onInput={(e) => setChannelName(e.currentTarget.value)} />
          </label>
        )}
        {/* Two elements, not one changing its type: a click on Stop would
            otherwise submit the form it has just turned into Listen. */}
        {listening ? (
          <button key="stop" type="button" class="secondary" onClick={stop}>
            Stop
          </button>
        ) : (
          <button key="listen" type="submit" disabled={mode === "changes" && !table}>
            Listen
          </button>
        )}
      </form>
      {mode === "changes" && selected && !selected.realtime && (
        <p class="error" role="alert">
          {schema}.{table} is not published to realtime: turn Realtime on under Tables → Structure.
        </p>
      )}
      <p class={status.state === "error" ? "error" : "muted"} data-testid="realtime-status" role="status">
        {status.state === "idle"
          ? "Not listening."
          : status.state === "connecting"
            ? "Connecting…"
            : status.state === "joined"
              ? "Listening: changes appear here as they happen."
              : status.state === "closed"
                ? "The connection closed."
                : `Error: ${status.detail ?? ""}`}
      </p>
      {messages.length > 0 && (
        <table data-testid="realtime-messages">
          <Head columns={["Time", "What", "Table", "Record"]} />
          <tbody>
            {messages.map((m) => (
              <tr>
                <td>{m.at}</td>
                <td>{m.kind}</td>
                <td>{m.table}</td>
                <td>
                  <code>{JSON.stringify(m.body)}</code>
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </div>
  );
}
