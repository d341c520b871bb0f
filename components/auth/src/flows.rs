//! Sign-up, sign-in, verification and password recovery.

use crate::error::AuthError;
use crate::session;
use crate::store::{self, as_bool, as_text, json, text};
use crate::{setting, setting_bool, setting_u64, Call};
use selfdb_sdk::{mailer, passwords, rate_limit, Response};
use serde_json::{json, Value};

/// Longest password argon2 is asked to hash (GoTrue's bcrypt limit).
const MAX_PASSWORD_BYTES: usize = 72;
/// How long a mailed code or link stays valid.
const OTP_LIFETIME: &str = "1 hour";

pub fn check_password(password: &str) -> Result<(), AuthError> {
    if password.is_empty() {
        return Err(AuthError::validation("Signup requires a valid password"));
    }
    if password.len() > MAX_PASSWORD_BYTES {
        return Err(AuthError::validation(
            "Password cannot be longer than 72 characters",
        ));
    }
    let min = setting_u64("PASSWORD_MIN_LENGTH", 6) as usize;
    if password.chars().count() < min {
        let message = format!("Password should be at least {min} characters.");
        let mut err = AuthError::new(422, "weak_password", &message);
        err.extra = Some((
            "weak_password".into(),
            json!({"reasons": ["length"], "message": message}),
        ));
        return Err(err);
    }
    Ok(())
}

pub fn hash_password(password: &str) -> Result<String, AuthError> {
    passwords::hash(password).map_err(|e| AuthError::unexpected(&e))
}

fn site_url() -> String {
    setting("SITE_URL", "http://localhost")
}

/// Where a link may send the user: the site itself, or the default.
fn redirect_target(call: &Call) -> String {
    let site = site_url();
    match call.request.query_param("redirect_to") {
        Some(target) if target.starts_with(&site) => target,
        _ => site,
    }
}

fn send_link(
    call: &Call,
    email: &str,
    kind: &str,
    token_hash: &str,
    otp: &str,
) -> Result<(), AuthError> {
    let api = setting("API_EXTERNAL_URL", "");
    let link = format!(
        "{api}/verify?token={token_hash}&type={kind}&redirect_to={}",
        percent_encode(&redirect_target(call))
    );
    let (subject, intro) = match kind {
        "recovery" => (
            "Reset your password",
            "Follow this link to reset your password:",
        ),
        "email_change" => (
            "Confirm your new email",
            "Follow this link to confirm your new email:",
        ),
        _ => (
            "Confirm your signup",
            "Follow this link to confirm your account:",
        ),
    };
    let body = format!("{intro}\n{link}\n\nOr enter this code: {otp}\n");
    mailer::send(email, subject, &body, kind)
        .map_err(|e| AuthError::unexpected(&format!("mail: {e}")))
}

fn percent_encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

pub fn signup(call: &Call) -> Result<Response, AuthError> {
    if setting_bool("DISABLE_SIGNUP", false) {
        return Err(AuthError::new(
            422,
            "signup_disabled",
            "Signups not allowed for this instance",
        ));
    }
    let body = call.body()?;
    let email = store::normalize_email(body["email"].as_str().unwrap_or_default())?;
    let password = body["password"].as_str().unwrap_or_default();
    check_password(password)?;
    let data = match &body["data"] {
        Value::Object(map) => Value::Object(map.clone()),
        _ => json!({}),
    };
    let autoconfirm = setting_bool("AUTOCONFIRM", true);

    let existing = store::query(
        "select id::text, email_confirmed_at is not null from auth.users where lower(email) = $1",
        &[text(&email)],
    )?;
    if let Some(row) = existing.rows.first() {
        let id = as_text(&row[0]).unwrap_or_default();
        let confirmed = as_bool(&row[1]);
        if confirmed && autoconfirm {
            return Err(AuthError::new(
                422,
                "user_already_exists",
                "User already registered",
            ));
        }
        if confirmed {
            // Say nothing that tells whether this address has an account.
            return Ok(Response::json(200, &fake_user(&email, &data)?));
        }
        resend_confirmation(call, &id, &email)?;
        let user = store::user_json(&id)?.unwrap_or(Value::Null);
        return Ok(Response::json(200, &user));
    }

    let id = create_user(&email, password, data, autoconfirm)?;
    if autoconfirm {
        return session::start(call, &id, "password");
    }
    resend_confirmation(call, &id, &email)?;
    let user = store::user_json(&id)?.unwrap_or(Value::Null);
    Ok(Response::json(200, &user))
}

