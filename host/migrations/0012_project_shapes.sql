-- Projects, continued (issue 21).

-- The shape of the schema at `schema_digest` (tables, columns, keys,
-- functions: projects/diff.rs): what a host compares a change with when
-- it has no cache from before the change (it opened the project's pool
-- after it, or restarted).
alter table selfdb.projects add column if not exists schema_shape jsonb;

-- Whether the project's URL reaches a transaction-mode pooler (PgBouncer):
-- then nothing may outlive a transaction (statements are prepared and
-- closed inside each). Otherwise prepared statements stay on their
-- connections and a transaction's first statement goes with `begin`, as
-- on the platform's own database. Registering probes it; projects from
-- before the probe keep the safe mode.
alter table selfdb.projects add column if not exists transaction_pooling boolean not null default true;

-- A request's id, made by the host that logged it: ties in `at` (one
-- microsecond) are ordered by it, so log pages neither skip nor repeat.
alter table selfdb.request_logs add column if not exists id bigint;
