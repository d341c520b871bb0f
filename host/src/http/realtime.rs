//! `/realtime/v1`: the WebSocket endpoint realtime-js connects to, and the
//! REST broadcast supabase-js falls back on. Errors take Supabase
//! Realtime's own shapes (`{"error": ...}` at connect, `{"message": ...}`
//! on the REST API), which its clients read.

use super::AppState;
use crate::auth::Role;
use crate::realtime::protocol::Vsn;
use crate::realtime::Dialect;
use axum::extract::ws::WebSocketUpgrade;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};
use std::collections::HashMap;

/// Largest frame a client may send: Supabase's payload cap plus headroom
/// for the envelope.
const MAX_FRAME_BYTES: usize = 512 * 1024;

fn refuse(status: StatusCode, message: &str) -> Response {
    (status, Json(json!({ "error": message }))).into_response()
}

pub async fn websocket(
    State(app): State<AppState>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
    upgrade: Result<WebSocketUpgrade, axum::extract::ws::rejection::WebSocketUpgradeRejection>,
) -> Response {
    let upgrade = match upgrade {
        Ok(upgrade) => upgrade,
        Err(rejection) => return rejection.into_response(),
    };
    let apikey = headers
        .get("x-api-key")
        .or_else(|| headers.get("apikey"))
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .or_else(|| query.get("apikey").cloned());
    let Some(apikey) = apikey else {
        return refuse(StatusCode::UNAUTHORIZED, "API key is missing");
    };
    if let Err(err) = app.keys.verify(&apikey) {
        let message = match err {
            crate::auth::TokenError::Expired => "Token has expired",
            _ => "The token provided is not a valid JWT",
        };
        return refuse(StatusCode::UNAUTHORIZED, message);
    }
    let Some(vsn) = Vsn::parse(query.get("vsn").map(String::as_str)) else {
        return refuse(
            StatusCode::BAD_REQUEST,
            "Unsupported serializer version: vsn must be 1.0.0 or 2.0.0",
        );
    };
    let realtime = app.realtime.clone();
    if !realtime.admit() {
        return refuse(StatusCode::TOO_MANY_REQUESTS, "Too many connected users");
    }
    serve(upgrade, realtime, vsn, apikey, Dialect::Supabase)
}

/// Upgrades an admitted connection to a socket of `dialect`.
pub fn serve(
    upgrade: WebSocketUpgrade,
    realtime: std::sync::Arc<crate::realtime::Realtime>,
    vsn: Vsn,
    token: String,
    dialect: Dialect,
) -> Response {
    upgrade
        // tungstenite reads into a 128 KiB buffer by default, allocated up
        // front: most of an idle connection's memory. Frames are small.
        .read_buffer_size(4 * 1024)
        .max_message_size(MAX_FRAME_BYTES)
        .max_frame_size(MAX_FRAME_BYTES)
        .on_failed_upgrade({
            let realtime = realtime.clone();
            move |_| realtime.release()
        })
        .on_upgrade(move |socket| {
            crate::realtime::serve_socket(realtime, socket, vsn, token, dialect)
        })
}

#[derive(Deserialize)]
struct BroadcastBody {
    messages: Vec<BroadcastMessage>,
}

#[derive(Deserialize)]
struct BroadcastMessage {
    topic: String,
    event: String,
    payload: Value,
    #[serde(default)]
    private: bool,
}

fn message(status: StatusCode, text: impl Into<String>) -> Response {
    (status, Json(json!({ "message": text.into() }))).into_response()
}

/// The caller of a REST broadcast: `Authorization: Bearer`, else `apikey`.
fn rest_caller(
    app: &AppState,
    headers: &HeaderMap,
) -> Option<std::sync::Arc<crate::auth::Principal>> {
    let token = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .or_else(|| headers.get("apikey").and_then(|v| v.to_str().ok()));
    token.and_then(|t| app.keys.verify(t.trim()).ok())
}

/// `POST /realtime/v1/api/broadcast/{topic}/events/{event}[?private=true]`
/// (realtime-js's `httpSend`): the body, JSON or raw bytes, goes out as a
/// user broadcast (binary to `vsn=2.0.0` clients, unchanged); 202.
pub async fn broadcast_one(
    State(app): State<AppState>,
    Path((topic, event)): Path<(String, String)>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let Some(principal) = rest_caller(&app, &headers) else {
        return message(StatusCode::UNAUTHORIZED, "Unauthorized");
    };
    let content_type = headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let json = if content_type.starts_with("application/json") {
        if serde_json::from_slice::<Value>(&body).is_err() {
            return refuse(StatusCode::BAD_REQUEST, "the body is not valid JSON");
        }
        true
    } else if content_type.starts_with("application/octet-stream") {
        false
    } else {
        return refuse(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "Unsupported Media Type. Use application/json or application/octet-stream",
        );
    };
    let realtime = &app.realtime;
    if body.len() > realtime.payload_limit() {
        return refuse(
            StatusCode::PAYLOAD_TOO_LARGE,
            "Payload size exceeds tenant limit",
        );
    }
    let private = query.get("private").is_some_and(|v| v == "true");
    if private && principal.role != Role::ServiceRole {
        match realtime.can_write(&principal, &topic).await {
            Ok(true) => {}
            Ok(false) => return message(StatusCode::FORBIDDEN, "Unauthorized"),
            Err(err) => {
                tracing::warn!(error = %format!("{err:#}"), "realtime: private broadcast check failed");
                return message(StatusCode::FORBIDDEN, "Unauthorized");
            }
        }
    }
    realtime.broadcast_user(&topic, private, event, json, body);
    StatusCode::ACCEPTED.into_response()
}

/// `POST /realtime/v1/api/broadcast`: `{messages: [{topic, event, payload,
/// private?}]}`, 202 with no body; a private message the caller may not
/// write is skipped, as on Supabase.
pub async fn broadcast(
    State(app): State<AppState>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let Some(principal) = rest_caller(&app, &headers) else {
        return message(StatusCode::UNAUTHORIZED, "Unauthorized");
    };
    let body: BroadcastBody = match serde_json::from_slice(&body) {
        Ok(body) => body,
        Err(err) => {
            return (
                StatusCode::UNPROCESSABLE_ENTITY,
                Json(json!({ "errors": { "messages": [err.to_string()] } })),
            )
                .into_response()
        }
    };
    let realtime = &app.realtime;
    if body.messages.len() > 1000 {
        return message(
            StatusCode::TOO_MANY_REQUESTS,
            "Too many messages to broadcast, please reduce the batch size",
        );
    }
    for m in &body.messages {
        if m.payload.to_string().len() > realtime.payload_limit() {
            return (
                StatusCode::UNPROCESSABLE_ENTITY,
                Json(json!({ "errors": { "messages": ["Payload size exceeds tenant limit"] } })),
            )
                .into_response();
        }
    }
    for m in body.messages {
        if m.private && principal.role != Role::ServiceRole {
            match realtime.can_write(&principal, &m.topic).await {
                Ok(true) => {}
                Ok(false) => continue,
                Err(err) => {
                    tracing::warn!(error = %format!("{err:#}"), "realtime: private broadcast check failed");
                    continue;
                }
            }
        }
        realtime.broadcast_json(&m.topic, m.private, &m.event, m.payload);
    }
    StatusCode::ACCEPTED.into_response()
}
