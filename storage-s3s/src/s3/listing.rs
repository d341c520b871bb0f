//! Object listings: ListObjects (v1, by marker), ListObjectsV2 (by
//! continuation token) and ListObjectVersions (buckets are never
//! versioned: each object once, as version "null", as AWS and MinIO list a
//! bucket that never had versioning).

use super::convert::{list_contents, KeyEncoding};
use super::S3Frontend;
use crate::listing::{ListQuery, Listing};
use s3s::dto::*;
use s3s::{s3_error, S3Request, S3Response, S3Result};

const MAX_KEYS: i32 = 1000;

pub(super) fn max_keys(requested: Option<i32>) -> S3Result<usize> {
    match requested {
        None => Ok(MAX_KEYS as usize),
        Some(n) if n < 0 => Err(s3_error!(InvalidArgument, "max-keys cannot be negative")),
        Some(n) => Ok(n.min(MAX_KEYS) as usize),
    }
}

/// What every listing does: refuse what cannot be answered, list as the
/// caller, and encode keys as asked; returns the listing with its contents
/// and common prefixes in S3's shape (owners included when `owners`).
async fn list<T>(
    s3: &S3Frontend,
    req: &S3Request<T>,
    bucket: &str,
    query: &ListQuery,
    encoding: &KeyEncoding,
    owners: bool,
) -> S3Result<(Listing, Vec<Object>, Vec<CommonPrefix>)> {
    let access = s3.access(&req.credentials).await?;
    // RGW's `allow-unordered` (which SelfDB answers in order anyway) cannot
    // be combined with a delimiter there; tools that use it expect the 400.
    let unordered = req
        .uri
        .query()
        .is_some_and(|q| q.split('&').any(|p| p == "allow-unordered=true"));
    if unordered && query.delimiter.is_some() {
        return Err(s3_error!(
            InvalidArgument,
            "allow-unordered cannot be combined with a delimiter"
        ));
    }
    let listing = s3.store.list_objects(&access, bucket, query).await?;
    let (contents, prefixes) = list_contents(&listing, encoding, owners);
    Ok((listing, contents, prefixes))
}

/// A delimiter as given, an empty one being none (S3 echoes no element).
fn delimiter(given: &Option<Delimiter>) -> Option<String> {
    given.clone().filter(|d| !d.is_empty())
}

pub(super) async fn list_objects(
    s3: &S3Frontend,
    req: S3Request<ListObjectsInput>,
) -> S3Result<S3Response<ListObjectsOutput>> {
    let input = &req.input;
    let query = ListQuery {
        prefix: input.prefix.clone().unwrap_or_default(),
        delimiter: delimiter(&input.delimiter),
        after: input.marker.clone().filter(|m| !m.is_empty()),
        max_keys: max_keys(input.max_keys)?,
    };
    let encoding = KeyEncoding::new(&input.encoding_type);
    let (listing, contents, prefixes) =
        list(s3, &req, &input.bucket, &query, &encoding, true).await?;
    let input = req.input;
    let next_marker = if listing.truncated && query.delimiter.is_some() {
        listing.last.as_deref().map(|l| encoding.apply(l))
    } else {
        None
    };
    Ok(S3Response::new(ListObjectsOutput {
        name: Some(input.bucket),
        // ListObjects (v1) does not encode its Prefix, unlike v2; clients
        // decode only the fields S3 encodes.
        prefix: Some(query.prefix.clone()),
        marker: Some(encoding.apply(&input.marker.unwrap_or_default())),
        max_keys: Some(query.max_keys as i32),
        is_truncated: Some(listing.truncated),
        contents: Some(contents),
        common_prefixes: Some(prefixes),
        delimiter: query.delimiter.as_deref().map(|d| encoding.apply(d)),
        next_marker,
        encoding_type: input.encoding_type,
        ..Default::default()
    }))
}

