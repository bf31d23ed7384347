//! Per API key and per client IP rate limits (GCRA, `governor`). Over either → 429 with
//! `Retry-After`.

use std::net::IpAddr;
use std::num::NonZeroU32;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use crate::config::ServerConfig;

pub struct RateLimits {
    per_key: DefaultKeyedRateLimiter<String>,
    per_ip: DefaultKeyedRateLimiter<IpAddr>,
    clock: DefaultClock,
}

impl std::fmt::Debug for RateLimits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RateLimits")
    }
}

fn quota(rate: u32, burst: u32) -> Quota {
    let rate = NonZeroU32::new(rate).unwrap_or(NonZeroU32::MIN);
    let burst = NonZeroU32::new(burst).unwrap_or(rate);
    Quota::per_second(rate).allow_burst(burst)
}

impl RateLimits {
    pub fn new(config: &ServerConfig) -> Self {
        RateLimits {
            per_key: RateLimiter::keyed(quota(config.rate_per_key, config.burst_per_key)),
            per_ip: RateLimiter::keyed(quota(config.rate_per_ip, config.burst_per_ip)),
            clock: DefaultClock::default(),
        }
    }

    /// `Err(seconds to wait)` when the key or the IP is over its limit.
    pub fn check(&self, key_id: &str, ip: Option<IpAddr>) -> Result<(), u64> {
        let wait = |not_until: governor::NotUntil<_>| {
            not_until.wait_time_from(self.clock.now()).as_secs() + 1
        };
        if let Some(ip) = ip {
            self.per_ip.check_key(&ip).map_err(wait)?;
        }
        self.per_key.check_key(&key_id.to_owned()).map_err(wait)?;
        Ok(())
    }

    /// Drops the state of keys and IPs that are back to full capacity (bounded memory).
    pub fn shrink(&self) {
        self.per_key.retain_recent();
        self.per_ip.retain_recent();
    }
}
