//! HS256 JWTs signed with the instance secret: the anon and service API
//! keys (as Supabase issues them) and users' access tokens.
//!
//! Verification accepts HS256 only (so `alg=none` and algorithm confusion
//! fail), requires `exp` for user tokens, checks `aud` when present, and
//! maps the `role` claim to one of the three request roles.

use super::principal::{Principal, Role};
use super::signing::SigningKey;
use jsonwebtoken::{decode, encode, Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde_json::{json, Map, Value};

/// Audience of user access tokens, as Supabase Auth issues them.
pub const USER_AUDIENCE: &str = "authenticated";

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TokenError {
    #[error("the token has expired")]
    Expired,
    #[error("invalid token: {0}")]
    Invalid(String),
    #[error("the token's role is not one of anon, authenticated, service_role")]
    UnknownRole,
    #[error("the token's audience is not accepted")]
    Audience,
}

#[derive(Clone)]
pub struct JwtKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    /// Signs user access tokens when configured; HS256 stays for API keys.
    asymmetric: Option<(SigningKey, Validation)>,
}

impl JwtKeys {
    pub fn new(secret: &str) -> Self {
        let mut validation = Validation::new(Algorithm::HS256);
        // API keys carry no audience; user tokens are checked below.
        validation.validate_aud = false;
        validation.leeway = 5;
        validation.set_required_spec_claims(&["exp"]);
        JwtKeys {
            encoding: EncodingKey::from_secret(secret.as_bytes()),
            decoding: DecodingKey::from_secret(secret.as_bytes()),
            validation,
            asymmetric: None,
        }
    }

    /// Signs user access tokens with `key` from now on (RS256 or ES256).
    pub fn with_signing_key(mut self, key: SigningKey) -> Self {
        let mut validation = self.validation.clone();
        validation.algorithms = vec![key.algorithm];
        self.asymmetric = Some((key, validation));
        self
    }

    /// The public keys as a JWKS document (empty with HS256 only: a shared
    /// secret is never published).
    pub fn jwks(&self) -> Value {
        let keys: Vec<Value> = self.asymmetric.iter().map(|(k, _)| k.jwk.clone()).collect();
        json!({ "keys": keys })
    }

    /// Signs a user access token: with the asymmetric key when configured.
    pub fn sign_access_token(&self, claims: &Value) -> Result<String, TokenError> {
        match &self.asymmetric {
            Some((key, _)) => {
                let mut header = Header::new(key.algorithm);
                header.kid = Some(key.kid.clone());
                encode(&header, claims, &key.encoding)
                    .map_err(|e| TokenError::Invalid(e.to_string()))
            }
            None => self.sign(claims),
        }
    }

    pub fn sign(&self, claims: &Value) -> Result<String, TokenError> {
        encode(&Header::new(Algorithm::HS256), claims, &self.encoding)
            .map_err(|e| TokenError::Invalid(e.to_string()))
    }

    /// Claims of a token the host signed itself with the instance secret
    /// (HS256), such as a storage signed URL; no role is required, so such
    /// a token is never a credential by itself.
    pub fn verify_own(&self, token: &str) -> Result<Map<String, Value>, TokenError> {
        decode::<Map<String, Value>>(token, &self.decoding, &self.validation)
            .map(|data| data.claims)
            .map_err(|e| match e.kind() {
                jsonwebtoken::errors::ErrorKind::ExpiredSignature => TokenError::Expired,
                _ => TokenError::Invalid(e.to_string()),
            })
    }

    /// An API key: a long-lived token whose only power is its role.
    pub fn api_key(&self, role: Role, issued_at: i64) -> Result<String, TokenError> {
        self.sign(&json!({
            "iss": "selfdb",
            "role": role.as_str(),
            "iat": issued_at,
            "exp": issued_at + 10 * 365 * 24 * 3600,
        }))
    }

