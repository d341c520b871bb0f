//! `/api/v1/projects`: registering users' databases and managing them
//! (an admin or the service key). The key and the webhook secret are shown once, when made;
//! no route returns a database password.

use super::error::ApiError;
use super::function_api::{body, json_body};
use super::principal::require_admin;
use super::AppState;
use crate::projects::{Project, ProjectError, Register};
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use bytes::Bytes;
use serde_json::{json, Value};
use std::sync::Arc;

impl From<ProjectError> for ApiError {
    fn from(err: ProjectError) -> Self {
        let message = err.to_string();
        match err {
            ProjectError::Invalid(_) => ApiError::new(StatusCode::BAD_REQUEST, "invalid", message),
            ProjectError::NotFound(_) => ApiError::new(StatusCode::NOT_FOUND, "not_found", message),
            ProjectError::Url(_) => {
                ApiError::new(StatusCode::BAD_REQUEST, "invalid_database_url", message)
            }
            ProjectError::Database { code, .. } => {
                ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, code, message)
            }
            ProjectError::Paused => ApiError::new(StatusCode::CONFLICT, "project_paused", message),
            ProjectError::Store(crate::projects::store::StoreError::NameTaken(_)) => {
                ApiError::new(StatusCode::CONFLICT, "name_taken", message)
            }
            ProjectError::Store(_) | ProjectError::Sealed(_) => {
                tracing::error!(%message, "projects");
                ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "database", message)
            }
        }
    }
}

/// The routes a project is served at, relative to the instance's URL.
fn endpoints(project: &Project) -> Value {
    json!({
        "query": "/query",
        "crud": "/api/crud",
        "rest": format!("/projects/{}/rest/v1", project.id()),
    })
}

fn describe(project: &Project) -> Value {
    let row = &project.row;
    json!({
        "projectId": row.id,
        "name": row.name,
        "database_url": row.url_display,
        "key_prefix": row.key_prefix,
        "paused": row.paused,
        "schemas": row.schemas,
        "pool_size": row.pool_size,
        "schema_detection": if row.install_triggers { "trigger" } else { "polling" },
        "transaction_pooling": row.transaction_pooling,
        "notify_email": row.notify_email,
        "webhook_url": row.webhook_url,
        "endpoints": endpoints(project),
        "created_at": row.created_at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        "updated_at": row.updated_at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
    })
}

fn find(app: &AppState, id: &str) -> Result<Arc<Project>, ApiError> {
    app.projects
        .find(id)
        .ok_or_else(|| ProjectError::NotFound(id.to_owned()).into())
}

pub async fn create(
    State(app): State<AppState>,
    headers: HeaderMap,
    raw: Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    require_admin(&headers, &app).await?;
    let raw = body(raw)?;
    let request: Register = json_body(
        &raw,
        r#"{"name", "database_url", and optionally "ca_certificate", "schemas", "pool_size", "install_triggers", "transaction_pooling", "notify_email", "webhook_url"}"#,
    )?;
    let registered = app.projects.register(request).await?;
    let mut answer = describe(&registered.project);
    answer["apiKey"] = json!(registered.api_key);
    answer["database"] = json!({
        "server_version": registered.server.server_version,
        "user": registered.server.user,
        "database": registered.server.database,
        "tls": registered.server.tls,
        "ssl_mode": registered.ssl_mode,
    });
    answer["tables"] = json!(registered.tables);
    if let Some(secret) = registered.webhook_secret {
        answer["webhookSecret"] = json!(secret);
    }
    let warnings: Vec<String> = [registered.trigger_warning, registered.pooling_warning]
        .into_iter()
        .flatten()
        .collect();
    if !warnings.is_empty() {
        answer["warnings"] = json!(warnings);
    }
    Ok((StatusCode::CREATED, Json(answer)))
}

pub async fn list(
    State(app): State<AppState>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    require_admin(&headers, &app).await?;
    let projects: Vec<Value> = app.projects.all().iter().map(|p| describe(p)).collect();
    Ok(Json(json!({ "projects": projects })))
}

pub async fn get(
    State(app): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    require_admin(&headers, &app).await?;
    let project = find(&app, &id)?;
    let mut answer = describe(&project);
    if let Some(db) = project.opened() {
        answer["tables"] = json!(db.table_names());
    }
    Ok(Json(answer))
}

pub async fn rotate_key(
    State(app): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    require_admin(&headers, &app).await?;
    let project = find(&app, &id)?;
    let key = app.projects.rotate_key(project.id()).await?;
    Ok(Json(json!({"projectId": project.id(), "apiKey": key})))
}

pub async fn pause(
    State(app): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    set_paused(&app, &id, &headers, true).await
}

pub async fn resume(
    State(app): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    set_paused(&app, &id, &headers, false).await
}

async fn set_paused(
    app: &AppState,
    id: &str,
    headers: &HeaderMap,
    paused: bool,
) -> Result<Json<Value>, ApiError> {
    require_admin(headers, app).await?;
    let project = find(app, id)?;
    app.projects.set_paused(project.id(), paused).await?;
    Ok(Json(json!({"projectId": project.id(), "paused": paused})))
}

pub async fn remove(
    State(app): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    require_admin(&headers, &app).await?;
    let project = find(&app, &id)?;
    app.projects.delete(project.id()).await?;
    Ok(Json(json!({"projectId": project.id(), "deleted": true})))
}

