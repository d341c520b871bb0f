//! Object operations: put, get, head, delete (one or many) and copy, with
//! the read rule they share (RLS, or a public bucket) and GET/HEAD
//! preconditions.

use super::convert::{
    datetime, internal, metadata_of, seconds, source_of, timestamp, user_metadata,
};
use super::S3Frontend;
use crate::access::Access;
use crate::acl::{Acl, Permission};
use crate::body::ObjectBody;
use crate::error::StorageError;
use crate::objects::{
    CopyOptions, DeleteCondition, ObjectInfo, PutOptions, Read, StoredHeaders, WriteCondition,
};
use s3s::dto::*;
use s3s::{s3_error, S3Error, S3ErrorCode, S3Request, S3Response, S3Result};

impl S3Frontend {
    /// An object as `access` may read it: through the policies (RLS), or
    /// from a public bucket, or as the object's ACL allows. A refusal
    /// follows S3: 403 where the caller may not list the bucket (a missing
    /// key must not be told from a private one) or may see the key, 404
    /// where the key is missing, or hidden by the policies, and the caller
    /// may list the bucket (or read any key in it: a public bucket).
    pub(super) async fn readable(
        &self,
        access: &Access,
        bucket: &str,
        key: &str,
    ) -> S3Result<ObjectInfo> {
        if key.chars().any(char::is_control) {
            // No object can have such a key (writes refuse it): S3's answer
            // for a key it cannot read.
            return Err(s3_error!(InvalidURI, "Couldn't parse the specified URI."));
        }
        if !matches!(access, Access::Anon { .. }) {
            match self
                .store
                .head_object(access, bucket, key, Read::AsCaller)
                .await
            {
                Err(StorageError::NoSuchKey) => {}
                other => return Ok(other?),
            }
        }
        let row = self.store.bucket_system(bucket).await?;
        let found = self
            .store
            .head_object(&Access::System, bucket, key, Read::AsCaller)
            .await;
        let exists = match found {
            Ok(info)
                if row.public
                    || Acl::of_object(&info.metadata).allows(access, Permission::Read) =>
            {
                return Ok(info)
            }
            Ok(_) => true,
            Err(StorageError::NoSuchKey) => false,
            Err(err) => return Err(err.into()),
        };
        let lists_every_key = matches!(access, Access::Service)
            || row.s3_acl.allows(access, Permission::Read)
            || (row.owner.is_some() && row.owner.as_deref() == access.user_id());
        let lists_under_policies = match access {
            Access::Anon { .. } => row.public,
            _ => row.public || row.owner.is_none(),
        };
        if (exists && lists_every_key) || !(lists_every_key || lists_under_policies) {
            Err(s3_error!(AccessDenied))
        } else {
            Err(s3_error!(NoSuchKey))
        }
    }

