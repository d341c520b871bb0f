//! Bucket operations: list, create, delete, head and location.

use super::convert::timestamp;
use super::S3Frontend;
use crate::store::NewBucket;
use s3s::dto::*;
use s3s::{S3Request, S3Response, S3Result};

pub(super) async fn list_buckets(
    s3: &S3Frontend,
    req: S3Request<ListBucketsInput>,
) -> S3Result<S3Response<ListBucketsOutput>> {
    let access = s3.access(&req.credentials).await?;
    let buckets = s3.store.list_buckets(&access).await?;
    let buckets = buckets
        .into_iter()
        .map(|b| Bucket {
            name: Some(b.id),
            creation_date: Some(timestamp(b.created_at)),
            ..Default::default()
        })
        .collect();
    Ok(S3Response::new(ListBucketsOutput {
        buckets: Some(buckets),
        owner: Some(Owner {
            id: Some("selfdb".into()),
            display_name: Some("selfdb".into()),
        }),
        ..Default::default()
    }))
}

pub(super) async fn create_bucket(
    s3: &S3Frontend,
    req: S3Request<CreateBucketInput>,
) -> S3Result<S3Response<CreateBucketOutput>> {
    let access = s3.access(&req.credentials).await?;
    let name = req.input.bucket;
    s3.store
        .create_bucket(
            &access,
            NewBucket {
                id: name.clone(),
                name: name.clone(),
                ..Default::default()
            },
        )
        .await?;
    Ok(S3Response::new(CreateBucketOutput {
        location: Some(format!("/{name}")),
    }))
}

pub(super) async fn delete_bucket(
    s3: &S3Frontend,
    req: S3Request<DeleteBucketInput>,
) -> S3Result<S3Response<DeleteBucketOutput>> {
    let access = s3.access(&req.credentials).await?;
    s3.store.delete_bucket(&access, &req.input.bucket).await?;
    Ok(S3Response::new(DeleteBucketOutput {}))
}

pub(super) async fn head_bucket(
    s3: &S3Frontend,
    req: S3Request<HeadBucketInput>,
) -> S3Result<S3Response<HeadBucketOutput>> {
    s3.access(&req.credentials).await?;
    s3.store.bucket_system(&req.input.bucket).await?;
    Ok(S3Response::new(HeadBucketOutput::default()))
}

pub(super) async fn get_bucket_location(
    s3: &S3Frontend,
    req: S3Request<GetBucketLocationInput>,
) -> S3Result<S3Response<GetBucketLocationOutput>> {
    s3.access(&req.credentials).await?;
    s3.store.bucket_system(&req.input.bucket).await?;
    Ok(S3Response::new(GetBucketLocationOutput::default()))
}

/// Buckets are never versioned: an empty configuration (no `Status`), as
/// AWS answers for a bucket that never had versioning turned on.
pub(super) async fn get_bucket_versioning(
    s3: &S3Frontend,
    req: S3Request<GetBucketVersioningInput>,
) -> S3Result<S3Response<GetBucketVersioningOutput>> {
    s3.access(&req.credentials).await?;
    s3.store.bucket_system(&req.input.bucket).await?;
    Ok(S3Response::new(GetBucketVersioningOutput::default()))
}