/// Inserts a user with a password and its email identity (as sign-up
/// does, without a session); returns its id. `metadata` is the user's own
/// data; the standard keys are added.
pub fn create_user(
    email: &str,
    password: &str,
    metadata: Value,
    confirmed: bool,
) -> Result<String, AuthError> {
    let hash = hash_password(password)?;
    let id = store::scalar("select gen_random_uuid()::text", &[])?
        .as_ref()
        .and_then(as_text)
        .ok_or_else(|| AuthError::unexpected("no uuid"))?;
    let mut metadata = metadata;
    metadata["email"] = json!(email);
    metadata["email_verified"] = json!(confirmed);
    metadata["phone_verified"] = json!(false);
    metadata["sub"] = json!(id);
    let identity =
        json!({"sub": id, "email": email, "email_verified": confirmed, "phone_verified": false});
    store::execute(
        "insert into auth.users (instance_id, id, aud, role, email, encrypted_password, email_confirmed_at,
                                 raw_app_meta_data, raw_user_meta_data, created_at, updated_at)
         values ('00000000-0000-0000-0000-000000000000', $1::uuid, 'authenticated', 'authenticated', $2, $3,
                 case when $4::boolean then now() end,
                 '{\"provider\": \"email\", \"providers\": [\"email\"]}'::jsonb, $5::jsonb, now(), now())",
        &[text(&id), text(email), text(&hash), selfdb_sdk::db::Value::Boolean(confirmed), json(&metadata)],
    )?;
    store::execute(
        "insert into auth.identities (provider_id, user_id, identity_data, provider, created_at, updated_at)
         values ($1::text, $1::uuid, $2::jsonb, 'email', now(), now())",
        &[text(&id), json(&identity)],
    )?;
    Ok(id)
}

fn fake_user(email: &str, data: &Value) -> Result<Value, AuthError> {
    let id = store::scalar("select gen_random_uuid()::text", &[])?
        .as_ref()
        .and_then(as_text)
        .unwrap_or_default();
    Ok(json!({
        "id": id, "aud": "authenticated", "role": "", "email": email, "phone": "",
        "confirmation_sent_at": store::scalar("select now()", &[])?.as_ref().and_then(as_text),
        "app_metadata": {"provider": "email", "providers": ["email"]},
        "user_metadata": data, "identities": [], "is_anonymous": false,
    }))
}

fn resend_confirmation(call: &Call, user_id: &str, email: &str) -> Result<(), AuthError> {
    let otp = store::random_otp()?;
    let hash = store::token_hash(email, &otp);
    store::execute(
        "update auth.users set confirmation_token = $2, confirmation_sent_at = now() where id = $1::uuid",
        &[text(user_id), text(&hash)],
    )?;
    send_link(call, email, "signup", &hash, &otp)
}

/// Mails a confirmation link to `email`; the address changes when it is
/// followed (`/verify` type `email_change`).
pub fn request_email_change(call: &Call, user_id: &str, email: &str) -> Result<(), AuthError> {
    let otp = store::random_otp()?;
    let hash = store::token_hash(email, &otp);
    store::execute(
        "update auth.users set email_change = $2, email_change_token_new = $3, email_change_sent_at = now()
         where id = $1::uuid",
        &[text(user_id), text(email), text(&hash)],
    )?;
    send_link(call, email, "email_change", &hash, &otp)
}

pub fn token(call: &Call) -> Result<Response, AuthError> {
    let body = call.body()?;
    match call.request.query_param("grant_type").as_deref() {
        Some("password") => password_grant(call, &body),
        Some("refresh_token") => session::refresh(&body),
        _ => Err(AuthError::new(
            400,
            "invalid_credentials",
            "unsupported_grant_type",
        )),
    }
}

fn too_many(retry_after: u32) -> AuthError {
    let mut err = AuthError::new(429, "over_request_rate_limit", "Request rate limit reached");
    err.retry_after = Some(retry_after);
    err
}

