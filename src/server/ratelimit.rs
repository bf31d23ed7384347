//! Per API key and per client IP rate limits (GCRA, `governor`). Over either → 429 with
//! `Retry-After`. The per-IP limit is checked first, before authentication.

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

    /// `Err(seconds to wait)` when the client IP is over its limit. Checked before anything
    /// else is done for a request (authentication, body, signature), so a flood of bad keys or
    /// bad signatures from one address is refused cheaply.
    pub fn check_ip(&self, ip: IpAddr) -> Result<(), u64> {
        self.per_ip.check_key(&ip).map_err(|n| self.wait(n))
    }

    /// `Err(seconds to wait)` when the API key is over its limit.
    pub fn check_key(&self, key_id: &str) -> Result<(), u64> {
        self.per_key
            .check_key(&key_id.to_owned())
            .map_err(|n| self.wait(n))
    }

    fn wait(&self, not_until: governor::NotUntil<governor::clock::QuantaInstant>) -> u64 {
        not_until.wait_time_from(self.clock.now()).as_secs() + 1
    }

    /// Drops the state of keys and IPs that are back to full capacity (bounded memory).
    pub fn shrink(&self) {
        self.per_key.retain_recent();
        self.per_ip.retain_recent();
    }
}
