use super::selfdb::platform::rate_limit::Host;
use crate::runtime::state::InvocationState;
use std::time::Duration;

impl Host for InvocationState {
    async fn check(
        &mut self,
        key: String,
        limit: u32,
        window_seconds: u32,
    ) -> wasmtime::Result<Option<u32>> {
        let Some(p) = &self.privileged else {
            return Ok(None);
        };
        let key = format!("{}:{key}", self.function);
        Ok(p.limiter
            .retry_after(&key, limit, Duration::from_secs(window_seconds.into()))
            .await
            .map(|d| d.as_secs().max(1) as u32))
    }

    async fn hit(&mut self, key: String, window_seconds: u32) -> wasmtime::Result<()> {
        if let Some(p) = &self.privileged {
            let key = format!("{}:{key}", self.function);
            p.limiter
                .hit(&key, Duration::from_secs(window_seconds.into()))
                .await;
        }
        Ok(())
    }
}
