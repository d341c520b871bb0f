-- A version names one object's bytes (an inline row or a file), and the
-- host never lets two rows share one: copies link or store anew, multipart
-- completion concatenates into a new version. Request roles may write
-- `storage.objects` (as on Supabase), so without this a row could be
-- pointed at a version someone else's row holds: its downloads would serve
-- the other object's bytes, and deleting it would release them (inline
-- bytes at once, files at the next sweep). The unique index refuses that
-- at the row, whatever policy admitted it.
create unique index if not exists objects_version_unique
    on storage.objects (version);
create unique index if not exists parts_version_unique
    on storage.s3_multipart_uploads_parts (version);
