//! spin-sdk 5.2.0's hello world, for `make bench`: it imports only WASI, so
//! `wasmtime serve` runs the same file SelfDB serves as a Spin app.

use spin_sdk::http::{IntoResponse, Request, Response};
use spin_sdk::http_component;

#[http_component]
fn hello(_req: Request) -> impl IntoResponse {
    Response::builder()
        .status(200)
        .header("content-type", "text/plain")
        .body("Hello, Fermyon")
        .build()
}
