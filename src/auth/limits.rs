//! Per-client-IP rate limits for the auth routes (governor's keyed GCRA limiter). The
//! per-account rules (5 wrong codes, 10 failed logins per 15 minutes, one code a minute) live
//! with the account entity; this stops one address from hammering many accounts.

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Arc;

#[derive(Clone)]
pub struct AuthLimits {
    per_ip: Option<Arc<DefaultKeyedRateLimiter<IpAddr>>>,
}

impl AuthLimits {
    /// `per_minute` requests per client IP; 0 turns the limit off.
    pub fn new(per_minute: u32) -> Self {
        let per_ip =
            NonZeroU32::new(per_minute).map(|n| Arc::new(RateLimiter::keyed(Quota::per_minute(n))));
        Self { per_ip }
    }

    /// `Err(seconds to wait)` when `ip` is over its limit.
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
