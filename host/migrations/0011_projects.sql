-- Projects (issue 21): a user's own PostgreSQL database, registered by URL,
-- served through the data API and Dbify's `/query`. Nothing here lives in
-- the user's database; SelfDB writes there only what the user opts into
-- (the DDL event trigger of `install_triggers`).

create table if not exists selfdb.projects (
    -- Dbify's `projectId`: a number.
    id               bigint generated always as identity primary key,
    name             text not null unique check (name ~ '^[a-z0-9][a-z0-9_-]{0,62}$'),
    -- The connection URL, sealed with the instance's secrets key
    -- (XChaCha20-Poly1305, associated data `project:<name>` and `url`):
    -- it carries the password, which no API returns.
    url_nonce        bytea not null,
    url_ciphertext   bytea not null,
    -- What may be shown of it: `postgres://user@host:port/db?sslmode=...`.
    url_display      text not null,
    -- A root certificate for `verify-ca`/`verify-full` (public, PEM).
    ca_certificate   text,
    -- SHA-256 of the project's API key; the key itself is shown once.
    key_hash         bytea not null unique,
    -- The key's first characters, to tell keys apart in listings.
    key_prefix       text not null,
    paused           boolean not null default false,
    -- The schemas the API exposes.
    schemas          text[] not null default '{public}',
    -- The most connections each host opens to the database.
    pool_size        integer not null default 10 check (pool_size between 1 and 1000),
    -- Whether SelfDB may install an event trigger that reports DDL at once
    -- (otherwise the schema is polled).
    install_triggers boolean not null default false,
    -- Who is told about schema changes: an address (the host's mailer)
    -- and a URL (a POST signed with `webhook_secret`, sealed like the URL).
    notify_email     text,
    webhook_url      text,
    webhook_nonce    bytea,
    webhook_secret   bytea,
    -- The last schema digest a host recorded (see db/external.rs).
    schema_digest    text,
    created_at       timestamptz not null default now(),
    updated_at       timestamptz not null default now()
);

-- What changed in a project's schema, as detected.
create table if not exists selfdb.project_schema_changes (
    id          bigint generated always as identity primary key,
    project_id  bigint not null references selfdb.projects (id) on delete cascade,
    detected_at timestamptz not null default now(),
    -- {"tables_added": [...], "tables_dropped": [...],
    --  "columns_added": [...], "columns_dropped": [...], "columns_altered": [...]}
    changes     jsonb not null
);
create index if not exists project_schema_changes_by_project
    on selfdb.project_schema_changes (project_id, detected_at desc);

-- Every API request of every project (project_id) and of the main instance
-- (null), written in batches off the request path; one partition per day,
-- made ahead by the writer, dropped past the retention. Rows of a day
-- without its partition land in the default one.
create table if not exists selfdb.request_logs (
    at          timestamptz not null,
    project_id  bigint,
    method      text not null,
    -- The route, with names in braces: `/rest/v1/{table}`, `/query`.
    endpoint    text not null,
    table_name  text,
    -- read, create, update, delete (or upsert, rpc) when the route has one.
    operation   text,
    status      smallint not null,
    latency_ms  real not null,
    bytes_in    bigint not null default 0,
    bytes_out   bigint not null default 0
) partition by range (at);
create table if not exists selfdb.request_logs_default
    partition of selfdb.request_logs default;
create index if not exists request_logs_by_project on selfdb.request_logs (project_id, at);
