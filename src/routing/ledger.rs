//! The route ledger and what it decides: per application, country, channel and provider,
//! windowed counts of attempts, provider accepts, delivered and failed receipts, approvals and
//! the time from send to approval (the outcome counters of module `outcomes`, dimension
//! `route`); per provider and channel, a circuit breaker over the same counters.
//!
//! Adaptive ordering: each candidate's expected cost per verified user is
//! `price / P(verified | route)`, with `P = (approvals + w * prior) / (accepted + w)`. The prior
//! comes from the table's order: the first route gets `prior_conversion`, each later route the
//! largest prior (at most `prior_conversion`) that keeps its expected cost at or above the one
//! before it, so with no evidence the order is the table's. On a share `explore` of the sends,
//! `P` is drawn from its Beta posterior instead (Thompson sampling): a route the evidence is
//! unsure of is tried now and then, a route that is clearly worse almost never.

use rand::Rng;
use rand_distr::{Beta, Distribution};
use serde::Serialize;

use super::strategy::{RoutePolicy, Strategy};
use super::table::Route;
use crate::clock::Millis;
use crate::outcomes::{self, Count, CounterKey, Dimension, Field, Tally, Window};
use crate::report::{AttemptOutcome, AttemptRecord};
use switchboard_providers::{Channel, FailureClass};

/// Breakers are shared by every application: a provider's health is not an application's.
const ALL_APPS: &str = "*";
/// Prices are floored to this in scores, so free routes still rank by P.
const MIN_PRICE: f64 = 1e-6;
/// Routes whose expected cost is within this share of the cheapest count as a tie, which the
/// higher P(verified) wins.
const NEAR_TIE: f64 = 0.10;
/// A breaker's cool-off doubles on each reopening up to this many times its base.
const MAX_COOLOFF_FACTOR: u32 = 16;

/// The ledger key of a route in one country.
pub fn route_key(app: &str, country: Option<&str>, channel: Channel, provider: &str) -> CounterKey {
    outcomes::key_of(
        app,
        Dimension::Route,
        &[country.unwrap_or("ZZ"), channel.as_str(), provider],
    )
}

/// The key of a route's longer memory: the same counts over `memory_secs`.
fn memory_key(app: &str, country: Option<&str>, channel: Channel, provider: &str) -> CounterKey {
    let mut key = route_key(app, country, channel, provider);
    key.0.push_str(":mem");
    key
}

/// The breaker key of a provider on a channel.
pub fn breaker_key(channel: Channel, provider: &str) -> CounterKey {
    outcomes::key_of(ALL_APPS, Dimension::Breaker, &[channel.as_str(), provider])
}

fn ledger_window(policy: &RoutePolicy) -> Window {
    Window {
        span_ms: secs_ms(policy.window_secs),
        buckets: 6,
    }
}

fn memory_window(policy: &RoutePolicy) -> Window {
    Window {
        span_ms: secs_ms(policy.memory_secs.max(policy.window_secs)),
        buckets: 6,
    }
}

/// The same increments for a route's window and its memory (none when `memory_secs` is 0).
fn route_counts(
    app: &str,
    country: Option<&str>,
    policy: &RoutePolicy,
    (channel, provider): (Channel, &str),
    add: Vec<(Field, i64)>,
) -> impl Iterator<Item = Count> {
    let memory = (policy.memory_secs > 0).then(|| Count {
        key: memory_key(app, country, channel, provider),
        window: memory_window(policy),
        add: add.clone(),
    });
    std::iter::once(Count {
        key: route_key(app, country, channel, provider),
        window: ledger_window(policy),
        add,
    })
    .chain(memory)
}

fn breaker_window(policy: &RoutePolicy) -> Window {
    Window {
        span_ms: secs_ms(policy.breaker_window_secs),
        buckets: 6,
    }
}

fn secs_ms(secs: u64) -> i64 {
    i64::try_from(secs.saturating_mul(1000)).unwrap_or(i64::MAX)
}

/// Whether a failed attempt counts as a failure of the route in the ledger (a refused number
/// or a provider's fraud block does not).
fn counts_against(a: &AttemptRecord) -> bool {
    a.outcome == AttemptOutcome::Timeout
        || !matches!(a.class, Some(FailureClass::Permanent | FailureClass::Fraud))
}