pub fn password_grant(call: &Call, body: &Value) -> Result<Response, AuthError> {
    let Some(raw_email) = body["email"].as_str() else {
        return Err(AuthError::validation("missing email or phone"));
    };
    let email = store::normalize_email(raw_email)?;
    let password = body["password"].as_str().unwrap_or_default();
    let window = setting_u64("RATE_WINDOW_SECONDS", 300) as u32;
    let email_key = format!("sign-in:email:{email}");
    let ip_key = format!(
        "sign-in:ip:{}",
        call.client_ip.as_deref().unwrap_or("unknown")
    );
    let per_email = setting_u64("FAILED_SIGN_INS_PER_EMAIL", 5) as u32;
    let per_ip = setting_u64("FAILED_SIGN_INS_PER_IP", 30) as u32;
    if let Some(wait) = rate_limit::check(&email_key, per_email, window)
        .or_else(|| rate_limit::check(&ip_key, per_ip, window))
    {
        return Err(too_many(wait));
    }

    let rows = store::query(
        "select id::text, encrypted_password, email_confirmed_at is not null,
                coalesce(banned_until > now(), false)
         from auth.users where lower(email) = $1 and deleted_at is null",
        &[text(&email)],
    )?;
    let row = rows.rows.first();
    let stored_hash = row.and_then(|r| as_text(&r[1]));
    if row.is_some_and(|r| as_bool(&r[3])) {
        return Err(AuthError::new(400, "user_banned", "User is banned"));
    }
    if !passwords::verify(password, stored_hash.as_deref()) {
        rate_limit::hit(&email_key, window);
        rate_limit::hit(&ip_key, window);
        return Err(AuthError::new(
            400,
            "invalid_credentials",
            "Invalid login credentials",
        ));
    }
    let Some(row) = row else {
        return Err(AuthError::new(
            400,
            "invalid_credentials",
            "Invalid login credentials",
        ));
    };
    if !as_bool(&row[2]) {
        return Err(AuthError::new(
            400,
            "email_not_confirmed",
            "Email not confirmed",
        ));
    }
    let id = as_text(&row[0]).unwrap_or_default();
    session::start(call, &id, "password")
}

/// Which token column a verification type checks, and its sent-at column.
fn token_columns(kind: &str) -> Option<&'static [(&'static str, &'static str)]> {
    match kind {
        "signup" | "invite" => Some(&[("confirmation_token", "confirmation_sent_at")]),
        "recovery" | "magiclink" => Some(&[("recovery_token", "recovery_sent_at")]),
        "email" => Some(&[
            ("confirmation_token", "confirmation_sent_at"),
            ("recovery_token", "recovery_sent_at"),
        ]),
        "email_change" => Some(&[("email_change_token_new", "email_change_sent_at")]),
        _ => None,
    }
}

/// Finds the user a token hash was mailed to, consumes the token and applies
/// what it confirms; returns the user id.
fn consume_token(kind: &str, hash: &str, expired_message: &str) -> Result<String, AuthError> {
    let columns = token_columns(kind)
        .ok_or_else(|| AuthError::validation("Verify requires a valid verification type"))?;
    for (token_column, sent_column) in columns {
        // Column names come from the fixed table above, never from input.
        let sql = format!(
            "select id::text, coalesce(banned_until > now(), false) from auth.users
             where {token_column} = $1 and {token_column} <> ''
               and {sent_column} > now() - interval '{OTP_LIFETIME}'"
        );
        let rows = store::query(&sql, &[text(hash)])?;
        let Some(row) = rows.rows.first() else {
            continue;
        };
        let id = as_text(&row[0]).unwrap_or_default();
        if as_bool(&row[1]) {
            return Err(AuthError::new(403, "user_banned", "User is banned"));
        }
        let apply = match *token_column {
            "email_change_token_new" => {
                "update auth.users set email = email_change, email_change = '', email_change_token_new = '',
                        updated_at = now() where id = $1::uuid"
            }
            "recovery_token" => {
                "update auth.users set recovery_token = '', email_confirmed_at = coalesce(email_confirmed_at, now()),
                        updated_at = now() where id = $1::uuid"
            }
            _ => {
                "update auth.users set confirmation_token = '', email_confirmed_at = coalesce(email_confirmed_at, now()),
                        raw_user_meta_data = coalesce(raw_user_meta_data, '{}'::jsonb) || '{\"email_verified\": true}'::jsonb,
                        updated_at = now() where id = $1::uuid"
            }
        };
        store::execute(apply, &[text(&id)])?;
        store::execute(
            "update auth.identities set identity_data = identity_data || jsonb_build_object('email_verified', true, 'email', (select email from auth.users where id = $1::uuid)),
                    updated_at = now() where user_id = $1::uuid and provider = 'email'",
            &[text(&id)],
        )?;
        return Ok(id);
    }
    Err(AuthError::new(403, "otp_expired", expired_message))
}

