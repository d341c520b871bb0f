//! `/health` (version, database, runtime and storage state, for load
//! balancers and people) and `/metrics` (Prometheus text: invocations,
//! failures, instantiation time).

use super::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::Json;
use serde_json::json;
use std::sync::atomic::Ordering;

pub async fn health(State(app): State<AppState>) -> impl IntoResponse {
    let database = match app.db.ping().await {
        Ok(latency) => json!({"reachable": true, "latency_ms": latency.as_secs_f64() * 1000.0}),
        Err(err) => json!({"reachable": false, "error": err.to_string()}),
    };
    let reachable = database["reachable"] == true;
    let metrics = &app.runtime.metrics;
    let body = json!({
        "status": if reachable { "ok" } else { "degraded" },
        "version": env!("CARGO_PKG_VERSION"),
        "uptime_seconds": app.started.elapsed().as_secs(),
        "database": database,
        "runtime": {
            "status": "ok",
            "engine": "wasmtime",
            "functions": names(&app, false),
            "system_components": names(&app, true),
            // Called through `selfdb:platform/handler` rather than
            // `wasi:http`: a system component that lost that export still
            // serves, only slower, so this is where it shows.
            "record_handlers": record_handlers(&app),
            "active_invocations": metrics.active.load(Ordering::Relaxed),
            "max_instances": app.settings.max_instances,
        },
        "realtime": app.realtime.health(),
    });
    let status = if reachable {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(body))
}

/// Prometheus text format.
pub async fn metrics(State(app): State<AppState>) -> impl IntoResponse {
    let m = &app.runtime.metrics;
    let load = |c: &std::sync::atomic::AtomicU64| c.load(Ordering::Relaxed);
    let body = format!(
        "# TYPE selfdb_invocations_total counter\nselfdb_invocations_total {}\n\
         # TYPE selfdb_invocation_failures_total counter\nselfdb_invocation_failures_total {}\n\
         # TYPE selfdb_instantiations_total counter\nselfdb_instantiations_total {}\n\
         # TYPE selfdb_instantiate_seconds_total counter\nselfdb_instantiate_seconds_total {:.9}\n\
         # TYPE selfdb_active_invocations gauge\nselfdb_active_invocations {}\n",
        load(&m.invocations),
        load(&m.failures),
        load(&m.instantiations),
        load(&m.instantiate_nanos) as f64 / 1e9,
        load(&m.active),
    );
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4",
        )],
        body,
    )
}

fn record_handlers(app: &AppState) -> Vec<String> {
    names_where(app, |f| {
        matches!(f.entry, crate::runtime::registry::Entry::Record(_))
    })
}

fn names(app: &AppState, system: bool) -> Vec<String> {
    names_where(app, |f| f.system == system)
}

fn names_where(
    app: &AppState,
    keep: impl Fn(&crate::runtime::registry::Deployed) -> bool,
) -> Vec<String> {
    app.runtime
        .registry
        .names()
        .into_iter()
        .filter(|name| app.runtime.registry.get(name).is_some_and(|f| keep(&f)))
        .collect()
}
