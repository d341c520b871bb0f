import { useEffect, useRef, useState } from "preact/hooks";
import { api, ApiError, asAdmin, messageOf } from "../api";
import { Editor, type EditorHandle } from "../editor";
import { Show, useLoaded } from "../load";
import { NoteLine, Failure, useHashParts, Head } from "../ui";

interface FunctionRow {
  name: string;
  version: number | null;
  previous_version: number | null;
  verify_jwt: boolean;
  memory_mb: number | null;
  time_ms: number | null;
  concurrency: number | null;
  allowed_hosts: string[];
  env: Record<string, string>;
  updated_at: string;
  max_attempts: number;
}

interface Version {
  version: number;
  kind: string;
  entry: string;
  created_by: string;
  created_at: string;
}

interface Details extends FunctionRow {
  active_version: number | null;
  versions: Version[];
  secrets: string[];
}

interface LogRecord {
  id: number;
  at: string;
  version: number | null;
  kind: string;
  level: string | null;
  message: string | null;
  status: number | null;
  duration_ms: number | null;
}

interface Diagnostic {
  file: string;
  line: number;
  column: number;
  message: string;
}

const NAME = /^[a-z0-9][a-z0-9_-]{0,62}$/;
const STARTER = `import { serve } from "selfdb";

// Runs for each request to /functions/v1/<name>, as the caller (RLS applies).
serve(async (request: Request) => {
  const { name = "world" } = await request.json().catch(() => ({}));
  return new Response(JSON.stringify({ message: \`Hello \${name}!\` }), {
    headers: { "content-type": "application/json" },
  });
});
`;

function fnPath(name: string, rest = ""): string {
  return `/api/v1/functions/${encodeURIComponent(name)}${rest}`;
}

const TABS: [string, string][] = [
  ["code", "Code"],
  ["invoke", "Invoke"],
  ["logs", "Logs"],
  ["versions", "Versions"],
  ["settings", "Settings"],
  ["secrets", "Secrets"],
  ["triggers", "Triggers"],
];

export function Functions() {
  // `#/functions/<name>/<tab>`.
  const parts = useHashParts();
  const at = { name: parts[0] || null, tab: parts[1] || "code" };
  const [version, setVersion] = useState(0);
  // What the last deploy did: shown above the function it made, which
  // the deploy reloads (or, for a new function, opens).
  const [notice, setNotice] = useState<{ name: string; text: string } | null>(null);
  const list = useLoaded(() => api<{ functions: FunctionRow[] }>("/api/v1/functions"), version);
  return (
    <div class="tables">
      <aside class="side" aria-label="Functions">
        <a class="button" href="#/functions">
          New function
        </a>
        <Show loaded={list}>
          {({ functions }) =>
            functions.length === 0 ? (
              <p class="muted">No functions yet.</p>
            ) : (
              <ul class="tree" data-testid="function-list">
                {functions.map((f) => (
                  <li>
                    <a href={`#/functions/${encodeURIComponent(f.name)}/code`} aria-current={f.name === at.name ? "page" : undefined}>
                      {f.name}
                    </a>
                    <span class="type"> v{f.version ?? "–"}</span>
                  </li>
                ))}
              </ul>
            )
          }
        </Show>
      </aside>
      <section class="work">
        {at.name && notice?.name === at.name && (
          <p class="ok" role="status" data-testid="deploy-message">
            {notice.text}
          </p>
        )}
        {at.name ? (
          <FunctionView
            key={`${at.name}.${version}`}
            name={at.name}
            tab={at.tab}
            onChanged={() => setVersion(version + 1)}
            onDeployed={(name, text) => {
              setNotice({ name, text });
              setVersion(version + 1);
            }}
            onFailed={() => setNotice(null)}
          />
        ) : (
          <Deploy
            name={null}
            onDeployed={(name, text) => {
              setNotice({ name, text });
              setVersion(version + 1);
              location.hash = `#/functions/${encodeURIComponent(name)}/code`;
            }}
          />
        )}
      </section>
    </div>
  );
}

