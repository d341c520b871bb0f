//! A Spin app built with spin-sdk 5.2.0 (WASI 0.2), for SelfDB's tests:
//! it exercises what a Spin app uses (router, key-value, variables,
//! outbound HTTP) and answers in JSON so the tests can check each result.

use spin_sdk::http::{IntoResponse, Method, Params, Request, Response, Router};
use spin_sdk::{
    http_component, key_value, llm, mqtt, mysql, pg, pg4, redis, sqlite, sqlite3, variables,
};

#[http_component]
fn handle(req: Request) -> Response {
    let mut router = Router::new();
    router.get("/hello/:name", hello);
    router.any("/headers/*", headers);
    router.any("/kv/:key", kv);
    router.get("/kv-keys", kv_keys);
    router.get("/kv-open/:label", kv_open);
    router.get("/vars/:name", vars);
    router.get_async("/outbound", outbound);
    router.get("/env/:name", env);
    router.get("/file/*", file);
    router.get("/sqlite", sqlite);
    router.get("/sqlite3", sqlite3);
    router.get("/sqlite-open/:label", sqlite_open);
    router.get("/pg/list", pg_list);
    router.post("/pg/add", pg_add);
    router.get("/pg2/count", pg2_count);
    router.get("/pg-denied", pg_denied);
    router.get("/redis", redis);
    router.get("/redis-denied", redis_denied);
    router.get("/refused", refused);
    router.any("/*", headers);
    router.handle(req)
}

fn json(status: u16, value: serde_json::Value) -> Response {
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(value.to_string())
        .build()
}

fn hello(_req: Request, params: Params) -> anyhow::Result<impl IntoResponse> {
    Ok(Response::new(
        200,
        format!("hello {}", params.get("name").unwrap_or("?")),
    ))
}

/// The request as the component saw it: path and every spin-* header.
fn headers(req: Request, _params: Params) -> anyhow::Result<impl IntoResponse> {
    let mut spin = serde_json::Map::new();
    for (name, value) in req.headers() {
        if name.starts_with("spin-") {
            spin.insert(name.to_owned(), value.as_str().unwrap_or_default().into());
        }
    }
    Ok(json(
        200,
        serde_json::json!({ "sdk": 5, "uri": req.uri(), "path": req.path(), "query": req.query(), "headers": spin }),
    ))
}

fn kv(req: Request, params: Params) -> anyhow::Result<impl IntoResponse> {
    let store = key_value::Store::open_default()?;
    let key = params.get("key").unwrap_or_default();
    Ok(match req.method() {
        Method::Get => match store.get(key)? {
            Some(value) => Response::new(200, value),
            None => Response::new(404, "no such key"),
        },
        Method::Put | Method::Post => {
            store.set(key, req.body())?;
            Response::new(200, "set")
        }
        Method::Delete => {
            store.delete(key)?;
            Response::new(200, "deleted")
        }
        Method::Head => Response::new(if store.exists(key)? { 200 } else { 404 }, ()),
        _ => Response::new(405, "method not allowed"),
    })
}

fn kv_keys(_req: Request, _params: Params) -> anyhow::Result<impl IntoResponse> {
    let store = key_value::Store::open_default()?;
    Ok(json(200, serde_json::json!(store.get_keys()?)))
}

/// Opens a store by label and says how it went.
fn kv_open(_req: Request, params: Params) -> anyhow::Result<impl IntoResponse> {
    let label = params.get("label").unwrap_or_default();
    Ok(match key_value::Store::open(label) {
        Ok(_) => json(200, serde_json::json!({ "opened": label })),
        Err(err) => json(403, serde_json::json!({ "error": format!("{err:?}") })),
    })
}

fn vars(_req: Request, params: Params) -> anyhow::Result<impl IntoResponse> {
    Ok(
        match variables::get(params.get("name").unwrap_or_default()) {
            Ok(value) => json(200, serde_json::json!({ "value": value })),
            Err(err) => json(404, serde_json::json!({ "error": format!("{err:?}") })),
        },
    )
}

