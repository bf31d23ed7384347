//! The discrete-event loop: the real [`Engine`] (memory store, a [`ManualClock`]) between
//! simulated users and simulated providers.
//!
//! One event queue ordered by simulated time (ties by insertion order). Before an event is
//! handled the engine's clock is moved to its time. Providers schedule arrivals and receipts
//! from inside `Engine::send` / `Engine::apply_receipts`, so the queue lives behind a mutex
//! shared with them; it is never held across an engine call.
//!
//! Randomness comes from two kinds of streams derived from the scenario seed: one for the
//! users (numbers, start times, countries, conversion and typing draws), drawn once and shared
//! by every strategy, and one per (verification, n-th message to it) for the providers, so the
//! same message of the same user sees the same draws whatever route a strategy picks for it.

use std::cmp::Ordering;
use std::collections::{BinaryHeap, HashMap, HashSet};
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use anyhow::Context;
use parking_lot::Mutex;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use serde::Serialize;
use switchboard::clock::{Clock, ManualClock};
use switchboard::providers::{
    Capabilities, Channel, Countries, Delivery, DeliveryError, DeliveryReceipt, FailureClass,
    OutboundMessage, Provider, ReceiptFailure, ReceiptStatus,
};
use switchboard::routing::{OracleRequest, Route, RouteOracle, RouteTable};
use switchboard::{
    CheckRequest, CheckStatus, Config, EngineBuilder, Error, ReceiptEffect, SendRequest, SendStatus,
};

use crate::math::{lognormal_cdf, standard_normal, stream};
use crate::numbers;
use crate::scenario::{Params, Scenario};

/// A fixed pepper: the simulation's codes need no secrecy, and a fixed one keeps the engine
/// from warning about a random one.
const PEPPER: &str = "8d1f0c6a2b9e47d3a5c81f60e2b74d9a3c5e17f8b06d42a9e1c3f5b7d90a2c4e";

/// Stream ids (the `a` of [`stream`]).
const USERS: u64 = 1;
const MESSAGES: u64 = 2;

/// How routes are ordered in one run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Strategy {
    /// `routing.strategy = "static"`: the table's order.
    Static,
    /// `routing.strategy = "adaptive"`: whatever the engine's adaptive strategy does.
    Adaptive,
    /// Static config with an oracle that knows the true probabilities (see [`p_verified`]).
    Oracle,
}

impl Strategy {
    pub const ALL: [Strategy; 3] = [Strategy::Static, Strategy::Adaptive, Strategy::Oracle];

    pub const fn as_str(self) -> &'static str {
        match self {
            Strategy::Static => "static",
            Strategy::Adaptive => "adaptive",
            Strategy::Oracle => "oracle",
        }
    }
}

/// One simulated user, the same in every strategy's run.
#[derive(Clone, Debug)]
pub struct User {
    pub number: String,
    /// Index into [`Scenario::countries`].
    pub country: usize,
    /// Milliseconds after the simulation's start.
    pub start_ms: i64,
    /// Uniform draw: the user enters a code that arrives in time when this is below the
    /// route's `convert` (decided once per verification).
    pub convert_draw: f64,
    pub typing_ms: i64,
}

/// Draws the users of a scenario: start times uniform over the duration (sorted), then per
/// user a country by share, a new valid number, a conversion draw and a typing delay.
pub fn users(s: &Scenario) -> anyhow::Result<Vec<User>> {
    let mut rng = SmallRng::seed_from_u64(stream(s.seed, USERS, 0));
    let duration_ms = (s.duration_secs * 1000.0) as i64;
    let mut starts: Vec<i64> = (0..s.verifications)
        .map(|_| rng.random_range(0..duration_ms.max(1)))
        .collect();
    starts.sort_unstable();
    let mut seen = HashSet::with_capacity(s.verifications);
    let mut out = Vec::with_capacity(s.verifications);
    for start_ms in starts {
        let roll: f64 = rng.random();
        let mut acc = 0.0;
        let mut country = s.countries.len() - 1;
        for (i, c) in s.countries.iter().enumerate() {
            acc += c.share;
            if roll < acc {
                country = i;
                break;
            }
        }
        let number = numbers::draw(&mut rng, &s.countries[country].code, &mut seen)?;
        let convert_draw = rng.random();
        let [lo, hi] = s.typing_secs;
        let typing_ms = ((lo + (hi - lo) * rng.random::<f64>()) * 1000.0).round() as i64;
        out.push(User {
            number,
            country,
            start_ms,
            convert_draw,
            typing_ms,
        });
    }
    Ok(out)
}

