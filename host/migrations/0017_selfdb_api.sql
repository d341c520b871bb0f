-- SelfDB's own API (`/tables`, `/storage/buckets`): what it knows that
-- PostgreSQL does not. One store, two views: the tables are PostgreSQL's
-- tables and the buckets `storage.buckets`; these only add SelfDB's ids,
-- owners and flags.

-- The table registry. A table's name, columns, comment (its description)
-- and publication membership (`realtime`) stay in pg_catalog; a row here
-- gives it a stable id, an owner and the `public` flag. `managed` rows were
-- made through `/tables`, whose host-written policies decide their rows;
-- the others (tables made with psql or `/rest/v1`) were found by
-- `api_tables_sync` and stay under their own policies.
create table if not exists selfdb.api_tables (
    id          uuid primary key default gen_random_uuid(),
    -- Follows renames; after a restore (new oids) re-found by the last
    -- known name below.
    relid       oid not null unique,
    schema_name text not null,
    table_name  text not null,
    owner_id    uuid references auth.users (id) on delete set null,
    public      boolean not null default false,
    managed     boolean not null default false,
    metadata    jsonb not null default '{}',
    created_at  timestamptz not null default now(),
    updated_at  timestamptz not null default now()
);

-- Brings the registry in line with pg_catalog: follows restores and
-- renames, forgets dropped tables and registers new tables of `schemas`.
-- Called by the API before it reads the registry, so no event trigger is
-- needed (a database may lack a superuser to own one).
create or replace function selfdb.api_tables_sync(schemas text[]) returns void
    language plpgsql
as $$
begin
    -- Restored: the oid changed, the name did not.
    update selfdb.api_tables a
       set relid = found.oid
      from (select t.id, to_regclass(format('%I.%I', t.schema_name, t.table_name))::oid as oid
              from selfdb.api_tables t
             where not exists (select 1 from pg_class c where c.oid = t.relid)) found
     where a.id = found.id and found.oid is not null
       and not exists (select 1 from selfdb.api_tables b where b.relid = found.oid);
    delete from selfdb.api_tables a
     where not exists (select 1 from pg_class c where c.oid = a.relid and c.relkind in ('r', 'p'));
    update selfdb.api_tables a
       set schema_name = n.nspname, table_name = c.relname
      from pg_class c join pg_namespace n on n.oid = c.relnamespace
     where c.oid = a.relid and (a.schema_name, a.table_name) is distinct from (n.nspname, c.relname);
    insert into selfdb.api_tables (relid, schema_name, table_name)
    select c.oid, n.nspname, c.relname
      from pg_class c join pg_namespace n on n.oid = c.relnamespace
     where c.relkind in ('r', 'p') and not c.relispartition and n.nspname = any(schemas)
    on conflict (relid) do nothing;
end
$$;

-- Whether the caller is one of SelfDB's ADMIN users (the role `/users`
-- gives), read from the user's row rather than the token, so a demotion
-- counts at once. The policies `/tables` writes call it once per statement
-- (as `(select selfdb.api_admin())`).
create or replace function selfdb.api_admin() returns boolean
    language sql stable security definer set search_path = ''
as $$
    select coalesce((select u.raw_app_meta_data ->> 'selfdb_role' = 'ADMIN'
                       from auth.users u where u.id = auth.uid()), false)
$$;
revoke all on function selfdb.api_admin() from public;
grant execute on function selfdb.api_admin() to anon, authenticated, service_role;

-- Buckets get SelfDB's uuid ids beside Supabase's text ids (usually the
-- name), whichever API made them, and a description.
alter table storage.buckets add column if not exists selfdb_id uuid not null default gen_random_uuid();
create unique index if not exists buckets_selfdb_id on storage.buckets (selfdb_id);
alter table storage.buckets add column if not exists description text;
