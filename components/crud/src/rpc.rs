//! `/rest/v1/rpc/{function}`: named arguments from the JSON body (`POST`)
//! or the query string (`GET`, for stable and immutable functions).

use crate::error::ApiError;
use crate::parse;
use crate::query::{self, Builder};
use crate::read::{json_rows, single_object, SINGLE_OBJECT};
use crate::sql::{ident, json_array_literal, qualified, Sql};
use crate::Call;
use selfdb_sdk::db::{self, Value};
use selfdb_sdk::schema::{self, FunctionInfo, TableInfo};
use selfdb_sdk::Response;
use serde_json::{Map, Value as Json};

fn not_found(schema_name: &str, name: &str) -> ApiError {
    ApiError::new(
        404,
        "PGRST202",
        format!("Could not find the function {schema_name}.{name} in the schema cache"),
    )
}

pub fn call(call: &Call, name: &str) -> Result<Response, ApiError> {
    let overloads = schema::function_overloads(&call.schema, name);
    if overloads.is_empty() {
        return Err(not_found(&call.schema, name));
    }
    let (function, args) = match call.request.method.as_str() {
        "POST" => {
            let body: Map<String, Json> = if call.request.body.is_empty() {
                Map::new()
            } else {
                match call.body_json()? {
                    Json::Object(map) => map,
                    _ => {
                        return Err(ApiError::new(
                            400,
                            "PGRST102",
                            "the arguments must be a JSON object",
                        ))
                    }
                }
            };
            let keys: Vec<&str> = body.keys().map(String::as_str).collect();
            let function = choose(call, name, overloads, &keys, true)?;
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
            let function = choose(call, name, overloads, &keys, false)?;
            if function.volatility == "volatile" {
                return Err(ApiError::new(
                    405,
                    "PGRST101",
                    "Cannot use the GET method on a volatile function",
                ));
            }
            let args = query_args(call, &function);
            (function, args)
        }
        _ => return Err(ApiError::new(405, "PGRST117", "Unsupported HTTP method")),
    };
    if function.returns_set && function.returns_rows {
        if let Some(table) = result_table(&function) {
            return rows_as_table(call, &function, &table, &args);
        }
    }
    let mut sql = Sql::default();
    let invocation = invocation(call, &function, &args, &mut sql)?;
    if function.return_type == "void" {
        db::query(&format!("select {invocation}"), &sql.params).map_err(|e| call.db_error(e))?;
        return Ok(Response::new(204, "text/plain", Vec::new()));
    }
    if function.returns_set {
        let rows = json_rows(
            call,
            &format!("select coalesce(json_agg(_r), '[]'::json)::text from {invocation} as _r"),
            &sql.params,
        )?;
        return Ok(Response::json(200, &Json::Array(rows)));
    }
    let single = if function.returns_rows {
        format!("select row_to_json(_r)::text from {invocation} as _r")
    } else {
        format!("select to_json({invocation})::text")
    };
    let rows = db::query(&single, &sql.params).map_err(|e| call.db_error(e))?;
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

/// Whether the argument at `index` is the function's `variadic` one.
fn is_variadic(function: &FunctionInfo, index: usize) -> bool {
    function.variadic && index + 1 == function.args.len()
}

/// The overload the request's argument names call, as PostgREST picks it:
/// every required parameter given and, when `exact`, every key a parameter.
/// Of several, the one that takes the most of the keys; a tie is ambiguous.
fn choose(
    call: &Call,
    name: &str,
    overloads: Vec<FunctionInfo>,
    keys: &[&str],
    exact: bool,
) -> Result<FunctionInfo, ApiError> {
    let mut best: Vec<(usize, FunctionInfo)> = Vec::new();
    for function in overloads {
        let takes = |key: &str| function.args.iter().any(|a| a.name == key);
        if exact && !keys.iter().all(|k| takes(k)) {
            continue;
        }
        let required_given = function
            .args
            .iter()
            .all(|a| a.has_default || keys.contains(&a.name.as_str()));
        if !required_given {
            continue;
        }
        let used = keys.iter().filter(|k| takes(k)).count();
        match best.first() {
            Some((top, _)) if used < *top => {}
            Some((top, _)) if used > *top => best = vec![(used, function)],
            _ => best.push((used, function)),
        }
    }
    match best.len() {
        1 => Ok(best.remove(0).1),
        0 => Err(not_found(&call.schema, name).details(format!(
            "no overload of {name} takes exactly the arguments given: {}",
            keys.join(", ")
        ))),
        _ => Err(ApiError::new(
            300,
            "PGRST203",
            format!(
                "Could not choose the best candidate function between overloads of {}.{name}",
                call.schema
            ),
        )
        .hint("name the arguments so that one overload matches")),
    }
}

/// `schema.function(arg => $n, ...)`, binding the arguments into `sql`.
fn invocation(
    call: &Call,
    function: &FunctionInfo,
    args: &Map<String, Json>,
    sql: &mut Sql,
) -> Result<String, ApiError> {
    let mut named = Vec::new();
    for (index, arg) in function.args.iter().enumerate() {
        let variadic = is_variadic(function, index);
        let array = variadic || arg.type_name.ends_with("[]");
        match args.get(&arg.name) {
            Some(value) => {
                let bound = match value {
                    Json::Null => Value::Null,
                    // An array argument binds as an array literal; a variadic
                    // one given a single value takes it as its one element.
                    Json::Array(items) if array => Value::Text(json_array_literal(items)),
                    Json::String(s) => match variadic {
                        true if !(s.starts_with('{') && s.ends_with('}')) => {
                            Value::Text(json_array_literal(std::slice::from_ref(value)))
                        }
                        _ => Value::Text(s.clone()),
                    },
                    other if variadic => {
                        Value::Text(json_array_literal(std::slice::from_ref(other)))
                    }
                    other => Value::Text(other.to_string()),
                };
                let keyword = if variadic { "variadic " } else { "" };
                named.push(format!(
                    "{keyword}{} => {}",
                    ident(&arg.name),
                    sql.bind(bound)
                ));
            }
            None if arg.has_default => {}
            None => {
                return Err(not_found(&call.schema, &function.name)
                    .details(format!("missing argument {}", arg.name)));
            }
        }
    }
    Ok(format!(
        "{}({})",
        qualified(&function.schema, &function.name),
        named.join(", ")
    ))
}

/// The table whose row type a set-returning function returns (`returns
/// setof posts`), so its result takes `select`, filters, `order` and
/// paging like the table itself, as on PostgREST.
fn result_table(function: &FunctionInfo) -> Option<TableInfo> {
    if !function.result_columns.is_empty() {
        // OUT or TABLE parameters: their columns, as a table without keys.
        return Some(TableInfo {
            schema: function.schema.clone(),
            name: function.name.clone(),
            kind: "function".into(),
            columns: function.result_columns.clone(),
            primary_key: Vec::new(),
            foreign_keys: Vec::new(),
            referenced_by: Vec::new(),
        });
    }
    let name = function.return_type.trim_matches('"');
    let (schema_name, table) = match name.split_once('.') {
        Some((s, t)) => (s.trim_matches('"'), t.trim_matches('"')),
        None => (function.schema.as_str(), name),
    };
    schema::table(schema_name, table)
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
    let scopes = query::scopes(&filters)?;
    let items = parse::parse_select(call.param("select").unwrap_or("*"))?;
    let mut builder = Builder::new(&scopes);
    let from = invocation(call, function, args, &mut builder.sql)?;
    let (list, inner) = builder.select_list(table, "t0", &items, "")?;
    let conds = builder.conditions(table, "t0", "", inner)?;
    let filter = if conds.is_empty() {
        String::new()
    } else {
        format!(" where {}", conds.join(" and "))
    };
    let order = builder.order(table, "t0", "")?;
    let paging = builder.paging("");
    let sql = format!(
        "select coalesce(json_agg(_r), '[]'::json)::text from (select {list} from {from} as t0{filter}{order}{paging}) _r"
    );
    let rows = json_rows(call, &sql, &builder.sql.params)?;
    if call.accept().contains(SINGLE_OBJECT) {
        return Ok(Response::new(
            200,
            SINGLE_OBJECT,
            single_object(&rows)?.to_string().into_bytes(),
        ));
    }
    Ok(Response::json(200, &Json::Array(rows)))
}
