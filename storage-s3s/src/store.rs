//! The object store both APIs share: buckets, objects and their files.

use crate::access::{Access, Pools};
use crate::acl::{Acl, CannedAcl};
use crate::blobs::{Backend, Blobs};
use crate::error::{StorageError, StorageResult};
use chrono::{DateTime, Utc};
use futures::StreamExt;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::Notify;

#[derive(Debug, Clone, serde::Serialize)]
pub struct Bucket {
    pub id: String,
    pub name: String,
    pub owner: Option<String>,
    pub public: bool,
    pub file_size_limit: Option<i64>,
    pub allowed_mime_types: Option<Vec<String>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// S3's ACL (`acl`); not part of Supabase's bucket JSON.
    #[serde(skip)]
    pub s3_acl: Acl,
}

#[derive(Debug, Clone, Default)]
pub struct NewBucket {
    pub id: String,
    pub name: String,
    pub s3_acl: Acl,
    pub public: bool,
    pub file_size_limit: Option<i64>,
    pub allowed_mime_types: Option<Vec<String>>,
    /// The owner to record instead of the caller (SelfDB's own API creates
    /// a user's bucket with the service role, having checked the user).
    pub owner: Option<String>,
}

/// Fields to change; `None` leaves one as it is.
#[derive(Debug, Clone, Default)]
pub struct BucketUpdate {
    pub public: Option<bool>,
    pub file_size_limit: Option<Option<i64>>,
    pub allowed_mime_types: Option<Option<Vec<String>>>,
}

#[derive(Clone)]
pub struct Store {
    pub(crate) blobs: Blobs,
    pub(crate) pools: Pools,
    /// Upper bound on one object, whatever a bucket allows.
    pub(crate) max_object_bytes: u64,
    released: Arc<Notify>,
    /// Buckets as the store last read them, for limits on every upload.
    buckets: Arc<Mutex<BucketCache>>,
}

#[derive(Default)]
struct BucketCache {
    entries: HashMap<String, (Bucket, Instant)>,
    /// Bumped by every change this host makes: a read that began before a
    /// change does not put what it read back (it may be the old row).
    generation: u64,
}

/// How long a bucket's limits may be served from memory: a change made
/// through another host applies within this time (at once on this one).
const BUCKET_CACHE_TTL: Duration = Duration::from_secs(1);

const BUCKET_COLUMNS: &str = "id, name, owner_id, public, file_size_limit, allowed_mime_types, \
                              created_at, updated_at, s3_acl, s3_grants";

fn bucket_from_row(row: &tokio_postgres::Row) -> Bucket {
    Bucket {
        id: row.get(0),
        name: row.get(1),
        owner: row.get(2),
        public: row.get(3),
        file_size_limit: row.get(4),
        allowed_mime_types: row.get(5),
        created_at: row.get(6),
        updated_at: row.get(7),
        s3_acl: Acl {
            canned: CannedAcl::parse(row.get(8)).unwrap_or_default(),
            grants: Acl::grants_from_json(row.get::<_, Option<serde_json::Value>>(9).as_ref()),
        },
    }
}

/// Advisory lock that keeps object bytes from being deleted while a backup
/// copies them: every deletion of committed bytes (sweeps, orphan and
/// abandoned-upload collection) runs under it shared, so hosts never wait
/// for one another; `selfdb backup` takes it exclusively from before its
/// snapshot until the last object is copied. A row visible in the snapshot
/// therefore keeps its bytes until the backup has them.
pub const BYTES_DELETION_LOCK: i64 = 0x5e1f_db00_0004;

/// Held (per transaction) by the host collecting orphans, so that hosts
/// sharing an upstream bucket do not all list it at once.
const ORPHAN_COLLECTION_LOCK: i64 = 0x5e1f_db00_0005;

pub(crate) fn pg_code(err: &tokio_postgres::Error) -> Option<&str> {
    err.as_db_error().map(|db| db.code().code())
}

impl Store {
    /// Opens where the bytes live (cleaning temp files an earlier process
    /// left, or checking that the upstream bucket answers); the sweeper
    /// then deletes the bytes of rows released while no host ran.
    pub async fn open(
        backend: &Backend,
        pools: Pools,
        max_object_bytes: u64,
    ) -> StorageResult<Self> {
        let blobs = Blobs::open(backend, &pools.owner, max_object_bytes).await?;
        let store = Store {
            blobs,
            pools,
            max_object_bytes,
            released: Arc::new(Notify::new()),
            buckets: Arc::new(Mutex::new(BucketCache::default())),
        };
        // Released bytes are deleted by the sweeper's first pass, under the
        // deletion lock: a host starting while a backup copies must not.
        Ok(store)
    }

