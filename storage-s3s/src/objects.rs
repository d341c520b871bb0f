//! Objects: write, read, copy, move and delete, each metadata change in a
//! transaction as the caller.

use crate::access::Access;
use crate::acl::{Acl, Permission};
use crate::blobs::Written;
use crate::body::ObjectBody;
use crate::error::{StorageError, StorageResult};
use crate::inline::{self, Gathered};
use crate::names::check_key;
use crate::store::{pg_code, Bucket, Store};
use bytes::Bytes;
use chrono::{DateTime, Utc};
use futures::Stream;
use md5::Digest;
use serde_json::{json, Value};
use tokio_postgres::types::ToSql;

// The download `Range` parser lives with the copy-range one; kept reachable
// here, where it always was.
pub use crate::range::{byte_range, UnsatisfiableRange};

/// Where a new object's bytes went.
enum Stored {
    File(Written),
    Inline(Bytes),
}

/// A row to commit under a write condition.
struct ConditionalRow<'a, 'b> {
    new: NewRow<'a>,
    metadata: &'b Value,
    owner: Option<&'b str>,
    owner_uuid: Option<uuid::Uuid>,
    user_metadata: &'b Option<Value>,
}

/// What a new object's row records about its bytes.
#[derive(Clone, Copy)]
struct NewRow<'a> {
    bucket_id: &'a str,
    key: &'a str,
    version: &'a str,
    size: u64,
    etag: &'a str,
    content_type: &'a str,
}

#[derive(Debug, Clone)]
pub struct ObjectInfo {
    pub id: uuid::Uuid,
    pub bucket_id: String,
    pub name: String,
    pub owner: Option<String>,
    pub version: String,
    pub size: u64,
    /// Without quotes: an MD5 in hex, or `md5-of-md5s-N` for multipart.
    pub etag: String,
    pub content_type: String,
    pub cache_control: Option<String>,
    /// Supabase's `metadata` column, as stored.
    pub metadata: Value,
    pub user_metadata: Option<Value>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub last_accessed_at: DateTime<Utc>,
}

pub(crate) const OBJECT_COLUMNS: &str = "id, bucket_id, name, owner_id, version, metadata, \
     user_metadata, created_at, updated_at, last_accessed_at";

pub(crate) fn object_from_row(row: &tokio_postgres::Row) -> ObjectInfo {
    let metadata: Option<Value> = row.get(5);
    let metadata = metadata.unwrap_or(Value::Null);
    let text = |key: &str| metadata.get(key).and_then(Value::as_str).map(str::to_owned);
    ObjectInfo {
        id: row.get(0),
        bucket_id: row.get(1),
        name: row.get(2),
        owner: row.get(3),
        version: row.get::<_, Option<String>>(4).unwrap_or_default(),
        size: metadata.get("size").and_then(Value::as_u64).unwrap_or(0),
        etag: text("eTag")
            .map(|e| e.trim_matches('"').to_owned())
            .unwrap_or_default(),
        content_type: text("mimetype").unwrap_or_else(|| "application/octet-stream".into()),
        cache_control: text("cacheControl"),
        user_metadata: row.get(6),
        created_at: row.get(7),
        updated_at: row.get(8),
        last_accessed_at: row.get(9),
        metadata,
    }
}

/// What an upload says about itself besides its bytes.
#[derive(Debug, Clone, Default)]
pub struct PutOptions {
    pub content_type: Option<String>,
    pub cache_control: Option<String>,
    pub user_metadata: Option<Value>,
    /// Replace an existing object (S3 always does; Supabase only with
    /// `x-upsert`).
    pub overwrite: bool,
    /// `Content-MD5` (base64) the client sent, checked against the bytes.
    pub content_md5: Option<String>,
    /// Owner to record instead of the caller (a signed upload URL records
    /// the user who signed it).
    pub owner: Option<String>,
    /// The size the client announced (`Content-Length`): an upload over the
    /// limit is refused before a byte is read.
    pub declared_size: Option<u64>,
    /// What the object being replaced must be (S3's conditional writes),
    /// checked in the statement that commits the row.
    pub condition: WriteCondition,
    /// S3's canned ACL for the new object (`acl`); a write without one is
    /// private, as on S3.
    pub acl: Option<Acl>,
    /// Headers S3 stores with an object and answers reads with.
    pub headers: StoredHeaders,
    /// A multipart object's part sizes, for reads by part number.
    pub part_sizes: Option<Vec<u64>>,
}

