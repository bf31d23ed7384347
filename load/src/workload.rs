//! The workload: N workers, each with one call in flight, running sessions drawn from a mix
//! over a pool of numbers, and judging every answer against what the limits allow.
//!
//! A number is owned by one worker for the length of a session, so the codes the emulator
//! recorded for it are that session's codes, and the worker knows exactly how many sends the
//! number has used in the rolling window. That is what makes the correctness counts exact:
//! - a right code, checked within its validity with attempts left, must be approved, once;
//! - a second check of an approved code, and all but one of concurrent checks, must not be;
//! - a wrong code must not be; after the attempt budget is spent, the right code must not be;
//! - a send beyond the resend budget must be refused;
//! - a code checked after its verification expired must not be approved.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use parking_lot::Mutex;
use rand::Rng;
use rand::rngs::SmallRng;
use rand::{SeedableRng, seq::IndexedRandom};

use crate::client::{CallError, CheckAnswer, CheckStatus, Client, Health, SendStatus};
use crate::emulator::Emulator;
use crate::stats::{Op, Stats, Violation};

/// One kind of session of the mix.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// send → check the right code (approved).
    Pair,
    /// send → a wrong code (failed, one attempt left) → the right code (approved).
    Wrong,
    /// send → two wrong codes (declined: attempts exceeded) → the right code (must not approve).
    Exhaust,
    /// send → resend (retry) → check the first code (approved) → the second (not found).
    Resend,
    /// send → right code (approved) → the same code again (must not approve).
    Double,
    /// send → 8 concurrent checks of the right code (exactly one approved).
    Concurrent,
    /// lookup of a number (no send).
    Lookup,
    /// a send to a number whose resend budget is spent (must be refused).
    OverLimit,
}

impl Kind {
    fn parse(s: &str) -> anyhow::Result<Self> {
        Ok(match s {
            "pair" => Kind::Pair,
            "wrong" => Kind::Wrong,
            "exhaust" => Kind::Exhaust,
            "resend" => Kind::Resend,
            "double" => Kind::Double,
            "concurrent" => Kind::Concurrent,
            "lookup" => Kind::Lookup,
            "overlimit" => Kind::OverLimit,
            other => bail!(
                "mix item `{other}`: pair, wrong, exhaust, resend, double, concurrent, lookup, overlimit"
            ),
        })
    }
}

/// Weighted session kinds: `pair=80,wrong=5,...`.
#[derive(Clone, Debug)]
pub struct Mix(Vec<(Kind, u32)>);

impl Mix {
    pub fn parse(spec: &str) -> anyhow::Result<Self> {
        let mut items = Vec::new();
        for part in spec.split(',').filter(|p| !p.trim().is_empty()) {
            let (k, w) = part.split_once('=').unwrap_or((part, "1"));
            items.push((
                Kind::parse(k.trim())?,
                w.trim().parse().context("mix weight")?,
            ));
        }
        if items.iter().map(|(_, w)| w).sum::<u32>() == 0 {
            bail!("the mix `{spec}` has no weight");
        }
        Ok(Mix(items))
    }

    fn draw(&self, rng: &mut SmallRng) -> Kind {
        let total: u32 = self.0.iter().map(|(_, w)| w).sum();
        let mut roll = rng.random_range(0..total);
        for (k, w) in &self.0 {
            if roll < *w {
                return *k;
            }
            roll -= w;
        }
        unreachable!("roll below the total weight")
    }
}

/// Numbers with the sends each has used in the rolling window, handed out one session at a
/// time.
pub struct Pool {
    numbers: Arc<Vec<String>>,
    /// Numbers with budget left: (index, sends used, second of the pool's clock it was last
    /// given back).
    fresh: Mutex<VecDeque<(u32, u32, u32)>>,
    /// Numbers whose budget is spent, kept for over-limit probes: (index, last given back).
    spent: Mutex<VecDeque<(u32, u32)>>,
    /// Untouched numbers kept for sessions that spend a whole budget (over-limit probes when
    /// no number is spent yet).
    reserve: Mutex<VecDeque<u32>>,
    /// Sends allowed per number in the window (1 + max_resends).
    pub allowance: u32,
    /// The sidecar's rolling window, when a run outlasts it: a number last given back longer
    /// ago than this (plus a margin) has every send out of the window and its whole budget back.
    window: Option<Duration>,
    epoch: Instant,
}

