//! The middleware that logs every API request (see `request_log` at the
//! crate root): what the path says (endpoint, table, project), what the
//! handler adds ([`Tags`]), the status, latency and sizes.

use super::AppState;
use crate::request_log::{Record, Tags};
use axum::body::HttpBody as _;
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, Method};
use axum::middleware::Next;
use axum::response::Response;
use std::time::Instant;

pub async fn log_requests(State(app): State<AppState>, request: Request, next: Next) -> Response {
    let Some(log) = app.request_log.as_ref() else {
        return next.run(request).await;
    };
    let path = request.uri().path();
    // Probes would drown the log, and the dashboard's files are not API
    // requests (its API calls are logged as any).
    if path == "/health" || path == "/metrics" || path == "/_" || path.starts_with("/_/") {
        return next.run(request).await;
    }
    let route = classify(path, request.method());
    let method = super::observe::method_name(request.method());
    let bytes_in = content_length(request.headers());
    let at = chrono::Utc::now();
    let started = Instant::now();
    let mut response = next.run(request).await;
    let latency_ms = started.elapsed().as_secs_f32() * 1000.0;
    let tags = response
        .extensions_mut()
        .remove::<Tags>()
        .unwrap_or_default();
    let status = response.status();
    // A request the project's key did not admit is not the project's: it
    // must not move that project's numbers.
    let admitted = !matches!(status.as_u16(), 401 | 403 | 404);
    let bytes_out = response
        .body()
        .size_hint()
        .exact()
        .map(|n| i64::try_from(n).unwrap_or(i64::MAX))
        .unwrap_or_else(|| content_length(response.headers()));
    log.record(Record {
        at,
        project_id: tags.project_id.or(route.project_id.filter(|_| admitted)),
        method,
        endpoint: clipped(route.endpoint),
        table: tags.table.or(route.table).map(clipped),
        operation: tags.operation.or(route.operation),
        status: status.as_u16(),
        latency_ms,
        bytes_in,
        bytes_out,
    });
    response
}

/// Names from paths are the client's: at most 128 bytes of one are kept.
fn clipped(mut text: String) -> String {
    if text.len() > 128 {
        let mut end = 128;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
    }
    text
}

fn content_length(headers: &HeaderMap) -> i64 {
    headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

#[derive(Debug, PartialEq)]
struct Route {
    endpoint: String,
    table: Option<String>,
    project_id: Option<i64>,
    operation: Option<&'static str>,
}

/// The data API's operation for a method.
fn operation(method: &Method) -> Option<&'static str> {
    match *method {
        Method::GET | Method::HEAD => Some("read"),
        Method::POST => Some("create"),
        Method::PATCH => Some("update"),
        Method::PUT => Some("upsert"),
        Method::DELETE => Some("delete"),
        _ => None,
    }
}

fn classify(path: &str, method: &Method) -> Route {
    let mut route = Route {
        endpoint: String::new(),
        table: None,
        project_id: None,
        operation: None,
    };
    let mut rest = path;
    if let Some(after) = path.strip_prefix("/projects/") {
        let (id, tail) = after.split_once('/').unwrap_or((after, ""));
        route.project_id = id.parse().ok();
        rest = if tail.is_empty() {
            ""
        } else {
            &after[id.len()..]
        };
    }
    if let Some(data) = rest.strip_prefix("/rest/v1") {
        let data = data.trim_start_matches('/');
        if let Some(function) = data.strip_prefix("rpc/") {
            route.endpoint = "/rest/v1/rpc/{function}".into();
            route.table = Some(function.to_owned());
            route.operation = Some("rpc");
        } else if data.is_empty() {
            route.endpoint = "/rest/v1/".into();
        } else {
            route.endpoint = "/rest/v1/{table}".into();
            route.table = Some(data.to_owned());
            route.operation = operation(method);
        }
        return route;
    }
    let mut segments = rest.trim_start_matches('/').split('/');
    let first = segments.next().unwrap_or_default();
    let second = segments.next().unwrap_or_default();
    route.endpoint = match (first, second) {
        // A function's name says which one; it is not a table.
        ("functions", "v1") => match segments.next() {
            Some(name) if !name.is_empty() => format!("/functions/v1/{name}"),
            _ => "/functions/v1".into(),
        },
        ("auth" | "storage" | "realtime", "v1") => match segments.next() {
            Some(part) if !part.is_empty() => format!("/{first}/v1/{part}"),
            _ => format!("/{first}/v1"),
        },
        ("api", "v1") => match segments.next() {
            Some(part) if !part.is_empty() => format!("/api/v1/{part}"),
            _ => "/api/v1".into(),
        },
        ("api", "crud") => "/api/crud".into(),
        ("query", "") => "/query".into(),
        ("users" | "tables", _) | ("storage", "buckets" | "files") | ("realtime", "socket") => {
            selfdb_endpoint(rest)
        }
        _ => "other".into(),
    };
    route
}