    pub fn max_object_bytes(&self) -> u64 {
        self.max_object_bytes
    }

    /// `local <dir>` or the upstream store's `s3://` location.
    pub fn backend(&self) -> String {
        self.blobs.describe()
    }

    /// Deletes, in the background, the bytes of rows that were replaced
    /// or deleted (woken after every such change, and on a timer for the
    /// releases of other hosts and those still within the release grace),
    /// and collects orphans and abandoned uploads: at start, and for an
    /// upstream store every `orphan_grace`, so that a surviving host cleans
    /// up after one that died.
    pub fn spawn_sweeper(&self, orphan_grace: Duration) -> tokio::task::JoinHandle<()> {
        let store = self.clone();
        let tick = match self.blobs.release_grace() {
            Duration::ZERO => Duration::from_secs(60),
            grace => (grace / 2).clamp(Duration::from_millis(100), Duration::from_secs(60)),
        };
        // Local files are collected at start only: a host's orphans are its
        // own and it collects them when it comes back, and reading a large
        // directory tree every few minutes is not free. Hosts share an
        // upstream bucket, where one that died may never come back.
        let collect_every = match self.blobs {
            Blobs::Local(_) => None,
            Blobs::Upstream(_) => Some(orphan_grace.max(Duration::from_secs(1))),
        };
        tokio::spawn(async move {
            // `None` once no further collection is due.
            let mut next_collection = Some(Instant::now());
            loop {
                match store.deletion_permit().await {
                    Ok(Some(permit)) => {
                        let due = next_collection.is_some_and(|at| Instant::now() >= at);
                        if due && permit.may_collect().await {
                            if let Err(err) = store.collect_orphans(orphan_grace).await {
                                tracing::warn!(%err, "collecting unreferenced storage files");
                            }
                            if let Err(err) = store.blobs.abandoned_uploads(orphan_grace).await {
                                tracing::warn!(%err, "aborting abandoned upstream uploads");
                            }
                            next_collection = collect_every.map(|every| Instant::now() + every);
                        }
                        if let Err(err) = store.sweep().await {
                            tracing::warn!(%err, "deleting released storage files");
                        }
                        drop(permit);
                    }
                    // A backup is copying bytes: try again at the next tick.
                    Ok(None) => {}
                    Err(err) => tracing::warn!(%err, "taking the storage deletion lock"),
                }
                let wait = match next_collection {
                    Some(at) => tick.min(at.saturating_duration_since(Instant::now())),
                    None => tick,
                };
                tokio::select! {
                    _ = store.released.notified() => {}
                    _ = tokio::time::sleep(wait) => {}
                }
            }
        })
    }

    /// A transaction holding [`BYTES_DELETION_LOCK`] shared, or `None`
    /// while a backup holds it. Deletions run while it is open.
    async fn deletion_permit(&self) -> StorageResult<Option<DeletionPermit>> {
        let client = self.pools.owner.get().await?;
        client.batch_execute("begin").await?;
        let granted: bool = client
            .query_one(
                "select pg_try_advisory_xact_lock_shared($1)",
                &[&BYTES_DELETION_LOCK],
            )
            .await?
            .get(0);
        if !granted {
            client.batch_execute("rollback").await?;
            return Ok(None);
        }
        Ok(Some(DeletionPermit {
            client: Some(client),
        }))
    }

    pub(crate) fn files_released(&self) {
        self.released.notify_one();
    }

    /// Deletes bytes that no row references and that are older than
    /// `grace`, and inline bytes that no row references: a host that died
    /// between writing an upload and committing its row leaves them. The
    /// grace period spares uploads that other hosts sharing the bytes are
    /// committing right now; upstream multipart uploads in progress are
    /// spared by their `pending_blobs` row.
    pub async fn collect_orphans(&self, grace: Duration) -> StorageResult<usize> {
        let before = std::time::SystemTime::now() - grace;
        let mut candidates = self.blobs.versions_older_than(before).await?;
        let mut removed = 0;
        let mut batch: Vec<String> = Vec::with_capacity(1000);
        loop {
            let next = candidates.next().await.transpose()?;
            let done = next.is_none();
            batch.extend(next);
            if batch.len() < 1000 && !done {
                continue;
            }
            if !batch.is_empty() {
                let client = self.pools.owner.get().await?;
                let rows = client
                    .query(
                        "select v from unnest($1::text[]) v \
                         where not exists (select 1 from storage.objects o where o.version = v) \
                           and not exists (select 1 from storage.s3_multipart_uploads_parts p where p.version = v) \
                           and not exists (select 1 from storage.pending_blobs b where b.version = v)",
                        &[&batch],
                    )
                    .await?;
                drop(client);
                for row in rows {
                    let version: String = row.get(0);
                    self.blobs.remove(&version).await?;
                    removed += 1;
                }
                batch.clear();
            }
            if done {
                break;
            }
        }
        if removed > 0 {
            tracing::info!(removed, "removed storage files that no object references");
        }
        // Inline bytes commit with their row, so none is ever in flight:
        // any without a row lost it outside the release trigger (a
        // `truncate`, a restore with triggers off).
        let client = self.pools.owner.get().await?;
        let inline = client
            .execute(
                "delete from storage.object_data d \
                 where not exists (select 1 from storage.objects o where o.version = d.version)",
                &[],
            )
            .await?;
        if inline > 0 {
            tracing::info!(
                inline,
                "removed inline object bytes that no object references"
            );
        }
        Ok(removed + inline as usize)
    }

