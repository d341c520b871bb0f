//! SelfDB's own users API (`/users/...`, what SelfDB's SDKs call), on the
//! same users, sessions and tokens as `/auth/v1`: a user signed up here
//! signs in there and the other way round. Its answers are SelfDB's
//! shapes, its errors `{"detail"}`.
//!
//! WIP (issue 25, chunk 2): sign-up, token, refresh and `me`; the rest of
//! the routes answer 404 until they are built.

use crate::account::authenticated;
use crate::error::AuthError;
use crate::flows::{check_password, create_user, password_grant};
use crate::store::{self, as_json, text};
use crate::{session, setting_bool, Call};
use selfdb_sdk::Response;
use serde_json::{json, Value};

/// A user as the SDK parses it (`user_from_dict`): camelCase names,
/// `role` USER or ADMIN, timestamps with six fraction digits and a `Z`.
const SELFDB_USER: &str = "jsonb_build_object(
    'id', u.id, 'email', coalesce(u.email, ''),
    'firstName', coalesce(u.raw_user_meta_data->>'first_name', ''),
    'lastName', coalesce(u.raw_user_meta_data->>'last_name', ''),
    'role', case when u.raw_app_meta_data->>'selfdb_role' = 'ADMIN' then 'ADMIN' else 'USER' end,
    'isActive', not coalesce(u.banned_until > now(), false),
    'created_at', to_char(u.created_at at time zone 'utc', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'),
    'updated_at', to_char(u.updated_at at time zone 'utc', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'))";

fn selfdb_user(id: &str) -> Result<Option<Value>, AuthError> {
    let sql = format!(
        "select {SELFDB_USER} from auth.users u where u.id = $1::uuid and u.deleted_at is null"
    );
    Ok(store::scalar(&sql, &[text(id)])?.as_ref().and_then(as_json))
}

/// The error as SelfDB's API words it and the status the SDK maps to its
/// exception classes.
pub fn detail(err: AuthError) -> Response {
    let (status, message) = match err.code.as_str() {
        "invalid_credentials" => (401, "Incorrect email or password".to_owned()),
        "refresh_token_not_found"
        | "refresh_token_already_used"
        | "session_not_found"
        | "bad_jwt"
        | "user_not_found"
        | "not_authenticated" => (401, err.message),
        "user_already_exists" => (409, "Email already registered".to_owned()),
        "user_banned" => (400, "Inactive user".to_owned()),
        "validation_failed" | "weak_password" | "bad_json" => (422, err.message),
        _ => (err.status, err.message),
    };
    let mut response = Response::json(status, &json!({ "detail": message }));
    if let Some(seconds) = err.retry_after {
        response = response.with_header("retry-after", &seconds.to_string());
    }
    response
}

fn field<'a>(body: &'a Value, name: &str) -> Result<&'a str, AuthError> {
    body[name]
        .as_str()
        .ok_or_else(|| AuthError::validation(&format!("{name} is required (a string)")))
}

/// `POST /users/`: sign-up, without a session (the SDK logs in after).
fn sign_up(call: &Call) -> Result<Response, AuthError> {
    if setting_bool("DISABLE_SIGNUP", false) {
        return Err(AuthError::new(
            403,
            "signup_disabled",
            "Signups are not allowed",
        ));
    }
    let body = call.body()?;
    let email = store::normalize_email(field(&body, "email")?)?;
    let password = field(&body, "password")?;
    let (first, last) = (field(&body, "firstName")?, field(&body, "lastName")?);
    check_password(password)?;
    let taken = store::scalar(
        "select exists (select 1 from auth.users where lower(email) = $1)",
        &[text(&email)],
    )?;
    if taken.as_ref().is_some_and(store::as_bool) {
        return Err(AuthError::new(
            422,
            "user_already_exists",
            "User already registered",
        ));
    }
    let full = format!("{first} {last}").trim().to_owned();
    let metadata = json!({"first_name": first, "last_name": last, "full_name": full});
    let id = create_user(&email, password, metadata, true)?;
    let user = selfdb_user(&id)?.ok_or_else(|| AuthError::unexpected("user vanished"))?;
    Ok(Response::json(201, &user))
}

fn me(call: &Call) -> Result<Response, AuthError> {
    if call.principal.user_id.is_none() {
        return Err(AuthError::new(
            401,
            "not_authenticated",
            "Not authenticated",
        ));
    }
    let (user_id, _) = authenticated(call)?;
    let user = selfdb_user(&user_id)?
        .ok_or_else(|| AuthError::new(401, "user_not_found", "User not found"))?;
    Ok(Response::json(200, &user))
}

pub fn route(call: &Call, method: &str, path: &str) -> Response {
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let result = match (method, segments.as_slice()) {
        ("POST", ["users"]) => sign_up(call),
        ("POST", ["users", "token"]) => call.body().and_then(|body| password_grant(call, &body)),
        ("POST", ["users", "token", "refresh"]) => {
            call.body().and_then(|body| session::refresh(&body))
        }
        ("GET", ["users", "me"]) => me(call),
        _ => Err(AuthError::new(404, "not_found", "Not Found")),
    };
    result.unwrap_or_else(detail)
}
