//! The HTTP surface: routing, credentials, errors, and the handlers the
//! host serves itself.

mod admin;
pub mod auth;
mod auth_sessions;
mod bench;
mod cors;
mod dashboard;
pub mod error;
mod events;
mod function_api;
mod functions;
mod health;
pub mod instance;
mod invoke;
pub mod observe;
pub mod principal;
mod project_api;
mod projects;
pub(crate) mod realtime;
mod request_log;
pub mod rest;
mod s3_keys;
mod selfdb_api;
mod sql;
pub mod storage;
mod tables;

use crate::auth::JwtKeys;
use crate::config::Settings;
use crate::db::Database;
use crate::runtime::Runtime;
use axum::extract::DefaultBodyLimit;
use axum::routing::{any, delete, get, patch, post, put};
use axum::Router;
use std::sync::Arc;
use std::time::Instant;

/// Shared by every handler.
pub struct App {
    pub settings: Arc<Settings>,
    pub db: Database,
    pub runtime: Arc<Runtime>,
    pub keys: JwtKeys,
    pub started: Instant,
    pub storage: Arc<crate::storage::Storage>,
    pub functions: Arc<crate::functions::Functions>,
    pub realtime: Arc<crate::realtime::Realtime>,
    pub projects: Arc<crate::projects::Projects>,
    /// None when request logging is off (`--request-log false`).
    pub request_log: Option<crate::request_log::RequestLog>,
    pub metrics: Arc<crate::metrics::Metrics>,
    pub cors: crate::cors::CorsPolicy,
    /// Failed admin sign-ins (shared with auth's limits: Redis when set).
    pub limiter: Arc<crate::auth::rate_limit::RateLimiter>,
    /// The URL and keys announced at start, for the admin API.
    pub public: instance::Public,
    /// The schema cache the data API plans with; SelfDB's `/tables`
    /// reloads it after its DDL, before answering.
    pub schema: Arc<crate::db::schema::SharedSchema>,
}

pub type AppState = Arc<App>;

