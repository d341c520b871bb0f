//! A Spin app built with spin-sdk 7.0.0 (WASI 0.3), for SelfDB's tests:
//! the same surface as the 5.x fixture through the async interfaces.

use spin_sdk::http::body::IncomingBodyExt;
use spin_sdk::http::{IntoResponse, Method, Request, StatusCode};
use spin_sdk::{http_service, key_value, pg, redis, sqlite, variables};

fn json(status: u16, value: serde_json::Value) -> (StatusCode, String) {
    (
        StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        value.to_string(),
    )
}

#[http_service]
async fn handle(req: Request) -> impl IntoResponse {
    let path = req.uri().path().to_owned();
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    match segments.as_slice() {
        ["hello", name] => (StatusCode::OK, format!("hello {name}")),
        ["kv", key] => kv(req, key).await,
        ["kv-keys"] => {
            let Ok(store) = key_value::Store::open_default().await else {
                return json(500, serde_json::json!("cannot open"));
            };
            match store.get_keys().await.collect().await {
                Ok(keys) => json(200, serde_json::json!(keys)),
                Err(err) => json(500, serde_json::json!({ "error": format!("{err:?}") })),
            }
        }
        ["kv-open", label] => match key_value::Store::open(label).await {
            Ok(_) => json(200, serde_json::json!({ "opened": label })),
            Err(err) => json(403, serde_json::json!({ "error": format!("{err:?}") })),
        },
        ["vars", name] => match variables::get(name).await {
            Ok(value) => json(200, serde_json::json!({ "value": value })),
            Err(err) => json(404, serde_json::json!({ "error": format!("{err:?}") })),
        },
        ["env", name] => json(
            200,
            serde_json::json!({ "value": std::env::var(name).ok() }),
        ),
        ["outbound"] => {
            let url = req
                .uri()
                .query()
                .unwrap_or_default()
                .split('&')
                .find_map(|p| p.strip_prefix("url="))
                .unwrap_or_default()
                .replace("%3A", ":")
                .replace("%2F", "/");
            match spin_sdk::http::get(url).await {
                Ok(response) => json(
                    200,
                    serde_json::json!({ "status": response.status().as_u16() }),
                ),
                Err(err) => json(502, serde_json::json!({ "error": format!("{err:?}") })),
            }
        }
        ["sqlite"] => sqlite().await,
        ["pg", "list"] => pg_list().await,
        ["pg", "add"] => {
            let body = req.into_body().bytes().await.unwrap_or_default();
            pg_add(String::from_utf8_lossy(&body).into_owned()).await
        }
        ["redis"] => redis().await,
        ["redis-len", key] => redis_len(key).await,
        _ => headers(&req),
    }
}

/// The request as the component saw it: path and every spin-* header.
fn headers(req: &Request) -> (StatusCode, String) {
    let mut spin = serde_json::Map::new();
    for (name, value) in req.headers() {
        if name.as_str().starts_with("spin-") {
            spin.insert(name.to_string(), value.to_str().unwrap_or_default().into());
        }
    }
    json(
        200,
        serde_json::json!({
            "sdk": 7,
            "path": req.uri().path(),
            "query": req.uri().query().unwrap_or_default(),
            "headers": spin,
        }),
    )
}

async fn kv(req: Request, key: &str) -> (StatusCode, String) {
    let store = match key_value::Store::open_default().await {
        Ok(store) => store,
        Err(err) => return json(500, serde_json::json!({ "error": format!("{err:?}") })),
    };
    let method = req.method().clone();
    let outcome = match method {
        Method::GET => match store.get(key).await {
            Ok(Some(value)) => {
                return (StatusCode::OK, String::from_utf8_lossy(&value).into_owned());
            }
            Ok(None) => return (StatusCode::NOT_FOUND, "no such key".into()),
            Err(err) => Err(err),
        },
        Method::PUT | Method::POST => {
            let body = req.into_body().bytes().await.unwrap_or_default();
            store.set(key, &body).await.map(|()| "set")
        }
        Method::DELETE => store.delete(key).await.map(|()| "deleted"),
        Method::HEAD => match store.exists(key).await {
            Ok(true) => return (StatusCode::OK, String::new()),
            Ok(false) => return (StatusCode::NOT_FOUND, String::new()),
            Err(err) => Err(err),
        },
        _ => return (StatusCode::METHOD_NOT_ALLOWED, String::new()),
    };
    match outcome {
        Ok(what) => (StatusCode::OK, what.to_owned()),
        Err(err) => json(500, serde_json::json!({ "error": format!("{err:?}") })),
    }
}

