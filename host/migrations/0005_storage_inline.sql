-- Small objects live in Postgres, beside their metadata row, instead of in
-- files of their own (MinIO keeps small objects inside its metadata for
-- the same reason). A file costs an inode, a directory entry, a rename and
-- a filesystem sync on every upload; a small object's bytes instead ride
-- in the WAL flush its row's commit pays for anyway, and the bytes and the
-- row commit or vanish together. Versions of such objects start with
-- 'inline-', so nothing mistakes one for a file.
create table if not exists storage.object_data (
    version text primary key,
    data    bytea not null
);
-- Object bytes are seldom compressible and are always read whole: no
-- compression attempt, and rows that fit a page stay in the heap page
-- rather than going through TOAST.
alter table storage.object_data alter column data set storage external;
alter table storage.object_data set (toast_tuple_target = 8160);
revoke all on storage.object_data from public;

-- Released inline bytes go with the transaction that released them: a
-- reader holds them in memory once read, so nothing waits for a sweep.
create or replace function storage.release_object_file() returns trigger
    language plpgsql security definer set search_path = ''
    as $$
declare
    released text;
begin
    if tg_op = 'DELETE' or old.version is distinct from new.version then
        released := old.version;
    end if;
    if released like 'inline-%' then
        delete from storage.object_data where version = released;
    elsif released is not null then
        insert into storage.released_files (version) values (released) on conflict do nothing;
    end if;
    if tg_op = 'DELETE' then
        return old;
    end if;
    return new;
end
$$;
revoke all on function storage.release_object_file() from public;
