//! Functions' secrets at rest: XChaCha20-Poly1305 under the instance's
//! secrets key. The function's and the secret's names are the associated
//! data, so a ciphertext moved to another row fails to open instead of
//! handing one function another's secret.

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use rand::RngCore;
use sha2::{Digest, Sha256};

pub struct SecretBox {
    cipher: XChaCha20Poly1305,
}

#[derive(Debug, thiserror::Error)]
#[error("secret {key:?} of function {function:?} does not decrypt with this instance's secrets key (SELFDB_SECRETS_KEY differs from the host that stored it?)")]
pub struct OpenError {
    pub function: String,
    pub key: String,
}

fn associated(function: &str, key: &str) -> Vec<u8> {
    let mut aad = Vec::with_capacity(function.len() + key.len() + 1);
    aad.extend_from_slice(function.as_bytes());
    aad.push(0);
    aad.extend_from_slice(key.as_bytes());
    aad
}

impl SecretBox {
    /// The key is SHA-256 of the configured secret, so any string of enough
    /// entropy serves (the generated one is 24 random bytes in hex).
    pub fn new(secret: &str) -> Self {
        let key = Sha256::digest(secret.as_bytes());
        Self {
            cipher: XChaCha20Poly1305::new(&key),
        }
    }

    /// (nonce, ciphertext) of `value`.
    pub fn seal(&self, function: &str, key: &str, value: &str) -> (Vec<u8>, Vec<u8>) {
        let mut nonce = [0u8; 24];
        rand::rng().fill_bytes(&mut nonce);
        let aad = associated(function, key);
        let ciphertext = self
            .cipher
            .encrypt(
                XNonce::from_slice(&nonce),
                Payload {
                    msg: value.as_bytes(),
                    aad: &aad,
                },
            )
            // Encryption fails only for inputs past 2^38 bytes.
            .unwrap_or_default();
        (nonce.to_vec(), ciphertext)
    }

    pub fn open(
        &self,
        function: &str,
        key: &str,
        nonce: &[u8],
        ciphertext: &[u8],
    ) -> Result<String, OpenError> {
        let fail = || OpenError {
            function: function.to_owned(),
            key: key.to_owned(),
        };
        if nonce.len() != 24 {
            return Err(fail());
        }
        let aad = associated(function, key);
        let plain = self
            .cipher
            .decrypt(
                XNonce::from_slice(nonce),
                Payload {
                    msg: ciphertext,
                    aad: &aad,
                },
            )
            .map_err(|_| fail())?;
        String::from_utf8(plain).map_err(|_| fail())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_secret_opens_only_where_it_was_sealed() {
        let sealed = SecretBox::new("instance secret");
        let (nonce, ciphertext) = sealed.seal("mailer", "API_KEY", "s3cr3t");
        assert!(!ciphertext.windows(6).any(|w| w == b"s3cr3t"));
        assert_eq!(
            sealed
                .open("mailer", "API_KEY", &nonce, &ciphertext)
                .unwrap(),
            "s3cr3t"
        );
        assert!(sealed
            .open("other", "API_KEY", &nonce, &ciphertext)
            .is_err());
        assert!(sealed.open("mailer", "OTHER", &nonce, &ciphertext).is_err());
        assert!(SecretBox::new("another instance")
            .open("mailer", "API_KEY", &nonce, &ciphertext)
            .is_err());
    }
}
