//! `/storage/v1/object`: upload, download, info, list, move, copy and
//! remove, each as the caller, except downloads from public buckets.

use super::{json_response, Call, StorageApiError, StorageResult};
use axum::body::Body;
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::response::Response;
use serde::Deserialize;
use serde_json::{json, Value};
use storage_s3s::{
    byte_range, Access, CopyOptions, FolderQuery, ObjectBody, ObjectInfo, PutOptions, Read,
    SortColumn, Store,
};

/// Characters RFC 8187 lets a `filename*` value carry unescaped.
const ATTR_CHARS: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'!')
    .remove(b'#')
    .remove(b'$')
    .remove(b'&')
    .remove(b'+')
    .remove(b'-')
    .remove(b'.')
    .remove(b'^')
    .remove(b'_')
    .remove(b'`')
    .remove(b'|')
    .remove(b'~');

/// An object as Supabase returns it in listings and removals.
pub fn object_json(info: &ObjectInfo) -> Value {
    json!({
        "id": info.id,
        "name": info.name,
        "bucket_id": info.bucket_id,
        "owner": info.owner,
        "owner_id": info.owner,
        "version": info.version,
        "metadata": info.metadata,
        "user_metadata": info.user_metadata,
        "created_at": info.created_at,
        "updated_at": info.updated_at,
        "last_accessed_at": info.last_accessed_at,
    })
}

fn truthy(value: Option<&str>) -> bool {
    value.is_some_and(|v| v.eq_ignore_ascii_case("true") || v == "1")
}

/// `x-metadata`: base64 of a JSON object of user metadata.
fn metadata_header(call: &Call) -> StorageResult<Option<Value>> {
    let Some(text) = call.header("x-metadata") else {
        return Ok(None);
    };
    use base64::Engine;
    let raw = base64::engine::general_purpose::STANDARD
        .decode(text.trim())
        .map_err(|_| StorageApiError::bad_request("x-metadata must be base64 of a JSON object"))?;
    parse_metadata(&raw).map(Some)
}

fn parse_metadata(raw: &[u8]) -> StorageResult<Value> {
    match serde_json::from_slice::<Value>(raw) {
        Ok(value @ Value::Object(_)) => Ok(value),
        _ => Err(StorageApiError::bad_request(
            "object metadata must be a JSON object",
        )),
    }
}

/// Uploads (`POST` creates, `PUT` or `x-upsert: true` may overwrite) from a
/// raw body or from storage-js's `multipart/form-data` (fields
/// `cacheControl`, `metadata`, then the file).
pub async fn upload(call: Call, bucket: &str, key: &str) -> StorageResult<Response> {
    let access = call.access()?;
    let overwrite = call.method == Method::PUT || truthy(call.header("x-upsert"));
    store_upload(call, &access, bucket, key, overwrite, None).await
}

