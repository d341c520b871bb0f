//! `/api/v1/schemas` and `/api/v1/tables`: the database's schemas and
//! tables as admins see them (every schema, policies and all; see
//! `db::catalog`), and changes to tables, columns and policies from forms
//! (`db::ddl`), for the dashboard's table and SQL editors. Rows go through
//! `/rest/v1`, as any client's do.

use super::error::ApiError;
use super::function_api::{body, json_body};
use super::principal::require_admin;
use super::AppState;
use crate::db::catalog::{self, CatalogError};
use crate::db::ddl::{self, DdlError};
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

impl From<CatalogError> for ApiError {
    fn from(err: CatalogError) -> Self {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "database",
            format!("reading the catalog: {err}"),
        )
    }
}

#[derive(Deserialize)]
pub struct SchemasQuery {
    #[serde(default)]
    all: bool,
}

/// `GET /api/v1/schemas[?all=true]`.
pub async fn schemas(
    State(app): State<AppState>,
    headers: HeaderMap,
    Query(query): Query<SchemasQuery>,
) -> Result<Json<Value>, ApiError> {
    require_admin(&headers, &app).await?;
    let schemas = catalog::schemas(app.db.owner(), &app.settings.db_schemas, query.all).await?;
    Ok(Json(json!({ "schemas": schemas })))
}

#[derive(Deserialize)]
pub struct TablesQuery {
    schema: Option<String>,
    #[serde(default)]
    brief: bool,
}

/// `GET /api/v1/tables[?schema=public][&brief=true]`.
pub async fn list(
    State(app): State<AppState>,
    headers: HeaderMap,
    Query(query): Query<TablesQuery>,
) -> Result<Json<Value>, ApiError> {
    require_admin(&headers, &app).await?;
    let schema = query.schema.as_deref().unwrap_or("public");
    let tables = catalog::tables(app.db.owner(), schema, None, query.brief).await?;
    Ok(Json(json!({ "tables": tables })))
}

/// `GET /api/v1/tables/{schema}/{table}`.
pub async fn describe(
    State(app): State<AppState>,
    headers: HeaderMap,
    Path((schema, table)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    require_admin(&headers, &app).await?;
    let found = catalog::tables(app.db.owner(), &schema, Some(&table), false).await?;
    match found {
        Value::Array(mut tables) if tables.len() == 1 => Ok(Json(tables.remove(0))),
        _ => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no table {schema}.{table}"),
        )),
    }
}

impl From<DdlError> for ApiError {
    fn from(err: DdlError) -> Self {
        match err {
            DdlError::Invalid(message) => {
                ApiError::new(StatusCode::BAD_REQUEST, "invalid_request", message)
            }
            DdlError::Refused(db) => {
                let status = match db.code().code() {
                    // undefined_table, undefined_column, undefined_object
                    "42P01" | "42703" | "42704" | "3F000" => StatusCode::NOT_FOUND,
                    // duplicate_table, duplicate_column, duplicate_object
                    "42P07" | "42701" | "42710" | "2BP01" => StatusCode::CONFLICT,
                    _ => StatusCode::BAD_REQUEST,
                };
                ApiError::new(status, "sql_error", db.message().to_owned()).with_details(json!({
                    "sqlstate": db.code().code(),
                    "detail": db.detail(),
                    "hint": db.hint(),
                }))
            }
            DdlError::Pool(_) | DdlError::Postgres(_) => {
                ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "database", err.to_string())
            }
        }
    }
}

/// Runs `statements` (after checking `types`) and answers `{sql, table}`:
/// what ran, and the table as it is now (`null` once dropped).
async fn change(
    app: &AppState,
    schema: &str,
    table: &str,
    types: &[&str],
    statements: Vec<String>,
) -> Result<Json<Value>, ApiError> {
    let sql = ddl::run(app.db.owner(), types, &statements).await?;
    let now = catalog::tables(app.db.owner(), schema, Some(table), false).await?;
    let described = match now {
        Value::Array(mut tables) if tables.len() == 1 => tables.remove(0),
        _ => Value::Null,
    };
    Ok(Json(json!({ "sql": sql, "table": described })))
}

fn parsed<T: serde::de::DeserializeOwned>(
    raw: Result<Bytes, BytesRejection>,
    shape: &str,
) -> Result<T, ApiError> {
    json_body(&body(raw)?, shape)
}

