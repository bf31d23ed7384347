//! The engine's side of routing: the ordering stage of a send (strategy, circuit breakers,
//! oracle), and the route ledger's evidence (attempts, receipts, approvals) written through the
//! outcome recorder.

use std::collections::HashMap;

use parking_lot::Mutex;
use rand::SeedableRng;
use rand::rngs::SmallRng;
use switchboard_providers::Channel;

use super::Engine;
use crate::clock::Millis;
use crate::config::Workflow;
use crate::error::Error;
use crate::outcomes::Window;
use crate::outcomes::{CounterKey, Tally};
use crate::report::AttemptRecord;
use crate::routing::ledger::{self, Breaker, RouteChoice};
use crate::routing::{OracleRequest, Route, Strategy};
use crate::store::{CodeRoute, Store};

/// How long an instance reuses the ledger and breaker figures it read from a shared store.
const CACHE_MS: i64 = 1000;
/// How much a lost code raises its route's expected cost for the resend to the same user.
const PATIENCE_PENALTY: f64 = 2.0;
/// Cached keys beyond this are dropped all at once.
const CACHE_MAX: usize = 20_000;

/// The per-instance state of routing: a short cache of ledger figures (a shared store only)
/// and the random source of exploration.
pub(super) struct RoutingState {
    cache: Mutex<HashMap<CounterKey, (Millis, Tally)>>,
    rng: Mutex<SmallRng>,
}

impl RoutingState {
    pub(super) fn new(seed: Option<u64>) -> Self {
        RoutingState {
            cache: Mutex::new(HashMap::new()),
            rng: Mutex::new(match seed {
                Some(s) => SmallRng::seed_from_u64(s),
                None => SmallRng::from_os_rng(),
            }),
        }
    }
}

impl Engine {
    /// Stage 3b: orders the gated candidates: the oracle when one is set, else the workflow's
    /// strategy; routes behind an open circuit breaker go last.
    pub(super) async fn order_routes(
        &self,
        app: &str,
        wf: &Workflow,
        country: Option<&str>,
        e164: &str,
        plan: &mut Vec<Route>,
    ) -> Result<Vec<RouteChoice>, Error> {
        if plan.is_empty() {
            return Ok(Vec::new());
        }
        let now = self.now();
        if let Some(oracle) = &self.inner.oracle {
            let request = OracleRequest {
                now,
                app,
                country,
                e164,
            };
            oracle.order(&request, plan);
            return Ok(Vec::new());
        }
        let policy = &wf.routing;
        let counts = ledger::keys_for(app, country, policy, plan);
        let tallies = self.ledger_tallies(now, &counts).await?;
        let (route_tallies, breaker_tallies) = tallies.split_at(plan.len());
        let mut breakers = Vec::with_capacity(plan.len());
        for (count, tally) in counts[plan.len()..].iter().zip(breaker_tallies) {
            let state = ledger::breaker(policy, tally, now);
            if let Breaker::Trips(cooloff) = state {
                self.trip_breaker(count, tally, now, cooloff).await;
            }
            breakers.push(state);
        }
        let mut rng = self.inner.routing.rng.lock();
        Ok(ledger::order(
            policy,
            plan,
            route_tallies,
            &breakers,
            &mut *rng,
        ))
    }

    /// Ledger and breaker figures: read at once from the memory store; from a shared store,
    /// through a one-second cache, so a busy instance reads each key about once a second.
    async fn ledger_tallies(
        &self,
        now: Millis,
        counts: &[crate::outcomes::Count],
    ) -> Result<Vec<Tally>, Error> {
        let store = &self.inner.store;
        if matches!(store, Store::Memory(_)) {
            return Ok(store.count(now, counts).await?);
        }
        let mut out = vec![Tally::default(); counts.len()];
        let mut missing = Vec::new();
        {
            let cache = self.inner.routing.cache.lock();
            for (i, c) in counts.iter().enumerate() {
                match cache.get(&c.key) {
                    Some((at, t)) if now - at < CACHE_MS => out[i] = *t,
                    _ => missing.push(i),
                }
            }
        }
        if missing.is_empty() {
            return Ok(out);
        }
        let read: Vec<_> = missing.iter().map(|i| counts[*i].clone()).collect();
        let tallies = store.count(now, &read).await?;
        let mut cache = self.inner.routing.cache.lock();
        if cache.len() > CACHE_MAX {
            cache.clear();
        }
        for (i, t) in missing.into_iter().zip(tallies) {
            cache.insert(counts[i].key.clone(), (now, t));
            out[i] = t;
        }
        Ok(out)
    }

