//! Who an S3 request acts as: the secret SigV4 checks a signature with, the
//! rule that lets unsigned requests only read, and the [`Access`] an
//! operation runs under.

use super::convert::internal;
use super::S3Frontend;
use crate::access::Access;
use crate::keys::KeyRegistry;
use s3s::access::{S3Access, S3AccessContext};
use s3s::auth::{S3Auth, SecretKey};
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

/// Signed requests go on to the operation (which decides by the key's
/// role); unsigned ones only for object reads, which then serve public
/// buckets only.
pub(super) struct AnonymousReads;

#[async_trait::async_trait]
impl S3Access for AnonymousReads {
    async fn check(&self, cx: &mut S3AccessContext<'_>) -> S3Result<()> {
        if cx.credentials().is_some() {
            return Ok(());
        }
        match cx.s3_op().name() {
            "GetObject" | "HeadObject" => Ok(()),
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
