//! Turns a request's credentials into a verified principal, before any
//! component runs.
//!
//! As on Supabase: `apikey` (the anon or service key) is required; a signed-in
//! user adds `Authorization: Bearer <access token>`, which then decides the
//! role. Clients that send the API key as the bearer too (supabase-js does,
//! without a session) get the key's role.

use super::error::ApiError;
use super::AppState;
use crate::auth::admin_sessions::{self, AdminClaims};
use crate::auth::{JwtKeys, Principal, Role, TokenError};
use axum::http::{HeaderMap, StatusCode};
use std::sync::Arc;

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Result<Option<&'a str>, ApiError> {
    match headers.get(name) {
        None => Ok(None),
        Some(value) => value.to_str().map(Some).map_err(|_| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid_header",
                format!("the {name} header is not valid text"),
            )
        }),
    }
}

fn token_error(what: &str, err: TokenError) -> ApiError {
    let code = match err {
        TokenError::Expired => "token_expired",
        _ => "invalid_token",
    };
    ApiError::new(StatusCode::UNAUTHORIZED, code, format!("{what}: {err}"))
}

/// The token of an `Authorization: Bearer <token>` header, if any.
pub fn bearer(headers: &HeaderMap) -> Result<Option<&str>, ApiError> {
    let Some(authorization) = header(headers, "authorization")? else {
        return Ok(None);
    };
    authorization
        .strip_prefix("Bearer ")
        .or_else(|| authorization.strip_prefix("bearer "))
        .map(|token| Some(token.trim()))
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::UNAUTHORIZED,
                "invalid_token",
                "the Authorization header must be `Bearer <token>`",
            )
        })
}

pub fn authenticate(headers: &HeaderMap, keys: &JwtKeys) -> Result<Arc<Principal>, ApiError> {
    let apikey = header(headers, "apikey")?.ok_or_else(|| {
        ApiError::new(
            StatusCode::UNAUTHORIZED,
            "missing_apikey",
            "the apikey header is required (the anon or service key)",
        )
    })?;
    let key_principal = keys.verify(apikey).map_err(|e| token_error("apikey", e))?;
    let Some(token) = bearer(headers)? else {
        return Ok(key_principal);
    };
    // supabase-js sends the anon key in both headers until a user signs in:
    // the same token needs no second verification.
    if token == apikey {
        return Ok(key_principal);
    }
    keys.verify(token)
        .map_err(|e| token_error("bearer token", e))
}

/// Who called an admin route.
#[derive(Debug, Clone)]
pub enum Caller {
    /// The service key (or another service-role token that is no admin's).
    ServiceKey,
    /// A signed-in admin, by their session's access token.
    Admin(AdminClaims),
}

/// Admin routes (`/api/v1`): an admin's access token or the service key;
/// 401 without credentials or for a signed-out admin session, 403 for any
/// other role. The apikey header may be left out when the bearer token is
/// an admin's or the service key: the dashboard has no key until it has
/// signed in.
pub async fn require_admin(headers: &HeaderMap, app: &AppState) -> Result<Caller, ApiError> {
    let principal = if headers.contains_key("apikey") {
        authenticate(headers, &app.keys)?
    } else {
        let token = bearer(headers)?.ok_or_else(|| {
            ApiError::new(
                StatusCode::UNAUTHORIZED,
                "missing_apikey",
                "this endpoint needs the service key or an admin's access token",
            )
        })?;
        app.keys
            .verify(token)
            .map_err(|e| token_error("bearer token", e))?
    };
    if principal.role != Role::ServiceRole {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "this endpoint needs the service key or an admin's access token",
        ));
    }
    let Some(admin) = AdminClaims::of(&principal.claims) else {
        // Shaped like an admin's but incomplete: never taken for the
        // service key.
        if principal.claims.get("iss").and_then(|v| v.as_str()) == Some(admin_sessions::ISSUER) {
            return Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                "invalid_token",
                "an admin token without its session",
            ));
        }
        return Ok(Caller::ServiceKey);
    };
    let active = admin_sessions::is_active(&app.db, admin.session_id)
        .await
        .map_err(|e| {
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "database",
                format!("checking the admin session: {e}"),
            )
        })?;
    if !active {
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "session_revoked",
            "this admin session has ended: sign in again",
        ));
    }
    Ok(Caller::Admin(admin))
}
