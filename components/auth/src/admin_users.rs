//! `/admin/users`: GoTrue's admin users API, user management for the
//! service role (not the host's own admin routes).

use crate::account::MERGE_METADATA;
use crate::error::AuthError;
use crate::flows::{check_password, hash_password};
use crate::store::{self, as_bool, as_text, json, text, USER_JSON};
use crate::Call;
use selfdb_sdk::db::Value as SqlValue;
use selfdb_sdk::Response;
use serde_json::{json, Value};

const DEFAULT_PER_PAGE: u64 = 50;
const MAX_PER_PAGE: u64 = 1000;

pub fn route(call: &Call, method: &str, path: &str) -> Result<Response, AuthError> {
    if call.principal.role != "service_role" {
        return Err(AuthError::new(403, "not_admin", "User not allowed"));
    }
    let id = path.strip_prefix("/admin/users/").filter(|s| !s.is_empty());
    match (method, id) {
        ("GET", None) => list(call),
        ("POST", None) => create(call),
        ("GET", Some(id)) => Ok(Response::json(200, &existing(id)?)),
        ("PUT", Some(id)) => update(call, id),
        ("DELETE", Some(id)) => delete(id),
        _ => Err(AuthError::new(
            405,
            "method_not_allowed",
            "Method not allowed",
        )),
    }
}

pub fn is_uuid(id: &str) -> bool {
    id.len() == 36
        && id.char_indices().all(|(i, c)| {
            if [8, 13, 18, 23].contains(&i) {
                c == '-'
            } else {
                c.is_ascii_hexdigit()
            }
        })
}

fn existing(id: &str) -> Result<Value, AuthError> {
    if !is_uuid(id) {
        return Err(AuthError::new(
            404,
            "validation_failed",
            "user_id must be an UUID",
        ));
    }
    store::user_json(id)?.ok_or_else(|| AuthError::new(404, "user_not_found", "User not found"))
}

fn page_param(call: &Call, name: &str, default: u64) -> Result<u64, AuthError> {
    match call.request.query_param(name).filter(|v| !v.is_empty()) {
        None => Ok(default),
        Some(v) => match v.parse::<u64>() {
            Ok(n) if n > 0 => Ok(n),
            _ => Err(AuthError::validation(&format!(
                "Bad Pagination Parameters: invalid {name}"
            ))),
        },
    }
}

/// `filter` as GoTrue reads it: a part of the email or of
/// `user_metadata.full_name`, any case. Matched literally here (`%` and `_`
/// are not wildcards), where GoTrue pastes it into a pattern.
fn filter_pattern(call: &Call) -> SqlValue {
    match call.request.query_param("filter").filter(|f| !f.is_empty()) {
        None => SqlValue::Null,
        Some(filter) => {
            let escaped = filter
                .replace('\\', "\\\\")
                .replace('%', "\\%")
                .replace('_', "\\_");
            SqlValue::Text(format!("%{escaped}%"))
        }
    }
}

const FILTERED: &str = "u.deleted_at is null and ($1::text is null or u.email ilike $1 \
    or u.raw_user_meta_data->>'full_name' ilike $1)";

fn list(call: &Call) -> Result<Response, AuthError> {
    let page = page_param(call, "page", 1)?;
    let per_page = page_param(call, "per_page", DEFAULT_PER_PAGE)?.min(MAX_PER_PAGE);
    let pattern = filter_pattern(call);
    let total = match store::scalar(
        &format!("select count(*) from auth.users u where {FILTERED}"),
        std::slice::from_ref(&pattern),
    )? {
        Some(SqlValue::Int(n)) => n as u64,
        _ => 0,
    };
    let sql = format!(
        "select coalesce(jsonb_agg(x.u order by x.created_at desc), '[]'::jsonb) from (
             select {USER_JSON} as u, u.created_at from auth.users u where {FILTERED}
             order by u.created_at desc limit $2::bigint offset $3::bigint) x"
    );
    let users = store::scalar(
        &sql,
        &[
            pattern.clone(),
            SqlValue::Int(per_page as i64),
            SqlValue::Int(((page - 1) * per_page) as i64),
        ],
    )?
    .as_ref()
    .and_then(store::as_json)
    .unwrap_or_else(|| json!([]));
    let last = total.div_ceil(per_page).max(1);
    let mut links = Vec::new();
    if page < last {
        links.push(format!(
            "</admin/users?page={}&per_page={per_page}>; rel=\"next\"",
            page + 1
        ));
    }
    links.push(format!(
        "</admin/users?page={last}&per_page={per_page}>; rel=\"last\""
    ));
    Ok(
        Response::json(200, &json!({"users": users, "aud": "authenticated"}))
            .with_header("x-total-count", &total.to_string())
            .with_header("link", &links.join(", ")),
    )
}

