//! `POST /api/v1/events/{name}`: publishes a custom event to every
//! function subscribed to it. The body is the event's JSON payload (empty:
//! `null`). The service key may publish anything; a user publishes as
//! themselves, allowed by row-level security policies on
//! `selfdb.published_events` (none by default), exactly as
//! `select selfdb.publish(name, payload)` in their transaction would be.

use super::error::ApiError;
use super::principal::authenticate;
use super::AppState;
use crate::db::invocation::InvocationTx;
use crate::db::values::SqlValue;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use serde_json::{json, Value};

/// A publish is one short statement.
const STATEMENT_TIMEOUT_MS: u64 = 10_000;

pub async fn publish(
    State(app): State<AppState>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let principal = authenticate(&headers, &app.keys)?;
    let payload: Value = if body.iter().all(u8::is_ascii_whitespace) {
        Value::Null
    } else {
        serde_json::from_slice(&body).map_err(|e| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid_json",
                format!("the body is the event's payload as JSON: {e}"),
            )
        })?
    };
    let mut tx = InvocationTx::new(app.db.clone(), principal, STATEMENT_TIMEOUT_MS);
    let published = tx
        .execute(
            "select selfdb.publish($1, $2::jsonb)",
            &[
                SqlValue::Text(name.clone()),
                SqlValue::Text(payload.to_string()),
            ],
        )
        .await;
    let finished = tx.finish(published.is_ok()).await;
    match (published, finished) {
        (Ok(_), Ok(_)) => Ok((
            StatusCode::ACCEPTED,
            Json(json!({ "published": true, "name": name })),
        )),
        (Err(err), _) | (Ok(_), Err(err)) => Err(match err.code.as_str() {
            // Row-level security refused the row.
            "42501" => ApiError::new(
                StatusCode::FORBIDDEN,
                "forbidden",
                format!("no policy on selfdb.published_events lets this caller publish {name:?}"),
            ),
            // The name's check constraint.
            "23514" => ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid_event_name",
                format!(
                    "{name:?} is not an event name: use 1-128 of letters, digits, '_', '.', ':' and '-'"
                ),
            ),
            _ => ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "database", err.message),
        }),
    }
}
