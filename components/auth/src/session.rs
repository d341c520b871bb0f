//! Sessions, refresh-token rotation and the session response auth-js
//! stores.

use crate::error::AuthError;
use crate::store::{self, as_bool, as_text, opt_text, text};
use crate::{setting, setting_u64, Call};
use selfdb_sdk::{tokens, Response};
use serde_json::{json, Value};

/// Opens a session for `user_id` and answers with its tokens.
pub fn start(call: &Call, user_id: &str, method: &str) -> Result<Response, AuthError> {
    let refresh = store::random_hex(24)?;
    let session_id = store::scalar(
        "with s as (
             insert into auth.sessions (id, user_id, created_at, updated_at, aal, user_agent, ip)
             values (gen_random_uuid(), $1::uuid, now(), now(), 'aal1', $2, $3::inet)
             returning id),
         r as (
             insert into auth.refresh_tokens (instance_id, token, user_id, revoked, created_at, updated_at, session_id)
             select '00000000-0000-0000-0000-000000000000', $4, $1::text, false, now(), now(), s.id from s
             returning session_id)
         select session_id::text from r",
        &[
            text(user_id),
            opt_text(call.user_agent().as_deref()),
            opt_text(call.client_ip.as_deref()),
            text(&store::sha256_hex(&refresh)),
        ],
    )?
    .as_ref()
    .and_then(as_text)
    .ok_or_else(|| AuthError::unexpected("could not create a session"))?;
    store::execute(
        "update auth.users set last_sign_in_at = now(), updated_at = now() where id = $1::uuid",
        &[text(user_id)],
    )?;
    respond(user_id, &session_id, &refresh, method)
}

/// The session object: tokens plus the user.
pub fn respond(
    user_id: &str,
    session_id: &str,
    refresh: &str,
    method: &str,
) -> Result<Response, AuthError> {
    let user = store::user_json(user_id)?.ok_or_else(|| AuthError::unexpected("user vanished"))?;
    let expiry = setting_u64("JWT_EXPIRY", 3600);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let claims = json!({
        "iss": setting("API_EXTERNAL_URL", "selfdb"),
        "sub": user_id,
        "aud": "authenticated",
        "role": user["role"],
        "email": user["email"],
        "phone": user["phone"],
        "app_metadata": user["app_metadata"],
        "user_metadata": user["user_metadata"],
        "aal": "aal1",
        "amr": [{"method": method, "timestamp": now}],
        "session_id": session_id,
        "is_anonymous": false,
    });
    let token = tokens::mint_access_token(&claims.to_string(), expiry as u32)
        .map_err(|e| AuthError::unexpected(&format!("could not sign the access token: {e}")))?;
    Ok(Response::json(
        200,
        &json!({
            "access_token": token.jwt,
            "token_type": "bearer",
            "expires_in": expiry,
            "expires_at": token.expires_at,
            "refresh_token": refresh,
            "user": user,
        }),
    ))
}

/// `grant_type=refresh_token`: single use, rotated; a token presented a
/// second time revokes its whole session (someone else holds a copy).
pub fn refresh(body: &Value) -> Result<Response, AuthError> {
    let Some(presented) = body["refresh_token"].as_str().filter(|t| !t.is_empty()) else {
        return Err(AuthError::new(
            400,
            "validation_failed",
            "refresh_token required",
        ));
    };
    let hash = store::sha256_hex(presented);
    let rows = store::query(
        "select rt.id::text, rt.revoked, rt.session_id::text, rt.user_id,
                coalesce(u.banned_until > now(), false)
         from auth.refresh_tokens rt
         join auth.users u on u.id::text = rt.user_id
         where rt.token = $1
         for update of rt",
        &[text(&hash)],
    )?;
    let Some(row) = rows.rows.into_iter().next() else {
        return Err(AuthError::new(
            400,
            "refresh_token_not_found",
            "Invalid Refresh Token: Refresh Token Not Found",
        ));
    };
    let id = as_text(&row[0]).unwrap_or_default();
    let revoked = as_bool(&row[1]);
    let session_id = as_text(&row[2]);
    let user_id = as_text(&row[3]).unwrap_or_default();
    let banned = as_bool(&row[4]);
    let Some(session_id) = session_id else {
        return Err(AuthError::new(
            400,
            "session_not_found",
            "Invalid Refresh Token: No Valid Session Found",
        ));
    };
    if revoked {
        // Reuse: end the session, and with it every token of its family.
        store::execute(
            "delete from auth.sessions where id = $1::uuid",
            &[text(&session_id)],
        )?;
        return Err(AuthError::new(
            400,
            "refresh_token_already_used",
            "Invalid Refresh Token: Already Used",
        ));
    }
    if banned {
        return Err(AuthError::new(
            400,
            "user_banned",
            "Invalid Refresh Token: User Banned",
        ));
    }
    let next = store::random_hex(24)?;
    store::execute(
        "with old as (update auth.refresh_tokens set revoked = true, updated_at = now()
                      where id = $1::bigint returning token)
         insert into auth.refresh_tokens (instance_id, token, user_id, revoked, created_at, updated_at, parent, session_id)
         select '00000000-0000-0000-0000-000000000000', $2, $3, false, now(), now(), old.token, $4::uuid from old",
        &[text(&id), text(&store::sha256_hex(&next)), text(&user_id), text(&session_id)],
    )?;
    store::execute(
        "update auth.sessions set refreshed_at = now(), updated_at = now() where id = $1::uuid",
        &[text(&session_id)],
    )?;
    respond(&user_id, &session_id, &next, "token_refresh")
}
