//! `GET /realtime/socket?X-API-Key=<key>&token=<access token>`: SelfDB's
//! realtime socket (Phoenix frames, `table:<name>` topics), on the same
//! broker, capture and row level security checks as `/realtime/v1`. The
//! key may also come as the `X-API-Key` header. Without `token` the socket
//! is the key's (the anon key sees what `anon` may); with one, the user's.
//! The socket closes when the token expires: SelfDB's clients cannot
//! refresh a socket's token, and connect again with their current one.

use super::Detail;
use crate::auth::Role;
use crate::http::AppState;
use crate::realtime::protocol::Vsn;
use crate::realtime::Dialect;
use axum::extract::ws::WebSocketUpgrade;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use std::collections::HashMap;

pub async fn socket(
    State(app): State<AppState>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
    upgrade: Result<WebSocketUpgrade, axum::extract::ws::rejection::WebSocketUpgradeRejection>,
) -> Response {
    let key = query
        .get("X-API-Key")
        .or_else(|| query.get("apikey"))
        .cloned()
        .or_else(|| {
            headers
                .get("x-api-key")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        });
    let Some(key) = key else {
        return Detail::new(
            StatusCode::NOT_ACCEPTABLE,
            "Missing required header: X-API-Key",
        )
        .into_response();
    };
    let key_role = app.keys.verify(&key).map(|p| p.role);
    if !matches!(key_role, Ok(Role::Anon | Role::ServiceRole)) {
        return Detail::new(StatusCode::UNAUTHORIZED, "Invalid API key").into_response();
    }
    // The socket's token: the user's, checked now (a bad one is refused
    // rather than quietly made anonymous), else the key.
    let token = match query.get("token").filter(|t| !t.is_empty()) {
        Some(token) => {
            if app.keys.verify(token).is_err() {
                return Detail::new(StatusCode::UNAUTHORIZED, "Could not validate credentials")
                    .into_response();
            }
            token.clone()
        }
        None => key,
    };
    let upgrade = match upgrade {
        Ok(upgrade) => upgrade,
        Err(rejection) => return rejection.into_response(),
    };
    let realtime = app.realtime.clone();
    if !realtime.admit() {
        return Detail::new(StatusCode::TOO_MANY_REQUESTS, "Too many connected users")
            .into_response();
    }
    let dialect = Dialect::SelfDb {
        schemas: app.settings.db_schemas.clone().into(),
    };
    crate::http::realtime::serve(upgrade, realtime, Vsn::V1, token, dialect)
}
