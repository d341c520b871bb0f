-- Object bytes in an upstream S3 store (`--storage-backend s3://...`,
-- storage-s3s/src/upstream.rs).
--
-- A body larger than one part goes up as a multipart upload, which S3
-- keeps (invisible, but billed) until it is completed or aborted. Each is
-- recorded here while it runs: a host that dies mid-upload leaves its row,
-- and any host's collector aborts the upload once `touched_at` (refreshed
-- with every part) is older than the orphan grace period. The row also
-- spares a completed key from the orphan collector until the object row
-- that takes it has committed.
create table if not exists storage.pending_blobs (
    version    text primary key,
    upload_id  text not null,
    touched_at timestamptz not null default now()
);
revoke all on storage.pending_blobs from public;