fn env(_req: Request, params: Params) -> anyhow::Result<impl IntoResponse> {
    let value = std::env::var(params.get("name").unwrap_or_default()).ok();
    Ok(json(200, serde_json::json!({ "value": value })))
}

/// A file from the component's `files` mounts.
fn file(req: Request, _params: Params) -> anyhow::Result<impl IntoResponse> {
    let path = req
        .header("spin-path-info")
        .and_then(|v| v.as_str())
        .unwrap_or("/")
        .to_owned();
    Ok(match std::fs::read_to_string(&path) {
        Ok(text) => Response::new(200, text),
        Err(err) => json(
            404,
            serde_json::json!({ "error": err.to_string(), "path": path }),
        ),
    })
}

/// GET /outbound?url=...: fetches the URL and answers with its status, or
/// with the error the host gave.
async fn outbound(req: Request, _params: Params) -> anyhow::Result<impl IntoResponse> {
    let url = req
        .query()
        .split('&')
        .find_map(|p| p.strip_prefix("url="))
        .unwrap_or_default()
        .replace("%3A", ":")
        .replace("%2F", "/");
    let request = Request::get(url).build();
    Ok(match spin_sdk::http::send::<_, Response>(request).await {
        Ok(response) => json(200, serde_json::json!({ "status": response.status() })),
        Err(err) => json(502, serde_json::json!({ "error": format!("{err:?}") })),
    })
}

fn error(status: u16, err: impl std::fmt::Debug) -> Response {
    json(status, serde_json::json!({ "error": format!("{err:?}") }))
}

/// fermyon:spin/sqlite@2.0.0: a table in the app's default database.
fn sqlite(_req: Request, _params: Params) -> anyhow::Result<impl IntoResponse> {
    let db = match sqlite::Connection::open_default() {
        Ok(db) => db,
        Err(err) => return Ok(error(500, err)),
    };
    let steps = db
        .execute(
            "create table if not exists visits (n integer, via text)",
            &[],
        )
        .and_then(|_| {
            db.execute(
                "insert into visits (n, via) values (?, ?)",
                &[sqlite::Value::Integer(5), sqlite::Value::Text("v2".into())],
            )
        })
        .and_then(|_| {
            db.execute(
                "select count(*) as visits, sum(n) as total from visits",
                &[],
            )
        });
    Ok(match steps {
        Ok(result) => {
            let row = result.rows().next();
            json(
                200,
                serde_json::json!({
                    "visits": row.as_ref().and_then(|r| r.get::<i64>("visits")),
                    "total": row.as_ref().and_then(|r| r.get::<i64>("total")),
                }),
            )
        }
        Err(err) => error(500, err),
    })
}

/// spin:sqlite/sqlite@3.0.0 (served by the host's 3.1.0).
fn sqlite3(_req: Request, _params: Params) -> anyhow::Result<impl IntoResponse> {
    let db = match sqlite3::Connection::open_default() {
        Ok(db) => db,
        Err(err) => return Ok(error(500, err)),
    };
    let inserted = db
        .execute(
            "create table if not exists visits (n integer, via text)",
            &[],
        )
        .and_then(|_| {
            db.execute(
                "insert into visits (n, via) values (?, 'v3')",
                &[sqlite3::Value::Integer(7)],
            )
        });
    Ok(match inserted {
        Ok(_) => json(
            200,
            serde_json::json!({ "rowid": db.last_insert_rowid(), "changes": db.changes() }),
        ),
        Err(err) => error(500, err),
    })
}

fn sqlite_open(_req: Request, params: Params) -> anyhow::Result<impl IntoResponse> {
    Ok(
        match sqlite::Connection::open(params.get("label").unwrap_or_default()) {
            Ok(_) => json(200, serde_json::json!({ "opened": true })),
            Err(err) => error(403, err),
        },
    )
}

fn db_url() -> String {
    variables::get("db_url").unwrap_or_default()
}

/// spin:postgres/postgres@4.0.0 (served by the host's 4.2.0), as the caller.
fn pg_list(_req: Request, _params: Params) -> anyhow::Result<impl IntoResponse> {
    let db = match pg4::Connection::open(&db_url()) {
        Ok(db) => db,
        Err(err) => return Ok(error(500, err)),
    };
    Ok(
        match db.query("select body from public.notes order by id", &[]) {
            Ok(rows) => {
                let bodies: Vec<Option<String>> =
                    rows.rows().map(|r| r.get::<String>("body")).collect();
                json(200, serde_json::json!(bodies))
            }
            Err(err) => error(403, err),
        },
    )
}

