//! `GET /rest/v1/{table}`: rows as JSON (or one object, or CSV), with
//! `Prefer: count=...` and `Range` paging.

use crate::error::ApiError;
use crate::parse;
use crate::plan::{self, Host};
use crate::query::{self, Builder};
use crate::sql::qualified;
use crate::Call;
use selfdb_sdk::db::{self, Value};
use selfdb_sdk::schema::TableInfo;
use selfdb_sdk::Response;
use serde_json::Value as Json;

pub const SINGLE_OBJECT: &str = "application/vnd.pgrst.object+json";

/// `Range: 0-9` as (offset, limit).
fn range(call: &Call) -> Result<(Option<i64>, Option<i64>), ApiError> {
    let Some(header) = call.request.header("range") else {
        return Ok((None, None));
    };
    let spec = header
        .trim()
        .strip_prefix("items=")
        .unwrap_or(header.trim());
    let (from, to) = spec
        .split_once('-')
        .ok_or_else(ApiError::range_not_satisfiable)?;
    let from: i64 = from
        .trim()
        .parse()
        .map_err(|_| ApiError::range_not_satisfiable())?;
    let to: Option<i64> = match to.trim() {
        "" => None,
        t => Some(t.parse().map_err(|_| ApiError::range_not_satisfiable())?),
    };
    if to.is_some_and(|t| t < from) {
        return Err(ApiError::range_not_satisfiable());
    }
    Ok((Some(from), to.map(|t| t - from + 1)))
}

/// Runs `sql` that yields one text column holding a JSON array.
pub fn json_rows(call: &Call, sql: &str, params: &[Value]) -> Result<Vec<Json>, ApiError> {
    let rows = db::query(sql, params).map_err(|e| call.db_error(e))?;
    let text = match rows.rows.first().and_then(|r| r.first()) {
        Some(Value::Text(t)) => t.as_str(),
        _ => "[]",
    };
    parse_array(text)
}

fn parse_array(text: &str) -> Result<Vec<Json>, ApiError> {
    match serde_json::from_str(text) {
        Ok(Json::Array(items)) => Ok(items),
        _ => Err(ApiError::no_json_array()),
    }
}

/// The rows of a read as the JSON array text Postgres built, and how many
/// there are: a plain JSON answer passes the text through unparsed, as
/// PostgREST does.
struct JsonText {
    text: String,
    count: usize,
}

/// Runs `sql`, which yields the JSON array text and its row count. When
/// `alone`, it is the request's only statement.
fn json_text(call: &Call, sql: &str, params: &[Value], alone: bool) -> Result<JsonText, ApiError> {
    let result = if alone {
        db::query_alone(sql, params)
    } else {
        db::query(sql, params)
    };
    let rows = result.map_err(|e| call.db_error(e))?;
    match rows.rows.into_iter().next().as_deref_mut() {
        Some([Value::Text(text), Value::Int(count)]) => Ok(JsonText {
            text: std::mem::take(text),
            count: usize::try_from(*count).unwrap_or(0),
        }),
        _ => Err(ApiError::no_json_array()),
    }
}

/// Above this many rows (by the planner's estimate), `count=estimated`
/// answers with the estimate instead of counting.
const ESTIMATE_THRESHOLD: i64 = 10_000;

/// The planner's row estimate for `count_sql` (`count=planned`), read from
/// `EXPLAIN` without running the query.
fn planned_count(call: &Call, count_sql: &str, params: &[Value]) -> Result<Option<i64>, ApiError> {
    let rows = db::query(&format!("explain (format json) {count_sql}"), params)
        .map_err(|e| call.db_error(e))?;
    let plan = match rows.rows.first().and_then(|r| r.first()) {
        Some(Value::Text(text) | Value::Json(text)) => serde_json::from_str::<Json>(text).ok(),
        _ => None,
    };
    // The count's aggregate node sits on top; the rows it counts are its
    // first child's estimate.
    let top = plan
        .as_ref()
        .and_then(|p| p.get(0))
        .and_then(|p| p.get("Plan"));
    let counted = top
        .and_then(|t| t.get("Plans"))
        .and_then(|children| children.get(0))
        .or(top)
        .and_then(|node| node.get("Plan Rows"))
        .and_then(Json::as_f64);
    Ok(counted.map(|rows| rows.round() as i64))
}

