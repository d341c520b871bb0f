//! `/functions/v1/{name}` (and paths below it): user HTTP functions, as
//! supabase-js's `functions.invoke` calls them. Each invocation's log lines
//! and one record of it go to the function's logs.

use super::error::ApiError;
use super::invoke::{invoke_reporting, ErrorStyle};
use super::principal::authenticate;
use super::AppState;
use crate::auth::{Principal, Role};
use crate::runtime::registry::Entry;
use crate::runtime::spin::SpinApp;
use crate::runtime::Deployed;
use crate::spin::manifest::RouteTarget;
use crate::spin::routes::Target;
use axum::extract::{ConnectInfo, Path, Request, State};
use axum::http::{header, HeaderName, HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use std::net::SocketAddr;
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
    // A Spin app routes the request to one of its components (or answers
    // it from the manifest).
    let (request, spin_component) = match &function.entry {
        Entry::Spin(spin) => match route_spin(spin, &name, request) {
            SpinRouted::Component(request, index) => (request, Some(index)),
            SpinRouted::Answer(response) => return Ok(response),
        },
        _ => (request, None),
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
        spin_component,
        None,
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

enum SpinRouted {
    /// The request as the component sees it, and the component's index.
    Component(Request, usize),
    /// A static response, or no route.
    Answer(Response),
}

/// Routes a request to a Spin app as `spin up` would serve it at `/`: the
/// `/functions/v1/{app}` prefix is taken off the path the guest sees, and
/// Spin's `spin-*` headers describe the match (any the client sent are
/// dropped first, so they cannot be forged).
fn route_spin(app: &SpinApp, name: &str, request: Request) -> SpinRouted {
    let (mut parts, body) = request.into_parts();
    // What follows `/functions/v1/{app}`, cut by segments: the app's name
    // may be percent-encoded in the path.
    let full_path = parts.uri.path();
    let path = match full_path.splitn(5, '/').nth(4) {
        Some(rest) => format!("/{rest}"),
        None => "/".to_owned(),
    };
    let Some(matched) = app.router.route(&path) else {
        return SpinRouted::Answer(
            ApiError::new(
                StatusCode::NOT_FOUND,
                "route_not_found",
                format!("no route of {name:?} matches {path:?}"),
            )
            .into_response(),
        );
    };
    let index = match matched.target {
        Target::Component(index) => index,
        Target::Static(index) => return SpinRouted::Answer(static_response(app, index)),
    };
    let path_and_query = match parts.uri.query() {
        Some(query) => format!("{path}?{query}"),
        None => path,
    };
    let host = parts
        .headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("localhost")
        .to_owned();
    let full_url = format!(
        "{}://{host}{}",
        parts.uri.scheme_str().unwrap_or("http"),
        parts
            .uri
            .path_and_query()
            .map(|p| p.as_str())
            .unwrap_or(full_path)
    );
    let client_addr = parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(addr)| addr.to_string())
        .unwrap_or_default();
    let forged: Vec<HeaderName> = parts
        .headers
        .keys()
        .filter(|n| n.as_str().starts_with("spin-"))
        .cloned()
        .collect();
    for name in forged {
        parts.headers.remove(name);
    }
    for (name, value) in matched.headers(&full_url, &client_addr) {
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(&value),
        ) {
            parts.headers.append(name, value);
        }
    }
    if let Ok(uri) = path_and_query.parse::<Uri>() {
        parts.uri = uri;
    }
    SpinRouted::Component(Request::from_parts(parts, body), index)
}

/// A route's `static_response` from the manifest.
fn static_response(app: &SpinApp, index: usize) -> Response {
    let Some(RouteTarget::Static(spec)) = app.manifest.routes.get(index).map(|r| &r.target) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let mut response = Response::new(axum::body::Body::from(
        spec.body.clone().unwrap_or_default(),
    ));
    *response.status_mut() = spec
        .status_code
        .and_then(|s| StatusCode::from_u16(s).ok())
        .unwrap_or(StatusCode::OK);
    for (name, value) in &spec.headers {
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(value),
        ) {
            response.headers_mut().append(name, value);
        }
    }
    response
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
