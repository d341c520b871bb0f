//! `POST` (insert, upsert), `PUT` (single-row upsert), `PATCH` and `DELETE`.

use crate::error::ApiError;
use crate::parse;
use crate::query::{self, check_column, Builder, Scope};
use crate::read::json_rows;
use crate::sql::{column_list, ident, qualified};
use crate::Call;
use selfdb_sdk::db::{self, Value};
use selfdb_sdk::schema::TableInfo;
use selfdb_sdk::Response;
use serde_json::Value as Json;
use std::collections::HashMap;

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
                    return Err(ApiError::new(400, "PGRST102", "All object keys must match"));
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
        check_column(table, column).map_err(|_| {
            ApiError::new(
                400,
                "PGRST204",
                format!(
                    "Could not find the '{column}' column of '{}' in the schema cache",
                    table.name
                ),
            )
        })?;
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
    statements: Vec<(Builder, String)>,
    status: u16,
) -> Result<Response, ApiError> {
    let wants = call.prefers("return");
    if wants == Some("headers-only") && status == 201 && !table.primary_key.is_empty() {
        let mut keys = Vec::new();
        for (builder, statement) in statements {
            keys.extend(inserted_keys(call, table, builder, statement)?);
        }
        return Ok(created_location(table, &keys));
    }
    if wants != Some("representation") {
        let mut affected = 0;
        for (builder, statement) in statements {
            affected +=
                db::execute(&statement, &builder.sql.params).map_err(|e| call.db_error(e))?;
        }
        let code = if status == 201 { 201 } else { 204 };
        return Ok(Response::new(code, "text/plain", Vec::new())
            .with_header("content-range", &format!("*/{affected}")));
    }
    let items = parse::parse_select(call.param("select").unwrap_or("*"))?;
    let mut rows = Vec::new();
    for (mut builder, statement) in statements {
        let (list, _) = builder.select_list(table, "t0", &items, "")?;
        let sql = format!(
            "with _w as ({statement} returning *) select coalesce(json_agg(_r), '[]'::json)::text from (select {list} from _w as t0) _r"
        );
        rows.extend(json_rows(call, &sql, &builder.sql.params)?);
    }
    let range = format!("*/{}", rows.len());
    let response = if call.accept().contains(crate::read::SINGLE_OBJECT) {
        Response::json(status, crate::read::single_object(&rows)?)
    } else {
        Response::json(status, &Json::Array(rows))
    };
    Ok(response.with_header("content-range", &range))
}

