//! `/storage/files...`: files in SelfDB's shapes (`db::api_storage`); their
//! bytes go through the object store `/storage/v1` and S3 serve, so a file
//! uploaded here downloads there and the other way round.
//!
//! - `POST /storage/files/upload?bucket_id=&filename=&path=&content_type=`
//!   with the raw bytes as the body, streamed to the store. The object's
//!   key is `path` when given (with `filename` appended when `path` ends in
//!   `/`), else `filename`; an upload to an existing key replaces it.
//! - `GET /storage/files/download/{bucket name}/{key}`: the bytes.
//! - list, get, `PATCH {metadata}` (the object's user metadata), delete,
//!   `count` (one bucket), `total-count`, `stats`.
//!
//! Who may: as `buckets` says (reads follow the bucket's visibility,
//! writes are the bucket owner's).

use super::buckets::{owned, refused, sort_by, storage_detail};
use super::{caller, json_body, segments, uuid_or_404, Caller, Detail, Params};
use crate::db::api_storage::{self, Page, Viewer};
use crate::http::storage::{objects, Call};
use crate::http::AppState;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};
use std::time::Instant;
use storage_s3s::{Access, PutOptions, Read};

pub async fn route(State(app): State<AppState>, request: Request) -> Response {
    match handle(&app, request).await {
        Ok(response) => response,
        Err(detail) => detail.into_response(),
    }
}

async fn handle(app: &AppState, request: Request) -> Result<Response, Detail> {
    let caller = caller(request.headers(), app)?;
    let admin = caller.admin(app).await?;
    let viewer = Viewer {
        admin,
        user_id: caller.user_id(),
    };
    let (parts, body) = request.into_parts();
    let segments = segments(parts.uri.path(), "/storage/files");
    let params = Params::parse(parts.uri.query());
    let pool = app.db.owner();
    let segs: Vec<&str> = segments.iter().map(String::as_str).collect();
    match (&parts.method, segs.as_slice()) {
        (&Method::GET, []) => {
            let bucket = match params.text("bucket_id") {
                Some(id) => Some(visible_bucket(app, &viewer, id).await?),
                None => None,
            };
            let page_number = params.int("page", 1, 1, i64::MAX / 1000)?;
            let page_size = params.int("page_size", 100, 1, 1000)?;
            let page = Page {
                search: params.text("search"),
                sort_by: sort_by(&params, true)?,
                ascending: params.ascending("sort_order", false)?,
                offset: (page_number - 1) * page_size,
                limit: page_size,
            };
            let (data, total) =
                api_storage::list_files(pool, &viewer, bucket.as_deref(), &page).await?;
            Ok(Json(json!({
                "data": data, "total": total, "page": page_number, "page_size": page_size,
            }))
            .into_response())
        }
        (&Method::POST, ["upload"]) => {
            upload(app, &caller, &viewer, &params, &parts.headers, body).await
        }
        (&Method::GET, ["count"]) => {
            let id = params
                .text("bucket_id")
                .ok_or_else(|| Detail::unprocessable("bucket_id is required"))?;
            let bucket = visible_bucket(app, &viewer, id).await?;
            let count = api_storage::count_files(
                pool,
                &viewer,
                Some(bucket.as_str()),
                params.text("search"),
            )
            .await?;
            Ok(Json(json!({ "count": count })).into_response())
        }
        (&Method::GET, ["total-count"]) => {
            let count =
                api_storage::count_files(pool, &viewer, None, params.text("search")).await?;
            Ok(Json(json!({ "count": count })).into_response())
        }
        (&Method::GET, ["stats"]) => {
            Ok(Json(api_storage::stats(pool, &viewer).await?).into_response())
        }
        (&Method::GET | &Method::HEAD, ["download", bucket, key @ ..]) if !key.is_empty() => {
            let found = api_storage::find_bucket(pool, &viewer, bucket, true)
                .await?
                .filter(|b| b.visible)
                .ok_or_else(|| Detail::new(StatusCode::NOT_FOUND, "File not found"))?;
            let call = Call {
                app: app.clone(),
                method: parts.method.clone(),
                headers: parts.headers.clone(),
                query: parts.uri.query().map(str::to_owned),
                body: Body::empty(),
            };
            let reading = objects::Reading::of(&call);
            let key = key.join("/");
            let (info, bytes) = reading
                .fetch(
                    &app.storage.store,
                    &Access::Service,
                    &found.storage_id,
                    &key,
                    Read::AsCaller,
                )
                .await
                .map_err(|err| match err.status {
                    StatusCode::NOT_FOUND => Detail::new(StatusCode::NOT_FOUND, "File not found"),
                    status => Detail::new(status, err.message),
                })?;
            objects::serve_object(reading, &info, bytes)
                .await
                .map_err(|err| Detail::new(err.status, err.message))
        }
        (_, ["upload" | "count" | "total-count" | "stats"] | []) => {
            Err(Detail::method_not_allowed())
        }
        (method, [id]) => {
            let id = uuid_or_404(id)?;
            let found = api_storage::find_file(pool, &viewer, &id)
                .await?
                .filter(|f| f.bucket.visible)
                .ok_or_else(|| Detail::new(StatusCode::NOT_FOUND, "File not found"))?;
            match *method {
                Method::GET => Ok(Json(found.json).into_response()),
                Method::PATCH => {
                    owned(&caller, &found.bucket)?;
                    let metadata = match json_body(body).await? {
                        Value::Object(mut map) => match map.remove("metadata") {
                            Some(Value::Object(metadata)) => Value::Object(metadata),
                            _ => {
                                return Err(Detail::unprocessable(
                                    "give {\"metadata\": {...}}: an object",
                                ))
                            }
                        },
                        _ => return Err(Detail::unprocessable("the body is a JSON object")),
                    };
                    api_storage::set_file_metadata(pool, &id, &metadata).await?;
                    let found = api_storage::find_file(pool, &viewer, &id)
                        .await?
                        .ok_or_else(|| Detail::new(StatusCode::NOT_FOUND, "File not found"))?;
                    Ok(Json(found.json).into_response())
                }
                Method::DELETE => {
                    owned(&caller, &found.bucket)?;
                    app.storage
                        .store
                        .delete_objects(
                            &Access::Service,
                            &found.bucket.storage_id,
                            std::slice::from_ref(&found.key),
                        )
                        .await
                        .map_err(storage_detail)?;
                    Ok(Json(json!({
                        "message": "File deleted successfully",
                        "deleted_id": id,
                    }))
                    .into_response())
                }
                _ => Err(Detail::method_not_allowed()),
            }
        }
        _ => Err(Detail::not_found()),
    }
}

