//! `/tables/{id}/data...`: a table's rows, as data API requests to the
//! `crud` component made as the caller (as Dbify's `/query` is), so the
//! rows SelfDB's SDK reads and writes are decided by the same planner,
//! type coercion and row level security as `/rest/v1`'s.
//!
//! Before any SQL: a managed table's private rows are its owner's (and
//! admins'), and only they write a managed table's rows, public or not;
//! the answers are 401/403 as SelfDB's server gave. A table made outside
//! this API is left to its own policies.

use super::{Caller, Detail, Params};
use crate::db::api_tables::Found;
use crate::http::invoke::{invoke_reporting, ErrorStyle};
use crate::http::project_api::{crud, percent_encode};
use crate::http::AppState;
use axum::body::Body;
use axum::http::{header, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};

/// Largest answer read back from the data API (rows are reshaped in
/// memory, so they are bounded; a page is at most 1,000 rows).
const MAX_ANSWER: usize = 64 * 1024 * 1024;

/// Column types `search` looks in.
fn searchable(type_name: &str) -> bool {
    type_name == "text"
        || type_name == "citext"
        || type_name.starts_with("character varying")
        || type_name.starts_with("character(")
        || type_name == "character"
}

/// `"…"` with `\` and `"` escaped: a value inside a PostgREST logic tree.
fn quoted(value: &str) -> String {
    format!("\"{}\"", value.replace('\\', "\\\\").replace('"', "\\\""))
}

pub async fn route(
    app: &AppState,
    caller: &Caller,
    found: &Found,
    method: &Method,
    row: &[&str],
    params: &Params,
    body: Body,
) -> Result<Response, Detail> {
    let writes = *method != Method::GET;
    if found.managed && !found.owned && (writes || !found.public) {
        return Err(if caller.user_id().is_none() {
            Detail::new(StatusCode::UNAUTHORIZED, "Not authenticated")
        } else if writes {
            Detail::new(
                StatusCode::FORBIDDEN,
                "You can only modify rows of tables you own",
            )
        } else {
            Detail::new(
                StatusCode::FORBIDDEN,
                "You do not have access to this table",
            )
        });
    }
    let columns: Vec<(&str, &str)> = found.json["columns"]
        .as_array()
        .map(|cols| {
            cols.iter()
                .filter_map(|c| Some((c["name"].as_str()?, c["type"].as_str()?)))
                .collect()
        })
        .unwrap_or_default();
    let column = |name: &str, what: &str| -> Result<(), Detail> {
        if columns.iter().any(|(c, _)| *c == name) {
            Ok(())
        } else {
            let valid: Vec<&str> = columns.iter().map(|(c, _)| *c).collect();
            Err(Detail::bad_request(format!(
                "Invalid {what} '{name}'. Valid columns: {}",
                valid.join(", ")
            )))
        }
    };
    match (method, row) {
        (&Method::GET, []) => {
            let page = params.int("page", 1, 1, i64::MAX / 1000)?;
            let page_size = params.int("page_size", 100, 1, 1000)?;
            let mut query = format!(
                "select=*&limit={page_size}&offset={}",
                (page - 1) * page_size
            );
            match params.text("sort_by") {
                Some(sort_by) => {
                    column(sort_by, "sort column")?;
                    let ascending = params.ascending("sort_order", false)?;
                    query.push_str(&format!(
                        "&order={}.{}",
                        percent_encode(&quoted(sort_by)),
                        if ascending { "asc" } else { "desc" }
                    ));
                }
                None => {
                    // Pages need a stable order: the primary key's.
                    params.ascending("sort_order", true)?;
                    let keys: Vec<String> = found.json["columns"]
                        .as_array()
                        .map(|cols| {
                            cols.iter()
                                .filter(|c| c["primary_key"] == true)
                                .filter_map(|c| c["name"].as_str())
                                .map(|c| percent_encode(&quoted(c)))
                                .collect()
                        })
                        .unwrap_or_default();
                    if !keys.is_empty() {
                        query.push_str(&format!("&order={}", keys.join(",")));
                    }
                }
            }
            if let Some(search) = params.text("search") {
                // The term as itself: LIKE's own `\`, `%` and `_` escaped
                // (the data API makes `*` a wildcard: it stays one).
                let literal = search
                    .replace('\\', "\\\\")
                    .replace('%', "\\%")
                    .replace('_', "\\_");
                let pattern = quoted(&format!("*{literal}*"));
                let terms: Vec<String> = columns
                    .iter()
                    .filter(|(_, t)| searchable(t))
                    .map(|(c, _)| format!("{}.ilike.{pattern}", quoted(c)))
                    .collect();
                if terms.is_empty() {
                    // Nothing to search in: nothing matches.
                    return Ok(Json(json!({
                        "data": [], "total": 0, "page": page, "page_size": page_size
                    }))
                    .into_response());
                }
                query.push_str(&format!(
                    "&or={}",
                    percent_encode(&format!("({})", terms.join(",")))
                ));
            }
            let (status, headers, answer) =
                call(app, caller, found, Method::GET, &query, None).await?;
            check(status, &answer, caller)?;
            // `content-range: 0-9/57` (or `*/0`) with `count=exact`.
            let total = headers
                .get("content-range")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.rsplit('/').next())
                .and_then(|v| v.parse::<i64>().ok())
                .unwrap_or(0);
            Ok(Json(json!({
                "data": rows(answer),
                "total": total,
                "page": page,
                "page_size": page_size,
            }))
            .into_response())
        }
        (&Method::POST, []) => {
            let row = row_body(body).await?;
            let (status, _, answer) =
                call(app, caller, found, Method::POST, "select=*", Some(row)).await?;
            check(status, &answer, caller)?;
            let inserted = rows(answer).into_iter().next().unwrap_or(Value::Null);
            Ok((StatusCode::CREATED, Json(inserted)).into_response())
        }
        (&Method::PATCH | &Method::DELETE, [row_id]) => {
            let id_column = params.text("id_column").unwrap_or("id");
            column(id_column, "id_column")?;
            let filter = format!(
                "select=*&{}=eq.{}",
                percent_encode(id_column),
                percent_encode(row_id)
            );
            let updates = if *method == Method::PATCH {
                Some(row_body(body).await?)
            } else {
                None
            };
            let (status, _, answer) =
                call(app, caller, found, method.clone(), &filter, updates).await?;
            check(status, &answer, caller)?;
            let Some(row) = rows(answer).into_iter().next() else {
                return Err(Detail::new(StatusCode::NOT_FOUND, "Row not found"));
            };
            if *method == Method::PATCH {
                Ok(Json(row).into_response())
            } else {
                Ok(Json(json!({
                    "message": "Row deleted successfully",
                    "deleted_id": row_id,
                    "status": "deleted",
                    "table_id": found.json["id"],
                    "row_id": row_id,
                }))
                .into_response())
            }
        }
        (_, [] | [_]) => Err(Detail::method_not_allowed()),
        _ => Err(Detail::not_found()),
    }
}