pub fn verify(call: &Call) -> Result<Response, AuthError> {
    let body = call.body()?;
    let kind = body["type"]
        .as_str()
        .ok_or_else(|| AuthError::validation("Verify requires a verification type"))?;
    let (hash, message) = match (body["token_hash"].as_str(), body["token"].as_str()) {
        (Some(hash), None) => (hash.to_owned(), "Email link is invalid or has expired"),
        (None, Some(token)) => {
            let email = store::normalize_email(body["email"].as_str().unwrap_or_default())?;
            (
                store::token_hash(&email, token),
                "Token has expired or is invalid",
            )
        }
        _ => {
            return Err(AuthError::validation(
                "Verify requires either a token or a token hash",
            ))
        }
    };
    let id = consume_token(kind, &hash, message)?;
    session::start(call, &id, "otp")
}

/// `GET /verify`: the link in a mail. Always a redirect, with the session
/// (or the error) in the URL fragment, where auth-js looks for it.
pub fn verify_link(call: &Call) -> Response {
    let target = redirect_target(call);
    let kind = call.request.query_param("type").unwrap_or_default();
    let token = call.request.query_param("token").unwrap_or_default();
    let fragment = match consume_token(&kind, &token, "Email link is invalid or has expired")
        .and_then(|id| session::start(call, &id, "otp"))
    {
        Ok(response) => {
            let session: Value = serde_json::from_slice(&response.body).unwrap_or(Value::Null);
            format!(
                "access_token={}&expires_at={}&expires_in={}&refresh_token={}&token_type=bearer&type={}",
                session["access_token"].as_str().unwrap_or_default(),
                session["expires_at"],
                session["expires_in"],
                session["refresh_token"].as_str().unwrap_or_default(),
                percent_encode(&kind)
            )
        }
        Err(err) => format!(
            "error={}&error_code={}&error_description={}",
            if err.status == 403 {
                "access_denied"
            } else {
                "invalid_request"
            },
            percent_encode(&err.code),
            percent_encode(&err.message)
        ),
    };
    Response::new(303, "text/plain", Vec::new())
        .with_header("location", &format!("{target}#{fragment}"))
}

pub fn recover(call: &Call) -> Result<Response, AuthError> {
    let body = call.body()?;
    let raw = body["email"]
        .as_str()
        .ok_or_else(|| AuthError::validation("Password recovery requires an email"))?;
    let email = store::normalize_email(raw)?;
    let key = format!("recover:{email}");
    if let Some(wait) = rate_limit::check(&key, 1, 60) {
        let mut err = AuthError::new(
            429,
            "over_email_send_rate_limit",
            &format!("For security purposes, you can only request this after {wait} seconds."),
        );
        err.retry_after = Some(wait);
        return Err(err);
    }
    rate_limit::hit(&key, 60);
    let id = store::scalar(
        "select id::text from auth.users where lower(email) = $1 and deleted_at is null",
        &[text(&email)],
    )?;
    if let Some(id) = id.as_ref().and_then(as_text) {
        let otp = store::random_otp()?;
        let hash = store::token_hash(&email, &otp);
        store::execute(
            "update auth.users set recovery_token = $2, recovery_sent_at = now() where id = $1::uuid",
            &[text(&id), text(&hash)],
        )?;
        send_link(call, &email, "recovery", &hash, &otp)?;
    }
    Ok(Response::json(200, &json!({})))
}

pub fn settings() -> Response {
    Response::json(
        200,
        &json!({
            "external": {"email": true, "phone": false, "anonymous_users": false},
            "disable_signup": setting_bool("DISABLE_SIGNUP", false),
            "mailer_autoconfirm": setting_bool("AUTOCONFIRM", true),
            "phone_autoconfirm": false,
            "sms_provider": "",
            "saml_enabled": false,
        }),
    )
}
