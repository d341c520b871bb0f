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
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// Tokens remembered as verified. A client sends the same API key (and,
/// signed in, the same access token) with every request; verifying it again
/// costs base64, HMAC and JSON parsing each time. Bounded, and emptied when
/// full rather than kept in order: a burst of distinct tokens only costs
/// their first verification again.
const VERIFIED_CAPACITY: usize = 1024;

/// Seconds a token stays acceptable past its `exp`, as in `Validation`.
const LEEWAY_SECONDS: u64 = 5;

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

/// The keys, shared: every request's invocation holds them.
#[derive(Clone)]
pub struct JwtKeys(Arc<Keys>);

struct Keys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    /// Signs user access tokens when configured; HS256 stays for API keys.
    asymmetric: Option<(SigningKey, Validation)>,
    verified: Mutex<HashMap<Box<str>, Verified>>,
}

struct Verified {
    principal: Arc<Principal>,
    /// The `exp` claim, which verification requires.
    expires_at: u64,
}

impl JwtKeys {
    pub fn new(secret: &str) -> Self {
        Self::build(secret, None)
    }

    /// As [`JwtKeys::new`], but user access tokens are signed with `key`
    /// (RS256 or ES256).
    pub fn with_signing_key(secret: &str, key: SigningKey) -> Self {
        Self::build(secret, Some(key))
    }

    fn build(secret: &str, signing_key: Option<SigningKey>) -> Self {
        let mut validation = Validation::new(Algorithm::HS256);
        // API keys carry no audience; user tokens are checked below.
        validation.validate_aud = false;
        validation.leeway = LEEWAY_SECONDS;
        validation.set_required_spec_claims(&["exp"]);
        let asymmetric = signing_key.map(|key| {
            let mut own = validation.clone();
            own.algorithms = vec![key.algorithm];
            (key, own)
        });
        JwtKeys(Arc::new(Keys {
            encoding: EncodingKey::from_secret(secret.as_bytes()),
            decoding: DecodingKey::from_secret(secret.as_bytes()),
            validation,
            asymmetric,
            verified: Mutex::new(HashMap::new()),
        }))
    }

    /// The public keys as a JWKS document (empty with HS256 only: a shared
    /// secret is never published).
    pub fn jwks(&self) -> Value {
        let keys: Vec<Value> = self
            .0
            .asymmetric
            .iter()
            .map(|(k, _)| k.jwk.clone())
            .collect();
        json!({ "keys": keys })
    }

    /// Signs a user access token: with the asymmetric key when configured.
    pub fn sign_access_token(&self, claims: &Value) -> Result<String, TokenError> {
        match &self.0.asymmetric {
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
        encode(&Header::new(Algorithm::HS256), claims, &self.0.encoding)
            .map_err(|e| TokenError::Invalid(e.to_string()))
    }

    /// Claims of a token the host signed itself with the instance secret
    /// (HS256), such as a storage signed URL; no role is required, so such
    /// a token is never a credential by itself.
    pub fn verify_own(&self, token: &str) -> Result<Map<String, Value>, TokenError> {
        decode::<Map<String, Value>>(token, &self.0.decoding, &self.0.validation)
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

    /// The principal a request token stands for. A token verified before
    /// is taken from memory while its `exp` (with the same leeway) has not
    /// passed; any other is verified in full.
    pub fn verify(&self, token: &str) -> Result<Arc<Principal>, TokenError> {
        self.verify_at(token, jsonwebtoken::get_current_timestamp())
    }

    fn verify_at(&self, token: &str, now: u64) -> Result<Arc<Principal>, TokenError> {
        {
            let mut verified = self.verified_lock();
            if let Some(known) = verified.get(token) {
                if known.expires_at.saturating_add(LEEWAY_SECONDS) >= now {
                    return Ok(known.principal.clone());
                }
                verified.remove(token);
                return Err(TokenError::Expired);
            }
        }
        let principal = Arc::new(self.verify_in_full(token)?);
        if let Some(expires_at) = principal.claims.get("exp").and_then(Value::as_u64) {
            let mut verified = self.verified_lock();
            if verified.len() >= VERIFIED_CAPACITY {
                verified.clear();
            }
            verified.insert(
                token.into(),
                Verified {
                    principal: principal.clone(),
                    expires_at,
                },
            );
        }
        Ok(principal)
    }

    fn verified_lock(&self) -> std::sync::MutexGuard<'_, HashMap<Box<str>, Verified>> {
        self.0.verified.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// [`JwtKeys::verify`] without the memory of verified tokens: what a
    /// token's first request costs.
    pub fn verify_in_full(&self, token: &str) -> Result<Principal, TokenError> {
        let header =
            jsonwebtoken::decode_header(token).map_err(|e| TokenError::Invalid(e.to_string()))?;
        // The header picks the key, but only among the algorithms we issue:
        // HS256 and, when configured, the one of the asymmetric key.
        let (decoding, validation) = match &self.0.asymmetric {
            Some((key, validation)) if header.alg == key.algorithm => (&key.decoding, validation),
            _ => (&self.0.decoding, &self.0.validation),
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
    fn a_remembered_token_expires_with_its_exp_claim() {
        let keys = JwtKeys::new(SECRET);
        let exp = now() + 60;
        let token = keys
            .sign(&json!({"role": "authenticated", "aud": "authenticated", "sub": "7", "exp": exp}))
            .unwrap();
        let first = keys.verify(&token).unwrap();
        let again = keys.verify(&token).unwrap();
        assert!(Arc::ptr_eq(&first, &again), "not taken from memory");
        let exp = exp as u64;
        assert!(keys.verify_at(&token, exp + LEEWAY_SECONDS).is_ok());
        assert_eq!(
            keys.verify_at(&token, exp + LEEWAY_SECONDS + 1)
                .unwrap_err(),
            TokenError::Expired
        );
    }

    #[test]
    fn only_the_exact_token_is_remembered() {
        let keys = JwtKeys::new(SECRET);
        let anon = keys.api_key(Role::Anon, now()).unwrap();
        keys.verify(&anon).unwrap();
        // The same claims under a forged signature, and the key with a
        // byte changed, are verified in full and refused.
        let (unsigned, _) = anon.rsplit_once('.').unwrap();
        let forged = format!("{unsigned}.AAAA");
        assert!(keys.verify(&forged).is_err());
        let mut flipped = anon.clone().into_bytes();
        flipped[10] ^= 1;
        assert!(keys.verify(&String::from_utf8(flipped).unwrap()).is_err());
        // Another instance secret shares nothing with this one.
        let other = JwtKeys::new("another-secret-another-secret-xx");
        assert!(other.verify(&anon).is_err());
    }

    #[test]
    fn the_memory_of_verified_tokens_is_bounded() {
        let keys = JwtKeys::new(SECRET);
        for i in 0..VERIFIED_CAPACITY + 10 {
            let token = keys
                .sign(&json!({"role": "anon", "exp": now() + 60, "n": i}))
                .unwrap();
            keys.verify(&token).unwrap();
        }
        assert!(keys.verified_lock().len() <= VERIFIED_CAPACITY);
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