/// The representation headers S3 keeps with an object besides its type
/// and caching (kept in `metadata` under Supabase-style names).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StoredHeaders {
    pub content_encoding: Option<String>,
    pub content_disposition: Option<String>,
    pub content_language: Option<String>,
    /// `Expires`, in RFC 3339.
    pub expires: Option<String>,
}

impl StoredHeaders {
    const KEYS: [&'static str; 4] = [
        "contentEncoding",
        "contentDisposition",
        "contentLanguage",
        "expires",
    ];

    fn fields(&self) -> [&Option<String>; 4] {
        [
            &self.content_encoding,
            &self.content_disposition,
            &self.content_language,
            &self.expires,
        ]
    }

    /// An object's stored headers, from its `metadata`.
    pub fn of(metadata: &Value) -> Self {
        let text = |key: &str| metadata.get(key).and_then(Value::as_str).map(str::to_owned);
        let [content_encoding, content_disposition, content_language, expires] =
            Self::KEYS.map(text);
        StoredHeaders {
            content_encoding,
            content_disposition,
            content_language,
            expires,
        }
    }
}

/// A conditional write's precondition on the object it replaces.
/// `If-None-Match: *` is `PutOptions::overwrite == false`, as for
/// Supabase's uploads without `x-upsert`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum WriteCondition {
    #[default]
    None,
    /// `If-Match`: the object exists and, given an ETag (unquoted), has it;
    /// `None` is `If-Match: *`.
    IfMatch(Option<String>),
    /// `If-None-Match: <etag>`: no object, or one with another ETag.
    IfNoneMatch(String),
}

/// A conditional delete's precondition: every given field must match.
#[derive(Debug, Clone, Default)]
pub struct DeleteCondition {
    /// Unquoted ETag; `*` matches any.
    pub etag: Option<String>,
    /// Last-Modified, to the second, as S3 reports it.
    pub last_modified: Option<DateTime<Utc>>,
    pub size: Option<i64>,
}

/// How a copy is written.
#[derive(Debug, Clone, Default)]
pub struct CopyOptions {
    /// Replaces the source's content type, user metadata and headers.
    pub replace: Option<PutOptions>,
    /// Replace an object already at the destination.
    pub overwrite: bool,
    /// The copy's ACL (S3's `x-amz-acl` on CopyObject); private if none.
    pub acl: Option<Acl>,
}

/// How a read is authorised.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Read {
    /// RLS on `storage.objects` decides.
    AsCaller,
    /// Anyone may read objects of public buckets.
    Public,
}

fn metadata_json(size: u64, etag: &str, content_type: &str, options: &PutOptions) -> Value {
    let cache_control = options.cache_control.as_deref();
    let mut metadata = json!({
        "eTag": format!("\"{etag}\""),
        "size": size,
        "mimetype": content_type,
        "cacheControl": cache_control.unwrap_or("no-cache"),
        "lastModified": Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        "contentLength": size,
        "httpStatusCode": 200,
    });
    if let Some(Value::Object(keys)) = options.acl.as_ref().map(Acl::object_keys) {
        for (key, value) in keys {
            metadata[key] = value;
        }
    }
    if let Some(sizes) = &options.part_sizes {
        metadata["s3Parts"] = json!(sizes);
    }
    for (key, value) in StoredHeaders::KEYS.iter().zip(options.headers.fields()) {
        if let Some(value) = value {
            metadata[*key] = json!(value);
        }
    }
    metadata
}

/// Whether `content_type` matches the bucket's list (`image/*` style
/// wildcards included).
fn mime_allowed(bucket: &Bucket, content_type: &str) -> bool {
    let Some(allowed) = &bucket.allowed_mime_types else {
        return true;
    };
    if allowed.is_empty() {
        return true;
    }
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    allowed.iter().any(|pattern| {
        let pattern = pattern.trim().to_ascii_lowercase();
        match pattern.strip_suffix("/*") {
            Some(kind) => essence.split('/').next() == Some(kind),
            None => pattern == essence || pattern == "*/*",
        }
    })
}

