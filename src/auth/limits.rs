//! Per-client-IP rate limits for the auth routes (governor's keyed GCRA limiter). The
//! per-account rules (5 wrong codes, 10 failed logins per 15 minutes, one code a minute) live
//! with the account entity; this stops one address from hammering many accounts.
//!
//! In a cluster the limit is the cluster's, not each node's: the same GCRA runs in Redis (one
//! script call per auth request, key `rl:auth:{ip}`), so an address spreading its requests
//! over the nodes gets no more than from one. While Redis does not answer, each node falls
//! back to its own limiter (a client then gets at most one quota per node).

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::{Arc, LazyLock};

#[derive(Clone)]
pub struct AuthLimits {
    per_ip: Option<Arc<DefaultKeyedRateLimiter<IpAddr>>>,
    /// Cluster mode: the limit kept in Redis.
    shared: Option<Shared>,
}

#[derive(Clone)]
struct Shared {
    redis: redis::aio::ConnectionManager,
    /// Milliseconds between two requests at the sustained rate (60,000 / per minute).
    interval_ms: u64,
    /// Requests allowed at once (the quota of a minute, as governor allows).
    burst: u32,
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
const SHARED_WAIT: std::time::Duration = std::time::Duration::from_millis(300);

impl AuthLimits {
    /// `per_minute` requests per client IP; 0 turns the limit off.
    pub fn new(per_minute: u32) -> Self {
        let per_ip =
            NonZeroU32::new(per_minute).map(|n| Arc::new(RateLimiter::keyed(Quota::per_minute(n))));
        Self {
            per_ip,
            shared: None,
        }
    }

    /// The same limit, counted across the cluster in `redis`.
    pub fn shared(per_minute: u32, redis: redis::aio::ConnectionManager) -> Self {
        let shared = (per_minute > 0).then(|| Shared {
            redis,
            interval_ms: (60_000 / u64::from(per_minute)).max(1),
            burst: per_minute,
        });
        Self {
            shared,
            ..Self::new(per_minute)
        }
    }

    /// `Err(seconds to wait)` when `ip` is over its limit (the cluster's, in a cluster).
    pub async fn check(&self, ip: IpAddr) -> Result<(), u64> {
        let Some(shared) = &self.shared else {
            return self.check_ip(ip);
        };
        let mut redis = shared.redis.clone();
        let mut call = GCRA.key(format!("rl:auth:{ip}"));
        call.arg(shared.interval_ms).arg(shared.burst);
        // A slow Redis must not hold a login for its whole response timeout.
        let waited = tokio::time::timeout(SHARED_WAIT, call.invoke_async::<u64>(&mut redis)).await;
        match waited {
            Ok(Ok(0)) => Ok(()),
            Ok(Ok(ms)) => Err(ms.div_ceil(1000).max(1)),
            Ok(Err(_)) | Err(_) => {
                tracing::warn!("the shared rate limit is unavailable; this node's applies");
                self.check_ip(ip)
            }
        }
    }

    /// `Err(seconds to wait)` when `ip` is over this node's limit.
    pub fn check_ip(&self, ip: IpAddr) -> Result<(), u64> {
        let Some(limiter) = &self.per_ip else {
            return Ok(());
        };
        limiter.check_key(&ip).map_err(|not_until| {
            not_until
                .wait_time_from(DefaultClock::default().now())
                .as_secs()
                .max(1)
        })
    }

    /// Forgets idle clients; call periodically so memory follows active clients.
    pub fn prune(&self) {
        if let Some(limiter) = &self.per_ip {
            limiter.retain_recent();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_ip_over_its_quota_is_told_when_to_retry_and_others_are_not() {
        let limits = AuthLimits::new(3);
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        for _ in 0..3 {
            assert!(limits.check_ip(a).is_ok());
        }
        let wait = limits.check_ip(a).unwrap_err();
        assert!((1..=60).contains(&wait));
        assert!(limits.check_ip(b).is_ok());
        let off = AuthLimits::new(0);
        assert!((0..100).all(|_| off.check_ip(a).is_ok()));
    }
}
