//! The outermost layer of the API port: gives every request its id (the
//! client's or balancer's `x-request-id` when it is a sane one, else a new
//! UUID), returned in `x-request-id` and carried by every log line written
//! while the request runs (a `request` span); counts it for `/metrics`;
//! and writes one access-log line when it is answered (at `info` with
//! `--log-format json`, at `debug` otherwise, so a developer's console
//! stays quiet).

use super::AppState;
use crate::config::LogFormat;
use crate::metrics::Api;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method};
use axum::middleware::Next;
use axum::response::Response;
use std::sync::Arc;
use std::time::Instant;
use tracing::Instrument;

/// The request's id, in its extensions for handlers that record it (a
/// function's log records).
#[derive(Debug, Clone)]
pub struct RequestId(pub Arc<str>);

pub const REQUEST_ID: &str = "x-request-id";

pub async fn observe(State(app): State<AppState>, mut request: Request, next: Next) -> Response {
    let id = request_id(request.headers());
    request.extensions_mut().insert(RequestId(id.clone()));
    let api = Api::of_path(request.uri().path());
    let method = method_name(request.method());
    // The path only: a query may carry keys (`apikey=`, realtime's token).
    let path = request.uri().path().to_owned();
    let started = Instant::now();
    let in_flight = app.metrics.started(api);
    let span = tracing::info_span!("request", request_id = %id);
    let mut response = next.run(request).instrument(span).await;
    drop(in_flight);
    let elapsed = started.elapsed();
    let status = response.status().as_u16();
    app.metrics.answered(api, method, status, elapsed);
    if let Ok(value) = HeaderValue::from_str(&id) {
        response.headers_mut().insert(REQUEST_ID, value);
    }
    access_line(
        app.settings.log_format,
        api,
        method,
        &path,
        status,
        elapsed,
        &id,
    );
    response
}

/// One line per answered request.
pub fn access_line(
    format: LogFormat,
    api: Api,
    method: &str,
    path: &str,
    status: u16,
    elapsed: std::time::Duration,
    request_id: &str,
) {
    let ms = elapsed.as_secs_f64() * 1000.0;
    let api = api.as_str();
    match format {
        LogFormat::Json => tracing::info!(
            target: "selfdb::access",
            request_id, api, method, path, status, ms,
            "request"
        ),
        LogFormat::Text => tracing::debug!(
            target: "selfdb::access",
            request_id, api, method, path, status, ms,
            "request"
        ),
    }
}

/// The client's id when it is one a log can carry safely (1 to 128
/// letters, digits, `-`, `_`, `.`, `:`), else a new UUID.
fn request_id(headers: &HeaderMap) -> Arc<str> {
    let given = headers
        .get(REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|v| {
            (1..=128).contains(&v.len())
                && v.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'))
        });
    match given {
        Some(id) => id.into(),
        None => new_id(),
    }
}

pub fn new_id() -> Arc<str> {
    let mut buffer = uuid::Uuid::encode_buffer();
    uuid::Uuid::new_v4()
        .hyphenated()
        .encode_lower(&mut buffer)
        .into()
}

pub fn method_name(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::OPTIONS => "OPTIONS",
        _ => "OTHER",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sane_client_id_is_kept_and_anything_else_replaced() {
        let mut headers = HeaderMap::new();
        headers.insert(REQUEST_ID, HeaderValue::from_static("lb-7f3a:0001"));
        assert_eq!(&*request_id(&headers), "lb-7f3a:0001");
        for bad in ["", "has space", "quote\"", &"x".repeat(129)] {
            headers.insert(REQUEST_ID, HeaderValue::from_str(bad).unwrap());
            let id = request_id(&headers);
            assert_ne!(&*id, bad);
            assert!(uuid::Uuid::parse_str(&id).is_ok());
        }
    }
}
