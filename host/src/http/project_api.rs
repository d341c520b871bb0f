//! A project's APIs: the data API at `/projects/{id}/rest/v1` (PostgREST's,
//! for supabase-js pointed at `{SELFDB_URL}/projects/{id}`) and Dbify's
//! `POST /query` and `POST /api/crud`. Both run the `crud` system component
//! on the project's own database and schema cache, as the URL's user.
//!
//! Dbify's operations become data API requests (`read` a GET with `eq`
//! filters, `create` a POST, `update` a PATCH, `delete` a DELETE, each
//! returning the rows), so both APIs share one planner and one set of
//! checks. Dbify's answers keep its shapes (`{"success", "data", "count",
//! "message"}`); its failures are `{"errorCode", "message", "details"}`
//! with the status that fits, never 200.

use super::invoke::{invoke_reporting, ErrorStyle};
use super::rest::{postgrest_error, CRUD_COMPONENT};
use super::AppState;
use crate::auth::{Principal, Role};
use crate::projects::ProjectError;
use crate::request_log::Tags;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Map, Value};
use std::sync::Arc;

/// Largest Dbify request body read.
const MAX_BODY: usize = 8 * 1024 * 1024;
/// Largest answer a Dbify operation returns (its rows are reshaped in
/// memory, so they are bounded).
const MAX_ANSWER: usize = 64 * 1024 * 1024;

fn project_principal() -> Arc<Principal> {
    Arc::new(Principal::from_claims(Role::ServiceRole, Map::new()))
}

/// `/projects/{id}/rest/v1/...`
pub async fn rest(State(app): State<AppState>, request: Request) -> Response {
    let path = request.uri().path().to_owned();
    let Some(rest) = path.strip_prefix("/projects/") else {
        return postgrest_error(StatusCode::NOT_FOUND, "PGRST000", "no such route");
    };
    let (id, tail) = rest.split_once('/').unwrap_or((rest, ""));
    let tail = format!("/{tail}");
    if tail != "/rest/v1" && !tail.starts_with("/rest/v1/") {
        return postgrest_error(StatusCode::NOT_FOUND, "PGRST000", "no such route");
    }
    let Some(project) = id.parse::<i64>().ok().and_then(|id| app.projects.get(id)) else {
        return (
            StatusCode::NOT_FOUND,
            Json(json!({"message": format!("no project {id}")})),
        )
            .into_response();
    };
    let headers = request.headers();
    let Some(key) = headers.get("apikey").and_then(|v| v.to_str().ok()) else {
        return (
            StatusCode::UNAUTHORIZED,
            Json(json!({"message": "No API key found in request"})),
        )
            .into_response();
    };
    if !project.accepts(key) {
        let (status, message) = if app.projects.by_key(key).is_some() {
            (
                StatusCode::FORBIDDEN,
                "the API key belongs to another project",
            )
        } else {
            (StatusCode::UNAUTHORIZED, "Invalid API key")
        };
        return (status, Json(json!({ "message": message }))).into_response();
    }
    // supabase-js sends the key as a bearer token too; a user's token means
    // nothing to a project (it has no auth of its own).
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        });
    if bearer.is_some_and(|token| token.trim() != key) {
        return postgrest_error(
            StatusCode::UNAUTHORIZED,
            "PGRST301",
            "a project takes its API key, not a user's token",
        );
    }
    let db = match app.projects.database(&project).await {
        Ok(db) => db,
        Err(err) => return project_unavailable(err),
    };
    let Some(component) = crud(&app) else {
        return postgrest_error(
            StatusCode::SERVICE_UNAVAILABLE,
            "PGRST002",
            "the crud component is not installed in this host",
        );
    };
    let (mut parts, body) = request.into_parts();
    let query = parts
        .uri
        .query()
        .map(|q| format!("?{q}"))
        .unwrap_or_default();
    parts.uri = match format!("{tail}{query}").parse::<Uri>() {
        Ok(uri) => uri,
        Err(_) => return postgrest_error(StatusCode::BAD_REQUEST, "PGRST100", "bad path"),
    };
    let request = Request::from_parts(parts, body);
    invoke_reporting(
        &app,
        component,
        project_principal(),
        request,
        ErrorStyle::PostgRest,
        None,
        Some(db),
    )
    .await
    .response
}

