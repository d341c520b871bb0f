//! The S3 endpoint: s3s parses and signs, this maps each operation onto the
//! store. A request signed with an access key acts as the key's user (RLS
//! decides) or as the service role; an unsigned request may only read
//! objects of public buckets.

use crate::access::Access;
use crate::body::ObjectBody;
use crate::error::StorageError;
use crate::keys::KeyRegistry;
use crate::listing::{ListQuery, Listing};
use crate::objects::{ObjectInfo, PutOptions, Read};
use crate::store::{NewBucket, Store};
use chrono::{DateTime, Utc};
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use s3s::access::{S3Access, S3AccessContext};
use s3s::auth::{S3Auth, SecretKey};
use s3s::dto::*;
use s3s::service::{S3Service, S3ServiceBuilder};
use s3s::{s3_error, S3Error, S3ErrorCode, S3Request, S3Response, S3Result, S3};
use std::collections::HashMap;
use std::sync::Arc;

const MAX_KEYS: i32 = 1000;

pub struct S3Frontend {
    store: Store,
    keys: Arc<KeyRegistry>,
}

/// The s3s service over `store`, with access keys from `keys`.
pub fn service(store: Store, keys: Arc<KeyRegistry>) -> S3Service {
    let mut builder = S3ServiceBuilder::new(S3Frontend {
        store,
        keys: keys.clone(),
    });
    builder.set_auth(KeyAuth(keys));
    builder.set_access(AnonymousReads);
    builder.build()
}

struct KeyAuth(Arc<KeyRegistry>);

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
struct AnonymousReads;

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

fn internal(err: impl std::fmt::Display) -> S3Error {
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
            StorageError::AccessDenied(_) => C::AccessDenied,
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
            StorageError::Body(_) => C::IncompleteBody,
            StorageError::Database(_) | StorageError::Io(_) => return internal(err),
        };
        S3Error::with_message(code, err.to_string())
    }
}

fn timestamp(at: DateTime<Utc>) -> Timestamp {
    Timestamp::from(std::time::SystemTime::from(at))
}

fn seconds(at: Timestamp) -> i64 {
    time::OffsetDateTime::from(at).unix_timestamp()
}

fn etag_matches(condition: &ETagCondition, etag: &str) -> bool {
    match condition {
        ETagCondition::Any => true,
        ETagCondition::ETag(e) => e.value() == etag,
    }
}

fn user_metadata(metadata: Option<Metadata>) -> Option<serde_json::Value> {
    metadata.filter(|m| !m.is_empty()).map(|m| {
        serde_json::Value::Object(
            m.into_iter()
                .map(|(k, v)| (k, serde_json::Value::String(v)))
                .collect(),
        )
    })
}

