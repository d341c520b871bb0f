//! `GET /functions/v1/greet`: "Hello, world!" and nothing else. It imports
//! only WASI, so `wasmtime serve` runs the same file, which is what
//! `make bench` compares the host's per-request cost against.

use selfdb_sdk::{Handler, Request, Response};

struct Greet;

impl Handler for Greet {
    fn handle(_request: Request) -> Response {
        Response::new(200, "text/plain; charset=utf-8", b"Hello, world!".to_vec())
    }
}

selfdb_sdk::http_component!(Greet);
