-- S3 conformance (issue 22).

-- A completed multipart upload is kept (without its parts) for a day, so
-- a client that retries CompleteMultipartUpload after a lost answer gets
-- the same result instead of NoSuchUpload, as from S3.
alter table storage.s3_multipart_uploads add column if not exists completed_etag text;
alter table storage.s3_multipart_uploads add column if not exists completed_at timestamptz;

-- A bucket's S3 canned ACL (storage-s3s/src/acl.rs): what anyone, signed
-- or not, may do beyond what the storage policies grant. Separate from
-- Supabase's `public` flag, which makes every object downloadable but not
-- the bucket listable. An object's ACL is `metadata->>'s3Acl'`.
alter table storage.buckets add column if not exists s3_acl text not null default 'private';
do $$
begin
    if not exists (select 1 from pg_constraint where conname = 'buckets_s3_acl_check') then
        alter table storage.buckets add constraint buckets_s3_acl_check
            check (s3_acl in ('private', 'public-read', 'public-read-write'));
    end if;
end $$;

-- The canned ACL a multipart upload's object gets when completed.
alter table storage.s3_multipart_uploads add column if not exists s3_acl text;

-- A bucket's S3 grants to named users ({"<user id>": "READ" | "WRITE" |
-- "FULL_CONTROL"}); an object's are `metadata->'s3Grants'`.
alter table storage.buckets add column if not exists s3_grants jsonb not null default '{}';
