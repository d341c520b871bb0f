//! An asymmetric signing key for users' access tokens (RS256 or ES256), as
//! Supabase's newer projects use: tokens carry a `kid`, and anyone can
//! verify them with the public keys at `/auth/v1/.well-known/jwks.json`.
//! The API keys stay HS256 with the instance secret.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use std::path::Path;

#[derive(Debug, thiserror::Error)]
pub enum SigningKeyError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{0} is neither a PKCS#8 P-256 nor an RSA private key in PEM")]
    Unsupported(String),
    #[error("invalid key: {0}")]
    Invalid(String),
}

#[derive(Clone)]
pub struct SigningKey {
    pub algorithm: Algorithm,
    pub kid: String,
    pub encoding: EncodingKey,
    pub decoding: DecodingKey,
    /// The public key as a JWK, for the JWKS document.
    pub jwk: Value,
}

fn kid_of(public_der: &[u8]) -> String {
    hex::encode(&Sha256::digest(public_der)[..8])
}

impl SigningKey {
    pub fn load(path: &Path) -> Result<Self, SigningKeyError> {
        let pem = std::fs::read_to_string(path).map_err(|source| SigningKeyError::Read {
            path: path.display().to_string(),
            source,
        })?;
        let invalid = |e: &dyn std::fmt::Display| SigningKeyError::Invalid(e.to_string());
        if let Ok(secret) = <p256::SecretKey as p256::pkcs8::DecodePrivateKey>::from_pkcs8_pem(&pem)
        {
            use p256::elliptic_curve::sec1::ToEncodedPoint;
            let public = secret.public_key();
            let point = public.to_encoded_point(false);
            let (Some(x), Some(y)) = (point.x(), point.y()) else {
                return Err(SigningKeyError::Invalid(
                    "P-256 point without coordinates".into(),
                ));
            };
            let x = URL_SAFE_NO_PAD.encode(x);
            let y = URL_SAFE_NO_PAD.encode(y);
            let kid = kid_of(point.as_bytes());
            return Ok(SigningKey {
                algorithm: Algorithm::ES256,
                encoding: EncodingKey::from_ec_pem(pem.as_bytes()).map_err(|e| invalid(&e))?,
                decoding: DecodingKey::from_ec_components(&x, &y).map_err(|e| invalid(&e))?,
                jwk: json!({"kty": "EC", "crv": "P-256", "x": x, "y": y, "kid": kid, "alg": "ES256", "use": "sig", "key_ops": ["verify"]}),
                kid,
            });
        }
        let rsa_key = <rsa::RsaPrivateKey as rsa::pkcs8::DecodePrivateKey>::from_pkcs8_pem(&pem)
            .or_else(|_| {
                <rsa::RsaPrivateKey as rsa::pkcs1::DecodeRsaPrivateKey>::from_pkcs1_pem(&pem)
            })
            .map_err(|_| SigningKeyError::Unsupported(path.display().to_string()))?;
        use rsa::traits::PublicKeyParts;
        let n = URL_SAFE_NO_PAD.encode(rsa_key.n().to_bytes_be());
        let e = URL_SAFE_NO_PAD.encode(rsa_key.e().to_bytes_be());
        let kid = kid_of(&rsa_key.n().to_bytes_be());
        Ok(SigningKey {
            algorithm: Algorithm::RS256,
            encoding: EncodingKey::from_rsa_pem(pem.as_bytes()).map_err(|e| invalid(&e))?,
            decoding: DecodingKey::from_rsa_components(&n, &e).map_err(|e| invalid(&e))?,
            jwk: json!({"kty": "RSA", "n": n, "e": e, "kid": kid, "alg": "RS256", "use": "sig", "key_ops": ["verify"]}),
            kid,
        })
    }
}