impl Store {
    /// The byte limit for one object of `bucket`.
    pub fn size_limit(&self, bucket: &Bucket) -> u64 {
        match bucket.file_size_limit {
            Some(limit) if limit > 0 => (limit as u64).min(self.max_object_bytes),
            _ => self.max_object_bytes,
        }
    }

    /// Checks that an upload of `content_type` to `bucket_id` may start;
    /// returns the bucket, for its limits.
    pub async fn bucket_for_upload(
        &self,
        bucket_id: &str,
        key: &str,
        content_type: &str,
    ) -> StorageResult<Bucket> {
        check_key(key)?;
        let bucket = self.bucket_system(bucket_id).await?;
        if !mime_allowed(&bucket, content_type) {
            return Err(StorageError::InvalidMimeType(content_type.to_owned()));
        }
        Ok(bucket)
    }

    /// Streams an upload to disk, then records it; the object appears to
    /// readers whole, or not at all.
    pub async fn put_object<S, E>(
        &self,
        access: &Access,
        bucket_id: &str,
        key: &str,
        body: S,
        options: PutOptions,
    ) -> StorageResult<ObjectInfo>
    where
        S: Stream<Item = Result<Bytes, E>>,
        E: std::fmt::Display,
    {
        let content_type = options
            .content_type
            .clone()
            .unwrap_or_else(|| "application/octet-stream".into());
        let bucket = self
            .bucket_for_upload(bucket_id, key, &content_type)
            .await?;
        let limit = self.size_limit(&bucket);
        let (stored, etag) = match inline::gather(body, limit).await? {
            Gathered::Small(bytes) => {
                let etag = hex::encode(md5::Md5::digest(&bytes));
                (Stored::Inline(bytes), etag)
            }
            Gathered::Large(rest, head) => {
                let written = self
                    .blobs
                    .write(inline::rejoin(rest, head), Some(limit))
                    .await?;
                let etag = written.etag.clone();
                (Stored::File(written), etag)
            }
        };
        if let Some(expected) = &options.content_md5 {
            use base64::Engine;
            let matches = base64::engine::general_purpose::STANDARD
                .decode(expected.trim())
                .is_ok_and(|raw| hex::encode(raw) == etag);
            if !matches {
                return Err(StorageError::BadDigest);
            }
        }
        match stored {
            Stored::File(written) => {
                self.record(access, &bucket.id, key, written, &content_type, &options)
                    .await
            }
            Stored::Inline(bytes) => {
                self.record_inline(
                    access,
                    &bucket.id,
                    key,
                    &bytes,
                    &etag,
                    &content_type,
                    &options,
                )
                .await
            }
        }
    }

    /// Commits the row of an inline object together with its bytes.
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn record_inline(
        &self,
        access: &Access,
        bucket_id: &str,
        key: &str,
        bytes: &[u8],
        etag: &str,
        content_type: &str,
        options: &PutOptions,
    ) -> StorageResult<ObjectInfo> {
        let version = inline::new_version();
        let row = NewRow {
            bucket_id,
            key,
            version: &version,
            size: bytes.len() as u64,
            etag,
            content_type,
        };
        self.commit_row(access, row, options, Some(bytes)).await
    }

    /// Commits the row of a file that is already durable on disk.
    pub(crate) async fn record(
        &self,
        access: &Access,
        bucket_id: &str,
        key: &str,
        written: Written,
        content_type: &str,
        options: &PutOptions,
    ) -> StorageResult<ObjectInfo> {
        let row = NewRow {
            bucket_id,
            key,
            version: &written.version,
            size: written.size,
            etag: &written.etag,
            content_type,
        };
        let info = self.commit_row(access, row, options, None).await?;
        written.keep();
        Ok(info)
    }