    /// Deletes released bytes (those released longer ago than the
    /// backend's release grace), then forgets them; a crash in between
    /// leaves the rows, so the next sweep finishes the job.
    pub async fn sweep(&self) -> StorageResult<usize> {
        let mut total = 0;
        loop {
            let tx = self.pools.begin_system().await?;
            let rows = tx
                .client()
                .query(
                    "select version from storage.released_files \
                     where released_at <= now() - make_interval(secs => $1) \
                     order by released_at limit 500 for update skip locked",
                    &[&self.blobs.release_grace().as_secs_f64()],
                )
                .await?;
            if rows.is_empty() {
                tx.commit().await?;
                return Ok(total);
            }
            let versions: Vec<String> = rows.iter().map(|r| r.get(0)).collect();
            for version in &versions {
                if let Err(err) = self.blobs.remove(version).await {
                    tracing::warn!(%err, version, "deleting a released storage file");
                }
            }
            tx.client()
                .execute(
                    "delete from storage.released_files where version = any($1)",
                    &[&versions],
                )
                .await?;
            tx.commit().await?;
            total += versions.len();
        }
    }

    /// A bucket as the store itself sees it (no RLS): for limits and the
    /// public flag.
    pub async fn bucket_system(&self, id: &str) -> StorageResult<Bucket> {
        let mut generation = None;
        if let Ok(cache) = self.buckets.lock() {
            if let Some((bucket, at)) = cache.entries.get(id) {
                if at.elapsed() < BUCKET_CACHE_TTL {
                    return Ok(bucket.clone());
                }
            }
            generation = Some(cache.generation);
        }
        let client = self.pools.owner.get().await?;
        let sql = format!("select {BUCKET_COLUMNS} from storage.buckets where id = $1");
        let statement = client.prepare_cached(&sql).await?;
        let row = client.query_opt(&statement, &[&id]).await?;
        let bucket = row
            .as_ref()
            .map(bucket_from_row)
            .ok_or(StorageError::NoSuchBucket)?;
        if let Ok(mut cache) = self.buckets.lock() {
            if generation == Some(cache.generation) {
                if cache.entries.len() > 10_000 {
                    cache.entries.clear();
                }
                cache
                    .entries
                    .insert(id.to_owned(), (bucket.clone(), Instant::now()));
            }
        }
        Ok(bucket)
    }

    pub(crate) fn forget_bucket(&self, id: &str) {
        if let Ok(mut cache) = self.buckets.lock() {
            cache.entries.remove(id);
            cache.generation += 1;
        }
    }

    pub async fn list_buckets(&self, access: &Access) -> StorageResult<Vec<Bucket>> {
        let sql =
            format!("select {BUCKET_COLUMNS} from storage.buckets order by name collate \"C\"");
        let rows = self.pools.once(access, &sql, &[]).await??;
        Ok(rows.iter().map(bucket_from_row).collect())
    }

    pub async fn get_bucket(&self, access: &Access, id: &str) -> StorageResult<Bucket> {
        let sql = format!("select {BUCKET_COLUMNS} from storage.buckets where id = $1");
        let rows = self.pools.once(access, &sql, &[&id]).await??;
        rows.first()
            .map(bucket_from_row)
            .ok_or(StorageError::NoSuchBucket)
    }