    pub fn verify(&self, token: &str) -> Result<Principal, TokenError> {
        let header =
            jsonwebtoken::decode_header(token).map_err(|e| TokenError::Invalid(e.to_string()))?;
        // The header picks the key, but only among the algorithms we issue:
        // HS256 and, when configured, the one of the asymmetric key.
        let (decoding, validation) = match &self.asymmetric {
            Some((key, validation)) if header.alg == key.algorithm => (&key.decoding, validation),
            _ => (&self.decoding, &self.validation),
        };
        let data =
            decode::<Map<String, Value>>(token, decoding, validation).map_err(|e| {
                match e.kind() {
                    jsonwebtoken::errors::ErrorKind::ExpiredSignature => TokenError::Expired,
                    _ => TokenError::Invalid(e.to_string()),
                }
            })?;
        let claims = data.claims;
        let role = claims
            .get("role")
            .and_then(Value::as_str)
            .and_then(Role::parse)
            .ok_or(TokenError::UnknownRole)?;
        let audience_ok = match claims.get("aud") {
            None => role != Role::Authenticated,
            Some(Value::String(aud)) => aud == USER_AUDIENCE,
            Some(Value::Array(list)) => list.iter().any(|a| a.as_str() == Some(USER_AUDIENCE)),
            Some(_) => false,
        };
        if !audience_ok {
            return Err(TokenError::Audience);
        }
        Ok(Principal::from_claims(role, claims))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "0123456789abcdef0123456789abcdef";

    fn now() -> i64 {
        chrono::Utc::now().timestamp()
    }

    #[test]
    fn api_keys_verify_to_their_role() {
        let keys = JwtKeys::new(SECRET);
        let anon = keys.api_key(Role::Anon, now()).unwrap();
        assert_eq!(keys.verify(&anon).unwrap().role, Role::Anon);
        let service = keys.api_key(Role::ServiceRole, now()).unwrap();
        assert_eq!(keys.verify(&service).unwrap().role, Role::ServiceRole);
    }

    #[test]
    fn wrong_key_expired_none_and_audience_are_refused() {
        let keys = JwtKeys::new(SECRET);
        let other = JwtKeys::new("another-secret-another-secret-xx");
        let token = other.api_key(Role::Anon, now()).unwrap();
        assert!(matches!(keys.verify(&token), Err(TokenError::Invalid(_))));

        let expired = keys
            .sign(&json!({"role": "authenticated", "aud": "authenticated", "sub": "u", "exp": now() - 60}))
            .unwrap();
        assert_eq!(keys.verify(&expired).unwrap_err(), TokenError::Expired);

        let wrong_aud = keys
            .sign(&json!({"role": "authenticated", "aud": "other", "sub": "u", "exp": now() + 60}))
            .unwrap();
        assert_eq!(keys.verify(&wrong_aud).unwrap_err(), TokenError::Audience);

        // {"alg":"none"} with the same claims and no signature.
        use base64::Engine;
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let unsigned = format!(
            "{}.{}.",
            b64.encode(r#"{"alg":"none","typ":"JWT"}"#),
            b64.encode(format!(r#"{{"role":"service_role","exp":{}}}"#, now() + 60))
        );
        assert!(keys.verify(&unsigned).is_err());

        let bad_role = keys
            .sign(&json!({"role": "postgres", "exp": now() + 60}))
            .unwrap();
        assert_eq!(keys.verify(&bad_role).unwrap_err(), TokenError::UnknownRole);
    }

    #[test]
    fn user_token_exposes_subject() {
        let keys = JwtKeys::new(SECRET);
        let token = keys
            .sign(&json!({"role": "authenticated", "aud": "authenticated", "sub": "42", "exp": now() + 60}))
            .unwrap();
        let principal = keys.verify(&token).unwrap();
        assert_eq!(principal.role, Role::Authenticated);
        assert_eq!(principal.user_id.as_deref(), Some("42"));
    }
}