    /// Inserts (or, to overwrite, updates) an object's row as the caller,
    /// with an inline object's bytes in the same transaction. Where the
    /// policies refuse and the bucket's ACL lets anyone write, the row is
    /// written by the store, recorded as the caller's.
    async fn commit_row(
        &self,
        access: &Access,
        new: NewRow<'_>,
        options: &PutOptions,
        inline_bytes: Option<&[u8]>,
    ) -> StorageResult<ObjectInfo> {
        match self.commit_row_as(access, new, options, inline_bytes).await {
            Err(StorageError::AccessDenied(why)) if !matches!(access, Access::System) => {
                let bucket = self.bucket_system(new.bucket_id).await?;
                if !bucket.s3_acl.allows(access, Permission::Write) {
                    return Err(StorageError::AccessDenied(why));
                }
                let mut options = options.clone();
                options.owner = options.owner.or(access.user_id().map(str::to_owned));
                self.commit_row_as(&Access::System, new, &options, inline_bytes)
                    .await
            }
            other => other,
        }
    }

    async fn commit_row_as(
        &self,
        access: &Access,
        new: NewRow<'_>,
        options: &PutOptions,
        inline_bytes: Option<&[u8]>,
    ) -> StorageResult<ObjectInfo> {
        let metadata = metadata_json(new.size, new.etag, new.content_type, options);
        let owner = options.owner.as_deref().or(access.user_id());
        let owner_uuid = owner.and_then(|o| uuid::Uuid::parse_str(o).ok());
        if options.condition != WriteCondition::None {
            let row = ConditionalRow {
                new,
                metadata: &metadata,
                owner,
                owner_uuid,
                user_metadata: &options.user_metadata,
            };
            return self
                .commit_conditional(access, row, &options.condition, inline_bytes)
                .await;
        }
        let conflict = if options.overwrite {
            "on conflict (bucket_id, name) do update set \
                 owner = excluded.owner, owner_id = excluded.owner_id, \
                 version = excluded.version, metadata = excluded.metadata, \
                 user_metadata = excluded.user_metadata, \
                 updated_at = now(), last_accessed_at = now()"
        } else {
            ""
        };
        let sql = format!(
            "insert into storage.objects (bucket_id, name, owner, owner_id, version, metadata, user_metadata) \
             values ($1, $2, $3, $4, $5, $6, $7) {conflict} \
             returning {OBJECT_COLUMNS}, xmax <> 0"
        );
        let params: [&(dyn ToSql + Sync); 7] = [
            &new.bucket_id,
            &new.key,
            &owner_uuid,
            &owner,
            &new.version,
            &metadata,
            &options.user_metadata,
        ];
        let outcome = match inline_bytes {
            None => self.pools.once(access, &sql, &params).await?,
            Some(bytes) => {
                self.pools
                    .once_storing(access, (new.version, bytes), &sql, &params)
                    .await?
            }
        };
        let rows = outcome.map_err(|err| match pg_code(&err) {
            Some("23503") => StorageError::NoSuchBucket,
            _ => err.into(),
        })?;
        let row = rows
            .first()
            .ok_or_else(|| StorageError::Database("the insert returned no row".into()))?;
        let replaced: bool = row.get(10);
        if replaced {
            self.files_released();
        }
        Ok(object_from_row(row))
    }