/// P(a code sent on a route with parameters `p` gets a user verified): accepted (and not lost
/// to a timeout), delivered, arrived within `patience_secs`, entered.
pub fn p_verified(p: &Params, patience_secs: f64) -> f64 {
    let taken = p.accept * (1.0 - p.timeout * (1.0 - p.timeout_accepted));
    taken * p.deliver * lognormal_cdf(patience_secs, p.latency_median, p.latency_sigma) * p.convert
}

/// The JSON line of one run; the keys other tooling reads.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Summary {
    pub scenario: String,
    pub strategy: &'static str,
    pub verified_rate: f64,
    pub delivered_rate: f64,
    pub cost_total: f64,
    /// `null` when nobody was verified.
    pub cost_per_verified: Option<f64>,
    pub messages_per_verified: Option<f64>,
    pub p50_time_to_verify_s: Option<f64>,
    pub p95_time_to_verify_s: Option<f64>,
}

/// Counts behind the summary, for the readable table.
#[derive(Clone, Debug, Default)]
pub struct Detail {
    pub verifications: usize,
    pub verified: usize,
    pub delivered: usize,
    pub messages: u64,
    /// A code arrived in time but the user did not enter it.
    pub abandoned: usize,
    /// No code within patience after the last allowed send.
    pub gave_up: usize,
    /// The engine refused a send (blocked, rate limited) or answered an error.
    pub refused: usize,
    /// The user's check was not approved (expired code, review).
    pub check_failed: usize,
    /// Failure receipts that made the engine send a new code on the next route.
    pub rerouted: usize,
    /// Requests that timed out at the engine.
    pub timeouts: u64,
    pub wall_secs: f64,
}

/// One strategy's run of one scenario.
#[derive(Clone, Debug)]
pub struct Outcome {
    pub summary: Summary,
    pub detail: Detail,
}

enum Kind {
    Start(usize),
    Patience {
        vid: usize,
        send_no: u32,
    },
    Arrival {
        vid: usize,
        code: String,
        convert: f64,
    },
    Receipt {
        receipt: DeliveryReceipt,
    },
    Check {
        vid: usize,
        code: String,
    },
}

struct Event {
    at: i64,
    seq: u64,
    kind: Kind,
}

