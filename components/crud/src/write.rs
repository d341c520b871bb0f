//! `POST` (insert, upsert), `PUT` (single-row upsert), `PATCH` and `DELETE`.

use crate::error::ApiError;
use crate::parse::{self, Scopes};
use crate::plan::{self, Host};
use crate::query::{self, check_column, Upsert, Write};
use crate::read::json_rows;
use crate::Call;
use selfdb_sdk::db;
use selfdb_sdk::schema::TableInfo;
use selfdb_sdk::Response;
use serde_json::Value as Json;

/// Columns named by `columns=`, else every key of the payload in order of
/// first appearance; each must exist.
fn payload_columns(call: &Call, table: &TableInfo, rows: &[Json]) -> Result<Vec<String>, ApiError> {
    let columns: Vec<String> = match call.param("columns") {
        Some(list) => list
            .split(',')
            .map(parse::unquote)
            .filter(|c| !c.is_empty())
            .collect(),
        None => {
            let mut seen = Vec::new();
            for row in rows {
                let Json::Object(map) = row else {
                    return Err(ApiError::keys_must_match());
                };
                for key in map.keys() {
                    if !seen.contains(key) {
                        seen.push(key.clone());
                    }
                }
            }
            seen
        }
    };
    for column in &columns {
        check_column(table, column).map_err(|_| ApiError::column_not_found(&table.name, column))?;
    }
    Ok(columns)
}

/// Runs data-modifying statements (one, or one per group of rows with
/// `missing=default`) in the request's transaction: with
/// `return=representation` their rows come back shaped by `select=`, with
/// `return=headers-only` a `Location` names the first, else only how many
/// there were.
fn run_returning(
    call: &Call,
    table: &TableInfo,
    writes: Vec<Write>,
    status: u16,
) -> Result<Response, ApiError> {
    let wants = call.prefers("return");
    if wants == Some("headers-only") && status == 201 && !table.primary_key.is_empty() {
        let mut keys = Vec::new();
        for write in writes {
            let statement = query::inserted_keys(write, table);
            keys.extend(json_rows(call, &statement.sql, &statement.params)?);
        }
        return Ok(created_location(table, &keys));
    }
    if wants != Some("representation") {
        let mut affected = 0;
        for write in writes {
            affected += db::execute(&write.statement, &write.builder.sql.params)
                .map_err(|e| call.db_error(e))?;
        }
        let code = if status == 201 { 201 } else { 204 };
        return Ok(Response::new(code, "text/plain", Vec::new())
            .with_header("content-range", &format!("*/{affected}")));
    }
    let items = parse::parse_select(call.param("select").unwrap_or("*"))?;
    let select = plan::select(&Host, table, &items);
    let mut rows = Vec::new();
    for write in writes {
        let statement = query::returning(write, table, &select)?;
        rows.extend(json_rows(call, &statement.sql, &statement.params)?);
    }
    let range = format!("*/{}", rows.len());
    let response = if call.accept().contains(crate::read::SINGLE_OBJECT) {
        Response::json(status, crate::read::single_object(&rows)?)
    } else {
        Response::json(status, &Json::Array(rows))
    };
    Ok(response.with_header("content-range", &range))
}

/// `Prefer: return=headers-only`: no body, and a `Location` naming the
/// (first) inserted row by its primary key, as PostgREST answers.
fn created_location(table: &TableInfo, keys: &[Json]) -> Response {
    let mut response = Response::new(201, "text/plain", Vec::new())
        .with_header("content-range", &format!("*/{}", keys.len()));
    if let Some(Json::Object(first)) = keys.first() {
        let query: Vec<String> = table
            .primary_key
            .iter()
            .map(|c| {
                let value = match first.get(c) {
                    Some(Json::String(s)) => s.clone(),
                    Some(Json::Null) | None => "null".to_owned(),
                    Some(other) => other.to_string(),
                };
                format!("{}=eq.{}", url_escape(c), url_escape(&value))
            })
            .collect();
        response = response.with_header(
            "location",
            &format!("/{}?{}", url_escape(&table.name), query.join("&")),
        );
    }
    response
}

/// Percent-escapes everything but unreserved characters.
fn url_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.' | b'~') {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

pub fn insert(call: &Call, table: &TableInfo, force_merge: bool) -> Result<Response, ApiError> {
    insert_with_status(call, table, force_merge, 201)
}

