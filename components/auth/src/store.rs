//! SQL over the `auth` tables through the privileged `auth-db` interface.

use crate::error::AuthError;
use selfdb_sdk::auth_db;
use selfdb_sdk::db::{RowSet, Value};
use serde_json::Value as Json;

/// One user as GoTrue serialises it: timestamps omitted while unset,
/// secrets (password hash, tokens) never included.
pub const USER_JSON: &str = "jsonb_strip_nulls(jsonb_build_object(
    'email_confirmed_at', u.email_confirmed_at, 'confirmed_at', u.confirmed_at,
    'confirmation_sent_at', u.confirmation_sent_at, 'recovery_sent_at', u.recovery_sent_at,
    'last_sign_in_at', u.last_sign_in_at, 'banned_until', u.banned_until, 'invited_at', u.invited_at,
    'new_email', nullif(u.email_change, ''), 'email_change_sent_at', u.email_change_sent_at))
  || jsonb_build_object(
    'id', u.id, 'aud', coalesce(u.aud, 'authenticated'), 'role', coalesce(u.role, 'authenticated'),
    'email', coalesce(u.email, ''), 'phone', coalesce(u.phone, ''),
    'app_metadata', coalesce(u.raw_app_meta_data, '{}'::jsonb),
    'user_metadata', coalesce(u.raw_user_meta_data, '{}'::jsonb),
    'identities', coalesce((select jsonb_agg(jsonb_build_object(
        'identity_id', i.id, 'id', i.provider_id, 'user_id', i.user_id, 'provider', i.provider,
        'identity_data', i.identity_data, 'email', i.email, 'last_sign_in_at', i.last_sign_in_at,
        'created_at', i.created_at, 'updated_at', i.updated_at) order by i.created_at)
      from auth.identities i where i.user_id = u.id), '[]'::jsonb),
    'created_at', u.created_at, 'updated_at', u.updated_at, 'is_anonymous', u.is_anonymous)";

pub fn text(value: &str) -> Value {
    Value::Text(value.to_owned())
}

pub fn opt_text(value: Option<&str>) -> Value {
    value.map(text).unwrap_or(Value::Null)
}

pub fn json(value: &Json) -> Value {
    Value::Json(value.to_string())
}

pub fn query(sql: &str, params: &[Value]) -> Result<RowSet, AuthError> {
    auth_db::query(sql, params).map_err(|e| {
        selfdb_sdk::log::log(
            selfdb_sdk::log::Level::Error,
            &format!("auth query failed: {} {}", e.code, e.message),
        );
        AuthError::unexpected("Database error")
    })
}

pub fn execute(sql: &str, params: &[Value]) -> Result<u64, AuthError> {
    auth_db::execute(sql, params).map_err(|e| {
        selfdb_sdk::log::log(
            selfdb_sdk::log::Level::Error,
            &format!("auth statement failed: {} {}", e.code, e.message),
        );
        AuthError::unexpected("Database error")
    })
}

/// The first column of the first row.
pub fn scalar(sql: &str, params: &[Value]) -> Result<Option<Value>, AuthError> {
    Ok(query(sql, params)?
        .rows
        .into_iter()
        .next()
        .and_then(|row| row.into_iter().next()))
}

pub fn as_text(value: &Value) -> Option<String> {
    match value {
        Value::Text(s) => Some(s.clone()),
        _ => None,
    }
}

pub fn as_json(value: &Value) -> Option<Json> {
    match value {
        Value::Json(s) => serde_json::from_str(s).ok(),
        _ => None,
    }
}

pub fn as_bool(value: &Value) -> bool {
    matches!(value, Value::Boolean(true))
}

/// The user JSON of `id`, if that user exists.
pub fn user_json(id: &str) -> Result<Option<Json>, AuthError> {
    let sql = format!("select {USER_JSON} from auth.users u where u.id = $1::uuid");
    Ok(scalar(&sql, &[text(id)])?.as_ref().and_then(as_json))
}

/// Lower-cased, trimmed email, or the GoTrue validation error.
pub fn normalize_email(raw: &str) -> Result<String, AuthError> {
    let email = raw.trim().to_lowercase();
    if email.is_empty() {
        return Err(AuthError::validation("An email address is required"));
    }
    if email.len() > 255 {
        return Err(AuthError::validation("An email address is too long"));
    }
    let valid = match email.split_once('@') {
        Some((local, domain)) => {
            !local.is_empty()
                && !domain.contains('@')
                && domain.contains('.')
                && !domain.starts_with('.')
                && !domain.ends_with('.')
                && !email.chars().any(|c| c.is_whitespace() || c.is_control())
        }
        None => false,
    };
    if !valid {
        return Err(AuthError::validation(
            "Unable to validate email address: invalid format",
        ));
    }
    Ok(email)
}

/// Hex SHA-256, for refresh tokens at rest.
pub fn sha256_hex(data: &str) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(data.as_bytes()))
}

/// GoTrue's token hash: hex SHA-224 of email and one-time code.
pub fn token_hash(email: &str, otp: &str) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha224::digest(format!("{email}{otp}").as_bytes()))
}

pub fn random_hex(bytes: usize) -> Result<String, AuthError> {
    let mut buf = vec![0u8; bytes];
    getrandom::fill(&mut buf).map_err(|_| AuthError::unexpected("no randomness available"))?;
    Ok(hex::encode(buf))
}

pub fn random_otp() -> Result<String, AuthError> {
    let mut buf = [0u8; 8];
    getrandom::fill(&mut buf).map_err(|_| AuthError::unexpected("no randomness available"))?;
    Ok(format!("{:06}", u64::from_le_bytes(buf) % 1_000_000))
}

#[cfg(test)]
mod tests {
    use super::{normalize_email, random_hex, random_otp, sha256_hex, token_hash};

    #[test]
    fn emails_are_trimmed_lowercased_and_checked() {
        assert_eq!(
            normalize_email("  Ada@Example.COM ").unwrap(),
            "ada@example.com"
        );
        for bad in [
            "",
            "ada",
            "@example.com",
            "ada@example",
            "ada@.com",
            "ada@com.",
            "a da@x.io",
            "a@b@c.io",
        ] {
            let err = normalize_email(bad).unwrap_err();
            assert_eq!(
                (err.status, err.code.as_str()),
                (400, "validation_failed"),
                "{bad:?}"
            );
        }
        let long = format!("{}@example.com", "a".repeat(250));
        assert_eq!(
            normalize_email(&long).unwrap_err().message,
            "An email address is too long"
        );
    }

    #[test]
    fn hashes_are_hex_digests() {
        assert_eq!(
            sha256_hex("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        // SHA-224 of the email followed by the code.
        assert_eq!(
            token_hash("ab", "c"),
            "23097d223405d8228642a477bda255b32aadbce4bda0b3f7e36c9da7"
        );
    }

    #[test]
    fn random_tokens_have_their_length() {
        let token = random_hex(24).unwrap();
        assert_eq!(token.len(), 48);
        assert!(token.bytes().all(|b| b.is_ascii_hexdigit()));
        assert_ne!(token, random_hex(24).unwrap());
        let otp = random_otp().unwrap();
        assert_eq!(otp.len(), 6);
        assert!(otp.bytes().all(|b| b.is_ascii_digit()));
    }
}
