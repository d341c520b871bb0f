//! `/api/v1/admin/*` and `/api/v1/admins`: admins sign in, refresh, sign
//! out, and manage the other admins (see [`crate::auth::admin_sessions`]).
//!
//! The refresh token travels only in an `HttpOnly`, `SameSite=Strict`
//! cookie scoped to `/api/v1/admin`, so the dashboard's scripts never hold
//! it and no other site can make the browser send it; a refresh also needs
//! a JSON content type, which a cross-site form cannot send.

use super::error::ApiError;
use super::principal::{require_admin, Caller};
use super::AppState;
use crate::auth::admin_sessions::{self, Issued, SessionError, ACCESS_SECONDS};
use axum::body::Bytes;
use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::time::Duration;

const COOKIE: &str = "selfdb_admin_refresh";
const COOKIE_PATH: &str = "/api/v1/admin";

impl From<SessionError> for ApiError {
    fn from(err: SessionError) -> Self {
        let message = err.to_string();
        match err {
            SessionError::InvalidCredentials => {
                ApiError::new(StatusCode::BAD_REQUEST, "invalid_credentials", message)
            }
            SessionError::InvalidRefresh => {
                ApiError::new(StatusCode::UNAUTHORIZED, "invalid_refresh_token", message)
            }
            SessionError::RefreshReused => {
                ApiError::new(StatusCode::UNAUTHORIZED, "refresh_token_reused", message)
            }
            SessionError::RefreshRaced => {
                ApiError::new(StatusCode::CONFLICT, "refresh_token_stale", message)
            }
            SessionError::NotFound => ApiError::new(StatusCode::NOT_FOUND, "not_found", message),
            SessionError::EmailTaken => {
                ApiError::new(StatusCode::CONFLICT, "email_exists", message)
            }
            SessionError::LastAdmin => ApiError::new(StatusCode::CONFLICT, "last_admin", message),
            SessionError::WeakPassword(_) => {
                ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "weak_password", message)
            }
            SessionError::BadEmail => {
                ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_email", message)
            }
            SessionError::Db(_) | SessionError::Postgres(_) => {
                tracing::error!(%err, "admin sessions");
                ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "database", message)
            }
            SessionError::Token(_) | SessionError::Hash(_) => {
                tracing::error!(%err, "admin sessions");
                ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", message)
            }
        }
    }
}

fn json_body<T: serde::de::DeserializeOwned>(body: &Bytes, shape: &str) -> Result<T, ApiError> {
    serde_json::from_slice(body).map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_json",
            format!("the body must be {shape}: {e}"),
        )
    })
}

/// The refresh cookie's `Set-Cookie` value; an empty token clears it.
fn refresh_cookie(app: &AppState, token: &str) -> HeaderValue {
    let max_age = if token.is_empty() {
        0
    } else {
        admin_sessions::SESSION_IDLE_SECONDS
    };
    // `Secure` where the host serves HTTPS: a browser would drop a secure
    // cookie set over plain HTTP (loopback development).
    let secure = if app.settings.tls.is_some() {
        "; Secure"
    } else {
        ""
    };
    let value = format!(
        "{COOKIE}={token}; HttpOnly; SameSite=Strict; Path={COOKIE_PATH}; Max-Age={max_age}{secure}"
    );
    // The token is hex: the value is always a valid header.
    HeaderValue::from_str(&value).unwrap_or_else(|_| HeaderValue::from_static(""))
}

fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value)
}

