//! `/functions/v1/{name}`: user HTTP functions.

use super::error::ApiError;
use super::invoke::{invoke_component, ErrorStyle};
use super::principal::authenticate;
use super::AppState;
use axum::extract::{Path, Request, State};
use axum::http::StatusCode;
use axum::response::Response;

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
    let function = app
        .runtime
        .registry
        .get(&name)
        .filter(|f| !f.system)
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::NOT_FOUND,
                "function_not_found",
                format!("no function named {name:?} is deployed"),
            )
        })?;
    Ok(invoke_component(&app, function, principal, request, ErrorStyle::SelfDb).await)
}
