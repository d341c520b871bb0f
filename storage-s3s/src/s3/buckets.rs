//! Bucket operations: list, create, delete, head and location.

use super::convert::{owner, timestamp};
use super::S3Frontend;
use crate::access::Access;
use crate::error::StorageError;
use crate::store::NewBucket;
use s3s::dto::*;
use s3s::{s3_error, S3Request, S3Response, S3Result};

pub(super) async fn list_buckets(
    s3: &S3Frontend,
    req: S3Request<ListBucketsInput>,
) -> S3Result<S3Response<ListBucketsOutput>> {
    let access = s3.access(&req.credentials).await?;
    let input = req.input;
    if matches!(access, Access::Anon { .. }) {
        // An anonymous caller owns no bucket.
        return Ok(S3Response::new(ListBucketsOutput {
            buckets: Some(Vec::new()),
            ..Default::default()
        }));
    }
    let max = match input.max_buckets {
        None => usize::MAX,
        Some(n) if (1..=10_000).contains(&n) => n as usize,
        Some(_) => {
            return Err(s3_error!(
                InvalidArgument,
                "max-buckets must be between 1 and 10000"
            ))
        }
    };
    // The token is the last name of the previous page, hex-encoded so it
    // reads as opaque.
    let after = match &input.continuation_token {
        Some(token) => Some(
            hex::decode(token)
                .ok()
                .and_then(|b| String::from_utf8(b).ok())
                .ok_or_else(|| s3_error!(InvalidArgument, "the continuation token is not valid"))?,
        ),
        None => None,
    };
    let prefix = input.prefix.clone().unwrap_or_default();
    let mut visible = s3
        .store
        .list_buckets(&access)
        .await?
        .into_iter()
        .filter(|b| b.id.starts_with(&prefix))
        .filter(|b| after.as_ref().is_none_or(|a| b.id.as_str() > a.as_str()))
        .peekable();
    let mut page = Vec::new();
    while page.len() < max {
        match visible.next() {
            Some(b) => page.push(b),
            None => break,
        }
    }
    let token = match visible.peek() {
        Some(_) => page.last().map(|b| hex::encode(&b.id)),
        None => None,
    };
    let buckets = page
        .into_iter()
        .map(|b| Bucket {
            name: Some(b.id),
            creation_date: Some(timestamp(b.created_at)),
            ..Default::default()
        })
        .collect();
    Ok(S3Response::new(ListBucketsOutput {
        buckets: Some(buckets),
        owner: Some(owner(access.user_id())),
        continuation_token: token,
        prefix: input.prefix,
    }))
}

pub(super) async fn create_bucket(
    s3: &S3Frontend,
    req: S3Request<CreateBucketInput>,
) -> S3Result<S3Response<CreateBucketOutput>> {
    let access = s3.access(&req.credentials).await?;
    let input = req.input;
    if input.object_lock_enabled_for_bucket == Some(true) {
        return Err(s3_error!(NotImplemented, "object lock is not supported"));
    }
    let acl = super::acl::header_acl(&input)?;
    let location = input
        .create_bucket_configuration
        .as_ref()
        .and_then(|c| c.location_constraint.as_ref())
        .map(|l| l.as_str().to_owned())
        .filter(|l| !l.is_empty());
    if location.is_some_and(|l| l != s3.region) {
        return Err(s3_error!(
            InvalidLocationConstraint,
            "this endpoint's region is {}",
            s3.region
        ));
    }
    let name = input.bucket;
    // s3s checks the rest of AWS's naming rules before any operation; a dot
    // beside a dash is refused only for new buckets (as AWS does), so
    // buckets named that way through /storage/v1 stay reachable.
    if name.contains(".-") || name.contains("-.") {
        return Err(s3_error!(
            InvalidBucketName,
            "a bucket name cannot have a dot beside a dash"
        ));
    }
    let created = s3
        .store
        .create_bucket(
            &access,
            NewBucket {
                id: name.clone(),
                name: name.clone(),
                s3_acl: acl.unwrap_or_default(),
                ..Default::default()
            },
        )
        .await;
    match created {
        Ok(_) => {}
        // us-east-1's rule (and RGW's, in any region): creating your own
        // bucket again succeeds and changes nothing. AWS's other regions
        // answer 409 BucketAlreadyOwnedByYou; clients treat both as done.
        Err(StorageError::BucketExists) => {
            let existing = s3.store.bucket_system(&name).await?;
            let yours = match &access {
                Access::Service => true,
                _ => existing.owner.is_some() && existing.owner.as_deref() == access.user_id(),
            };
            if !yours {
                return Err(s3_error!(
                    BucketAlreadyExists,
                    "the bucket name is taken by another account"
                ));
            }
        }
        Err(err) => return Err(err.into()),
    }
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
    // S3 answers HeadBucket to those who may list the bucket.
    let access = s3.access(&req.credentials).await?;
    s3.store.lister(&access, &req.input.bucket).await?;
    Ok(S3Response::new(HeadBucketOutput::default()))
}

pub(super) async fn get_bucket_location(
    s3: &S3Frontend,
    req: S3Request<GetBucketLocationInput>,
) -> S3Result<S3Response<GetBucketLocationOutput>> {
    s3.access(&req.credentials).await?;
    s3.store.bucket_system(&req.input.bucket).await?;
    // AWS answers us-east-1 with no constraint.
    Ok(S3Response::new(GetBucketLocationOutput {
        location_constraint: (s3.region != "us-east-1")
            .then(|| BucketLocationConstraint::from(s3.region.clone())),
    }))
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