impl Pool {
    /// The numbers of `range`; the last `reserve` of them are kept for whole-budget sessions.
    pub fn new(
        numbers: Arc<Vec<String>>,
        range: std::ops::Range<usize>,
        allowance: u32,
        reserve: usize,
    ) -> Self {
        let split = range.end - reserve.min(range.len() / 2);
        Pool {
            fresh: Mutex::new((range.start..split).map(|i| (i as u32, 0, 0)).collect()),
            spent: Mutex::new(VecDeque::new()),
            reserve: Mutex::new((split..range.end).map(|i| i as u32).collect()),
            numbers,
            allowance,
            window: None,
            epoch: Instant::now(),
        }
    }

    /// Numbers come back with their whole budget once `window` has passed since their last
    /// session (runs longer than the sidecar's `resend_window_secs`).
    pub fn with_window(mut self, window: Duration) -> Self {
        self.window = Some(window);
        self
    }

    fn now_secs(&self) -> u32 {
        self.epoch.elapsed().as_secs() as u32
    }

    /// Whether every send of a number last given back at `last` has left the window.
    fn out_of_window(&self, last: u32) -> bool {
        self.window
            .is_some_and(|w| self.now_secs() > last + w.as_secs() as u32 + 2)
    }

    /// An untouched number, for a session that spends its whole budget.
    fn take_untouched(&self) -> Option<u32> {
        self.reserve.lock().pop_front()
    }

    pub fn number(&self, i: u32) -> &str {
        &self.numbers[i as usize]
    }

    /// A number with at least `sends` sends of budget left, looking at the next few numbers of
    /// the queue (numbers with less budget go to its back). Every queued number has at least
    /// one send left, so `take(1)` fails only when the population is spent.
    fn take(&self, sends: u32) -> Option<(u32, u32)> {
        let mut fresh = self.fresh.lock();
        for _ in 0..fresh.len().min(64) {
            let (i, mut used, last) = fresh.pop_front()?;
            if self.out_of_window(last) {
                used = 0;
            }
            if used + sends <= self.allowance {
                return Some((i, used));
            }
            fresh.push_back((i, used, last));
        }
        None
    }

    fn give_back(&self, i: u32, used: u32) {
        let now = self.now_secs();
        if used < self.allowance {
            self.fresh.lock().push_back((i, used, now));
        } else {
            self.spent.lock().push_back((i, now));
        }
    }

    /// A number whose budget is spent; one whose sends all left the window goes back to the
    /// fresh numbers instead.
    fn take_spent(&self) -> Option<u32> {
        let mut spent = self.spent.lock();
        while let Some((i, last)) = spent.pop_front() {
            if !self.out_of_window(last) {
                return Some(i);
            }
            self.fresh.lock().push_back((i, 0, last));
        }
        None
    }

    fn give_back_spent(&self, i: u32) {
        self.spent.lock().push_back((i, self.now_secs()));
    }

    /// Numbers still usable for a first send.
    pub fn fresh_len(&self) -> usize {
        self.fresh.lock().len()
    }
}

/// The limits the sidecar was configured with (the workload judges answers against them).
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    pub validity: Duration,
    pub max_attempts: u32,
}

/// What the workers share.
pub struct Ctx {
    pub clients: Vec<Client>,
    pub emulator: Arc<Emulator>,
    pub pool: Arc<Pool>,
    pub mix: Mix,
    pub limits: Limits,
    /// Numbers lookups pick from.
    pub lookup_numbers: Arc<Vec<String>>,
    /// Sessions start at this pace over all workers (open loop); unset: as fast as answers come.
    pub pace: Option<Pacer>,
}

/// Hands out session start times `interval` apart, shared by every worker.
pub struct Pacer {
    epoch: Instant,
    interval_us: u64,
    next_us: AtomicU64,
}

impl Pacer {
    /// `per_sec` session starts per second.
    pub fn new(per_sec: f64) -> Self {
        Pacer {
            epoch: Instant::now(),
            interval_us: (1e6 / per_sec.max(0.001)) as u64,
            next_us: AtomicU64::new(0),
        }
    }

    /// Waits for the next start time (a worker that fell behind does not catch up in a burst
    /// longer than one second).
    async fn wait(&self) {
        let now_us = self.epoch.elapsed().as_micros() as u64;
        let floor = now_us.saturating_sub(1_000_000);
        let mut current = self.next_us.load(Ordering::Relaxed);
        let slot = loop {
            let slot = current.max(floor);
            match self.next_us.compare_exchange_weak(
                current,
                slot + self.interval_us,
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => break slot,
                Err(seen) => current = seen,
            }
        };
        if slot > now_us {
            tokio::time::sleep(Duration::from_micros(slot - now_us)).await;
        }
    }
}

