//! `/functions/v1/{name}`: user HTTP functions.

use super::error::ApiError;
use super::principal::authenticate;
use super::AppState;
use crate::runtime::Invocation;
use axum::body::Body;
use axum::extract::{Path, Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use http_body_util::Full;
use std::sync::Arc;

pub async fn invoke(
    State(app): State<AppState>,
    Path(name): Path<String>,
    request: Request,
) -> Result<Response, ApiError> {
    run(app, name, request).await
}

pub async fn invoke_with_path(
    State(app): State<AppState>,
    Path((name, _rest)): Path<(String, String)>,
    request: Request,
) -> Result<Response, ApiError> {
    run(app, name, request).await
}

async fn run(app: AppState, name: String, request: Request) -> Result<Response, ApiError> {
    let principal = authenticate(request.headers(), &app.keys)?;
    let function = app.runtime.registry.get(&name).ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "function_not_found",
            format!("no function named {name:?} is deployed"),
        )
    })?;
    let limit = app.settings.max_body_bytes;
    let (parts, body) = request.into_parts();
    let declared = parts
        .headers
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    // The unread rest of the body makes the connection unusable: say so,
    // or a client would send its next request down a closing socket.
    let too_large = || {
        let mut response = ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
            format!("the request body is larger than {limit} bytes"),
        )
        .into_response();
        response.headers_mut().insert(
            axum::http::header::CONNECTION,
            axum::http::HeaderValue::from_static("close"),
        );
        response
    };
    if declared.is_some_and(|len| len > limit as u64) {
        return Ok(too_large());
    }
    let bytes = match axum::body::to_bytes(body, limit).await {
        Ok(bytes) => bytes,
        Err(_) => return Ok(too_large()),
    };
    let request_id = uuid::Uuid::new_v4().to_string();
    let request = http::Request::from_parts(parts, Full::new(bytes));
    let invocation = Invocation {
        function,
        principal: Arc::new(principal),
        request_id: request_id.clone(),
        db: app.db.clone(),
        keys: app.keys.clone(),
    };
    match app.runtime.invoke_http(invocation, request).await {
        Ok(response) => {
            let (mut parts, body) = response.into_parts();
            if let Ok(value) = request_id.parse() {
                parts.headers.insert("x-request-id", value);
            }
            Ok(Response::from_parts(parts, Body::new(body)))
        }
        Err(err) => {
            let mut response = ApiError::new(err.status(), err.code(), err.to_string())
                .with_details(serde_json::json!({"function": name, "request_id": request_id}))
                .into_response();
            if let Ok(value) = request_id.parse() {
                response.headers_mut().insert("x-request-id", value);
            }
            Ok(response)
        }
    }
}
