//! Bucket configurations SelfDB does not have (CORS, tagging, policies,
//! websites, lifecycle, encryption, object lock, ownership controls): each
//! read answers as AWS does for a bucket that was never given one, after
//! the same checks as any bucket read, so tools that probe them degrade
//! cleanly instead of meeting `NotImplemented`. Setting one stays
//! `NotImplemented`: never accepted and silently ignored.

use super::S3Frontend;
use s3s::{S3Error, S3ErrorCode, S3Response, S3Result};

/// `code` for `bucket` once the caller may see it (a missing bucket is
/// `NoSuchBucket` first, as on AWS).
pub(super) async fn answer<T>(
    s3: &S3Frontend,
    credentials: &Option<s3s::auth::Credentials>,
    bucket: &str,
    code: S3ErrorCode,
    what: &str,
) -> S3Result<S3Response<T>> {
    s3.access(credentials).await?;
    s3.store.bucket_system(bucket).await?;
    let mut error = S3Error::with_message(code, format!("The bucket {bucket} has no {what}"));
    // Each is a 404 on AWS; s3s's table has a 400 for some.
    error.set_status_code(hyper::StatusCode::NOT_FOUND);
    Err(error)
}