/// When a level stops.
#[derive(Clone, Copy, Debug)]
pub enum Stop {
    After(Duration),
    /// After this many sessions (or the duration, whichever comes first).
    Count(u64, Duration),
}

/// Runs `concurrency` workers until `stop`; returns the merged stats and the wall time.
pub async fn run_level(ctx: Arc<Ctx>, concurrency: usize, stop: Stop) -> (Stats, Duration) {
    let started = Instant::now();
    let (deadline, budget) = match stop {
        Stop::After(d) => (started + d, u64::MAX),
        Stop::Count(n, d) => (started + d, n),
    };
    let issued = Arc::new(AtomicU64::new(0));
    let workers: Vec<_> = (0..concurrency)
        .map(|w| {
            let ctx = ctx.clone();
            let issued = issued.clone();
            let mut client = ctx.clients[w % ctx.clients.len()].clone();
            tokio::spawn(async move {
                let mut rng = SmallRng::seed_from_u64(0x5eed ^ w as u64 ^ rand::random::<u64>());
                let mut stats = Stats::default();
                while Instant::now() < deadline && issued.fetch_add(1, Ordering::Relaxed) < budget {
                    if let Some(pace) = &ctx.pace {
                        pace.wait().await;
                    }
                    let kind = ctx.mix.draw(&mut rng);
                    stats.sessions += 1;
                    if !session(&ctx, &mut client, kind, &mut rng, &mut stats).await {
                        stats.count("population_exhausted");
                        break;
                    }
                }
                stats
            })
        })
        .collect();
    let mut total = Stats::default();
    for w in workers {
        if let Ok(s) = w.await {
            total.merge(&s);
        }
    }
    (total, started.elapsed())
}

/// What one send gave.
enum Sent {
    /// Accepted: the codes the provider received (newest last), and when the answer came.
    Delivered {
        codes: Vec<String>,
        status: SendStatus,
        at: Instant,
    },
    /// Refused or undeliverable: no budget used.
    Refused,
    /// The call failed: whether the send was reserved is unknown.
    Unknown(CallError),
}

/// The fraud screen's refusal reasons.
const FRAUD_RULES: [&str; 6] = [
    "PREFIX_VELOCITY",
    "COUNTRY_ANOMALY",
    "IP_VELOCITY",
    "DEVICE_VELOCITY",
    "GEO_DENIED",
    "SPEND_CAP",
];

async fn send(ctx: &Ctx, client: &mut Client, number: &str, stats: &mut Stats) -> Sent {
    let t0 = Instant::now();
    let answer = client.send(number).await;
    let latency = t0.elapsed();
    let at = Instant::now();
    stats.calls += 1;
    stats.record(Op::Send, latency);
    let record = ctx.emulator.take(number).unwrap_or_default();
    match answer {
        Ok(a) => match a.status {
            SendStatus::Success | SendStatus::Retry => {
                let provider_us = record.provider_us;
                stats.record_us(Op::Provider, provider_us);
                stats.record_us(
                    Op::EngineAdded,
                    (latency.as_micros() as u64).saturating_sub(provider_us),
                );
                if a.attempts > 1 {
                    stats.count("fallback");
                }
                match a.channel.as_deref() {
                    Some("sms") => stats.count("delivered_sms"),
                    Some("whatsapp") => stats.count("delivered_whatsapp"),
                    _ => stats.count("delivered_other"),
                }
                if record.codes.is_empty() {
                    stats.violation(Violation::SuccessWithoutDelivery);
                    return Sent::Refused;
                }
                Sent::Delivered {
                    codes: record.codes,
                    status: a.status,
                    at,
                }
            }
            SendStatus::Undeliverable => {
                stats.error(format!("Undeliverable/{}", a.reason.unwrap_or_default()));
                Sent::Refused
            }
            SendStatus::Blocked => {
                let reason = a.reason.unwrap_or_default();
                // The fraud screen refusing traffic that does not convert (the mixed phase
                // hammers spent numbers with wrong codes and over-limit resends) is the
                // screen doing its job, not a failure of the service.
                if FRAUD_RULES.contains(&reason.as_str()) {
                    stats.expected(format!("Blocked/{reason}"));
                } else {
                    stats.error(format!("Blocked/{reason}"));
                }
                Sent::Refused
            }
            SendStatus::Other(s) => {
                stats.error(format!("SendStatus/{s}"));
                Sent::Refused
            }
        },
        Err(e) => {
            stats.error(e.0.clone());
            Sent::Unknown(e)
        }
    }
}

