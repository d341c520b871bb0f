-- User functions as a platform: every deploy is an immutable version kept
-- in the database, so every host serving this database serves the same
-- active version; settings, encrypted secrets and logs live beside them.

create table if not exists selfdb.functions (
    name             text primary key check (name ~ '^[a-z0-9_-]{1,64}$'),
    -- The version requests run on; null until the first deploy is active.
    active_version   integer,
    -- What `rollback NAME` without a version returns to.
    previous_version integer,
    -- As Supabase: callers need a valid JWT (the anon key is one) unless
    -- the function opts out.
    verify_jwt       boolean not null default true,
    memory_mb        integer check (memory_mb between 1 and 4096),
    time_ms          integer check (time_ms between 1 and 900000),
    -- Invocations of this function running at once on one host; more wait
    -- for a slot (503 after the time limit).
    concurrency      integer check (concurrency between 1 and 10000),
    allowed_hosts    text[] not null default '{}',
    env              jsonb not null default '{}'::jsonb,
    created_at       timestamptz not null default now(),
    updated_at       timestamptz not null default now()
);

create table if not exists selfdb.function_versions (
    function   text not null references selfdb.functions (name) on delete cascade,
    version    integer not null check (version > 0),
    -- How it was deployed: `ts` or `js` source, or a `wasm` component.
    kind       text not null check (kind in ('ts', 'js', 'wasm')),
    -- The entry file's name as the user gave it, for error positions.
    entry      text not null,
    -- The source as uploaded (TS/JS), null for a component.
    source     bytea,
    -- The bundled script the shared JavaScript engine evaluates.
    script     bytea,
    -- The component: the upload for `wasm`; for JS, the pre-initialized
    -- component once it is built (null until then).
    component  bytea,
    -- SHA-256 of what was uploaded: the same bytes deployed again are the
    -- same version.
    sha256     text not null,
    created_by text not null,
    created_at timestamptz not null default now(),
    primary key (function, version)
);

create table if not exists selfdb.function_secrets (
    function   text not null references selfdb.functions (name) on delete cascade,
    key        text not null,
    -- XChaCha20-Poly1305 under the instance's secrets key; the function's
    -- and the key's names are the associated data, so a ciphertext copied
    -- to another row does not decrypt.
    nonce      bytea not null,
    ciphertext bytea not null,
    updated_at timestamptz not null default now(),
    primary key (function, key)
);

create table if not exists selfdb.function_logs (
    id          bigint generated always as identity primary key,
    at          timestamptz not null default now(),
    function    text not null,
    version     integer,
    request_id  text,
    -- `log`: a line the function wrote; `invocation`: one per request.
    kind        text not null check (kind in ('log', 'invocation')),
    level       text,
    message     text,
    status      integer,
    duration_ms double precision,
    memory_peak bigint
);
create index if not exists function_logs_by_function
    on selfdb.function_logs (function, id);