function FunctionView(props: {
  name: string;
  tab: string;
  onChanged: () => void;
  onDeployed: (name: string, text: string) => void;
  /** A deploy failed: the last success's notice no longer applies. */
  onFailed: () => void;
}) {
  const [version, setVersion] = useState(0);
  const details = useLoaded(() => api<Details>(fnPath(props.name)), version);
  const changed = () => {
    setVersion(version + 1);
    props.onChanged();
  };
  return (
    <>
      <h2>{props.name}</h2>
      <nav class="tabs" aria-label="Function views">
        {TABS.map(([tab, title]) => (
          <a href={`#/functions/${encodeURIComponent(props.name)}/${tab}`} aria-current={tab === props.tab ? "page" : undefined}>
            {title}
          </a>
        ))}
      </nav>
      <Show loaded={details}>
        {(d) =>
          props.tab === "invoke" ? (
            <Invoke name={d.name} />
          ) : props.tab === "logs" ? (
            <Logs name={d.name} />
          ) : props.tab === "versions" ? (
            <Versions details={d} onChanged={changed} />
          ) : props.tab === "settings" ? (
            <Settings details={d} onChanged={changed} />
          ) : props.tab === "secrets" ? (
            <Secrets details={d} onChanged={changed} />
          ) : props.tab === "triggers" ? (
            <Triggers name={d.name} />
          ) : (
            <Deploy name={d.name} details={d} onDeployed={props.onDeployed} onFailed={props.onFailed} />
          )
        }
      </Show>
    </>
  );
}

/** Write or open the code and deploy it: a new function (`name` null) or a new version. */
function Deploy(props: {
  name: string | null;
  details?: Details;
  onDeployed: (name: string, text: string) => void;
  onFailed?: () => void;
}) {
  const editor = useRef<EditorHandle | null>(null);
  const [name, setName] = useState(props.name ?? "");
  const [entry, setEntry] = useState("index.ts");
  const [source, setSource] = useState<string | null>(props.name ? null : STARTER);
  const [component, setComponent] = useState(false);
  const [busy, setBusy] = useState(false);
  // Only failures: a deploy that worked reloads this view and says so above it.
  const [message, setMessage] = useState<{ error: boolean; text: string; diagnostics?: Diagnostic[] } | null>(null);
  const active = props.details?.versions.find((v) => v.version === props.details?.active_version);

  useEffect(() => {
    if (!props.name || !active) return;
    if (active.kind !== "ts" && active.kind !== "js") {
      setComponent(true);
      setSource("");
      return;
    }
    api<{ entry: string; source: string }>(fnPath(props.name, `/versions/${active.version}/source`)).then(
      (s) => {
        setEntry(s.entry);
        setSource(s.source);
      },
      (err: unknown) => setMessage({ error: true, text: messageOf(err) }),
    );
  }, []);

  async function deploy(body: BodyInit, contentType: string, fileEntry?: string) {
    if (!NAME.test(name)) {
      setMessage({ error: true, text: "A name is lower-case letters, digits, - and _ (up to 63), starting with a letter or digit." });
      return;
    }
    setBusy(true);
    setMessage(null);
    editor.current?.markError(null);
    const query = fileEntry ? `?entry=${encodeURIComponent(fileEntry)}` : "";
    try {
      const deployed = await api<{ version: number; created: boolean; warnings?: string[] }>(fnPath(name, query), {
        method: "PUT",
        headers: { "content-type": contentType },
        body,
      });
      const warnings = deployed.warnings?.length ? ` ${deployed.warnings.join(" ")}` : "";
      props.onDeployed(
        name,
        (deployed.created
          ? `Version ${deployed.version} deployed and serving.`
          : `Unchanged: version ${deployed.version} already serves this code.`) + warnings,
      );
    } catch (err) {
      const diagnostics = err instanceof ApiError ? ((err.details as { errors?: Diagnostic[] } | null)?.errors ?? []) : [];
      if (diagnostics[0]) editor.current?.markAt(diagnostics[0].line, diagnostics[0].column);
      setMessage({ error: true, text: messageOf(err), diagnostics });
      props.onFailed?.();
    } finally {
      setBusy(false);
    }
  }

  async function fromFile(file: File) {
    const wasm = file.name.endsWith(".wasm");
    if (wasm) await deploy(file, "application/wasm");
    else await deploy(await file.text(), file.name.endsWith(".js") ? "text/javascript" : "application/typescript", file.name);
  }

  return (
    <div class="deploy">
      {!props.name && (
        <>
          <h2>New function</h2>
          <label class="short">
            Name
            <input value={name} onInput={(e) => setName(e.currentTarget.value)} placeholder="e.g. hello" />
          </label>
        </>
      )}
      {component ? (
        <p class="muted">Version {active?.version} was deployed as a WebAssembly component: upload a new one below.</p>
      ) : source === null ? (
        <p class="muted" aria-busy="true">
          Loading the code…
        </p>
      ) : (
        <>
          <p class="muted">
            <code>{entry}</code> · Ctrl+Enter deploys
          </p>
          <Editor
            initial={source}
            label="Function code"
            language="typescript"
            handle={editor}
            onRun={() => void deploy(editor.current?.text() ?? "", "application/typescript", entry)}
          />
        </>
      )}
      <div class="toolbar">
        {!component && source !== null && (
          <button type="button" disabled={busy} onClick={() => void deploy(editor.current?.text() ?? "", "application/typescript", entry)}>
            {busy ? "Deploying…" : "Deploy"}
          </button>
        )}
        <label>
          Or deploy a file (.ts, .js, .wasm)
          <input type="file" accept=".ts,.js,.mjs,.wasm" onChange={(e) => e.currentTarget.files?.[0] && void fromFile(e.currentTarget.files[0])} />
        </label>
      </div>
      {message && (
        <div class={message.error ? "error" : "ok"} role={message.error ? "alert" : "status"} data-testid="deploy-error">
          {message.text}
          {message.diagnostics && message.diagnostics.length > 0 && (
            <ul>
              {message.diagnostics.map((d) => (
                <li>
                  {d.file}:{d.line}:{d.column} {d.message}
                </li>
              ))}
            </ul>
          )}
        </div>
      )}
    </div>
  );
}