async fn check(
    client: &mut Client,
    number: &str,
    code: &str,
    stats: &mut Stats,
) -> Option<(CheckAnswer, Instant)> {
    let t0 = Instant::now();
    let answer = client.check(number, code).await;
    stats.calls += 1;
    stats.record(Op::Check, t0.elapsed());
    match answer {
        Ok(a) => Some((a, t0)),
        Err(e) => {
            stats.error(e.0);
            None
        }
    }
}

/// A code of the same length that is none of `codes`.
fn wrong_code(codes: &[String], rng: &mut SmallRng) -> String {
    let len = codes.first().map_or(6, String::len);
    loop {
        let c: String = (0..len)
            .map(|_| char::from(b'0' + rng.random_range(0..10u8)))
            .collect();
        if !codes.contains(&c) {
            return c;
        }
    }
}

/// Judges the check of a right code that should approve; true when it approved.
fn expect_approved(
    ctx: &Ctx,
    answer: &CheckAnswer,
    asked_at: Instant,
    first_send_at: Instant,
    stats: &mut Stats,
) -> bool {
    // `asked_at` is after the server's send clock read, so this is a sure expiry.
    let surely_expired = asked_at > first_send_at + ctx.limits.validity;
    match answer.status {
        CheckStatus::Approved => {
            if surely_expired {
                stats.violation(Violation::ApprovedAfterExpiry);
            }
            stats.count("approved");
            true
        }
        _ if surely_expired => false,
        _ => {
            stats.violation(Violation::RightCodeNotApproved);
            false
        }
    }
}

/// A send to a number whose budget is spent: it must be refused with RESEND_LIMIT_EXCEEDED.
/// Returns whether the number's budget count is still exact (it can be probed again).
async fn over_limit_send(ctx: &Ctx, client: &mut Client, n: &str, stats: &mut Stats) -> bool {
    match send(ctx, client, n, stats).await {
        Sent::Delivered { .. } => {
            // Accepted beyond the budget: the limit did not hold.
            stats.violation(Violation::ResendLimitExceeded);
            false
        }
        Sent::Unknown(e) if e.reason() == "RESEND_LIMIT_EXCEEDED" => {
            // Counted as an error by `send`; it is the expected refusal.
            if let Some(c) = stats.errors.get_mut(&e.0) {
                *c -= 1;
                if *c == 0 {
                    stats.errors.remove(&e.0);
                }
            }
            stats.expected(e.0);
            true
        }
        Sent::Unknown(_) => false,
        Sent::Refused => true,
    }
}