impl PartialEq for Event {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.seq) == (other.at, other.seq)
    }
}
impl Eq for Event {}
impl PartialOrd for Event {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Event {
    /// Reversed: the earliest event is the heap's top.
    fn cmp(&self, other: &Self) -> Ordering {
        (other.at, other.seq).cmp(&(self.at, self.seq))
    }
}

/// What the loop and the providers share.
struct Shared {
    /// Milliseconds since the start.
    now: i64,
    queue: BinaryHeap<Event>,
    seq: u64,
    cost: f64,
    messages: u64,
    timeouts: u64,
    /// Only looked up, never iterated.
    vid_of: HashMap<String, usize>,
    /// Messages offered to providers per verification (the provider stream's index).
    offered: Vec<u64>,
    next_id: u64,
}

impl Shared {
    fn push(&mut self, at: i64, kind: Kind) {
        self.seq += 1;
        self.queue.push(Event {
            at,
            seq: self.seq,
            kind,
        });
    }
}

struct SimProvider {
    name: String,
    channels: Vec<Channel>,
    scenario: Arc<Scenario>,
    shared: Arc<Mutex<Shared>>,
    start_epoch_ms: i64,
}

impl SimProvider {
    fn deliver(&self, m: &OutboundMessage) -> Result<Delivery, DeliveryError> {
        let mut s = self.shared.lock();
        let Some(&vid) = s.vid_of.get(&m.to) else {
            return Err(DeliveryError::permanent(&self.name, "not a simulated user"));
        };
        let k = s.offered[vid];
        s.offered[vid] += 1;
        // Every message draws the same six numbers, whatever happens to it.
        let mut rng = SmallRng::seed_from_u64(stream(self.scenario.seed, MESSAGES, {
            (vid as u64) << 16 | k
        }));
        let u_accept: f64 = rng.random();
        let u_timeout: f64 = rng.random();
        let u_taken: f64 = rng.random();
        let u_deliver: f64 = rng.random();
        let u_receipt: f64 = rng.random();
        let z = standard_normal(&mut rng);

        let country = m.country.as_deref().unwrap_or("");
        let Some(route) = self.scenario.route(country, m.channel, &self.name) else {
            return Err(DeliveryError::fallback(&self.name, "no such route"));
        };
        let p = *route.at(s.now);
        if u_accept >= p.accept {
            return Err(DeliveryError::fallback(&self.name, "request refused").with_code("sim"));
        }
        let latency_ms = (p.latency_median * (p.latency_sigma * z).exp() * 1000.0).round() as i64;
        let at = s.now + latency_ms.max(0);
        let delivered = u_deliver < p.deliver;
        let arrival = Kind::Arrival {
            vid,
            code: m.code.expose().to_owned(),
            convert: p.convert,
        };
        if u_timeout < p.timeout {
            s.timeouts += 1;
            // The engine never learns this message's id: no receipt can follow it.
            if u_taken < p.timeout_accepted {
                s.cost += route.price;
                s.messages += 1;
                if delivered {
                    s.push(at, arrival);
                }
            }
            // What the dispatcher makes of its own timeout: transient, outcome unknown, next
            // route (a Retry-After beyond any wait means no retry on this one).
            return Err(DeliveryError::transient(&self.name, "request timed out")
                .outcome_unknown()
                .with_retry_after(Duration::from_secs(3600)));
        }
        s.cost += route.price;
        s.messages += 1;
        s.next_id += 1;
        let id = format!("{}-{}", self.name, s.next_id);
        let receipt = |status, failure| Kind::Receipt {
            receipt: DeliveryReceipt {
                provider: self.name.clone(),
                provider_message_id: id.clone(),
                status,
                failure,
                at: SystemTime::UNIX_EPOCH
                    + Duration::from_millis((self.start_epoch_ms + at).max(0) as u64),
            },
        };
        if delivered {
            s.push(at, arrival);
            if u_receipt < p.delivered_receipt {
                s.push(at, receipt(ReceiptStatus::Delivered, None));
            }
        } else if u_receipt < p.receipt {
            let failure = ReceiptFailure {
                class: FailureClass::Fallback,
                code: Some("sim_undelivered".into()),
            };
            s.push(at, receipt(ReceiptStatus::Failed, Some(failure)));
        }
        Ok(Delivery {
            provider_message_id: id,
        })
    }
}

impl Provider for SimProvider {
    fn name(&self) -> &str {
        &self.name
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            channels: self.channels.clone(),
            countries: Countries::All,
            delivery_receipts: true,
        }
    }

    fn send(
        &self,
        message: &OutboundMessage,
    ) -> impl Future<Output = Result<Delivery, DeliveryError>> + Send {
        std::future::ready(self.deliver(message))
    }
}

/// Orders routes by true expected cost per verified user: price / [`p_verified`] at `now`.
struct Oracle {
    scenario: Arc<Scenario>,
    start_epoch_ms: i64,
}

impl RouteOracle for Oracle {
    fn order(&self, request: &OracleRequest<'_>, routes: &mut Vec<Route>) {
        let Some(code) = request.country else { return };
        let Some(country) = self.scenario.country(code) else {
            return;
        };
        let t = request.now - self.start_epoch_ms;
        let mut keyed: Vec<(f64, usize, Route)> = routes
            .drain(..)
            .enumerate()
            .map(|(i, r)| {
                let cost = match self.scenario.route(code, r.channel, &r.provider) {
                    Some(sr) => {
                        let p = p_verified(sr.at(t), country.patience_secs);
                        if p > 0.0 { r.price / p } else { f64::INFINITY }
                    }
                    None => f64::INFINITY,
                };
                (cost, i, r)
            })
            .collect();
        keyed.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
        routes.extend(keyed.into_iter().map(|(_, _, r)| r));
    }
}

