// The dashboard's only way to the host: documented APIs (`/api/v1`, and the
// Supabase-compatible ones), called with the signed-in admin's access token.
// The refresh token lives in an HttpOnly cookie the host sets: no script
// here ever holds it, and no key is built into these files.

export interface Admin {
  id: string;
  email: string;
}

export interface Session {
  accessToken: string;
  /** Unix seconds. */
  expiresAt: number;
  admin: Admin;
}

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    /** The error's `details`, when the route gives any. */
    readonly details: unknown = null,
  ) {
    super(message);
  }
}

let current: Session | null = null;
let refreshing: Promise<Session | null> | null = null;
const listeners = new Set<(session: Session | null) => void>();

export function session(): Session | null {
  return current;
}

/** Calls `listener` whenever the session starts, changes or ends. */
export function onSession(listener: (session: Session | null) => void): () => void {
  listeners.add(listener);
  return () => listeners.delete(listener);
}

function setSession(next: Session | null) {
  current = next;
  for (const listener of listeners) listener(next);
}

interface TokenBody {
  access_token: string;
  expires_at: number;
  admin: Admin;
}

function sessionOf(body: TokenBody): Session {
  return { accessToken: body.access_token, expiresAt: body.expires_at, admin: body.admin };
}

async function errorOf(response: Response): Promise<ApiError> {
  let code = `http_${response.status}`;
  let message = response.statusText || `the server answered ${response.status}`;
  let details: unknown = null;
  try {
    const body = await response.json();
    code = body?.error?.code ?? body?.error_code ?? code;
    message = body?.error?.message ?? body?.msg ?? body?.message ?? message;
    details = body?.error?.details ?? null;
  } catch {
    // Not JSON: the status says enough.
  }
  return new ApiError(response.status, code, message, details);
}

const JSON_HEADERS = { "content-type": "application/json" };

export async function signIn(email: string, password: string): Promise<Session> {
  const response = await fetch("/api/v1/admin/token?grant_type=password", {
    method: "POST",
    headers: JSON_HEADERS,
    body: JSON.stringify({ email, password }),
    credentials: "same-origin",
  });
  if (!response.ok) throw await errorOf(response);
  const signedIn = sessionOf(await response.json());
  setSession(signedIn);
  return signedIn;
}

/**
 * New tokens from the refresh cookie; `null` when there is no session to
 * resume. One refresh at a time: concurrent callers share it. When another
 * tab rotated the cookie a moment before (`refresh_token_stale`), the
 * browser holds the new one already: one more try takes it.
 */
export function refresh(): Promise<Session | null> {
  refreshing ??= (async () => {
    for (let attempt = 0; attempt < 2; attempt++) {
      const response = await fetch("/api/v1/admin/token?grant_type=refresh_token", {
        method: "POST",
        headers: JSON_HEADERS,
        body: "{}",
        credentials: "same-origin",
      });
      if (response.ok) {
        const next = sessionOf(await response.json());
        setSession(next);
        return next;
      }
      const error = await errorOf(response);
      if (error.code !== "refresh_token_stale") break;
    }
    setSession(null);
    return null;
  })().finally(() => {
    refreshing = null;
  });
  return refreshing;
}

export async function signOut(): Promise<void> {
  const headers: Record<string, string> = {};
  if (current) headers.authorization = `Bearer ${current.accessToken}`;
  try {
    await fetch("/api/v1/admin/logout", { method: "POST", headers, credentials: "same-origin" });
  } finally {
    setSession(null);
  }
}

/**
 * A call as the admin (with `apikey` when given): the response when it is
 * a success. An expired or ended access token is refreshed once and the
 * call made again.
 */