    /// Commits a row only if the object it replaces meets `condition`, in
    /// a transaction of its own so that an inline object's bytes, stored
    /// first, go away with a refused write. Only conditional writes pay
    /// the extra round trips.
    async fn commit_conditional(
        &self,
        access: &Access,
        row: ConditionalRow<'_, '_>,
        condition: &WriteCondition,
        inline_bytes: Option<&[u8]>,
    ) -> StorageResult<ObjectInfo> {
        let (sql, etag) = match condition {
            WriteCondition::IfMatch(etag) => (
                format!(
                    "update storage.objects set owner = $3, owner_id = $4, version = $5, \
                         metadata = $6, user_metadata = $7, updated_at = now(), last_accessed_at = now() \
                     where bucket_id = $1 and name = $2 \
                       and ($8::text is null or metadata->>'eTag' = $8) \
                     returning {OBJECT_COLUMNS}, true"
                ),
                etag.as_ref(),
            ),
            WriteCondition::IfNoneMatch(etag) => (
                format!(
                    "insert into storage.objects (bucket_id, name, owner, owner_id, version, metadata, user_metadata) \
                     values ($1, $2, $3, $4, $5, $6, $7) \
                     on conflict (bucket_id, name) do update set \
                         owner = excluded.owner, owner_id = excluded.owner_id, \
                         version = excluded.version, metadata = excluded.metadata, \
                         user_metadata = excluded.user_metadata, \
                         updated_at = now(), last_accessed_at = now() \
                     where storage.objects.metadata->>'eTag' is distinct from $8 \
                     returning {OBJECT_COLUMNS}, xmax <> 0"
                ),
                Some(etag),
            ),
            WriteCondition::None => {
                return Err(StorageError::Database(
                    "an unconditional write took the conditional path".into(),
                ))
            }
        };
        let quoted = etag.map(|e| format!("\"{e}\""));
        let tx = self
            .pools
            .begin_storing(access, inline_bytes.map(|b| (row.new.version, b)))
            .await?;
        let params: [&(dyn ToSql + Sync); 8] = [
            &row.new.bucket_id,
            &row.new.key,
            &row.owner_uuid,
            &row.owner,
            &row.new.version,
            row.metadata,
            row.user_metadata,
            &quoted,
        ];
        let rows = tx
            .client()
            .query(&sql, &params)
            .await
            .map_err(|err| match pg_code(&err) {
                Some("23503") => StorageError::NoSuchBucket,
                _ => err.into(),
            })?;
        let Some(committed) = rows.first() else {
            let visible = tx
                .client()
                .query_opt(
                    "select 1 from storage.objects where bucket_id = $1 and name = $2",
                    &[&row.new.bucket_id, &row.new.key],
                )
                .await?
                .is_some();
            tx.rollback().await?;
            return Err(self
                .conditional_refusal(&row.new, condition, quoted.as_deref(), visible)
                .await?);
        };
        let replaced: bool = committed.get(10);
        let info = object_from_row(committed);
        tx.commit().await?;
        if replaced {
            self.files_released();
        }
        Ok(info)
    }

    /// Why a conditional write changed no row. The statement runs under the
    /// policies, which can hide the row or refuse to update it; that is
    /// AccessDenied (which an ACL that lets the caller write may overrule,
    /// see `commit_row`), not a failed precondition. A failed precondition
    /// is told only to a caller who may see the object.
    async fn conditional_refusal(
        &self,
        new: &NewRow<'_>,
        condition: &WriteCondition,
        quoted: Option<&str>,
        visible: bool,
    ) -> StorageResult<StorageError> {
        let client = self.pools.owner.get().await?;
        let stored = client
            .query_opt(
                "select metadata->>'eTag' from storage.objects where bucket_id = $1 and name = $2",
                &[&new.bucket_id, &new.key],
            )
            .await?
            .map(|row| row.get::<_, Option<String>>(0));
        let Some(etag) = stored else {
            return Ok(match condition {
                WriteCondition::IfMatch(_) => StorageError::NoSuchKey,
                _ => StorageError::PreconditionFailed,
            });
        };
        let holds = match condition {
            WriteCondition::IfMatch(None) | WriteCondition::None => true,
            WriteCondition::IfMatch(Some(_)) => etag.as_deref() == quoted,
            WriteCondition::IfNoneMatch(_) => etag.as_deref() != quoted,
        };
        Ok(match holds || !visible {
            true => StorageError::AccessDenied(
                "the storage policies do not let the caller replace this object".into(),
            ),
            false => StorageError::PreconditionFailed,
        })
    }

