//! Multipart uploads: create, upload a part (or copy one from an object),
//! complete, abort, and list parts and uploads.

use super::convert::{internal, owner, source_of, timestamp, user_metadata, KeyEncoding};
use super::S3Frontend;
use crate::access::Access;
use crate::range::copy_source_range;
use s3s::dto::*;
use s3s::{s3_error, S3Request, S3Response, S3Result};

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
    /// The caller and the open upload their request names, if it is
    /// theirs.
    async fn caller_upload<T: UploadRequest>(
        &self,
        req: &S3Request<T>,
    ) -> S3Result<(Access, crate::multipart::Upload)> {
        let access = self.access(&req.credentials).await?;
        let (bucket, key, id) = req.input.upload_names();
        let upload = self.store.open_upload(&access, bucket, key, id).await?;
        Ok((access, upload))
    }
}

pub(super) async fn create_multipart_upload(
    s3: &S3Frontend,
    req: S3Request<CreateMultipartUploadInput>,
) -> S3Result<S3Response<CreateMultipartUploadOutput>> {
    let access = s3.access(&req.credentials).await?;
    let input = req.input;
    let acl = super::acl::header_acl(&input)?;
    let upload = s3
        .store
        .create_upload(
            &access,
            &input.bucket,
            &input.key,
            input.content_type,
            user_metadata(input.metadata),
            acl,
        )
        .await?;
    Ok(S3Response::new(CreateMultipartUploadOutput {
        bucket: Some(input.bucket),
        key: Some(input.key),
        upload_id: Some(upload.id),
        ..Default::default()
    }))
}

pub(super) async fn upload_part(
    s3: &S3Frontend,
    req: S3Request<UploadPartInput>,
) -> S3Result<S3Response<UploadPartOutput>> {
    let (_, upload) = s3.caller_upload(&req).await?;
    let input = req.input;
    let body = input.body.ok_or_else(|| s3_error!(IncompleteBody))?;
    let part = s3
        .store
        .upload_part(&upload, input.part_number, body)
        .await?;
    Ok(S3Response::new(UploadPartOutput {
        e_tag: Some(ETag::Strong(part.etag)),
        ..Default::default()
    }))
}

pub(super) async fn upload_part_copy(
    s3: &S3Frontend,
    req: S3Request<UploadPartCopyInput>,
) -> S3Result<S3Response<UploadPartCopyOutput>> {
    let (access, upload) = s3.caller_upload(&req).await?;
    let input = req.input;
    let (src_bucket, src_key) = source_of(&input.copy_source)?;
    let (source, body) = s3.open(&access, &src_bucket, &src_key).await?;
    let span = copy_source_range(input.copy_source_range.as_deref(), source.size)?;
    let stream = body
        .into_stream(span.start, span.end - span.start)
        .await
        .map_err(internal)?;
    let part = s3
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

pub(super) async fn complete_multipart_upload(
    s3: &S3Frontend,
    req: S3Request<CompleteMultipartUploadInput>,
) -> S3Result<S3Response<CompleteMultipartUploadOutput>> {
    // A completed upload too: a retried completion answers again.
    let access = s3.access(&req.credentials).await?;
    let (bucket, key, id) = req.input.upload_names();
    let upload = s3.store.upload(&access, bucket, key, id).await?;
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
    let (condition, overwrite) =
        super::objects::write_condition(&input.if_match, &input.if_none_match)?;
    let info = s3
        .store
        .complete_upload(&access, &upload, &parts, condition, overwrite)
        .await?;
    Ok(S3Response::new(CompleteMultipartUploadOutput {
        bucket: Some(input.bucket.clone()),
        key: Some(input.key.clone()),
        e_tag: Some(ETag::Strong(info.etag)),
        location: Some(format!("/{}/{}", input.bucket, input.key)),
        ..Default::default()
    }))
}

pub(super) async fn abort_multipart_upload(
    s3: &S3Frontend,
    req: S3Request<AbortMultipartUploadInput>,
) -> S3Result<S3Response<AbortMultipartUploadOutput>> {
    let (_, upload) = s3.caller_upload(&req).await?;
    s3.store.abort_upload(&upload).await?;
    Ok(S3Response::new(AbortMultipartUploadOutput::default()))
}

pub(super) async fn list_parts(
    s3: &S3Frontend,
    req: S3Request<ListPartsInput>,
) -> S3Result<S3Response<ListPartsOutput>> {
    let (_, upload) = s3.caller_upload(&req).await?;
    let input = req.input;
    let marker = input.part_number_marker.unwrap_or(0);
    let max = input.max_parts.unwrap_or(1000).clamp(0, 1000) as usize;
    let all: Vec<_> = s3
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

pub(super) async fn list_multipart_uploads(
    s3: &S3Frontend,
    req: S3Request<ListMultipartUploadsInput>,
) -> S3Result<S3Response<ListMultipartUploadsOutput>> {
    let access = s3.access(&req.credentials).await?;
    let input = req.input;
    let prefix = input.prefix.clone().unwrap_or_default();
    let uploads = s3
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
            owner: Some(owner(u.initiator.as_deref())),
            initiator: Some(Initiator {
                id: Some(owner(u.initiator.as_deref()).id.unwrap_or_default()),
                display_name: owner(u.initiator.as_deref()).display_name,
            }),
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
