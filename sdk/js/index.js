// The SelfDB function SDK for TypeScript and JavaScript.
//
// A function is one entry file that calls `serve(handler)`, `onEvent(handler)`
// or both. SelfDB bundles
// it with this module and runs it in a WebAssembly sandbox (ComponentizeJS's
// StarlingMonkey engine), where the platform's interfaces
// (`selfdb:platform/{db,config,log,context,events}`) reach this module through
// `globalThis.__selfdb`, set by the engine's prelude before the function's
// code runs. Keeping the WIT imports in the prelude, not here, is what lets
// one shared engine evaluate any function's bundle.

function platform() {
  const host = globalThis.__selfdb;
  if (!host) {
    throw new Error('selfdb: this code runs inside a SelfDB function (deploy it with `selfdb functions deploy`)');
  }
  return host;
}

/**
 * Serves HTTP requests with `handler`, as Deno.serve and Supabase Edge
 * Functions do. Call it once, at the top level of the entry file.
 */
export function serve(handler) {
  if (typeof handler !== 'function') {
    throw new TypeError('serve(handler): handler must be a function (request) => Response');
  }
  platform().serve(handler);
}

/**
 * Handles the events the function is subscribed to (database changes,
 * schedules, custom events, setup) with `handler`, which gets
 * `{id, kind, name, attempt, payload}`. Returning (or resolving) acknowledges
 * the event; throwing fails the attempt, which is retried with backoff, and
 * rolls back its database work. Call it once, at the top level.
 */
export function onEvent(handler) {
  if (typeof handler !== 'function') {
    throw new TypeError('onEvent(handler): handler must be a function (event) => void');
  }
  platform().onEvent(handler);
}

/** Custom events. */
export const events = {
  /**
   * Publishes `payload` (anything JSON can hold) as the event `name` to the
   * functions subscribed to it. Part of the request's transaction: the
   * event is delivered only if the request commits.
   */
  publish(name, payload) {
    if (typeof name !== 'string') throw new TypeError('events.publish: name must be a string');
    try {
      platform().events.publish(name, JSON.stringify(payload ?? null));
    } catch (err) {
      // As for db: the WIT `result`'s error (a string here) is the thrown
      // Error's `payload`.
      const message = typeof err?.payload === 'string' ? err.payload : err?.message ?? String(err);
      throw new Error(message);
    }
  },
};

/** An error the database reported, with Postgres's SQLSTATE `code`. */
export class DbError extends Error {
  constructor(payload) {
    super(payload?.message ?? String(payload));
    this.name = 'DbError';
    this.code = payload?.code;
    this.details = payload?.details ?? undefined;
    this.hint = payload?.hint ?? undefined;
  }
}

function toValue(v) {
  if (v === null || v === undefined) return { tag: 'null' };
  switch (typeof v) {
    case 'boolean':
      return { tag: 'boolean', val: v };
    case 'number':
      return Number.isInteger(v) ? { tag: 'int', val: BigInt(v) } : { tag: 'float', val: v };
    case 'bigint':
      return { tag: 'int', val: v };
    case 'string':
      return { tag: 'text', val: v };
    default:
      if (v instanceof Uint8Array) return { tag: 'bytes', val: v };
      if (v instanceof Date) return { tag: 'text', val: v.toISOString() };
      return { tag: 'json', val: JSON.stringify(v) };
  }
}

function fromValue(v) {
  switch (v.tag) {
    case 'null':
      return null;
    case 'int': {
      // Exact integers stay numbers; only those past 2^53 stay bigints.
      const n = Number(v.val);
      return Number.isSafeInteger(n) ? n : v.val;
    }
    case 'json':
      return JSON.parse(v.val);
    default:
      return v.val;
  }
}

function call(fn, sql, params) {
  if (typeof sql !== 'string') throw new TypeError('db: sql must be a string');
  if (!Array.isArray(params)) throw new TypeError('db: params must be an array');
  try {
    return fn(sql, params.map(toValue));
  } catch (err) {
    // ComponentizeJS throws a WIT `result` error as an Error whose
    // `payload` is the error record.
    throw new DbError(err?.payload ?? err);
  }
}

/**
 * SQL as the caller: every statement of one request runs in one
 * transaction under the caller's role and JWT claims, so row-level
 * security decides what it sees. Parameters are always bound ($1, $2, ...).
 */
export const db = {
  /** The rows of `sql` as objects keyed by column name. */
  query(sql, params = []) {
    const set = call(platform().db.query, sql, params);
    const names = set.columns.map((c) => c.name);
    return set.rows.map((row) => {
      const out = {};
      row.forEach((v, i) => {
        out[names[i]] = fromValue(v);
      });
      return out;
    });
  },
  /** How many rows `sql` changed. */
  execute(sql, params = []) {
    return Number(call(platform().db.execute, sql, params));
  },
};

/** The function's environment variables and secrets. */
export const env = {
  get(key) {
    return platform().config.get(key) ?? undefined;
  },
};

function write(level, args) {
  const text = args
    .map((a) => (typeof a === 'string' ? a : a instanceof Error ? a.stack ?? String(a) : JSON.stringify(a)))
    .join(' ');
  platform().log.log(level, text);
}

/** Log lines, kept with the function's logs (`selfdb functions logs`). */
export const log = {
  debug: (...args) => write('debug', args),
  info: (...args) => write('info', args),
  warn: (...args) => write('warn', args),
  error: (...args) => write('error', args),
};

/** Who is calling: the principal SelfDB verified before the function ran. */
export function caller() {
  const p = platform().context.caller();
  return {
    role: p.role,
    userId: p.userId ?? null,
    claims: JSON.parse(p.claims),
  };
}

/** SelfDB's id for this request, as it appears in the logs. */
export function requestId() {
  return platform().context.requestId();
}
