//! S3's ACLs, as far as SelfDB's model expresses them. A bucket's ACL
//! (`storage.buckets.s3_acl`) and an object's (`"s3Acl"` in its
//! `metadata`) grant more than the storage policies do; they never take
//! away what a policy grants (listing over S3 asks, besides, that the
//! caller may see the bucket, as S3 does). Only an owner changes an ACL.
//!
//! - bucket `public-read`: anyone may list the bucket (objects stay as
//!   readable as their own ACL and the policies make them);
//! - bucket `public-read-write`: also anyone may write and delete objects
//!   (a write is recorded as the writer's, as S3 records object owners);
//! - object `public-read` (and `public-read-write`, which S3 treats alike
//!   for objects): anyone may read it;
//! - grants to named users (their SelfDB user ids, S3's canonical ids
//!   here): READ, WRITE or FULL_CONTROL, meaning on a bucket list, write
//!   and both, on an object read (`s3_grants` on the bucket, `"s3Grants"`
//!   in the object's metadata).
//!
//! Supabase's public flag stays what it is there: every object of the
//! bucket downloadable, the bucket itself not listable.

use crate::access::Access;
use crate::error::{StorageError, StorageResult};
use crate::store::Store;
use serde_json::{json, Value};
use std::collections::BTreeMap;

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
}

/// What a grant to a named user allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Permission {
    Read,
    Write,
    FullControl,
}

impl Permission {
    /// READ, WRITE or FULL_CONTROL; `None` for READ_ACP and WRITE_ACP,
    /// which SelfDB does not model (only owners change ACLs).
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "READ" => Some(Permission::Read),
            "WRITE" => Some(Permission::Write),
            "FULL_CONTROL" => Some(Permission::FullControl),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Permission::Read => "READ",
            Permission::Write => "WRITE",
            Permission::FullControl => "FULL_CONTROL",
        }
    }

    fn covers(self, wanted: Permission) -> bool {
        self == Permission::FullControl || self == wanted
    }
}

/// A bucket's or an object's ACL: a canned part for everyone and grants to
/// named users.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Acl {
    pub canned: CannedAcl,
    /// User id → what it may do.
    pub grants: BTreeMap<String, Permission>,
}

impl Acl {
    pub fn canned(canned: CannedAcl) -> Self {
        Acl {
            canned,
            grants: BTreeMap::new(),
        }
    }

    /// Whether `access` may read (a bucket: list) or write by this ACL
    /// (the storage policies may allow more).
    pub fn allows(&self, access: &Access, wanted: Permission) -> bool {
        let public = match wanted {
            Permission::Read => self.canned.public_read(),
            Permission::Write => self.canned.public_write(),
            Permission::FullControl => false,
        };
        public
            || access
                .user_id()
                .and_then(|user| self.grants.get(user))
                .is_some_and(|granted| granted.covers(wanted))
    }

    /// The grants as stored (`{"<user id>": "READ"}`).
    pub fn grants_json(&self) -> Value {
        Value::Object(
            self.grants
                .iter()
                .map(|(user, p)| (user.clone(), json!(p.as_str())))
                .collect(),
        )
    }

    pub fn grants_from_json(stored: Option<&Value>) -> BTreeMap<String, Permission> {
        stored
            .and_then(Value::as_object)
            .map(|grants| {
                grants
                    .iter()
                    .filter_map(|(user, p)| Some((user.clone(), Permission::parse(p.as_str()?)?)))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// An object's ACL from its `metadata`.
    pub fn of_object(metadata: &Value) -> Self {
        Acl {
            canned: metadata
                .get("s3Acl")
                .and_then(Value::as_str)
                .and_then(CannedAcl::parse)
                .unwrap_or_default(),
            grants: Self::grants_from_json(metadata.get("s3Grants")),
        }
    }

    /// The metadata keys that hold an object's ACL (none when private).
    pub(crate) fn object_keys(&self) -> Value {
        let mut keys = json!({});
        if self.canned.public_read() {
            keys["s3Acl"] = json!(self.canned.as_str());
        }
        if !self.grants.is_empty() {
            keys["s3Grants"] = self.grants_json();
        }
        keys
    }
}

impl Store {
    /// Sets a bucket's ACL: only its owner (or the service role) may, and
    /// the storage policies must let the caller update the bucket too.
    pub async fn set_bucket_acl(
        &self,
        access: &Access,
        bucket_id: &str,
        acl: &Acl,
    ) -> StorageResult<()> {
        let anyone_owned = matches!(access, Access::Service | Access::System);
        let rows = self
            .pools
            .once(
                access,
                "update storage.buckets set s3_acl = $2, s3_grants = $3, updated_at = now() \
                 where id = $1 and ($4 or owner_id = $5) returning 1",
                &[
                    &bucket_id,
                    &acl.canned.as_str(),
                    &acl.grants_json(),
                    &anyone_owned,
                    &access.user_id(),
                ],
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

    /// Sets an object's ACL: only its owner (or the service role) may, and
    /// the storage policies must let the caller update the object too. Its
    /// bytes and version stay.
    pub async fn set_object_acl(
        &self,
        access: &Access,
        bucket_id: &str,
        key: &str,
        acl: &Acl,
    ) -> StorageResult<()> {
        let anyone_owned = matches!(access, Access::Service | Access::System);
        let rows = self
            .pools
            .once(
                access,
                "update storage.objects \
                 set metadata = (coalesce(metadata, '{}') - 's3Acl' - 's3Grants') || $3 \
                 where bucket_id = $1 and name = $2 and ($4 or owner_id = $5) returning 1",
                &[
                    &bucket_id,
                    &key,
                    &acl.object_keys(),
                    &anyone_owned,
                    &access.user_id(),
                ],
            )
            .await??;
        match rows.is_empty() {
            true => Err(StorageError::AccessDenied(
                "only the object's owner may change its ACL".into(),
            )),
            false => Ok(()),
        }
    }
}
