//! Who an S3 request acts as: the secret SigV4 checks a signature with, the
//! rule that lets unsigned requests only read, and the [`Access`] an
//! operation runs under.

use super::convert::internal;
use super::S3Frontend;
use crate::access::Access;
use crate::keys::KeyRegistry;
use crate::store::Store;
use s3s::access::{S3Access, S3AccessContext};
use s3s::auth::{S3Auth, SecretKey};
use s3s::path::S3Path;
use s3s::{s3_error, S3Result};
use std::sync::Arc;

/// The secret SigV4 checks a request's signature with: its access key's.
pub(super) struct KeyAuth(pub(super) Arc<KeyRegistry>);

#[async_trait::async_trait]
impl S3Auth for KeyAuth {
    async fn get_secret_key(&self, access_key: &str) -> S3Result<SecretKey> {
        match self.0.lookup(access_key).await {
            Ok(Some((secret, _))) => Ok(SecretKey::from(secret)),
            Ok(None) => Err(s3_error!(InvalidAccessKeyId)),
            Err(err) => Err(internal(err)),
        }
    }
}

/// What every request passes before its operation runs (s3s calls it
/// before reading a body):
/// - `x-amz-expected-bucket-owner`, where given, must name the bucket's
///   owner;
/// - signed requests go on to the operation, which decides by the key's
///   role and the policies;
/// - unsigned ones go on for reads and listings (the operation serves
///   what is public), and for writes only into a bucket whose ACL lets
///   anyone write, so that a refused upload is refused before its body is
///   sent (`Expect: 100-continue` gets the 403; a PUT without a length is
///   the exception, see `edge`).
pub(super) struct S3Rules {
    pub(super) store: Store,
}

#[async_trait::async_trait]
impl S3Access for S3Rules {
    async fn check(&self, cx: &mut S3AccessContext<'_>) -> S3Result<()> {
        let bucket = match cx.s3_path() {
            S3Path::Bucket { bucket } | S3Path::Object { bucket, .. } => Some(bucket.to_string()),
            S3Path::Root => None,
        };
        if let (Some(expected), Some(bucket)) =
            (cx.headers().get("x-amz-expected-bucket-owner"), &bucket)
        {
            let owner = match self.store.bucket_system(bucket).await {
                Ok(row) => row.owner,
                Err(_) => None,
            };
            if owner.as_deref().map(str::as_bytes) != Some(expected.as_bytes()) {
                return Err(s3_error!(
                    AccessDenied,
                    "the bucket is not owned by the expected owner"
                ));
            }
        }
        if cx.credentials().is_some() {
            return Ok(());
        }
        match cx.s3_op().name() {
            "GetObject" | "HeadObject" | "ListObjects" | "ListObjectsV2" | "ListObjectVersions"
            | "HeadBucket" | "ListBuckets" => Ok(()),
            "PutObject"
            | "PostObject"
            | "DeleteObject"
            | "DeleteObjects"
            | "CreateMultipartUpload"
            | "UploadPart"
            | "CompleteMultipartUpload"
            | "AbortMultipartUpload"
            | "ListParts" => {
                // A missing bucket goes on, to be answered NoSuchBucket.
                let open = match &bucket {
                    Some(bucket) => match self.store.bucket_system(bucket).await {
                        Ok(row) => row.s3_acl.canned.public_write(),
                        Err(crate::StorageError::NoSuchBucket) => true,
                        Err(_) => false,
                    },
                    None => false,
                };
                match open {
                    true => Ok(()),
                    false => Err(s3_error!(AccessDenied, "this request must be signed")),
                }
            }
            _ => Err(s3_error!(AccessDenied, "this request must be signed")),
        }
    }
}

impl S3Frontend {
    /// The caller a request's credentials name: anonymous when unsigned.
    pub(super) async fn access(
        &self,
        credentials: &Option<s3s::auth::Credentials>,
    ) -> S3Result<Access> {
        let Some(credentials) = credentials else {
            return Ok(Access::anonymous());
        };
        match self.keys.access_for(&credentials.access_key).await {
            Ok(Some(access)) => Ok(access),
            Ok(None) => Err(s3_error!(InvalidAccessKeyId)),
            Err(err) => Err(internal(err)),
        }
    }
}
