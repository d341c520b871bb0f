//! In-process sliding-window rate limiting (per key: an IP, an email).
//! Each host counts on its own; with N hosts behind a balancer the
//! effective limit is up to N times higher until Redis-backed counting
//! lands with the realtime work.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Keys kept at most; the oldest windows are dropped past it so a flood of
/// distinct keys cannot grow memory without bound.
const MAX_KEYS: usize = 100_000;

#[derive(Default)]
pub struct RateLimiter {
    hits: Mutex<HashMap<String, VecDeque<Instant>>>,
}

impl RateLimiter {
    /// How long until `key` may try again, if it already has `limit` hits
    /// within `window`.
    pub fn retry_after(&self, key: &str, limit: u32, window: Duration) -> Option<Duration> {
        let mut hits = self.hits.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        let queue = hits.get_mut(key)?;
        while queue
            .front()
            .is_some_and(|t| now.duration_since(*t) >= window)
        {
            queue.pop_front();
        }
        if queue.len() < limit as usize {
            return None;
        }
        let oldest = *queue.front()?;
        Some(window.saturating_sub(now.duration_since(oldest)))
    }

    pub fn hit(&self, key: &str, window: Duration) {
        let mut hits = self.hits.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        if hits.len() >= MAX_KEYS && !hits.contains_key(key) {
            hits.retain(|_, q| q.back().is_some_and(|t| now.duration_since(*t) < window));
            if hits.len() >= MAX_KEYS {
                hits.clear();
            }
        }
        let queue = hits.entry(key.to_owned()).or_default();
        queue.push_back(now);
        while queue.len() > 1_000 {
            queue.pop_front();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_after_the_allowed_hits() {
        let limiter = RateLimiter::default();
        let window = Duration::from_secs(60);
        assert_eq!(limiter.retry_after("k", 2, window), None);
        limiter.hit("k", window);
        assert_eq!(limiter.retry_after("k", 2, window), None);
        limiter.hit("k", window);
        let wait = limiter.retry_after("k", 2, window).unwrap();
        assert!(wait > Duration::from_secs(58) && wait <= window);
        assert_eq!(limiter.retry_after("other", 2, window), None);
    }
}
