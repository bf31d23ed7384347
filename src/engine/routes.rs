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
    /// (application, country) pairs this instance routed to.
    seen: Mutex<std::collections::HashSet<(String, String)>>,
}

impl RoutingState {
    pub(super) fn new(seed: Option<u64>) -> Self {
        RoutingState {
            cache: Mutex::new(HashMap::new()),
            seen: Mutex::new(std::collections::HashSet::new()),
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
        self.saw_country(app, country);
        let policy = &wf.routing;
        let counts = ledger::keys_for(app, country, policy, plan);
        let tallies = self.ledger_tallies(now, &counts).await?;
        let read = ledger::split(&tallies, plan.len());
        let mut breakers = Vec::with_capacity(plan.len());
        for (count, tally) in counts[plan.len()..].iter().zip(read.breakers) {
            let state = ledger::breaker(policy, tally, now);
            if let Breaker::Trips(cooloff) = state {
                self.trip_breaker(count, tally, now, cooloff).await;
            }
            breakers.push(state);
        }
        let mut rng = self.inner.routing.rng.lock();
        Ok(ledger::order(policy, plan, &read, &breakers, &mut *rng))
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
        superseded: bool,
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
            superseded,
        )
    }
}

/// One route's ledger, as `switchboard routes stats` and `GET /v3/routes/stats/` show it.
#[derive(Clone, Debug, PartialEq, serde::Serialize, utoipa::ToSchema)]
pub struct RouteStats {
    pub country: String,
    pub channel: String,
    pub provider: String,
    pub price: f64,
    /// Attempts handed to the provider in the window, and how many it accepted.
    pub attempts: i64,
    pub accepted: i64,
    /// Delivery receipts: delivered, and failed (failed attempts included).
    pub delivered: i64,
    pub failed: i64,
    pub approvals: i64,
    /// Approvals of codes the user had already asked to replace: counted in `approvals`, not
    /// in `p_verified`.
    pub late_approvals: i64,
    /// Approvals / accepted sends (0 without sends).
    pub conversion: f64,
    /// Delivered / (delivered + failed), when anything was reported.
    pub delivery_rate: Option<f64>,
    /// Mean time from send to approval.
    pub mean_approval_secs: Option<f64>,
    /// Expected cost per verified user and P(verified), as adaptive routing sees them now.
    pub score: f64,
    pub p_verified: f64,
    /// `closed` or `open`.
    pub breaker: &'static str,
    /// ISO 8601, when open.
    pub breaker_open_until: Option<String>,
}

/// The ledger of an application.
#[derive(Clone, Debug, PartialEq, serde::Serialize, utoipa::ToSchema)]
pub struct RoutesReport {
    /// The application's strategy (`static` or `adaptive`).
    pub strategy: &'static str,
    /// Currency of prices and scores.
    pub currency: String,
    /// The ledger's window.
    pub window_secs: u64,
    /// Per country (sorted), each route in the order adaptive routing would try it.
    pub routes: Vec<RouteStats>,
}

/// Countries an instance remembers having routed to, per application, for the ledger report.
const SEEN_MAX: usize = 1024;

impl Engine {
    /// Remembers that `app` routed to `country` (for [`Engine::route_stats`]).
    pub(super) fn saw_country(&self, app: &str, country: Option<&str>) {
        let Some(country) = country else { return };
        let mut seen = self.inner.routing.seen.lock();
        if seen.len() < SEEN_MAX && !seen.contains(&(app.to_owned(), country.to_owned())) {
            seen.insert((app.to_owned(), country.to_owned()));
        }
    }

    /// The route ledger of an application: for every country its route table names, every
    /// country this instance routed to, and `countries`, each route's figures over the window,
    /// its current score and its breaker.
    pub async fn route_stats(
        &self,
        app: Option<&str>,
        countries: &[String],
    ) -> Result<RoutesReport, Error> {
        let (app, wf) = self.workflow(app)?;
        let mut all: std::collections::BTreeSet<String> =
            self.inner.routes.countries().map(str::to_owned).collect();
        all.extend(
            self.inner
                .routing
                .seen
                .lock()
                .iter()
                .filter(|(a, _)| a == app)
                .map(|(_, c)| c.clone()),
        );
        for c in countries {
            let c = c.trim().to_ascii_uppercase();
            if c.len() != 2 || !c.bytes().all(|b| b.is_ascii_uppercase()) {
                return Err(Error::InvalidRequest {
                    field: "country",
                    message: "must be an ISO 3166-1 alpha-2 country code".into(),
                });
            }
            all.insert(c);
        }
        let now = self.now();
        let policy = crate::routing::RoutePolicy {
            explore: 0.0,
            ..wf.routing.clone()
        };
        let mut routes = Vec::new();
        for country in &all {
            let mut plan = crate::routing::plan(
                &self.inner.routes,
                &crate::routing::PlanRequest {
                    country: Some(country),
                    number_type: crate::phone::NumberType::Mobile,
                    pinned: None,
                    preferred: None,
                    workflow_preference: (!wf.channel_preference.is_empty())
                        .then_some(wf.channel_preference.as_slice()),
                },
            );
            let counts = ledger::keys_for(app, Some(country), &policy, &plan);
            let tallies = self.ledger_tallies(now, &counts).await?;
            let read = ledger::split(&tallies, plan.len());
            let breakers: Vec<Breaker> = read
                .breakers
                .iter()
                .map(|t| ledger::breaker(&policy, t, now))
                .collect();
            let by_name: HashMap<String, (Tally, Breaker, f64)> = plan
                .iter()
                .enumerate()
                .map(|(i, r)| {
                    (
                        format!("{}:{}", r.channel, r.provider),
                        (read.routes[i], breakers[i], r.price),
                    )
                })
                .collect();
            let mut rng = SmallRng::seed_from_u64(0);
            let choices = ledger::order(&policy, &mut plan, &read, &breakers, &mut rng);
            for c in choices {
                let Some((t, b, price)) = by_name.get(&c.route) else {
                    continue;
                };
                use crate::outcomes::Field;
                let (channel, provider) = c.route.split_once(':').unwrap_or((&c.route, ""));
                let accepted = t.get(Field::Accepted);
                let approvals = t.get(Field::Approvals);
                let (delivered, failed) = (t.get(Field::Delivered), t.get(Field::Failed));
                routes.push(RouteStats {
                    country: country.clone(),
                    channel: channel.to_owned(),
                    provider: provider.to_owned(),
                    price: *price,
                    attempts: t.get(Field::Attempts),
                    accepted,
                    delivered,
                    failed,
                    approvals,
                    late_approvals: t.get(Field::LateApprovals),
                    conversion: if accepted > 0 {
                        approvals as f64 / accepted as f64
                    } else {
                        0.0
                    },
                    delivery_rate: (delivered + failed > 0)
                        .then(|| delivered as f64 / (delivered + failed) as f64),
                    mean_approval_secs: (approvals > 0)
                        .then(|| t.get(Field::ApprovalMs) as f64 / approvals as f64 / 1000.0),
                    score: c.score,
                    p_verified: c.p_verified,
                    breaker: match b {
                        Breaker::Closed => "closed",
                        _ => "open",
                    },
                    breaker_open_until: match b {
                        Breaker::Open(until) => Some(crate::clock::iso8601(*until)),
                        _ => None,
                    },
                });
            }
        }
        Ok(RoutesReport {
            strategy: wf.routing.strategy.as_str(),
            currency: self.inner.routes.currency().to_owned(),
            window_secs: wf.routing.window_secs,
            routes,
        })
    }
}