pub(super) async fn store_upload(
    call: Call,
    access: &Access,
    bucket: &str,
    key: &str,
    overwrite: bool,
    owner: Option<String>,
) -> StorageResult<Response> {
    let store = call.app.storage.store.clone();
    let content_type = call.header("content-type").map(str::to_owned);
    let declared: Option<u64> = call.header("content-length").and_then(|v| v.parse().ok());
    let mut options = PutOptions {
        content_type: content_type.clone(),
        cache_control: call.header("cache-control").map(str::to_owned),
        user_metadata: metadata_header(&call)?,
        overwrite,
        content_md5: None,
        owner,
        declared_size: None,
        condition: Default::default(),
        acl: None,
        headers: Default::default(),
        part_sizes: None,
    };
    let multipart = content_type
        .as_deref()
        .is_some_and(|ct| ct.to_ascii_lowercase().starts_with("multipart/form-data"));
    if !multipart {
        options.declared_size = declared;
    } else if let Some(declared) = declared {
        // A form is a little larger than its file: refuse only what cannot fit.
        let bucket_row = store.bucket_system(bucket).await?;
        let limit = store.size_limit(&bucket_row);
        if declared > limit.saturating_add(64 << 10) {
            return Err(storage_s3s::StorageError::EntityTooLarge { limit }.into());
        }
    }
    let boundary = content_type
        .as_deref()
        .filter(|_| multipart)
        .map(|ct| {
            multer::parse_boundary(ct)
                .map_err(|_| StorageApiError::bad_request("multipart body without a boundary"))
        })
        .transpose()?;
    let info = match boundary {
        None => {
            store
                .put_object(access, bucket, key, call.body.into_data_stream(), options)
                .await?
        }
        Some(boundary) => {
            let mut form = multer::Multipart::new(call.body.into_data_stream(), boundary);
            loop {
                let field = form
                    .next_field()
                    .await
                    .map_err(|e| StorageApiError::bad_request(format!("multipart body: {e}")))?
                    .ok_or_else(|| StorageApiError::bad_request("the form has no file"))?;
                match field.name() {
                    Some("cacheControl") => {
                        let text = field.text().await.map_err(|e| {
                            StorageApiError::bad_request(format!("multipart body: {e}"))
                        })?;
                        options.cache_control = Some(cache_control(&text));
                    }
                    Some("metadata") => {
                        let raw = field.bytes().await.map_err(|e| {
                            StorageApiError::bad_request(format!("multipart body: {e}"))
                        })?;
                        options.user_metadata = Some(parse_metadata(&raw)?);
                    }
                    _ => {
                        options.content_type = field
                            .content_type()
                            .map(|m| m.to_string())
                            .or(Some("application/octet-stream".into()));
                        break store
                            .put_object(access, bucket, key, field, options)
                            .await?;
                    }
                }
            }
        }
    };
    Ok(json_response(
        StatusCode::OK,
        json!({ "Id": info.id, "Key": format!("{}/{}", info.bucket_id, info.name) }),
    ))
}

/// storage-js sends `cacheControl` as seconds.
fn cache_control(text: &str) -> String {
    match text.trim().parse::<u64>() {
        Ok(seconds) => format!("max-age={seconds}"),
        Err(_) => text.trim().to_owned(),
    }
}

pub async fn download(
    call: Call,
    bucket: &str,
    key: &str,
    public: bool,
) -> StorageResult<Response> {
    let (access, read) = if public {
        (Access::anonymous(), Read::Public)
    } else {
        (call.access()?, Read::AsCaller)
    };
    let reading = Reading::of(&call);
    let (info, body) = reading
        .fetch(&call.app.storage.store, &access, bucket, key, read)
        .await?;
    serve_object(reading, &info, body).await
}

/// What a download answer depends on besides the object.
pub(crate) struct Reading {
    method: Method,
    range: Option<String>,
    if_none_match: Option<String>,
    download: Option<String>,
}

impl Reading {
    /// The object's row, and its bytes unless this is a HEAD, which sends
    /// none: an inline object's bytes are not loaded, a file not opened.
    pub(crate) async fn fetch(
        &self,
        store: &Store,
        access: &Access,
        bucket: &str,
        key: &str,
        read: Read,
    ) -> StorageResult<(ObjectInfo, Option<ObjectBody>)> {
        if self.method == Method::HEAD {
            let info = store.head_object(access, bucket, key, read).await?;
            return Ok((info, None));
        }
        let (info, body) = store.get_object(access, bucket, key, read).await?;
        Ok((info, Some(body)))
    }

    pub(crate) fn of(call: &Call) -> Self {
        Reading {
            method: call.method.clone(),
            range: call.header("range").map(str::to_owned),
            if_none_match: call.header("if-none-match").map(str::to_owned),
            download: call.query_param("download"),
        }
    }
}

