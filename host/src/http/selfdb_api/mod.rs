//! SelfDB's own API, beside the Supabase-compatible one: what apps written
//! with SelfDB's SDKs (PyPI `selfdb`) call, on the same users, tables,
//! objects and realtime broker (one store, two views).
//!
//! Its dialect, which the SDK reads:
//! - **`X-API-Key`** on every request: the anon or the service key (406
//!   when missing, 401 when it is neither); a signed-in user adds
//!   `Authorization: Bearer`.
//! - **Errors are `{"detail": "..."}`**, with the statuses the SDK maps to
//!   its exception classes (400, 401, 403, 404, 409, 422, 5xx).
//! - **Paths with and without the trailing slash** are the same route.
//!
//! Areas: `/users` (the auth component's `selfdb_users`), `/tables` and
//! their rows (`tables`, `data`), `/storage/buckets` and `/storage/files`
//! (`buckets`, `files`), and `/realtime/socket` (`realtime`).

pub mod buckets;
pub mod data;
pub mod files;
pub mod realtime;
pub mod tables;

use super::invoke::{invoke_component, ErrorStyle};
use super::principal::bearer;
use super::AppState;
use crate::auth::{Principal, Role, TokenError};
use crate::db::ddl::DdlError;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Map, Value};
use std::collections::HashMap;
use std::sync::Arc;

/// An error in SelfDB's shape: `{"detail": "..."}`.
#[derive(Debug)]
pub struct Detail {
    pub status: StatusCode,
    pub detail: String,
}

impl Detail {
    pub fn new(status: StatusCode, detail: impl Into<String>) -> Self {
        Detail {
            status,
            detail: detail.into(),
        }
    }

    pub fn not_found() -> Self {
        Detail::new(StatusCode::NOT_FOUND, "Not Found")
    }

    /// FastAPI's status for a request it could not validate.
    pub fn unprocessable(detail: impl Into<String>) -> Self {
        Detail::new(StatusCode::UNPROCESSABLE_ENTITY, detail)
    }

    pub fn bad_request(detail: impl Into<String>) -> Self {
        Detail::new(StatusCode::BAD_REQUEST, detail)
    }

    pub fn method_not_allowed() -> Self {
        Detail::new(StatusCode::METHOD_NOT_ALLOWED, "Method Not Allowed")
    }

    /// What the database said, as the status that fits.
    pub fn database(err: DdlError) -> Self {
        match err {
            DdlError::Invalid(message) => Detail::bad_request(message),
            DdlError::Refused(db) => {
                let status = match db.code().code() {
                    // Duplicate table, column, object; a second primary
                    // key; a unique value; something still depends on it.
                    "42P07" | "42701" | "42710" | "42P16" | "23505" | "2BP01" => {
                        StatusCode::CONFLICT
                    }
                    "42703" => StatusCode::NOT_FOUND,
                    "42501" => StatusCode::FORBIDDEN,
                    _ => StatusCode::BAD_REQUEST,
                };
                Detail::new(status, db.message())
            }
            other => {
                tracing::warn!(err = %other, "SelfDB API: database unavailable");
                Detail::new(StatusCode::SERVICE_UNAVAILABLE, other.to_string())
            }
        }
    }
}

impl From<DdlError> for Detail {
    fn from(err: DdlError) -> Self {
        Detail::database(err)
    }
}

/// Largest JSON body the metadata routes read.
const MAX_JSON_BODY: usize = 2 * 1024 * 1024;

/// The body as JSON; `Value::Null` when empty (the SDK sends none on some
/// calls, with a JSON content type all the same).
pub async fn json_body(body: Body) -> Result<Value, Detail> {
    let bytes = axum::body::to_bytes(body, MAX_JSON_BODY)
        .await
        .map_err(|_| {
            Detail::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("the body is larger than {MAX_JSON_BODY} bytes"),
            )
        })?;
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(Value::Null);
    }
    serde_json::from_slice(&bytes)
        .map_err(|err| Detail::unprocessable(format!("the body is not JSON: {err}")))
}

/// The body as an object, or 422; and its optional fields of a kind.
pub fn object(body: Value) -> Result<Map<String, Value>, Detail> {
    match body {
        Value::Object(map) => Ok(map),
        _ => Err(Detail::unprocessable("the body is a JSON object")),
    }
}

pub fn text<'a>(body: &'a Map<String, Value>, key: &str) -> Result<Option<&'a str>, Detail> {
    match body.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(Detail::unprocessable(format!("{key} is a string"))),
    }
}

pub fn flag(body: &Map<String, Value>, key: &str) -> Result<Option<bool>, Detail> {
    match body.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(_) => Err(Detail::unprocessable(format!("{key} is true or false"))),
    }
}

/// The query string's parameters, checked as FastAPI would (422 for a
/// value of the wrong kind or range).
pub struct Params(HashMap<String, String>);

