//! S3's canned ACLs, as far as SelfDB's model expresses them. A bucket's
//! ACL (`storage.buckets.s3_acl`) and an object's (`"s3Acl"` in its
//! `metadata`) grant *anyone*, signed or not, more than the storage
//! policies do; they never take away what a policy grants.
//!
//! - bucket `public-read`: anyone may list the bucket (objects stay as
//!   readable as their own ACL and the policies make them);
//! - bucket `public-read-write`: also anyone may write and delete objects
//!   (a write is recorded as the writer's, as S3 records object owners);
//! - object `public-read` (and `public-read-write`, which S3 treats alike
//!   for objects): anyone may read it.
//!
//! Supabase's public flag stays what it is there: every object of the
//! bucket downloadable, the bucket itself not listable.

use crate::access::Access;
use crate::error::{StorageError, StorageResult};
use crate::store::Store;
use serde_json::Value;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CannedAcl {
    #[default]
    Private,
    PublicRead,
    PublicReadWrite,
}

impl CannedAcl {
    /// One of the three canned ACLs SelfDB can express; `None` for the
    /// rest (`authenticated-read`, `bucket-owner-*`, ...).
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "private" => Some(CannedAcl::Private),
            "public-read" => Some(CannedAcl::PublicRead),
            "public-read-write" => Some(CannedAcl::PublicReadWrite),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            CannedAcl::Private => "private",
            CannedAcl::PublicRead => "public-read",
            CannedAcl::PublicReadWrite => "public-read-write",
        }
    }

    /// Whether anyone may read (an object) or list (a bucket).
    pub fn public_read(self) -> bool {
        self != CannedAcl::Private
    }

    /// Whether anyone may write in a bucket.
    pub fn public_write(self) -> bool {
        self == CannedAcl::PublicReadWrite
    }

    /// An object's ACL from its `metadata`.
    pub fn of_object(metadata: &Value) -> Self {
        metadata
            .get("s3Acl")
            .and_then(Value::as_str)
            .and_then(CannedAcl::parse)
            .unwrap_or_default()
    }
}

impl Store {
    /// Sets a bucket's ACL, as the caller: the storage policies decide who
    /// may update the bucket.
    pub async fn set_bucket_acl(
        &self,
        access: &Access,
        bucket_id: &str,
        acl: CannedAcl,
    ) -> StorageResult<()> {
        let rows = self
            .pools
            .once(
                access,
                "update storage.buckets set s3_acl = $2, updated_at = now() where id = $1 returning 1",
                &[&bucket_id, &acl.as_str()],
            )
            .await??;
        self.forget_bucket(bucket_id);
        if rows.is_empty() {
            self.bucket_system(bucket_id).await?;
            return Err(StorageError::AccessDenied(
                "only the bucket's owner may change its ACL".into(),
            ));
        }
        Ok(())
    }

    /// Sets an object's ACL, as the caller: the storage policies decide
    /// who may update the object. Its bytes and version stay.
    pub async fn set_object_acl(
        &self,
        access: &Access,
        bucket_id: &str,
        key: &str,
        acl: CannedAcl,
    ) -> StorageResult<()> {
        let rows = self
            .pools
            .once(
                access,
                "update storage.objects \
                 set metadata = jsonb_set(coalesce(metadata, '{}'), '{s3Acl}', to_jsonb($3::text)) \
                 where bucket_id = $1 and name = $2 returning 1",
                &[&bucket_id, &key, &acl.as_str()],
            )
            .await??;
        if rows.is_empty() {
            self.bucket_system(bucket_id).await?;
            let exists = self
                .head_object(
                    &Access::System,
                    bucket_id,
                    key,
                    crate::objects::Read::AsCaller,
                )
                .await;
            return Err(match exists {
                Ok(_) => {
                    StorageError::AccessDenied("only the object's owner may change its ACL".into())
                }
                Err(err) => err,
            });
        }
        Ok(())
    }
}
