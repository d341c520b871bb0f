-- Projects, continued (issue 21).

-- The shape of the schema at `schema_digest` (tables, columns, keys,
-- functions: projects/diff.rs): what a host compares a change with when
-- it has no cache from before the change (it opened the project's pool
-- after it, or restarted).
alter table selfdb.projects add column if not exists schema_shape jsonb;

-- A request's id, made by the host that logged it: ties in `at` (one
-- microsecond) are ordered by it, so log pages neither skip nor repeat.
alter table selfdb.request_logs add column if not exists id bigint;
