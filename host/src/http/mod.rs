//! The HTTP surface: routing, credentials, errors, and the handlers the
//! host serves itself.

pub mod auth;
mod bench;
pub mod error;
mod function_deploys;
mod functions;
mod health;
mod invoke;
pub mod principal;
pub mod rest;
mod s3_keys;
pub mod storage;

use crate::auth::JwtKeys;
use crate::config::Settings;
use crate::db::Database;
use crate::runtime::Runtime;
use axum::extract::DefaultBodyLimit;
use axum::routing::{any, delete, get, put};
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
}

pub type AppState = Arc<App>;

pub fn router(app: AppState) -> Router {
    let mut router = Router::new()
        .route("/health", get(health::health))
        .route("/metrics", get(health::metrics))
        .route("/functions/v1/{name}", any(functions::invoke))
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
        .route("/api/v1/s3/keys", get(s3_keys::list).post(s3_keys::create))
        .route("/api/v1/s3/keys/{id}", delete(s3_keys::revoke))
        .route("/api/v1/functions", get(function_deploys::list))
        .route(
            "/api/v1/functions/{name}",
            put(function_deploys::deploy)
                .layer(DefaultBodyLimit::max(function_deploys::MAX_COMPONENT_BYTES)),
        );
    if app.settings.bench_routes {
        router = router.route("/bench/native/hello", get(bench::native_hello));
    }
    router
        .fallback(error::not_found)
        .method_not_allowed_fallback(error::method_not_allowed)
        .with_state(app)
}