fn pg_add(req: Request, _params: Params) -> anyhow::Result<impl IntoResponse> {
    let db = match pg4::Connection::open(&db_url()) {
        Ok(db) => db,
        Err(err) => return Ok(error(500, err)),
    };
    let body = String::from_utf8_lossy(req.body()).into_owned();
    Ok(
        match db.execute(
            "insert into public.notes (body) values ($1)",
            &[pg4::ParameterValue::Str(body)],
        ) {
            Ok(n) => json(200, serde_json::json!({ "inserted": n })),
            Err(err) => error(403, err),
        },
    )
}

/// fermyon:spin/postgres@2.0.0.
fn pg2_count(_req: Request, _params: Params) -> anyhow::Result<impl IntoResponse> {
    let db = match pg::Connection::open(&db_url()) {
        Ok(db) => db,
        Err(err) => return Ok(error(500, err)),
    };
    Ok(
        match db.query("select count(*) as n from public.notes", &[]) {
            Ok(rows) => match rows.rows.first().and_then(|r| r.first()) {
                Some(pg::DbValue::Int64(n)) => json(200, serde_json::json!({ "count": n })),
                other => error(500, other),
            },
            Err(err) => error(403, err),
        },
    )
}

fn pg_denied(_req: Request, _params: Params) -> anyhow::Result<impl IntoResponse> {
    Ok(
        match pg4::Connection::open("postgres://user:pw@db.example.com:5432/app") {
            Ok(_) => json(200, serde_json::json!({ "opened": true })),
            Err(err) => error(403, err),
        },
    )
}

/// fermyon:spin/redis@2.0.0 against the Redis named by `redis_url`.
fn redis(_req: Request, _params: Params) -> anyhow::Result<impl IntoResponse> {
    let address = variables::get("redis_url").unwrap_or_default();
    let conn = match redis::Connection::open(&address) {
        Ok(conn) => conn,
        Err(err) => return Ok(error(500, err)),
    };
    let outcome = (|| -> Result<serde_json::Value, redis::Error> {
        conn.set("spin-v5-key", &b"value".to_vec())?;
        let got = conn.get("spin-v5-key")?;
        let counter = conn.incr("spin-v5-counter")?;
        let members = {
            conn.sadd("spin-v5-set", &["a".to_string(), "b".to_string()])?;
            let mut m = conn.smembers("spin-v5-set")?;
            m.sort();
            m
        };
        let pong = conn.execute("ECHO", &[redis::RedisParameter::Binary(b"hi".to_vec())])?;
        Ok(serde_json::json!({
            "got": got.map(|v| String::from_utf8_lossy(&v).into_owned()),
            "counter": counter,
            "members": members,
            "echo": format!("{pong:?}"),
        }))
    })();
    Ok(match outcome {
        Ok(value) => json(200, value),
        Err(err) => error(500, err),
    })
}

fn redis_denied(_req: Request, _params: Params) -> anyhow::Result<impl IntoResponse> {
    Ok(
        match redis::Connection::open("redis://cache.example.com:6379") {
            Ok(_) => json(200, serde_json::json!({ "opened": true })),
            Err(err) => error(403, err),
        },
    )
}

/// The interfaces SelfDB answers with "not supported".
fn refused(_req: Request, _params: Params) -> anyhow::Result<impl IntoResponse> {
    let mqtt = mqtt::Connection::open("mqtt://localhost:1883", "", "", 30).err();
    let mysql = mysql::Connection::open("mysql://localhost/db").err();
    let llm = llm::infer(llm::InferencingModel::Llama2Chat, "hi").err();
    Ok(json(
        200,
        serde_json::json!({
            "mqtt": format!("{mqtt:?}"),
            "mysql": format!("{mysql:?}"),
            "llm": format!("{llm:?}"),
        }),
    ))
}
