-- Object storage metadata, under the names Supabase Storage uses, so that
-- storage policies written for Supabase apply unchanged. Object bytes live
-- on disk in files named by `objects.version`; a file is never rewritten,
-- so a new upload is a new version and readers never see a partial object.

create schema if not exists storage;
grant usage on schema storage to anon, authenticated, service_role;

create table if not exists storage.buckets (
    id                 text primary key,
    name               text not null unique,
    owner              uuid,
    owner_id           text,
    public             boolean not null default false,
    avif_autodetection boolean not null default false,
    file_size_limit    bigint,
    allowed_mime_types text[],
    type               text not null default 'STANDARD',
    created_at         timestamptz not null default now(),
    updated_at         timestamptz not null default now()
);

create table if not exists storage.objects (
    id               uuid primary key default gen_random_uuid(),
    bucket_id        text not null references storage.buckets (id),
    name             text not null,
    owner            uuid,
    owner_id         text,
    metadata         jsonb,
    user_metadata    jsonb,
    path_tokens      text[] generated always as (string_to_array(name, '/')) stored,
    version          text,
    created_at       timestamptz not null default now(),
    updated_at       timestamptz not null default now(),
    last_accessed_at timestamptz not null default now(),
    unique (bucket_id, name)
);
-- Listing by prefix walks names in byte order.
create index if not exists objects_bucket_name_c
    on storage.objects (bucket_id, name collate "C");

create table if not exists storage.s3_multipart_uploads (
    id               text primary key,
    bucket_id        text not null references storage.buckets (id) on delete cascade,
    key              text not null,
    owner_id         text,
    content_type     text,
    user_metadata    jsonb,
    created_at       timestamptz not null default now()
);
create index if not exists s3_multipart_uploads_bucket_key
    on storage.s3_multipart_uploads (bucket_id, key collate "C", created_at);

create table if not exists storage.s3_multipart_uploads_parts (
    upload_id   text not null references storage.s3_multipart_uploads (id) on delete cascade,
    part_number integer not null,
    etag        text not null,
    size        bigint not null,
    version     text not null,
    created_at  timestamptz not null default now(),
    primary key (upload_id, part_number)
);

-- Files whose rows are gone or replaced; the host deletes the files after
-- the transaction that queued them commits, and sweeps leftovers at start.
create table if not exists storage.released_files (
    version     text primary key,
    released_at timestamptz not null default now()
);
revoke all on storage.released_files from public;

create or replace function storage.release_object_file() returns trigger
    language plpgsql security definer set search_path = ''
    as $$
begin
    if tg_op = 'DELETE' then
        if old.version is not null then
            insert into storage.released_files (version) values (old.version) on conflict do nothing;
        end if;
        return old;
    end if;
    if old.version is not null and old.version is distinct from new.version then
        insert into storage.released_files (version) values (old.version) on conflict do nothing;
    end if;
    return new;
end
$$;
revoke all on function storage.release_object_file() from public;

drop trigger if exists objects_release_file on storage.objects;
create trigger objects_release_file
    after update or delete on storage.objects
    for each row execute function storage.release_object_file();

drop trigger if exists parts_release_file on storage.s3_multipart_uploads_parts;
create trigger parts_release_file
    after update or delete on storage.s3_multipart_uploads_parts
    for each row execute function storage.release_object_file();

-- Supabase's path helpers, which storage policies call.
create or replace function storage.foldername(name text) returns text[]
    language sql immutable
    as $$ select (string_to_array(name, '/'))[1:array_length(string_to_array(name, '/'), 1) - 1] $$;

create or replace function storage.filename(name text) returns text
    language sql immutable
    as $$ select (string_to_array(name, '/'))[array_length(string_to_array(name, '/'), 1)] $$;

create or replace function storage.extension(name text) returns text
    language sql immutable
    as $$ select reverse(split_part(reverse(storage.filename(name)), '.', 1)) $$;

alter table storage.buckets enable row level security;
alter table storage.objects enable row level security;
alter table storage.s3_multipart_uploads enable row level security;
alter table storage.s3_multipart_uploads_parts enable row level security;

-- As on Supabase: request roles hold table privileges and policies decide
-- the rows; with no policy, only service_role sees anything.
grant all on storage.buckets, storage.objects to anon, authenticated, service_role;
grant all on storage.s3_multipart_uploads, storage.s3_multipart_uploads_parts to service_role;
grant execute on function storage.foldername(text), storage.filename(text), storage.extension(text)
    to anon, authenticated, service_role;

-- S3 access keys that an admin issues; a key acts as one user, or as the
-- service role when user_id is null. SigV4 needs the secret itself, so it
-- is kept (only the owner role can read this schema).
create table if not exists selfdb.s3_access_keys (
    access_key_id text primary key,
    secret        text not null,
    user_id       uuid,
    description   text not null default '',
    created_at    timestamptz not null default now(),
    revoked_at    timestamptz
);