/// `POST /api/v1/tables`: 201 `{sql, table}`.
pub async fn create(
    State(app): State<AppState>,
    headers: HeaderMap,
    raw: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    require_admin(&headers, &app).await?;
    let table: ddl::NewTable = parsed(
        raw,
        r#"{"schema"?, "name", "columns": [{"name", "type", ...}], ...}"#,
    )?;
    let statements = ddl::create_table(&table)?;
    let types: Vec<&str> = table.columns.iter().map(|c| c.type_name.as_str()).collect();
    let answer = change(&app, &table.schema, &table.name, &types, statements).await?;
    Ok((StatusCode::CREATED, answer).into_response())
}

/// `PATCH /api/v1/tables/{schema}/{table}` `{name?, comment?, rls_enabled?, realtime?}`.
pub async fn update(
    State(app): State<AppState>,
    headers: HeaderMap,
    Path((schema, table)): Path<(String, String)>,
    raw: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, ApiError> {
    require_admin(&headers, &app).await?;
    let request: ddl::TableChange =
        parsed(raw, r#"{"name"?, "comment"?, "rls_enabled"?, "realtime"?}"#)?;
    let statements = ddl::alter_table(&schema, &table, &request)?;
    let now = request.name.as_deref().unwrap_or(&table);
    change(&app, &schema, now, &[], statements).await
}

#[derive(Deserialize)]
pub struct DropQuery {
    #[serde(default)]
    cascade: bool,
}

/// `DELETE /api/v1/tables/{schema}/{table}[?cascade=true]`.
pub async fn remove(
    State(app): State<AppState>,
    headers: HeaderMap,
    Path((schema, table)): Path<(String, String)>,
    Query(query): Query<DropQuery>,
) -> Result<Json<Value>, ApiError> {
    require_admin(&headers, &app).await?;
    let statements = ddl::drop_table(&schema, &table, query.cascade)?;
    change(&app, &schema, &table, &[], statements).await
}

/// `POST /api/v1/tables/{schema}/{table}/columns`: 201 `{sql, table}`.
pub async fn add_column(
    State(app): State<AppState>,
    headers: HeaderMap,
    Path((schema, table)): Path<(String, String)>,
    raw: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    require_admin(&headers, &app).await?;
    let column: ddl::NewColumn = parsed(raw, r#"{"name", "type", "nullable"?, "default"?, ...}"#)?;
    let statements = ddl::add_column(&schema, &table, &column)?;
    let answer = change(&app, &schema, &table, &[&column.type_name], statements).await?;
    Ok((StatusCode::CREATED, answer).into_response())
}

/// `PATCH /api/v1/tables/{schema}/{table}/columns/{column}`.
pub async fn update_column(
    State(app): State<AppState>,
    headers: HeaderMap,
    Path((schema, table, column)): Path<(String, String, String)>,
    raw: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, ApiError> {
    require_admin(&headers, &app).await?;
    let request: ddl::ColumnChange = parsed(
        raw,
        r#"{"name"?, "type"?, "using"?, "nullable"?, "default"?}"#,
    )?;
    let statements = ddl::alter_column(&schema, &table, &column, &request)?;
    let types: Vec<&str> = request.type_name.as_deref().into_iter().collect();
    change(&app, &schema, &table, &types, statements).await
}

/// `DELETE /api/v1/tables/{schema}/{table}/columns/{column}`.
pub async fn remove_column(
    State(app): State<AppState>,
    headers: HeaderMap,
    Path((schema, table, column)): Path<(String, String, String)>,
) -> Result<Json<Value>, ApiError> {
    require_admin(&headers, &app).await?;
    let statements = ddl::drop_column(&schema, &table, &column)?;
    change(&app, &schema, &table, &[], statements).await
}

/// `POST /api/v1/tables/{schema}/{table}/policies`: 201 `{sql, table}`.
pub async fn add_policy(
    State(app): State<AppState>,
    headers: HeaderMap,
    Path((schema, table)): Path<(String, String)>,
    raw: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    require_admin(&headers, &app).await?;
    let policy: ddl::NewPolicy = parsed(
        raw,
        r#"{"name", "command"?, "permissive"?, "roles"?, "using"?, "with_check"?}"#,
    )?;
    let statements = ddl::create_policy(&schema, &table, &policy)?;
    let answer = change(&app, &schema, &table, &[], statements).await?;
    Ok((StatusCode::CREATED, answer).into_response())
}

/// `DELETE /api/v1/tables/{schema}/{table}/policies/{name}`.
pub async fn remove_policy(
    State(app): State<AppState>,
    headers: HeaderMap,
    Path((schema, table, policy)): Path<(String, String, String)>,
) -> Result<Json<Value>, ApiError> {
    require_admin(&headers, &app).await?;
    let statements = ddl::drop_policy(&schema, &table, &policy)?;
    change(&app, &schema, &table, &[], statements).await
}
