//! SelfDB's view of storage (`/storage/buckets`, `/storage/files`): the
//! same `storage.buckets` and `storage.objects` rows `/storage/v1` and S3
//! serve, read in SelfDB's shapes. One store, two views:
//! - a bucket's SelfDB id is `storage.buckets.selfdb_id` (a uuid every
//!   bucket gets, whichever API made it); Supabase's and S3's id is the
//!   text `id` (the name it was created with); `name` is shared;
//! - a file's id is `storage.objects.id`, its `path` the object's key, its
//!   `name` the key's last segment, its `metadata` the object's
//!   `user_metadata`; size and type come from the object's `metadata`.
//!
//! Reads only, on the owner pool; writes of bytes go through the store
//! (`storage_s3s`), and the HTTP layer decides who may ask.

use super::ddl::DdlError;
use deadpool_postgres::Pool;
use serde_json::Value;

const TIMESTAMP: &str = "'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'";

/// Who asks: admins see every bucket, users their own and public ones,
/// the anon key public ones.
pub struct Viewer<'a> {
    pub admin: bool,
    pub user_id: Option<&'a str>,
}

/// A bucket as SelfDB's SDKs read it, over `b` (`storage.buckets`).
fn bucket_json() -> String {
    format!(
        "json_build_object( \
           'id', b.selfdb_id, 'name', b.name, 'storage_id', b.id, 'owner_id', b.owner_id, \
           'public', b.public, 'description', b.description, \
           'file_size_limit', b.file_size_limit, 'max_file_size', b.file_size_limit, \
           'allowed_mime_types', b.allowed_mime_types, \
           'file_count', (select count(*) from storage.objects o where o.bucket_id = b.id), \
           'total_size', (select coalesce(sum((o.metadata ->> 'size')::int8), 0) \
                            from storage.objects o where o.bucket_id = b.id), \
           'created_at', to_char(b.created_at at time zone 'utc', {TIMESTAMP}), \
           'updated_at', to_char(b.updated_at at time zone 'utc', {TIMESTAMP}))"
    )
}

/// A file as SelfDB's SDKs read it, over `o` (`storage.objects`) and `b`.
fn file_json() -> String {
    format!(
        "json_build_object( \
           'id', o.id, 'name', regexp_replace(o.name, '^.*/', ''), \
           'bucket_id', b.selfdb_id, 'bucket_name', b.name, 'path', o.name, \
           'size', coalesce((o.metadata ->> 'size')::int8, 0), \
           'mime_type', coalesce(o.metadata ->> 'mimetype', 'application/octet-stream'), \
           'owner_id', o.owner_id, 'metadata', coalesce(o.user_metadata, '{{}}'), \
           'created_at', to_char(o.created_at at time zone 'utc', {TIMESTAMP}), \
           'updated_at', to_char(o.updated_at at time zone 'utc', {TIMESTAMP}))"
    )
}

/// `$1` admin, `$2` the user's id.
const VISIBLE_BUCKET: &str = "($1 or b.public or b.owner_id = $2::text)";

/// `$3`: a piece of the name (or description), or null.
const BUCKET_SEARCH: &str = "($3::text is null \
     or strpos(lower(b.name), lower($3)) > 0 \
     or strpos(lower(coalesce(b.description, '')), lower($3)) > 0)";

pub enum SortBy {
    Name,
    CreatedAt,
    UpdatedAt,
    /// Files only.
    Size,
}

impl SortBy {
    fn bucket_column(&self) -> &'static str {
        match self {
            SortBy::Name => "b.name",
            SortBy::UpdatedAt => "b.updated_at",
            SortBy::CreatedAt | SortBy::Size => "b.created_at",
        }
    }

    fn file_column(&self) -> &'static str {
        match self {
            SortBy::Name => "o.name",
            SortBy::CreatedAt => "o.created_at",
            SortBy::UpdatedAt => "o.updated_at",
            SortBy::Size => "coalesce((o.metadata ->> 'size')::int8, 0)",
        }
    }
}

