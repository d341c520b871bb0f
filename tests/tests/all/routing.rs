//! What the router answers before a function runs: unknown routes and
//! functions, and bodies over `--max-body-bytes` (declared or streamed),
//! each with SelfDB's error shape, and the host keeps serving.

use reqwest::StatusCode;
use selfdb_tests::{Host, RequestExt};

#[tokio::test]
async fn unknown_routes_functions_and_oversize_bodies_get_structured_errors() {
    let host = Host::serve()
        .await
        .arg("--max-body-bytes")
        .arg("1024")
        .start();

    let unknown_fn = host
        .get("/functions/v1/nope")
        .apikey(host.anon_key())
        .fetch_error(StatusCode::NOT_FOUND)
        .await;
    assert_eq!(unknown_fn, "function_not_found");

    let unknown_route = host
        .get("/no/such/route")
        .fetch_error(StatusCode::NOT_FOUND)
        .await;
    assert_eq!(unknown_route, "not_found");

    let path = "/functions/v1/hello";
    let declared = host
        .post(path)
        .apikey(host.anon_key())
        .body(vec![b'x'; 4096])
        .fetch_error(StatusCode::PAYLOAD_TOO_LARGE)
        .await;
    assert_eq!(declared, "body_too_large");

    // Chunked, so no Content-Length warns the host in advance.
    let chunks = futures::stream::iter((0..8).map(|_| Ok::<_, std::io::Error>(vec![b'y'; 512])));
    let streamed = host
        .post(path)
        .apikey(host.anon_key())
        .body(reqwest::Body::wrap_stream(chunks))
        .fetch_error(StatusCode::PAYLOAD_TOO_LARGE)
        .await;
    assert_eq!(streamed, "body_too_large");

    // Still serving.
    let ok = host.get(path).apikey(host.anon_key()).fetch_status().await;
    assert_eq!(ok, StatusCode::OK);
}
