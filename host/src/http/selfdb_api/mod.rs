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

use super::invoke::{invoke_component, ErrorStyle};
use super::principal::bearer;
use super::AppState;
use crate::auth::{Principal, Role, TokenError};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode};
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

/// `/users...`: served by the auth component (its `selfdb_users` module),
/// so tokens, sessions and limits stay in one place.
pub async fn users(State(app): State<AppState>, request: Request) -> Response {
    let caller = match caller(request.headers(), &app) {
        Ok(caller) => caller,
        Err(err) => return err.into_response(),
    };
    let Some(component) = app
        .runtime
        .registry
        .get(super::auth::AUTH_COMPONENT)
        .filter(|f| f.system)
    else {
        return Detail::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "the auth component is not installed in this host",
        )
        .into_response();
    };
    invoke_component(
        &app,
        component,
        caller.principal,
        request,
        ErrorStyle::Detail,
    )
    .await
}

/// `/tables...`, `/storage/buckets...`, `/storage/files...`: areas of the
/// next chunks; the dialect already applies.
pub async fn not_yet(State(app): State<AppState>, headers: HeaderMap) -> Response {
    match caller(&headers, &app) {
        Ok(_) => Detail::not_found().into_response(),
        Err(err) => err.into_response(),
    }
}