#[derive(serde::Deserialize)]
pub struct Page {
    limit: Option<i64>,
    before: Option<i64>,
}

pub async fn schema_changes(
    State(app): State<AppState>,
    Path(id): Path<String>,
    Query(page): Query<Page>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    require_admin(&headers, &app).await?;
    let project = find(&app, &id)?;
    let limit = page.limit.unwrap_or(50).clamp(1, 1000);
    let changes = app
        .projects
        .store()
        .schema_changes(project.id(), limit, page.before)
        .await
        .map_err(ProjectError::from)?;
    let items: Vec<Value> = changes
        .iter()
        .map(|c| {
            json!({
                "id": c.id,
                "detected_at": c.detected_at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
                "changes": c.changes,
            })
        })
        .collect();
    Ok(Json(json!({"changes": items})))
}

/// The query of the logs and analytics routes.
#[derive(serde::Deserialize, Default)]
pub struct LogQuery {
    limit: Option<i64>,
    before: Option<String>,
    from: Option<String>,
    to: Option<String>,
    endpoint: Option<String>,
    table: Option<String>,
    operation: Option<String>,
    status: Option<i16>,
    #[serde(default)]
    errors: bool,
    bucket: Option<String>,
    method: Option<String>,
}

fn time(
    name: &str,
    value: Option<&str>,
) -> Result<Option<chrono::DateTime<chrono::Utc>>, ApiError> {
    value
        .map(|v| {
            chrono::DateTime::parse_from_rfc3339(v)
                .map(|t| t.with_timezone(&chrono::Utc))
                .map_err(|e| {
                    ApiError::new(
                        StatusCode::BAD_REQUEST,
                        "invalid_query",
                        format!("{name} must be an RFC 3339 time: {e}"),
                    )
                })
        })
        .transpose()
}

fn filter(
    project_id: Option<i64>,
    query: &LogQuery,
) -> Result<crate::request_log::read::Filter, ApiError> {
    Ok(crate::request_log::read::Filter {
        project_id,
        from: time("from", query.from.as_deref())?,
        to: time("to", query.to.as_deref())?,
        endpoint: query.endpoint.clone(),
        table: query.table.clone(),
        operation: query.operation.clone(),
        status: query.status,
        errors: query.errors,
        // Logged upper case; `get` finds `GET`.
        method: query.method.as_deref().map(str::to_ascii_uppercase),
    })
}

fn bucket(query: &LogQuery) -> Result<&str, ApiError> {
    match query.bucket.as_deref().unwrap_or("hour") {
        b @ ("minute" | "hour" | "day") => Ok(b),
        other => Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_query",
            format!("bucket {other:?}: use minute, hour or day"),
        )),
    }
}

/// Where this host's request logs are (PostgreSQL's table, empty, when
/// logging is off).
fn sink(app: &AppState) -> crate::request_log::Sink {
    app.request_log.as_ref().map_or_else(
        || crate::request_log::Sink::Postgres(app.db.clone()),
        |log| log.sink().clone(),
    )
}

fn log_failure(err: crate::request_log::LogError) -> ApiError {
    tracing::error!(%err, "request logs");
    ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "database", err.to_string())
}

async fn logs_of(
    app: &AppState,
    project_id: Option<i64>,
    query: &LogQuery,
) -> Result<Json<Value>, ApiError> {
    let filter = filter(project_id, query)?;
    let before = query
        .before
        .as_deref()
        .map(crate::request_log::read::Cursor::parse)
        .transpose()
        .map_err(|e| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid_query",
                format!("before must be a previous page's next_before or {e}"),
            )
        })?;
    let limit = query.limit.unwrap_or(100).clamp(1, 1000);
    let (records, next) = crate::request_log::read::records(&sink(app), &filter, limit, before)
        .await
        .map_err(log_failure)?;
    Ok(Json(
        json!({"logs": records, "next_before": next.map(|c| c.text())}),
    ))
}

async fn analytics_of(
    app: &AppState,
    project_id: Option<i64>,
    query: &LogQuery,
) -> Result<Json<Value>, ApiError> {
    let filter = filter(project_id, query)?;
    let answer = crate::request_log::read::analytics(&sink(app), &filter, bucket(query)?)
        .await
        .map_err(log_failure)?;
    Ok(Json(answer))
}

pub async fn logs(
    State(app): State<AppState>,
    Path(id): Path<String>,
    Query(query): Query<LogQuery>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    require_admin(&headers, &app).await?;
    let project = find(&app, &id)?;
    logs_of(&app, Some(project.id()), &query).await
}

pub async fn analytics(
    State(app): State<AppState>,
    Path(id): Path<String>,
    Query(query): Query<LogQuery>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    require_admin(&headers, &app).await?;
    let project = find(&app, &id)?;
    analytics_of(&app, Some(project.id()), &query).await
}

/// The main instance's requests (not a project's).
pub async fn instance_logs(
    State(app): State<AppState>,
    Query(query): Query<LogQuery>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    require_admin(&headers, &app).await?;
    logs_of(&app, None, &query).await
}

pub async fn instance_analytics(
    State(app): State<AppState>,
    Query(query): Query<LogQuery>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    require_admin(&headers, &app).await?;
    analytics_of(&app, None, &query).await
}