    /// Deletes one object if it meets `condition`: `Ok(None)` when there is
    /// no such object (S3 answers a delete of nothing with success), a
    /// precondition failure when it exists and differs.
    pub async fn delete_object_if(
        &self,
        access: &Access,
        bucket_id: &str,
        key: &str,
        condition: &DeleteCondition,
    ) -> StorageResult<Option<ObjectInfo>> {
        let etag = condition
            .etag
            .as_deref()
            .filter(|e| *e != "*")
            .map(|e| format!("\"{}\"", e.trim_matches('"')));
        let sql = format!(
            "delete from storage.objects where bucket_id = $1 and name = $2 \
               and ($3::text is null or metadata->>'eTag' = $3) \
               and ($4::timestamptz is null or date_trunc('second', updated_at) = $4) \
               and ($5::bigint is null or (metadata->>'size')::bigint = $5) \
             returning {OBJECT_COLUMNS}"
        );
        let tx = self.pools.begin(access).await?;
        let deleted = tx
            .client()
            .query_opt(
                &sql,
                &[
                    &bucket_id,
                    &key,
                    &etag,
                    &condition.last_modified,
                    &condition.size,
                ],
            )
            .await?;
        if let Some(row) = deleted {
            let info = object_from_row(&row);
            tx.commit().await?;
            self.files_released();
            return Ok(Some(info));
        }
        let visible = tx
            .client()
            .query_opt(
                "select 1 from storage.objects where bucket_id = $1 and name = $2",
                &[&bucket_id, &key],
            )
            .await?
            .is_some();
        tx.rollback().await?;
        if matches!(access, Access::System | Access::Service) {
            return match visible {
                true => Err(StorageError::PreconditionFailed),
                false => Ok(None),
            };
        }
        // What the store sees: no object (nothing to delete), one the
        // condition holds for (the policies kept the caller from deleting
        // it: an ACL that lets the caller write may overrule them), or one
        // it fails for (told only to a caller who may see the object).
        let client = self.pools.owner.get().await?;
        let holds = client
            .query_opt(
                "select ($3::text is null or metadata->>'eTag' = $3) \
                    and ($4::timestamptz is null or date_trunc('second', updated_at) = $4) \
                    and ($5::bigint is null or (metadata->>'size')::bigint = $5) \
                 from storage.objects where bucket_id = $1 and name = $2",
                &[
                    &bucket_id,
                    &key,
                    &etag,
                    &condition.last_modified,
                    &condition.size,
                ],
            )
            .await?
            .map(|row| row.get::<_, bool>(0));
        drop(client);
        let Some(holds) = holds else {
            return Ok(None);
        };
        let acl_writes = self
            .bucket_system(bucket_id)
            .await?
            .s3_acl
            .allows(access, Permission::Write);
        match (holds, acl_writes) {
            (true, true) => {
                Box::pin(self.delete_object_if(&Access::System, bucket_id, key, condition)).await
            }
            (false, _) if visible || acl_writes => Err(StorageError::PreconditionFailed),
            _ => Err(StorageError::AccessDenied(
                "the storage policies do not let the caller delete this object".into(),
            )),
        }
    }

    /// Whether the caller's policies would let it create `key`: the insert
    /// is tried and rolled back (how a signed upload URL is authorised).
    pub async fn can_insert(
        &self,
        access: &Access,
        bucket_id: &str,
        key: &str,
    ) -> StorageResult<()> {
        check_key(key)?;
        self.bucket_system(bucket_id).await?;
        let tx = self.pools.begin(access).await?;
        tx.client()
            .execute(
                "insert into storage.objects (bucket_id, name, owner_id) values ($1, $2, $3) \
                 on conflict (bucket_id, name) do nothing",
                &[&bucket_id, &key, &access.user_id()],
            )
            .await?;
        tx.rollback().await
    }

    /// An object's row, as `read` allows.
    pub async fn head_object(
        &self,
        access: &Access,
        bucket_id: &str,
        key: &str,
        read: Read,
    ) -> StorageResult<ObjectInfo> {
        let sql = format!(
            "select {OBJECT_COLUMNS} from storage.objects where bucket_id = $1 and name = $2"
        );
        let row = match read {
            Read::Public => {
                // Public: the whole bucket (Supabase's flag) or this object
                // (its S3 ACL). Otherwise it answers as before, as if the
                // bucket were missing, so nothing tells a private object
                // from a missing one.
                let bucket = self.bucket_system(bucket_id).await?;
                let client = self.pools.owner.get().await?;
                let row = client.query_opt(&sql, &[&bucket_id, &key]).await?;
                let open = |row: &tokio_postgres::Row| {
                    let metadata: Option<Value> = row.get(5);
                    metadata.is_some_and(|m| Acl::of_object(&m).canned.public_read())
                };
                if !bucket.public && !row.as_ref().is_some_and(open) {
                    return Err(StorageError::NoSuchBucket);
                }
                row
            }
            Read::AsCaller => {
                let rows = self.pools.once(access, &sql, &[&bucket_id, &key]).await??;
                rows.into_iter().next()
            }
        };
        match row {
            Some(row) => Ok(object_from_row(&row)),
            None => {
                // Tell a missing bucket from a missing key, as S3 does.
                self.bucket_system(bucket_id).await?;
                Err(StorageError::NoSuchKey)
            }
        }
    }

