-- Realtime, as on Supabase: the `supabase_realtime` publication users add
-- their tables to, `realtime.messages` (broadcasts from the database, and
-- the RLS policies that authorise private channels), `realtime.topic()`,
-- `realtime.send()` and `realtime.broadcast_changes()`. Plus the host's
-- own visibility check for captured rows.

create schema if not exists realtime;
grant usage on schema realtime to anon, authenticated, service_role;

-- Supabase partitions this table by day; here it is one table whose rows
-- the capturing host prunes after a day (they are delivered through
-- logical replication at commit, not read back).
create table if not exists realtime.messages (
    topic       text not null,
    extension   text not null,
    payload     jsonb,
    event       text,
    private     boolean default false,
    updated_at  timestamp not null default now(),
    inserted_at timestamp not null default now(),
    id          uuid not null default gen_random_uuid() primary key
);
create index if not exists messages_inserted_at on realtime.messages (inserted_at);
alter table realtime.messages enable row level security;
grant select, insert, update on realtime.messages to anon, authenticated, service_role;

-- The channel name (without `realtime:`) an authorisation check or a
-- `realtime.send` runs for.
create or replace function realtime.topic() returns text
language sql stable as $$
    select nullif(current_setting('realtime.topic', true), '')::text
$$;

create or replace function realtime.send(payload jsonb, event text, topic text, private boolean default true)
returns void
language plpgsql as $$
declare
    generated_id uuid := gen_random_uuid();
    final_payload jsonb;
begin
    begin
        if payload ? 'id' then
            final_payload := payload;
        else
            final_payload := jsonb_set(payload, '{id}', to_jsonb(generated_id));
        end if;
        execute format('set local realtime.topic to %L', topic);
        insert into realtime.messages (id, payload, event, topic, private, extension)
        values (generated_id, final_payload, event, topic, private, 'broadcast');
    exception when others then
        raise warning 'WarnSendingBroadcastMessage: %', sqlerrm;
    end;
end
$$;

create or replace function realtime.broadcast_changes(
    topic_name text, event_name text, operation text, table_name text,
    table_schema text, new record, old record, level text default 'ROW'
) returns void
language plpgsql as $$
declare
    row_data jsonb;
begin
    if level = 'STATEMENT' then
        raise exception 'function can only be triggered for each row, not for each statement';
    end if;
    if operation in ('INSERT', 'UPDATE', 'DELETE') then
        row_data := jsonb_build_object(
            'old_record', old, 'record', new, 'operation', operation,
            'table', table_name, 'schema', table_schema);
        perform realtime.send(row_data, event_name, topic_name);
    else
        raise exception 'Unexpected operation type: %', operation;
    end if;
exception when others then
    raise exception 'Failed to process the row: %', sqlerrm;
end
$$;

grant execute on function realtime.topic() to anon, authenticated, service_role;
grant execute on function realtime.send(jsonb, text, text, boolean) to anon, authenticated, service_role;
grant execute on function realtime.broadcast_changes(text, text, text, text, text, record, record, text)
    to anon, authenticated, service_role;

do $$
begin
    if not exists (select from pg_publication where pubname = 'supabase_realtime') then
        create publication supabase_realtime;
    end if;
    if not exists (select from pg_publication where pubname = 'selfdb_realtime_messages') then
        create publication selfdb_realtime_messages for table realtime.messages with (publish = 'insert');
    end if;
end
$$;

-- Which of a table's captured rows each subscriber may SELECT now, under
-- its role and claims (RLS decides, as on Supabase): `keys` is a JSON array
-- of key tuples (arrays of text), one per row; returns, per subscriber
-- (1-based, in the order of `roles`), the 1-based indexes of the rows it
-- sees, whether the table has RLS on, and whether the role may select
-- from the table at all (what a delete, never checked row by row, needs). Runs on the owner's session:
-- `set local role` needs the session user to be a member of the role, and
-- the request roles may not call `set_config`.
create or replace function selfdb.realtime_visible(
    tbl regclass, key_columns text[], keys jsonb, roles text[], claims text[]
) returns table (subscriber int, visible int[], rls boolean, allowed boolean)
language plpgsql as $$
declare
    conds text := '';
    query text;
    rls_on boolean;
    everything int[];
    col record;
    i int;