fn metadata_of(info: &ObjectInfo) -> Option<Metadata> {
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

struct KeyEncoding(bool);

impl KeyEncoding {
    fn new(encoding: &Option<EncodingType>) -> Self {
        KeyEncoding(
            encoding
                .as_ref()
                .is_some_and(|e| e.as_str() == EncodingType::URL),
        )
    }

    fn apply(&self, text: &str) -> String {
        if self.0 {
            utf8_percent_encode(text, KEY_ESCAPES).to_string()
        } else {
            text.to_owned()
        }
    }
}

fn list_contents(listing: &Listing, encoding: &KeyEncoding) -> (Vec<Object>, Vec<CommonPrefix>) {
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

fn max_keys(requested: Option<i32>) -> S3Result<usize> {
    match requested {
        None => Ok(MAX_KEYS as usize),
        Some(n) if n < 0 => Err(s3_error!(InvalidArgument, "max-keys cannot be negative")),
        Some(n) => Ok(n.min(MAX_KEYS) as usize),
    }
}

/// `bytes=first-last` of UploadPartCopy, against the source's size.
fn copy_range(range: Option<&str>, size: u64) -> S3Result<(u64, u64)> {
    let Some(range) = range else {
        return Ok((0, size));
    };
    let spec = range.strip_prefix("bytes=").ok_or_else(|| {
        s3_error!(
            InvalidArgument,
            "x-amz-copy-source-range must be bytes=first-last"
        )
    })?;
    let (first, last) = spec.split_once('-').ok_or_else(|| {
        s3_error!(
            InvalidArgument,
            "x-amz-copy-source-range must be bytes=first-last"
        )
    })?;
    let first: u64 = first
        .parse()
        .map_err(|_| s3_error!(InvalidArgument, "bad copy range"))?;
    let last: u64 = last
        .parse()
        .map_err(|_| s3_error!(InvalidArgument, "bad copy range"))?;
    if first > last || last >= size {
        return Err(s3_error!(InvalidRange));
    }
    Ok((first, last - first + 1))
}

/// The parts of a multipart request that name its upload.
trait UploadRequest {
    fn upload_names(&self) -> (&str, &str, &str);
}

macro_rules! upload_request {
    ($($input:ty),*) => {$(
        impl UploadRequest for $input {
            fn upload_names(&self) -> (&str, &str, &str) {
                (&self.bucket, &self.key, &self.upload_id)
            }
        }
    )*};
}

upload_request!(
    UploadPartInput,
    UploadPartCopyInput,
    CompleteMultipartUploadInput,
    AbortMultipartUploadInput,
    ListPartsInput
);

impl S3Frontend {
    /// The caller and the upload their request names, if it is theirs.
    async fn caller_upload<T: UploadRequest>(
        &self,
        req: &S3Request<T>,
    ) -> S3Result<(Access, crate::multipart::Upload)> {
        let access = self.access(&req.credentials).await?;
        let (bucket, key, id) = req.input.upload_names();
        let upload = self.store.upload(&access, bucket, key, id).await?;
        Ok((access, upload))
    }

    async fn access(&self, credentials: &Option<s3s::auth::Credentials>) -> S3Result<Access> {
        let Some(credentials) = credentials else {
            return Ok(Access::anonymous());
        };
        match self.keys.access_for(&credentials.access_key).await {
            Ok(Some(access)) => Ok(access),
            Ok(None) => Err(s3_error!(InvalidAccessKeyId)),
            Err(err) => Err(internal(err)),
        }
    }

    /// An object as `access` may read it: through RLS, or — for anyone —
    /// from a public bucket.
    async fn readable(&self, access: &Access, bucket: &str, key: &str) -> S3Result<ObjectInfo> {
        if matches!(access, Access::Anon { .. }) {
            return self
                .store
                .head_object(access, bucket, key, Read::Public)
                .await
                .map_err(|err| match err {
                    // Private buckets look like missing ones to strangers.
                    StorageError::NoSuchBucket => s3_error!(AccessDenied),
                    other => other.into(),
                });
        }
        match self
            .store
            .head_object(access, bucket, key, Read::AsCaller)
            .await
        {
            Err(StorageError::NoSuchKey) => {
                match self
                    .store
                    .head_object(access, bucket, key, Read::Public)
                    .await
                {
                    Ok(info) => Ok(info),
                    Err(_) => Err(s3_error!(NoSuchKey)),
                }
            }
            other => Ok(other?),
        }
    }

    /// Opens the bytes of an object read as `readable` allows.
    async fn open(
        &self,
        access: &Access,
        bucket: &str,
        key: &str,
    ) -> S3Result<(ObjectInfo, ObjectBody)> {
        let mut attempts = 0;
        loop {
            let info = self.readable(access, bucket, key).await?;
            match self.store.open_body(&info.version).await {
                Ok(body) => return Ok((info, body)),
                // Replaced between the row and the open: read the row again.
                Err(StorageError::Io(err))
                    if err.kind() == std::io::ErrorKind::NotFound && attempts < 3 =>
                {
                    attempts += 1;
                }
                Err(err) => return Err(internal(err)),
            }
        }
    }
}

/// Evaluates GET/HEAD preconditions as RFC 9110 orders them.
fn check_preconditions(
    info: &ObjectInfo,
    if_match: &Option<ETagCondition>,
    if_none_match: &Option<ETagCondition>,
    if_modified_since: Option<Timestamp>,
    if_unmodified_since: Option<Timestamp>,
) -> S3Result<()> {
    let modified = info.updated_at.timestamp();
    if let Some(condition) = if_match {
        if !etag_matches(condition, &info.etag) {
            return Err(s3_error!(PreconditionFailed));
        }
    } else if let Some(since) = if_unmodified_since {
        if modified > seconds(since) {
            return Err(s3_error!(PreconditionFailed));
        }
    }
    if let Some(condition) = if_none_match {
        if etag_matches(condition, &info.etag) {
            return Err(s3_error!(NotModified));
        }
    } else if let Some(since) = if_modified_since {
        if modified <= seconds(since) {
            return Err(s3_error!(NotModified));
        }
    }
    Ok(())
}

fn source_of(copy_source: &CopySource) -> S3Result<(String, String)> {
    match copy_source {
        CopySource::Bucket { bucket, key, .. } => Ok((bucket.to_string(), key.to_string())),
        _ => Err(s3_error!(
            NotImplemented,
            "only bucket copy sources are supported"
        )),
    }
}

#[async_trait::async_trait]
impl S3 for S3Frontend {
    async fn list_buckets(
        &self,
        req: S3Request<ListBucketsInput>,
    ) -> S3Result<S3Response<ListBucketsOutput>> {
        let access = self.access(&req.credentials).await?;
        let buckets = self.store.list_buckets(&access).await?;
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

    async fn create_bucket(
        &self,
        req: S3Request<CreateBucketInput>,
    ) -> S3Result<S3Response<CreateBucketOutput>> {
        let access = self.access(&req.credentials).await?;
        let name = req.input.bucket;
        self.store
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

    async fn delete_bucket(
        &self,
        req: S3Request<DeleteBucketInput>,
    ) -> S3Result<S3Response<DeleteBucketOutput>> {
        let access = self.access(&req.credentials).await?;
        self.store.delete_bucket(&access, &req.input.bucket).await?;
        Ok(S3Response::new(DeleteBucketOutput {}))
    }

    async fn head_bucket(
        &self,
        req: S3Request<HeadBucketInput>,
    ) -> S3Result<S3Response<HeadBucketOutput>> {
        self.access(&req.credentials).await?;
        self.store.bucket_system(&req.input.bucket).await?;
        Ok(S3Response::new(HeadBucketOutput::default()))
    }

    async fn get_bucket_location(
        &self,
        req: S3Request<GetBucketLocationInput>,
    ) -> S3Result<S3Response<GetBucketLocationOutput>> {
        self.access(&req.credentials).await?;
        self.store.bucket_system(&req.input.bucket).await?;
        Ok(S3Response::new(GetBucketLocationOutput::default()))
    }

    async fn list_objects(
        &self,
        req: S3Request<ListObjectsInput>,
    ) -> S3Result<S3Response<ListObjectsOutput>> {
        let access = self.access(&req.credentials).await?;
        let input = req.input;
        let query = ListQuery {
            prefix: input.prefix.clone().unwrap_or_default(),
            delimiter: input.delimiter.clone(),
            after: input.marker.clone().filter(|m| !m.is_empty()),
            max_keys: max_keys(input.max_keys)?,
        };
        let listing = self
            .store
            .list_objects(&access, &input.bucket, &query)
            .await?;
        let encoding = KeyEncoding::new(&input.encoding_type);
        let (contents, prefixes) = list_contents(&listing, &encoding);
        let next_marker = if listing.truncated && query.delimiter.is_some() {
            listing.last.as_deref().map(|l| encoding.apply(l))
        } else {
            None
        };
        Ok(S3Response::new(ListObjectsOutput {
            name: Some(input.bucket),
            prefix: Some(encoding.apply(&query.prefix)),
            marker: input.marker.map(|m| encoding.apply(&m)),
            max_keys: Some(query.max_keys as i32),
            is_truncated: Some(listing.truncated),
            contents: Some(contents),
            common_prefixes: Some(prefixes),
            delimiter: input.delimiter.map(|d| encoding.apply(&d)),
            next_marker,
            encoding_type: input.encoding_type,
            ..Default::default()
        }))
    }

    async fn list_objects_v2(
        &self,
        req: S3Request<ListObjectsV2Input>,
    ) -> S3Result<S3Response<ListObjectsV2Output>> {
        let access = self.access(&req.credentials).await?;
        let input = req.input;
        let after = match &input.continuation_token {
            Some(token) => {
                let bytes = hex::decode(token).map_err(|_| {
                    s3_error!(InvalidArgument, "the continuation token is not valid")
                })?;
                Some(String::from_utf8(bytes).map_err(|_| {
                    s3_error!(InvalidArgument, "the continuation token is not valid")
                })?)
            }
            None => input.start_after.clone().filter(|s| !s.is_empty()),
        };
        let query = ListQuery {
            prefix: input.prefix.clone().unwrap_or_default(),
            delimiter: input.delimiter.clone(),
            after,
            max_keys: max_keys(input.max_keys)?,
        };
        let listing = self
            .store
            .list_objects(&access, &input.bucket, &query)
            .await?;
        let encoding = KeyEncoding::new(&input.encoding_type);
        let (contents, prefixes) = list_contents(&listing, &encoding);
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
            delimiter: input.delimiter.map(|d| encoding.apply(&d)),
            encoding_type: input.encoding_type,
            start_after: input.start_after.map(|s| encoding.apply(&s)),
            ..Default::default()
        }))
    }

    async fn put_object(
        &self,
        req: S3Request<PutObjectInput>,
    ) -> S3Result<S3Response<PutObjectOutput>> {
        let access = self.access(&req.credentials).await?;
        let input = req.input;
        let body = input.body.ok_or_else(|| s3_error!(IncompleteBody))?;
        if let Some(ETagCondition::ETag(_)) = &input.if_match {
            return Err(s3_error!(
                NotImplemented,
                "If-Match on PUT is not supported"
            ));
        }
        let options = PutOptions {
            content_type: input.content_type,
            cache_control: input.cache_control,
            user_metadata: user_metadata(input.metadata),
            overwrite: !input.if_none_match.as_ref().is_some_and(|c| c.is_any()),
            content_md5: input.content_md5,
            owner: None,
            declared_size: input.content_length.and_then(|l| u64::try_from(l).ok()),
        };
        let info = self
            .store
            .put_object(&access, &input.bucket, &input.key, body, options)
            .await?;
        Ok(S3Response::new(PutObjectOutput {
            e_tag: Some(ETag::Strong(info.etag)),
            size: Some(info.size as i64),
            ..Default::default()
        }))
    }

    async fn get_object(
        &self,
        req: S3Request<GetObjectInput>,
    ) -> S3Result<S3Response<GetObjectOutput>> {
        let access = self.access(&req.credentials).await?;
        let input = req.input;
        if input.part_number.is_some() {
            return Err(s3_error!(
                NotImplemented,
                "partNumber reads are not supported"
            ));
        }
        let (info, body) = self.open(&access, &input.bucket, &input.key).await?;
        check_preconditions(
            &info,
            &input.if_match,
            &input.if_none_match,
            input.if_modified_since,
            input.if_unmodified_since,
        )?;
        let (start, length, content_range) = match &input.range {
            None => (0, info.size, None),
            Some(range) => {
                let span = range
                    .check(info.size)
                    .map_err(|_| s3_error!(InvalidRange))?;
                let range_text = format!("bytes {}-{}/{}", span.start, span.end - 1, info.size);
                (span.start, span.end - span.start, Some(range_text))
            }
        };
        let stream = body.into_stream(start, length).await.map_err(internal)?;
        // s3s answers 206 by itself when content_range is set.
        let response = S3Response::new(GetObjectOutput {
            body: Some(StreamingBlob::wrap(stream)),
            content_length: Some(length as i64),
            content_range,
            accept_ranges: Some("bytes".into()),
            content_type: Some(info.content_type.clone()),
            cache_control: info.cache_control.clone(),
            e_tag: Some(ETag::Strong(info.etag.clone())),
            last_modified: Some(timestamp(info.updated_at)),
            metadata: metadata_of(&info),
            ..Default::default()
        });
        Ok(response)
    }

    async fn head_object(
        &self,
        req: S3Request<HeadObjectInput>,
    ) -> S3Result<S3Response<HeadObjectOutput>> {
        let access = self.access(&req.credentials).await?;
        let input = req.input;
        let info = self.readable(&access, &input.bucket, &input.key).await?;
        check_preconditions(
            &info,
            &input.if_match,
            &input.if_none_match,
            input.if_modified_since,
            input.if_unmodified_since,
        )?;
        Ok(S3Response::new(HeadObjectOutput {
            content_length: Some(info.size as i64),
            accept_ranges: Some("bytes".into()),
            content_type: Some(info.content_type.clone()),
            cache_control: info.cache_control.clone(),
            e_tag: Some(ETag::Strong(info.etag.clone())),
            last_modified: Some(timestamp(info.updated_at)),
            metadata: metadata_of(&info),
            ..Default::default()
        }))
    }

    async fn delete_object(
        &self,
        req: S3Request<DeleteObjectInput>,
    ) -> S3Result<S3Response<DeleteObjectOutput>> {
        let access = self.access(&req.credentials).await?;
        let input = req.input;
        let deleted = self
            .store
            .delete_objects(&access, &input.bucket, std::slice::from_ref(&input.key))
            .await?;
        if deleted.is_empty() {
            // S3 answers 204 for a missing key, but not for a missing bucket.
            self.store.bucket_system(&input.bucket).await?;
        }
        Ok(S3Response::new(DeleteObjectOutput::default()))
    }

    async fn delete_objects(
        &self,
        req: S3Request<DeleteObjectsInput>,
    ) -> S3Result<S3Response<DeleteObjectsOutput>> {
        let access = self.access(&req.credentials).await?;
        let input = req.input;
        self.store.bucket_system(&input.bucket).await?;
        let keys: Vec<String> = input.delete.objects.into_iter().map(|o| o.key).collect();
        if keys.len() > 1000 {
            return Err(s3_error!(MalformedXML, "at most 1000 keys per request"));
        }
        self.store
            .delete_objects(&access, &input.bucket, &keys)
            .await?;
        let quiet = input.delete.quiet.unwrap_or(false);
        let deleted = if quiet {
            Vec::new()
        } else {
            keys.into_iter()
                .map(|key| DeletedObject {
                    key: Some(key),
                    ..Default::default()
                })
                .collect()
        };
        Ok(S3Response::new(DeleteObjectsOutput {
            deleted: Some(deleted),
            ..Default::default()
        }))
    }

    async fn copy_object(
        &self,
        req: S3Request<CopyObjectInput>,
    ) -> S3Result<S3Response<CopyObjectOutput>> {
        let access = self.access(&req.credentials).await?;
        let input = req.input;
        let (src_bucket, src_key) = source_of(&input.copy_source)?;
        let replace = input
            .metadata_directive
            .as_ref()
            .is_some_and(|d| d.as_str() == MetadataDirective::REPLACE);
        if !replace && src_bucket == input.bucket && src_key == input.key {
            return Err(s3_error!(
                InvalidRequest,
                "copying an object onto itself needs a metadata change"
            ));
        }
        let source = self.readable(&access, &src_bucket, &src_key).await?;
        check_preconditions(
            &source,
            &input.copy_source_if_match,
            &input.copy_source_if_none_match,
            input.copy_source_if_modified_since,
            input.copy_source_if_unmodified_since,
        )
        .map_err(|err| match err.code() {
            S3ErrorCode::NotModified => s3_error!(PreconditionFailed),
            _ => err,
        })?;
        let options = replace.then(|| PutOptions {
            content_type: input.content_type,
            cache_control: input.cache_control,
            user_metadata: user_metadata(input.metadata),
            overwrite: true,
            content_md5: None,
            owner: None,
            declared_size: None,
        });
        let info = self
            .store
            .copy_object(
                &access,
                (&src_bucket, &src_key),
                (&input.bucket, &input.key),
                options,
                true,
            )
            .await?;
        Ok(S3Response::new(CopyObjectOutput {
            copy_object_result: Some(CopyObjectResult {
                e_tag: Some(ETag::Strong(info.etag)),
                last_modified: Some(timestamp(info.updated_at)),
                ..Default::default()
            }),
            ..Default::default()
        }))
    }

    async fn create_multipart_upload(
        &self,
        req: S3Request<CreateMultipartUploadInput>,
    ) -> S3Result<S3Response<CreateMultipartUploadOutput>> {
        let access = self.access(&req.credentials).await?;
        let input = req.input;
        let upload = self
            .store
            .create_upload(
                &access,
                &input.bucket,
                &input.key,
                input.content_type,
                user_metadata(input.metadata),
            )
            .await?;
        Ok(S3Response::new(CreateMultipartUploadOutput {
            bucket: Some(input.bucket),
            key: Some(input.key),
            upload_id: Some(upload.id),
            ..Default::default()
        }))
    }

    async fn upload_part(
        &self,
        req: S3Request<UploadPartInput>,
    ) -> S3Result<S3Response<UploadPartOutput>> {
        let (_, upload) = self.caller_upload(&req).await?;
        let input = req.input;
        let body = input.body.ok_or_else(|| s3_error!(IncompleteBody))?;
        let part = self
            .store
            .upload_part(&upload, input.part_number, body)
            .await?;
        Ok(S3Response::new(UploadPartOutput {
            e_tag: Some(ETag::Strong(part.etag)),
            ..Default::default()
        }))
    }

    async fn upload_part_copy(
        &self,
        req: S3Request<UploadPartCopyInput>,
    ) -> S3Result<S3Response<UploadPartCopyOutput>> {
        let (access, upload) = self.caller_upload(&req).await?;
        let input = req.input;
        let (src_bucket, src_key) = source_of(&input.copy_source)?;
        let (source, body) = self.open(&access, &src_bucket, &src_key).await?;
        let (start, length) = copy_range(input.copy_source_range.as_deref(), source.size)?;
        let stream = body.into_stream(start, length).await.map_err(internal)?;
        let part = self
            .store
            .upload_part(&upload, input.part_number, stream)
            .await?;
        Ok(S3Response::new(UploadPartCopyOutput {
            copy_part_result: Some(CopyPartResult {
                e_tag: Some(ETag::Strong(part.etag)),
                last_modified: Some(timestamp(part.created_at)),
                ..Default::default()
            }),
            ..Default::default()
        }))
    }

    async fn complete_multipart_upload(
        &self,
        req: S3Request<CompleteMultipartUploadInput>,
    ) -> S3Result<S3Response<CompleteMultipartUploadOutput>> {
        let (access, upload) = self.caller_upload(&req).await?;
        let input = req.input;
        let parts = input
            .multipart_upload
            .and_then(|m| m.parts)
            .unwrap_or_default()
            .into_iter()
            .map(|p| {
                let number = p
                    .part_number
                    .ok_or_else(|| s3_error!(InvalidPart, "a part has no PartNumber"))?;
                let etag = p
                    .e_tag
                    .map(|e| e.value().to_owned())
                    .ok_or_else(|| s3_error!(InvalidPart, "a part has no ETag"))?;
                Ok((number, etag))
            })
            .collect::<S3Result<Vec<_>>>()?;
        let info = self.store.complete_upload(&access, &upload, &parts).await?;
        Ok(S3Response::new(CompleteMultipartUploadOutput {
            bucket: Some(input.bucket.clone()),
            key: Some(input.key.clone()),
            e_tag: Some(ETag::Strong(info.etag)),
            location: Some(format!("/{}/{}", input.bucket, input.key)),
            ..Default::default()
        }))
    }

    async fn abort_multipart_upload(
        &self,
        req: S3Request<AbortMultipartUploadInput>,
    ) -> S3Result<S3Response<AbortMultipartUploadOutput>> {
        let (_, upload) = self.caller_upload(&req).await?;
        self.store.abort_upload(&upload).await?;
        Ok(S3Response::new(AbortMultipartUploadOutput::default()))
    }

    async fn list_parts(
        &self,
        req: S3Request<ListPartsInput>,
    ) -> S3Result<S3Response<ListPartsOutput>> {
        let (_, upload) = self.caller_upload(&req).await?;
        let input = req.input;
        let marker = input.part_number_marker.unwrap_or(0);
        let max = input.max_parts.unwrap_or(1000).clamp(0, 1000) as usize;
        let all: Vec<_> = self
            .store
            .list_parts(&upload)
            .await?
            .into_iter()
            .filter(|p| p.number > marker)
            .collect();
        let truncated = all.len() > max;
        let parts: Vec<Part> = all
            .into_iter()
            .take(max)
            .map(|p| Part {
                e_tag: Some(ETag::Strong(p.etag)),
                last_modified: Some(timestamp(p.created_at)),
                part_number: Some(p.number),
                size: Some(p.size as i64),
                ..Default::default()
            })
            .collect();
        let next = parts.last().and_then(|p| p.part_number);
        Ok(S3Response::new(ListPartsOutput {
            bucket: Some(input.bucket),
            key: Some(input.key),
            upload_id: Some(input.upload_id),
            part_number_marker: input.part_number_marker,
            next_part_number_marker: next,
            max_parts: Some(max as i32),
            is_truncated: Some(truncated),
            parts: Some(parts),
            ..Default::default()
        }))
    }

    async fn list_multipart_uploads(
        &self,
        req: S3Request<ListMultipartUploadsInput>,
    ) -> S3Result<S3Response<ListMultipartUploadsOutput>> {
        let access = self.access(&req.credentials).await?;
        let input = req.input;
        let prefix = input.prefix.clone().unwrap_or_default();
        let uploads = self
            .store
            .list_uploads(&access, &input.bucket, &prefix)
            .await?;
        let encoding = KeyEncoding::new(&input.encoding_type);
        let uploads = uploads
            .into_iter()
            .map(|u| MultipartUpload {
                key: Some(encoding.apply(&u.key)),
                upload_id: Some(u.id),
                initiated: Some(timestamp(u.created_at)),
                ..Default::default()
            })
            .collect();
        Ok(S3Response::new(ListMultipartUploadsOutput {
            bucket: Some(input.bucket),
            prefix: Some(encoding.apply(&prefix)),
            max_uploads: Some(1000),
            is_truncated: Some(false),
            uploads: Some(uploads),
            encoding_type: input.encoding_type,
            ..Default::default()
        }))
    }
}

/// Serves the S3 endpoint on `listener` until the task is dropped.
pub async fn serve(listener: tokio::net::TcpListener, service: S3Service) {
    use hyper_util::rt::{TokioExecutor, TokioIo};
    use hyper_util::server::conn::auto::Builder;
    loop {
        let (socket, _) = match listener.accept().await {
            Ok(conn) => conn,
            Err(err) => {
                tracing::warn!(%err, "accepting an S3 connection");
                continue;
            }
        };
        let _ = socket.set_nodelay(true);
        let service = service.clone();
        tokio::spawn(async move {
            let builder = Builder::new(TokioExecutor::new());
            if let Err(err) = builder
                .serve_connection(TokioIo::new(socket), service)
                .await
            {
                tracing::debug!(%err, "S3 connection ended");
            }
        });
    }
}
