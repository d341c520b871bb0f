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
  try {
    const body = await response.json();
    code = body?.error?.code ?? body?.error_code ?? code;
    message = body?.error?.message ?? body?.msg ?? body?.message ?? message;
  } catch {
    // Not JSON: the status says enough.
  }
  return new ApiError(response.status, code, message);
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
 * A JSON API call as the admin. An expired or ended access token is
 * refreshed once and the call made again.
 */
export async function api<T>(path: string, init: RequestInit = {}): Promise<T> {
  for (let attempt = 0; attempt < 2; attempt++) {
    const signedIn = current ?? (await refresh());
    if (!signedIn) break;
    const headers = new Headers(init.headers);
    headers.set("authorization", `Bearer ${signedIn.accessToken}`);
    const response = await fetch(path, { ...init, headers });
    if (response.status === 401 && attempt === 0) {
      // Expired or ended: the next turn refreshes (or finds it ended).
      current = null;
      continue;
    }
    if (!response.ok) throw await errorOf(response);
    if (response.status === 204) return undefined as T;
    return (await response.json()) as T;
  }
  throw new ApiError(401, "signed_out", "your session has ended: sign in again");
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
