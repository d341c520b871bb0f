//! The native twin of `components/examples/hello`, so `make bench` measures
//! the cost of the WebAssembly path against the same work done natively,
//! including the same per-request transaction as the caller's role.

use super::error::ApiError;
use super::principal::authenticate;
use super::AppState;
use crate::db::invocation::InvocationTx;
use crate::db::values::SqlValue;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use serde_json::{json, Value};
use std::collections::HashMap;

pub const HELLO_SQL: &str =
    "select 'Hello, ' || $1::text || '!' as greeting, current_user::text as role";

pub async fn native_hello(
    State(app): State<AppState>,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Json<Value>, ApiError> {
    let principal = authenticate(&headers, &app.keys)?;
    let name = query.get("name").cloned().unwrap_or_else(|| "world".into());
    let mut tx = InvocationTx::new(
        app.db.clone(),
        principal,
        app.settings.default_limits.time_ms,
    );
    let internal = |e: crate::db::invocation::StatementError| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "database_error",
            e.message,
        )
    };
    let rows = tx
        .query(HELLO_SQL, &[SqlValue::Text(name)])
        .await
        .map_err(internal)?;
    tx.finish(true).await.map_err(internal)?;
    let row = rows.rows.first().ok_or_else(|| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "database_error",
            "no row",
        )
    })?;
    Ok(Json(json!({
        "greeting": row[0].to_json(),
        "role": row[1].to_json(),
    })))
}
