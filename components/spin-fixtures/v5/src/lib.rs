//! A Spin app built with spin-sdk 5.2.0 (WASI 0.2), for SelfDB's tests:
//! it exercises what a Spin app uses (router, key-value, variables,
//! outbound HTTP) and answers in JSON so the tests can check each result.

use spin_sdk::http::{IntoResponse, Method, Params, Request, Response, Router};
use spin_sdk::{http_component, key_value, variables};

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
    Ok(Response::new(200, format!("hello {}", params.get("name").unwrap_or("?"))))
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
    Ok(match variables::get(params.get("name").unwrap_or_default()) {
        Ok(value) => json(200, serde_json::json!({ "value": value })),
        Err(err) => json(404, serde_json::json!({ "error": format!("{err:?}") })),
    })
}

fn env(_req: Request, params: Params) -> anyhow::Result<impl IntoResponse> {
    let value = std::env::var(params.get("name").unwrap_or_default()).ok();
    Ok(json(200, serde_json::json!({ "value": value })))
}

/// A file from the component's `files` mounts.
fn file(req: Request, _params: Params) -> anyhow::Result<impl IntoResponse> {
    let path = req.header("spin-path-info").and_then(|v| v.as_str()).unwrap_or("/").to_owned();
    Ok(match std::fs::read_to_string(&path) {
        Ok(text) => Response::new(200, text),
        Err(err) => json(404, serde_json::json!({ "error": err.to_string(), "path": path })),
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
