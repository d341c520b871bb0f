//! The `tokens` interface: minting refuses `service_role` and bounds the
//! lifetime; the host sets `iat` and `exp`.

use super::TokensState;
use crate::capabilities::bindings::tokens::{Host, Token};
use serde_json::Value;

/// Longest lifetime a minted access token may have.
const MAX_TTL_SECONDS: u32 = 7 * 24 * 3600;

impl Host for TokensState {
    fn jwks(&mut self) -> wasmtime::Result<String> {
        Ok(self.keys.jwks().to_string())
    }

    fn mint_access_token(
        &mut self,
        claims: String,
        ttl_seconds: u32,
    ) -> wasmtime::Result<Result<Token, String>> {
        let mut claims = match serde_json::from_str::<Value>(&claims) {
            Ok(Value::Object(map)) => map,
            _ => return Ok(Err("claims must be a JSON object".into())),
        };
        if claims.get("role").and_then(Value::as_str) == Some("service_role") {
            return Ok(Err("service_role tokens cannot be minted".into()));
        }
        let ttl = ttl_seconds.clamp(1, MAX_TTL_SECONDS);
        let now = chrono::Utc::now().timestamp();
        let expires_at = now + i64::from(ttl);
        claims.insert("iat".into(), now.into());
        claims.insert("exp".into(), expires_at.into());
        Ok(self
            .keys
            .sign_access_token(&Value::Object(claims))
            .map(|jwt| Token { jwt, expires_at })
            .map_err(|e| e.to_string()))
    }
}