/// The object's bytes, honouring HEAD, `Range`, `If-None-Match` and
/// `?download`.
pub(crate) async fn serve_object(
    call: Reading,
    info: &ObjectInfo,
    body: Option<ObjectBody>,
) -> StorageResult<Response> {
    let etag = format!("\"{}\"", info.etag);
    let mut builder = Response::builder()
        .header(header::CONTENT_TYPE, &info.content_type)
        .header(header::ETAG, &etag)
        .header(header::ACCEPT_RANGES, "bytes")
        .header(
            header::LAST_MODIFIED,
            httpdate::fmt_http_date(info.updated_at.into()),
        )
        .header(
            header::CACHE_CONTROL,
            info.cache_control.as_deref().unwrap_or("no-cache"),
        );
    if let Some(name) = call.download {
        let name = if name.is_empty() {
            info.name
                .rsplit('/')
                .next()
                .unwrap_or(&info.name)
                .to_owned()
        } else {
            name
        };
        let encoded = percent_encoding::utf8_percent_encode(&name, ATTR_CHARS);
        builder = builder.header(
            header::CONTENT_DISPOSITION,
            format!("attachment; filename*=UTF-8''{encoded}"),
        );
    }
    if call
        .if_none_match
        .as_deref()
        .is_some_and(|tags| tags.split(',').any(|t| t.trim() == etag || t.trim() == "*"))
    {
        return builder
            .status(StatusCode::NOT_MODIFIED)
            .body(Body::empty())
            .map_err(internal);
    }
    let span = byte_range(call.range.as_deref(), info.size).map_err(|_| {
        StorageApiError::new(
            StatusCode::RANGE_NOT_SATISFIABLE,
            "InvalidRange",
            format!(
                "the range cannot be satisfied by an object of {} bytes",
                info.size
            ),
        )
    })?;
    let (status, start, length) = match span {
        None => (StatusCode::OK, 0, info.size),
        Some(span) => {
            builder = builder.header(
                header::CONTENT_RANGE,
                format!("bytes {}-{}/{}", span.start, span.end - 1, info.size),
            );
            (
                StatusCode::PARTIAL_CONTENT,
                span.start,
                span.end - span.start,
            )
        }
    };
    builder = builder
        .status(status)
        .header(header::CONTENT_LENGTH, HeaderValue::from(length));
    let Some(body) = body.filter(|_| call.method != Method::HEAD) else {
        return builder.body(Body::empty()).map_err(internal);
    };
    let stream = body.into_stream(start, length).await.map_err(internal)?;
    builder.body(Body::from_stream(stream)).map_err(internal)
}

fn internal(err: impl std::fmt::Display) -> StorageApiError {
    tracing::error!(%err, "serving an object");
    StorageApiError::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        "internal",
        "internal error",
    )
}