/// Whether a failed attempt says the provider is unwell: a timeout, a transient error (5xx,
/// rate limit) or a configuration error. A `Fallback` answer ("this number is not on
/// WhatsApp") is about the recipient, not the provider: on a channel most numbers of a country
/// are not on, it is the common answer of a healthy provider, and must not open its breaker.
fn counts_against_health(a: &AttemptRecord) -> bool {
    a.outcome == AttemptOutcome::Timeout
        || matches!(
            a.class,
            Some(FailureClass::Transient | FailureClass::Config)
        )
}

/// What the attempts of one send add to the ledger and the breakers.
pub fn attempt_counts(
    app: &str,
    country: Option<&str>,
    policy: &RoutePolicy,
    attempts: &[AttemptRecord],
) -> Vec<Count> {
    let mut counts = Vec::with_capacity(attempts.len() * 2);
    for a in attempts {
        let ok = a.outcome == AttemptOutcome::Delivered;
        let failed = !ok && counts_against(a);
        let mut add = vec![(Field::Attempts, 1)];
        if ok {
            add.push((Field::Accepted, 1));
        }
        if failed {
            add.push((Field::Failed, 1));
        }
        counts.extend(route_counts(
            app,
            country,
            policy,
            (a.channel, &a.provider),
            add,
        ));
        counts.push(Count {
            key: breaker_key(a.channel, &a.provider),
            window: breaker_window(policy),
            add: vec![
                (Field::Attempts, 1),
                (Field::Failed, i64::from(!ok && counts_against_health(a))),
            ],
        });
    }
    counts
}

/// What a delivery receipt adds: delivered, or failed (a failure also feeds the breaker).
pub fn receipt_counts(
    app: &str,
    country: Option<&str>,
    policy: &RoutePolicy,
    channel: Channel,
    provider: &str,
    delivered: bool,
) -> Vec<Count> {
    let field = if delivered {
        Field::Delivered
    } else {
        Field::Failed
    };
    let mut counts: Vec<Count> =
        route_counts(app, country, policy, (channel, provider), vec![(field, 1)]).collect();
    if !delivered {
        counts.push(Count {
            key: breaker_key(channel, provider),
            window: breaker_window(policy),
            add: vec![(Field::Failed, 1)],
        });
    }
    counts
}

/// What an approval adds to the route that carried the approved code; `late` when the user
/// had asked for another code before entering this one.
pub fn approval_counts(
    app: &str,
    country: Option<&str>,
    policy: &RoutePolicy,
    channel: Channel,
    provider: &str,
    after_ms: i64,
    late: bool,
) -> Vec<Count> {
    let add = vec![
        (Field::Approvals, 1),
        (Field::ApprovalMs, after_ms.max(0)),
        (Field::LateApprovals, i64::from(late)),
    ];
    route_counts(app, country, policy, (channel, provider), add).collect()
}

/// Approvals that came in time: the code was entered before the user asked for another.
/// A code that arrives after the user gave up on it verifies them only by luck, and its
/// route's next user will have to ask again too.
fn on_time_approvals(t: &Tally) -> i64 {
    (t.get(Field::Approvals) - t.get(Field::LateApprovals)).max(0)
}

/// The keys `order` reads for `plan`: each route's ledger key, then each breaker key, then
/// (when `memory_secs` is set) each route's memory key. [`split`] takes the answer apart.
pub fn keys_for(
    app: &str,
    country: Option<&str>,
    policy: &RoutePolicy,
    plan: &[Route],
) -> Vec<Count> {
    let ledger = plan.iter().map(|r| Count {
        key: route_key(app, country, r.channel, &r.provider),
        window: ledger_window(policy),
        add: Vec::new(),
    });
    let breakers = plan.iter().map(|r| Count {
        key: breaker_key(r.channel, &r.provider),
        window: breaker_window(policy),
        add: Vec::new(),
    });
    let memory = plan
        .iter()
        .filter(|_| policy.memory_secs > 0)
        .map(|r| Count {
            key: memory_key(app, country, r.channel, &r.provider),
            window: memory_window(policy),
            add: Vec::new(),
        });
    ledger.chain(breakers).chain(memory).collect()
}