    /// An object's row and its bytes. A concurrent overwrite may delete
    /// the bytes between the two reads, so the row is read again then.
    pub async fn get_object(
        &self,
        access: &Access,
        bucket_id: &str,
        key: &str,
        read: Read,
    ) -> StorageResult<(ObjectInfo, ObjectBody)> {
        let mut attempts = 0;
        loop {
            let info = self.head_object(access, bucket_id, key, read).await?;
            match self.open_body(&info.version).await {
                Ok(body) => return Ok((info, body)),
                Err(StorageError::Io(err))
                    if err.kind() == std::io::ErrorKind::NotFound && attempts < 3 =>
                {
                    attempts += 1;
                }
                Err(err) => {
                    tracing::error!(%err, bucket_id, key, "an object's bytes are missing");
                    return Err(err);
                }
            }
        }
    }

    /// The bytes of `version`, whether a file or inline; `NotFound` when
    /// they are gone (the version was replaced or deleted).
    pub async fn open_body(&self, version: &str) -> StorageResult<ObjectBody> {
        if !inline::is_inline(version) {
            return Ok(self.blobs.open_body(version).await?);
        }
        let client = self.pools.owner.get().await?;
        let statement = client.prepare_cached(inline::LOAD_SQL).await?;
        match client.query_opt(&statement, &[&version]).await? {
            Some(row) => Ok(ObjectBody::Inline(Bytes::from(row.get::<_, Vec<u8>>(0)))),
            None => Err(StorageError::Io(std::io::Error::new(
                std::io::ErrorKind::NotFound,
                "the inline object is gone",
            ))),
        }
    }

    /// Deletes the named objects the caller may delete; returns those.
    pub async fn delete_objects(
        &self,
        access: &Access,
        bucket_id: &str,
        keys: &[String],
    ) -> StorageResult<Vec<ObjectInfo>> {
        let sql = format!(
            "delete from storage.objects where bucket_id = $1 and name = any($2) returning {OBJECT_COLUMNS}"
        );
        let mut rows = self
            .pools
            .once(access, &sql, &[&bucket_id, &keys])
            .await??;
        // What the policies kept: anyone may delete in a bucket whose ACL
        // lets anyone write.
        if rows.len() < keys.len() && !matches!(access, Access::System | Access::Service) {
            let bucket = self.bucket_system(bucket_id).await?;
            if bucket.s3_acl.allows(access, Permission::Write) {
                let rest: Vec<&String> = keys
                    .iter()
                    .filter(|k| !rows.iter().any(|r| r.get::<_, &str>(2) == k.as_str()))
                    .collect();
                let more = self
                    .pools
                    .once(&Access::System, &sql, &[&bucket_id, &rest])
                    .await??;
                rows.extend(more);
            }
        }
        if !rows.is_empty() {
            self.files_released();
        }
        Ok(rows.iter().map(object_from_row).collect())
    }

    /// Copies an object the caller may read under the policies; a file's
    /// copy shares its bytes (a hard link), an inline object's copy is
    /// stored anew.
    pub async fn copy_object(
        &self,
        access: &Access,
        from: (&str, &str),
        to: (&str, &str),
        copy: CopyOptions,
    ) -> StorageResult<ObjectInfo> {
        let source = self
            .head_object(access, from.0, from.1, Read::AsCaller)
            .await?;
        self.copy_readable(access, &source, to, copy).await
    }

