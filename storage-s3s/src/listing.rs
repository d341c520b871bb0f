//! Listing objects: S3's flat listing with delimiters, and Supabase's
//! folder view.

use crate::access::Access;
use crate::acl::Permission;
use crate::error::{StorageError, StorageResult};
use crate::objects::{object_from_row, ObjectInfo, OBJECT_COLUMNS};
use crate::store::Store;
use chrono::{DateTime, Utc};
use serde_json::Value;

/// S3's ListObjects parameters.
#[derive(Debug, Clone, Default)]
pub struct ListQuery {
    pub prefix: String,
    pub delimiter: Option<String>,
    /// List keys after this one. A common prefix here (it ends with the
    /// delimiter) skips every key under it, so continuing after a page that
    /// ended on a common prefix does not return it again.
    pub after: Option<String>,
    pub max_keys: usize,
}

#[derive(Debug, Default)]
pub struct Listing {
    pub objects: Vec<ObjectInfo>,
    pub common_prefixes: Vec<String>,
    pub truncated: bool,
    /// The last key or common prefix returned, to continue after.
    pub last: Option<String>,
}

/// Sorts after every string that starts with `prefix`: the largest code
/// point cannot be followed by anything smaller in UTF-8 byte order.
fn after_everything_under(prefix: &str) -> String {
    format!("{prefix}\u{10FFFF}")
}

const LIST_BATCH: i64 = 1000;

impl Store {
    /// Who lists `bucket_id` for `access`, as S3 decides who may list: the
    /// service role; anyone the bucket's ACL lets (every key, so the store
    /// lists); under the policies, its owner, users of buckets without an
    /// owner (Supabase's) and users who may see the bucket row. Anonymous
    /// callers list only what the ACL opens. Also HeadBucket's rule.
    pub async fn lister(&self, access: &Access, bucket_id: &str) -> StorageResult<Access> {
        let bucket = self.bucket_system(bucket_id).await?;
        match access {
            Access::Service | Access::System => return Ok(access.clone()),
            _ if bucket.s3_acl.allows(access, Permission::Read) => return Ok(Access::System),
            Access::Anon { .. } => {
                return Err(StorageError::AccessDenied(
                    "the bucket cannot be listed anonymously".into(),
                ))
            }
            Access::User { .. } => {}
        }
        let stranger = bucket.owner.is_some() && bucket.owner.as_deref() != access.user_id();
        if stranger
            && self
                .pools
                .once(
                    access,
                    "select 1 from storage.buckets where id = $1",
                    &[&bucket_id],
                )
                .await??
                .is_empty()
        {
            return Err(StorageError::AccessDenied(
                "the bucket is another account's".into(),
            ));
        }
        Ok(access.clone())
    }

    pub async fn list_objects(
        &self,
        access: &Access,
        bucket_id: &str,
        query: &ListQuery,
    ) -> StorageResult<Listing> {
        let delimiter = query.delimiter.as_deref().filter(|d| !d.is_empty());
        let mut after = match (&query.after, delimiter) {
            (Some(after), Some(d)) if after.ends_with(d) && after.starts_with(&query.prefix) => {
                after_everything_under(after)
            }
            (Some(after), _) => after.clone(),
            (None, _) => String::new(),
        };
        let sql = format!(
            "select {OBJECT_COLUMNS} from storage.objects \
             where bucket_id = $1 and name collate \"C\" > $2 and name collate \"C\" >= $3 \
               and starts_with(name, $3) \
             order by name collate \"C\" limit $4"
        );
        let lister = self.lister(access, bucket_id).await?;
        let tx = self.pools.begin(&lister).await?;
        let mut listing = Listing::default();
        let wanted = query.max_keys;
        if wanted == 0 {
            // S3 answers max-keys=0 with nothing, and not as truncated.
            tx.commit().await?;
            return Ok(listing);
        }
        'batches: loop {
            let rows = tx
                .client()
                .query(&sql, &[&bucket_id, &after, &query.prefix, &LIST_BATCH])
                .await?;
            let complete = (rows.len() as i64) < LIST_BATCH;
            for row in &rows {
                let name: String = row.get(2);
                let rest = &name[query.prefix.len()..];
                let common = delimiter.and_then(|d| {
                    rest.find(d)
                        .map(|at| &name[..query.prefix.len() + at + d.len()])
                });
                if listing.objects.len() + listing.common_prefixes.len() == wanted {
                    listing.truncated = true;
                    break 'batches;
                }
                match common {
                    Some(common) => {
                        listing.common_prefixes.push(common.to_owned());
                        listing.last = Some(common.to_owned());
                        after = after_everything_under(common);
                        continue 'batches;
                    }
                    None => {
                        listing.last = Some(name.clone());
                        listing.objects.push(object_from_row(row));
                        after = name;
                    }
                }
            }
            if complete {
                break;
            }
        }
        tx.commit().await?;
        Ok(listing)
    }
}