    /// Opens a breaker: the counter's block is the open state, shared by every instance. Its
    /// window's failures are taken back, so after the cool-off the route is judged on fresh
    /// attempts (half-open: the next sends probe it).
    async fn trip_breaker(
        &self,
        count: &crate::outcomes::Count,
        tally: &Tally,
        now: Millis,
        cooloff_ms: i64,
    ) {
        use crate::outcomes::{Count, Field};
        let key = &count.key;
        tracing::warn!(breaker = %key.0, cooloff_ms, "circuit breaker opened");
        let until = now + cooloff_ms;
        if let Err(e) = self.inner.store.block_counter("*", key, until, now).await {
            tracing::warn!("circuit breaker not stored: {e}");
        }
        let reset = Count {
            key: key.clone(),
            window: count.window,
            add: vec![
                (Field::Attempts, -tally.get(Field::Attempts)),
                (Field::Failed, -tally.get(Field::Failed)),
            ],
        };
        if let Err(e) = self.inner.store.count(now, &[reset]).await {
            tracing::warn!("circuit breaker window not reset: {e}");
        }
        self.inner.routing.cache.lock().remove(key);
    }

    /// Patience-driven resend (adaptive): when the user asks again after waiting longer than
    /// the patience for the previous code's route, that code was probably lost: the route's
    /// P(verified) for this user is halved (its expected cost doubled) and the plan re-sorted,
    /// so the resend goes to the next route unless that one costs more than twice as much.
    /// `choices` are the scores of `plan`, in its order. Returns the route demoted.
    pub(super) async fn after_patience(
        &self,
        app: &str,
        wf: &Workflow,
        country: Option<&str>,
        previous: Option<&str>,
        plan: &mut Vec<Route>,
        choices: &[RouteChoice],
    ) -> Result<Option<String>, Error> {
        if wf.routing.strategy != Strategy::Adaptive
            || self.inner.oracle.is_some()
            || plan.len() < 2
        {
            return Ok(None);
        }
        let Some(prev) = previous.and_then(CodeRoute::decode) else {
            return Ok(None);
        };
        let Some(at) = plan
            .iter()
            .position(|r| r.channel == prev.channel && *r.provider == *prev.provider)
        else {
            return Ok(None);
        };
        let now = self.now();
        let key = [crate::outcomes::Count {
            key: ledger::route_key(app, country, prev.channel, &prev.provider),
            window: Window {
                span_ms: i64::try_from(wf.routing.window_secs.saturating_mul(1000))
                    .unwrap_or(i64::MAX),
                buckets: 6,
            },
            add: Vec::new(),
        }];
        let tally = self.ledger_tallies(now, &key).await?;
        if now - prev.sent_at < ledger::patience_ms(&wf.routing, &tally[0]) {
            return Ok(None);
        }
        let name = format!("{}:{}", prev.channel, prev.provider);
        let score = |i: usize, r: &Route| -> f64 {
            let c = choices
                .get(i)
                .filter(|c| c.route == format!("{}:{}", r.channel, r.provider));
            match c {
                // Routes behind an open breaker stay last.
                Some(c) if c.broken.contains(&c.route) => f64::INFINITY,
                Some(c) if i == at => c.score * PATIENCE_PENALTY,
                Some(c) => c.score,
                None if i == at => f64::MAX,
                None => 0.0,
            }
        };
        let mut scored: Vec<(f64, Route)> = std::mem::take(plan)
            .into_iter()
            .enumerate()
            .map(|(i, r)| (score(i, &r), r))
            .collect();
        scored.sort_by(|a, b| a.0.total_cmp(&b.0));
        plan.extend(scored.into_iter().map(|(_, r)| r));
        Ok(Some(name))
    }

    /// The attempts of one send, for the ledger and the breakers.
    pub(super) async fn record_attempts(
        &self,
        app: &str,
        wf: &Workflow,
        country: Option<&str>,
        attempts: &[AttemptRecord],
    ) {
        let counts = ledger::attempt_counts(app, country, &wf.routing, attempts);
        self.inner.recorder.record(self.now(), counts).await;
    }

    /// A delivery receipt, for the ledger (delivered or failed) and the breaker.
    pub(super) async fn record_receipt(
        &self,
        app: &str,
        e164: &str,
        channel: Channel,
        provider: &str,
        delivered: bool,
    ) {
        let Ok((app, wf)) = self.workflow(Some(app)) else {
            return;
        };
        let country = crate::phone::parse(e164, None).ok().and_then(|i| i.region);
        let counts = ledger::receipt_counts(
            app,
            country.as_deref(),
            &wf.routing,
            channel,
            provider,
            delivered,
        );
        self.inner.recorder.record(self.now(), counts).await;
    }

    /// What an approval adds to the route that carried the approved code.
    pub(super) fn route_approval(
        &self,
        app: &str,
        wf: &Workflow,
        country: Option<&str>,
        route: Option<&str>,
    ) -> Vec<crate::outcomes::Count> {
        let Some(route) = route.and_then(CodeRoute::decode) else {
            return Vec::new();
        };
        ledger::approval_counts(
            app,
            country,
            &wf.routing,
            route.channel,
            &route.provider,
            self.now() - route.sent_at,
        )
    }
}