pub async fn info(call: Call, bucket: &str, key: &str, public: bool) -> StorageResult<Response> {
    let (access, read) = if public {
        (Access::anonymous(), Read::Public)
    } else {
        (call.access()?, Read::AsCaller)
    };
    let info = call
        .app
        .storage
        .store
        .head_object(&access, bucket, key, read)
        .await?;
    Ok(json_response(
        StatusCode::OK,
        json!({
            "id": info.id,
            "name": info.name,
            "version": info.version,
            "bucket_id": info.bucket_id,
            "size": info.size,
            "content_type": info.content_type,
            "cache_control": info.cache_control,
            "etag": format!("\"{}\"", info.etag),
            "metadata": info.user_metadata,
            "last_modified": info.updated_at,
            "created_at": info.created_at,
        }),
    ))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ListBody {
    #[serde(default)]
    prefix: String,
    limit: Option<i64>,
    offset: Option<i64>,
    sort_by: Option<SortBy>,
    #[serde(default)]
    search: String,
}

#[derive(Deserialize)]
struct SortBy {
    column: Option<String>,
    order: Option<String>,
}

pub async fn list(call: Call, bucket: &str) -> StorageResult<Response> {
    let access = call.access()?;
    let app = call.app.clone();
    let body: ListBody = call.json().await?;
    let (column, order) = match body.sort_by {
        Some(sort) => (sort.column, sort.order),
        None => (None, None),
    };
    let sort_column = match column.as_deref() {
        None => SortColumn::Name,
        Some(text) => SortColumn::parse(text)
            .ok_or_else(|| StorageApiError::bad_request(format!("cannot sort by {text:?}")))?,
    };
    let descending = match order.as_deref().map(str::to_ascii_lowercase).as_deref() {
        None | Some("asc") => false,
        Some("desc") => true,
        Some(other) => {
            return Err(StorageApiError::bad_request(format!(
                "sort order must be asc or desc, not {other:?}"
            )))
        }
    };
    let query = FolderQuery {
        prefix: body.prefix,
        search: body.search,
        limit: body.limit.unwrap_or(100),
        offset: body.offset.unwrap_or(0),
        sort_column,
        descending,
    };
    app.storage.store.bucket_system(bucket).await?;
    let entries = app
        .storage
        .store
        .list_folder(&access, bucket, &query)
        .await?;
    Ok(json_response(StatusCode::OK, json!(entries)))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct MoveBody {
    bucket_id: String,
    source_key: String,
    destination_key: String,
    destination_bucket: Option<String>,
}

pub async fn move_object(call: Call) -> StorageResult<Response> {
    let access = call.access()?;
    let app = call.app.clone();
    let body: MoveBody = call.json().await?;
    let to_bucket = body
        .destination_bucket
        .as_deref()
        .unwrap_or(&body.bucket_id);
    app.storage
        .store
        .move_object(
            &access,
            (&body.bucket_id, &body.source_key),
            (to_bucket, &body.destination_key),
        )
        .await?;
    Ok(json_response(
        StatusCode::OK,
        json!({ "message": "Successfully moved" }),
    ))
}

pub async fn copy(call: Call) -> StorageResult<Response> {
    let access = call.access()?;
    let app = call.app.clone();
    let overwrite = truthy(call.header("x-upsert"));
    let body: MoveBody = call.json().await?;
    let to_bucket = body
        .destination_bucket
        .as_deref()
        .unwrap_or(&body.bucket_id);
    let info = app
        .storage
        .store
        .copy_object(
            &access,
            (&body.bucket_id, &body.source_key),
            (to_bucket, &body.destination_key),
            CopyOptions {
                overwrite,
                ..Default::default()
            },
        )
        .await?;
    Ok(json_response(
        StatusCode::OK,
        json!({ "Id": info.id, "Key": format!("{}/{}", info.bucket_id, info.name) }),
    ))
}

#[derive(Deserialize)]
struct RemoveBody {
    prefixes: Vec<String>,
}

pub async fn remove_many(call: Call, bucket: &str) -> StorageResult<Response> {
    let access = call.access()?;
    let app = call.app.clone();
    let body: RemoveBody = call.json().await?;
    if body.prefixes.len() > 1000 {
        return Err(StorageApiError::bad_request(
            "at most 1000 objects can be removed at once",
        ));
    }
    app.storage.store.bucket_system(bucket).await?;
    let deleted = app
        .storage
        .store
        .delete_objects(&access, bucket, &body.prefixes)
        .await?;
    let rows: Vec<Value> = deleted.iter().map(object_json).collect();
    Ok(json_response(StatusCode::OK, Value::Array(rows)))
}

pub async fn remove_one(call: Call, bucket: &str, key: &str) -> StorageResult<Response> {
    let access = call.access()?;
    let deleted = call
        .app
        .storage
        .store
        .delete_objects(&access, bucket, &[key.to_owned()])
        .await?;
    if deleted.is_empty() {
        call.app.storage.store.bucket_system(bucket).await?;
        return Err(storage_s3s::StorageError::NoSuchKey.into());
    }
    Ok(json_response(
        StatusCode::OK,
        json!({ "message": "Successfully deleted" }),
    ))
}
