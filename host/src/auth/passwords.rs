//! Password hashing: argon2id with the `argon2` crate's defaults (OWASP's
//! recommendation: m = 19 MiB, t = 2, p = 1), PHC strings in the database.

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use rand::Rng;
use std::sync::OnceLock;

#[derive(Debug, thiserror::Error)]
#[error("password hashing: {0}")]
pub struct HashError(String);

pub fn hash(password: &str) -> Result<String, HashError> {
    let mut salt_bytes = [0u8; 16];
    rand::rng().fill(&mut salt_bytes);
    let salt = SaltString::encode_b64(&salt_bytes).map_err(|e| HashError(e.to_string()))?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| HashError(e.to_string()))
}

/// A hash to verify against when the account does not exist, so that the
/// answer takes as long as for a real account.
fn decoy() -> &'static str {
    static DECOY: OnceLock<String> = OnceLock::new();
    DECOY.get_or_init(|| hash("decoy password for timing").unwrap_or_default())
}

pub fn verify(password: &str, stored: Option<&str>) -> bool {
    let (candidate, real) = match stored {
        Some(h) if !h.is_empty() => (h, true),
        _ => (decoy(), false),
    };
    let Ok(parsed) = PasswordHash::new(candidate) else {
        return false;
    };
    let matches = Argon2::default()
        .verify_password(password.as_bytes(), &parsed)
        .is_ok();
    matches && real
}

#[cfg(test)]
mod tests {
    #[test]
    fn hashes_verify_and_unknown_accounts_never_match() {
        let h = super::hash("correct horse").unwrap();
        assert!(h.starts_with("$argon2id$"));
        assert!(super::verify("correct horse", Some(&h)));
        assert!(!super::verify("wrong horse", Some(&h)));
        assert!(!super::verify("decoy password for timing", None));
        assert!(!super::verify("x", Some("not a phc string")));
    }
}
