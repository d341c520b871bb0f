//! The `rate-limit` interface: a component's keys are prefixed with its
//! name, so two components never share a counter.

use super::RateLimitState;
use crate::capabilities::bindings::rate_limit::Host;
use std::time::Duration;

impl Host for RateLimitState {
    async fn check(
        &mut self,
        key: String,
        limit: u32,
        window_seconds: u32,
    ) -> wasmtime::Result<Option<u32>> {
        let key = format!("{}:{key}", self.function);
        Ok(self
            .limiter
            .retry_after(&key, limit, Duration::from_secs(window_seconds.into()))
            .await
            .map(|d| d.as_secs().max(1) as u32))
    }

    async fn hit(&mut self, key: String, window_seconds: u32) -> wasmtime::Result<()> {
        let key = format!("{}:{key}", self.function);
        self.limiter
            .hit(&key, Duration::from_secs(window_seconds.into()))
            .await;
        Ok(())
    }
}