begin
    select c.relrowsecurity into rls_on from pg_class c where c.oid = tbl;
    for i in 1 .. coalesce(array_length(key_columns, 1), 0) loop
        select a.attname, format_type(a.atttypid, a.atttypmod) as typ into col
          from pg_attribute a
         where a.attrelid = tbl and a.attname = key_columns[i] and not a.attisdropped;
        if not found then
            conds := '';
            exit;
        end if;
        conds := conds || case when conds = '' then '' else ' and ' end
              || format('t.%I = (k.v->>%s)::%s', col.attname, i - 1, col.typ);
    end loop;
    if conds = '' then
        query := 'select ''{}''::int[]';
    else
        query := format(
            'select coalesce(array_agg(k.o::int), ''{}'') from jsonb_array_elements($1) with ordinality k(v, o) '
            'where exists (select 1 from %s t where %s)', tbl, conds);
    end if;
    everything := array(select generate_series(1, jsonb_array_length(keys)));
    for i in 1 .. coalesce(array_length(roles, 1), 0) loop
        subscriber := i;
        rls := rls_on;
        allowed := has_table_privilege(roles[i], tbl, 'SELECT');
        if not allowed then
            visible := '{}';
        elsif not rls_on then
            visible := everything;
        else
            begin
                execute format('set local role %I', roles[i]);
                execute format('set local request.jwt.claims = %L', claims[i]);
                execute query into visible using keys;
                reset role;
            exception when others then
                -- A policy that fails shows that subscriber nothing.
                visible := '{}';
            end;
        end if;
        return next;
    end loop;
end
$$;
revoke all on function selfdb.realtime_visible(regclass, text[], jsonb, text[], text[]) from public;

-- The same question, fast: a function of one table's own, with static SQL,
-- so PL/pgSQL plans its visibility query once per session instead of once
-- per subscriber (measured: 1,000 subscribers in 40 ms instead of 170 ms).
-- The host defines it on first use, named after the table's OID and a hash
-- of its name and key, so a renamed table or a changed key gets a new one.
-- A policy that fails fails the whole batch here; the host then asks the
-- general function above, which isolates each subscriber.
create or replace function selfdb.realtime_visible_define(tbl regclass, key_columns text[], fname text)
returns void
language plpgsql as $$
declare
    conds text := '';
    qualified text;
    col record;
    i int;
begin
    if fname !~ '^realtime_visible_[a-z0-9_]+$' then
        raise exception 'invalid visibility function name %', fname;
    end if;
    perform pg_advisory_xact_lock(hashtext(fname));
    select format('%I.%I', n.nspname, c.relname) into qualified
      from pg_class c join pg_namespace n on n.oid = c.relnamespace
     where c.oid = tbl;
    for i in 1 .. coalesce(array_length(key_columns, 1), 0) loop
        select a.attname, format_type(a.atttypid, a.atttypmod) as typ into col
          from pg_attribute a
         where a.attrelid = tbl and a.attname = key_columns[i] and not a.attisdropped;
        if not found then
            raise exception 'column % of % not found', key_columns[i], qualified;
        end if;
        conds := conds || case when conds = '' then '' else ' and ' end
              || format('t.%I = (k.v->>%s)::%s', col.attname, i - 1, col.typ);
    end loop;
    if conds = '' then
        raise exception '% has no key', qualified;
    end if;
    execute format($f$
create or replace function selfdb.%I(keys jsonb, roles text[], claims text[])
returns table (subscriber int, visible int[], rls boolean, allowed boolean)
language plpgsql as $b$
declare
    i int;
    rls_on boolean;
    everything int[] := array(select generate_series(1, jsonb_array_length(keys)));
begin
    select c.relrowsecurity into rls_on from pg_class c where c.oid = %s;
    for i in 1 .. coalesce(array_length(roles, 1), 0) loop
        subscriber := i;
        rls := rls_on;
        allowed := has_table_privilege(roles[i], %s::oid, 'SELECT');
        if not allowed then
            visible := '{}';
        elsif not rls_on then
            visible := everything;
        else
            -- The claims first, while still the owner: the request roles
            -- may not call set_config.
            perform set_config('request.jwt.claims', claims[i], true);
            perform set_config('role', roles[i], true);
            select coalesce(array_agg(k.o::int), '{}') into visible
              from jsonb_array_elements(keys) with ordinality k(v, o)
             where exists (select 1 from %s t where %s);
            reset role;
        end if;
        return next;
    end loop;
end
$b$
$f$, fname, tbl::oid, tbl::oid, qualified, conds);
    execute format('revoke all on function selfdb.%I(jsonb, text[], text[]) from public', fname);
end
$$;
revoke all on function selfdb.realtime_visible_define(regclass, text[], text) from public;
