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
        "storage": {"backend": app.storage.store.backend()},
    });
    let status = if reachable {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(body))
}

/// Prometheus (OpenMetrics text): see `crate::metrics`.
pub async fn metrics(State(app): State<AppState>) -> axum::response::Response {
    let runtime = &app.runtime.metrics;
    let events = &app.functions.events.metrics;
    let load = |c: &std::sync::atomic::AtomicU64| c.load(Ordering::Relaxed);
    let pool = |name: &'static str, pool: &deadpool_postgres::Pool| {
        let status = pool.status();
        (name, status.size as u64, status.available as u64)
    };
    let snapshot = crate::metrics::Snapshot {
        invocations: load(&runtime.invocations),
        invocation_failures: load(&runtime.failures),
        instantiations: load(&runtime.instantiations),
        instantiate_seconds: load(&runtime.instantiate_nanos) as f64 / 1e9,
        active_invocations: load(&runtime.active),
        events_delivered: load(&events.delivered),
        events_failed: load(&events.failed),
        events_dead: load(&events.dead),
        realtime_connections: app.realtime.connection_count() as u64,
        pools: vec![pool("owner", app.db.owner()), pool("api", app.db.api())],
    };
    match app.metrics.render(snapshot) {
        Ok(text) => (
            [(
                axum::http::header::CONTENT_TYPE,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            )],
            text,
        )
            .into_response(),
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
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