pub(crate) fn crud(app: &AppState) -> Option<Arc<crate::runtime::Deployed>> {
    app.runtime
        .registry
        .get(CRUD_COMPONENT)
        .filter(|f| f.system)
}

fn project_unavailable(err: ProjectError) -> Response {
    match err {
        ProjectError::Paused => {
            postgrest_error(StatusCode::FORBIDDEN, "PGRST000", "the project is paused")
        }
        other => postgrest_error(
            StatusCode::SERVICE_UNAVAILABLE,
            "PGRST001",
            &other.to_string(),
        ),
    }
}

/// A Dbify failure: its structured shape, with `success: false` and
/// `error` as its own server answers, so clients that read either work.
fn dbify_error(status: StatusCode, code: &str, message: &str, details: Value) -> Response {
    (
        status,
        Json(json!({
            "success": false,
            "errorCode": code,
            "message": message,
            "details": details,
            "error": message,
        })),
    )
        .into_response()
}

/// `POST /query` and `POST /api/crud`.
pub async fn dbify(State(app): State<AppState>, request: Request) -> Response {
    let mut tags = Tags::default();
    let mut response = dbify_inner(&app, request, &mut tags).await;
    response.extensions_mut().insert(tags);
    response
}

async fn dbify_inner(app: &AppState, request: Request, tags: &mut Tags) -> Response {
    let bytes = match axum::body::to_bytes(request.into_body(), MAX_BODY).await {
        Ok(bytes) => bytes,
        Err(_) => {
            return dbify_error(
                StatusCode::PAYLOAD_TOO_LARGE,
                "PAYLOAD_TOO_LARGE",
                &format!("the body is larger than {MAX_BODY} bytes"),
                Value::Null,
            )
        }
    };
    let body: Value = match serde_json::from_slice(&bytes) {
        Ok(Value::Object(map)) => Value::Object(map),
        Ok(_) => {
            return dbify_error(
                StatusCode::BAD_REQUEST,
                "INVALID_REQUEST",
                "the body must be a JSON object",
                Value::Null,
            )
        }
        Err(err) => {
            return dbify_error(
                StatusCode::BAD_REQUEST,
                "INVALID_JSON",
                &format!("the body is not JSON: {err}"),
                Value::Null,
            )
        }
    };
    let project_id = match &body["projectId"] {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.trim().parse::<i64>().ok(),
        _ => None,
    };
    let Some(project_id) = project_id else {
        return dbify_error(
            StatusCode::BAD_REQUEST,
            "INVALID_REQUEST",
            "projectId must be the project's number",
            Value::Null,
        );
    };
    let Some(project) = app.projects.get(project_id) else {
        return dbify_error(
            StatusCode::NOT_FOUND,
            "PROJECT_NOT_FOUND",
            "Project not found",
            json!({ "projectId": project_id }),
        );
    };
    let Some(key) = body["apiKey"].as_str().filter(|k| !k.is_empty()) else {
        return dbify_error(
            StatusCode::UNAUTHORIZED,
            "AUTH_ERROR",
            "apiKey is missing",
            Value::Null,
        );
    };
    if !project.accepts(key) {
        return if app.projects.by_key(key).is_some() {
            dbify_error(
                StatusCode::FORBIDDEN,
                "FORBIDDEN",
                "the API key belongs to another project",
                Value::Null,
            )
        } else {
            dbify_error(
                StatusCode::UNAUTHORIZED,
                "AUTH_ERROR",
                "Invalid API key or project ID",
                Value::Null,
            )
        };
    }
    // Admitted: from here on the request counts as the project's.
    tags.project_id = Some(project_id);
    let Some(table) = body["tableName"].as_str().filter(|t| !t.is_empty()) else {
        return dbify_error(
            StatusCode::BAD_REQUEST,
            "INVALID_REQUEST",
            "tableName must name a table",
            Value::Null,
        );
    };
    let operation = body["operation"].as_str().unwrap_or_default();
    tags.table = Some(table.chars().take(128).collect());
    tags.operation = match operation {
        "read" => Some("read"),
        "create" => Some("create"),
        "update" => Some("update"),
        "delete" => Some("delete"),
        _ => None,
    };
    let db = match app.projects.database(&project).await {
        Ok(db) => db,
        Err(ProjectError::Paused) => {
            return dbify_error(
                StatusCode::FORBIDDEN,
                "PROJECT_PAUSED",
                "the project is paused",
                Value::Null,
            )
        }
        Err(err) => {
            return dbify_error(
                StatusCode::SERVICE_UNAVAILABLE,
                "DATABASE_UNAVAILABLE",
                &err.to_string(),
                Value::Null,
            )
        }
    };
    // The table and its columns, from the project's schema cache: unknown
    // names are refused here, with Dbify's wording, before any SQL.
    let cache = db.schema().get();
    let (schema, name) = match resolve_table(&cache, db.schemas(), table) {
        Some(found) => found,
        None => {
            return dbify_error(
                StatusCode::NOT_FOUND,
                "TABLE_NOT_FOUND",
                &format!("Table '{table}' not found in schema"),
                json!({ "tableName": table }),
            )
        }
    };
    let Some(columns) = cache
        .table(&schema, &name)
        .map(|t| t.columns.iter().map(|c| c.name.clone()).collect::<Vec<_>>())
    else {
        return dbify_error(
            StatusCode::NOT_FOUND,
            "TABLE_NOT_FOUND",
            &format!("Table '{table}' not found in schema"),
            Value::Null,
        );
    };
    let plan = match plan(operation, &body["payload"], &columns) {
        Ok(plan) => plan,
        Err(message) => {
            return dbify_error(
                StatusCode::BAD_REQUEST,
                "INVALID_REQUEST",
                &message,
                json!({ "operation": operation }),
            )
        }
    };
    let Some(component) = crud(app) else {
        return dbify_error(
            StatusCode::SERVICE_UNAVAILABLE,
            "UNAVAILABLE",
            "the crud component is not installed in this host",
            Value::Null,
        );
    };
    let mut uri = format!("/rest/v1/{}", percent_encode(&name));
    if !plan.filters.is_empty() {
        uri.push('?');
        uri.push_str(&plan.filters.join("&"));
    }
    let mut builder = axum::http::Request::builder()
        .method(plan.method.clone())
        .uri(uri)
        .header(header::ACCEPT, "application/json")
        .header("prefer", "return=representation");
    if schema != db.schemas().first().map(String::as_str).unwrap_or("public") {
        let profile = if plan.method == Method::GET {
            "accept-profile"
        } else {
            "content-profile"
        };
        builder = builder.header(profile, schema.as_str());
    }
    let crud_body = match &plan.body {
        Some(value) => {
            builder = builder.header(header::CONTENT_TYPE, "application/json");
            Body::from(value.to_string())
        }
        None => Body::empty(),
    };
    let Ok(crud_request) = builder.body(crud_body) else {
        return dbify_error(
            StatusCode::BAD_REQUEST,
            "INVALID_REQUEST",
            "the request could not be formed",
            Value::Null,
        );
    };
    let answered = invoke_reporting(
        app,
        component,
        project_principal(),
        crud_request,
        ErrorStyle::PostgRest,
        None,
        Some(db),
    )
    .await;
    let status = answered.response.status();
    let answer = match axum::body::to_bytes(answered.response.into_body(), MAX_ANSWER).await {
        Ok(bytes) => serde_json::from_slice::<Value>(&bytes).unwrap_or(Value::Null),
        Err(_) => {
            return dbify_error(
                StatusCode::PAYLOAD_TOO_LARGE,
                "RESPONSE_TOO_LARGE",
                &format!("the rows come to more than {MAX_ANSWER} bytes: narrow the where"),
                json!({ "tableName": table }),
            )
        }
    };
    if !status.is_success() {
        return crud_failure(status, &answer, table);
    }
    let rows = match answer {
        Value::Array(rows) => rows,
        Value::Null => Vec::new(),
        other => vec![other],
    };
    let n = rows.len();
    let answer = match operation {
        "read" => json!({
            "success": true, "data": rows, "count": n,
            "message": format!("Records retrieved successfully from {table}"),
        }),
        "create" => json!({
            "success": true, "data": rows,
            "message": format!("Record created successfully in {table}"),
        }),
        "update" => json!({
            "success": true, "data": rows, "updatedCount": n,
            "message": format!("Records updated successfully in {table}"),
        }),
        _ => json!({
            "success": true, "data": rows, "deletedCount": n,
            "message": format!("{n} record(s) deleted successfully from {table}"),
        }),
    };
    (StatusCode::OK, Json(answer)).into_response()
}

