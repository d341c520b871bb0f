-- Platform schema, Supabase's request roles and the auth helpers that RLS
-- policies call. Every statement is idempotent across databases of one
-- cluster: roles are cluster-wide, so they are created only when missing.

create schema if not exists selfdb;

create table if not exists selfdb.settings (
    key        text primary key,
    value      text not null,
    created_at timestamptz not null default now()
);

create table if not exists selfdb.admins (
    id            uuid primary key default gen_random_uuid(),
    email         text not null unique,
    password_hash text not null,
    created_at    timestamptz not null default now()
);

-- Roles are cluster-wide and another database may be creating them at
-- the same moment: a duplicate is not an error.
do $$
declare
    wanted text[] := array['anon', 'authenticated', 'service_role'];
    r text;
begin
    foreach r in array wanted loop
        if not exists (select from pg_roles where rolname = r) then
            begin
                execute format('create role %I nologin noinherit', r);
            exception when duplicate_object or unique_violation then
                null;
            end;
        end if;
    end loop;
end
$$;
-- service_role bypasses RLS as on Supabase; only a superuser may grant it.
do $$
begin
    if (select rolsuper from pg_roles where rolname = current_user) then
        alter role service_role bypassrls;
    end if;
end
$$;

-- Only the platform's owner reads platform tables.
revoke all on schema selfdb from public;

-- As on Supabase: the request roles may use public objects, and row-level
-- security policies decide which rows.
grant usage on schema public to anon, authenticated, service_role;
alter default privileges in schema public grant all on tables to anon, authenticated, service_role;
alter default privileges in schema public grant all on sequences to anon, authenticated, service_role;
alter default privileges in schema public grant all on functions to anon, authenticated, service_role;

create schema if not exists auth;
grant usage on schema auth to anon, authenticated, service_role;

create or replace function auth.jwt() returns jsonb
    language sql stable
    as $$ select coalesce(nullif(current_setting('request.jwt.claims', true), ''), '{}')::jsonb $$;

create or replace function auth.uid() returns uuid
    language sql stable
    as $$ select nullif(auth.jwt() ->> 'sub', '')::uuid $$;

create or replace function auth.role() returns text
    language sql stable
    as $$ select nullif(auth.jwt() ->> 'role', '') $$;

create or replace function auth.email() returns text
    language sql stable
    as $$ select nullif(auth.jwt() ->> 'email', '') $$;
