//! Per-key rate limits: governor's keyed GCRA limiter behind one type, [`RateLimit`], for the
//! auth routes (by client IP, `auth.rate_per_ip`) and chat (by user: messages and rooms,
//! `[chat]`). A limit allows `burst` at once and then one every `period / count`; a refused
//! request is told how many whole seconds to wait (at least 1: HTTP's `Retry-After`).
//!
//! In a cluster a limit is the cluster's, not each node's: the same GCRA runs in Redis (one
//! script call per check, key `rl:{name}:{key}`), so a client spreading its requests over the
//! nodes gets no more than from one. While Redis does not answer, each node falls back to its
//! own limiter (a client then gets at most one quota per node).

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use std::fmt::Display;
use std::hash::Hash;
use std::num::NonZeroU32;
use std::sync::{Arc, LazyLock};
use std::time::Duration;

/// A limit per key `K`; one whose `count` is 0 admits everything.
#[derive(Clone)]
pub struct RateLimit<K: Hash + Eq + Clone> {
    /// Names the limit in Redis keys (`rl:{name}:{key}`).
    name: &'static str,
    /// Between two requests at the sustained rate (`period / count`).
    interval: Duration,
    /// Requests allowed at once.
    burst: NonZeroU32,
    local: Option<Arc<DefaultKeyedRateLimiter<K>>>,
    /// Cluster mode: the limit is kept in Redis.
    redis: Option<redis::aio::ConnectionManager>,
}

/// GCRA (the algorithm governor implements): `KEYS[1]` holds the theoretical arrival time in
/// Unix ms; `ARGV[1]` the interval in ms, `ARGV[2]` the burst. Returns 0 when admitted (and
/// books the request), else the milliseconds to wait. Redis's own clock: the nodes' clocks
/// do not matter.
static GCRA: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(
        r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local interval = tonumber(ARGV[1])
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
local booked = tat + interval
local wait = booked - interval * tonumber(ARGV[2]) - now
if wait > 0 then return wait end
redis.call('SET', KEYS[1], booked, 'PX', booked - now)
return 0
",
    )
});

/// How long a check waits for Redis before this node's own limiter decides.
const SHARED_WAIT: Duration = Duration::from_millis(300);

impl<K: Hash + Eq + Clone + Display> RateLimit<K> {
    /// `count` requests per `period` for each key, `burst` of them at once (at least 1).
    pub fn new(name: &'static str, count: u32, period: Duration, burst: u32) -> Self {
        let burst = NonZeroU32::new(burst).unwrap_or(NonZeroU32::MIN);
        let interval = (period / count.max(1)).max(Duration::from_millis(1));
        let local = (count > 0).then(|| {
            let quota = Quota::with_period(interval).expect("a period of at least 1 ms");
            Arc::new(RateLimiter::keyed(quota.allow_burst(burst)))
        });
        Self {
            name,
            interval,
            burst,
            local,
            redis: None,
        }
    }

    /// `per_minute` requests a minute for each key, all of them at once if they come so.
    pub fn per_minute(name: &'static str, per_minute: u32) -> Self {
        Self::new(name, per_minute, Duration::from_secs(60), per_minute)
    }

    /// The same limit, counted across the cluster in `redis`.
    pub fn shared(self, redis: redis::aio::ConnectionManager) -> Self {
        Self {
            redis: self.local.is_some().then_some(redis),
            ..self
        }
    }

    /// `Err(seconds to wait)` when `key` is over its limit (the cluster's, in a cluster).
    pub async fn check(&self, key: &K) -> Result<(), u64> {
        let Some(redis) = &self.redis else {
            return self.check_here(key);
        };
        let mut redis = redis.clone();
        let mut call = GCRA.key(format!("rl:{}:{key}", self.name));
        let interval_ms = u64::try_from(self.interval.as_millis()).unwrap_or(u64::MAX);
        call.arg(interval_ms).arg(self.burst.get());
        // A slow Redis must not hold a request for its whole response timeout.
        let waited = tokio::time::timeout(SHARED_WAIT, call.invoke_async::<u64>(&mut redis)).await;
        match waited {
            Ok(Ok(0)) => Ok(()),
            Ok(Ok(ms)) => Err(ms.div_ceil(1000).max(1)),
            Ok(Err(_)) | Err(_) => {
                tracing::warn!(
                    limit = self.name,
                    "the shared rate limit is unavailable; this node's applies"
                );
                self.check_here(key)
            }
        }
    }

    /// `Err(seconds to wait)` when `key` is over this node's limit.
    pub fn check_here(&self, key: &K) -> Result<(), u64> {
        let Some(limiter) = &self.local else {
            return Ok(());
        };
        limiter.check_key(key).map_err(|not_until| {
            let wait = not_until.wait_time_from(DefaultClock::default().now());
            (wait.as_secs() + u64::from(wait.subsec_nanos() > 0)).max(1)
        })
    }

    /// Forgets idle keys; call periodically so memory follows active clients.
    pub fn prune(&self) {
        if let Some(limiter) = &self.local {
            limiter.retain_recent();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::IpAddr;

    #[test]
    fn a_key_over_its_quota_is_told_when_to_retry_and_others_are_not() {
        // Given a limit of 3 a minute
        let limits = RateLimit::<IpAddr>::per_minute("auth", 3);
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        for _ in 0..3 {
            assert!(limits.check_here(&a).is_ok());
        }
        // When a fourth comes, it waits (a 20 s interval), and another key does not
        let wait = limits.check_here(&a).unwrap_err();
        assert!((1..=20).contains(&wait), "{wait}");
        assert!(limits.check_here(&b).is_ok());
        // A count of 0 admits everything
        let off = RateLimit::<IpAddr>::per_minute("auth", 0);
        assert!((0..100).all(|_| off.check_here(&a).is_ok()));
    }

    #[test]
    fn a_burst_smaller_than_the_count_refuses_sooner_and_rounds_the_wait_up() {
        // Given 60 a minute, 5 at once
        let limits = RateLimit::<String>::new("chat", 60, Duration::from_secs(60), 5);
        let k = "u1".to_string();
        for _ in 0..5 {
            assert!(limits.check_here(&k).is_ok());
        }
        // Then the sixth waits about a second, said as 1 (never 0)
        assert_eq!(limits.check_here(&k), Err(1));
    }
}