/// The engine configuration of one run.
pub fn engine_config(s: &Scenario, strategy: Strategy) -> String {
    let routing = match strategy {
        Strategy::Adaptive => "adaptive",
        Strategy::Static | Strategy::Oracle => "static",
    };
    let extra = &s.routing;
    let mut limits = String::new();
    if let Some(n) = s.max_resends {
        limits.push_str(&format!("max_resends = {n}\n"));
    }
    if let Some(v) = s.validity_secs {
        limits.push_str(&format!("validity_secs = {v}\n"));
    }
    format!(
        r#"mode = "development"
pepper = "{PEPPER}"

[code]
hashing = {{ scheme = "hmac-sha256" }}
hash_concurrency = 1

[workflow.limits]
{limits}
[workflow.fraud]
mode = "off"

[workflow.routing]
strategy = "{routing}"
{extra}

[routing]
receipt_fallback = true

[providers]
stand_in = ""

[sandbox]
enabled = false
"#
    )
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    NotStarted,
    /// Waiting for a code.
    Waiting,
    /// Typing a code that arrived.
    Entering,
    Done,
}

#[derive(Clone, Copy, Debug)]
struct UserState {
    phase: Phase,
    /// Sends made (the first one included); identifies the current patience window.
    sends: u32,
    got_code: bool,
    verified_after_ms: Option<i64>,
}

/// Nearest-rank percentile of sorted values.
fn percentile(sorted: &[f64], q: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = (q * sorted.len() as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1])
}

