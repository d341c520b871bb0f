//! `/auth/v1/*`: Supabase Auth's API, served by the `auth` system component.
//!
//! The host checks the API key (as Supabase's gateway does) and any bearer
//! token before the component runs; its own errors take the shapes auth-js
//! parses: the gateway's `{"message"}` for a missing or bad key, GoTrue's
//! `{"code", "error_code", "msg"}` for the rest.

use super::invoke::{invoke_component, ErrorStyle};
use super::AppState;
use crate::auth::TokenError;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

/// Name under which the auth component is registered.
pub const AUTH_COMPONENT: &str = "auth";

/// GoTrue's error body; both the 2024-01-01 shape (`code` as a string) and
/// the older one (`error_code`, `msg`) at once, so every auth-js version
/// finds its field.
pub fn auth_error(status: StatusCode, code: &str, message: &str) -> Response {
    let mut response = (
        status,
        Json(json!({"code": code, "error_code": code, "msg": message, "message": message})),
    )
        .into_response();
    response.headers_mut().insert(
        "x-supabase-api-version",
        HeaderValue::from_static("2024-01-01"),
    );
    response
}

fn gateway_error(message: &str) -> Response {
    (StatusCode::UNAUTHORIZED, Json(json!({"message": message}))).into_response()
}

/// Routes reachable without an API key: links clicked in mails and the key
/// set, as on Supabase.
fn is_open(method: &Method, path: &str) -> bool {
    (method == Method::GET && path == "/auth/v1/verify") || path == "/auth/v1/.well-known/jwks.json"
}

pub async fn route(State(app): State<AppState>, request: Request) -> Response {
    let open = is_open(request.method(), request.uri().path());
    let headers = request.headers();
    let apikey = headers.get("apikey").and_then(|v| v.to_str().ok());
    let principal = match apikey {
        None if open => std::sync::Arc::new(crate::auth::Principal::from_claims(
            crate::auth::Role::Anon,
            serde_json::Map::from_iter([("role".to_owned(), json!("anon"))]),
        )),
        None => return gateway_error("No API key found in request"),
        Some(key) => {
            let Ok(key_principal) = app.keys.verify(key) else {
                return gateway_error("Invalid API key");
            };
            match headers
                .get("authorization")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| {
                    v.strip_prefix("Bearer ")
                        .or_else(|| v.strip_prefix("bearer "))
                }) {
                None => key_principal,
                Some(token) => match app.keys.verify(token.trim()) {
                    Ok(principal) => principal,
                    Err(err) => {
                        let detail = match err {
                            TokenError::Expired => {
                                "token has invalid claims: token is expired".to_owned()
                            }
                            other => other.to_string(),
                        };
                        return auth_error(
                            StatusCode::FORBIDDEN,
                            "bad_jwt",
                            &format!("invalid JWT: unable to parse or verify signature, {detail}"),
                        );
                    }
                },
            }
        }
    };
    let Some(component) = app
        .runtime
        .registry
        .get(AUTH_COMPONENT)
        .filter(|f| f.system)
    else {
        return auth_error(
            StatusCode::SERVICE_UNAVAILABLE,
            "auth_unavailable",
            "the auth component is not installed in this host",
        );
    };
    invoke_component(&app, component, principal, request, ErrorStyle::Auth).await
}
