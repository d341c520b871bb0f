//! A Spin app built with spin-sdk 7.0.0 (WASI 0.3), for SelfDB's tests:
//! the same surface as the 5.x fixture through the async interfaces.

use spin_sdk::http::body::IncomingBodyExt;
use spin_sdk::http::{IntoResponse, Method, Request, StatusCode};
use spin_sdk::{http_service, key_value, variables};

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
        ["env", name] => json(200, serde_json::json!({ "value": std::env::var(name).ok() })),
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
                Ok(response) => json(200, serde_json::json!({ "status": response.status().as_u16() })),
                Err(err) => json(502, serde_json::json!({ "error": format!("{err:?}") })),
            }
        }
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
            Ok(Some(value)) => return (StatusCode::OK, String::from_utf8_lossy(&value).into_owned()),
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
