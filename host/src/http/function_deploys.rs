//! `/api/v1/functions`: deploy (hot-swap) and list functions. Service role
//! only.

use super::error::ApiError;
use super::principal::require_service_role;
use super::AppState;
use crate::runtime::registry::valid_name;
use crate::runtime::RuntimeError;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use serde_json::{json, Value};

/// Largest component accepted by the deploy endpoint.
pub const MAX_COMPONENT_BYTES: usize = 64 << 20;

pub async fn list(
    State(app): State<AppState>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    require_service_role(&headers, &app)?;
    let functions: Vec<Value> = app
        .runtime
        .registry
        .names()
        .into_iter()
        .filter_map(|name| app.runtime.registry.get(&name))
        .map(|f| json!({"name": &*f.name, "version": f.digest, "system": f.system}))
        .collect();
    Ok(Json(json!({ "functions": functions })))
}

/// Compiles and links the uploaded component, then swaps it in: requests
/// already running finish on the old version. The file is also written to
/// the functions directory so the next start serves the same version.
pub async fn deploy(
    State(app): State<AppState>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, ApiError> {
    require_service_role(&headers, &app)?;
    let body = body.map_err(|rejection| {
        let status = rejection.status();
        let code = if status == StatusCode::PAYLOAD_TOO_LARGE {
            "body_too_large"
        } else {
            "invalid_body"
        };
        ApiError::new(status, code, rejection.body_text())
    })?;
    if !valid_name(&name) {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_name",
            "function names are 1-64 of a-z, 0-9, '-' and '_'",
        ));
    }
    let runtime = app.runtime.clone();
    let bytes = body.clone();
    let deploy_name = name.clone();
    let deployed = tokio::task::spawn_blocking(move || runtime.deploy(&deploy_name, &bytes, false))
        .await
        .map_err(|e| {
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "deploy_failed",
                e.to_string(),
            )
        })?
        .map_err(|err| match err {
            RuntimeError::Wasmtime(_) | RuntimeError::Link { .. } => ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid_component",
                err.to_string(),
            ),
            other => ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "deploy_failed",
                other.to_string(),
            ),
        })?;
    persist(&app.settings.functions_dir, &name, &body).map_err(|e| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "deploy_failed",
            format!("deployed, but could not save it for restarts: {e}"),
        )
    })?;
    Ok(Json(json!({"name": name, "version": deployed.digest})))
}

fn persist(dir: &std::path::Path, name: &str, bytes: &[u8]) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    crate::files::write_atomically(&dir.join(format!("{name}.wasm")), bytes)
}