fn session_response(app: &AppState, issued: Issued) -> Response {
    let body = json!({
        "access_token": issued.access_token,
        "token_type": "bearer",
        "expires_in": ACCESS_SECONDS,
        "expires_at": issued.expires_at,
        "admin": {"id": issued.admin_id.to_string(), "email": issued.email},
    });
    let mut response = (StatusCode::OK, Json(body)).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::SET_COOKIE,
        refresh_cookie(app, &issued.refresh_token),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

#[derive(Deserialize)]
pub struct Grant {
    grant_type: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Credentials {
    email: String,
    password: String,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RefreshBody {
    refresh_token: Option<String>,
}

/// `POST /api/v1/admin/token?grant_type=password|refresh_token`.
pub async fn token(
    State(app): State<AppState>,
    Query(grant): Query<Grant>,
    request: axum::extract::Request,
) -> Result<Response, ApiError> {
    let ip = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(addr)| addr.ip().to_string());
    let (parts, body) = request.into_parts();
    let headers = parts.headers;
    let body = axum::body::to_bytes(body, 64 * 1024).await.map_err(|_| {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
            "the body must be at most 64 KiB",
        )
    })?;
    // JSON only: no cross-site form can send it (a `text/plain` form body
    // can be made to parse as JSON).
    let is_json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if !is_json {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "json_required",
            "the admin token endpoint needs `content-type: application/json`",
        ));
    }
    match grant.grant_type.as_deref() {
        Some("password") => sign_in(&app, ip, &headers, &body).await,
        Some("refresh_token") => refresh(&app, &headers, &body).await,
        _ => Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            "grant_type must be password or refresh_token",
        )),
    }
}

async fn sign_in(
    app: &AppState,
    ip: Option<String>,
    headers: &HeaderMap,
    body: &Bytes,
) -> Result<Response, ApiError> {
    let credentials: Credentials = json_body(body, r#"{"email", "password"}"#)?;
    let limits = &app.settings.auth;
    let window = Duration::from_secs(u64::from(limits.rate_window_seconds));
    // Attempts are counted per email and per address with auth's limits
    // (in Redis when configured, so across hosts).
    let by_email = format!("admin-sign-in:email:{}", credentials.email.to_lowercase());
    let by_ip = ip.as_ref().map(|ip| format!("admin-sign-in:ip:{ip}"));
    // Each attempt is counted before its password is checked, so that a
    // burst of parallel guesses cannot all pass a check made before any of
    // them failed: at most the limit are verified per window.
    let email_hit = app.limiter.hit(&by_email, window).await;
    let mut wait = app
        .limiter
        .retry_after(&by_email, limits.failed_sign_ins_per_email + 1, window)
        .await;
    let mut ip_hit = None;
    if let Some(key) = &by_ip {
        ip_hit = Some(app.limiter.hit(key, window).await);
        let ip_wait = app
            .limiter
            .retry_after(key, limits.failed_sign_ins_per_ip + 1, window)
            .await;
        wait = wait.max(ip_wait);
    }
    if let Some(wait) = wait {
        let seconds = wait.as_secs().max(1);
        let mut response = ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "over_request_rate_limit",
            format!("too many sign-in attempts: try again in {seconds} s"),
        )
        .into_response();
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        return Ok(response);
    }
    let user_agent = headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.chars().take(512).collect());
    let issued = admin_sessions::sign_in(
        &app.db,
        &app.keys,
        &credentials.email,
        &credentials.password,
        ip,
        user_agent,
    )
    .await?;
    // The limit is on failures: a sign-in that succeeded takes its count
    // back (an admin signing in from several tabs is never locked out).
    app.limiter.forget(&by_email, email_hit).await;
    if let (Some(key), Some(hit)) = (&by_ip, ip_hit) {
        app.limiter.forget(key, hit).await;
    }
    Ok(session_response(app, issued))
}

async fn refresh(app: &AppState, headers: &HeaderMap, body: &Bytes) -> Result<Response, ApiError> {
    let request: RefreshBody = if body.is_empty() {
        RefreshBody::default()
    } else {
        json_body(body, r#"{"refresh_token"?}"#)?
    };
    let token = request
        .refresh_token
        .or_else(|| cookie(headers, COOKIE).map(str::to_owned))
        .filter(|t| !t.is_empty())
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::UNAUTHORIZED,
                "invalid_refresh_token",
                "no refresh token: sign in first",
            )
        })?;
    let issued = admin_sessions::refresh(&app.db, &app.keys, &token).await;
    match issued {
        Ok(issued) => Ok(session_response(app, issued)),
        // A token that can never work again is cleared; a database outage
        // or a race leaves the cookie for the next try.
        Err(err @ (SessionError::InvalidRefresh | SessionError::RefreshReused)) => {
            let mut response = ApiError::from(err).into_response();
            response
                .headers_mut()
                .insert(header::SET_COOKIE, refresh_cookie(app, ""));
            Ok(response)
        }
        Err(err) => Err(err.into()),
    }
}