pub(super) async fn list_objects_v2(
    s3: &S3Frontend,
    req: S3Request<ListObjectsV2Input>,
) -> S3Result<S3Response<ListObjectsV2Output>> {
    let input = &req.input;
    let after = match &input.continuation_token {
        Some(token) => {
            let bytes = hex::decode(token)
                .map_err(|_| s3_error!(InvalidArgument, "the continuation token is not valid"))?;
            Some(
                String::from_utf8(bytes).map_err(|_| {
                    s3_error!(InvalidArgument, "the continuation token is not valid")
                })?,
            )
        }
        None => input.start_after.clone().filter(|s| !s.is_empty()),
    };
    let query = ListQuery {
        prefix: input.prefix.clone().unwrap_or_default(),
        delimiter: delimiter(&input.delimiter),
        after,
        max_keys: max_keys(input.max_keys)?,
    };
    let encoding = KeyEncoding::new(&input.encoding_type);
    let owners = input.fetch_owner.unwrap_or(false);
    let (listing, contents, prefixes) =
        list(s3, &req, &input.bucket, &query, &encoding, owners).await?;
    let input = req.input;
    let key_count = (contents.len() + prefixes.len()) as i32;
    let next = if listing.truncated {
        listing.last.as_ref().map(hex::encode)
    } else {
        None
    };
    Ok(S3Response::new(ListObjectsV2Output {
        name: Some(input.bucket),
        prefix: Some(encoding.apply(&query.prefix)),
        max_keys: Some(query.max_keys as i32),
        key_count: Some(key_count),
        continuation_token: input.continuation_token,
        is_truncated: Some(listing.truncated),
        next_continuation_token: next,
        contents: Some(contents),
        common_prefixes: Some(prefixes),
        delimiter: query.delimiter.as_deref().map(|d| encoding.apply(d)),
        encoding_type: input.encoding_type,
        start_after: input.start_after.map(|s| encoding.apply(&s)),
        ..Default::default()
    }))
}

/// The version id of every object: buckets are never versioned.
pub(super) const NULL_VERSION: &str = "null";

pub(super) async fn list_object_versions(
    s3: &S3Frontend,
    req: S3Request<ListObjectVersionsInput>,
) -> S3Result<S3Response<ListObjectVersionsOutput>> {
    let input = &req.input;
    // Each key has one version, "null": a listing after (key, "null")
    // starts after the key, and no other id was ever issued.
    if input
        .version_id_marker
        .as_deref()
        .is_some_and(|m| !m.is_empty() && m != NULL_VERSION)
    {
        return Err(s3_error!(InvalidArgument, "Invalid version id specified"));
    }
    let query = ListQuery {
        prefix: input.prefix.clone().unwrap_or_default(),
        delimiter: delimiter(&input.delimiter),
        after: input.key_marker.clone().filter(|m| !m.is_empty()),
        max_keys: max_keys(input.max_keys)?,
    };
    let encoding = KeyEncoding::new(&input.encoding_type);
    let (listing, contents, prefixes) =
        list(s3, &req, &input.bucket, &query, &encoding, true).await?;
    let input = req.input;
    let versions = contents
        .into_iter()
        .map(|o| ObjectVersion {
            key: o.key,
            size: o.size,
            e_tag: o.e_tag,
            last_modified: o.last_modified,
            owner: o.owner,
            is_latest: Some(true),
            version_id: Some(NULL_VERSION.to_owned()),
            storage_class: Some(ObjectVersionStorageClass::from_static(
                ObjectVersionStorageClass::STANDARD,
            )),
            ..Default::default()
        })
        .collect();
    let next_key_marker = if listing.truncated {
        listing.last.as_deref().map(|l| encoding.apply(l))
    } else {
        None
    };
    Ok(S3Response::new(ListObjectVersionsOutput {
        name: Some(input.bucket),
        prefix: Some(encoding.apply(&query.prefix)),
        key_marker: input.key_marker.map(|m| encoding.apply(&m)),
        version_id_marker: input.version_id_marker,
        max_keys: Some(query.max_keys as i32),
        is_truncated: Some(listing.truncated),
        next_version_id_marker: next_key_marker.as_ref().map(|_| NULL_VERSION.to_owned()),
        next_key_marker,
        versions: Some(versions),
        common_prefixes: Some(prefixes),
        delimiter: query.delimiter.as_deref().map(|d| encoding.apply(d)),
        encoding_type: input.encoding_type,
        ..Default::default()
    }))
}