/// A data API failure in Dbify's shape, keeping the status.
fn crud_failure(status: StatusCode, answer: &Value, table: &str) -> Response {
    let pg_code = answer["code"].as_str().unwrap_or_default();
    let message = answer["message"]
        .as_str()
        .unwrap_or("the database refused the request");
    let (status, code) = match (status, pg_code) {
        (_, "23505") | (_, "23503") | (StatusCode::CONFLICT, _) => {
            (StatusCode::CONFLICT, "CONFLICT")
        }
        (_, "42501") | (StatusCode::FORBIDDEN, _) | (StatusCode::UNAUTHORIZED, _) => {
            (StatusCode::FORBIDDEN, "PERMISSION_DENIED")
        }
        (StatusCode::NOT_FOUND, _) => (StatusCode::NOT_FOUND, "TABLE_NOT_FOUND"),
        (s, _) if s.is_client_error() => (s, "INVALID_REQUEST"),
        (s, _) => (s, "DATABASE_ERROR"),
    };
    dbify_error(
        status,
        code,
        message,
        json!({
            "tableName": table,
            "code": answer["code"],
            "details": answer["details"],
            "hint": answer["hint"],
        }),
    )
}

/// The table `name` names: in the first exposed schema, or `schema.table`
/// with an exposed schema.
fn resolve_table(
    cache: &crate::db::schema::SchemaCache,
    schemas: &[String],
    name: &str,
) -> Option<(String, String)> {
    let first = schemas.first()?;
    if cache.table(first, name).is_some() {
        return Some((first.clone(), name.to_owned()));
    }
    let (schema, table) = name.split_once('.')?;
    (schemas.iter().any(|s| s == schema) && cache.table(schema, table).is_some())
        .then(|| (schema.to_owned(), table.to_owned()))
}

