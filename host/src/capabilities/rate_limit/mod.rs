//! Privileged `selfdb:platform/rate-limit`: sliding-window counters shared
//! by every request of the process (and by every host through Redis),
//! keyed per component.

mod host_impl;

use super::{Capability, Prepare};
use crate::auth::rate_limit::RateLimiter;
use std::sync::Arc;
use wasmtime::component::{HasSelf, Linker};

/// Per process: the limiter (in memory, or in Redis).
pub struct RateLimit {
    limiter: Arc<RateLimiter>,
}

impl RateLimit {
    pub fn new(limiter: Arc<RateLimiter>) -> Self {
        Self { limiter }
    }
}

/// Per invocation: the limiter and the component whose keys these are.
pub struct RateLimitState {
    limiter: Arc<RateLimiter>,
    function: Arc<str>,
}

impl Capability for RateLimit {
    type State = RateLimitState;

    fn link<T: Send + 'static>(
        linker: &mut Linker<T>,
        get: fn(&mut T) -> &mut RateLimitState,
    ) -> wasmtime::Result<()> {
        super::bindings::rate_limit::add_to_linker::<T, HasSelf<RateLimitState>>(linker, get)
    }

    fn prepare(&self, cx: &Prepare<'_>) -> RateLimitState {
        RateLimitState {
            limiter: self.limiter.clone(),
            function: cx.function.name.clone(),
        }
    }
}
