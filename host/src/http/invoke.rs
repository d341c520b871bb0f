//! Hands an HTTP request to a component and its answer back: streams the
//! body (within the size limit) to a `wasi:http` function, or reads it
//! first for a record handler, runs the invocation, and turns a failed one
//! into an error in the style the route's clients parse.

use super::error::ApiError;
use super::AppState;
use crate::auth::Principal;
use crate::runtime::{Deployed, Invocation, InvokeError, Invoked, Report, RequestBody};
use axum::body::Body;
use axum::extract::{ConnectInfo, Request};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use http_body_util::{BodyExt, Full, Limited};
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use tokio::sync::oneshot;
use wasmtime_wasi_http::p2::bindings::http::types::ErrorCode;

/// Which error shape the route's clients expect.
#[derive(Clone, Copy)]
pub enum ErrorStyle {
    /// `{"error": {"code", "message", "details"}}`.
    SelfDb,
    /// Supabase Auth's `{"code", "error_code", "msg", "message"}`.
    Auth,
    /// PostgREST's `{"code", "message", "details", "hint"}`.
    PostgRest,
    /// SelfDB's own API (its SDKs): `{"detail"}`.
    Detail,
}

impl ErrorStyle {
    pub fn respond(self, status: StatusCode, code: &'static str, message: String) -> Response {
        match self {
            ErrorStyle::SelfDb => ApiError::new(status, code, message).into_response(),
            ErrorStyle::Auth => super::auth::auth_error(status, code, &message),
            ErrorStyle::PostgRest => super::rest::postgrest_error(status, code, &message),
            ErrorStyle::Detail => super::selfdb_api::Detail::new(status, message).into_response(),
        }
    }
}

pub fn client_ip(request: &Request) -> Option<IpAddr> {
    request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(addr)| addr.ip())
}

pub async fn invoke_component(
    app: &AppState,
    function: Arc<Deployed>,
    principal: Arc<Principal>,
    request: Request,
    style: ErrorStyle,
) -> Response {
    invoke_reporting(app, function, principal, request, style, None, None)
        .await
        .response
}

/// An invocation's response, with what the function's logs record.
pub struct Answered {
    pub response: Response,
    /// None when the request never reached the function (body too large);
    /// otherwise resolves when the invocation ends (after a streamed body).
    pub report: Option<oneshot::Receiver<Report>>,
    pub request_id: Arc<str>,
    /// The status the function answered with, or the error's.
    pub status: StatusCode,
}

/// As [`invoke_component`], keeping the invocation's report.
pub async fn invoke_reporting(
    app: &AppState,
    function: Arc<Deployed>,
    principal: Arc<Principal>,
    request: Request,
    style: ErrorStyle,
    spin_component: Option<usize>,
    external: Option<Arc<crate::db::external::ExternalDb>>,
) -> Answered {
    let client_ip = client_ip(&request);
    let limit = app.settings.max_body_bytes;
    let (parts, body) = request.into_parts();
    let declared = parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    // The unread rest of the body makes the connection unusable: say so,
    // or a client would send its next request down a closing socket.
    let too_large = || {
        let mut response = style.respond(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
            format!("the request body is larger than {limit} bytes"),
        );
        response
            .headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
        response
    };
    // The id the edge gave the request, so the function's log records and
    // the host's log lines name the same one.
    let request_id: Arc<str> = match parts.extensions.get::<super::observe::RequestId>() {
        Some(id) => id.0.clone(),
        None => super::observe::new_id(),
    };
    let refused = |response: Response| Answered {
        status: response.status(),
        response,
        report: None,
        request_id: request_id.clone(),
    };
    if declared.is_some_and(|len| len > limit as u64) {
        return refused(too_large());
    }
    // Set when a streamed body passes the limit: the guest's read fails,
    // and its answer (if it has not answered yet) becomes the host's 413.
    let overflowed = Arc::new(AtomicBool::new(false));
    let body: RequestBody = if function.streams_request() {
        let overflowed = overflowed.clone();
        Limited::new(body, limit)
            .map_err(move |e| {
                if e.is::<http_body_util::LengthLimitError>() {
                    overflowed.store(true, Ordering::Relaxed);
                    ErrorCode::HttpRequestBodySize(Some(limit as u64))
                } else {
                    ErrorCode::HttpProtocolError
                }
            })
            .boxed_unsync()
    } else {
        match axum::body::to_bytes(body, limit).await {
            Ok(bytes) => Full::new(bytes)
                .map_err(|never| match never {})
                .boxed_unsync(),
            Err(_) => return refused(too_large()),
        }
    };
    let request = http::Request::from_parts(parts, body);
    let name = function.name.clone();
    let invocation = Invocation {
        function,
        principal,
        request_id: request_id.clone(),
        client_ip,
        spin_component,
        external,
    };
    let Invoked { response, report } = app.runtime.invoke_http(invocation, request).await;
    let mut response = match response {
        _ if overflowed.load(Ordering::Relaxed) => too_large(),
        Ok(response) => {
            let (parts, body) = response.into_parts();
            Response::from_parts(parts, Body::new(body))
        }
        Err(err) => invoke_error(style, &err, &name, &request_id),
    };
    if let Ok(value) = HeaderValue::from_str(&request_id) {
        response.headers_mut().insert("x-request-id", value);
    }
    Answered {
        status: response.status(),
        response,
        report: Some(report),
        request_id,
    }
}

fn invoke_error(
    style: ErrorStyle,
    err: &InvokeError,
    function: &str,
    request_id: &str,
) -> Response {
    match style {
        ErrorStyle::SelfDb => ApiError::new(err.status(), err.code(), err.to_string())
            .with_details(serde_json::json!({"function": function, "request_id": request_id}))
            .into_response(),
        ErrorStyle::Auth => {
            super::auth::auth_error(err.status(), "unexpected_failure", &err.to_string())
        }
        ErrorStyle::PostgRest => {
            super::rest::postgrest_error(err.status(), err.code(), &err.to_string())
        }
        ErrorStyle::Detail => {
            super::selfdb_api::Detail::new(err.status(), err.to_string()).into_response()
        }
    }
}