    /// Opens the bytes of an object read as `readable` allows.
    pub(super) async fn open(
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

fn etag_matches(condition: &ETagCondition, etag: &str) -> bool {
    match condition {
        ETagCondition::Any => true,
        ETagCondition::ETag(e) => e.value() == etag,
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
    let unmodified = match (if_none_match, if_modified_since) {
        (Some(condition), _) => etag_matches(condition, &info.etag),
        (None, Some(since)) => modified <= seconds(since),
        (None, None) => false,
    };
    if unmodified {
        // A 304 still names the representation the client has.
        let mut err = s3_error!(NotModified);
        let mut headers = hyper::HeaderMap::new();
        if let Ok(etag) = hyper::header::HeaderValue::from_str(&format!("\"{}\"", info.etag)) {
            headers.insert(hyper::header::ETAG, etag);
        }
        let last_modified = info
            .updated_at
            .format("%a, %d %b %Y %H:%M:%S GMT")
            .to_string();
        if let Ok(value) = hyper::header::HeaderValue::from_str(&last_modified) {
            headers.insert(hyper::header::LAST_MODIFIED, value);
        }
        err.set_headers(headers);
        return Err(err);
    }
    Ok(())
}

/// The sizes of a multipart object's parts (empty for one uploaded whole).
pub(super) fn part_sizes(info: &ObjectInfo) -> Vec<u64> {
    info.metadata
        .get("s3Parts")
        .and_then(serde_json::Value::as_array)
        .map(|sizes| sizes.iter().filter_map(serde_json::Value::as_u64).collect())
        .unwrap_or_default()
}

/// Where part `number` lies (start, length); an object uploaded whole is
/// its own part 1.
fn part_span(parts: &[u64], size: u64, number: i32) -> S3Result<(u64, u64)> {
    let index = usize::try_from(number)
        .ok()
        .and_then(|n| n.checked_sub(1))
        .ok_or_else(|| s3_error!(InvalidArgument, "part numbers start at 1"))?;
    if parts.is_empty() {
        return match index {
            0 => Ok((0, size)),
            _ => Err(s3_error!(InvalidPart, "the object has one part")),
        };
    }
    let length = *parts
        .get(index)
        .ok_or_else(|| s3_error!(InvalidPart, "the object has {} parts", parts.len()))?;
    Ok((parts[..index].iter().sum(), length))
}

/// A missing object's answer says it is no delete marker (buckets are never
/// versioned), as RGW and versioning-aware clients expect.
fn not_a_delete_marker(mut err: S3Error) -> S3Error {
    if *err.code() == S3ErrorCode::NoSuchKey {
        let mut headers = hyper::HeaderMap::new();
        headers.insert(
            "x-amz-delete-marker",
            hyper::header::HeaderValue::from_static("false"),
        );
        err.set_headers(headers);
    }
    err
}

/// The representation headers a write stores. `aws-chunked` is how the
/// body was sent, not how it is encoded, so it is not kept.
fn stored_headers(
    content_encoding: Option<String>,
    content_disposition: Option<String>,
    content_language: Option<String>,
    expires: Option<Timestamp>,
) -> StoredHeaders {
    let content_encoding = content_encoding
        .map(|e| {
            e.split(',')
                .map(str::trim)
                .filter(|t| !t.is_empty() && !t.eq_ignore_ascii_case("aws-chunked"))
                .collect::<Vec<_>>()
                .join(", ")
        })
        .filter(|e| !e.is_empty());
    StoredHeaders {
        content_encoding,
        content_disposition,
        content_language,
        expires: expires.map(|at| datetime(at).to_rfc3339()),
    }
}

/// What a read answers with of an object's stored headers.
struct ReadHeaders {
    content_encoding: Option<String>,
    content_disposition: Option<String>,
    content_language: Option<String>,
    expires: Option<Timestamp>,
}

fn read_headers(info: &ObjectInfo) -> ReadHeaders {
    let stored = StoredHeaders::of(&info.metadata);
    ReadHeaders {
        content_encoding: stored.content_encoding,
        content_disposition: stored.content_disposition,
        content_language: stored.content_language,
        expires: stored
            .expires
            .and_then(|e| chrono::DateTime::parse_from_rfc3339(&e).ok())
            .map(|at| timestamp(at.with_timezone(&chrono::Utc))),
    }
}

/// A PUT's (or a multipart completion's) `If-Match`/`If-None-Match` as
/// the store's write condition and overwrite flag.
pub(super) fn write_condition(
    if_match: &Option<ETagCondition>,
    if_none_match: &Option<ETagCondition>,
) -> S3Result<(WriteCondition, bool)> {
    let unquoted = |e: &ETag| e.value().trim_matches('"').to_owned();
    match (if_match, if_none_match) {
        (Some(_), Some(_)) => Err(s3_error!(
            InvalidRequest,
            "If-Match and If-None-Match cannot both be given"
        )),
        (Some(ETagCondition::Any), None) => Ok((WriteCondition::IfMatch(None), true)),
        (Some(ETagCondition::ETag(e)), None) => {
            Ok((WriteCondition::IfMatch(Some(unquoted(e))), true))
        }
        (None, Some(ETagCondition::Any)) => Ok((WriteCondition::None, false)),
        (None, Some(ETagCondition::ETag(e))) => {
            Ok((WriteCondition::IfNoneMatch(unquoted(e)), true))
        }
        (None, None) => Ok((WriteCondition::None, true)),
    }
}

pub(super) async fn put_object(
    s3: &S3Frontend,
    req: S3Request<PutObjectInput>,
) -> S3Result<S3Response<PutObjectOutput>> {
    let access = s3.access(&req.credentials).await?;
    let input = req.input;
    let acl = super::acl::header_acl(&input)?;
    let body = input.body.ok_or_else(|| s3_error!(IncompleteBody))?;
    let (condition, overwrite) = write_condition(&input.if_match, &input.if_none_match)?;
    let options = PutOptions {
        content_type: input.content_type,
        cache_control: input.cache_control,
        user_metadata: user_metadata(input.metadata),
        overwrite,
        content_md5: input.content_md5,
        owner: None,
        declared_size: input.content_length.and_then(|l| u64::try_from(l).ok()),
        condition,
        acl,
        headers: stored_headers(
            input.content_encoding,
            input.content_disposition,
            input.content_language,
            input.expires,
        ),
        part_sizes: None,
    };
    let info = s3
        .store
        .put_object(&access, &input.bucket, &input.key, body, options)
        .await?;
    Ok(S3Response::new(PutObjectOutput {
        e_tag: Some(ETag::Strong(info.etag)),
        size: Some(info.size as i64),
        ..Default::default()
    }))
}

pub(super) async fn get_object(
    s3: &S3Frontend,
    req: S3Request<GetObjectInput>,
) -> S3Result<S3Response<GetObjectOutput>> {
    let access = s3.access(&req.credentials).await?;
    let input = req.input;
    if input.part_number.is_some() && input.range.is_some() {
        return Err(s3_error!(
            InvalidRequest,
            "Range and partNumber cannot both be given"
        ));
    }
    let (info, body) = s3
        .open(&access, &input.bucket, &input.key)
        .await
        .map_err(not_a_delete_marker)?;
    check_preconditions(
        &info,
        &input.if_match,
        &input.if_none_match,
        input.if_modified_since,
        input.if_unmodified_since,
    )?;
    let parts = part_sizes(&info);
    let (start, length, content_range) = match (&input.range, input.part_number) {
        (_, Some(number)) => {
            let (start, length) = part_span(&parts, info.size, number)?;
            // An empty part (an empty object's part 1) has no byte range.
            let range_text =
                (length > 0).then(|| format!("bytes {start}-{}/{}", start + length - 1, info.size));
            (start, length, range_text)
        }
        (None, None) => (0, info.size, None),
        (Some(range), None) => {
            let span = range
                .check(info.size)
                .map_err(|_| s3_error!(InvalidRange))?;
            let range_text = format!("bytes {}-{}/{}", span.start, span.end - 1, info.size);
            (span.start, span.end - span.start, Some(range_text))
        }
    };
    let stream = body.into_stream(start, length).await.map_err(internal)?;
    let stored = read_headers(&info);
    // s3s answers 206 by itself when content_range is set.
    let response = S3Response::new(GetObjectOutput {
        parts_count: input.part_number.map(|_| parts.len().max(1) as i32),
        body: Some(StreamingBlob::wrap(stream)),
        content_length: Some(length as i64),
        content_range,
        accept_ranges: Some("bytes".into()),
        content_type: Some(info.content_type.clone()),
        cache_control: info.cache_control.clone(),
        e_tag: Some(ETag::Strong(info.etag.clone())),
        last_modified: Some(timestamp(info.updated_at)),
        metadata: metadata_of(&info),
        content_encoding: stored.content_encoding,
        content_disposition: stored.content_disposition,
        content_language: stored.content_language,
        expires: stored.expires,
        ..Default::default()
    });
    Ok(response)
}

pub(super) async fn head_object(
    s3: &S3Frontend,
    req: S3Request<HeadObjectInput>,
) -> S3Result<S3Response<HeadObjectOutput>> {
    let access = s3.access(&req.credentials).await?;
    let input = req.input;
    let info = s3
        .readable(&access, &input.bucket, &input.key)
        .await
        .map_err(not_a_delete_marker)?;
    check_preconditions(
        &info,
        &input.if_match,
        &input.if_none_match,
        input.if_modified_since,
        input.if_unmodified_since,
    )?;
    let stored = read_headers(&info);
    let parts = part_sizes(&info);
    let length = match input.part_number {
        Some(number) => part_span(&parts, info.size, number)?.1,
        None => info.size,
    };
    Ok(S3Response::new(HeadObjectOutput {
        parts_count: input.part_number.map(|_| parts.len().max(1) as i32),
        content_length: Some(length as i64),
        accept_ranges: Some("bytes".into()),
        content_type: Some(info.content_type.clone()),
        cache_control: info.cache_control.clone(),
        e_tag: Some(ETag::Strong(info.etag.clone())),
        last_modified: Some(timestamp(info.updated_at)),
        metadata: metadata_of(&info),
        content_encoding: stored.content_encoding,
        content_disposition: stored.content_disposition,
        content_language: stored.content_language,
        expires: stored.expires,
        ..Default::default()
    }))
}

pub(super) async fn delete_object(
    s3: &S3Frontend,
    req: S3Request<DeleteObjectInput>,
) -> S3Result<S3Response<DeleteObjectOutput>> {
    let access = s3.access(&req.credentials).await?;
    let input = req.input;
    let condition = DeleteCondition {
        etag: input.if_match.as_ref().map(|c| match c {
            ETagCondition::Any => "*".to_owned(),
            ETagCondition::ETag(e) => e.value().to_owned(),
        }),
        last_modified: input.if_match_last_modified_time.map(datetime),
        size: input.if_match_size,
    };
    let conditional =
        condition.etag.is_some() || condition.last_modified.is_some() || condition.size.is_some();
    let deleted = if conditional {
        s3.store
            .delete_object_if(&access, &input.bucket, &input.key, &condition)
            .await?
            .into_iter()
            .collect()
    } else {
        s3.store
            .delete_objects(&access, &input.bucket, std::slice::from_ref(&input.key))
            .await?
    };
    if deleted.is_empty() {
        // S3 answers 204 for a missing key, but not for a missing bucket.
        s3.store.bucket_system(&input.bucket).await?;
    }
    Ok(S3Response::new(DeleteObjectOutput::default()))
}

pub(super) async fn delete_objects(
    s3: &S3Frontend,
    req: S3Request<DeleteObjectsInput>,
) -> S3Result<S3Response<DeleteObjectsOutput>> {
    let access = s3.access(&req.credentials).await?;
    let input = req.input;
    s3.store.bucket_system(&input.bucket).await?;
    if input.delete.objects.len() > 1000 {
        return Err(s3_error!(MalformedXML, "at most 1000 keys per request"));
    }
    // Keys without a condition go in one statement; conditioned ones one
    // by one, each failing on its own.
    let mut keys = Vec::new();
    let mut done = Vec::new();
    let mut errors = Vec::new();
    for object in input.delete.objects {
        let condition = DeleteCondition {
            etag: object.e_tag.as_ref().map(|e| e.value().to_owned()),
            last_modified: object.last_modified_time.map(datetime),
            size: object.size,
        };
        if condition.etag.is_none() && condition.last_modified.is_none() && condition.size.is_none()
        {
            keys.push(object.key);
            continue;
        }
        match s3
            .store
            .delete_object_if(&access, &input.bucket, &object.key, &condition)
            .await
        {
            Ok(_) => done.push(object.key),
            Err(err) => {
                let err = S3Error::from(err);
                errors.push(Error {
                    code: Some(err.code().as_str().to_owned()),
                    key: Some(object.key),
                    message: err.message().map(str::to_owned),
                    ..Default::default()
                });
            }
        }
    }
    if !keys.is_empty() {
        s3.store
            .delete_objects(&access, &input.bucket, &keys)
            .await?;
    }
    let quiet = input.delete.quiet.unwrap_or(false);
    let deleted = if quiet {
        Vec::new()
    } else {
        keys.into_iter()
            .chain(done)
            .map(|key| DeletedObject {
                key: Some(key),
                ..Default::default()
            })
            .collect()
    };
    Ok(S3Response::new(DeleteObjectsOutput {
        deleted: Some(deleted),
        errors: (!errors.is_empty()).then_some(errors),
        ..Default::default()
    }))
}

pub(super) async fn copy_object(
    s3: &S3Frontend,
    req: S3Request<CopyObjectInput>,
) -> S3Result<S3Response<CopyObjectOutput>> {
    let access = s3.access(&req.credentials).await?;
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
    let acl = super::acl::header_acl(&input)?;
    let source = s3.readable(&access, &src_bucket, &src_key).await?;
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
        condition: WriteCondition::None,
        // Store::copy_object sets the ACL on either path.
        acl: None,
        headers: stored_headers(
            input.content_encoding,
            input.content_disposition,
            input.content_language,
            input.expires,
        ),
        part_sizes: None,
    });
    let info = s3
        .store
        .copy_readable(
            &access,
            &source,
            (&input.bucket, &input.key),
            CopyOptions {
                replace: options,
                overwrite: true,
                acl,
            },
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

/// GetObjectAttributes: the attributes asked for, of an object as
/// `readable` allows. Parts are listed for multipart objects only, paged by
/// `part-number-marker`; SelfDB keeps no checksums beyond the ETag.
pub(super) async fn get_object_attributes(
    s3: &S3Frontend,
    req: S3Request<GetObjectAttributesInput>,
) -> S3Result<S3Response<GetObjectAttributesOutput>> {
    let access = s3.access(&req.credentials).await?;
    let input = req.input;
    let info = s3
        .readable(&access, &input.bucket, &input.key)
        .await
        .map_err(not_a_delete_marker)?;
    // The header is one comma-separated list, which s3s hands over as one
    // item.
    let wants = |name: &str| {
        input
            .object_attributes
            .iter()
            .flat_map(|a| a.as_str().split(','))
            .any(|a| a.trim() == name)
    };
    let parts = part_sizes(&info);
    let object_parts = (wants(ObjectAttributes::OBJECT_PARTS) && !parts.is_empty()).then(|| {
        let marker = input.part_number_marker.unwrap_or(0).max(0) as usize;
        let max = input.max_parts.unwrap_or(1000).clamp(0, 1000) as usize;
        let page: Vec<ObjectPart> = parts
            .iter()
            .enumerate()
            .skip(marker)
            .take(max)
            .map(|(i, size)| ObjectPart {
                part_number: Some(i as i32 + 1),
                size: Some(*size as i64),
                ..Default::default()
            })
            .collect();
        let last = marker + page.len();
        let truncated = last < parts.len();
        GetObjectAttributesParts {
            is_truncated: Some(truncated),
            max_parts: Some(max as i32),
            next_part_number_marker: truncated.then_some(last as i32),
            part_number_marker: Some(marker as i32),
            parts: Some(page),
            total_parts_count: Some(parts.len() as i32),
        }
    });
    Ok(S3Response::new(GetObjectAttributesOutput {
        e_tag: wants(ObjectAttributes::ETAG).then(|| ETag::Strong(info.etag.clone())),
        object_size: wants(ObjectAttributes::OBJECT_SIZE).then_some(info.size as i64),
        storage_class: wants(ObjectAttributes::STORAGE_CLASS)
            .then(|| StorageClass::from_static(StorageClass::STANDARD)),
        last_modified: Some(timestamp(info.updated_at)),
        object_parts,
        ..Default::default()
    }))
}
