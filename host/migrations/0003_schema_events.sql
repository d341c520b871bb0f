-- DDL in this database notifies the hosts (channel `selfdb_schema`), which
-- rebuild their schema cache: a table created with psql is served within a
-- moment, without a restart. Event triggers need a superuser; without one
-- the hosts still serve, but pick up schema changes only on restart.

create or replace function selfdb.notify_schema_change() returns event_trigger
    language plpgsql security definer
    as $$ begin perform pg_notify('selfdb_schema', tg_tag); end $$;

do $$
begin
    if (select rolsuper from pg_roles where rolname = current_user) then
        if not exists (select from pg_event_trigger where evtname = 'selfdb_schema_changed') then
            create event trigger selfdb_schema_changed on ddl_command_end
                execute function selfdb.notify_schema_change();
        end if;
        if not exists (select from pg_event_trigger where evtname = 'selfdb_schema_dropped') then
            create event trigger selfdb_schema_dropped on sql_drop
                execute function selfdb.notify_schema_change();
        end if;
    end if;
end
$$;
