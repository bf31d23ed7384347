//! How a send's candidate routes are ordered: the workflow's routing policy (`[workflow.routing]`,
//! per application under `[apps.NAME.routing]`), and the hook that replaces it.
//!
//! - `static` keeps the planner's order: the route table's channel preference, price within a
//!   channel.
//! - `adaptive` orders by expected cost per verified user, learned from the route ledger
//!   (module `ledger`), with bounded exploration.
//!
//! A [`RouteOracle`] set on the engine replaces both: simulations use it to drive the engine
//! with an order computed from knowledge the engine cannot have, and integrators can plug in
//! their own policy. Gating (pinned channel, line type, geo permissions) happens before any of
//! them: they only order what may be tried.

use serde::{Deserialize, Serialize};

use super::table::Route;
use crate::clock::Millis;

/// `static` or `adaptive`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Strategy {
    #[default]
    Static,
    Adaptive,
}

impl Strategy {
    pub const fn as_str(self) -> &'static str {
        match self {
            Strategy::Static => "static",
            Strategy::Adaptive => "adaptive",
        }
    }
}

/// What an oracle knows of the send it orders.
#[derive(Clone, Copy, Debug)]
pub struct OracleRequest<'a> {
    pub now: Millis,
    pub app: &'a str,
    /// ISO region of the number.
    pub country: Option<&'a str>,
    /// The number, E.164.
    pub e164: &'a str,
}

/// Orders the candidate routes of one send in place of the workflow's strategy. The routes
/// come in the planner's order; whatever the oracle leaves in the list is tried in that order
/// (it may drop routes, but not add any).
pub trait RouteOracle: Send + Sync + 'static {
    fn order(&self, request: &OracleRequest<'_>, routes: &mut Vec<Route>);
}

/// A workflow's routing settings (`[workflow.routing]`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoutePolicy {
    pub strategy: Strategy,
    /// Adaptive: the share of sends ordered by a sample of the evidence (Thompson sampling)
    /// rather than by its mean, so routes the evidence is unsure of keep being measured.
    pub explore: f64,
    /// Adaptive: evidence older than this is forgotten (a sliding window in sixths), so a route
    /// that recovers is noticed.
    pub window_secs: u64,
    /// Adaptive: evidence older than the window but within this many seconds is each route's
    /// prior (instead of the table's), so a route measured bad does not look good again when
    /// the window forgets it; 0 = the table's prior only. At least `window_secs`.
    pub memory_secs: u64,
    /// Adaptive: how many sends the table's prior is worth against the ledger's evidence.
    pub prior_weight: f64,
    /// Adaptive: the prior probability that the table's first route verifies a user; later
    /// routes get priors that keep the table's order until evidence says otherwise.
    pub prior_conversion: f64,
    /// Adaptive: seconds after which a resend counts the previous code as lost and doubles its
    /// route's expected cost for the resend (0 = learned: twice the route's mean time to
    /// approval, within 20-120 s).
    pub patience_secs: u64,
    /// Circuit breaker per provider and channel: opens when at least `breaker_min_volume`
    /// attempts in `breaker_window_secs` failed at `breaker_failure_rate` or more; stays open
    /// for `breaker_cooloff_secs` (doubling on each reopening, up to 16x), then lets sends
    /// probe it. A failure rate of 0 means by strategy ([`RoutePolicy::breaker_rate`]).
    pub breaker_failure_rate: f64,
    pub breaker_min_volume: u32,
    pub breaker_window_secs: u64,
    pub breaker_cooloff_secs: u64,
}

impl RoutePolicy {
    /// The failure rate that opens a breaker: the configured one, or by strategy when 0
    /// (0.5 under `static`, 0.8 under `adaptive`).
    pub fn breaker_rate(&self) -> f64 {
        if self.breaker_failure_rate > 0.0 {
            return self.breaker_failure_rate;
        }
        match self.strategy {
            Strategy::Static => 0.5,
            Strategy::Adaptive => 0.8,
        }
    }

    /// Checks the values a configuration can get wrong; returns (key, message).
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        if !(0.0..=0.5).contains(&self.explore) {
            return Err(("routing.explore", "must be between 0 and 0.5".into()));
        }
        if self.window_secs < 60 {
            return Err(("routing.window_secs", "must be at least 60".into()));
        }
        if self.memory_secs != 0 && self.memory_secs < self.window_secs {
            return Err((
                "routing.memory_secs",
                "must be 0 or at least window_secs".into(),
            ));
        }
        if !(self.prior_weight.is_finite() && self.prior_weight > 0.0) {
            return Err(("routing.prior_weight", "must be a positive number".into()));
        }
        if !(self.prior_conversion > 0.0 && self.prior_conversion <= 1.0) {
            return Err(("routing.prior_conversion", "must be in (0, 1]".into()));
        }
        if !(0.0..=1.0).contains(&self.breaker_failure_rate) {
            return Err((
                "routing.breaker_failure_rate",
                "must be in [0, 1] (0 = by strategy)".into(),
            ));
        }
        if self.breaker_window_secs == 0 {
            return Err((
                "routing.breaker_window_secs",
                "must be greater than 0".into(),
            ));
        }
        Ok(())
    }
}