/// Supabase's list: one folder level under `prefix`.
#[derive(Debug, Clone)]
pub struct FolderQuery {
    pub prefix: String,
    pub search: String,
    pub limit: i64,
    pub offset: i64,
    pub sort_column: SortColumn,
    pub descending: bool,
}

#[derive(Debug, Clone, Copy)]
pub enum SortColumn {
    Name,
    CreatedAt,
    UpdatedAt,
    LastAccessedAt,
}

impl SortColumn {
    pub fn parse(text: &str) -> Option<Self> {
        Some(match text {
            "name" => SortColumn::Name,
            "created_at" => SortColumn::CreatedAt,
            "updated_at" => SortColumn::UpdatedAt,
            "last_accessed_at" => SortColumn::LastAccessedAt,
            _ => return None,
        })
    }

    fn sql(self) -> &'static str {
        match self {
            SortColumn::Name => "name collate \"C\"",
            SortColumn::CreatedAt => "created_at",
            SortColumn::UpdatedAt => "updated_at",
            SortColumn::LastAccessedAt => "last_accessed_at",
        }
    }
}

/// A file (with its row's fields) or a folder (name only).
#[derive(Debug, Clone, serde::Serialize)]
pub struct FolderEntry {
    pub name: String,
    pub id: Option<uuid::Uuid>,
    pub updated_at: Option<DateTime<Utc>>,
    pub created_at: Option<DateTime<Utc>>,
    pub last_accessed_at: Option<DateTime<Utc>>,
    pub metadata: Option<Value>,
}

fn like_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

impl Store {
    pub async fn list_folder(
        &self,
        access: &Access,
        bucket_id: &str,
        query: &FolderQuery,
    ) -> StorageResult<Vec<FolderEntry>> {
        let prefix = match query.prefix.trim_start_matches('/') {
            "" => String::new(),
            p if p.ends_with('/') => p.to_owned(),
            p => format!("{p}/"),
        };
        let direction = if query.descending { "desc" } else { "asc" };
        // Folders have no timestamps: they sort by name, after files when
        // sorting by a date, as on Supabase.
        let sql = format!(
            "with level as ( \
                 select substr(name, char_length($2) + 1) as rest, * from storage.objects \
                 where bucket_id = $1 and starts_with(name, $2) \
             ), entries as ( \
                 select distinct split_part(rest, '/', 1) as name, null::uuid as id, \
                        null::timestamptz as updated_at, null::timestamptz as created_at, \
                        null::timestamptz as last_accessed_at, null::jsonb as metadata \
                 from level where position('/' in rest) > 0 and rest ilike $3 \
                 union all \
                 select rest, id, updated_at, created_at, last_accessed_at, metadata \
                 from level where position('/' in rest) = 0 and rest ilike $3 \
             ) \
             select name, id, updated_at, created_at, last_accessed_at, metadata from entries \
             order by {} {direction} nulls last, name collate \"C\" {direction} \
             limit $4 offset $5",
            query.sort_column.sql()
        );
        let search = format!("{}%", like_escape(&query.search));
        let rows = self
            .pools
            .once(
                access,
                &sql,
                &[
                    &bucket_id,
                    &prefix,
                    &search,
                    &query.limit.clamp(0, 10_000),
                    &query.offset.max(0),
                ],
            )
            .await??;
        Ok(rows
            .iter()
            .map(|row| FolderEntry {
                name: row.get(0),
                id: row.get(1),
                updated_at: row.get(2),
                created_at: row.get(3),
                last_accessed_at: row.get(4),
                metadata: row.get(5),
            })
            .collect())
    }
}