/// A row to write: a non-empty JSON object.
async fn row_body(body: Body) -> Result<Value, Detail> {
    match super::json_body(body).await? {
        Value::Object(map) if map.is_empty() => Err(Detail::bad_request("The row has no columns")),
        Value::Object(map) => Ok(Value::Object(map)),
        _ => Err(Detail::bad_request("Give the row as a JSON object")),
    }
}

fn rows(answer: Value) -> Vec<Value> {
    match answer {
        Value::Array(rows) => rows,
        Value::Null => Vec::new(),
        other => vec![other],
    }
}

/// The data API's refusal, in SelfDB's shape and status.
fn check(status: StatusCode, answer: &Value, caller: &Caller) -> Result<(), Detail> {
    if status.is_success() {
        return Ok(());
    }
    let code = answer["code"].as_str().unwrap_or_default();
    let message = answer["message"]
        .as_str()
        .unwrap_or("the database refused the request")
        .to_owned();
    let message = match answer["details"].as_str().filter(|d| !d.is_empty()) {
        Some(details) => format!("{message} ({details})"),
        None => message,
    };
    let status = match code {
        "23505" | "23503" => StatusCode::CONFLICT,
        "42501" if caller.user_id().is_none() => StatusCode::UNAUTHORIZED,
        "42501" => StatusCode::FORBIDDEN,
        "PGRST205" => StatusCode::NOT_FOUND,
        _ if status.is_server_error() => StatusCode::INTERNAL_SERVER_ERROR,
        _ if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN => status,
        // Bad values, unknown columns, nulls where none may be, checks.
        _ => StatusCode::BAD_REQUEST,
    };
    Err(Detail::new(status, message))
}

/// One data API request on `found`'s table as the caller:
/// `(status, headers, JSON answer)`.
async fn call(
    app: &AppState,
    caller: &Caller,
    found: &Found,
    method: Method,
    query: &str,
    body: Option<Value>,
) -> Result<(StatusCode, axum::http::HeaderMap, Value), Detail> {
    let component = crud(app).ok_or_else(|| {
        Detail::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "the crud component is not installed in this host",
        )
    })?;
    let uri = format!("/rest/v1/{}?{query}", percent_encode(&found.name));
    let mut builder = axum::http::Request::builder()
        .method(method.clone())
        .uri(uri)
        .header(header::ACCEPT, "application/json")
        .header(
            "prefer",
            if method == Method::GET {
                "count=exact"
            } else {
                "return=representation"
            },
        );
    let first = app.settings.db_schemas.first().map(String::as_str);
    if first != Some(found.schema.as_str()) {
        let profile = if method == Method::GET {
            "accept-profile"
        } else {
            "content-profile"
        };
        builder = builder.header(profile, found.schema.as_str());
    }
    let request_body = match body {
        Some(value) => {
            builder = builder.header(header::CONTENT_TYPE, "application/json");
            Body::from(value.to_string())
        }
        None => Body::empty(),
    };
    let request = builder
        .body(request_body)
        .map_err(|_| Detail::bad_request("the request could not be formed"))?;
    let answered = invoke_reporting(
        app,
        component,
        caller.principal.clone(),
        request,
        ErrorStyle::PostgRest,
        None,
        None,
    )
    .await;
    let status = answered.response.status();
    let headers = answered.response.headers().clone();
    let bytes = axum::body::to_bytes(answered.response.into_body(), MAX_ANSWER)
        .await
        .map_err(|_| {
            Detail::new(
                StatusCode::INSUFFICIENT_STORAGE,
                format!("the rows come to more than {MAX_ANSWER} bytes: ask for a smaller page"),
            )
        })?;
    let answer = serde_json::from_slice::<Value>(&bytes).unwrap_or(Value::Null);
    Ok((status, headers, answer))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn search_looks_in_text_columns_and_quotes_its_values() {
        for text in ["text", "citext", "character varying(255)", "character(3)"] {
            assert!(searchable(text), "{text}");
        }
        for other in ["integer", "uuid", "jsonb", "text[]"] {
            assert!(!searchable(other), "{other}");
        }
        assert_eq!(quoted(r#"a"b\c"#), r#""a\"b\\c""#);
    }
}
