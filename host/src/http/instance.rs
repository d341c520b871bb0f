//! `/api/v1/instance`: what the dashboard's overview shows (URLs, the anon
//! key, counts, the request log's state), and `POST
//! /api/v1/instance/secrets`, the service key and the S3 service secret,
//! revealed only when an admin asks (a POST, never cached). No key is
//! built into the dashboard's files: this is how it gets them.

use super::error::ApiError;
use super::principal::{require_admin, Caller};
use super::AppState;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};

/// What the host printed at start that the admin API repeats.
pub struct Public {
    /// `http(s)://host:port`, as announced.
    pub url: String,
    pub anon_key: String,
    pub service_key: String,
}

fn database_error(err: impl std::fmt::Display) -> ApiError {
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "database",
        format!("reading the instance's counts: {err}"),
    )
}

/// `GET /api/v1/instance`.
pub async fn describe(
    State(app): State<AppState>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    require_admin(&headers, &app).await?;
    let url = &app.public.url;
    let websocket = url.replacen("http", "ws", 1);
    let client = app.db.owner().get().await.map_err(database_error)?;
    let row = client
        .query_one(
            "select \
               (select count(*) from pg_class c join pg_namespace n on n.oid = c.relnamespace \
                 where c.relkind in ('r', 'p') and not c.relispartition \
                   and n.nspname = any($1)), \
               (select count(*) from auth.users where deleted_at is null), \
               (select count(*) from storage.buckets), \
               (select count(*) from storage.objects), \
               (select count(*) from selfdb.admins)",
            &[&app.settings.db_schemas],
        )
        .await
        .map_err(database_error)?;
    drop(client);
    let functions = app.functions.list().await.map_err(database_error)?.len();
    let request_log = match &app.request_log {
        None => json!({"enabled": false}),
        Some(_) => json!({
            "enabled": true,
            "sink": if app.settings.logs_clickhouse_url.is_some() { "clickhouse" } else { "postgres" },
        }),
    };
    Ok(Json(json!({
        "version": env!("CARGO_PKG_VERSION"),
        "urls": {
            "api": url,
            "rest": format!("{url}/rest/v1"),
            "auth": format!("{url}/auth/v1"),
            "storage": format!("{url}/storage/v1"),
            "realtime": format!("{websocket}/realtime/v1"),
            "functions": format!("{url}/functions/v1"),
            "s3": app.storage.s3_endpoint,
            "dashboard": format!("{url}/_/"),
        },
        "anon_key": app.public.anon_key,
        "counts": {
            "tables": row.get::<_, i64>(0),
            "users": row.get::<_, i64>(1),
            "buckets": row.get::<_, i64>(2),
            "objects": row.get::<_, i64>(3),
            "admins": row.get::<_, i64>(4),
            "functions": functions,
            "projects": app.projects.all().len(),
        },
        "schemas": app.settings.db_schemas,
        "request_log": request_log,
    })))
}

/// `POST /api/v1/instance/secrets`: the service key and the S3 service
/// key's secret, for an admin who clicked to see them.
pub async fn reveal(State(app): State<AppState>, headers: HeaderMap) -> Result<Response, ApiError> {
    let caller = require_admin(&headers, &app).await?;
    if let Caller::Admin(admin) = &caller {
        tracing::info!(admin = %admin.email, "the instance's secrets were revealed");
    }
    let body = json!({
        "service_key": app.public.service_key,
        "s3": {
            "endpoint": app.storage.s3_endpoint,
            "access_key_id": app.storage.service_access_key_id,
            "secret_access_key": app.storage.service_secret_access_key,
        },
    });
    let mut response = Json(body).into_response();
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}