function Invoke(props: { name: string }) {
  const [method, setMethod] = useState("POST");
  const [path, setPath] = useState("");
  const [body, setBody] = useState('{"name": "SelfDB"}');
  const [answer, setAnswer] = useState<{ status: number; text: string } | null>(null);
  const [error, setError] = useState("");
  async function send(event: Event) {
    event.preventDefault();
    setError("");
    try {
      const response = await asAdmin(`/functions/v1/${encodeURIComponent(props.name)}${path}`, {
        method,
        headers: method === "GET" || method === "HEAD" ? undefined : { "content-type": "application/json" },
        body: method === "GET" || method === "HEAD" ? undefined : body,
      }).catch((err: unknown) => {
        // A function's own error status is an answer to show, not a failure.
        if (err instanceof ApiError) return new Response(err.message, { status: err.status });
        throw err;
      });
      setAnswer({ status: response.status, text: await response.text() });
    } catch (err) {
      setError(messageOf(err));
    }
  }
  return (
    <form class="invoke" onSubmit={(e) => void send(e)} aria-label="Invoke">
      <div class="toolbar">
        <label class="short">
          Method
          <select value={method} onChange={(e) => setMethod(e.currentTarget.value)}>
            {["GET", "POST", "PUT", "PATCH", "DELETE"].map((m) => (
              <option value={m}>{m}</option>
            ))}
          </select>
        </label>
        <label>
          Path after /functions/v1/{props.name}
          <input value={path} placeholder="/optional/sub/path?x=1" onInput={(e) => setPath(e.currentTarget.value)} />
        </label>
      </div>
      <label>
        Body
        <textarea rows={4} value={body} onInput={(e) => setBody(e.currentTarget.value)} />
      </label>
      <button type="submit">Send</button>
      <Failure text={error} />
      {answer && (
        <div data-testid="invoke-answer">
          <p>Status {answer.status}</p>
          <pre class="ran">{answer.text}</pre>
        </div>
      )}
    </form>
  );
}

