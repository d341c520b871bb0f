//! SelfDB's own API, beside the Supabase-compatible one: what apps written
//! with SelfDB's SDKs (PyPI `selfdb`) call, on the same users, tables,
//! objects and realtime broker (one store, two views).
//!
//! Its dialect, which the SDK reads:
//! - **`X-API-Key`** on every request: the anon or the service key (406
//!   when missing, 401 when it is neither); a signed-in user adds
//!   `Authorization: Bearer`.
//! - **Errors are `{"detail": "..."}`**, with the statuses the SDK maps to
//!   its exception classes (400, 401, 403, 404, 409, 422, 5xx).
//! - **Paths with and without the trailing slash** are the same route.
//!
//! WIP (issue 25, chunk 1): the credential and error dialect and the
//! routes' entry points; the areas behind them come chunk by chunk.

use super::principal::bearer;
use super::AppState;
use crate::auth::{Principal, Role, TokenError};
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;
use std::sync::Arc;

/// An error in SelfDB's shape: `{"detail": "..."}`.
#[derive(Debug)]
pub struct Detail {
    pub status: StatusCode,
    pub detail: String,
}

impl Detail {
    pub fn new(status: StatusCode, detail: impl Into<String>) -> Self {
        Detail {
            status,
            detail: detail.into(),
        }
    }

    pub fn not_found() -> Self {
        Detail::new(StatusCode::NOT_FOUND, "Not Found")
    }
}

impl IntoResponse for Detail {
    fn into_response(self) -> Response {
        (self.status, Json(json!({ "detail": self.detail }))).into_response()
    }
}

/// Who is calling: the key's principal, or the signed-in user's.
pub struct Caller {
    pub principal: Arc<Principal>,
}

impl Caller {
    /// The signed-in user's id, or 401 as SelfDB answers it.
    pub fn user_id(&self) -> Result<&str, Detail> {
        self.principal
            .user_id
            .as_deref()
            .ok_or_else(|| Detail::new(StatusCode::UNAUTHORIZED, "Not authenticated"))
    }
}

/// `X-API-Key` (the anon or the service key, nothing else: a user's token
/// is no API key), then the bearer token when there is one.
pub fn caller(headers: &HeaderMap, app: &AppState) -> Result<Caller, Detail> {
    let key = headers
        .get("x-api-key")
        .or_else(|| headers.get("apikey"))
        .ok_or_else(|| {
            Detail::new(
                StatusCode::NOT_ACCEPTABLE,
                "Missing required header: X-API-Key",
            )
        })?;
    let invalid = || Detail::new(StatusCode::UNAUTHORIZED, "Invalid API key");
    let key = key.to_str().map_err(|_| invalid())?;
    let key_principal = app.keys.verify(key).map_err(|_| invalid())?;
    if !matches!(key_principal.role, Role::Anon | Role::ServiceRole) {
        return Err(invalid());
    }
    let token = bearer(headers)
        .map_err(|_| Detail::new(StatusCode::UNAUTHORIZED, "Could not validate credentials"))?;
    let principal = match token {
        None => key_principal,
        Some(token) if token == key => key_principal,
        Some(token) => app.keys.verify(token).map_err(|err| {
            Detail::new(
                StatusCode::UNAUTHORIZED,
                match err {
                    TokenError::Expired => "Token has expired",
                    _ => "Could not validate credentials",
                },
            )
        })?,
    };
    Ok(Caller { principal })
}

/// The path's segments after `prefix`, without empty ones (so `/users` and
/// `/users/` are one route).
fn segments<'a>(uri: &'a Uri, prefix: &str) -> Vec<&'a str> {
    uri.path()
        .strip_prefix(prefix)
        .unwrap_or("")
        .split('/')
        .filter(|s| !s.is_empty())
        .collect()
}

/// `/users...`.
pub async fn users(
    State(app): State<AppState>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let caller = match caller(&headers, &app) {
        Ok(caller) => caller,
        Err(err) => return err.into_response(),
    };
    match (method, segments(&uri, "/users").as_slice()) {
        (Method::GET, ["me"]) => match caller.user_id() {
            Err(err) => err.into_response(),
            // The users area is the next chunk.
            Ok(_) => Detail::not_found().into_response(),
        },
        _ => Detail::not_found().into_response(),
    }
}

/// `/tables...`, `/storage/buckets...`, `/storage/files...`: areas of the
/// next chunks; the dialect already applies.
pub async fn not_yet(State(app): State<AppState>, headers: HeaderMap) -> Response {
    match caller(&headers, &app) {
        Ok(_) => Detail::not_found().into_response(),
        Err(err) => err.into_response(),
    }
}