fn error(status: u16, err: impl std::fmt::Debug) -> (StatusCode, String) {
    json(status, serde_json::json!({ "error": format!("{err:?}") }))
}

/// spin:sqlite/sqlite@3.1.0's async functions (rows as a stream).
async fn sqlite() -> (StatusCode, String) {
    let db = match sqlite::Connection::open_default().await {
        Ok(db) => db,
        Err(err) => return error(500, err),
    };
    for statement in [
        "create table if not exists visits (n integer, via text)",
        "insert into visits (n, via) values (5, 'v7')",
    ] {
        match db.execute(statement, []).await {
            Ok(result) => {
                if let Err(err) = result.collect().await {
                    return error(500, err);
                }
            }
            Err(err) => return error(500, err),
        }
    }
    let rowid = db.last_insert_rowid().await;
    let rows = match db
        .execute("select count(*) as visits, sum(n) as total from visits", [])
        .await
    {
        Ok(result) => result.collect().await,
        Err(err) => return error(500, err),
    };
    match rows {
        Ok(rows) => {
            let row = rows.first();
            json(
                200,
                serde_json::json!({
                    "visits": row.and_then(|r| r.get::<i64>(0)),
                    "total": row.and_then(|r| r.get::<i64>(1)),
                    "rowid": rowid,
                }),
            )
        }
        Err(err) => error(500, err),
    }
}

async fn db() -> Result<pg::Connection, (StatusCode, String)> {
    let address = variables::get("db_url").await.unwrap_or_default();
    pg::Connection::open(address)
        .await
        .map_err(|err| error(500, err))
}

/// spin:postgres/postgres@4.2.0's async query (rows as a stream), as the caller.
async fn pg_list() -> (StatusCode, String) {
    let db = match db().await {
        Ok(db) => db,
        Err(answer) => return answer,
    };
    let rows = match db
        .query("select body from public.notes order by id", [])
        .await
    {
        Ok(result) => result.collect().await,
        Err(err) => return error(403, err),
    };
    match rows {
        Ok(rows) => {
            let bodies: Vec<Option<String>> =
                rows.iter().map(|r| r.get::<String>("body")).collect();
            json(200, serde_json::json!(bodies))
        }
        Err(err) => error(403, err),
    }
}

async fn pg_add(body: String) -> (StatusCode, String) {
    let db = match db().await {
        Ok(db) => db,
        Err(answer) => return answer,
    };
    match db
        .execute("insert into public.notes (body) values ($1)", [body.into()])
        .await
    {
        Ok(n) => json(200, serde_json::json!({ "inserted": n })),
        Err(err) => error(403, err),
    }
}

/// The length of a Redis value the component reads whole.
async fn redis_len(key: &str) -> (StatusCode, String) {
    let address = variables::get("redis_url").await.unwrap_or_default();
    let outcome = async {
        let conn = redis::Connection::open(address).await?;
        conn.get(key).await
    }
    .await;
    match outcome {
        Ok(value) => json(200, serde_json::json!({ "len": value.map(|v| v.len()) })),
        Err(err) => error(500, err),
    }
}

/// spin:redis/redis@3.0.0.
async fn redis() -> (StatusCode, String) {
    let address = variables::get("redis_url").await.unwrap_or_default();
    let conn = match redis::Connection::open(address).await {
        Ok(conn) => conn,
        Err(err) => return error(500, err),
    };
    let outcome = async {
        conn.set("spin-v7-key", b"value").await?;
        let got = conn.get("spin-v7-key").await?;
        let counter = conn.incr("spin-v7-counter").await?;
        Ok::<_, redis::Error>(serde_json::json!({
            "got": got.map(|v| String::from_utf8_lossy(&v).into_owned()),
            "counter": counter,
        }))
    }
    .await;
    match outcome {
        Ok(value) => json(200, value),
        Err(err) => error(500, err),
    }
}