/// The one row `Accept: application/vnd.pgrst.object+json` asks for.
pub fn single_object(rows: &[Json]) -> Result<&Json, ApiError> {
    match rows {
        [row] => Ok(row),
        _ => Err(ApiError::not_single_object(rows.len())),
    }
}

pub fn get(call: &Call, table: &TableInfo) -> Result<Response, ApiError> {
    let mut scopes = parse::scopes(&call.query)?;
    let (range_offset, range_limit) = range(call)?;
    let top = scopes.entry(String::new()).or_default();
    if top.offset.is_none() {
        top.offset = range_offset;
    }
    top.limit = match (top.limit, range_limit) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    };
    let offset = top.offset.unwrap_or(0);
    let items = parse::parse_select(call.param("select").unwrap_or("*"))?;
    let select = plan::select(&Host, table, &items);
    let from = qualified(&table.schema, &table.name);
    let read = query::read(Builder::new(&scopes), table, from, &select, true)?;
    let params = &read.params;
    let counting = matches!(
        call.prefers("count"),
        Some("exact" | "planned" | "estimated")
    );
    // Without a count, the rows are all the request reads.
    let rows = json_text(call, &read.sql, params, !counting)?;

    let exact = |call: &Call| -> Result<Option<i64>, ApiError> {
        Ok(
            match db::query(&read.count_sql(), params)
                .map_err(|e| call.db_error(e))?
                .rows
                .first()
                .and_then(|r| r.first())
            {
                Some(Value::Int(n)) => Some(*n),
                _ => None,
            },
        )
    };
    let total = match call.prefers("count") {
        Some("exact") => exact(call)?,
        Some("planned") => planned_count(call, &read.count_sql(), params)?,
        // Exact while counting is cheap, the planner's estimate past that.
        Some("estimated") => match planned_count(call, &read.count_sql(), params)? {
            Some(estimate) if estimate > ESTIMATE_THRESHOLD => Some(estimate),
            _ => exact(call)?,
        },
        _ => None,
    };
    let content_range = match (rows.count, total) {
        (0, Some(t)) => format!("*/{t}"),
        (0, None) => "*/*".to_owned(),
        (n, t) => format!(
            "{offset}-{}/{}",
            offset + n as i64 - 1,
            t.map(|t| t.to_string()).unwrap_or_else(|| "*".into())
        ),
    };
    let accept = call.accept();
    let response = if accept.contains(SINGLE_OBJECT) {
        let rows = parse_array(&rows.text)?;
        Response::new(
            200,
            SINGLE_OBJECT,
            single_object(&rows)?.to_string().into_bytes(),
        )
    } else if accept.contains("text/csv") {
        Response::new(200, "text/csv", csv(&parse_array(&rows.text)?).into_bytes())
    } else {
        Response::new(200, "application/json", rows.text.into_bytes())
    };
    let mut response = response.with_header("content-range", &content_range);
    if call.request.method == "HEAD" {
        response.body.clear();
    }
    Ok(response)
}

fn csv(rows: &[Json]) -> String {
    let Some(Json::Object(first)) = rows.first() else {
        return String::new();
    };
    let columns: Vec<&String> = first.keys().collect();
    let cell = |v: Option<&Json>| -> String {
        let text = match v {
            None | Some(Json::Null) => return String::new(),
            Some(Json::String(s)) => s.clone(),
            Some(other) => other.to_string(),
        };
        if text.contains([',', '"', '\n', '\r']) {
            format!("\"{}\"", text.replace('"', "\"\""))
        } else {
            text
        }
    };
    let mut out = columns
        .iter()
        .map(|c| cell(Some(&Json::String((*c).clone()))))
        .collect::<Vec<_>>()
        .join(",");
    for row in rows {
        out.push('\n');
        out.push_str(
            &columns
                .iter()
                .map(|c| cell(row.get(c.as_str())))
                .collect::<Vec<_>>()
                .join(","),
        );
    }
    out
}