/// One session; false when the pool has no number left for it.
async fn session(
    ctx: &Ctx,
    client: &mut Client,
    kind: Kind,
    rng: &mut SmallRng,
    stats: &mut Stats,
) -> bool {
    match kind {
        Kind::Lookup => {
            let n = ctx
                .lookup_numbers
                .choose(rng)
                .expect("lookup numbers are not empty");
            let t0 = Instant::now();
            let r = client.lookup(n).await;
            stats.calls += 1;
            stats.record(Op::Lookup, t0.elapsed());
            if let Err(e) = r {
                stats.error(e.0);
            }
            true
        }
        Kind::OverLimit => {
            if let Some(i) = ctx.pool.take_spent() {
                let n = ctx.pool.number(i).to_owned();
                if over_limit_send(ctx, client, &n, stats).await {
                    ctx.pool.give_back_spent(i);
                }
                return true;
            }
            // No spent number yet: spend a fresh one's whole budget (a send and every resend),
            // then send once more, then conclude its verification with the first code.
            let Some(i) = ctx.pool.take_untouched() else {
                return Box::pin(session(ctx, client, Kind::Pair, rng, stats)).await;
            };
            let used = 0;
            let n = ctx.pool.number(i).to_owned();
            let started = Instant::now();
            let mut first: Option<(String, Instant)> = None;
            for _ in used..ctx.pool.allowance {
                match send(ctx, client, &n, stats).await {
                    Sent::Delivered { codes, at, .. } => {
                        if first.is_none() {
                            first = codes.first().cloned().map(|c| (c, at));
                        }
                    }
                    // Budget count no longer exact: the number leaves the pool.
                    Sent::Refused | Sent::Unknown(_) => return true,
                }
            }
            if !over_limit_send(ctx, client, &n, stats).await {
                return true;
            }
            if let Some((code, at)) = first
                && let Some((a, asked)) = check(client, &n, &code, stats).await
                && expect_approved(ctx, &a, asked, at, stats)
            {
                stats.pairs += 1;
                stats.record(Op::Pair, started.elapsed());
            }
            ctx.pool.give_back_spent(i);
            true
        }
        _ => {
            let sends = if kind == Kind::Resend { 2 } else { 1 };
            let Some((i, mut used)) = ctx.pool.take(sends) else {
                return sends > 1 && Box::pin(session(ctx, client, Kind::Pair, rng, stats)).await;
            };
            let n = ctx.pool.number(i).to_owned();
            let started = Instant::now();
            let (codes, first_at) = match send(ctx, client, &n, stats).await {
                Sent::Delivered { codes, at, .. } => {
                    used += 1;
                    (codes, at)
                }
                Sent::Refused => {
                    ctx.pool.give_back(i, used);
                    return true;
                }
                // Reserved or not: unknown. The number leaves the pool so its budget count stays exact.
                Sent::Unknown(_) => return true,
            };
            let keep = verify(
                ctx, client, kind, rng, stats, &n, codes, first_at, started, &mut used,
            )
            .await;
            if keep {
                ctx.pool.give_back(i, used);
            }
            true
        }
    }
}

/// The checks of a session after its first send. Returns whether the number can be used again
/// (not declined, budget count and verification state still known: a check that failed
/// may or may not have been counted, so its number leaves the pool).
#[allow(clippy::too_many_arguments)]
async fn verify(
    ctx: &Ctx,
    client: &mut Client,
    kind: Kind,
    rng: &mut SmallRng,
    stats: &mut Stats,
    n: &str,
    mut codes: Vec<String>,
    first_at: Instant,
    started: Instant,
    used: &mut u32,
) -> bool {
    let right = codes.last().cloned().expect("delivered codes");
    match kind {
        Kind::Pair | Kind::Double => {
            let Some((a, at)) = check(client, n, &right, stats).await else {
                return false;
            };
            if expect_approved(ctx, &a, at, first_at, stats) {
                stats.pairs += 1;
                stats.record(Op::Pair, started.elapsed());
                if kind == Kind::Double
                    && let Some((again, _)) = check(client, n, &right, stats).await
                {
                    match again.status {
                        CheckStatus::Approved => stats.violation(Violation::DoubleApproval),
                        CheckStatus::NotFound => stats.count("second_check_refused"),
                        _ => stats.violation(Violation::UnexpectedStatus),
                    }
                }
            }
            true
        }
        Kind::Concurrent => {
            let calls = (0..8).map(|_| {
                let mut c = client.clone();
                let code = right.clone();
                let n = n.to_owned();
                async move {
                    let t0 = Instant::now();
                    let r = c.check(&n, &code).await;
                    (r, t0.elapsed())
                }
            });
            let results = futures::future::join_all(calls).await;
            let mut approved = 0;
            let mut errors = 0;
            for (r, d) in results {
                stats.calls += 1;
                stats.record(Op::Check, d);
                match r {
                    Ok(a) if a.status == CheckStatus::Approved => approved += 1,
                    Ok(_) => {}
                    Err(e) => {
                        errors += 1;
                        stats.error(e.0);
                    }
                }
            }
            match approved {
                1 => {
                    stats.count("approved");
                    stats.pairs += 1;
                    stats.record(Op::Pair, started.elapsed());
                }
                0 if errors == 0 => stats.violation(Violation::RightCodeNotApproved),
                // Whether a failed call approved is unknown: the number leaves the pool.
                0 => return false,
                more => {
                    for _ in 1..more {
                        stats.violation(Violation::DoubleApproval);
                    }
                }
            }
            true
        }
        Kind::Wrong => {
            let wrong = wrong_code(&codes, rng);
            let Some((a, _)) = check(client, n, &wrong, stats).await else {
                return false;
            };
            match a.status {
                CheckStatus::Approved => {
                    stats.violation(Violation::WrongCodeApproved);
                    return true;
                }
                CheckStatus::Failed
                    if a.attempts_left == Some(ctx.limits.max_attempts.saturating_sub(1)) => {}
                _ => stats.violation(Violation::UnexpectedStatus),
            }
            if ctx.limits.max_attempts < 2 {
                return false;
            }
            let Some((a, at)) = check(client, n, &right, stats).await else {
                return false;
            };
            if expect_approved(ctx, &a, at, first_at, stats) {
                stats.pairs += 1;
                stats.record(Op::Pair, started.elapsed());
            }
            true
        }
        Kind::Exhaust => {
            for attempt in 1..=ctx.limits.max_attempts {
                let wrong = wrong_code(&codes, rng);
                let Some((a, _)) = check(client, n, &wrong, stats).await else {
                    return false;
                };
                let last = attempt == ctx.limits.max_attempts;
                match a.status {
                    CheckStatus::Approved => stats.violation(Violation::WrongCodeApproved),
                    CheckStatus::Failed if !last => {}
                    CheckStatus::Declined
                        if last
                            && a.reason.as_deref()
                                == Some("VERIFICATION_CODE_ATTEMPTS_EXCEEDED") =>
                    {
                        stats.count("declined_attempts_exceeded");
                    }
                    _ => stats.violation(Violation::UnexpectedStatus),
                }
            }
            if let Some((a, _)) = check(client, n, &right, stats).await {
                match a.status {
                    CheckStatus::Approved => stats.violation(Violation::AttemptLimitExceeded),
                    _ => stats.count("refused_after_exhaustion"),
                }
            }
            // Declined until it expires: the number leaves the pool.
            false
        }
        Kind::Resend => {
            let second = match send(ctx, client, n, stats).await {
                Sent::Delivered { codes, status, .. } => {
                    *used += 1;
                    if status != SendStatus::Retry {
                        stats.violation(Violation::UnexpectedStatus);
                    }
                    codes
                }
                Sent::Refused => Vec::new(),
                Sent::Unknown(_) => return false,
            };
            let first = codes.first().cloned().expect("delivered codes");
            codes.extend(second);
            // Earlier codes stay valid: the first one approves; any other is then spent.
            let Some((a, at)) = check(client, n, &first, stats).await else {
                return false;
            };
            if expect_approved(ctx, &a, at, first_at, stats) {
                stats.pairs += 1;
                stats.record(Op::Pair, started.elapsed());
                if let Some(last) = codes.last().filter(|c| **c != first)
                    && let Some((again, _)) = check(client, n, last, stats).await
                {
                    match again.status {
                        CheckStatus::Approved => stats.violation(Violation::DoubleApproval),
                        _ => stats.count("second_code_refused"),
                    }
                }
            }
            true
        }
        Kind::Lookup | Kind::OverLimit => unreachable!("handled in session"),
    }
}