pub fn router(app: AppState) -> Router {
    let mut router = Router::new()
        .route("/health", get(health::health))
        .route("/_", get(dashboard::root))
        .route("/_/", get(dashboard::serve))
        .route("/_/{*path}", get(dashboard::serve))
        .route("/metrics", get(health::metrics))
        .route("/functions/v1/{name}", any(functions::invoke))
        // `{*rest}` needs at least one character: an app's root, `/`, is
        // its own route (what `spin up` serves at `/`).
        .route("/functions/v1/{name}/", any(functions::invoke))
        .route(
            "/functions/v1/{name}/{*rest}",
            any(functions::invoke_with_path),
        )
        .route("/rest/v1", any(rest::route))
        .route("/rest/v1/", any(rest::route))
        .route("/rest/v1/{*path}", any(rest::route))
        .route("/auth/v1", any(auth::route))
        .route("/auth/v1/{*path}", any(auth::route))
        .route("/storage/v1/{*path}", any(storage::route))
        .route("/realtime/v1/websocket", get(realtime::websocket))
        .route("/realtime/v1/api/broadcast", post(realtime::broadcast))
        .route(
            "/realtime/v1/api/broadcast/{topic}/events/{event}",
            post(realtime::broadcast_one),
        )
        .route("/api/v1/admin/token", post(admin::token))
        .route("/api/v1/admin/logout", post(admin::logout))
        .route("/api/v1/admin/me", get(admin::me))
        .route("/api/v1/instance", get(instance::describe))
        .route("/api/v1/instance/secrets", post(instance::reveal))
        .route("/api/v1/admins", get(admin::list).post(admin::create))
        .route("/api/v1/admins/{id}", delete(admin::remove))
        .route("/api/v1/admins/{id}/password", put(admin::set_password))
        .route("/api/v1/auth/sessions", get(auth_sessions::list))
        .route("/api/v1/auth/sessions/{id}", delete(auth_sessions::end))
        .route(
            "/api/v1/auth/users/{id}/sessions",
            delete(auth_sessions::end_all),
        )
        .route("/api/v1/sql", post(sql::run))
        .route("/api/v1/sql/snippets", get(sql::snippets).post(sql::save))
        .route(
            "/api/v1/sql/snippets/{id}",
            put(sql::update).delete(sql::remove),
        )
        .route("/api/v1/schemas", get(tables::schemas))
        .route("/api/v1/tables", get(tables::list).post(tables::create))
        .route(
            "/api/v1/tables/{schema}/{table}",
            get(tables::describe)
                .patch(tables::update)
                .delete(tables::remove),
        )
        .route(
            "/api/v1/tables/{schema}/{table}/columns",
            post(tables::add_column),
        )
        .route(
            "/api/v1/tables/{schema}/{table}/columns/{column}",
            patch(tables::update_column).delete(tables::remove_column),
        )
        .route(
            "/api/v1/tables/{schema}/{table}/policies",
            post(tables::add_policy),
        )
        .route(
            "/api/v1/tables/{schema}/{table}/policies/{name}",
            delete(tables::remove_policy),
        )
        .route("/api/v1/s3/keys", get(s3_keys::list).post(s3_keys::create))
        .route("/api/v1/s3/keys/{id}", delete(s3_keys::revoke))
        .route("/api/v1/functions", get(function_api::list))
        .route(
            "/api/v1/functions/{name}",
            put(function_api::deploy)
                .layer(DefaultBodyLimit::max(function_api::MAX_UPLOAD_BYTES))
                .get(function_api::details)
                .patch(function_api::configure)
                .delete(function_api::remove),
        )
        .route(
            "/api/v1/functions/{name}/versions",
            get(function_api::versions),
        )
        .route(
            "/api/v1/functions/{name}/versions/{version}/source",
            get(function_api::source),
        )
        .route(
            "/api/v1/functions/{name}/rollback",
            post(function_api::rollback),
        )
        .route(
            "/api/v1/functions/{name}/secrets",
            get(function_api::secrets).put(function_api::set_secrets),
        )
        .route(
            "/api/v1/functions/{name}/secrets/{key}",
            delete(function_api::unset_secret),
        )
        .route("/api/v1/functions/{name}/logs", get(function_api::logs))
        .route(
            "/api/v1/functions/{name}/triggers",
            get(function_api::triggers).put(function_api::set_triggers),
        )
        .route(
            "/api/v1/functions/{name}/dead-letters",
            get(function_api::dead_letters),
        )
        .route(
            "/api/v1/functions/{name}/dead-letters/{id}",
            delete(function_api::discard_dead_letter),
        )
        .route(
            "/api/v1/functions/{name}/dead-letters/{id}/replay",
            post(function_api::replay_dead_letter),
        )
        .route("/api/v1/events/{name}", post(events::publish))
        .route(
            "/api/v1/projects",
            get(projects::list).post(projects::create),
        )
        .route(
            "/api/v1/projects/{id}",
            get(projects::get).delete(projects::remove),
        )
        .route(
            "/api/v1/projects/{id}/rotate-key",
            post(projects::rotate_key),
        )
        .route("/api/v1/projects/{id}/pause", post(projects::pause))
        .route("/api/v1/projects/{id}/resume", post(projects::resume))
        .route(
            "/api/v1/projects/{id}/schema-changes",
            get(projects::schema_changes),
        )
        .route("/api/v1/projects/{id}/logs", get(projects::logs))
        .route("/api/v1/projects/{id}/analytics", get(projects::analytics))
        .route("/api/v1/requests/logs", get(projects::instance_logs))
        .route(
            "/api/v1/requests/analytics",
            get(projects::instance_analytics),
        )
        // Dbify's API: its README's path and its server's.
        // SelfDB's own API (`selfdb_api`), for SelfDB's SDKs.
        .route("/users", any(selfdb_api::users))
        .route("/users/", any(selfdb_api::users))
        .route("/users/{*rest}", any(selfdb_api::users))
        .route("/tables", any(selfdb_api::tables::route))
        .route("/tables/", any(selfdb_api::tables::route))
        .route("/tables/{*rest}", any(selfdb_api::tables::route))
        .route("/storage/buckets", any(selfdb_api::buckets::route))
        .route("/storage/buckets/", any(selfdb_api::buckets::route))
        .route("/storage/buckets/{*rest}", any(selfdb_api::buckets::route))
        .route("/storage/files", any(selfdb_api::files::route))
        .route("/storage/files/", any(selfdb_api::files::route))
        .route("/storage/files/{*rest}", any(selfdb_api::files::route))
        .route("/realtime/socket", get(selfdb_api::realtime::socket))
        .route("/query", post(project_api::dbify))
        .route("/api/crud", post(project_api::dbify))
        .route("/projects/{id}/rest/v1", any(project_api::rest))
        .route("/projects/{id}/rest/v1/", any(project_api::rest))
        .route("/projects/{id}/rest/v1/{*path}", any(project_api::rest));
    if app.settings.bench_routes {
        router = router.route("/bench/native/hello", get(bench::native_hello));
    }
    router
        .fallback(error::not_found)
        .method_not_allowed_fallback(error::method_not_allowed)
        .layer(axum::middleware::from_fn_with_state(
            app.clone(),
            request_log::log_requests,
        ))
        .layer(axum::middleware::from_fn_with_state(
            app.clone(),
            cors::cors,
        ))
        .layer(axum::middleware::from_fn_with_state(
            app.clone(),
            observe::observe,
        ))
        .with_state(app)
}
