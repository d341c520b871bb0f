//! `/rest/v1/*`: PostgREST's data API, served by the `crud` system component.
//!
//! As in front of Supabase's PostgREST: the API key is required (the
//! gateway's `{"message"}` when it is missing or wrong), a bearer token that
//! fails verification is PostgREST's 401 `PGRST301`, and every other error
//! comes from the component in PostgREST's shape.

use super::invoke::{invoke_component, ErrorStyle};
use super::AppState;
use crate::auth::TokenError;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

/// Name under which the CRUD component is registered.
pub const CRUD_COMPONENT: &str = "crud";

pub fn postgrest_error(status: StatusCode, code: &str, message: &str) -> Response {
    (
        status,
        Json(json!({"code": code, "message": message, "details": null, "hint": null})),
    )
        .into_response()
}

fn gateway_error(message: &str) -> Response {
    (StatusCode::UNAUTHORIZED, Json(json!({"message": message}))).into_response()
}

pub async fn route(State(app): State<AppState>, request: Request) -> Response {
    let headers = request.headers();
    let Some(apikey) = headers.get("apikey").and_then(|v| v.to_str().ok()) else {
        return gateway_error("No API key found in request");
    };
    let Ok(key_principal) = app.keys.verify(apikey) else {
        return gateway_error("Invalid API key");
    };
    let bearer = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        });
    let principal = match bearer {
        None => key_principal,
        Some(token) => match app.keys.verify(token.trim()) {
            Ok(principal) => principal,
            Err(TokenError::Expired) => {
                return postgrest_error(StatusCode::UNAUTHORIZED, "PGRST301", "JWT expired")
            }
            Err(err) => {
                return postgrest_error(StatusCode::UNAUTHORIZED, "PGRST301", &err.to_string())
            }
        },
    };
    let Some(component) = app
        .runtime
        .registry
        .get(CRUD_COMPONENT)
        .filter(|f| f.system)
    else {
        return postgrest_error(
            StatusCode::SERVICE_UNAVAILABLE,
            "PGRST002",
            "the crud component is not installed in this host",
        );
    };
    invoke_component(&app, component, principal, request, ErrorStyle::PostgRest).await
}
