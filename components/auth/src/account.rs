//! The signed-in user's own account: `/user` and `/logout`.

use crate::error::AuthError;
use crate::flows::{check_password, hash_password};
use crate::store::{self, as_bool, as_text, json, text};
use crate::{setting_bool, Call};
use selfdb_sdk::{passwords, Response};
use serde_json::Value;

/// The caller's user id and session, as GoTrue's requireAuthentication
/// checks them.
pub fn authenticated(call: &Call) -> Result<(String, Option<String>), AuthError> {
    let Some(user_id) = call.principal.user_id.clone() else {
        return Err(AuthError::new(
            403,
            "bad_jwt",
            "invalid claim: missing sub claim",
        ));
    };
    let session_id = call.claims["session_id"].as_str().map(str::to_owned);
    if let Some(session) = &session_id {
        let exists = store::scalar(
            "select exists (select 1 from auth.sessions where id = $1::uuid and user_id = $2::uuid)",
            &[text(session), text(&user_id)],
        )?;
        if !exists.as_ref().is_some_and(as_bool) {
            return Err(AuthError::new(
                403,
                "session_not_found",
                "Session from session_id claim in JWT does not exist",
            ));
        }
    }
    Ok((user_id, session_id))
}

fn user_or_missing(user_id: &str) -> Result<Value, AuthError> {
    store::user_json(user_id)?.ok_or_else(|| {
        AuthError::new(
            403,
            "user_not_found",
            "User from sub claim in JWT does not exist",
        )
    })
}

pub fn get_user(call: &Call) -> Result<Response, AuthError> {
    let (user_id, _) = authenticated(call)?;
    Ok(Response::json(200, &user_or_missing(&user_id)?))
}

/// Merges `patch` into a metadata column: keys set to null are removed.
pub const MERGE_METADATA: &str = "(select coalesce(jsonb_object_agg(k, v), '{}'::jsonb)
    from jsonb_each(coalesce({column}, '{}'::jsonb) || $2::jsonb) as e(k, v) where v <> 'null'::jsonb)";

pub fn update_user(call: &Call) -> Result<Response, AuthError> {
    let (user_id, session_id) = authenticated(call)?;
    user_or_missing(&user_id)?;
    let body = call.body()?;
    if body.get("app_metadata").is_some_and(|v| !v.is_null()) {
        return Err(AuthError::new(403, "not_admin", "User not allowed"));
    }
    if let Some(data) = body.get("data").filter(|v| v.is_object()) {
        let sql = format!(
            "update auth.users set raw_user_meta_data = {}, updated_at = now() where id = $1::uuid",
            MERGE_METADATA.replace("{column}", "raw_user_meta_data")
        );
        store::execute(&sql, &[text(&user_id), json(data)])?;
    }
    if let Some(password) = body["password"].as_str() {
        check_password(password)?;
        let current = store::scalar(
            "select encrypted_password from auth.users where id = $1::uuid",
            &[text(&user_id)],
        )?
        .as_ref()
        .and_then(as_text);
        if current.is_some() && passwords::verify(password, current.as_deref()) {
            return Err(AuthError::new(
                422,
                "same_password",
                "New password should be different from the old password.",
            ));
        }
        let hash = hash_password(password)?;
        store::execute(
            "update auth.users set encrypted_password = $2, updated_at = now() where id = $1::uuid",
            &[text(&user_id), text(&hash)],
        )?;
        // Every other session ends with the old password.
        store::execute(
            "delete from auth.sessions where user_id = $1::uuid and id::text is distinct from $2",
            &[text(&user_id), store::opt_text(session_id.as_deref())],
        )?;
    }
    if let Some(raw) = body["email"].as_str() {
        let email = store::normalize_email(raw)?;
        let taken = store::scalar(
            "select exists (select 1 from auth.users where lower(email) = $1 and id <> $2::uuid)",
            &[text(&email), text(&user_id)],
        )?;
        if taken.as_ref().is_some_and(as_bool) {
            return Err(AuthError::new(
                422,
                "email_exists",
                "A user with this email address has already been registered",
            ));
        }
        if setting_bool("AUTOCONFIRM", true) {
            store::execute(
                "update auth.users set email = $2, updated_at = now() where id = $1::uuid",
                &[text(&user_id), text(&email)],
            )?;
            store::execute(
                "update auth.identities set identity_data = identity_data || jsonb_build_object('email', $2::text),
                        updated_at = now() where user_id = $1::uuid and provider = 'email'",
                &[text(&user_id), text(&email)],
            )?;
        } else {
            crate::flows::request_email_change(call, &user_id, &email)?;
        }
    }
    Ok(Response::json(200, &user_or_missing(&user_id)?))
}

pub fn logout(call: &Call) -> Result<Response, AuthError> {
    let (user_id, session_id) = authenticated(call)?;
    let scope = call
        .request
        .query_param("scope")
        .unwrap_or_else(|| "global".into());
    let (sql, params) = match (scope.as_str(), &session_id) {
        ("local", Some(session)) => (
            "delete from auth.sessions where id = $1::uuid",
            vec![text(session)],
        ),
        ("others", Some(session)) => (
            "delete from auth.sessions where user_id = $1::uuid and id <> $2::uuid",
            vec![text(&user_id), text(session)],
        ),
        ("global" | "local" | "others" | "", _) => (
            "delete from auth.sessions where user_id = $1::uuid",
            vec![text(&user_id)],
        ),
        (other, _) => {
            return Err(AuthError::validation(&format!(
                "Unsupported logout scope {other:?}"
            )));
        }
    };
    store::execute(sql, &params)?;
    Ok(Response::new(204, "text/plain", Vec::new()))
}