/// Go's `time.ParseDuration` units as GoTrue accepts them for bans.
fn parse_duration_seconds(text: &str) -> Option<f64> {
    let mut rest = text.trim();
    let mut total = 0.0;
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let number_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let number: f64 = rest[..number_len].parse().ok()?;
        rest = &rest[number_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let factor = match &rest[..unit_len] {
            "h" => 3600.0,
            "m" => 60.0,
            "s" => 1.0,
            "ms" => 0.001,
            "us" | "µs" => 0.000_001,
            "ns" => 0.000_000_001,
            _ => return None,
        };
        total += number * factor;
        rest = &rest[unit_len..];
    }
    Some(total)
}

fn apply_ban(id: &str, ban: Option<&str>) -> Result<(), AuthError> {
    match ban {
        None | Some("") => Ok(()),
        Some("none") => store::execute(
            "update auth.users set banned_until = null, updated_at = now() where id = $1::uuid",
            &[text(id)],
        )
        .map(|_| ()),
        Some(duration) => {
            let seconds = parse_duration_seconds(duration).ok_or_else(|| {
                AuthError::validation(&format!("invalid format for ban duration: {duration}"))
            })?;
            store::execute(
                "update auth.users set banned_until = now() + make_interval(secs => $2::float8), updated_at = now()
                 where id = $1::uuid",
                &[text(id), SqlValue::Float(seconds)],
            )
            .map(|_| ())
        }
    }
}

pub fn email_taken(email: &str, except: Option<&str>) -> Result<bool, AuthError> {
    Ok(store::scalar(
        "select exists (select 1 from auth.users where lower(email) = $1 and id::text is distinct from $2)",
        &[text(email), store::opt_text(except)],
    )?
    .as_ref()
    .is_some_and(as_bool))
}

fn create(call: &Call) -> Result<Response, AuthError> {
    let body = call.body()?;
    let Some(raw_email) = body["email"].as_str() else {
        return Err(AuthError::validation(
            "Cannot create a user without either an email or phone",
        ));
    };
    let email = store::normalize_email(raw_email)?;
    if email_taken(&email, None)? {
        return Err(AuthError::new(
            422,
            "email_exists",
            "A user with this email address has already been registered",
        ));
    }
    let password = match body["password"].as_str() {
        Some(p) => {
            check_password(p)?;
            p.to_owned()
        }
        None => store::random_hex(32)?,
    };
    let hash = hash_password(&password)?;
    let confirmed = body["email_confirm"].as_bool().unwrap_or(false);
    let id = store::scalar("select gen_random_uuid()::text", &[])?
        .as_ref()
        .and_then(as_text)
        .ok_or_else(|| AuthError::unexpected("no uuid"))?;
    let mut app_metadata = json!({"provider": "email", "providers": ["email"]});
    if let Some(extra) = body["app_metadata"].as_object() {
        for (k, v) in extra {
            app_metadata[k] = v.clone();
        }
    }
    let mut user_metadata = body["user_metadata"]
        .as_object()
        .cloned()
        .map(Value::Object)
        .unwrap_or_else(|| json!({}));
    user_metadata["email"] = json!(email);
    user_metadata["email_verified"] = json!(confirmed);
    user_metadata["phone_verified"] = json!(false);
    user_metadata["sub"] = json!(id);
    let role = body["role"].as_str().unwrap_or("authenticated");
    store::execute(
        "insert into auth.users (instance_id, id, aud, role, email, encrypted_password, email_confirmed_at,
                                 raw_app_meta_data, raw_user_meta_data, created_at, updated_at)
         values ('00000000-0000-0000-0000-000000000000', $1::uuid, 'authenticated', $2, $3, $4,
                 case when $5::boolean then now() end, $6::jsonb, $7::jsonb, now(), now())",
        &[text(&id), text(role), text(&email), text(&hash), SqlValue::Boolean(confirmed), json(&app_metadata), json(&user_metadata)],
    )?;
    store::execute(
        "insert into auth.identities (provider_id, user_id, identity_data, provider, created_at, updated_at)
         values ($1::text, $1::uuid, $2::jsonb, 'email', now(), now())",
        &[
            text(&id),
            json(&json!({"sub": id, "email": email, "email_verified": confirmed, "phone_verified": false})),
        ],
    )?;
    apply_ban(&id, body["ban_duration"].as_str())?;
    Ok(Response::json(200, &existing(&id)?))
}