/// The store's id of a bucket the viewer may see, by SelfDB id.
async fn visible_bucket(app: &AppState, viewer: &Viewer<'_>, id: &str) -> Result<String, Detail> {
    api_storage::find_bucket(app.db.owner(), viewer, id, false)
        .await?
        .filter(|b| b.visible)
        .map(|b| b.storage_id)
        .ok_or_else(|| Detail::new(StatusCode::NOT_FOUND, "Bucket not found"))
}

async fn upload(
    app: &AppState,
    caller: &Caller,
    viewer: &Viewer<'_>,
    params: &Params,
    headers: &HeaderMap,
    body: Body,
) -> Result<Response, Detail> {
    let started = Instant::now();
    let bucket_id = params
        .text("bucket_id")
        .ok_or_else(|| Detail::unprocessable("bucket_id is required"))?;
    let filename = params
        .text("filename")
        .ok_or_else(|| Detail::unprocessable("filename is required"))?;
    let path = params.text("path");
    let key = match path {
        Some(path) if path.ends_with('/') => format!("{path}{filename}"),
        Some(path) => path.to_owned(),
        None => filename.to_owned(),
    };
    let bucket = api_storage::find_bucket(app.db.owner(), viewer, bucket_id, false)
        .await?
        .filter(|b| b.visible)
        .ok_or_else(|| Detail::new(StatusCode::NOT_FOUND, "Bucket not found"))?;
    if !bucket.owned {
        return Err(refused(caller, "You can only upload to buckets you own"));
    }
    let content_type = params
        .text("content_type")
        .or_else(|| headers.get(header::CONTENT_TYPE)?.to_str().ok())
        .unwrap_or("application/octet-stream")
        .to_owned();
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let info = app
        .storage
        .store
        .put_object(
            &Access::Service,
            &bucket.storage_id,
            &key,
            body.into_data_stream(),
            PutOptions {
                content_type: Some(content_type),
                overwrite: true,
                owner: caller.user_id().map(str::to_owned),
                declared_size: declared,
                ..Default::default()
            },
        )
        .await
        .map_err(storage_detail)?;
    let url = format!(
        "/storage/files/download/{}/{}",
        percent_encode_path(&bucket.name),
        percent_encode_path(&key)
    );
    Ok((
        StatusCode::CREATED,
        Json(json!({
            "success": true,
            "bucket": bucket.name,
            "bucket_id": bucket.json["id"],
            "path": key,
            "size": info.size,
            "file_id": info.id,
            "upload_time": started.elapsed().as_secs_f64(),
            "url": url,
            "original_path": path,
            "message": "File uploaded successfully",
        })),
    )
        .into_response())
}

/// A key or name for a URL path: `/` kept, everything else a path segment
/// may not hold escaped.
fn percent_encode_path(text: &str) -> String {
    const SEGMENT: &percent_encoding::AsciiSet = &percent_encoding::CONTROLS
        .add(b' ')
        .add(b'"')
        .add(b'#')
        .add(b'%')
        .add(b'<')
        .add(b'>')
        .add(b'?')
        .add(b'`')
        .add(b'{')
        .add(b'}');
    percent_encoding::utf8_percent_encode(text, SEGMENT).to_string()
}
