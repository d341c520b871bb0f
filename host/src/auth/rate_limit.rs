//! Sliding-window rate limiting (per key: an IP, an email). With Redis
//! configured (`--redis-url`) the windows live there, so every host behind
//! a balancer counts the same attempts; otherwise each host counts its own.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Keys kept at most in process; the oldest windows are dropped past it so
/// a flood of distinct keys cannot grow memory without bound.
const MAX_KEYS: usize = 100_000;
/// Prefix of SelfDB's keys in a shared Redis.
const REDIS_PREFIX: &str = "selfdb:rate:";

pub enum RateLimiter {
    InProcess(Mutex<HashMap<String, VecDeque<Instant>>>),
    Redis(redis::aio::ConnectionManager),
}

impl Default for RateLimiter {
    fn default() -> Self {
        RateLimiter::InProcess(Mutex::new(HashMap::new()))
    }
}

impl RateLimiter {
    pub async fn redis(url: &str) -> Result<Self, redis::RedisError> {
        let client = redis::Client::open(url)?;
        Ok(RateLimiter::Redis(client.get_connection_manager().await?))
    }

    /// How long until `key` may try again, if it already has `limit` hits
    /// within `window`. A Redis that cannot be reached lets the attempt
    /// through (and logs): sign-ins keep working, only the limit lapses.
    pub async fn retry_after(&self, key: &str, limit: u32, window: Duration) -> Option<Duration> {
        match self {
            RateLimiter::InProcess(hits) => in_process_retry_after(hits, key, limit, window),
            RateLimiter::Redis(conn) => {
                match redis_retry_after(conn.clone(), key, limit, window).await {
                    Ok(wait) => wait,
                    Err(err) => {
                        tracing::warn!(%err, "rate limit check failed; allowing the attempt");
                        None
                    }
                }
            }
        }
    }

    /// Counts one hit on `key`; what it returns takes that hit back
    /// ([`RateLimiter::forget`]), for a limit on failures that counts each
    /// attempt before knowing whether it fails.
    pub async fn hit(&self, key: &str, window: Duration) -> Hit {
        match self {
            RateLimiter::InProcess(hits) => Hit::InProcess(in_process_hit(hits, key, window)),
            RateLimiter::Redis(conn) => match redis_hit(conn.clone(), key, window).await {
                Ok(member) => Hit::Redis(member),
                Err(err) => {
                    tracing::warn!(%err, "rate limit count failed");
                    Hit::None
                }
            },
        }
    }

    /// Takes back `hit` on `key` (an attempt that turned out to succeed).
    pub async fn forget(&self, key: &str, hit: Hit) {
        match (self, hit) {
            (RateLimiter::InProcess(hits), Hit::InProcess(at)) => {
                let mut hits = hits.lock().unwrap_or_else(|p| p.into_inner());
                if let Some(queue) = hits.get_mut(key) {
                    if let Some(i) = queue.iter().rposition(|t| *t == at) {
                        queue.remove(i);
                    }
                }
            }
            (RateLimiter::Redis(conn), Hit::Redis(member)) => {
                let mut conn = conn.clone();
                let removed: redis::RedisResult<()> = redis::cmd("ZREM")
                    .arg(format!("{REDIS_PREFIX}{key}"))
                    .arg(member)
                    .query_async(&mut conn)
                    .await;
                if let Err(err) = removed {
                    tracing::warn!(%err, "rate limit count could not be taken back");
                }
            }
            _ => {}
        }
    }
}

/// One counted hit, as [`RateLimiter::forget`] finds it again.
#[derive(Debug)]
pub enum Hit {
    InProcess(Instant),
    Redis(String),
    /// Not counted (Redis was unreachable).
    None,
}

fn in_process_retry_after(
    hits: &Mutex<HashMap<String, VecDeque<Instant>>>,
    key: &str,
    limit: u32,
    window: Duration,
) -> Option<Duration> {
    let mut hits = hits.lock().unwrap_or_else(|p| p.into_inner());
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

fn in_process_hit(
    hits: &Mutex<HashMap<String, VecDeque<Instant>>>,
    key: &str,
    window: Duration,
) -> Instant {
    let mut hits = hits.lock().unwrap_or_else(|p| p.into_inner());
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
    now
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// A window is a sorted set of hit times (milliseconds).
async fn redis_retry_after(
    mut conn: redis::aio::ConnectionManager,
    key: &str,
    limit: u32,
    window: Duration,
) -> redis::RedisResult<Option<Duration>> {
    let key = format!("{REDIS_PREFIX}{key}");
    let now = now_ms();
    let window_ms = window.as_millis() as u64;
    let (count, oldest): (u64, Vec<(String, f64)>) = redis::pipe()
        .cmd("ZREMRANGEBYSCORE")
        .arg(&key)
        .arg(0)
        .arg(now.saturating_sub(window_ms))
        .ignore()
        .cmd("ZCARD")
        .arg(&key)
        .cmd("ZRANGE")
        .arg(&key)
        .arg(0)
        .arg(0)
        .arg("WITHSCORES")
        .query_async(&mut conn)
        .await?;
    if count < u64::from(limit) {
        return Ok(None);
    }
    let oldest = oldest
        .first()
        .map(|(_, score)| *score as u64)
        .unwrap_or(now);
    Ok(Some(Duration::from_millis(
        (oldest + window_ms).saturating_sub(now),
    )))
}

async fn redis_hit(
    mut conn: redis::aio::ConnectionManager,
    key: &str,
    window: Duration,
) -> redis::RedisResult<String> {
    let key = format!("{REDIS_PREFIX}{key}");
    let now = now_ms();
    // Members must be unique even for hits in the same millisecond.
    let member = format!("{now}-{}", rand::random::<u64>());
    redis::pipe()
        .cmd("ZADD")
        .arg(&key)
        .arg(now)
        .arg(&member)
        .ignore()
        .cmd("PEXPIRE")
        .arg(&key)
        .arg(window.as_millis() as u64)
        .ignore()
        .query_async::<()>(&mut conn)
        .await?;
    Ok(member)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn limits_after_the_allowed_hits() {
        let limiter = RateLimiter::default();
        let window = Duration::from_secs(60);
        assert_eq!(limiter.retry_after("k", 2, window).await, None);
        limiter.hit("k", window).await;
        assert_eq!(limiter.retry_after("k", 2, window).await, None);
        limiter.hit("k", window).await;
        let wait = limiter.retry_after("k", 2, window).await.unwrap();
        assert!(wait > Duration::from_secs(58) && wait <= window);
        assert_eq!(limiter.retry_after("other", 2, window).await, None);
        // A hit taken back no longer counts.
        let third = limiter.hit("j", window).await;
        limiter.hit("j", window).await;
        limiter.forget("j", third).await;
        assert_eq!(limiter.retry_after("j", 2, window).await, None);
    }
}
