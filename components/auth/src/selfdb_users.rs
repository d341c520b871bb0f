//! SelfDB's own users API (`/users/...`, what SelfDB's SDKs call), on the
//! same users, sessions and tokens as `/auth/v1`: a user signed up here
//! signs in there and the other way round. Its answers are SelfDB's
//! shapes, its errors `{"detail"}`.
//!
//! Who may do what (as SelfDB does): anyone with the key signs up and in;
//! a signed-in user reads users and changes their own names, email and
//! password; an admin (the service key, a dashboard admin, or a user whose
//! `app_metadata.selfdb_role` is `ADMIN`) changes anyone, roles included,
//! and deletes users.

use crate::account::{authenticated, MERGE_METADATA};
use crate::admin_users::{email_taken, is_uuid, set_password};
use crate::error::AuthError;
use crate::flows::{check_password, create_user, password_grant};
use crate::store::{self, as_json, text};
use crate::{session, setting_bool, Call};
use selfdb_sdk::db::Value as SqlValue;
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
    if email_taken(&email, None)? {
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

fn signed_in(call: &Call) -> Result<String, AuthError> {
    if call.principal.user_id.is_none() {
        return Err(AuthError::new(
            401,
            "not_authenticated",
            "Not authenticated",
        ));
    }
    Ok(authenticated(call)?.0)
}

/// The service role, or a user the database says is an ADMIN now (a
/// token's claim may predate a demotion).
fn is_admin(call: &Call) -> Result<bool, AuthError> {
    if call.principal.role == "service_role" {
        return Ok(true);
    }
    let Some(user_id) = call.principal.user_id.as_deref() else {
        return Ok(false);
    };
    Ok(store::scalar(
        "select coalesce(raw_app_meta_data->>'selfdb_role' = 'ADMIN', false) from auth.users where id = $1::uuid",
        &[text(user_id)],
    )?
    .as_ref()
    .is_some_and(store::as_bool))
}

/// A reader of users: any signed-in user, or an admin.
fn reader(call: &Call) -> Result<(), AuthError> {
    if is_admin(call)? {
        return Ok(());
    }
    signed_in(call).map(|_| ())
}

fn me(call: &Call) -> Result<Response, AuthError> {
    let user_id = signed_in(call)?;
    let user = selfdb_user(&user_id)?
        .ok_or_else(|| AuthError::new(401, "user_not_found", "User not found"))?;
    Ok(Response::json(200, &user))
}

fn not_found() -> AuthError {
    AuthError::new(404, "not_found", "User not found")
}

fn get(call: &Call, id: &str) -> Result<Response, AuthError> {
    reader(call)?;
    if !is_uuid(id) {
        return Err(not_found());
    }
    Ok(Response::json(
        200,
        &selfdb_user(id)?.ok_or_else(not_found)?,
    ))
}

/// `search` as SelfDB matches it: part of the email or a name, any case,
/// `%` and `_` themselves.
fn search_pattern(call: &Call) -> SqlValue {
    match call.request.query_param("search").filter(|s| !s.is_empty()) {
        None => SqlValue::Null,
        Some(s) => SqlValue::Text(format!(
            "%{}%",
            s.replace('\\', "\\\\")
                .replace('%', "\\%")
                .replace('_', "\\_")
        )),
    }
}

const MATCHES: &str = "u.deleted_at is null and ($1::text is null or u.email ilike $1 \
    or u.raw_user_meta_data->>'first_name' ilike $1 or u.raw_user_meta_data->>'last_name' ilike $1)";

fn count(call: &Call) -> Result<Response, AuthError> {
    reader(call)?;
    let n = store::scalar(
        &format!("select count(*) from auth.users u where {MATCHES}"),
        &[search_pattern(call)],
    )?;
    let n = match n {
        Some(SqlValue::Int(n)) => n,
        _ => 0,
    };
    Ok(Response::json(200, &json!({ "count": n })))
}

fn number(
    call: &Call,
    name: &str,
    default: i64,
    range: std::ops::RangeInclusive<i64>,
) -> Result<i64, AuthError> {
    match call.request.query_param(name) {
        None => Ok(default),
        Some(text) => match text.parse::<i64>() {
            Ok(n) if range.contains(&n) => Ok(n),
            _ => Err(AuthError::validation(&format!(
                "{name} must be a whole number from {} to {}",
                range.start(),
                range.end()
            ))),
        },
    }
}

fn list(call: &Call) -> Result<Response, AuthError> {
    reader(call)?;
    let skip = number(call, "skip", 0, 0..=i64::MAX)?;
    let limit = number(call, "limit", 100, 1..=1000)?;
    // Columns from a fixed list: nothing from the query reaches the SQL text.
    let column = match call.request.query_param("sort_by").as_deref() {
        None | Some("created_at") => "u.created_at",
        Some("updated_at") => "u.updated_at",
        Some("email") => "u.email",
        Some("first_name" | "firstName") => "u.raw_user_meta_data->>'first_name'",
        Some("last_name" | "lastName") => "u.raw_user_meta_data->>'last_name'",
        Some(other) => {
            return Err(AuthError::validation(&format!(
                "sort_by {other:?}: use created_at, updated_at, email, first_name or last_name"
            )))
        }
    };
    let order = match call.request.query_param("sort_order").as_deref() {
        None | Some("desc") => "desc",
        Some("asc") => "asc",
        Some(other) => {
            return Err(AuthError::validation(&format!(
                "sort_order {other:?}: use asc or desc"
            )))
        }
    };
    let sql = format!(
        "select coalesce(jsonb_agg(x.j order by x.n), '[]'::jsonb) from (
           select {SELFDB_USER} as j, row_number() over (order by {column} {order} nulls last, u.id) as n
           from auth.users u where {MATCHES}
           order by {column} {order} nulls last, u.id limit $2 offset $3) x"
    );
    let users = store::scalar(
        &sql,
        &[
            search_pattern(call),
            SqlValue::Int(limit),
            SqlValue::Int(skip),
        ],
    )?
    .as_ref()
    .and_then(as_json)
    .unwrap_or_else(|| json!([]));
    Ok(Response::json(200, &users))
}