/// Runs one strategy over `users` (from [`users`]) in the current tokio runtime (a
/// current-thread one: the loop yields after every event so the engine's spawned bookkeeping
/// runs before the next event).
pub async fn run(
    scenario: &Arc<Scenario>,
    users: &[User],
    strategy: Strategy,
) -> anyhow::Result<Outcome> {
    let wall = Instant::now();
    let clock = ManualClock::default();
    let start_epoch_ms = clock.now_ms();
    let config = Config::from_toml(&engine_config(scenario, strategy))
        .context("simulation engine configuration")?;
    let max_resends = config.workflow.limits.max_resends;
    let table =
        RouteTable::from_toml(&scenario.route_table_toml()).context("simulation route table")?;

    let shared = Arc::new(Mutex::new(Shared {
        now: 0,
        queue: BinaryHeap::with_capacity(users.len() * 2),
        seq: 0,
        cost: 0.0,
        messages: 0,
        timeouts: 0,
        vid_of: users
            .iter()
            .enumerate()
            .map(|(i, u)| (u.number.clone(), i))
            .collect(),
        offered: vec![0; users.len()],
        next_id: 0,
    }));
    let mut builder = EngineBuilder::new(config)
        .routes(table)
        .clock(Arc::new(clock.clone()))
        .seed(scenario.seed);
    for (name, channels) in scenario.providers() {
        builder = builder.provider(Arc::new(SimProvider {
            name,
            channels,
            scenario: scenario.clone(),
            shared: shared.clone(),
            start_epoch_ms,
        }));
    }
    if strategy == Strategy::Oracle {
        builder = builder.route_oracle(Arc::new(Oracle {
            scenario: scenario.clone(),
            start_epoch_ms,
        }));
    }
    let engine = builder.build().context("simulation engine")?;

    {
        let mut s = shared.lock();
        for (vid, u) in users.iter().enumerate() {
            s.push(u.start_ms, Kind::Start(vid));
        }
    }
    let mut state = vec![
        UserState {
            phase: Phase::NotStarted,
            sends: 0,
            got_code: false,
            verified_after_ms: None,
        };
        users.len()
    ];
    let mut detail = Detail {
        verifications: users.len(),
        ..Detail::default()
    };
    let patience_ms: Vec<i64> = scenario
        .countries
        .iter()
        .map(|c| (c.patience_secs * 1000.0).round() as i64)
        .collect();
    let mut now = 0i64;
    loop {
        let event = {
            let mut s = shared.lock();
            let Some(event) = s.queue.pop() else { break };
            s.now = event.at;
            event
        };
        if event.at > now {
            clock.advance_ms(event.at - now);
            now = event.at;
        }
        match event.kind {
            Kind::Start(vid) => {
                let st = &mut state[vid];
                st.phase = Phase::Waiting;
                let at = (vid, patience_ms[users[vid].country], now);
                send(&engine, &shared, &users[vid], st, &mut detail, at).await;
            }
            Kind::Patience { vid, send_no } => {
                let st = &mut state[vid];
                if st.phase != Phase::Waiting || st.sends != send_no {
                    continue;
                }
                if st.sends <= max_resends {
                    let at = (vid, patience_ms[users[vid].country], now);
                    send(&engine, &shared, &users[vid], st, &mut detail, at).await;
                } else {
                    st.phase = Phase::Done;
                    detail.gave_up += 1;
                }
            }
            Kind::Arrival { vid, code, convert } => {
                let st = &mut state[vid];
                st.got_code = true;
                if st.phase != Phase::Waiting {
                    continue;
                }
                if users[vid].convert_draw < convert {
                    st.phase = Phase::Entering;
                    shared
                        .lock()
                        .push(now + users[vid].typing_ms, Kind::Check { vid, code });
                } else {
                    st.phase = Phase::Done;
                    detail.abandoned += 1;
                }
            }
            Kind::Check { vid, code } => {
                let outcome = engine
                    .check(CheckRequest::new(users[vid].number.clone(), code))
                    .await;
                let st = &mut state[vid];
                st.phase = Phase::Done;
                match outcome {
                    Ok(o) if o.status == CheckStatus::Approved => {
                        st.verified_after_ms = Some(now - users[vid].start_ms);
                    }
                    _ => detail.check_failed += 1,
                }
            }
            Kind::Receipt { receipt } => {
                let effects = engine.apply_receipts(std::slice::from_ref(&receipt)).await;
                detail.rerouted += effects
                    .iter()
                    .filter(|e| matches!(e, ReceiptEffect::Rerouted(_)))
                    .count();
            }
        }
        // Let the engine's spawned bookkeeping (the delivery records a receipt looks up) run.
        tokio::task::yield_now().await;
    }

    let s = shared.lock();
    let mut times: Vec<f64> = state
        .iter()
        .filter_map(|st| st.verified_after_ms)
        .map(|ms| ms as f64 / 1000.0)
        .collect();
    times.sort_by(f64::total_cmp);
    detail.verified = times.len();
    detail.delivered = state.iter().filter(|st| st.got_code).count();
    detail.messages = s.messages;
    detail.timeouts = s.timeouts;
    detail.wall_secs = wall.elapsed().as_secs_f64();
    let n = users.len() as f64;
    let verified = detail.verified as f64;
    let per_verified = |x: f64| (detail.verified > 0).then(|| x / verified);
    Ok(Outcome {
        summary: Summary {
            scenario: scenario.name.clone(),
            strategy: strategy.as_str(),
            verified_rate: verified / n,
            delivered_rate: detail.delivered as f64 / n,
            cost_total: s.cost,
            cost_per_verified: per_verified(s.cost),
            messages_per_verified: per_verified(s.messages as f64),
            p50_time_to_verify_s: percentile(&times, 0.50),
            p95_time_to_verify_s: percentile(&times, 0.95),
        },
        detail,
    })
}

/// The user asks for a code (first send or resend) and opens a patience window, unless the
/// engine refuses.
async fn send(
    engine: &switchboard::Engine,
    shared: &Mutex<Shared>,
    user: &User,
    st: &mut UserState,
    detail: &mut Detail,
    (vid, patience_ms, now): (usize, i64, i64),
) {
    let outcome = engine.send(SendRequest::new(user.number.clone())).await;
    let waits = match outcome {
        // Nothing went out, but a user in front of a "try again" keeps the same patience.
        Ok(o) => matches!(
            o.status,
            SendStatus::Success | SendStatus::Retry | SendStatus::Undeliverable
        ),
        // Every provider failed on its side; an attempt may still have delivered.
        Err(Error::ProviderUnavailable) => true,
        Err(_) => false,
    };
    if !waits {
        st.phase = Phase::Done;
        detail.refused += 1;
        return;
    }
    st.sends += 1;
    shared.lock().push(
        now + patience_ms,
        Kind::Patience {
            vid,
            send_no: st.sends,
        },
    );
}
