//! `/rest/v1/rpc/{function}`: named arguments from the JSON body (`POST`)
//! or the query string (`GET`, for stable and immutable functions).

use crate::error::ApiError;
use crate::read::json_rows;
use crate::sql::{ident, qualified, Sql};
use crate::Call;
use selfdb_sdk::db::{self, Value};
use selfdb_sdk::schema;
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
    let function =
        schema::function(&call.schema, name).ok_or_else(|| not_found(&call.schema, name))?;
    let args: Map<String, Json> = match call.request.method.as_str() {
        "POST" => {
            if call.request.body.is_empty() {
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
            }
        }
        "GET" | "HEAD" => {
            if function.volatility == "volatile" {
                return Err(ApiError::new(
                    405,
                    "PGRST101",
                    "Cannot use the GET method on a volatile function",
                ));
            }
            call.query
                .iter()
                .filter(|(k, _)| function.args.iter().any(|a| &a.name == k))
                .map(|(k, v)| (k.clone(), Json::String(v.clone())))
                .collect()
        }
        _ => return Err(ApiError::new(405, "PGRST117", "Unsupported HTTP method")),
    };
    for key in args.keys() {
        if !function.args.iter().any(|a| &a.name == key) {
            return Err(not_found(&call.schema, name)
                .details(format!("the function has no argument named {key}")));
        }
    }
    let mut sql = Sql::default();
    let mut named = Vec::new();
    for arg in &function.args {
        match args.get(&arg.name) {
            Some(value) => {
                let bound = match value {
                    Json::Null => Value::Null,
                    Json::String(s) => Value::Text(s.clone()),
                    other => Value::Text(other.to_string()),
                };
                named.push(format!("{} => {}", ident(&arg.name), sql.bind(bound)));
            }
            None if arg.has_default => {}
            None => {
                return Err(
                    not_found(&call.schema, name).details(format!("missing argument {}", arg.name))
                );
            }
        }
    }
    let invocation = format!(
        "{}({})",
        qualified(&function.schema, &function.name),
        named.join(", ")
    );
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
