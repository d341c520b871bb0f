//! The auth system component: Supabase Auth (GoTrue)'s `/auth/v1` API, so
//! apps signing users in with supabase-js work unchanged.
//!
//! Users, identities, sessions and refresh tokens live in Supabase's `auth`
//! tables, reached through the privileged `auth-db` interface. Passwords are
//! hashed by the host (argon2id); access tokens are minted by the host, which
//! alone holds the signing key. Refresh tokens are opaque, stored as SHA-256,
//! single use and rotated; presenting a used one revokes its session.

// `AuthError` is under clippy's size limit for an `Err` on wasm32, the
// target this is built for, and over it only where pointers are 64-bit
// (native unit tests and lints).
#![cfg_attr(not(target_arch = "wasm32"), allow(clippy::result_large_err))]

mod account;
mod admin_users;
mod error;
mod flows;
mod selfdb_users;
mod session;
mod store;

use error::AuthError;
use selfdb_sdk::{config, context, Handler, Request, Response};
use serde_json::Value;

/// What a handler needs to know about the call.
pub struct Call {
    pub request: Request,
    pub principal: context::Principal,
    pub claims: Value,
    pub client_ip: Option<String>,
}

impl Call {
    pub fn body(&self) -> Result<Value, AuthError> {
        if self.request.body.is_empty() {
            return Ok(Value::Object(Default::default()));
        }
        serde_json::from_slice(&self.request.body).map_err(|e| {
            AuthError::new(
                400,
                "bad_json",
                &format!("Could not parse request body as JSON: {e}"),
            )
        })
    }

    pub fn user_agent(&self) -> Option<String> {
        self.request.header("user-agent").map(str::to_owned)
    }
}

pub fn setting(key: &str, default: &str) -> String {
    config::get(key).unwrap_or_else(|| default.to_owned())
}

pub fn setting_u64(key: &str, default: u64) -> u64 {
    config::get(key)
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

pub fn setting_bool(key: &str, default: bool) -> bool {
    config::get(key).map(|v| v == "true").unwrap_or(default)
}

struct Auth;

impl Handler for Auth {
    fn handle(request: Request) -> Response {
        let principal = context::caller();
        let claims = serde_json::from_str(&principal.claims).unwrap_or(Value::Null);
        let call = Call {
            principal,
            claims,
            client_ip: context::client_ip(),
            request,
        };
        // SelfDB's own `/users` API (the host routes it here unprefixed;
        // `/auth/v1/users` never reaches it).
        if call.request.path == "/users" || call.request.path.starts_with("/users/") {
            let (method, path) = (call.request.method.clone(), call.request.path.clone());
            return selfdb_users::route(&call, &method, &path);
        }
        let path = call
            .request
            .path
            .strip_prefix("/auth/v1")
            .unwrap_or(&call.request.path)
            .trim_end_matches('/')
            .to_owned();
        let method = call.request.method.clone();
        let result = match (method.as_str(), path.as_str()) {
            ("POST", "/signup") => flows::signup(&call),
            ("POST", "/token") => flows::token(&call),
            ("POST", "/verify") => flows::verify(&call),
            ("GET", "/verify") => Ok(flows::verify_link(&call)),
            ("POST", "/recover") => flows::recover(&call),
            ("GET", "/user") => account::get_user(&call),
            ("PUT", "/user") => account::update_user(&call),
            ("POST", "/logout") => account::logout(&call),
            ("GET", "/settings") => Ok(flows::settings()),
            ("GET", "/.well-known/jwks.json") => Ok(Response::new(
                200,
                "application/json",
                selfdb_sdk::tokens::jwks().into_bytes(),
            )
            .with_header("cache-control", "public, max-age=600")),
            ("GET", "/health") => Ok(Response::json(
                200,
                &serde_json::json!({"name": "SelfDB Auth", "version": "0.1.0"}),
            )),
            (_, p) if p == "/admin/users" || p.starts_with("/admin/users/") => {
                admin_users::route(&call, &method, p)
            }
            _ => Err(AuthError::new(404, "not_found", "Not found")),
        };
        result.unwrap_or_else(AuthError::into_response)
    }
}

selfdb_sdk::http_component!(Auth);
