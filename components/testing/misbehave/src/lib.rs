//! Test fixture for the runtime's limits and transaction rules.
//! `?mode=` picks the behaviour:
//! - `loop`: spins forever (time limit);
//! - `trap`: panics (trap);
//! - `oom`: allocates until the memory cap stops it;
//! - `write`: inserts `?value=` into `public.probe(value)` and answers 200;
//! - `write-then-trap`: inserts, then panics (must roll back);
//! - `write-then-500`: inserts, then answers 500 (must roll back);
//! - `sql`: runs the SQL in the JSON body `{"sql": "...", "params": [...]}`;
//! - `whoami`: answers the principal and a config value.

use selfdb_sdk::db::{self, Value};
use selfdb_sdk::{Handler, Request, Response};

struct Misbehave;

fn insert(request: &Request) -> Result<(), Response> {
    let value = request.query_param("value").unwrap_or_default();
    db::execute(
        "insert into public.probe (value) values ($1)",
        &[Value::Text(value)],
    )
    .map(|_| ())
    .map_err(|e| Response::error(500, "database_error", &e.message))
}

fn to_value(json: &serde_json::Value) -> Value {
    match json {
        serde_json::Value::Null => Value::Null,
        serde_json::Value::Bool(b) => Value::Boolean(*b),
        serde_json::Value::Number(n) => match n.as_i64() {
            Some(i) => Value::Int(i),
            None => Value::Float(n.as_f64().unwrap_or(0.0)),
        },
        serde_json::Value::String(s) => Value::Text(s.clone()),
        other => Value::Json(other.to_string()),
    }
}

impl Handler for Misbehave {
    fn handle(request: Request) -> Response {
        match request.query_param("mode").as_deref() {
            Some("loop") => {
                let mut n: u64 = 0;
                loop {
                    n = std::hint::black_box(n.wrapping_add(1));
                }
            }
            Some("trap") => panic!("asked to trap"),
            Some("oom") => {
                let mut hoard: Vec<Vec<u8>> = Vec::new();
                loop {
                    hoard.push(vec![1u8; 1 << 20]);
                    std::hint::black_box(&hoard);
                }
            }
            Some("write") => match insert(&request) {
                Ok(()) => Response::json(200, &serde_json::json!({"written": true})),
                Err(response) => response,
            },
            Some("write-then-trap") => {
                if let Err(response) = insert(&request) {
                    return response;
                }
                panic!("trapping after a write");
            }
            Some("write-then-500") => {
                if let Err(response) = insert(&request) {
                    return response;
                }
                Response::error(500, "failed_on_purpose", "answering 500 after a write")
            }
            Some("sql") => {
                let body: serde_json::Value = match request.json() {
                    Ok(body) => body,
                    Err(response) => return response,
                };
                let sql = body["sql"].as_str().unwrap_or_default();
                let params: Vec<Value> = body["params"]
                    .as_array()
                    .map(|a| a.iter().map(to_value).collect())
                    .unwrap_or_default();
                if let Some(before) = body["before"].as_str() {
                    if let Err(err) = db::query(before, &[]) {
                        return Response::error(500, "before_failed", &err.message);
                    }
                }
                // `alone`: as the request's only read (db.query-alone).
                let result = if body["alone"] == serde_json::Value::Bool(true) {
                    db::query_alone(sql, &params)
                } else {
                    db::query(sql, &params)
                };
                match result {
                    Ok(rows) => Response::json(
                        200,
                        &serde_json::json!({"rows": selfdb_sdk::rows_to_json(&rows)}),
                    ),
                    Err(err) => Response::json(
                        400,
                        &serde_json::json!({"error": {"code": err.code, "message": err.message, "details": err.details}}),
                    ),
                }
            }
            Some("whoami") => {
                let principal = selfdb_sdk::context::caller();
                Response::json(
                    200,
                    &serde_json::json!({
                        "role": principal.role,
                        "user_id": principal.user_id,
                        "greeting": selfdb_sdk::config::get("GREETING"),
                    }),
                )
            }
            _ => Response::error(
                400,
                "unknown_mode",
                "pass ?mode=loop|trap|oom|write|write-then-trap|write-then-500|sql|whoami",
            ),
        }
    }
}

selfdb_sdk::http_component!(Misbehave);