impl Params {
    pub fn parse(query: Option<&str>) -> Self {
        Params(
            url::form_urlencoded::parse(query.unwrap_or_default().as_bytes())
                .into_owned()
                .collect(),
        )
    }

    /// A non-empty text.
    pub fn text(&self, name: &str) -> Option<&str> {
        self.0
            .get(name)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }

    pub fn int(&self, name: &str, default: i64, min: i64, max: i64) -> Result<i64, Detail> {
        let Some(text) = self.text(name) else {
            return Ok(default);
        };
        match text.parse::<i64>() {
            Ok(n) if (min..=max).contains(&n) => Ok(n),
            _ => Err(Detail::unprocessable(format!(
                "{name}: give a whole number from {min} to {max}"
            ))),
        }
    }

    /// `asc` or `desc` (either case); `default_ascending` when absent.
    pub fn ascending(&self, name: &str, default_ascending: bool) -> Result<bool, Detail> {
        match self.text(name).map(str::to_ascii_lowercase).as_deref() {
            None => Ok(default_ascending),
            Some("asc") => Ok(true),
            Some("desc") => Ok(false),
            Some(_) => Err(Detail::unprocessable(format!("{name}: use asc or desc"))),
        }
    }
}

/// The path's segments after `prefix`, without empty ones (so `/x` and
/// `/x/` are one route), percent-decoded.
pub fn segments(path: &str, prefix: &str) -> Vec<String> {
    path.strip_prefix(prefix)
        .unwrap_or_default()
        .split('/')
        .filter(|s| !s.is_empty())
        .map(|s| {
            percent_encoding::percent_decode_str(s)
                .decode_utf8_lossy()
                .into_owned()
        })
        .collect()
}

/// A uuid's text, or 404 (SelfDB's routes take uuids only).
pub fn uuid_or_404(text: &str) -> Result<String, Detail> {
    uuid::Uuid::parse_str(text)
        .map(|id| id.to_string())
        .map_err(|_| Detail::not_found())
}

impl IntoResponse for Detail {
    fn into_response(self) -> Response {
        (self.status, Json(json!({ "detail": self.detail }))).into_response()
    }
}

/// Who is calling: the key's principal, or the signed-in user's.
pub struct Caller {
    pub principal: Arc<Principal>,
}

/// `X-API-Key` (the anon or the service key, nothing else: a user's token
/// is no API key), then the bearer token when there is one.
pub fn caller(headers: &HeaderMap, app: &AppState) -> Result<Caller, Detail> {
    let key = headers
        .get("x-api-key")
        .or_else(|| headers.get("apikey"))
        .ok_or_else(|| {
            Detail::new(
                StatusCode::NOT_ACCEPTABLE,
                "Missing required header: X-API-Key",
            )
        })?;
    let invalid = || Detail::new(StatusCode::UNAUTHORIZED, "Invalid API key");
    let key = key.to_str().map_err(|_| invalid())?;
    let key_principal = app.keys.verify(key).map_err(|_| invalid())?;
    if !matches!(key_principal.role, Role::Anon | Role::ServiceRole) {
        return Err(invalid());
    }
    let token = bearer(headers)
        .map_err(|_| Detail::new(StatusCode::UNAUTHORIZED, "Could not validate credentials"))?;
    let principal = match token {
        None => key_principal,
        Some(token) if token == key => key_principal,
        Some(token) => app.keys.verify(token).map_err(|err| {
            Detail::new(
                StatusCode::UNAUTHORIZED,
                match err {
                    TokenError::Expired => "Token has expired",
                    _ => "Could not validate credentials",
                },
            )
        })?,
    };
    Ok(Caller { principal })
}

/// `/users...`: served by the auth component (its `selfdb_users` module),
/// so tokens, sessions and limits stay in one place.
pub async fn users(State(app): State<AppState>, request: Request) -> Response {
    let caller = match caller(request.headers(), &app) {
        Ok(caller) => caller,
        Err(err) => return err.into_response(),
    };
    let Some(component) = app
        .runtime
        .registry
        .get(super::auth::AUTH_COMPONENT)
        .filter(|f| f.system)
    else {
        return Detail::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "the auth component is not installed in this host",
        )
        .into_response();
    };
    invoke_component(
        &app,
        component,
        caller.principal,
        request,
        ErrorStyle::Detail,
    )
    .await
}

impl Caller {
    /// The caller's user id, for a signed-in user.
    pub fn user_id(&self) -> Option<&str> {
        match self.principal.role {
            Role::Authenticated => self.principal.user_id.as_deref(),
            _ => None,
        }
    }

    /// The service key or an admin's token (service role), or one of
    /// SelfDB's ADMIN users (read from the user's row, so a demotion
    /// counts at once).
    pub async fn admin(&self, app: &AppState) -> Result<bool, Detail> {
        if self.principal.role == Role::ServiceRole {
            return Ok(true);
        }
        match self.user_id() {
            Some(user) => Ok(crate::db::api_tables::is_admin(app.db.owner(), user).await?),
            None => Ok(false),
        }
    }
}