/// What [`keys_for`] read for a plan of `n` routes, in its three parts.
pub struct LedgerRead<'a> {
    pub routes: &'a [Tally],
    pub breakers: &'a [Tally],
    /// Empty when `memory_secs` is 0.
    pub memory: &'a [Tally],
}

pub fn split(tallies: &[Tally], n: usize) -> LedgerRead<'_> {
    let (routes, rest) = tallies.split_at(n.min(tallies.len()));
    let (breakers, memory) = rest.split_at(n.min(rest.len()));
    LedgerRead {
        routes,
        breakers,
        memory,
    }
}

/// Why the first route of a send was chosen: the send result and its events carry it.
#[derive(Clone, Debug, PartialEq, Serialize, utoipa::ToSchema)]
pub struct RouteChoice {
    /// The route, `channel:provider`.
    pub route: String,
    /// `static` or `adaptive`.
    pub strategy: &'static str,
    /// Expected cost per verified user of the chosen route, in the table's currency.
    pub score: f64,
    /// The estimated probability that the route verifies the user.
    pub p_verified: f64,
    /// Accepted sends of this route in the ledger's window (the evidence behind `p_verified`).
    pub evidence: i64,
    /// Approvals among them.
    pub approvals: i64,
    /// True when this send was one of the exploring share (ordered by a posterior sample).
    pub explored: bool,
    /// Routes moved to the end of the plan by an open circuit breaker.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub broken: Vec<String>,
    /// On a resend: the previous code's route, moved to the end because the user waited
    /// longer than the patience for it (its code was probably lost).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub patience_exceeded: Option<String>,
}

/// A breaker's state, read from its counter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Breaker {
    Closed,
    /// Open until then.
    Open(Millis),
    /// Its failures just crossed the threshold: open it for this long (ms).
    Trips(i64),
}

/// What the breaker counter says at `now`.
pub fn breaker(policy: &RoutePolicy, tally: &Tally, now: Millis) -> Breaker {
    if tally.is_blocked(now) {
        return Breaker::Open(tally.blocked_until);
    }
    let attempts = tally.get(Field::Attempts);
    let failed = tally.get(Field::Failed);
    if attempts >= i64::from(policy.breaker_min_volume)
        && attempts > 0
        && failed as f64 / attempts as f64 >= policy.breaker_rate()
    {
        let factor = 1i64 << tally.blocks.min(MAX_COOLOFF_FACTOR.trailing_zeros());
        return Breaker::Trips(secs_ms(policy.breaker_cooloff_secs).saturating_mul(factor));
    }
    Breaker::Closed
}

