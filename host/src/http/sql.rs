//! `POST /api/v1/sql`: an admin's SQL script, run on a connection of its
//! own (see `db::script`), and the SQL editor's saved snippets
//! (`/api/v1/sql/snippets`), shared by every admin.

use super::error::ApiError;
use super::function_api::{body, json_body};
use super::principal::{require_admin, Caller};
use super::AppState;
use crate::db::script::{self, Limits, ScriptError};
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};
use std::time::Duration;
use uuid::Uuid;

const DEFAULT_TIMEOUT_MS: u64 = 15_000;
const MAX_TIMEOUT_MS: u64 = 120_000;
const DEFAULT_MAX_ROWS: usize = 1_000;
const MAX_ROWS: usize = 10_000;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ScriptRequest {
    query: String,
    #[serde(default)]
    read_only: bool,
    timeout_ms: Option<u64>,
    max_rows: Option<usize>,
}

fn limits(request: &ScriptRequest) -> Result<Limits, ApiError> {
    let timeout_ms = request.timeout_ms.unwrap_or(DEFAULT_TIMEOUT_MS);
    let max_rows = request.max_rows.unwrap_or(DEFAULT_MAX_ROWS);
    if !(1..=MAX_TIMEOUT_MS).contains(&timeout_ms) {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            format!("timeout_ms must be from 1 to {MAX_TIMEOUT_MS}"),
        ));
    }
    if !(1..=MAX_ROWS).contains(&max_rows) {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            format!("max_rows must be from 1 to {MAX_ROWS}"),
        ));
    }
    Ok(Limits {
        timeout: Duration::from_millis(timeout_ms),
        max_rows,
        read_only: request.read_only,
    })
}

/// `POST /api/v1/sql` `{query, read_only?, timeout_ms?, max_rows?}`.
pub async fn run(
    State(app): State<AppState>,
    headers: HeaderMap,
    raw: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, ApiError> {
    let caller = require_admin(&headers, &app).await?;
    let request: ScriptRequest = json_body(
        &body(raw)?,
        r#"{"query", "read_only"?, "timeout_ms"?, "max_rows"?}"#,
    )?;
    let limits = limits(&request)?;
    if let Caller::Admin(admin) = &caller {
        tracing::info!(admin = %admin.email, bytes = request.query.len(), "SQL editor script");
    }
    match script::run(app.db.owner_target(), &request.query, limits).await {
        Ok(outcome) => Ok(Json(json!(outcome))),
        Err(ScriptError::Failed(failure)) => {
            let message = failure.message.clone();
            Err(ApiError::new(StatusCode::BAD_REQUEST, "sql_error", message)
                .with_details(json!(failure)))
        }
        Err(err @ (ScriptError::Unreadable(_) | ScriptError::Empty)) => Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_sql",
            err.to_string(),
        )),
        Err(err @ ScriptError::Connect(_)) => Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "database",
            err.to_string(),
        )),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SnippetRequest {
    name: String,
    sql: String,
}

const SNIPPET_SHAPE: &str = r#"{"name", "sql"}"#;
const SNIPPET_COLUMNS: &str = "id, name, sql, updated_by, created_at, updated_at";

fn snippet_json(row: &tokio_postgres::Row) -> Value {
    let time = |i: usize| {
        row.get::<_, chrono::DateTime<chrono::Utc>>(i)
            .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
    };
    json!({
        "id": row.get::<_, Uuid>(0),
        "name": row.get::<_, String>(1),
        "sql": row.get::<_, String>(2),
        "updated_by": row.get::<_, Option<Uuid>>(3),
        "created_at": time(4),
        "updated_at": time(5),
    })
}

fn database(err: impl std::fmt::Display) -> ApiError {
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "database",
        format!("SQL snippets: {err}"),
    )
}

fn checked(request: SnippetRequest) -> Result<SnippetRequest, ApiError> {
    let name = request.name.trim();
    if name.is_empty() || name.chars().count() > 200 {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "a snippet's name is 1 to 200 characters",
        ));
    }
    if request.sql.len() > crate::db::guard::MAX_SQL_BYTES {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
            "a snippet's SQL is at most 1 MiB",
        ));
    }
    Ok(SnippetRequest {
        name: name.to_owned(),
        sql: request.sql,
    })
}

fn admin_id(caller: &Caller) -> Option<Uuid> {
    match caller {
        Caller::Admin(admin) => Some(admin.admin_id),
        Caller::ServiceKey => None,
    }
}

/// `GET /api/v1/sql/snippets`: every snippet, by name.
pub async fn snippets(
    State(app): State<AppState>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    require_admin(&headers, &app).await?;
    let client = app.db.owner().get().await.map_err(database)?;
    let rows = client
        .query(
            &format!("select {SNIPPET_COLUMNS} from selfdb.sql_snippets order by lower(name), id"),
            &[],
        )
        .await
        .map_err(database)?;
    Ok(Json(
        json!({"snippets": rows.iter().map(snippet_json).collect::<Vec<_>>()}),
    ))
}

/// `POST /api/v1/sql/snippets` `{name, sql}`: 201 with the snippet.
pub async fn save(
    State(app): State<AppState>,
    headers: HeaderMap,
    raw: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let caller = require_admin(&headers, &app).await?;
    let request = checked(json_body(&body(raw)?, SNIPPET_SHAPE)?)?;
    let client = app.db.owner().get().await.map_err(database)?;
    let row = client
        .query_one(
            &format!(
                "insert into selfdb.sql_snippets (name, sql, updated_by) values ($1, $2, $3) \
                 returning {SNIPPET_COLUMNS}"
            ),
            &[&request.name, &request.sql, &admin_id(&caller)],
        )
        .await
        .map_err(database)?;
    Ok((StatusCode::CREATED, Json(snippet_json(&row))).into_response())
}

fn no_snippet(id: &str) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "not_found",
        format!("no SQL snippet {id}"),
    )
}

fn snippet_id(id: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(id).map_err(|_| no_snippet(id))
}

/// `PUT /api/v1/sql/snippets/{id}` `{name, sql}`.
pub async fn update(
    State(app): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    raw: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, ApiError> {
    let caller = require_admin(&headers, &app).await?;
    let request = checked(json_body(&body(raw)?, SNIPPET_SHAPE)?)?;
    let uuid = snippet_id(&id)?;
    let client = app.db.owner().get().await.map_err(database)?;
    let row = client
        .query_opt(
            &format!(
                "update selfdb.sql_snippets set name = $2, sql = $3, updated_by = $4, \
                 updated_at = now() where id = $1 returning {SNIPPET_COLUMNS}"
            ),
            &[&uuid, &request.name, &request.sql, &admin_id(&caller)],
        )
        .await
        .map_err(database)?
        .ok_or_else(|| no_snippet(&id))?;
    Ok(Json(snippet_json(&row)))
}

/// `DELETE /api/v1/sql/snippets/{id}`: 204.
pub async fn remove(
    State(app): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<StatusCode, ApiError> {
    require_admin(&headers, &app).await?;
    let uuid = snippet_id(&id)?;
    let client = app.db.owner().get().await.map_err(database)?;
    let removed = client
        .execute("delete from selfdb.sql_snippets where id = $1", &[&uuid])
        .await
        .map_err(database)?;
    if removed == 0 {
        return Err(no_snippet(&id));
    }
    Ok(StatusCode::NO_CONTENT)
}
