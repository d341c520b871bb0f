//! `/storage/buckets...`: buckets in SelfDB's shapes (`db::api_storage`),
//! made, changed and removed through the object store that `/storage/v1`
//! and S3 serve, so a bucket made here is one bucket on all three.
//!
//! As in SelfDB: any signed-in user may make a bucket, and owns it; a
//! public bucket's files are readable by anyone with the key, a private
//! one's by its owner; only the owner (or the service key, or an ADMIN
//! user) changes a bucket or its files. These rules are enforced here,
//! and the store is called with the service role: SelfDB ships no storage
//! policy (`/storage/v1` and S3 callers bring their own).

use super::{caller, flag, json_body, object, segments, text, Caller, Detail, Params};
use crate::db::api_storage::{self, FoundBucket, Page, SortBy, Viewer};
use crate::http::storage::StorageApiError;
use crate::http::AppState;
use axum::extract::{Request, State};
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Map, Value};
use storage_s3s::{Access, BucketUpdate, NewBucket, StorageError};

pub async fn route(State(app): State<AppState>, request: Request) -> Response {
    match handle(&app, request).await {
        Ok(response) => response,
        Err(detail) => detail.into_response(),
    }
}

/// The store's refusal, with its status, in SelfDB's shape.
pub fn storage_detail(err: StorageError) -> Detail {
    let err = StorageApiError::from(err);
    Detail::new(err.status, err.message)
}

/// Refused to `caller`: 401 without a user, 403 with one.
pub fn refused(caller: &Caller, message: &str) -> Detail {
    if caller.user_id().is_none() {
        Detail::new(StatusCode::UNAUTHORIZED, "Not authenticated")
    } else {
        Detail::new(StatusCode::FORBIDDEN, message)
    }
}

/// `sort_by` of a bucket or file listing.
pub fn sort_by(params: &Params, files: bool) -> Result<SortBy, Detail> {
    Ok(match params.text("sort_by") {
        None | Some("created_at") => SortBy::CreatedAt,
        Some("updated_at") => SortBy::UpdatedAt,
        Some("name") => SortBy::Name,
        Some("size") if files => SortBy::Size,
        Some(other) => {
            return Err(Detail::unprocessable(format!(
                "sort_by {other:?}: use name, created_at{} or updated_at",
                if files { ", size" } else { "" }
            )))
        }
    })
}

async fn handle(app: &AppState, request: Request) -> Result<Response, Detail> {
    let caller = caller(request.headers(), app)?;
    let admin = caller.admin(app).await?;
    let viewer = Viewer {
        admin,
        user_id: caller.user_id(),
    };
    let method = request.method().clone();
    let segments = segments(request.uri().path(), "/storage/buckets");
    let params = Params::parse(request.uri().query());
    let body = request.into_body();
    let pool = app.db.owner();
    let parts: Vec<&str> = segments.iter().map(String::as_str).collect();
    match (&method, parts.as_slice()) {
        (&Method::GET, []) => {
            let page = Page {
                search: params.text("search"),
                sort_by: sort_by(&params, false)?,
                ascending: params.ascending("sort_order", false)?,
                offset: params.int("skip", 0, 0, i64::MAX)?,
                limit: params.int("limit", 100, 1, 1000)?,
            };
            Ok(Json(api_storage::list_buckets(pool, &viewer, &page).await?).into_response())
        }
        (&Method::POST, []) => create(app, &caller, &viewer, json_body(body).await?).await,
        (&Method::GET, ["count"]) => {
            let count = api_storage::count_buckets(pool, &viewer, params.text("search")).await?;
            Ok(Json(json!({ "count": count })).into_response())
        }
        (_, [] | ["count"]) => Err(Detail::method_not_allowed()),
        (_, [id]) => {
            let found = api_storage::find_bucket(pool, &viewer, id, false)
                .await?
                .filter(|b| b.visible)
                .ok_or_else(|| Detail::new(StatusCode::NOT_FOUND, "Bucket not found"))?;
            match method {
                Method::GET => Ok(Json(found.json).into_response()),
                Method::PATCH => {
                    owned(&caller, &found)?;
                    update(app, &viewer, &found, json_body(body).await?).await
                }
                Method::DELETE => {
                    owned(&caller, &found)?;
                    let store = &app.storage.store;
                    store
                        .empty_bucket(&Access::Service, &found.storage_id)
                        .await
                        .map_err(storage_detail)?;
                    store
                        .delete_bucket(&Access::Service, &found.storage_id)
                        .await
                        .map_err(storage_detail)?;
                    Ok(Json(json!({
                        "message": "Bucket deleted successfully",
                        "deleted_id": found.json["id"],
                    }))
                    .into_response())
                }
                _ => Err(Detail::method_not_allowed()),
            }
        }
        _ => Err(Detail::not_found()),
    }
}

