//! S3 multipart uploads. Parts are files like any other; completing an
//! upload concatenates them into one new file and commits its row as the
//! caller, so storage policies (and the bucket's ACL) decide at that point,
//! as for a single PUT.
//! Upload bookkeeping is the store's own (owner role), tied to the caller
//! who started it.

use crate::access::Access;
use crate::acl::Acl;
use crate::error::{StorageError, StorageResult};
use crate::objects::{ObjectInfo, PutOptions, WriteCondition};
use crate::store::Store;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use futures::Stream;
use md5::{Digest, Md5};

/// S3's minimum size of every part but the last.
pub const MIN_PART_BYTES: u64 = 5 * 1024 * 1024;
pub const MAX_PART_NUMBER: i32 = 10_000;

#[derive(Debug, Clone)]
pub struct Upload {
    pub id: String,
    pub bucket_id: String,
    pub key: String,
    pub content_type: Option<String>,
    pub user_metadata: Option<serde_json::Value>,
    pub created_at: DateTime<Utc>,
    /// The object's ETag once the upload is completed (kept a day, so a
    /// retried completion answers the same).
    pub completed: Option<String>,
    /// The ACL the object gets.
    pub acl: Option<Acl>,
    /// The user who started it (none for the service role or anonymous).
    pub initiator: Option<String>,
}

#[derive(Debug, Clone)]
pub struct Part {
    pub number: i32,
    pub etag: String,
    pub size: u64,
    pub version: String,
    pub created_at: DateTime<Utc>,
}

/// Who an upload belongs to: its parts and completion are theirs only.
fn owner_tag(access: &Access) -> String {
    match access {
        Access::Service | Access::System => "service_role".into(),
        Access::Anon { .. } => "anon".into(),
        Access::User { user_id, .. } => user_id.clone(),
    }
}

/// The user an upload's owner tag names, if a user.
fn initiator(tag: Option<String>) -> Option<String> {
    tag.filter(|t| uuid::Uuid::parse_str(t).is_ok())
}

/// `md5(md5(part 1) ++ md5(part 2) ...)-N`, as S3 computes a multipart ETag.
pub fn multipart_etag(part_etags: &[String]) -> StorageResult<String> {
    let mut hasher = Md5::new();
    for etag in part_etags {
        let raw = hex::decode(etag)
            .map_err(|_| StorageError::InvalidPart(format!("part ETag {etag:?} is not an MD5")))?;
        hasher.update(raw);
    }
    Ok(format!(
        "{}-{}",
        hex::encode(hasher.finalize()),
        part_etags.len()
    ))
}

impl Store {
    pub async fn create_upload(
        &self,
        access: &Access,
        bucket_id: &str,
        key: &str,
        content_type: Option<String>,
        user_metadata: Option<serde_json::Value>,
        acl: Option<Acl>,
    ) -> StorageResult<Upload> {
        self.bucket_for_upload(
            bucket_id,
            key,
            content_type
                .as_deref()
                .unwrap_or("application/octet-stream"),
        )
        .await?;
        let id = crate::files::new_version();
        let client = self.pools.owner.get().await?;
        let row = client
            .query_one(
                "insert into storage.s3_multipart_uploads (id, bucket_id, key, owner_id, content_type, user_metadata, s3_acl) \
                 values ($1, $2, $3, $4, $5, $6, $7) returning created_at",
                &[&id, &bucket_id, &key, &owner_tag(access), &content_type, &user_metadata, &acl.as_ref().map(|a| a.object_keys().to_string())],
            )
            .await?;
        Ok(Upload {
            id,
            bucket_id: bucket_id.to_owned(),
            key: key.to_owned(),
            content_type,
            user_metadata,
            created_at: row.get(0),
            completed: None,
            acl,
            initiator: access.user_id().map(str::to_owned),
        })
    }

    /// The upload, if it exists and belongs to the caller.
    pub async fn upload(
        &self,
        access: &Access,
        bucket_id: &str,
        key: &str,
        upload_id: &str,
    ) -> StorageResult<Upload> {
        let client = self.pools.owner.get().await?;
        let row = client
            .query_opt(
                "select id, bucket_id, key, content_type, user_metadata, created_at, owner_id, completed_etag, s3_acl \
                 from storage.s3_multipart_uploads where id = $1 and bucket_id = $2 and key = $3",
                &[&upload_id, &bucket_id, &key],
            )
            .await?
            .ok_or(StorageError::NoSuchUpload)?;
        let owner: Option<String> = row.get(6);
        if !matches!(access, Access::Service | Access::System)
            && owner.as_deref() != Some(&owner_tag(access))
        {
            return Err(StorageError::NoSuchUpload);
        }
        Ok(Upload {
            id: row.get(0),
            bucket_id: row.get(1),
            key: row.get(2),
            content_type: row.get(3),
            user_metadata: row.get(4),
            created_at: row.get(5),
            completed: row.get(7),
            acl: row
                .get::<_, Option<&str>>(8)
                .and_then(|keys| serde_json::from_str(keys).ok())
                .map(|keys: serde_json::Value| Acl::of_object(&keys)),
            initiator: initiator(owner),
        })
    }

