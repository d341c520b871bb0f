// Types of the SelfDB function SDK (`import { serve, onEvent, db } from "selfdb"`).

/** Serves HTTP requests with `handler`. Call it once, at the top level. */
export function serve(handler: (request: Request) => Response | Promise<Response>): void;

/** What every event carries, whatever its kind. */
interface EventBase {
  /** Stable across retries of one delivery: what an idempotent handler keys on. */
  id: string;
  /** 1 on the first delivery. */
  attempt: number;
}

/** A row of a table was inserted, updated or deleted (Supabase's webhook body). */
export interface DatabaseEvent extends EventBase {
  kind: 'database';
  /** The table, e.g. `public.orders`. */
  name: string;
  payload: {
    type: 'INSERT' | 'UPDATE' | 'DELETE';
    schema: string;
    table: string;
    /** The new row; null for DELETE. */
    record: Record<string, unknown> | null;
    /** The old row; null for INSERT. */
    old_record: Record<string, unknown> | null;
    commit_timestamp: string;
    event_id: string;
  };
}

/** A cron schedule's tick. */
export interface ScheduleEvent extends EventBase {
  kind: 'schedule';
  /** The cron expression. */
  name: string;
  payload: {
    /** The tick, as an ISO timestamp. */
    scheduled_at: string;
    cron: string;
    time_zone: string;
    /** How many earlier ticks were skipped. */
    missed: number;
  };
}

/** An event published by the API, SQL or another function. */
export interface PublishedEvent extends EventBase {
  kind: 'custom';
  /** The event's name. */
  name: string;
  payload: unknown;
}

/** The function's version is being activated (`--setup`). */
export interface SetupEvent extends EventBase {
  kind: 'setup';
  name: string;
  payload: unknown;
}

/** One delivery of an event; `kind` tells which. */
export type SelfdbEvent = DatabaseEvent | ScheduleEvent | PublishedEvent | SetupEvent;

/**
 * Handles the function's events with `handler`. Returning acknowledges the
 * event; throwing fails the attempt (retried with backoff). Call it once,
 * at the top level.
 */
export function onEvent(handler: (event: SelfdbEvent) => void | Promise<void>): void;

/** Custom events. */
export const events: {
  /** Publishes `payload` as the event `name`, delivered if the request commits. */
  publish(name: string, payload?: unknown): void;
};

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
