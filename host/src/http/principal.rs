//! Turns a request's credentials into a verified principal, before any
//! component runs.
//!
//! As on Supabase: `apikey` (the anon or service key) is required; a signed-in
//! user adds `Authorization: Bearer <access token>`, which then decides the
//! role. Clients that send the API key as the bearer too (supabase-js does,
//! without a session) get the key's role.

use super::error::ApiError;
use super::AppState;
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

pub fn authenticate(headers: &HeaderMap, keys: &JwtKeys) -> Result<Arc<Principal>, ApiError> {
    let apikey = header(headers, "apikey")?.ok_or_else(|| {
        ApiError::new(
            StatusCode::UNAUTHORIZED,
            "missing_apikey",
            "the apikey header is required (the anon or service key)",
        )
    })?;
    let key_principal = keys.verify(apikey).map_err(|e| token_error("apikey", e))?;
    let Some(authorization) = header(headers, "authorization")? else {
        return Ok(key_principal);
    };
    let token = authorization
        .strip_prefix("Bearer ")
        .or_else(|| authorization.strip_prefix("bearer "))
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::UNAUTHORIZED,
                "invalid_token",
                "the Authorization header must be `Bearer <token>`",
            )
        })?
        .trim();
    // supabase-js sends the anon key in both headers until a user signs in:
    // the same token needs no second verification.
    if token == apikey {
        return Ok(key_principal);
    }
    keys.verify(token)
        .map_err(|e| token_error("bearer token", e))
}

/// Admin routes: the service key, or 403.
pub fn require_service_role(headers: &HeaderMap, app: &AppState) -> Result<(), ApiError> {
    let principal = authenticate(headers, &app.keys)?;
    if principal.role != Role::ServiceRole {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "this endpoint needs the service key",
        ));
    }
    Ok(())
}
