//! Between s3s's types and the store's: errors into S3 error codes,
//! timestamps, user metadata, listing entries with their key encoding, and
//! copy sources and ranges.

use crate::error::StorageError;
use crate::listing::Listing;
use crate::objects::ObjectInfo;
use crate::range::CopyRangeError;
use chrono::{DateTime, Utc};
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use s3s::dto::*;
use s3s::{s3_error, S3Error, S3ErrorCode, S3Result};
use std::collections::HashMap;

/// An internal failure: logged, and answered without its details.
pub(super) fn internal(err: impl std::fmt::Display) -> S3Error {
    tracing::error!(%err, "S3 request failed");
    S3Error::with_message(S3ErrorCode::InternalError, "internal error")
}

impl From<StorageError> for S3Error {
    fn from(err: StorageError) -> Self {
        use S3ErrorCode as C;
        let code = match &err {
            StorageError::NoSuchBucket => C::NoSuchBucket,
            StorageError::NoSuchKey => C::NoSuchKey,
            StorageError::BucketExists => C::BucketAlreadyOwnedByYou,
            StorageError::ObjectExists => C::PreconditionFailed,
            StorageError::BucketNotEmpty => C::BucketNotEmpty,
            StorageError::AccessDenied(_) | StorageError::Refused(_) => C::AccessDenied,
            StorageError::InvalidKey(msg) if msg.contains("limit") => C::KeyTooLongError,
            StorageError::InvalidKey(_) | StorageError::InvalidArgument(_) => C::InvalidArgument,
            StorageError::InvalidBucketName(_) => C::InvalidBucketName,
            StorageError::EntityTooLarge { .. } => C::EntityTooLarge,
            StorageError::InvalidMimeType(_) => C::InvalidArgument,
            StorageError::NoSuchUpload => C::NoSuchUpload,
            StorageError::InvalidPart(_) => C::InvalidPart,
            StorageError::InvalidPartOrder => C::InvalidPartOrder,
            StorageError::EntityTooSmall => C::EntityTooSmall,
            StorageError::BadDigest => C::BadDigest,
            StorageError::PreconditionFailed => C::PreconditionFailed,
            StorageError::Body(_) => C::IncompleteBody,
            StorageError::Database(_) | StorageError::Io(_) => return internal(err),
        };
        S3Error::with_message(code, err.to_string())
    }
}

/// A time of the store's as s3s's timestamp.
pub(super) fn timestamp(at: DateTime<Utc>) -> Timestamp {
    Timestamp::from(std::time::SystemTime::from(at))
}

/// s3s's timestamp as a time of the store's, to the whole second (the
/// precision of the HTTP dates S3 reports times in).
pub(super) fn datetime(at: Timestamp) -> DateTime<Utc> {
    DateTime::from_timestamp(seconds(at), 0).unwrap_or_default()
}

/// Whole seconds since the epoch, the precision HTTP dates compare at.
pub(super) fn seconds(at: Timestamp) -> i64 {
    time::OffsetDateTime::from(at).unix_timestamp()
}

impl From<CopyRangeError> for S3Error {
    fn from(err: CopyRangeError) -> Self {
        match err {
            CopyRangeError::Malformed => S3Error::with_message(
                S3ErrorCode::InvalidArgument,
                "x-amz-copy-source-range must be bytes=first-last",
            ),
            CopyRangeError::Unsatisfiable => s3_error!(InvalidRange),
        }
    }
}

pub(super) fn user_metadata(metadata: Option<Metadata>) -> Option<serde_json::Value> {
    metadata.filter(|m| !m.is_empty()).map(|m| {
        serde_json::Value::Object(
            m.into_iter()
                .map(|(k, v)| (k, serde_json::Value::String(v)))
                .collect(),
        )
    })
}

pub(super) fn metadata_of(info: &ObjectInfo) -> Option<Metadata> {
    let object = info.user_metadata.as_ref()?.as_object()?;
    let map: HashMap<String, String> = object
        .iter()
        .map(|(k, v)| {
            let text = match v {
                serde_json::Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            (k.clone(), text)
        })
        .collect();
    Some(map)
}

/// What `encoding-type=url` asks keys in listings to be escaped with
/// (aws-cli always asks): everything but unreserved characters and `/`.
const KEY_ESCAPES: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~')
    .remove(b'/');

pub(super) struct KeyEncoding(bool);

impl KeyEncoding {
    pub(super) fn new(encoding: &Option<EncodingType>) -> Self {
        KeyEncoding(
            encoding
                .as_ref()
                .is_some_and(|e| e.as_str() == EncodingType::URL),
        )
    }

    pub(super) fn apply(&self, text: &str) -> String {
        if self.0 {
            utf8_percent_encode(text, KEY_ESCAPES).to_string()
        } else {
            text.to_owned()
        }
    }
}

/// An S3 owner: a user's id (its display name too, as the suite's
/// accounts are configured), or `selfdb` for what the service role or the
/// platform owns.
pub(super) fn owner(id: Option<&str>) -> Owner {
    let id = id.unwrap_or("selfdb").to_owned();
    Owner {
        display_name: Some(id.clone()),
        id: Some(id),
    }
}

pub(super) fn list_contents(
    listing: &Listing,
    encoding: &KeyEncoding,
    owners: bool,
) -> (Vec<Object>, Vec<CommonPrefix>) {
    let contents = listing
        .objects
        .iter()
        .map(|o| Object {
            key: Some(encoding.apply(&o.name)),
            size: Some(o.size as i64),
            e_tag: Some(ETag::Strong(o.etag.clone())),
            last_modified: Some(timestamp(o.updated_at)),
            storage_class: Some(ObjectStorageClass::from_static(
                ObjectStorageClass::STANDARD,
            )),
            owner: owners.then(|| owner(o.owner.as_deref())),
            ..Default::default()
        })
        .collect();
    let prefixes = listing
        .common_prefixes
        .iter()
        .map(|p| CommonPrefix {
            prefix: Some(encoding.apply(p)),
        })
        .collect();
    (contents, prefixes)
}

pub(super) fn source_of(copy_source: &CopySource) -> S3Result<(String, String)> {
    match copy_source {
        CopySource::Bucket { bucket, key, .. } => Ok((bucket.to_string(), key.to_string())),
        _ => Err(s3_error!(
            NotImplemented,
            "only bucket copy sources are supported"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::range::copy_source_range;

    fn copy_range_code(header: &str, size: u64) -> S3ErrorCode {
        let err = copy_source_range(Some(header), size).unwrap_err();
        S3Error::from(err).code().clone()
    }

    #[test]
    fn copy_range_error_codes() {
        // As UploadPartCopy has always answered them.
        assert_eq!(copy_range_code("bytes=0-10", 10), S3ErrorCode::InvalidRange);
        assert_eq!(copy_range_code("bytes=5-2", 10), S3ErrorCode::InvalidRange);
        assert_eq!(
            copy_range_code("bytes=2-", 10),
            S3ErrorCode::InvalidArgument
        );
        assert_eq!(
            copy_range_code("bytes=-3", 10),
            S3ErrorCode::InvalidArgument
        );
        assert_eq!(
            copy_range_code("bytes=a-b", 10),
            S3ErrorCode::InvalidArgument
        );
        assert_eq!(copy_range_code("2-5", 10), S3ErrorCode::InvalidArgument);
    }
}
