import { useEffect, useState } from "preact/hooks";
import { api, asAdmin, messageOf, uploadWithProgress } from "../api";
import { NoteLine, Failure, useHashParts, Head } from "../ui";

/** A bucket as storage-js's `listBuckets` returns it. */
interface Bucket {
  id: string;
  name: string;
  public: boolean;
  file_size_limit: number | null;
  allowed_mime_types: string[] | null;
}

/** A folder (`id` null) or an object in a listing. */
interface Entry {
  name: string;
  id: string | null;
  updated_at: string | null;
  metadata: { size?: number; mimetype?: string } | null;
}

interface S3Key {
  access_key_id: string;
  user_id: string | null;
  description: string;
  created_at: string;
}

interface Upload {
  name: string;
  fraction: number;
  error?: string;
  done?: boolean;
}

const JSON_HEADERS = { "content-type": "application/json" };

function encodePath(path: string): string {
  return path.split("/").map(encodeURIComponent).join("/");
}

function size(bytes: number | undefined): string {
  if (bytes === undefined) return "";
  return bytes < 1024 ? `${bytes} B` : bytes < 1048576 ? `${(bytes / 1024).toFixed(1)} KB` : `${(bytes / 1048576).toFixed(1)} MB`;
}

function go(bucket: string | null, prefix = "") {
  const parts = ["storage", ...(bucket ? [bucket, ...prefix.split("/").filter(Boolean)] : [])];
  location.hash = `#/${parts.map(encodeURIComponent).join("/")}`;
}

export function Storage() {
  // `#/storage/<bucket>/<folder...>`.
  const parts = useHashParts();
  const at = { bucket: parts[0] || null, prefix: parts.slice(1).filter(Boolean).join("/") };
  const [buckets, setBuckets] = useState<Bucket[] | null>(null);
  const [error, setError] = useState("");
  const [version, setVersion] = useState(0);
  useEffect(() => {
    asAdmin("/storage/v1/bucket")
      .then((r) => r.json())
      .then((list: Bucket[]) => setBuckets(list), (err: unknown) => setError(messageOf(err)));
  }, [version]);
  const bucket = buckets?.find((b) => b.id === at.bucket) ?? null;
  return (
    <div class="tables">
      <aside class="side" aria-label="Buckets">
        <Failure text={error} />
        {!buckets && !error && <p class="muted">Loading…</p>}
        {buckets?.length === 0 && <p class="muted">No buckets yet.</p>}
        <ul class="tree" data-testid="buckets">
          {buckets?.map((b) => (
            <li>
              <a href={`#/storage/${encodeURIComponent(b.id)}`} aria-current={b.id === at.bucket ? "page" : undefined}>
                {b.name}
              </a>
              <span class="type"> {b.public ? "public" : "private"}</span>
            </li>
          ))}
        </ul>
        <NewBucket onCreated={(id) => (setVersion(version + 1), go(id))} />
      </aside>
      <section class="work">
        {bucket ? (
          <>
            <Browser key={`${bucket.id}/${at.prefix}`} bucket={bucket} prefix={at.prefix} />
            <BucketSettings
              key={`${bucket.id}.settings`}
              bucket={bucket}
              onChanged={(gone) => {
                setVersion(version + 1);
                if (gone) go(null);
              }}
            />
          </>
        ) : (
          <p class="muted">{at.bucket ? `No bucket ${at.bucket}.` : "Choose a bucket, or make one."}</p>
        )}
        <S3Keys />
      </section>
    </div>
  );
}

function NewBucket(props: { onCreated: (id: string) => void }) {
  const [name, setName] = useState("");
  const [isPublic, setPublic] = useState(false);
  const [limit, setLimit] = useState("");
  const [types, setTypes] = useState("");
  const [error, setError] = useState("");
  async function create(event: Event) {
    event.preventDefault();
    try {
      await asAdmin("/storage/v1/bucket", {
        method: "POST",
        headers: JSON_HEADERS,
        body: JSON.stringify({
          id: name,
          name,
          public: isPublic,
          file_size_limit: limit ? Math.round(Number(limit) * 1048576) : null,
          allowed_mime_types: types ? types.split(",").map((t) => t.trim()) : null,
        }),
      });
      setName("");
      setError("");
      props.onCreated(name);
    } catch (err) {
      setError(messageOf(err));
    }
  }
  return (
    <form class="inline" onSubmit={(e) => void create(e)} aria-label="New bucket">
      <h2>New bucket</h2>
      <label>
        Name
        <input required value={name} onInput={(e) => setName(e.currentTarget.value)} />
      </label>
      <label class="check">
        <input type="checkbox" checked={isPublic} onChange={(e) => setPublic(e.currentTarget.checked)} />
        Public (anyone can download by URL)
      </label>
      <label>
        Size limit per file (MB)
        <input inputMode="decimal" value={limit} placeholder="none" onInput={(e) => setLimit(e.currentTarget.value)} />
      </label>
      <label>
        Allowed types
        <input value={types} placeholder="e.g. image/*, application/pdf" onInput={(e) => setTypes(e.currentTarget.value)} />
      </label>
      <Failure text={error} />
      <button type="submit">Create bucket</button>
    </form>
  );
}