/// Expiry probes: send with the short-validity application, wait past the validity, then
/// check the right code: it must not approve. Runs until `deadline`, `tasks` probes at a time.
pub async fn expiry_probes(
    client: Client,
    emulator: Arc<Emulator>,
    pool: Arc<Pool>,
    validity: Duration,
    deadline: Instant,
    tasks: usize,
) -> Stats {
    let handles: Vec<_> = (0..tasks)
        .map(|_| {
            let mut client = client.clone();
            let emulator = emulator.clone();
            let pool = pool.clone();
            tokio::spawn(async move {
                let mut stats = Stats::default();
                while Instant::now() + validity < deadline {
                    let Some((i, used)) = pool.take(1) else { break };
                    let n = pool.number(i).to_owned();
                    let t0 = Instant::now();
                    let r = client.send(&n).await;
                    let sent_at = Instant::now();
                    stats.calls += 1;
                    stats.record(Op::Send, sent_at - t0);
                    let codes = emulator.take(&n).map(|r| r.codes).unwrap_or_default();
                    match r {
                        Ok(a) if matches!(a.status, SendStatus::Success | SendStatus::Retry) => {
                            let Some(code) = codes.last().cloned() else {
                                stats.violation(Violation::SuccessWithoutDelivery);
                                continue;
                            };
                            // Wait until the validity has surely passed (send started at t0).
                            tokio::time::sleep_until(
                                (t0 + validity + Duration::from_millis(500)).into(),
                            )
                            .await;
                            let asked = Instant::now();
                            let c = client.check(&n, &code).await;
                            stats.calls += 1;
                            stats.record(Op::Check, asked.elapsed());
                            match c {
                                Ok(a) if a.status == CheckStatus::Approved => {
                                    if asked > sent_at + validity {
                                        stats.violation(Violation::ApprovedAfterExpiry);
                                    }
                                }
                                Ok(_) => stats.count("expired_refused"),
                                Err(e) => stats.error(e.0),
                            }
                            pool.give_back(i, used + 1);
                        }
                        Ok(_) => pool.give_back(i, used),
                        Err(e) => stats.error(e.0),
                    }
                }
                stats
            })
        })
        .collect();
    let mut total = Stats::default();
    for h in handles {
        if let Ok(s) = h.await {
            total.merge(&s);
        }
    }
    total
}

