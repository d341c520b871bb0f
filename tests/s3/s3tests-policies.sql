-- Storage policies for Ceph's s3-tests (tests/tests/all/s3_conformance.rs):
-- each suite user owns the buckets it creates and every object in them,
-- which is what an S3 account means. SelfDB ships no storage policy (a
-- user key can do nothing until an app says what users may do), so the
-- harness installs these, as an app would.
create policy s3t_bucket_insert on storage.buckets for insert to authenticated
    with check (owner_id = auth.uid()::text);
create policy s3t_bucket_select on storage.buckets for select to authenticated
    using (owner_id = auth.uid()::text);
create policy s3t_bucket_update on storage.buckets for update to authenticated
    using (owner_id = auth.uid()::text);
create policy s3t_bucket_delete on storage.buckets for delete to authenticated
    using (owner_id = auth.uid()::text);
create policy s3t_objects on storage.objects for all to authenticated
    using (exists (select 1 from storage.buckets b
                   where b.id = bucket_id and b.owner_id = auth.uid()::text))
    with check (exists (select 1 from storage.buckets b
                        where b.id = bucket_id and b.owner_id = auth.uid()::text));
