//! The object store both APIs share: buckets, objects and their files.

use crate::access::{Access, Pools};
use crate::acl::{Acl, CannedAcl};
use crate::error::{StorageError, StorageResult};
use crate::files::FileStore;
use chrono::{DateTime, Utc};
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
    pub(crate) files: FileStore,
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

pub(crate) fn pg_code(err: &tokio_postgres::Error) -> Option<&str> {
    err.as_db_error().map(|db| db.code().code())
}

impl Store {
    /// Opens the file store under `root` (cleaning temp files an earlier
    /// process left) and deletes files whose rows were released while no
    /// host was running to do it.
    pub async fn open(
        root: impl Into<std::path::PathBuf>,
        pools: Pools,
        max_object_bytes: u64,
    ) -> StorageResult<Self> {
        let files = FileStore::open(root).await?;
        let store = Store {
            files,
            pools,
            max_object_bytes,
            released: Arc::new(Notify::new()),
            buckets: Arc::new(Mutex::new(BucketCache::default())),
        };
        store.sweep().await?;
        Ok(store)
    }

    pub fn max_object_bytes(&self) -> u64 {
        self.max_object_bytes
    }

    /// Deletes, in the background, the files of rows that were replaced or
    /// deleted (woken after every such change), after collecting orphans
    /// once.
    pub fn spawn_sweeper(&self, orphan_grace: std::time::Duration) -> tokio::task::JoinHandle<()> {
        let store = self.clone();
        tokio::spawn(async move {
            if let Err(err) = store.collect_orphans(orphan_grace).await {
                tracing::warn!(%err, "collecting unreferenced storage files");
            }
            loop {
                store.released.notified().await;
                if let Err(err) = store.sweep().await {
                    tracing::warn!(%err, "deleting released storage files");
                }
            }
        })
    }

    pub(crate) fn files_released(&self) {
        self.released.notify_one();
    }

    /// Deletes files that no row references and that are older than
    /// `grace`, and inline bytes that no row references: a host that died between moving an upload into place and
    /// committing its row leaves one. The grace period spares uploads that
    /// other hosts sharing the directory are committing right now.
    pub async fn collect_orphans(&self, grace: std::time::Duration) -> StorageResult<usize> {
        let before = std::time::SystemTime::now() - grace;
        let candidates = self.files.versions_older_than(before).await?;
        let mut removed = 0;
        for batch in candidates.chunks(1000) {
            let batch: Vec<String> = batch.to_vec();
            let client = self.pools.owner.get().await?;
            let rows = client
                .query(
                    "select v from unnest($1::text[]) v \
                     where not exists (select 1 from storage.objects o where o.version = v) \
                       and not exists (select 1 from storage.s3_multipart_uploads_parts p where p.version = v)",
                    &[&batch],
                )
                .await?;
            for row in rows {
                let version: String = row.get(0);
                self.files.remove(&version).await?;
                removed += 1;
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

    /// Deletes released files, then forgets them; a crash in between leaves
    /// the rows, so the next sweep finishes the job.
    pub async fn sweep(&self) -> StorageResult<usize> {
        let mut total = 0;
        loop {
            let tx = self.pools.begin_system().await?;
            let rows = tx
                .client()
                .query(
                    "select version from storage.released_files \
                     order by released_at limit 500 for update skip locked",
                    &[],
                )
                .await?;
            if rows.is_empty() {
                tx.commit().await?;
                return Ok(total);
            }
            let versions: Vec<String> = rows.iter().map(|r| r.get(0)).collect();
            for version in &versions {
                if let Err(err) = self.files.remove(version).await {
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
        let owner = access.user_id();
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
