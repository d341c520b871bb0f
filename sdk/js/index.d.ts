// Types of the SelfDB function SDK (`import { serve, db } from "selfdb"`).

/** Serves HTTP requests with `handler`. Call it once, at the top level. */
export function serve(handler: (request: Request) => Response | Promise<Response>): void;

/** A value bound to a `$n` parameter or read from a column. */
export type SqlValue = null | boolean | number | bigint | string | Uint8Array | Date | object;

/** An error the database reported. */
export class DbError extends Error {
  /** Postgres's SQLSTATE, e.g. `42501` for a refused permission. */
  code: string;
  details?: string;
  hint?: string;
}

/** SQL as the caller, under row-level security. */
export const db: {
  /** The rows of `sql` as objects keyed by column name. */
  query<Row = Record<string, unknown>>(sql: string, params?: SqlValue[]): Row[];
  /** How many rows `sql` changed. */
  execute(sql: string, params?: SqlValue[]): number;
};

/** The function's environment variables and secrets. */
export const env: {
  get(key: string): string | undefined;
};

/** Log lines, kept with the function's logs. */
export const log: {
  debug(...args: unknown[]): void;
  info(...args: unknown[]): void;
  warn(...args: unknown[]): void;
  error(...args: unknown[]): void;
};

/** Who is calling. */
export function caller(): {
  role: 'anon' | 'authenticated' | 'service_role' | string;
  userId: string | null;
  claims: Record<string, unknown>;
};

/** SelfDB's id for this request. */
export function requestId(): string;