/// SelfDB's own API: its fixed words kept, ids and paths as `{id}` (a few
/// endpoints, not one per row or file).
fn selfdb_endpoint(path: &str) -> String {
    const WORDS: &[&str] = &[
        "users",
        "tables",
        "storage",
        "buckets",
        "files",
        "realtime",
        "socket",
        "me",
        "count",
        "token",
        "refresh",
        "logout",
        "all",
        "data",
        "columns",
        "upload",
        "download",
        "stats",
        "total-count",
    ];
    let mut endpoint = String::new();
    for segment in path.split('/').filter(|s| !s.is_empty()) {
        let part = if WORDS.contains(&segment) {
            segment
        } else {
            "{id}"
        };
        // A download's path has any number of parts: one placeholder.
        if part == "{id}" && endpoint.ends_with("/{id}") {
            continue;
        }
        endpoint.push('/');
        endpoint.push_str(part);
    }
    endpoint
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_name_their_route_table_and_project() {
        let r = classify("/rest/v1/todos", &Method::PATCH);
        assert_eq!(r.endpoint, "/rest/v1/{table}");
        assert_eq!(r.table.as_deref(), Some("todos"));
        assert_eq!(r.operation, Some("update"));
        assert_eq!(r.project_id, None);
        let r = classify("/projects/42/rest/v1/items", &Method::GET);
        assert_eq!(r.project_id, Some(42));
        assert_eq!(r.table.as_deref(), Some("items"));
        assert_eq!(r.operation, Some("read"));
        let r = classify("/projects/42/rest/v1/rpc/total", &Method::POST);
        assert_eq!(r.endpoint, "/rest/v1/rpc/{function}");
        assert_eq!(r.operation, Some("rpc"));
        assert_eq!(
            classify("/auth/v1/token", &Method::POST).endpoint,
            "/auth/v1/token"
        );
        assert_eq!(
            classify("/functions/v1/hello/x/y", &Method::GET).endpoint,
            "/functions/v1/hello"
        );
        assert_eq!(
            classify("/api/v1/projects/3", &Method::GET).endpoint,
            "/api/v1/projects"
        );
        assert_eq!(classify("/query", &Method::POST).endpoint, "/query");
        for (path, endpoint) in [
            ("/users/", "/users"),
            ("/users/token/refresh", "/users/token/refresh"),
            ("/users/3f1e0c9a-0000-4000-8000-000000000000", "/users/{id}"),
            ("/tables/abc/data/row-1", "/tables/{id}/data/{id}"),
            (
                "/storage/files/download/docs/a/b/c.txt",
                "/storage/files/download/{id}",
            ),
        ] {
            assert_eq!(classify(path, &Method::GET).endpoint, endpoint, "{path}");
        }
        assert_eq!(classify("/nope/x", &Method::GET).endpoint, "other");
    }
}