    /// The upload, if it is the caller's and still open for parts.
    pub async fn open_upload(
        &self,
        access: &Access,
        bucket_id: &str,
        key: &str,
        upload_id: &str,
    ) -> StorageResult<Upload> {
        let upload = self.upload(access, bucket_id, key, upload_id).await?;
        match upload.completed {
            Some(_) => Err(StorageError::NoSuchUpload),
            None => Ok(upload),
        }
    }

    pub async fn upload_part<S, E>(
        &self,
        upload: &Upload,
        number: i32,
        body: S,
    ) -> StorageResult<Part>
    where
        S: Stream<Item = Result<Bytes, E>>,
        E: std::fmt::Display,
    {
        if !(1..=MAX_PART_NUMBER).contains(&number) {
            return Err(StorageError::InvalidArgument(format!(
                "part numbers run from 1 to {MAX_PART_NUMBER}"
            )));
        }
        let bucket = self.bucket_system(&upload.bucket_id).await?;
        let written = self
            .blobs
            .write(body, Some(self.size_limit(&bucket)))
            .await?;
        let client = self.pools.owner.get().await?;
        let row = client
            .query_one(
                "insert into storage.s3_multipart_uploads_parts (upload_id, part_number, etag, size, version) \
                 values ($1, $2, $3, $4, $5) \
                 on conflict (upload_id, part_number) do update set \
                     etag = excluded.etag, size = excluded.size, version = excluded.version, created_at = now() \
                 returning created_at, xmax <> 0",
                &[&upload.id, &number, &written.etag, &(written.size as i64), &written.version],
            )
            .await
            .map_err(|err| match crate::store::pg_code(&err) {
                Some("23503") => StorageError::NoSuchUpload,
                _ => err.into(),
            })?;
        let part = Part {
            number,
            etag: written.etag.clone(),
            size: written.size,
            version: written.version.clone(),
            created_at: row.get(0),
        };
        written.keep();
        if row.get::<_, bool>(1) {
            self.files_released();
        }
        Ok(part)
    }

    pub async fn list_parts(&self, upload: &Upload) -> StorageResult<Vec<Part>> {
        let client = self.pools.owner.get().await?;
        let rows = client
            .query(
                "select part_number, etag, size, version, created_at from storage.s3_multipart_uploads_parts \
                 where upload_id = $1 order by part_number",
                &[&upload.id],
            )
            .await?;
        Ok(rows
            .iter()
            .map(|r| Part {
                number: r.get(0),
                etag: r.get(1),
                size: r.get::<_, i64>(2) as u64,
                version: r.get(3),
                created_at: r.get(4),
            })
            .collect())
    }

    /// Uploads in progress in a bucket: the caller's, or every one for the
    /// bucket's owner and whoever its ACL lets list it.
    pub async fn list_uploads(
        &self,
        access: &Access,
        bucket_id: &str,
        prefix: &str,
    ) -> StorageResult<Vec<Upload>> {
        let bucket = self.bucket_system(bucket_id).await?;
        let client = self.pools.owner.get().await?;
        // The bucket's owner, and anyone who may list it by its ACL, sees
        // every upload, as on S3; others their own.
        let everyone = matches!(access, Access::Service | Access::System)
            || bucket.s3_acl.allows(access, crate::acl::Permission::Read)
            || (bucket.owner.is_some() && bucket.owner.as_deref() == access.user_id());
        let rows = client
            .query(
                "select id, bucket_id, key, content_type, user_metadata, created_at, owner_id \
                 from storage.s3_multipart_uploads \
                 where bucket_id = $1 and starts_with(key, $2) and ($3 or owner_id = $4) \
                   and completed_etag is null \
                 order by key collate \"C\", created_at limit 1000",
                &[&bucket_id, &prefix, &everyone, &owner_tag(access)],
            )
            .await?;
        Ok(rows
            .iter()
            .map(|r| Upload {
                id: r.get(0),
                bucket_id: r.get(1),
                key: r.get(2),
                content_type: r.get(3),
                user_metadata: r.get(4),
                created_at: r.get(5),
                completed: None,
                acl: None,
                initiator: initiator(r.get(6)),
            })
            .collect())
    }

    pub async fn abort_upload(&self, upload: &Upload) -> StorageResult<()> {
        let client = self.pools.owner.get().await?;
        client
            .execute(
                "delete from storage.s3_multipart_uploads where id = $1",
                &[&upload.id],
            )
            .await?;
        self.files_released();
        Ok(())
    }