pub struct Page<'a> {
    pub search: Option<&'a str>,
    pub sort_by: SortBy,
    pub ascending: bool,
    pub offset: i64,
    pub limit: i64,
}

impl Page<'_> {
    fn order(&self, column: &str, tie: &str) -> String {
        let direction = if self.ascending { "asc" } else { "desc" };
        format!("{column} {direction}, {tie}")
    }
}

pub async fn list_buckets(
    pool: &Pool,
    viewer: &Viewer<'_>,
    page: &Page<'_>,
) -> Result<Value, DdlError> {
    let order = page.order(page.sort_by.bucket_column(), "b.selfdb_id");
    let sql = format!(
        "select coalesce(json_agg(t.j order by t.o), '[]') from ( \
           select {json} as j, row_number() over (order by {order}) as o \
           from storage.buckets b where {VISIBLE_BUCKET} and {BUCKET_SEARCH} \
           order by {order} offset $4 limit $5) t",
        json = bucket_json()
    );
    let client = pool.get().await?;
    let row = client
        .query_one(
            &sql,
            &[
                &viewer.admin,
                &viewer.user_id,
                &page.search,
                &page.offset,
                &page.limit,
            ],
        )
        .await?;
    Ok(row.get(0))
}

pub async fn count_buckets(
    pool: &Pool,
    viewer: &Viewer<'_>,
    search: Option<&str>,
) -> Result<i64, DdlError> {
    let sql = format!(
        "select count(*) from storage.buckets b where {VISIBLE_BUCKET} and {BUCKET_SEARCH}"
    );
    let client = pool.get().await?;
    let row = client
        .query_one(&sql, &[&viewer.admin, &viewer.user_id, &search])
        .await?;
    Ok(row.get(0))
}

/// A bucket and what `viewer` may do with it.
pub struct FoundBucket {
    pub json: Value,
    /// The text id `/storage/v1`, S3 and the store use.
    pub storage_id: String,
    pub name: String,
    pub visible: bool,
    /// `viewer` may change it and its files: an admin, or the owner.
    pub owned: bool,
}

/// By SelfDB id (a uuid's text) or, failing that, by `/storage/v1`'s id;
/// with `by_name`, by name instead (downloads address buckets so).
pub async fn find_bucket(
    pool: &Pool,
    viewer: &Viewer<'_>,
    key: &str,
    by_name: bool,
) -> Result<Option<FoundBucket>, DdlError> {
    let matches = if by_name {
        "b.name = $3"
    } else {
        "(b.selfdb_id::text = $3 or b.id = $3)"
    };
    let sql = format!(
        "select {json}, b.id, b.name, coalesce({VISIBLE_BUCKET}, false), \
           coalesce($1 or b.owner_id = $2::text, false) \
         from storage.buckets b where {matches} \
         order by (b.selfdb_id::text = $3) desc limit 1",
        json = bucket_json()
    );
    let client = pool.get().await?;
    let row = client
        .query_opt(&sql, &[&viewer.admin, &viewer.user_id, &key])
        .await?;
    Ok(row.map(|row| FoundBucket {
        json: row.get(0),
        storage_id: row.get(1),
        name: row.get(2),
        visible: row.get(3),
        owned: row.get(4),
    }))
}

/// Whether a bucket has this name (its text id may differ after a rename).
pub async fn name_taken(pool: &Pool, name: &str) -> Result<bool, DdlError> {
    let client = pool.get().await?;
    let row = client
        .query_one(
            "select exists(select 1 from storage.buckets where name = $1)",
            &[&name],
        )
        .await?;
    Ok(row.get(0))
}

/// Sets what the store does not keep: the name and the description.
pub async fn rename_describe(
    pool: &Pool,
    storage_id: &str,
    name: Option<&str>,
    description: Option<&str>,
) -> Result<(), DdlError> {
    let client = pool.get().await?;
    client
        .execute(
            "update storage.buckets set name = coalesce($2, name), \
               description = coalesce($3, description), updated_at = now() \
             where id = $1",
            &[&storage_id, &name, &description],
        )
        .await?;
    Ok(())
}