function Browser(props: { bucket: Bucket; prefix: string }) {
  const { bucket, prefix } = props;
  const [entries, setEntries] = useState<Entry[] | null>(null);
  const [error, setError] = useState("");
  const [version, setVersion] = useState(0);
  const [uploads, setUploads] = useState<Upload[]>([]);
  const [dragging, setDragging] = useState(false);
  const [message, setMessage] = useState<{ error: boolean; text: string } | null>(null);
  const [link, setLink] = useState<string | null>(null);

  useEffect(() => {
    asAdmin(`/storage/v1/object/list/${encodeURIComponent(bucket.id)}`, {
      method: "POST",
      headers: JSON_HEADERS,
      body: JSON.stringify({ prefix, limit: 1000, offset: 0, sortBy: { column: "name", order: "asc" } }),
    })
      .then((r) => r.json())
      .then(
        (list: Entry[]) => setEntries(list.filter((e) => e.name !== ".emptyFolderPlaceholder")),
        (err: unknown) => setError(messageOf(err)),
      );
  }, [version]);

  const pathOf = (name: string) => (prefix ? `${prefix}/${name}` : name);
  const objectUrl = (name: string) => `/storage/v1/object/${encodeURIComponent(bucket.id)}/${encodePath(pathOf(name))}`;

  async function upload(files: FileList | File[]) {
    const list = Array.from(files);
    setUploads(list.map((f) => ({ name: f.name, fraction: 0 })));
    await Promise.all(
      list.map((file, i) =>
        uploadWithProgress(objectUrl(file.name), file, (fraction) =>
          setUploads((now) => now.map((u, j) => (j === i ? { ...u, fraction } : u))),
        ).then(
          () => setUploads((now) => now.map((u, j) => (j === i ? { ...u, done: true } : u))),
          (err: unknown) => setUploads((now) => now.map((u, j) => (j === i ? { ...u, error: messageOf(err) } : u))),
        ),
      ),
    );
    setVersion((v) => v + 1);
  }

  async function download(entry: Entry) {
    try {
      const response = await asAdmin(objectUrl(entry.name));
      const url = URL.createObjectURL(await response.blob());
      const anchor = document.createElement("a");
      anchor.href = url;
      anchor.download = entry.name;
      anchor.click();
      setTimeout(() => URL.revokeObjectURL(url), 60000);
    } catch (err) {
      setMessage({ error: true, text: messageOf(err) });
    }
  }

  async function sign(entry: Entry) {
    try {
      const response = await asAdmin(
        `/storage/v1/object/sign/${encodeURIComponent(bucket.id)}/${encodePath(pathOf(entry.name))}`,
        { method: "POST", headers: JSON_HEADERS, body: JSON.stringify({ expiresIn: 3600 }) },
      );
      const { signedURL } = (await response.json()) as { signedURL: string };
      setLink(`${location.origin}/storage/v1${signedURL}`);
    } catch (err) {
      setMessage({ error: true, text: messageOf(err) });
    }
  }

  async function move(entry: Entry) {
    const to = prompt(`Move ${pathOf(entry.name)} to:`, pathOf(entry.name));
    if (!to || to === pathOf(entry.name)) return;
    try {
      await asAdmin("/storage/v1/object/move", {
        method: "POST",
        headers: JSON_HEADERS,
        body: JSON.stringify({ bucketId: bucket.id, sourceKey: pathOf(entry.name), destinationKey: to }),
      });
      setMessage({ error: false, text: `Moved to ${to}.` });
      setVersion(version + 1);
    } catch (err) {
      setMessage({ error: true, text: messageOf(err) });
    }
  }

  async function remove(entry: Entry) {
    if (!confirm(`Delete ${pathOf(entry.name)}?`)) return;
    try {
      await asAdmin(`/storage/v1/object/${encodeURIComponent(bucket.id)}`, {
        method: "DELETE",
        headers: JSON_HEADERS,
        body: JSON.stringify({ prefixes: [pathOf(entry.name)] }),
      });
      setVersion(version + 1);
    } catch (err) {
      setMessage({ error: true, text: messageOf(err) });
    }
  }

  const crumbs = prefix ? prefix.split("/") : [];
  return (
    <div class="browser">
      <h2>
        <a href={`#/storage/${encodeURIComponent(bucket.id)}`}>{bucket.name}</a>
        {crumbs.map((part, i) => (
          <>
            {" / "}
            <a href={`#/storage/${[bucket.id, ...crumbs.slice(0, i + 1)].map(encodeURIComponent).join("/")}`}>{part}</a>
          </>
        ))}
      </h2>
      <div
        class={dragging ? "drop dragging" : "drop"}
        data-testid="drop-zone"
        onDragOver={(e) => {
          e.preventDefault();
          setDragging(true);
        }}
        onDragLeave={() => setDragging(false)}
        onDrop={(e) => {
          e.preventDefault();
          setDragging(false);
          if (e.dataTransfer?.files.length) void upload(e.dataTransfer.files);
        }}
      >
        <label>
          Upload files (or drop them here)
          <input type="file" multiple onChange={(e) => e.currentTarget.files && void upload(e.currentTarget.files)} />
        </label>
      </div>
      {uploads.length > 0 && (
        <ul class="uploads" aria-label="Uploads">
          {uploads.map((u) => (
            <li>
              {u.name}{" "}
              <progress max={1} value={u.fraction} aria-label={`Upload of ${u.name}`} />{" "}
              {u.error ? <span class="error">{u.error}</span> : u.done ? <span class="ok">uploaded</span> : `${Math.round(u.fraction * 100)}%`}
            </li>
          ))}
        </ul>
      )}
      <NoteLine note={message} />
      {link && (
        <p class="signed">
          Signed link (valid for an hour):{" "}
          <input readOnly value={link} aria-label="Signed link" onFocus={(e) => e.currentTarget.select()} />
        </p>
      )}
      <Failure text={error} />
      {!entries && !error && <p class="muted">Loading…</p>}
      {entries?.length === 0 && <p class="muted">Nothing here yet.</p>}
      {entries && entries.length > 0 && (
        <table data-testid="objects">
          <Head columns={["Name", "Type", { label: "Size", numeric: true }, "Updated", { label: "Actions", hidden: true }]} />
          <tbody>
            {entries.map((e) =>
              e.id === null ? (
                <tr>
                  <td>
                    <a href={`#/storage/${[bucket.id, ...crumbs, e.name].map(encodeURIComponent).join("/")}`}>{e.name}/</a>
                  </td>
                  <td class="muted">folder</td>
                  <td />
                  <td />
                  <td />
                </tr>
              ) : (
                <tr>
                  <td>{e.name}</td>
                  <td>{e.metadata?.mimetype ?? ""}</td>
                  <td class="num">{size(e.metadata?.size)}</td>
                  <td>{e.updated_at ? new Date(e.updated_at).toLocaleString() : ""}</td>
                  <td class="actions">
                    <button type="button" class="link" onClick={() => void download(e)}>
                      Download
                    </button>
                    <button type="button" class="link" onClick={() => void sign(e)}>
                      Signed link
                    </button>
                    <button type="button" class="link" onClick={() => void move(e)}>
                      Move
                    </button>
                    <button type="button" class="link danger" onClick={() => void remove(e)}>
                      Delete
                    </button>
                  </td>
                </tr>
              ),
            )}
          </tbody>
        </table>
      )}
    </div>
  );
}