/// Orders `plan` (in the planner's order) by the strategy, then moves routes whose breaker is
/// open to the end. `tallies` are what [`keys_for`] read, in that order. Returns why each
/// route stands where it does, in the new order.
pub fn order<R: Rng>(
    policy: &RoutePolicy,
    plan: &mut Vec<Route>,
    read: &LedgerRead<'_>,
    breakers: &[Breaker],
    rng: &mut R,
) -> Vec<RouteChoice> {
    if plan.is_empty() {
        return Vec::new();
    }
    let tallies = read.routes;
    let n = plan.len();
    let priors = remembered(policy, &priors(policy, plan), tallies, read.memory);
    let explored = policy.strategy == Strategy::Adaptive && rng.random_bool(policy.explore);
    let mut scored: Vec<(usize, f64, f64)> = (0..n)
        .map(|i| {
            let t = tallies.get(i).copied().unwrap_or_default();
            let accepted = t.get(Field::Accepted).max(0) as f64;
            let approvals = (on_time_approvals(&t) as f64).min(accepted);
            let w = policy.prior_weight;
            let (alpha, beta) = (
                approvals + w * priors[i],
                (accepted - approvals) + w * (1.0 - priors[i]),
            );
            let p = if explored {
                Beta::new(alpha.max(1e-3), beta.max(1e-3))
                    .map(|b| b.sample(rng))
                    .unwrap_or(alpha / (alpha + beta))
            } else {
                alpha / (alpha + beta)
            };
            let p = p.max(1e-6);
            (i, plan[i].price.max(MIN_PRICE) / p, p)
        })
        .collect();
    if policy.strategy == Strategy::Adaptive {
        // Stable: equal scores keep the table's order.
        scored.sort_by(|a, b| a.1.total_cmp(&b.1));
        // Near-ties go to the route that verifies more users: a route within NEAR_TIE of the
        // cheapest expected cost with a higher P goes first (a lost user is worth more than
        // the few percent).
        if let Some(best) = scored.first().map(|s| s.1) {
            let pick = scored
                .iter()
                .enumerate()
                .take_while(|(_, s)| s.1 <= best * (1.0 + NEAR_TIE))
                .max_by(|x, y| x.1.2.total_cmp(&y.1.2))
                .map(|(i, _)| i);
            if let Some(i) = pick.filter(|i| *i > 0) {
                let chosen = scored.remove(i);
                scored.insert(0, chosen);
            }
        }
    }
    let open = |i: usize| matches!(breakers.get(i), Some(Breaker::Open(_) | Breaker::Trips(_)));
    let (closed, broken): (Vec<_>, Vec<_>) = scored.into_iter().partition(|s| !open(s.0));
    let broken_names: Vec<String> = broken
        .iter()
        .map(|(i, _, _)| format!("{}:{}", plan[*i].channel, plan[*i].provider))
        .collect();
    let order: Vec<_> = closed.into_iter().chain(broken).collect();
    let choices = order
        .iter()
        .map(|(i, score, p)| {
            let t = tallies.get(*i).copied().unwrap_or_default();
            RouteChoice {
                route: format!("{}:{}", plan[*i].channel, plan[*i].provider),
                strategy: policy.strategy.as_str(),
                score: *score,
                p_verified: *p,
                evidence: t.get(Field::Accepted),
                approvals: on_time_approvals(&t),
                explored,
                broken: broken_names.clone(),
                patience_exceeded: None,
            }
        })
        .collect();
    let old = std::mem::take(plan);
    let mut slots: Vec<Option<Route>> = old.into_iter().map(Some).collect();
    plan.extend(order.iter().filter_map(|(i, _, _)| slots[*i].take()));
    choices
}

/// How long a user waits for a code on `route` before a resend goes elsewhere: the
/// configured patience, or twice the mean time to approval the ledger saw (20-120 s; 60 s
/// before 5 approvals).
pub fn patience_ms(policy: &RoutePolicy, route: &Tally) -> i64 {
    if policy.patience_secs > 0 {
        return secs_ms(policy.patience_secs);
    }
    let approvals = route.get(Field::Approvals);
    if approvals < 5 {
        return 60_000;
    }
    (2 * route.get(Field::ApprovalMs) / approvals).clamp(20_000, 120_000)
}

/// The table's priors, updated with the evidence the memory holds from before the window: a
/// route measured bad an hour ago starts from what was measured, not from the table's
/// optimism, when the window has forgotten it (and so when it gets little traffic).
fn remembered(policy: &RoutePolicy, table: &[f64], window: &[Tally], memory: &[Tally]) -> Vec<f64> {
    let w = policy.prior_weight;
    table
        .iter()
        .enumerate()
        .map(|(i, prior)| {
            let (Some(mem), Some(win)) = (memory.get(i), window.get(i)) else {
                return *prior;
            };
            let old = (mem.get(Field::Accepted) - win.get(Field::Accepted)).max(0) as f64;
            let old_ok = ((on_time_approvals(mem) - on_time_approvals(win)).max(0) as f64).min(old);
            ((old_ok + w * prior) / (old + w)).clamp(1e-3, 1.0)
        })
        .collect()
}

