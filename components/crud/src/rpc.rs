//! `/rest/v1/rpc/{function}`: named arguments from the JSON body (`POST`)
//! or the query string (`GET`, for stable and immutable functions).

use crate::error::ApiError;
use crate::parse;
use crate::plan::{self, Host};
use crate::query::{self, is_variadic, Builder};
use crate::read::{json_rows, single_object, SINGLE_OBJECT};
use crate::Call;
use selfdb_sdk::db::{self, Value};
use selfdb_sdk::schema::{FunctionInfo, TableInfo};
use selfdb_sdk::Response;
use serde_json::{Map, Value as Json};

pub fn call(call: &Call, name: &str) -> Result<Response, ApiError> {
    let overloads = plan::overloads(&Host, &call.schema, name)?;
    let (function, args) = match call.request.method.as_str() {
        "POST" => {
            let body: Map<String, Json> = if call.request.body.is_empty() {
                Map::new()
            } else {
                match call.body_json()? {
                    Json::Object(map) => map,
                    _ => return Err(ApiError::arguments_not_object()),
                }
            };
            let keys: Vec<&str> = body.keys().map(String::as_str).collect();
            let function = plan::choose(&call.schema, name, overloads, &keys, true)?;
            (function, body)
        }
        "GET" | "HEAD" => {
            // Query keys are arguments or filters: each overload takes the
            // ones it has a parameter for.
            let mut keys: Vec<&str> = Vec::new();
            for (key, _) in &call.query {
                if !keys.contains(&key.as_str()) {
                    keys.push(key);
                }
            }
            let function = plan::choose(&call.schema, name, overloads, &keys, false)?;
            if function.volatility == "volatile" {
                return Err(ApiError::get_on_volatile());
            }
            let args = query_args(call, &function);
            (function, args)
        }
        _ => return Err(ApiError::unsupported_method()),
    };
    if function.returns_set && function.returns_rows {
        if let Some(table) = plan::result_table(&Host, &function) {
            return rows_as_table(call, &function, &table, &args);
        }
    }
    let statement = query::call(&call.schema, &function, &args)?;
    if function.return_type == "void" {
        db::query(&statement.sql, &statement.params).map_err(|e| call.db_error(e))?;
        return Ok(Response::new(204, "text/plain", Vec::new()));
    }
    if function.returns_set {
        let rows = json_rows(call, &statement.sql, &statement.params)?;
        return Ok(Response::json(200, &Json::Array(rows)));
    }
    let rows = db::query(&statement.sql, &statement.params).map_err(|e| call.db_error(e))?;
    let value = match rows.rows.first().and_then(|r| r.first()) {
        Some(Value::Text(text)) => serde_json::from_str(text).unwrap_or(Json::Null),
        _ => Json::Null,
    };
    Ok(Response::json(200, &value))
}

/// A `GET`'s arguments from the query string. A variadic argument takes
/// every value of its repeated key (`?v=1&v=2`); one value written as an
/// array literal (`?v={1,2}`, as supabase-js sends an array) is the array.
fn query_args(call: &Call, function: &FunctionInfo) -> Map<String, Json> {
    let mut args = Map::new();
    for (key, value) in &call.query {
        let Some(index) = function.args.iter().position(|a| &a.name == key) else {
            continue;
        };
        if !is_variadic(function, index) {
            args.insert(key.clone(), Json::String(value.clone()));
            continue;
        }
        let values = call
            .query
            .iter()
            .filter(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
            .collect::<Vec<_>>();
        // One value stays a string: `invocation` takes it as an array
        // literal or as the array's one element.
        let arg = match values.as_slice() {
            [one] => Json::String((*one).to_owned()),
            many => Json::Array(many.iter().map(|v| Json::String((*v).to_owned())).collect()),
        };
        args.insert(key.clone(), arg);
    }
    args
}

fn rows_as_table(
    call: &Call,
    function: &FunctionInfo,
    table: &TableInfo,
    args: &Map<String, Json>,
) -> Result<Response, ApiError> {
    // With GET the arguments share the query string with the filters.
    let is_arg =
        |key: &str| call.request.method != "POST" && function.args.iter().any(|a| a.name == key);
    let filters: Vec<(String, String)> = call
        .query
        .iter()
        .filter(|(k, _)| !is_arg(k))
        .cloned()
        .collect();
    let scopes = parse::scopes(&filters)?;
    let items = parse::parse_select(call.param("select").unwrap_or("*"))?;
    let select = plan::select(&Host, table, &items);
    let mut builder = Builder::new(&scopes);
    let from = query::invocation(&call.schema, function, args, &mut builder.sql)?;
    let read = query::read(builder, table, from, &select, false)?;
    let rows = json_rows(call, &read.sql, &read.params)?;
    if call.accept().contains(SINGLE_OBJECT) {
        return Ok(Response::new(
            200,
            SINGLE_OBJECT,
            single_object(&rows)?.to_string().into_bytes(),
        ));
    }
    Ok(Response::json(200, &Json::Array(rows)))
}