fn insert_with_status(
    call: &Call,
    table: &TableInfo,
    force_merge: bool,
    status: u16,
) -> Result<Response, ApiError> {
    let body = call.body_json()?;
    let rows = match body {
        Json::Array(rows) => rows,
        object @ Json::Object(_) => vec![object],
        _ => return Err(ApiError::invalid_json()),
    };
    if rows.is_empty() {
        return Ok(Response::json(201, &Json::Array(Vec::new())));
    }
    let columns = payload_columns(call, table, &rows)?;
    if columns.is_empty() && call.prefers("missing") != Some("default") {
        return Err(ApiError::invalid_json().details("no columns to insert"));
    }
    let resolution = if force_merge {
        Some("merge-duplicates")
    } else {
        call.prefers("resolution")
    };
    let conflict: Vec<String> = match (resolution, call.param("on_conflict")) {
        (None, _) => Vec::new(),
        (Some(_), Some(list)) => list.split(',').map(parse::unquote).collect(),
        (Some(_), None) => table.primary_key.clone(),
    };
    if resolution.is_some() {
        if conflict.is_empty() {
            return Err(ApiError::upsert_without_target());
        }
        for column in &conflict {
            check_column(table, column)?;
        }
    }
    // `Prefer: missing=default`: a key a row leaves out takes the column's
    // default rather than null, so rows are inserted in groups by the keys
    // they carry.
    let groups = if call.prefers("missing") == Some("default") {
        group_by_present_keys(&columns, rows)
    } else {
        vec![(columns, rows)]
    };
    let upsert = resolution.map(|resolution| Upsert {
        columns: &conflict,
        ignore_duplicates: resolution == "ignore-duplicates",
    });
    // An insert's `returning` select list sees no filters.
    let empty = Scopes::new();
    let writes = query::insert(table, groups, upsert, &empty);
    run_returning(call, table, writes, status)
}

/// Rows grouped by which of `columns` they carry, groups in order of
/// first appearance.
fn group_by_present_keys(columns: &[String], rows: Vec<Json>) -> Vec<(Vec<String>, Vec<Json>)> {
    let mut groups: Vec<(Vec<String>, Vec<Json>)> = Vec::new();
    for row in rows {
        let present: Vec<String> = columns
            .iter()
            .filter(|c| row.get(c.as_str()).is_some())
            .cloned()
            .collect();
        match groups.iter_mut().find(|(cols, _)| *cols == present) {
            Some((_, members)) => members.push(row),
            None => groups.push((present, vec![row])),
        }
    }
    groups
}

/// Top-level filters are required: a `PATCH` or `DELETE` without any would
/// touch every row, which a request has to ask for with a filter that says
/// so (e.g. `id=not.is.null`).
fn filtered(scopes: &Scopes, verb: &str) -> Result<(), ApiError> {
    match scopes.get("") {
        Some(scope) if !scope.conds.is_empty() => Ok(()),
        _ => Err(ApiError::missing_where(verb)),
    }
}

pub fn update(call: &Call, table: &TableInfo) -> Result<Response, ApiError> {
    let body = call.body_json()?;
    let Json::Object(ref fields) = body else {
        return Err(ApiError::invalid_json());
    };
    let scopes = parse::scopes(&call.query)?;
    filtered(&scopes, "UPDATE")?;
    let columns = payload_columns(call, table, std::slice::from_ref(&body))?;
    if columns.is_empty() || fields.is_empty() {
        return Ok(Response::json(200, &Json::Array(Vec::new())));
    }
    let write = query::update(table, &columns, &body, &scopes)?;
    run_returning(call, table, vec![write], 200)
}

pub fn delete(call: &Call, table: &TableInfo) -> Result<Response, ApiError> {
    let scopes = parse::scopes(&call.query)?;
    filtered(&scopes, "DELETE")?;
    let write = query::delete(table, &scopes)?;
    run_returning(call, table, vec![write], 200)
}

/// `PUT`: one row, addressed by `eq` filters on its whole primary key,
/// inserted or replaced.
pub fn put(call: &Call, table: &TableInfo) -> Result<Response, ApiError> {
    let body = call.body_json()?;
    let Json::Object(fields) = &body else {
        return Err(ApiError::invalid_json());
    };
    if table.primary_key.is_empty() {
        return Err(ApiError::put_without_primary_key());
    }
    for key in &table.primary_key {
        let filter = call.param(key).and_then(|v| v.strip_prefix("eq."));
        let payload = fields.get(key).map(|v| match v {
            Json::String(s) => s.clone(),
            other => other.to_string(),
        });
        match (filter, payload) {
            (Some(f), Some(p)) if f == p => {}
            _ => return Err(ApiError::put_mismatch()),
        }
    }
    insert_with_status(call, table, true, 200)
}