/// A Dbify operation as a data API request.
#[derive(Debug)]
struct Plan {
    method: Method,
    /// `key=value` pairs, percent-encoded.
    filters: Vec<String>,
    body: Option<Value>,
}

fn plan(operation: &str, payload: &Value, columns: &[String]) -> Result<Plan, String> {
    let has = |name: &str| columns.iter().any(|c| c == name);
    // Dbify's README wraps rows in `data` and conditions in `where`; its
    // server takes them bare. Both are accepted: a wrapper is unwrapped
    // unless the table has a column of that name.
    let unwrap = |value: &Value, key: &str| -> Value {
        match value {
            Value::Object(map) if map.len() == 1 && map.contains_key(key) && !has(key) => {
                map[key].clone()
            }
            other => other.clone(),
        }
    };
    match operation {
        "read" => {
            let conditions = match payload {
                Value::Null => Map::new(),
                other => object(&unwrap(other, "where"), "read's payload (a where object)")?,
            };
            Ok(Plan {
                method: Method::GET,
                filters: filters(&conditions, columns)?,
                body: None,
            })
        }
        "create" => {
            let rows = unwrap(payload, "data");
            match &rows {
                Value::Object(map) if !map.is_empty() => check_columns(map, columns)?,
                Value::Array(items) if !items.is_empty() => {
                    for item in items {
                        check_columns(&object(item, "each row to create")?, columns)?;
                    }
                }
                _ => {
                    return Err(
                        "create's payload must be a row (an object of columns), or {\"data\": row}"
                            .into(),
                    )
                }
            }
            Ok(Plan {
                method: Method::POST,
                filters: Vec::new(),
                body: Some(rows),
            })
        }
        "update" => {
            let payload = object(payload, "update's payload ({\"where\", \"data\"})")?;
            let conditions = object(
                payload.get("where").unwrap_or(&Value::Null),
                "update's where",
            )?;
            let data = object(payload.get("data").unwrap_or(&Value::Null), "update's data")?;
            if data.is_empty() {
                return Err("update's data must set at least one column".into());
            }
            check_columns(&data, columns)?;
            let filters = filters(&conditions, columns)?;
            if filters.is_empty() {
                return Err(
                    "update's where must name at least one column (an update of every row is refused)"
                        .into(),
                );
            }
            Ok(Plan {
                method: Method::PATCH,
                filters,
                body: Some(Value::Object(data)),
            })
        }
        "delete" => {
            let conditions = object(
                &unwrap(payload, "where"),
                "delete's payload (a where object)",
            )?;
            let filters = filters(&conditions, columns)?;
            if filters.is_empty() {
                return Err(
                    "delete's where must name at least one column (a delete of every row is refused)"
                        .into(),
                );
            }
            Ok(Plan {
                method: Method::DELETE,
                filters,
                body: None,
            })
        }
        other => Err(format!(
            "Invalid operation {other:?}: use create, read, update or delete"
        )),
    }
}