/** The function's logs, newest last, followed live by long polls (`wait`). */
function Logs(props: { name: string }) {
  const [records, setRecords] = useState<LogRecord[]>([]);
  const [error, setError] = useState("");
  const [live, setLive] = useState(true);
  useEffect(() => {
    let running = true;
    const since = new Date(Date.now() - 3600000).toISOString();
    (async () => {
      let after = 0;
      let first = true;
      while (running) {
        try {
          const query = new URLSearchParams({ after: String(after), limit: "200" });
          if (first) query.set("since", since);
          else query.set("wait", "25");
          const page = await api<{ logs: LogRecord[]; next: number }>(fnPath(props.name, `/logs?${query}`));
          if (!running) return;
          first = false;
          after = page.next;
          if (page.logs.length) setRecords((old) => [...old, ...page.logs].slice(-1000));
          setError("");
          if (!live) return;
        } catch (err) {
          if (!running) return;
          setError(messageOf(err));
          await new Promise((resolve) => setTimeout(resolve, 3000));
        }
      }
    })();
    return () => {
      running = false;
    };
  }, [live]);
  return (
    <div class="fn-logs">
      <label class="check">
        <input type="checkbox" checked={live} onChange={(e) => setLive(e.currentTarget.checked)} />
        Follow new records
      </label>
      <Failure text={error} />
      {records.length === 0 ? (
        <p class="muted">No records in the last hour{live ? ": waiting for new ones…" : "."}</p>
      ) : (
        <table data-testid="function-logs">
          <Head columns={["Time", "Version", "Kind", "Message", "Status", { label: "Took", numeric: true }]} />
          <tbody>
            {records.map((r) => (
              <tr key={r.id} class={(r.status ?? 0) >= 400 || r.level === "error" ? "failed" : undefined}>
                <td>{new Date(r.at).toLocaleTimeString()}</td>
                <td>{r.version ?? ""}</td>
                <td>{r.level ? `${r.kind} (${r.level})` : r.kind}</td>
                <td>
                  <code>{r.message ?? ""}</code>
                </td>
                <td>{r.status ?? ""}</td>
                <td class="num">{r.duration_ms === null ? "" : `${r.duration_ms.toFixed(1)} ms`}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </div>
  );
}

function Versions(props: { details: Details; onChanged: () => void }) {
  const [error, setError] = useState("");
  async function rollback(version: number) {
    if (!confirm(`Serve version ${version} again?`)) return;
    try {
      await api(fnPath(props.details.name, "/rollback"), {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ version }),
      });
      props.onChanged();
    } catch (err) {
      setError(messageOf(err));
    }
  }
  async function remove() {
    if (prompt(`Delete the function ${props.details.name} and all its versions? Type its name to confirm.`) !== props.details.name) return;
    try {
      await api(fnPath(props.details.name), { method: "DELETE" });
      location.hash = "#/functions";
      props.onChanged();
    } catch (err) {
      setError(messageOf(err));
    }
  }
  return (
    <div>
      <Failure text={error} />
      <table data-testid="versions">
        <Head columns={["Version", "Kind", "Deployed by", "At", { label: "Actions", hidden: true }]} />
        <tbody>
          {[...props.details.versions].reverse().map((v) => (
            <tr>
              <td>
                {v.version}
                {v.version === props.details.active_version ? " (serving)" : ""}
              </td>
              <td>{v.kind}</td>
              <td>{v.created_by}</td>
              <td>{new Date(v.created_at).toLocaleString()}</td>
              <td>
                {v.version !== props.details.active_version && (
                  <button type="button" class="link" onClick={() => void rollback(v.version)}>
                    Roll back to this
                  </button>
                )}
              </td>
            </tr>
          ))}
        </tbody>
      </table>
      <button type="button" class="danger-button" onClick={() => void remove()}>
        Delete function
      </button>
    </div>
  );
}

function Settings(props: { details: Details; onChanged: () => void }) {
  const d = props.details;
  const [form, setForm] = useState({
    verify_jwt: d.verify_jwt,
    memory_mb: d.memory_mb?.toString() ?? "",
    time_ms: d.time_ms?.toString() ?? "",
    concurrency: d.concurrency?.toString() ?? "",
    allowed_hosts: d.allowed_hosts.join(", "),
    env: Object.entries(d.env)
      .map(([k, v]) => `${k}=${v}`)
      .join("\n"),
    max_attempts: d.max_attempts.toString(),
  });
  const [message, setMessage] = useState<{ error: boolean; text: string } | null>(null);
  const number = (text: string) => (text.trim() === "" ? null : Number(text));
  async function save(event: Event) {
    event.preventDefault();
    const env: Record<string, string> = {};
    for (const line of form.env.split("\n")) {
      const at = line.indexOf("=");
      if (at > 0) env[line.slice(0, at).trim()] = line.slice(at + 1);
    }
    try {
      await api(fnPath(d.name), {
        method: "PATCH",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({
          verify_jwt: form.verify_jwt,
          memory_mb: number(form.memory_mb),
          time_ms: number(form.time_ms),
          concurrency: number(form.concurrency),
          allowed_hosts: form.allowed_hosts
            .split(",")
            .map((h) => h.trim())
            .filter(Boolean),
          env,
          max_attempts: Number(form.max_attempts),
        }),
      });
      setMessage({ error: false, text: "Saved: new requests run with these settings." });
      props.onChanged();
    } catch (err) {
      setMessage({ error: true, text: messageOf(err) });
    }
  }
  const field = (key: keyof typeof form, label: string, hint = "") => (
    <label>
      {label}
      <input value={form[key] as string} placeholder={hint} onInput={(e) => setForm({ ...form, [key]: e.currentTarget.value })} />
    </label>
  );
  return (
    <form class="row-form" onSubmit={(e) => void save(e)} aria-label="Settings">
      <label class="check">
        <input type="checkbox" checked={form.verify_jwt} onChange={(e) => setForm({ ...form, verify_jwt: e.currentTarget.checked })} />
        Require a valid JWT (the anon key at least)
      </label>
      {field("memory_mb", "Memory (MB)", "the host's default")}
      {field("time_ms", "Time limit (ms)", "the host's default")}
      {field("concurrency", "Concurrent requests", "the host's default")}
      {field("allowed_hosts", "Hosts it may call (comma-separated)", "none")}
      {field("max_attempts", "Attempts for triggers and events")}
      <label>
        Environment (NAME=value per line; secrets go under Secrets)
        <textarea rows={4} value={form.env} onInput={(e) => setForm({ ...form, env: e.currentTarget.value })} />
      </label>
      <NoteLine note={message} />
      <button type="submit">Save settings</button>
    </form>
  );
}

function Secrets(props: { details: Details; onChanged: () => void }) {
  const [key, setKey] = useState("");
  const [value, setValue] = useState("");
  const [error, setError] = useState("");
  async function call(path: string, method: string, body?: unknown) {
    try {
      await api(fnPath(props.details.name, path), {
        method,
        headers: body === undefined ? undefined : { "content-type": "application/json" },
        body: body === undefined ? undefined : JSON.stringify(body),
      });
      props.onChanged();
    } catch (err) {
      setError(messageOf(err));
    }
  }
  return (
    <div>
      <p class="muted">Secrets are encrypted at rest and reach the function as environment variables; their values are never shown again.</p>
      <Failure text={error} />
      {props.details.secrets.length === 0 ? (
        <p class="muted">No secrets.</p>
      ) : (
        <ul data-testid="secrets">
          {props.details.secrets.map((name) => (
            <li>
              <code>{name}</code>{" "}
              <button type="button" class="link danger" onClick={() => void call(`/secrets/${encodeURIComponent(name)}`, "DELETE")}>
                Remove
              </button>
            </li>
          ))}
        </ul>
      )}
      <form
        class="inline-row"
        aria-label="Set a secret"
        onSubmit={(e) => {
          e.preventDefault();
          void call("/secrets", "PUT", { [key]: value }).then(() => (setKey(""), setValue("")));
        }}
      >
        <label>
          Name
          <input required value={key} onInput={(e) => setKey(e.currentTarget.value)} />
        </label>
        <label>
          Value
          <input required type="password" value={value} onInput={(e) => setValue(e.currentTarget.value)} />
        </label>
        <button type="submit" class="secondary">
          Set secret
        </button>
      </form>
    </div>
  );
}

function Triggers(props: { name: string }) {
  const [text, setText] = useState<string | null>(null);
  const [message, setMessage] = useState<{ error: boolean; text: string } | null>(null);
  const [dead, setDead] = useState<unknown[] | null>(null);
  useEffect(() => {
    api<{ triggers: unknown[] }>(fnPath(props.name, "/triggers")).then(
      (t) => setText(JSON.stringify(t.triggers, null, 2)),
      (err: unknown) => setMessage({ error: true, text: messageOf(err) }),
    );
    api<{ dead_letters: unknown[] }>(fnPath(props.name, "/dead-letters")).then(
      (d) => setDead(d.dead_letters ?? []),
      () => setDead([]),
    );
  }, []);
  async function save(event: Event) {
    event.preventDefault();
    try {
      let triggers: unknown;
      try {
        triggers = JSON.parse(text ?? "[]");
      } catch (err) {
        setMessage({ error: true, text: `Not JSON: ${messageOf(err)}` });
        return;
      }
      const saved = await api<{ triggers: unknown[] }>(fnPath(props.name, "/triggers"), {
        method: "PUT",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ triggers }),
      });
      setText(JSON.stringify(saved.triggers, null, 2));
      setMessage({ error: false, text: "Saved." });
    } catch (err) {
      setMessage({ error: true, text: messageOf(err) });
    }
  }
  return (
    <form class="row-form" onSubmit={(e) => void save(e)} aria-label="Triggers">
      <p class="muted">
        A JSON list: <code>{'{"on": "insert:public.orders"}'}</code>, <code>{'{"cron": "*/5 * * * *"}'}</code>,{" "}
        <code>{'{"event": "order.paid"}'}</code> or <code>{'{"setup": true}'}</code>.
      </p>
      {text === null ? (
        <p class="muted">Loading…</p>
      ) : (
        <label>
          Triggers
          <textarea rows={8} value={text} onInput={(e) => setText(e.currentTarget.value)} />
        </label>
      )}
      <NoteLine note={message} />
      <button type="submit">Save triggers</button>
      {dead && dead.length > 0 && (
        <section>
          <h3>Dead letters</h3>
          <pre class="ran">{JSON.stringify(dead, null, 2)}</pre>
        </section>
      )}
    </form>
  );
}