    pub async fn create_bucket(&self, access: &Access, new: NewBucket) -> StorageResult<Bucket> {
        crate::names::check_bucket_name(&new.id)?;
        if let Some(limit) = new.file_size_limit {
            if limit < 0 {
                return Err(StorageError::InvalidArgument(
                    "file_size_limit cannot be negative".into(),
                ));
            }
        }
        let owner = new.owner.as_deref().or(access.user_id());
        let owner_uuid = owner.and_then(|o| uuid::Uuid::parse_str(o).ok());
        let sql = format!(
            "insert into storage.buckets (id, name, owner, owner_id, public, file_size_limit, allowed_mime_types, s3_acl, s3_grants) \
             values ($1, $2, $3, $4, $5, $6, $7, $8, $9) returning {BUCKET_COLUMNS}"
        );
        let rows = self
            .pools
            .once(
                access,
                &sql,
                &[
                    &new.id,
                    &new.name,
                    &owner_uuid,
                    &owner,
                    &new.public,
                    &new.file_size_limit,
                    &new.allowed_mime_types,
                    &new.s3_acl.canned.as_str(),
                    &new.s3_acl.grants_json(),
                ],
            )
            .await?
            .map_err(|err| match pg_code(&err) {
                Some("23505") => StorageError::BucketExists,
                _ => err.into(),
            })?;
        rows.first()
            .map(bucket_from_row)
            .ok_or_else(|| StorageError::Database("the insert returned no row".into()))
    }

    pub async fn update_bucket(
        &self,
        access: &Access,
        id: &str,
        update: BucketUpdate,
    ) -> StorageResult<Bucket> {
        let sql = format!(
            "update storage.buckets set \
                 public = coalesce($2, public), \
                 file_size_limit = case when $3 then $4 else file_size_limit end, \
                 allowed_mime_types = case when $5 then $6 else allowed_mime_types end, \
                 updated_at = now() \
             where id = $1 returning {BUCKET_COLUMNS}"
        );
        let (set_limit, limit) = match update.file_size_limit {
            Some(limit) => (true, limit),
            None => (false, None),
        };
        let (set_types, types) = match update.allowed_mime_types {
            Some(types) => (true, types),
            None => (false, None),
        };
        let rows = self
            .pools
            .once(
                access,
                &sql,
                &[&id, &update.public, &set_limit, &limit, &set_types, &types],
            )
            .await??;
        self.forget_bucket(id);
        rows.first()
            .map(bucket_from_row)
            .ok_or(StorageError::NoSuchBucket)
    }

    /// Deletes every object of the bucket the caller may delete.
    pub async fn empty_bucket(&self, access: &Access, id: &str) -> StorageResult<u64> {
        let tx = self.pools.begin(access).await?;
        let exists = tx
            .client()
            .query_opt("select 1 from storage.buckets where id = $1", &[&id])
            .await?
            .is_some();
        if !exists {
            return Err(StorageError::NoSuchBucket);
        }
        let deleted = tx
            .client()
            .execute("delete from storage.objects where bucket_id = $1", &[&id])
            .await?;
        tx.commit().await?;
        if deleted > 0 {
            self.files_released();
        }
        Ok(deleted)
    }

    pub async fn delete_bucket(&self, access: &Access, id: &str) -> StorageResult<()> {
        let deleted = self
            .pools
            .once(
                access,
                "delete from storage.buckets where id = $1 returning 1",
                &[&id],
            )
            .await?
            .map_err(|err| match pg_code(&err) {
                Some("23503") => StorageError::BucketNotEmpty,
                _ => err.into(),
            })?;
        self.forget_bucket(id);
        if deleted.is_empty() {
            return Err(StorageError::NoSuchBucket);
        }
        Ok(())
    }
}

/// An open transaction holding the deletion lock shared; ending it (on
/// drop, in the background) lets a waiting backup start.
struct DeletionPermit {
    client: Option<deadpool_postgres::Object>,
}

impl DeletionPermit {
    /// Whether this host is the one to collect orphans now (another is
    /// doing it otherwise).
    async fn may_collect(&self) -> bool {
        let Some(client) = &self.client else {
            return false;
        };
        client
            .query_one(
                "select pg_try_advisory_xact_lock($1)",
                &[&ORPHAN_COLLECTION_LOCK],
            )
            .await
            .map(|row| row.get::<_, bool>(0))
            .unwrap_or(false)
    }
}

impl Drop for DeletionPermit {
    fn drop(&mut self) {
        if let Some(client) = self.client.take() {
            if let Ok(runtime) = tokio::runtime::Handle::try_current() {
                runtime.spawn(async move {
                    // A connection whose rollback fails is not put back.
                    if client.batch_execute("rollback").await.is_err() {
                        let _ = deadpool_postgres::Object::take(client);
                    }
                });
            }
        }
    }
}