async function authorized(path: string, init: RequestInit, apikey?: string): Promise<Response> {
  for (let attempt = 0; attempt < 2; attempt++) {
    const signedIn = current ?? (await refresh());
    if (!signedIn) break;
    const headers = new Headers(init.headers);
    if (apikey) headers.set("apikey", apikey);
    headers.set("authorization", `Bearer ${signedIn.accessToken}`);
    const response = await fetch(path, { ...init, headers });
    if (response.status === 401 && attempt === 0) {
      // Expired or ended: the next turn refreshes (or finds it ended).
      current = null;
      continue;
    }
    if (!response.ok) throw await errorOf(response);
    return response;
  }
  throw new ApiError(401, "signed_out", "your session has ended: sign in again");
}

/** A JSON call to the admin API (`/api/v1`) as the admin. */
export async function api<T>(path: string, init: RequestInit = {}): Promise<T> {
  const response = await authorized(path, init);
  if (response.status === 204) return undefined as T;
  return (await response.json()) as T;
}

/** `/health`, which needs no credentials. */
export async function health(): Promise<Health> {
  const response = await fetch("/health");
  if (!response.ok && response.status !== 503) throw await errorOf(response);
  return (await response.json()) as Health;
}

export interface Health {
  status: string;
  version: string;
  uptime_seconds: number;
  database: { reachable: boolean; latency_ms?: number };
  runtime?: { functions?: unknown[] };
  storage?: { backend?: string };
}

/** What `/api/v1/instance` says that other pages need: asked once. */
export interface InstanceBasics {
  anon_key: string;
  /** The schemas the REST API serves. */
  schemas: string[];
  urls: Record<string, string>;
}

let basics: Promise<InstanceBasics> | null = null;

export function instanceBasics(): Promise<InstanceBasics> {
  basics ??= api<InstanceBasics>("/api/v1/instance").catch((err: unknown) => {
    basics = null;
    throw err;
  });
  return basics;
}

/**
 * A call to a Supabase-compatible API (`/rest/v1`, `/storage/v1`) as the
 * admin: the anon key as `apikey`, the admin's token as the bearer (its
 * role is the service role). The whole response, for its headers.
 */
export async function asAdmin(path: string, init: RequestInit = {}): Promise<Response> {
  const { anon_key } = await instanceBasics();
  return authorized(path, init, anon_key);
}

/** An error's message, for showing. */
export function messageOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/**
 * Uploads `file` to a Supabase storage path as the admin, reporting
 * progress (fetch has no upload progress; XHR does). Resolves on 2xx.
 */
export async function uploadWithProgress(
  path: string,
  file: Blob,
  onProgress: (fraction: number) => void,
  upsert = false,
): Promise<void> {
  const { anon_key } = await instanceBasics();
  let signedIn = current;
  // A token that would expire mid-upload is refreshed first.
  if (!signedIn || signedIn.expiresAt - Date.now() / 1000 < 60) signedIn = await refresh();
  if (!signedIn) throw new ApiError(401, "signed_out", "your session has ended: sign in again");
  const token = signedIn.accessToken;
  await new Promise<void>((resolve, reject) => {
    const request = new XMLHttpRequest();
    request.open("POST", path);
    request.setRequestHeader("apikey", anon_key);
    request.setRequestHeader("authorization", `Bearer ${token}`);
    request.setRequestHeader("content-type", file.type || "application/octet-stream");
    if (upsert) request.setRequestHeader("x-upsert", "true");
    request.upload.onprogress = (event) => {
      if (event.lengthComputable) onProgress(event.loaded / event.total);
    };
    request.onload = () => {
      if (request.status >= 200 && request.status < 300) {
        onProgress(1);
        resolve();
        return;
      }
      let message = `the server answered ${request.status}`;
      try {
        const body = JSON.parse(request.responseText);
        message = body?.message ?? body?.error?.message ?? body?.error ?? message;
      } catch {
        // Not JSON: the status says enough.
      }
      reject(new ApiError(request.status, `http_${request.status}`, String(message)));
    };
    request.onerror = () => reject(new ApiError(0, "network", "the upload was interrupted"));
    request.send(file);
  });
}
