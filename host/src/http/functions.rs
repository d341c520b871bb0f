//! `/functions/v1/{name}` (and paths below it): user HTTP functions, as
//! supabase-js's `functions.invoke` calls them. Each invocation's log lines
//! and one record of it go to the function's logs.

use super::error::ApiError;
use super::invoke::{invoke_reporting, ErrorStyle};
use super::principal::authenticate;
use super::AppState;
use crate::auth::{Principal, Role};
use crate::runtime::Deployed;
use axum::extract::{Path, Request, State};
use axum::http::StatusCode;
use axum::response::Response;
use std::sync::Arc;
use std::time::Duration;

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
    let principal = match authenticate(request.headers(), &app.keys) {
        Ok(principal) => principal,
        // A function deployed with verify_jwt off is public: without valid
        // credentials it runs as anon.
        Err(_) if !function.verify_jwt => Arc::new(Principal::from_claims(
            Role::Anon,
            serde_json::Map::from_iter([("role".to_owned(), "anon".into())]),
        )),
        Err(err) => return Err(err),
    };
    let slot = match &function.slots {
        Some(slots) => Some(wait_for_slot(&function, slots).await?),
        None => None,
    };
    let answered = invoke_reporting(
        &app,
        function.clone(),
        principal,
        request,
        ErrorStyle::SelfDb,
    )
    .await;
    // The invocation may still be streaming its body: its place under the
    // concurrency cap and its log records wait for its end.
    if let Some(report) = answered.report {
        let request_id = answered.request_id.clone();
        let status = answered.status;
        tokio::spawn(async move {
            if let Ok(report) = report.await {
                record(&app, &function, &request_id, status, report);
            }
            drop(slot);
        });
    }
    Ok(answered.response)
}

/// A place under the function's concurrency cap, waiting at most its time
/// limit for one.
async fn wait_for_slot(
    function: &Deployed,
    slots: &Arc<tokio::sync::Semaphore>,
) -> Result<tokio::sync::OwnedSemaphorePermit, ApiError> {
    let wait = Duration::from_millis(function.limits.time_ms);
    match tokio::time::timeout(wait, slots.clone().acquire_owned()).await {
        Ok(Ok(permit)) => Ok(permit),
        _ => Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "function_busy",
            format!(
                "{} is running as many invocations as its concurrency cap allows; try again",
                function.name
            ),
        )),
    }
}

fn record(
    app: &AppState,
    function: &Deployed,
    request_id: &Arc<str>,
    status: StatusCode,
    report: crate::runtime::Report,
) {
    app.functions.logs.report(
        function,
        request_id,
        "invocation",
        None,
        status.as_u16(),
        report,
    );
}