function BucketSettings(props: { bucket: Bucket; onChanged: (gone: boolean) => void }) {
  const { bucket } = props;
  const [message, setMessage] = useState<{ error: boolean; text: string } | null>(null);
  async function call(path: string, method: string, body: unknown | undefined, done: string, gone = false) {
    try {
      await asAdmin(path, {
        method,
        headers: body === undefined ? undefined : JSON_HEADERS,
        body: body === undefined ? undefined : JSON.stringify(body),
      });
      setMessage({ error: false, text: done });
      props.onChanged(gone);
    } catch (err) {
      setMessage({ error: true, text: messageOf(err) });
    }
  }
  const base = `/storage/v1/bucket/${encodeURIComponent(bucket.id)}`;
  const [limit, setLimit] = useState(bucket.file_size_limit ? String(bucket.file_size_limit / 1048576) : "");
  const [types, setTypes] = useState(bucket.allowed_mime_types?.join(", ") ?? "");
  function saveLimits(event: Event) {
    event.preventDefault();
    const bytes = limit.trim() ? Math.round(Number(limit) * 1048576) : null;
    if (bytes !== null && !(bytes > 0)) {
      setMessage({ error: true, text: "The size limit is a number of megabytes, or empty for none." });
      return;
    }
    const allowed = types
      .split(",")
      .map((t) => t.trim())
      .filter(Boolean);
    // null clears a limit; the API keeps what a request leaves out.
    void call(base, "PUT", { file_size_limit: bytes, allowed_mime_types: allowed.length ? allowed : null }, "Limits saved.");
  }
  return (
    <section class="settings">
      <h3>Bucket settings</h3>
      <p class="muted" data-testid="bucket-limits">
        {bucket.file_size_limit ? `Files up to ${size(bucket.file_size_limit)}` : "No size limit"}
        {bucket.allowed_mime_types?.length ? `; types ${bucket.allowed_mime_types.join(", ")}` : "; any type"}.
      </p>
      <form class="inline-row" aria-label="Bucket limits" onSubmit={saveLimits}>
        <label>
          Size limit per file (MB)
          <input inputMode="decimal" value={limit} placeholder="none" onInput={(e) => setLimit(e.currentTarget.value)} />
        </label>
        <label>
          Allowed types
          <input value={types} placeholder="any, or e.g. image/*, application/pdf" onInput={(e) => setTypes(e.currentTarget.value)} />
        </label>
        <button type="submit" class="secondary">
          Save limits
        </button>
      </form>
      <label class="check">
        <input
          type="checkbox"
          checked={bucket.public}
          onChange={(e) =>
            void call(base, "PUT", { public: e.currentTarget.checked }, e.currentTarget.checked ? "The bucket is public." : "The bucket is private.")
          }
        />
        Public
      </label>
      <NoteLine note={message} />
      <div class="buttons">
        <button
          type="button"
          class="secondary"
          onClick={() => confirm(`Delete every file in ${bucket.name}?`) && void call(`${base}/empty`, "POST", undefined, "Emptied.")}
        >
          Empty bucket
        </button>
        <button
          type="button"
          class="danger-button"
          onClick={() => confirm(`Delete the bucket ${bucket.name}? It must be empty.`) && void call(base, "DELETE", undefined, "Deleted.", true)}
        >
          Delete bucket
        </button>
      </div>
    </section>
  );
}