/// The signed-in admin, or 403 for the service key (which is no one).
fn admin_only(caller: Caller) -> Result<admin_sessions::AdminClaims, ApiError> {
    match caller {
        Caller::Admin(admin) => Ok(admin),
        Caller::ServiceKey => Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "admin_session_required",
            "this endpoint needs an admin's access token, not the service key",
        )),
    }
}

/// `POST /api/v1/admin/logout`: ends the caller's session, named by its
/// access token or, once that has expired, by the refresh cookie.
pub async fn logout(State(app): State<AppState>, headers: HeaderMap) -> Result<Response, ApiError> {
    match require_admin(&headers, &app).await {
        Ok(caller) => {
            let admin = admin_only(caller)?;
            admin_sessions::revoke(&app.db, admin.session_id).await?;
        }
        Err(err) => match cookie(&headers, COOKIE).filter(|t| !t.is_empty()) {
            Some(token) if err.status == StatusCode::UNAUTHORIZED => {
                admin_sessions::revoke_by_refresh(&app.db, token).await?;
            }
            _ => return Err(err),
        },
    }
    let mut response = StatusCode::NO_CONTENT.into_response();
    response
        .headers_mut()
        .insert(header::SET_COOKIE, refresh_cookie(&app, ""));
    Ok(response)
}

/// `GET /api/v1/admin/me`.
pub async fn me(State(app): State<AppState>, headers: HeaderMap) -> Result<Json<Value>, ApiError> {
    let admin = admin_only(require_admin(&headers, &app).await?)?;
    let listed = admin_sessions::list(&app.db).await?;
    let me = listed
        .into_iter()
        .find(|a| a.id == admin.admin_id)
        .ok_or(SessionError::NotFound)?;
    Ok(Json(me.to_json()))
}

/// `GET /api/v1/admins`.
pub async fn list(
    State(app): State<AppState>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    require_admin(&headers, &app).await?;
    let admins = admin_sessions::list(&app.db).await?;
    let admins: Vec<Value> = admins.iter().map(|a| a.to_json()).collect();
    Ok(Json(json!({ "admins": admins })))
}

/// `POST /api/v1/admins` `{email, password}`: another admin.
pub async fn create(
    State(app): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    require_admin(&headers, &app).await?;
    let request: Credentials = json_body(&body, r#"{"email", "password"}"#)?;
    let admin = admin_sessions::create(
        &app.db,
        &request.email,
        &request.password,
        app.settings.auth.password_min_length,
    )
    .await?;
    Ok((StatusCode::CREATED, Json(admin.to_json())))
}

fn admin_id(id: &str) -> Result<uuid::Uuid, ApiError> {
    uuid::Uuid::parse_str(id).map_err(|_| SessionError::NotFound.into())
}

/// `DELETE /api/v1/admins/{id}`: never the last admin.
pub async fn remove(
    State(app): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<StatusCode, ApiError> {
    require_admin(&headers, &app).await?;
    admin_sessions::remove(&app.db, admin_id(&id)?).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewPassword {
    password: String,
}

/// `PUT /api/v1/admins/{id}/password` `{password}`: ends that admin's
/// other sessions (the caller's own stays signed in).
pub async fn set_password(
    State(app): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<StatusCode, ApiError> {
    let caller = require_admin(&headers, &app).await?;
    let request: NewPassword = json_body(&body, r#"{"password"}"#)?;
    let keep = match caller {
        Caller::Admin(admin) => Some(admin.session_id),
        Caller::ServiceKey => None,
    };
    admin_sessions::set_password(
        &app.db,
        admin_id(&id)?,
        &request.password,
        app.settings.auth.password_min_length,
        keep,
    )
    .await?;
    Ok(StatusCode::NO_CONTENT)
}