fn update(call: &Call, id: &str) -> Result<Response, AuthError> {
    let admin = is_admin(call)?;
    let own = call.principal.user_id.as_deref() == Some(id);
    if !admin && !own {
        signed_in(call)?;
        return Err(AuthError::new(403, "forbidden", "Not enough permissions"));
    }
    if !is_uuid(id) || selfdb_user(id)?.is_none() {
        return Err(not_found());
    }
    let body = call.body()?;
    if !body["role"].is_null() && !admin {
        return Err(AuthError::new(
            403,
            "forbidden",
            "Only an admin changes roles",
        ));
    }
    if let Some(email) = body["email"].as_str() {
        let email = store::normalize_email(email)?;
        if email_taken(&email, Some(&id.to_ascii_lowercase()))? {
            return Err(AuthError::new(
                422,
                "user_already_exists",
                "Email already registered",
            ));
        }
        store::execute(
            "update auth.users set email = $2, raw_user_meta_data = coalesce(raw_user_meta_data, '{}') || jsonb_build_object('email', $2::text), updated_at = now() where id = $1::uuid",
            &[text(id), text(&email)],
        )?;
        store::execute(
            "update auth.identities set identity_data = identity_data || jsonb_build_object('email', $2::text), updated_at = now() where user_id = $1::uuid and provider = 'email'",
            &[text(id), text(&email)],
        )?;
    }
    if let Some(password) = body["password"].as_str() {
        // A user changing their own password keeps the session they use.
        let keep = if own {
            call.claims["session_id"].as_str().unwrap_or_default()
        } else {
            ""
        };
        set_password(id, password, keep)?;
    }
    let mut names = serde_json::Map::new();
    for (field, key) in [("firstName", "first_name"), ("lastName", "last_name")] {
        if let Some(value) = body[field].as_str() {
            names.insert(key.to_owned(), json!(value));
        }
    }
    if !names.is_empty() {
        store::execute(
            &format!(
                "update auth.users set raw_user_meta_data = {}, updated_at = now() where id = $1::uuid",
                MERGE_METADATA.replace("{column}", "raw_user_meta_data")
            ),
            &[text(id), store::json(&Value::Object(names))],
        )?;
    }
    if let Some(role) = body["role"].as_str() {
        let role = match role {
            "ADMIN" | "USER" => role,
            other => {
                return Err(AuthError::validation(&format!(
                    "role {other:?}: use ADMIN or USER"
                )))
            }
        };
        store::execute(
            "update auth.users set raw_app_meta_data = coalesce(raw_app_meta_data, '{}') || jsonb_build_object('selfdb_role', $2::text), updated_at = now() where id = $1::uuid",
            &[text(id), text(role)],
        )?;
    }
    Ok(Response::json(
        200,
        &selfdb_user(id)?.ok_or_else(not_found)?,
    ))
}

fn delete(call: &Call, id: &str) -> Result<Response, AuthError> {
    if !is_admin(call)? {
        signed_in(call)?;
        return Err(AuthError::new(403, "forbidden", "Not enough permissions"));
    }
    if !is_uuid(id) || selfdb_user(id)?.is_none() {
        return Err(not_found());
    }
    store::execute("delete from auth.users where id = $1::uuid", &[text(id)])?;
    Ok(Response::json(
        200,
        &json!({"message": "User deleted successfully", "deleted_id": id}),
    ))
}

/// `POST /users/logout`: the session of the given refresh token (the
/// caller's own), or of the access token.
fn logout(call: &Call) -> Result<Response, AuthError> {
    let user_id = signed_in(call)?;
    let body = call.body()?;
    match body["refresh_token"].as_str().filter(|t| !t.is_empty()) {
        Some(token) => {
            store::execute(
                "delete from auth.sessions where user_id = $2::uuid and id = (
                   select session_id from auth.refresh_tokens where token = $1)",
                &[text(&store::sha256_hex(token)), text(&user_id)],
            )?;
        }
        None => {
            if let Some(session) = call.claims["session_id"].as_str() {
                store::execute(
                    "delete from auth.sessions where id = $1::uuid and user_id = $2::uuid",
                    &[text(session), text(&user_id)],
                )?;
            }
        }
    }
    Ok(Response::json(
        200,
        &json!({"message": "Logged out successfully"}),
    ))
}

fn logout_all(call: &Call) -> Result<Response, AuthError> {
    let user_id = signed_in(call)?;
    let ended = store::execute(
        "delete from auth.sessions where user_id = $1::uuid",
        &[text(&user_id)],
    )?;
    Ok(Response::json(
        200,
        &json!({"message": "Logged out from all devices", "sessions_revoked": ended}),
    ))
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
        ("POST", ["users", "logout"]) => logout(call),
        ("POST", ["users", "logout", "all"]) => logout_all(call),
        ("GET", ["users", "count"]) => count(call),
        ("GET", ["users"]) => list(call),
        ("GET", ["users", id]) => get(call, id),
        ("PATCH", ["users", id]) => update(call, id),
        ("DELETE", ["users", id]) => delete(call, id),
        _ => Err(AuthError::new(404, "not_found", "Not Found")),
    };
    result.unwrap_or_else(detail)
}