pub fn owned(caller: &Caller, found: &FoundBucket) -> Result<(), Detail> {
    if found.owned {
        Ok(())
    } else {
        Err(refused(caller, "You can only modify buckets you own"))
    }
}

/// `file_size_limit` (Python SDK) or `max_file_size` (Swift SDK), bytes.
fn size_limit(body: &Map<String, Value>) -> Result<Option<i64>, Detail> {
    match body
        .get("file_size_limit")
        .or_else(|| body.get("max_file_size"))
    {
        None | Some(Value::Null) => Ok(None),
        Some(value) => value
            .as_i64()
            .filter(|n| *n >= 0)
            .map(Some)
            .ok_or_else(|| Detail::unprocessable("file_size_limit is a number of bytes")),
    }
}

fn mime_types(body: &Map<String, Value>) -> Result<Option<Vec<String>>, Detail> {
    match body.get("allowed_mime_types") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Array(items)) => items
            .iter()
            .map(|v| v.as_str().map(str::to_owned))
            .collect::<Option<Vec<_>>>()
            .map(Some)
            .ok_or_else(|| Detail::unprocessable("allowed_mime_types is a list of strings")),
        Some(_) => Err(Detail::unprocessable(
            "allowed_mime_types is a list of strings",
        )),
    }
}

async fn answer(
    app: &AppState,
    viewer: &Viewer<'_>,
    storage_id: &str,
    status: StatusCode,
) -> Result<Response, Detail> {
    let found = api_storage::find_bucket(app.db.owner(), viewer, storage_id, false)
        .await?
        .ok_or_else(|| Detail::new(StatusCode::NOT_FOUND, "Bucket not found"))?;
    Ok((status, Json(found.json)).into_response())
}

async fn create(
    app: &AppState,
    caller: &Caller,
    viewer: &Viewer<'_>,
    body: Value,
) -> Result<Response, Detail> {
    if caller.user_id().is_none() && !viewer.admin {
        return Err(refused(caller, "Not authenticated"));
    }
    let body = object(body)?;
    let name = text(&body, "name")?.ok_or_else(|| Detail::unprocessable("name is required"))?;
    let new = NewBucket {
        id: name.to_owned(),
        name: name.to_owned(),
        public: flag(&body, "public")?.unwrap_or(false),
        file_size_limit: size_limit(&body)?,
        allowed_mime_types: mime_types(&body)?,
        owner: caller.user_id().map(str::to_owned),
        ..Default::default()
    };
    let store = &app.storage.store;
    let taken = || {
        Detail::new(
            StatusCode::CONFLICT,
            format!("Bucket '{name}' already exists"),
        )
    };
    let created = match store.create_bucket(&Access::Service, new.clone()).await {
        Ok(created) => created,
        // The text id (`/storage/v1`'s, S3's) is the name, unless a bucket
        // renamed through this API still has this name as its id: then
        // the new one gets another id, and keeps its name.
        Err(StorageError::BucketExists) => {
            if api_storage::name_taken(app.db.owner(), name).await? {
                return Err(taken());
            }
            let suffix = uuid::Uuid::new_v4().simple().to_string();
            let id = format!("{}-{}", &name[..name.len().min(54)], &suffix[..8]);
            store
                .create_bucket(&Access::Service, NewBucket { id, ..new })
                .await
                .map_err(|err| match err {
                    StorageError::BucketExists => taken(),
                    other => storage_detail(other),
                })?
        }
        Err(other) => return Err(storage_detail(other)),
    };
    if let Some(description) = text(&body, "description")? {
        api_storage::rename_describe(app.db.owner(), &created.id, None, Some(description)).await?;
    }
    answer(app, viewer, &created.id, StatusCode::CREATED).await
}

async fn update(
    app: &AppState,
    viewer: &Viewer<'_>,
    found: &FoundBucket,
    body: Value,
) -> Result<Response, Detail> {
    let body = object(body)?;
    let name = text(&body, "name")?;
    if let Some(name) = name {
        storage_s3s::names::check_bucket_name(name).map_err(storage_detail)?;
    }
    let limit = size_limit(&body)?;
    let types = mime_types(&body)?;
    let change = BucketUpdate {
        public: flag(&body, "public")?,
        file_size_limit: limit.map(Some),
        allowed_mime_types: types.map(Some),
    };
    app.storage
        .store
        .update_bucket(&Access::Service, &found.storage_id, change)
        .await
        .map_err(storage_detail)?;
    api_storage::rename_describe(
        app.db.owner(),
        &found.storage_id,
        name,
        text(&body, "description")?,
    )
    .await
    .map_err(|err| match Detail::database(err) {
        conflict if conflict.status == StatusCode::CONFLICT => Detail::new(
            StatusCode::CONFLICT,
            format!("Bucket '{}' already exists", name.unwrap_or_default()),
        ),
        other => other,
    })?;
    answer(app, viewer, &found.storage_id, StatusCode::OK).await
}
