//! The `passwords` interface, off the async workers: argon2 takes tens of
//! milliseconds of CPU.

use super::PasswordsState;
use crate::auth::passwords;
use crate::capabilities::bindings::passwords::Host;

impl Host for PasswordsState {
    async fn hash(&mut self, password: String) -> wasmtime::Result<Result<String, String>> {
        Ok(
            tokio::task::spawn_blocking(move || passwords::hash(&password))
                .await
                .map_err(|e| e.to_string())
                .and_then(|r| r.map_err(|e| e.to_string())),
        )
    }

    async fn verify(&mut self, password: String, hash: Option<String>) -> wasmtime::Result<bool> {
        Ok(
            tokio::task::spawn_blocking(move || passwords::verify(&password, hash.as_deref()))
                .await
                .unwrap_or(false),
        )
    }
}
