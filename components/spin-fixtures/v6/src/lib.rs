//! A spin-sdk 6.0.0 hello: built for a WASI 0.3 release candidate, which
//! SelfDB refuses at deploy with a message naming the SDK.

use spin_sdk::http::{IntoResponse, Request, StatusCode};
use spin_sdk::http_service;

#[http_service]
async fn hello(_req: Request) -> impl IntoResponse {
    (StatusCode::OK, "hello from spin-sdk 6".to_string())
}