    /// As [`Store::copy_object`], from a source the caller was already
    /// found to be allowed to read (S3 also lets ACLs grant reads).
    pub async fn copy_readable(
        &self,
        access: &Access,
        source: &ObjectInfo,
        to: (&str, &str),
        copy: CopyOptions,
    ) -> StorageResult<ObjectInfo> {
        check_key(to.1)?;
        let CopyOptions {
            replace,
            overwrite,
            acl,
        } = copy;
        let options = match replace {
            Some(mut options) => {
                options.overwrite = overwrite;
                options.acl = acl;
                options
            }
            None => PutOptions {
                content_type: Some(source.content_type.clone()),
                cache_control: source.cache_control.clone(),
                headers: StoredHeaders::of(&source.metadata),
                part_sizes: None,
                user_metadata: source.user_metadata.clone(),
                overwrite,
                content_md5: None,
                owner: None,
                declared_size: None,
                condition: WriteCondition::None,
                acl,
            },
        };
        // The copy keeps the source's bytes and ETag, so its parts too.
        let mut options = options;
        options.part_sizes = source
            .metadata
            .get("s3Parts")
            .and_then(Value::as_array)
            .map(|sizes| sizes.iter().filter_map(Value::as_u64).collect());
        let content_type = options
            .content_type
            .clone()
            .unwrap_or_else(|| source.content_type.clone());
        let bucket = self.bucket_for_upload(to.0, to.1, &content_type).await?;
        if source.size > self.size_limit(&bucket) {
            return Err(StorageError::EntityTooLarge {
                limit: self.size_limit(&bucket),
            });
        }
        if inline::is_inline(&source.version) {
            let bytes = match self.open_body(&source.version).await? {
                ObjectBody::Inline(bytes) => bytes,
                ObjectBody::File(_) | ObjectBody::Remote(_) => {
                    return Err(StorageError::Database(
                        "an inline version has a file".into(),
                    ))
                }
            };
            return self
                .record_inline(
                    access,
                    to.0,
                    to.1,
                    &bytes,
                    &source.etag,
                    &content_type,
                    &options,
                )
                .await;
        }
        let mut written = self.blobs.link(&source.version).await?;
        written.etag = source.etag.clone();
        self.record(access, to.0, to.1, written, &content_type, &options)
            .await
    }

    /// Renames an object (within or across buckets) without touching its
    /// bytes.
    pub async fn move_object(
        &self,
        access: &Access,
        from: (&str, &str),
        to: (&str, &str),
    ) -> StorageResult<ObjectInfo> {
        check_key(to.1)?;
        let sql = format!(
            "update storage.objects set bucket_id = $3, name = $4, updated_at = now() \
             where bucket_id = $1 and name = $2 returning {OBJECT_COLUMNS}"
        );
        let tx = self.pools.begin(access).await?;
        let row = tx
            .client()
            .query_opt(&sql, &[&from.0, &from.1, &to.0, &to.1])
            .await
            .map_err(|err| match pg_code(&err) {
                Some("23503") => StorageError::NoSuchBucket,
                _ => err.into(),
            })?;
        tx.commit().await?;
        row.map(|r| object_from_row(&r))
            .ok_or(StorageError::NoSuchKey)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bucket(types: Option<Vec<&str>>) -> Bucket {
        Bucket {
            id: "b".into(),
            name: "b".into(),
            owner: None,
            public: false,
            file_size_limit: None,
            allowed_mime_types: types.map(|t| t.into_iter().map(String::from).collect()),
            created_at: Utc::now(),
            updated_at: Utc::now(),
            s3_acl: Acl::default(),
        }
    }

    #[test]
    fn mime_lists_with_wildcards() {
        assert!(mime_allowed(&bucket(None), "anything/at-all"));
        let images = bucket(Some(vec!["image/*", "text/plain"]));
        assert!(mime_allowed(&images, "image/png"));
        assert!(mime_allowed(&images, "text/plain; charset=utf-8"));
        assert!(!mime_allowed(&images, "text/html"));
        assert!(!mime_allowed(&images, "application/octet-stream"));
    }
}