fn update(call: &Call, id: &str) -> Result<Response, AuthError> {
    existing(id)?;
    let body = call.body()?;
    if let Some(raw) = body["email"].as_str() {
        let email = store::normalize_email(raw)?;
        if email_taken(&email, Some(id))? {
            return Err(AuthError::new(
                422,
                "email_exists",
                "A user with this email address has already been registered",
            ));
        }
        store::execute(
            "update auth.users set email = $2, updated_at = now() where id = $1::uuid",
            &[text(id), text(&email)],
        )?;
    }
    if let Some(password) = body["password"].as_str() {
        set_password(id, password, "")?;
    }
    if let Some(confirm) = body["email_confirm"].as_bool() {
        store::execute(
            "update auth.users set email_confirmed_at = case when $2::boolean then coalesce(email_confirmed_at, now()) end,
                    updated_at = now() where id = $1::uuid",
            &[text(id), SqlValue::Boolean(confirm)],
        )?;
    }
    for (field, column) in [
        ("user_metadata", "raw_user_meta_data"),
        ("app_metadata", "raw_app_meta_data"),
    ] {
        if let Some(patch) = body.get(field).filter(|v| v.is_object()) {
            let sql = format!(
                "update auth.users set {column} = {}, updated_at = now() where id = $1::uuid",
                MERGE_METADATA.replace("{column}", column)
            );
            store::execute(&sql, &[text(id), json(patch)])?;
        }
    }
    if let Some(role) = body["role"].as_str() {
        store::execute(
            "update auth.users set role = $2, updated_at = now() where id = $1::uuid",
            &[text(id), text(role)],
        )?;
    }
    apply_ban(id, body["ban_duration"].as_str())?;
    Ok(Response::json(200, &existing(id)?))
}

fn delete(id: &str) -> Result<Response, AuthError> {
    existing(id)?;
    store::execute("delete from auth.users where id = $1::uuid", &[text(id)])?;
    Ok(Response::json(200, &json!({})))
}

/// Sets a user's password (checked, hashed) and ends the user's sessions
/// but `keep_session` (a session id, or empty for none), as GoTrue's admin
/// update does.
pub fn set_password(id: &str, password: &str, keep_session: &str) -> Result<(), AuthError> {
    check_password(password)?;
    let hash = hash_password(password)?;
    store::execute(
        "update auth.users set encrypted_password = $2, updated_at = now() where id = $1::uuid",
        &[text(id), text(&hash)],
    )?;
    store::execute(
        "delete from auth.sessions where user_id = $1::uuid and id::text <> $2",
        &[text(id), text(keep_session)],
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::{is_uuid, parse_duration_seconds};

    #[test]
    fn user_ids_must_be_uuids() {
        assert!(is_uuid("123e4567-e89b-12d3-a456-426614174000"));
        assert!(is_uuid("123E4567-E89B-12D3-A456-426614174000"));
        assert!(!is_uuid("123e4567e89b12d3a456426614174000"));
        assert!(!is_uuid("123e4567-e89b-12d3-a456-42661417400g"));
        assert!(!is_uuid("123e4567-e89b-12d3-a456-4266141740000"));
        assert!(!is_uuid(""));
    }

    #[test]
    fn ban_durations_read_like_go_durations() {
        assert_eq!(parse_duration_seconds("24h"), Some(86_400.0));
        assert_eq!(parse_duration_seconds("1h30m"), Some(5_400.0));
        assert_eq!(parse_duration_seconds("1.5s"), Some(1.5));
        assert_eq!(parse_duration_seconds("500ms"), Some(0.5));
        assert_eq!(parse_duration_seconds(" 10m "), Some(600.0));
        assert_eq!(parse_duration_seconds(""), None);
        assert_eq!(parse_duration_seconds("10"), None, "a unit is required");
        assert_eq!(parse_duration_seconds("1d"), None);
        assert_eq!(parse_duration_seconds("h"), None);
    }
}