/// Runs an insert, returning the primary keys of the rows it wrote.
fn inserted_keys(
    call: &Call,
    table: &TableInfo,
    mut builder: Builder,
    statement: String,
) -> Result<Vec<Json>, ApiError> {
    let pairs: Vec<String> = table
        .primary_key
        .iter()
        .map(|c| format!("{}::text, _w.{}", builder.sql.bind_text(c), ident(c)))
        .collect();
    let sql = format!(
        "with _w as ({statement} returning *) select coalesce(json_agg(json_build_object({})), '[]'::json)::text from _w",
        pairs.join(", ")
    );
    json_rows(call, &sql, &builder.sql.params)
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
        _ => return Err(ApiError::new(400, "PGRST102", "Empty or invalid json")),
    };
    if rows.is_empty() {
        return Ok(Response::json(201, &Json::Array(Vec::new())));
    }
    let columns = payload_columns(call, table, &rows)?;
    if columns.is_empty() && call.prefers("missing") != Some("default") {
        return Err(
            ApiError::new(400, "PGRST102", "Empty or invalid json").details("no columns to insert")
        );
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
            return Err(ApiError::new(
                400,
                "PGRST100",
                "upsert needs on_conflict or a primary key",
            ));
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
    let empty: HashMap<String, Scope> = HashMap::new();
    let target = qualified(&table.schema, &table.name);
    let mut statements = Vec::new();
    for (columns, rows) in groups {
        let on_conflict = resolution.map(|resolution| {
            let target_cols = column_list(&conflict);
            let updates: Vec<String> = columns
                .iter()
                .filter(|c| !conflict.contains(c))
                .map(|c| format!("{} = excluded.{}", ident(c), ident(c)))
                .collect();
            if resolution == "ignore-duplicates" || updates.is_empty() {
                format!(" on conflict ({target_cols}) do nothing")
            } else {
                format!(
                    " on conflict ({target_cols}) do update set {}",
                    updates.join(", ")
                )
            }
        });
        let on_conflict = on_conflict.unwrap_or_default();
        if columns.is_empty() {
            for _ in &rows {
                statements.push((
                    Builder::new(&empty),
                    format!("insert into {target} as t0 default values{on_conflict}"),
                ));
            }
            continue;
        }
        let mut builder = Builder::new(&empty);
        let cols = column_list(&columns);
        let payload = builder.sql.bind(Value::Text(Json::Array(rows).to_string()));
        statements.push((
            builder,
            format!(
                "insert into {target} as t0 ({cols}) select {cols} from json_populate_recordset(null::{target}, {payload}::json){on_conflict}"
            ),
        ));
    }
    run_returning(call, table, statements, status)
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
fn filtered(scopes: &HashMap<String, Scope>, verb: &str) -> Result<(), ApiError> {
    match scopes.get("") {
        Some(scope) if !scope.conds.is_empty() => Ok(()),
        _ => Err(
            ApiError::new(400, "21000", format!("{verb} requires a WHERE clause")).details(
                format!(
                    "add a filter; to {} every row, filter on a condition every row meets",
                    verb.to_lowercase()
                ),
            ),
        ),
    }
}

pub fn update(call: &Call, table: &TableInfo) -> Result<Response, ApiError> {
    let body = call.body_json()?;
    let Json::Object(ref fields) = body else {
        return Err(ApiError::new(400, "PGRST102", "Empty or invalid json"));
    };
    let scopes = query::scopes(&call.query)?;
    filtered(&scopes, "UPDATE")?;
    let rows = vec![body.clone()];
    let columns = payload_columns(call, table, &rows)?;
    if columns.is_empty() || fields.is_empty() {
        return Ok(Response::json(200, &Json::Array(Vec::new())));
    }
    let mut builder = Builder::new(&scopes);
    let target = qualified(&table.schema, &table.name);
    let cols = column_list(&columns);
    let payload = builder.sql.bind(Value::Text(body.to_string()));
    let conds = builder.conditions(table, "t0", "", Vec::new())?;
    let statement = format!(
        "update {target} as t0 set ({cols}) = (select {cols} from json_populate_record(null::{target}, {payload}::json)) where {}",
        conds.join(" and ")
    );
    run_returning(call, table, vec![(builder, statement)], 200)
}

pub fn delete(call: &Call, table: &TableInfo) -> Result<Response, ApiError> {
    let scopes = query::scopes(&call.query)?;
    filtered(&scopes, "DELETE")?;
    let mut builder = Builder::new(&scopes);
    let conds = builder.conditions(table, "t0", "", Vec::new())?;
    let statement = format!(
        "delete from {} as t0 where {}",
        qualified(&table.schema, &table.name),
        conds.join(" and ")
    );
    run_returning(call, table, vec![(builder, statement)], 200)
}

/// `PUT`: one row, addressed by `eq` filters on its whole primary key,
/// inserted or replaced.
pub fn put(call: &Call, table: &TableInfo) -> Result<Response, ApiError> {
    let body = call.body_json()?;
    let Json::Object(fields) = &body else {
        return Err(ApiError::new(400, "PGRST102", "Empty or invalid json"));
    };
    if table.primary_key.is_empty() {
        return Err(ApiError::new(
            405,
            "PGRST105",
            "PUT needs a table with a primary key",
        ));
    }
    for key in &table.primary_key {
        let filter = call.param(key).and_then(|v| v.strip_prefix("eq."));
        let payload = fields.get(key).map(|v| match v {
            Json::String(s) => s.clone(),
            other => other.to_string(),
        });
        match (filter, payload) {
            (Some(f), Some(p)) if f == p => {}
            _ => {
                return Err(ApiError::new(
                    400,
                    "PGRST105",
                    "PUT requires eq filters on the whole primary key, matching the payload",
                ))
            }
        }
    }
    insert_with_status(call, table, true, 200)
}