/// `$1` admin, `$2` user, `$3` search over keys, `$4` one bucket's text id
/// or null for every visible one.
const VISIBLE_FILES: &str = "from storage.objects o join storage.buckets b on b.id = o.bucket_id \
     where ($1 or b.public or b.owner_id = $2::text) \
       and ($3::text is null or strpos(lower(o.name), lower($3)) > 0) \
       and ($4::text is null or b.id = $4)";

pub async fn list_files(
    pool: &Pool,
    viewer: &Viewer<'_>,
    bucket: Option<&str>,
    page: &Page<'_>,
) -> Result<(Value, i64), DdlError> {
    let order = page.order(page.sort_by.file_column(), "o.id");
    let sql = format!(
        "select coalesce(json_agg(t.j order by t.o), '[]'), \
           (select count(*) {VISIBLE_FILES}) from ( \
           select {json} as j, row_number() over (order by {order}) as o \
           {VISIBLE_FILES} order by {order} offset $5 limit $6) t",
        json = file_json()
    );
    let client = pool.get().await?;
    let row = client
        .query_one(
            &sql,
            &[
                &viewer.admin,
                &viewer.user_id,
                &page.search,
                &bucket,
                &page.offset,
                &page.limit,
            ],
        )
        .await?;
    Ok((row.get(0), row.get(1)))
}

pub async fn count_files(
    pool: &Pool,
    viewer: &Viewer<'_>,
    bucket: Option<&str>,
    search: Option<&str>,
) -> Result<i64, DdlError> {
    let sql = format!("select count(*) {VISIBLE_FILES}");
    let client = pool.get().await?;
    let row = client
        .query_one(&sql, &[&viewer.admin, &viewer.user_id, &search, &bucket])
        .await?;
    Ok(row.get(0))
}

/// `{total_files, total_size, total_buckets}` over the visible buckets.
pub async fn stats(pool: &Pool, viewer: &Viewer<'_>) -> Result<Value, DdlError> {
    let sql = format!(
        "select json_build_object( \
           'total_files', (select count(*) from storage.objects o join storage.buckets b on b.id = o.bucket_id where {VISIBLE_BUCKET}), \
           'total_size', (select coalesce(sum((o.metadata ->> 'size')::int8), 0) from storage.objects o join storage.buckets b on b.id = o.bucket_id where {VISIBLE_BUCKET}), \
           'total_buckets', (select count(*) from storage.buckets b where {VISIBLE_BUCKET}))"
    );
    let client = pool.get().await?;
    let row = client
        .query_one(&sql, &[&viewer.admin, &viewer.user_id])
        .await?;
    Ok(row.get(0))
}

/// A file and its bucket.
pub struct FoundFile {
    pub json: Value,
    pub key: String,
    pub bucket: FoundBucket,
}

/// The file with id `id` (a uuid's text).
pub async fn find_file(
    pool: &Pool,
    viewer: &Viewer<'_>,
    id: &str,
) -> Result<Option<FoundFile>, DdlError> {
    let sql = format!(
        "select {file}, o.name, {bucket}, b.id, b.name, coalesce({VISIBLE_BUCKET}, false), \
           coalesce($1 or b.owner_id = $2::text, false) \
         from storage.objects o join storage.buckets b on b.id = o.bucket_id \
         where o.id::text = $3",
        file = file_json(),
        bucket = bucket_json()
    );
    let client = pool.get().await?;
    let row = client
        .query_opt(&sql, &[&viewer.admin, &viewer.user_id, &id])
        .await?;
    Ok(row.map(|row| FoundFile {
        json: row.get(0),
        key: row.get(1),
        bucket: FoundBucket {
            json: row.get(2),
            storage_id: row.get(3),
            name: row.get(4),
            visible: row.get(5),
            owned: row.get(6),
        },
    }))
}

/// Replaces a file's user metadata.
pub async fn set_file_metadata(pool: &Pool, id: &str, metadata: &Value) -> Result<(), DdlError> {
    let client = pool.get().await?;
    client
        .execute(
            "update storage.objects set user_metadata = $2, updated_at = now() where id::text = $1",
            &[&id, metadata],
        )
        .await?;
    Ok(())
}
