//! `GET /functions/v1/hello?name=Ada` or `POST {"name": "Ada"}`: greets
//! through a parameterised query that runs as the caller's role.

use selfdb_sdk::db::{self, Value};
use selfdb_sdk::{Handler, Request, Response};

/// Kept in step with the host's native twin (`/bench/native/hello`).
const HELLO_SQL: &str =
    "select 'Hello, ' || $1::text || '!' as greeting, current_user::text as role";

const MAX_NAME_CHARS: usize = 200;

#[derive(serde::Deserialize)]
struct Input {
    name: String,
}

struct Hello;

impl Handler for Hello {
    fn handle(request: Request) -> Response {
        let name = match request.method.as_str() {
            "GET" => request
                .query_param("name")
                .unwrap_or_else(|| "world".into()),
            "POST" => match request.json::<Input>() {
                Ok(input) => input.name,
                Err(response) => return response,
            },
            other => {
                return Response::error(
                    405,
                    "method_not_allowed",
                    &format!("{other} is not supported"),
                )
            }
        };
        if name.chars().count() > MAX_NAME_CHARS {
            return Response::error(
                400,
                "name_too_long",
                &format!("name is longer than {MAX_NAME_CHARS} characters"),
            );
        }
        match db::query(HELLO_SQL, &[Value::Text(name)]) {
            Ok(rows) => match rows.rows.first() {
                Some(row) => Response::json(
                    200,
                    &serde_json::json!({
                        "greeting": selfdb_sdk::value_to_json(&row[0]),
                        "role": selfdb_sdk::value_to_json(&row[1]),
                    }),
                ),
                None => Response::error(500, "no_row", "the query returned no row"),
            },
            Err(err) => Response::error(500, "database_error", &err.message),
        }
    }
}

selfdb_sdk::http_component!(Hello);