/// Priors that keep the table's order: the first route `prior_conversion`; each later one the
/// largest prior not above it whose expected cost is not below the previous route's.
fn priors(policy: &RoutePolicy, plan: &[Route]) -> Vec<f64> {
    let top = policy.prior_conversion;
    let mut out = Vec::with_capacity(plan.len());
    let mut prev_cost = 0.0_f64;
    for r in plan {
        let price = r.price.max(MIN_PRICE);
        let p = if out.is_empty() || prev_cost <= 0.0 {
            top
        } else {
            // A hair under the break-even prior, so rounding never swaps equal costs.
            (price / prev_cost * 0.999).clamp(0.01, top)
        };
        prev_cost = prev_cost.max(price / p);
        out.push(p);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use std::sync::Arc;

    fn policy(strategy: Strategy) -> RoutePolicy {
        crate::Config::from_toml("")
            .unwrap()
            .workflow
            .routing
            .clone_with(strategy)
    }

    trait With {
        fn clone_with(&self, s: Strategy) -> RoutePolicy;
    }
    impl With for RoutePolicy {
        fn clone_with(&self, s: Strategy) -> RoutePolicy {
            RoutePolicy {
                strategy: s,
                ..self.clone()
            }
        }
    }

    fn route(channel: Channel, provider: &str, price: f64) -> Route {
        Route {
            channel,
            provider: Arc::from(provider),
            price,
        }
    }

    fn tally(accepted: i64, approvals: i64) -> Tally {
        let mut t = Tally::default();
        t.sums[Field::Accepted as usize] = accepted;
        t.sums[Field::Approvals as usize] = approvals;
        t
    }

    fn names(plan: &[Route]) -> Vec<String> {
        plan.iter()
            .map(|r| format!("{}:{}", r.channel, r.provider))
            .collect()
    }

    #[test]
    fn with_no_evidence_adaptive_keeps_the_tables_order_even_when_a_later_route_is_cheaper() {
        let mut p = policy(Strategy::Adaptive);
        p.explore = 0.0;
        let mut plan = vec![
            route(Channel::Sms, "twilio", 0.05),
            route(Channel::Whatsapp, "meta_whatsapp", 0.007),
            route(Channel::Call, "twilio", 0.09),
        ];
        let empty = vec![Tally::default(); 6];
        let mut rng = rand::rngs::SmallRng::seed_from_u64(1);
        order(
            &p,
            &mut plan,
            &split(&empty, 3),
            &[Breaker::Closed; 3],
            &mut rng,
        );
        assert_eq!(
            names(&plan),
            ["sms:twilio", "whatsapp:meta_whatsapp", "call:twilio"]
        );
    }

    #[test]
    fn evidence_moves_the_cheapest_verified_route_first() {
        let mut p = policy(Strategy::Adaptive);
        p.explore = 0.0;
        let mut plan = vec![
            route(Channel::Sms, "twilio", 0.05),
            route(Channel::Whatsapp, "meta_whatsapp", 0.007),
        ];
        // WhatsApp verifies 85 of 100; SMS 20 of 100 (a degraded route).
        let tallies = [tally(100, 20), tally(100, 85)];
        let mut rng = rand::rngs::SmallRng::seed_from_u64(1);
        let choice = order(
            &p,
            &mut plan,
            &split(&tallies, tallies.len()),
            &[Breaker::Closed; 2],
            &mut rng,
        )
        .remove(0);
        assert_eq!(names(&plan), ["whatsapp:meta_whatsapp", "sms:twilio"]);
        assert_eq!(choice.route, "whatsapp:meta_whatsapp");
        assert_eq!(choice.evidence, 100);
        assert!((choice.p_verified - (85.0 + 10.0 * p_prior_second()) / 110.0).abs() < 0.05);
    }

    fn p_prior_second() -> f64 {
        // 0.007 / (0.05 / 0.8): the prior that kept WhatsApp behind SMS.
        0.007 / (0.05 / 0.8) * 0.999
    }

    #[test]
    fn a_near_tie_goes_to_the_route_that_verifies_more_users() {
        let mut p = policy(Strategy::Adaptive);
        p.explore = 0.0;
        let mut plan = vec![
            route(Channel::Sms, "wholesale", 0.025),
            route(Channel::Sms, "infobip", 0.07),
        ];
        // Wholesale: 0.025 / 0.31 = 0.081; infobip: 0.07 / 0.87 = 0.080 -- a tie within 10%,
        // and the same holds the other way round: infobip verifies users, it goes first.
        let tallies = [tally(1000, 310), tally(1000, 870)];
        let mut rng = rand::rngs::SmallRng::seed_from_u64(1);
        order(
            &p,
            &mut plan,
            &split(&tallies, tallies.len()),
            &[Breaker::Closed; 2],
            &mut rng,
        );
        assert_eq!(names(&plan), ["sms:infobip", "sms:wholesale"]);
        // Far from a tie, price wins.
        let mut plan = vec![
            route(Channel::Sms, "wholesale", 0.010),
            route(Channel::Sms, "infobip", 0.07),
        ];
        order(
            &p,
            &mut plan,
            &split(&tallies, tallies.len()),
            &[Breaker::Closed; 2],
            &mut rng,
        );
        assert_eq!(names(&plan), ["sms:wholesale", "sms:infobip"]);
    }

    #[test]
    fn static_keeps_the_order_whatever_the_evidence() {
        let p = policy(Strategy::Static);
        let mut plan = vec![
            route(Channel::Sms, "twilio", 0.05),
            route(Channel::Whatsapp, "meta_whatsapp", 0.007),
        ];
        let tallies = [tally(100, 5), tally(100, 95)];
        let mut rng = rand::rngs::SmallRng::seed_from_u64(1);
        order(
            &p,
            &mut plan,
            &split(&tallies, tallies.len()),
            &[Breaker::Closed; 2],
            &mut rng,
        );
        assert_eq!(names(&plan), ["sms:twilio", "whatsapp:meta_whatsapp"]);
    }

    #[test]
    fn an_open_breaker_moves_its_route_to_the_end_instead_of_dropping_it() {
        let p = policy(Strategy::Static);
        let mut plan = vec![
            route(Channel::Whatsapp, "meta_whatsapp", 0.007),
            route(Channel::Sms, "twilio", 0.05),
        ];
        let mut rng = rand::rngs::SmallRng::seed_from_u64(1);
        let choice = order(
            &p,
            &mut plan,
            &split(&[Tally::default(), Tally::default()], 2),
            &[Breaker::Open(i64::MAX), Breaker::Closed],
            &mut rng,
        )
        .remove(0);
        assert_eq!(names(&plan), ["sms:twilio", "whatsapp:meta_whatsapp"]);
        assert_eq!(choice.broken, ["whatsapp:meta_whatsapp"]);
    }

    #[test]
    fn exploration_stays_within_its_share_and_never_picks_a_clearly_worse_route() {
        let p = policy(Strategy::Adaptive);
        let tallies = [tally(1000, 900), tally(0, 0)];
        let mut rng = rand::rngs::SmallRng::seed_from_u64(7);
        let (mut explored, mut second) = (0, 0);
        for _ in 0..10_000 {
            // The second route costs 10x more: even at P = 1 it cannot beat the first.
            let mut plan = vec![
                route(Channel::Whatsapp, "meta_whatsapp", 0.005),
                route(Channel::Sms, "twilio", 0.05),
            ];
            let c = order(
                &p,
                &mut plan,
                &split(&tallies, tallies.len()),
                &[Breaker::Closed; 2],
                &mut rng,
            )
            .remove(0);
            explored += usize::from(c.explored);
            second += usize::from(plan[0].provider.as_ref() == "twilio");
        }
        assert!(explored < 700, "{explored} of 10000 explored");
        assert_eq!(second, 0);
    }

    #[test]
    fn patience_is_configured_or_twice_the_learned_time_to_approval() {
        let mut p = policy(Strategy::Adaptive);
        let mut t = Tally::default();
        assert_eq!(patience_ms(&p, &t), 60_000, "no evidence yet");
        t.sums[Field::Approvals as usize] = 10;
        t.sums[Field::ApprovalMs as usize] = 10 * 14_000;
        assert_eq!(patience_ms(&p, &t), 28_000);
        t.sums[Field::ApprovalMs as usize] = 10 * 2_000;
        assert_eq!(patience_ms(&p, &t), 20_000, "floored");
        p.patience_secs = 45;
        assert_eq!(patience_ms(&p, &t), 45_000);
    }

    #[test]
    fn a_breaker_trips_over_its_threshold_and_volume_only() {
        let p = policy(Strategy::Static);
        let mut t = Tally::default();
        t.sums[Field::Attempts as usize] = 19;
        t.sums[Field::Failed as usize] = 19;
        assert_eq!(
            breaker(&p, &t, 0),
            Breaker::Closed,
            "under the minimum volume"
        );
        t.sums[Field::Attempts as usize] = 40;
        assert_eq!(
            breaker(&p, &t, 0),
            Breaker::Closed,
            "19 of 40 failed: under 50%"
        );
        t.sums[Field::Failed as usize] = 20;
        assert_eq!(breaker(&p, &t, 0), Breaker::Trips(60_000));
        t.blocks = 2;
        assert_eq!(
            breaker(&p, &t, 0),
            Breaker::Trips(240_000),
            "doubles per reopening"
        );
        t.blocked_until = 5;
        assert_eq!(breaker(&p, &t, 0), Breaker::Open(5));
    }

    fn breaker_tally(attempts: i64, failed: i64) -> Tally {
        let mut t = Tally::default();
        t.sums[Field::Attempts as usize] = attempts;
        t.sums[Field::Failed as usize] = failed;
        t
    }

    #[test]
    fn breakers_open_at_half_failures_under_static_and_at_four_fifths_under_adaptive() {
        let trips = |s: Strategy, failed| {
            matches!(
                breaker(&policy(s), &breaker_tally(40, failed), 0),
                Breaker::Trips(_)
            )
        };
        assert!(trips(Strategy::Static, 20));
        assert!(!trips(Strategy::Static, 19));
        assert!(!trips(Strategy::Adaptive, 20));
        assert!(trips(Strategy::Adaptive, 32));
        let mut fixed = policy(Strategy::Adaptive);
        fixed.breaker_failure_rate = 0.5;
        assert!(matches!(
            breaker(&fixed, &breaker_tally(40, 20), 0),
            Breaker::Trips(_)
        ));
    }

    #[test]
    fn a_recipient_the_route_cannot_reach_does_not_count_against_the_providers_health() {
        let attempt = |class| AttemptRecord {
            channel: Channel::Whatsapp,
            provider: "wa".into(),
            outcome: AttemptOutcome::Failed,
            class: Some(class),
            error_code: None,
        };
        let p = policy(Strategy::Static);
        let failed = |class| {
            attempt_counts("app", Some("GB"), &p, &[attempt(class)])
                .into_iter()
                .find(|c| c.key == breaker_key(Channel::Whatsapp, "wa"))
                .unwrap()
                .add
                .iter()
                .find(|(f, _)| *f == Field::Failed)
                .map_or(0, |(_, n)| *n)
        };
        assert_eq!(failed(FailureClass::Fallback), 0);
        assert_eq!(failed(FailureClass::Transient), 1);
        assert_eq!(failed(FailureClass::Config), 1);
    }

    #[test]
    fn late_approvals_do_not_count_for_p_verified() {
        let mut p = policy(Strategy::Adaptive);
        p.explore = 0.0;
        let mut plan = vec![route(Channel::Sms, "slow", 0.02)];
        let mut on_time = tally(100, 40);
        let mut rng = rand::rngs::SmallRng::seed_from_u64(1);
        let all = order(
            &p,
            &mut plan,
            &split(&[on_time], 1),
            &[Breaker::Closed],
            &mut rng,
        );
        on_time.sums[Field::LateApprovals as usize] = 20;
        let late = order(
            &p,
            &mut plan,
            &split(&[on_time], 1),
            &[Breaker::Closed],
            &mut rng,
        );
        assert!(late[0].p_verified < all[0].p_verified - 0.15);
        assert_eq!(late[0].approvals, 20);
    }

    #[test]
    fn a_route_measured_bad_before_the_window_keeps_a_bad_prior_when_the_window_forgets_it() {
        let mut p = policy(Strategy::Adaptive);
        p.explore = 0.0;
        // Nothing in the window (2 routes, 2 breakers); `memory` after it. Returns the order.
        let ordered = |memory: [Tally; 2]| {
            let mut reads = vec![Tally::default(); 4];
            reads.extend(memory);
            let mut plan = vec![
                route(Channel::Sms, "cheap", 0.025),
                route(Channel::Sms, "direct", 0.07),
            ];
            let mut rng = rand::rngs::SmallRng::seed_from_u64(1);
            order(
                &p,
                &mut plan,
                &split(&reads, 2),
                &[Breaker::Closed; 2],
                &mut rng,
            );
            names(&plan)
        };
        // The memory saw the cheap route convert 30% of 400 sends.
        assert_eq!(
            ordered([tally(400, 120), Tally::default()]),
            ["sms:direct", "sms:cheap"]
        );
        // Without memory, the table's optimistic prior puts the cheap route first again.
        assert_eq!(ordered([Tally::default(); 2]), ["sms:cheap", "sms:direct"]);
    }
}
