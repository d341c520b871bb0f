-- Functions that run on their own: database triggers, schedules, custom
-- events and setup jobs. Every event is a row of `selfdb.outbox`, written
-- in the transaction that caused it (a row trigger, `selfdb.publish`, a
-- schedule's claimed tick), so a rolled-back change triggers nothing and a
-- committed one survives any crash. Hosts claim rows with `for update skip
-- locked`, delete them once the handler succeeded, and move them to
-- `selfdb.dead_letters` when the function's attempts are spent.

-- What each function runs on. Set at deploy (or through the API) as a
-- whole; rows whose declaration did not change are kept, with their
-- queued events and their schedule's state.
create table if not exists selfdb.function_triggers (
    id          bigint generated always as identity primary key,
    function    text not null references selfdb.functions (name) on delete cascade,
    kind        text not null check (kind in ('database', 'schedule', 'custom', 'setup')),
    -- database: the table, the operations, the filter in the data API's
    -- grammar, and the names of the Postgres triggers made for it.
    schema_name text,
    table_name  text,
    operations  text[],
    filter      text,
    pg_triggers text[],
    -- schedule: the cron expression, its time zone, the next tick due and
    -- the last tick that ran (or was skipped).
    cron        text,
    time_zone   text,
    next_run_at timestamptz,
    last_tick   timestamptz,
    -- custom: the event's name.
    event_name  text,
    created_at  timestamptz not null default now()
);
create index if not exists function_triggers_by_function on selfdb.function_triggers (function);
create index if not exists function_triggers_events on selfdb.function_triggers (event_name)
    where kind = 'custom';
create index if not exists function_triggers_due on selfdb.function_triggers (next_run_at)
    where kind = 'schedule';

-- Failed deliveries are retried with exponential backoff and jitter until
-- this many attempts were made.
alter table selfdb.functions
    add column if not exists max_attempts integer not null default 10
        check (max_attempts between 1 and 100);

create table if not exists selfdb.outbox (
    id              bigint generated always as identity primary key,
    trigger_id      bigint not null references selfdb.function_triggers (id) on delete cascade,
    function        text not null,
    kind            text not null,
    -- `public.orders`, the event's name, the cron expression, `setup`.
    name            text not null,
    -- Stable across retries and replays: what a handler is idempotent by.
    event_id        uuid not null default gen_random_uuid(),
    -- `schema.table:<primary key>`: changes of one row are delivered one
    -- at a time, in commit order. Null: no order.
    ordering_key    text,
    payload         jsonb not null,
    state           text not null default 'pending' check (state in ('pending', 'running')),
    attempts        integer not null default 0,
    next_attempt_at timestamptz not null default now(),
    -- The host delivering it, and until when its claim holds.
    claimed_by      uuid,
    lease_until     timestamptz,
    last_error      text,
    created_at      timestamptz not null default clock_timestamp(),
    committed_at    timestamptz
);
create index if not exists outbox_ready on selfdb.outbox (next_attempt_at, id)
    where state = 'pending';
create index if not exists outbox_by_key on selfdb.outbox (trigger_id, ordering_key, id)
    where ordering_key is not null;
create unique index if not exists outbox_event on selfdb.outbox (trigger_id, event_id);
create index if not exists outbox_running on selfdb.outbox (claimed_by)
    where state = 'running';

create table if not exists selfdb.dead_letters (
    id           bigint primary key,
    trigger_id   bigint not null,
    function     text not null,
    kind         text not null,
    name         text not null,
    event_id     uuid not null,
    ordering_key text,
    payload      jsonb not null,
    attempts     integer not null,
    last_error   text,
    created_at   timestamptz not null,
    committed_at timestamptz,
    failed_at    timestamptz not null default now()
);
create index if not exists dead_letters_by_function on selfdb.dead_letters (function, id);

-- An event delivery is logged as `event`.
alter table selfdb.function_logs drop constraint if exists function_logs_kind_check;
alter table selfdb.function_logs add constraint function_logs_kind_check
    check (kind in ('log', 'invocation', 'event'));

-- A change of a table a function is bound to: one outbox row per
-- subscription, in the writer's transaction. Arguments: the subscription's
-- id, the function's name, then the primary key's columns.
create or replace function selfdb.enqueue_change() returns trigger
language plpgsql security definer set search_path = '' as $$
declare
    rec jsonb;
    old_rec jsonb;
    row_key text;
begin
    if tg_op <> 'DELETE' then rec := to_jsonb(new); end if;
    if tg_op <> 'INSERT' then old_rec := to_jsonb(old); end if;
    if tg_nargs > 2 then
        select string_agg(coalesce(coalesce(rec, old_rec) ->> c, ''), ',')
          into row_key from unnest(tg_argv[2:]) as c;
        row_key := tg_table_schema || '.' || tg_table_name || ':' || row_key;
    end if;
    -- A trigger whose binding is gone (left behind by a failure) must
    -- not break the user's writes: it records nothing.
    insert into selfdb.outbox (trigger_id, function, kind, name, ordering_key, payload)
    select t.id, tg_argv[1], 'database', tg_table_schema || '.' || tg_table_name, row_key,
           jsonb_build_object('type', tg_op, 'schema', tg_table_schema, 'table', tg_table_name,
                              'record', rec, 'old_record', old_rec)
      from selfdb.function_triggers t where t.id = tg_argv[0]::bigint;
    -- One notification per transaction (Postgres folds equal ones).
    perform pg_notify('selfdb_outbox', '');
    return null;
end $$;

-- Custom events. `selfdb.publish(name, payload)` records the event as the
-- caller: row-level security on `selfdb.published_events` decides who may
-- publish what (no policy: only the service role and the owner), and the
-- row's trigger fans it out to every function subscribed to the name, in
-- the same transaction, then removes the row.
create table if not exists selfdb.published_events (
    id           bigint generated always as identity primary key,
    name         text not null check (name ~ '^[A-Za-z0-9_.:-]{1,128}$'),
    payload      jsonb not null default 'null'::jsonb,
    published_by text default nullif(
        nullif(current_setting('request.jwt.claims', true), '')::jsonb ->> 'sub', ''),
    published_at timestamptz not null default now()
);
alter table selfdb.published_events enable row level security;
-- The service role publishes anything, also where it lacks BYPASSRLS (a
-- database whose migrating role is not a superuser).
drop policy if exists service_role_publishes on selfdb.published_events;
create policy service_role_publishes on selfdb.published_events
    for insert to service_role with check (true);

create or replace function selfdb.fan_out_event() returns trigger
language plpgsql security definer set search_path = '' as $$
begin
    insert into selfdb.outbox (trigger_id, function, kind, name, payload)
    select t.id, t.function, 'custom', new.name, new.payload
      from selfdb.function_triggers t
     where t.kind = 'custom' and t.event_name = new.name;
    if found then
        perform pg_notify('selfdb_outbox', '');
    end if;
    -- The row only carried the event through the policies; the outbox
    -- holds it now (a table kept as a log would grow without end).
    delete from selfdb.published_events where id = new.id;
    return null;
end $$;
drop trigger if exists fan_out on selfdb.published_events;
create trigger fan_out after insert on selfdb.published_events
    for each row execute function selfdb.fan_out_event();

create or replace function selfdb.publish(name text, payload jsonb default 'null'::jsonb)
returns void language sql set search_path = '' as $$
    insert into selfdb.published_events (name, payload) values (name, coalesce(payload, 'null'::jsonb));
$$;

-- The API roles reach `selfdb.publish` and the table it writes, nothing
-- else of the schema: no other table is granted to them, and every
-- function of the schema stops being executable by PUBLIC. Functions are
-- executable by PUBLIC by default, and a per-schema default privilege
-- cannot take that away: every later migration that creates a function in
-- `selfdb` must revoke EXECUTE from PUBLIC itself.
grant usage on schema selfdb to anon, authenticated, service_role;
revoke execute on all functions in schema selfdb from public;
grant execute on function selfdb.publish(text, jsonb) to anon, authenticated, service_role;
-- Not `published_by`: who published is the caller's claim, not a choice.
grant insert (name, payload) on selfdb.published_events to anon, authenticated, service_role;