function S3Keys() {
  const [keys, setKeys] = useState<S3Key[] | null>(null);
  const [error, setError] = useState("");
  const [version, setVersion] = useState(0);
  const [created, setCreated] = useState<{ access_key_id: string; secret_access_key: string } | null>(null);
  const [description, setDescription] = useState("");
  useEffect(() => {
    api<{ keys: S3Key[] }>("/api/v1/s3/keys").then(
      (k) => setKeys(k.keys),
      (err: unknown) => setError(messageOf(err)),
    );
  }, [version]);
  async function create(event: Event) {
    event.preventDefault();
    try {
      setCreated(
        await api("/api/v1/s3/keys", {
          method: "POST",
          headers: JSON_HEADERS,
          body: JSON.stringify({ description: description || undefined }),
        }),
      );
      setDescription("");
      setVersion(version + 1);
    } catch (err) {
      setError(messageOf(err));
    }
  }
  async function revoke(key: S3Key) {
    if (!confirm(`Revoke ${key.access_key_id}? Tools using it stop working at once.`)) return;
    try {
      await api(`/api/v1/s3/keys/${encodeURIComponent(key.access_key_id)}`, { method: "DELETE" });
      setVersion(version + 1);
    } catch (err) {
      setError(messageOf(err));
    }
  }
  return (
    <section class="s3-keys">
      <h2>S3 access keys</h2>
      <Failure text={error} />
      {created && (
        <p class="ok" role="status" data-testid="new-s3-key">
          New key <code>{created.access_key_id}</code>, secret <code>{created.secret_access_key}</code>: copy the secret
          now, it is not shown again.
        </p>
      )}
      {keys?.length === 0 && <p class="muted">No keys besides the service key (Overview reveals it).</p>}
      {keys && keys.length > 0 && (
        <table>
          <Head columns={["Access key", "Acts as", "Description", { label: "Actions", hidden: true }]} />
          <tbody>
            {keys.map((k) => (
              <tr>
                <td>
                  <code>{k.access_key_id}</code>
                </td>
                <td>{k.user_id ?? "service role"}</td>
                <td>{k.description}</td>
                <td>
                  <button type="button" class="link danger" onClick={() => void revoke(k)}>
                    Revoke
                  </button>
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      <form class="inline-row" onSubmit={(e) => void create(e)} aria-label="New S3 key">
        <label>
          Description
          <input value={description} onInput={(e) => setDescription(e.currentTarget.value)} />
        </label>
        <button type="submit" class="secondary">
          New S3 key
        </button>
      </form>
    </section>
  );
}