fn object(value: &Value, what: &str) -> Result<Map<String, Value>, String> {
    match value {
        Value::Object(map) => Ok(map.clone()),
        Value::Null => Ok(Map::new()),
        _ => Err(format!("{what} must be a JSON object")),
    }
}

fn check_columns(map: &Map<String, Value>, columns: &[String]) -> Result<(), String> {
    match map.keys().find(|k| !columns.iter().any(|c| c == *k)) {
        Some(unknown) => Err(format!("the table has no column {unknown:?}")),
        None => Ok(()),
    }
}

/// `{"col": value}` as `"col"=eq.value` filters (`is.null` for null);
/// names are quoted so that any column name is taken as it is.
fn filters(conditions: &Map<String, Value>, columns: &[String]) -> Result<Vec<String>, String> {
    check_columns(conditions, columns)?;
    Ok(conditions
        .iter()
        .map(|(column, value)| {
            let quoted = format!("\"{}\"", column.replace('\\', "\\\\").replace('"', "\\\""));
            let condition = match value {
                Value::Null => "is.null".to_owned(),
                Value::String(s) => format!("eq.{s}"),
                other => format!("eq.{other}"),
            };
            format!("{}={}", percent_encode(&quoted), percent_encode(&condition))
        })
        .collect())
}

/// Everything but unreserved characters, percent-encoded.
pub(crate) fn percent_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn columns() -> Vec<String> {
        ["id", "title", "data", "we\"ird col"]
            .iter()
            .map(|s| s.to_string())
            .collect()
    }

    #[test]
    fn reads_filter_by_equality_with_quoted_names() {
        let read = plan("read", &json!({"id": 3, "we\"ird col": null}), &columns()).unwrap();
        assert_eq!(read.method, Method::GET);
        assert_eq!(
            read.filters,
            vec!["%22id%22=eq.3", "%22we%5C%22ird%20col%22=is.null"]
        );
        assert!(plan("read", &json!({"nope": 1}), &columns()).is_err());
        assert!(plan("read", &json!([1]), &columns()).is_err());
    }

    #[test]
    fn wrappers_are_unwrapped_unless_they_are_columns() {
        let plan_ = plan("create", &json!({"data": {"id": 1}}), &columns()).unwrap();
        // `data` is a column of this table: the row is taken as it is.
        assert_eq!(plan_.body, Some(json!({"data": {"id": 1}})));
        let cols: Vec<String> = vec!["id".into()];
        let plan_ = plan("create", &json!({"data": {"id": 1}}), &cols).unwrap();
        assert_eq!(plan_.body, Some(json!({"id": 1})));
        let plan_ = plan("delete", &json!({"where": {"id": 1}}), &cols).unwrap();
        assert_eq!(plan_.filters, vec!["%22id%22=eq.1"]);
        let plan_ = plan("delete", &json!({"id": 1}), &cols).unwrap();
        assert_eq!(plan_.filters, vec!["%22id%22=eq.1"]);
    }

    #[test]
    fn unbounded_writes_and_unknown_operations_are_refused() {
        assert!(plan("delete", &json!({}), &columns()).is_err());
        assert!(plan(
            "update",
            &json!({"where": {}, "data": {"title": "x"}}),
            &columns()
        )
        .is_err());
        assert!(plan(
            "update",
            &json!({"where": {"id": 1}, "data": {}}),
            &columns()
        )
        .is_err());
        assert!(plan("drop", &json!({}), &columns()).is_err());
        assert!(plan("create", &json!({}), &columns()).is_err());
    }
}