/// Drives an empty gRPC service (health `Check`) with `concurrency` workers for `duration`.
pub async fn run_empty(
    channels: &[tonic::transport::Channel],
    concurrency: usize,
    duration: Duration,
) -> (Stats, Duration) {
    let started = Instant::now();
    let deadline = started + duration;
    let workers: Vec<_> = (0..concurrency)
        .map(|w| {
            let mut h = Health::new(channels[w % channels.len()].clone());
            tokio::spawn(async move {
                let mut stats = Stats::default();
                while Instant::now() < deadline {
                    let t0 = Instant::now();
                    let r = h.check().await;
                    stats.calls += 1;
                    stats.record(Op::Call, t0.elapsed());
                    if let Err(e) = r {
                        stats.error(e.0);
                    }
                }
                stats
            })
        })
        .collect();
    let mut total = Stats::default();
    for w in workers {
        if let Ok(s) = w.await {
            total.merge(&s);
        }
    }
    (total, started.elapsed())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mixes_parse_and_draw_by_weight() {
        let m = Mix::parse("pair=3,lookup=1").unwrap();
        let mut rng = SmallRng::seed_from_u64(1);
        let pairs = (0..4000).filter(|_| m.draw(&mut rng) == Kind::Pair).count();
        assert!((2800..3200).contains(&pairs), "{pairs}");
        assert!(Mix::parse("pair=0").is_err());
        assert!(Mix::parse("dance=1").is_err());
    }

    #[test]
    fn the_pool_tracks_each_numbers_budget() {
        let numbers = Arc::new(vec!["+1".to_owned(), "+2".to_owned()]);
        let pool = Pool::new(numbers, 0..2, 3, 0);
        let (a, used) = pool.take(2).unwrap();
        pool.give_back(a, used + 2);
        let (b, _) = pool.take(1).unwrap();
        assert_ne!(a, b);
        // `b` is spent; `a` has one send left: a session needing two finds nothing, but `a`
        // stays in the queue for a session needing one.
        pool.give_back(b, 3);
        assert!(pool.take(2).is_none());
        assert_eq!(pool.spent.lock().len(), 1);
        assert_eq!(pool.take(1), Some((a, 2)));
        assert_eq!(pool.take_spent(), Some(b));
        assert!(pool.take(1).is_none());
    }

    #[test]
    fn numbers_out_of_the_window_get_their_budget_back() {
        let numbers = Arc::new(vec!["+1".to_owned(), "+2".to_owned()]);
        let pool = Pool::new(numbers, 0..2, 3, 0).with_window(Duration::ZERO);
        let (a, _) = pool.take(1).unwrap();
        let (b, _) = pool.take(1).unwrap();
        pool.give_back(a, 2);
        pool.give_back(b, 3);
        // Not yet out of the window (the margin is 2 s): budgets as given back.
        assert_eq!(pool.take(1), Some((a, 2)));
        assert!(pool.take(1).is_none());
        // Three seconds on the pool's clock later, both sends left the window.
        let mut aged =
            Pool::new(Arc::new(vec!["+1".to_owned()]), 0..1, 3, 0).with_window(Duration::ZERO);
        aged.epoch -= Duration::from_secs(3);
        aged.spent.lock().push_back((0, 0));
        aged.fresh.lock().clear();
        assert_eq!(aged.take_spent(), None);
        assert_eq!(aged.take(3), Some((0, 0)));
    }

    #[test]
    fn wrong_codes_are_never_a_delivered_code() {
        let mut rng = SmallRng::seed_from_u64(3);
        let codes: Vec<String> = (0..9).map(|d| d.to_string()).collect();
        for _ in 0..50 {
            assert_eq!(wrong_code(&codes, &mut rng), "9");
        }
    }
}