    /// Joins the listed parts into the object. `parts` are (number, ETag)
    /// pairs as the client sent them.
    pub async fn complete_upload(
        &self,
        access: &Access,
        upload: &Upload,
        parts: &[(i32, String)],
        condition: WriteCondition,
        overwrite: bool,
    ) -> StorageResult<ObjectInfo> {
        if parts.is_empty() {
            return Err(StorageError::InvalidPart(
                "a multipart upload needs at least one part".into(),
            ));
        }
        if parts.windows(2).any(|w| w[0].0 > w[1].0) {
            return Err(StorageError::InvalidPartOrder);
        }
        // A part listed twice (uploaded again while the first upload was in
        // flight) is the one listed last, as RGW takes it.
        let parts: Vec<&(i32, String)> = parts
            .iter()
            .enumerate()
            .filter(|(i, p)| parts.get(i + 1).is_none_or(|next| next.0 != p.0))
            .map(|(_, p)| p)
            .collect();
        if let Some(done) = &upload.completed {
            // A retried completion: the same answer, if it names the same
            // parts.
            let etags: Vec<String> = parts
                .iter()
                .map(|(_, e)| e.trim_matches('"').to_owned())
                .collect();
            // Only while the object is still the one it made.
            if multipart_etag(&etags).ok().as_ref() == Some(done) {
                let current = self
                    .head_object(
                        &Access::System,
                        &upload.bucket_id,
                        &upload.key,
                        crate::objects::Read::AsCaller,
                    )
                    .await;
                if let Ok(info) = current {
                    if &info.etag == done {
                        return Ok(info);
                    }
                }
            }
            return Err(StorageError::NoSuchUpload);
        }
        let stored = self.list_parts(upload).await?;
        let mut chosen = Vec::with_capacity(parts.len());
        for (i, (number, etag)) in parts.iter().enumerate() {
            let part = stored
                .iter()
                .find(|p| p.number == *number)
                .filter(|p| p.etag == etag.trim_matches('"'))
                .ok_or_else(|| {
                    StorageError::InvalidPart(format!(
                        "part {number} was not uploaded, or its ETag does not match"
                    ))
                })?;
            if i + 1 < parts.len() && part.size < MIN_PART_BYTES {
                return Err(StorageError::EntityTooSmall);
            }
            chosen.push(part);
        }
        let etags: Vec<String> = chosen.iter().map(|p| p.etag.clone()).collect();
        let versions: Vec<String> = chosen.iter().map(|p| p.version.clone()).collect();
        let total: u64 = chosen.iter().map(|p| p.size).sum();
        let bucket = self.bucket_system(&upload.bucket_id).await?;
        let limit = self.size_limit(&bucket);
        if total > limit {
            return Err(StorageError::EntityTooLarge { limit });
        }
        let mut written = self.blobs.concat(&versions).await?;
        written.etag = multipart_etag(&etags)?;
        let content_type = upload
            .content_type
            .clone()
            .unwrap_or_else(|| "application/octet-stream".into());
        let options = PutOptions {
            content_type: Some(content_type.clone()),
            cache_control: None,
            user_metadata: upload.user_metadata.clone(),
            overwrite,
            content_md5: None,
            owner: None,
            declared_size: None,
            condition,
            acl: upload.acl.clone(),
            headers: Default::default(),
            part_sizes: Some(chosen.iter().map(|p| p.size).collect()),
        };
        let info = self
            .record(
                access,
                &upload.bucket_id,
                &upload.key,
                written,
                &content_type,
                &options,
            )
            .await?;
        self.finish_upload(upload, &info.etag).await?;
        Ok(info)
    }

    /// Drops a completed upload's parts and remembers its ETag; the upload
    /// itself goes a day later.
    async fn finish_upload(&self, upload: &Upload, etag: &str) -> StorageResult<()> {
        let client = self.pools.owner.get().await?;
        // One statement: the parts go, the upload is marked, and uploads
        // completed over a day ago are forgotten.
        client
            .execute(
                "with forgotten as (delete from storage.s3_multipart_uploads \
                                    where completed_at < now() - interval '1 day'), \
                      dropped as (delete from storage.s3_multipart_uploads_parts where upload_id = $1) \
                 update storage.s3_multipart_uploads set completed_etag = $2, completed_at = now() \
                 where id = $1",
                &[&upload.id, &etag],
            )
            .await?;
        self.files_released();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multipart_etag_is_md5_of_part_md5s() {
        // Two parts "a" and "b": md5(md5("a") ++ md5("b")).
        let a = hex::encode(Md5::digest(b"a"));
        let b = hex::encode(Md5::digest(b"b"));
        let mut joined = Md5::digest(b"a").to_vec();
        joined.extend_from_slice(&Md5::digest(b"b"));
        let expected = format!("{}-2", hex::encode(Md5::digest(&joined)));
        assert_eq!(multipart_etag(&[a, b]).unwrap(), expected);
        assert!(multipart_etag(&["zz".into()]).is_err());
    }
}
