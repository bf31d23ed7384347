//! Property tests of the verification limits: random sequences of sends, resends, failed sends,
//! checks and clock moves drive a real engine (HMAC hashing, manual clock, scripted providers)
//! and every outcome is compared with an independent reference model written from the product
//! rules. Next to the model, a ledger built only from what the engine answered checks the
//! safety rules on their own: an approval only for a live, unconsumed code within the attempt
//! budget; one approval per verification and per code; never more than `1 + max_resends`
//! successful sends per number in any rolling window.
//!
//! A concurrency section hammers one verification from many tasks at once.

use std::cell::Cell;
use std::collections::HashSet;
use std::sync::Arc;

use proptest::prelude::*;
use proptest::sample::Index;
use proptest::test_runner::{Config as ProptestConfig, TestCaseError, TestRunner};
use switchboard::clock::Clock;
use switchboard::providers::FailureClass;
use switchboard::{
    CheckOutcome, CheckRequest, CheckStatus, Error, SendOutcome, SendRequest, SendStatus,
    VerificationStatus,
};

use crate::support::{
    ES_MOBILE, ES_MOBILE_2, FRAUD_OFF, Providers, Scripted, Step, TestEngine, engine_with,
};

/// A Brazilian mobile number (TIM range), the third number of the pool.
const BR_MOBILE: &str = "+5511987654321";
/// The numbers the random sequences use.
const POOL: [&str; 3] = [ES_MOBILE, ES_MOBILE_2, BR_MOBILE];
const ATTEMPTS_EXCEEDED: &str = "VERIFICATION_CODE_ATTEMPTS_EXCEEDED";
const MAX_OPS: usize = 40;

// ---------------------------------------------------------------------------------------------
// Limits and the reference model
// ---------------------------------------------------------------------------------------------

/// The limits the model enforces, in milliseconds.
#[derive(Clone, Copy, Debug)]
struct Limits {
    validity_ms: i64,
    max_attempts: u32,
    max_resends: u32,
    window_ms: i64,
}

impl Limits {
    /// The embedded defaults (config/default.toml).
    const DEFAULT: Limits = Limits {
        validity_ms: 300_000,
        max_attempts: 2,
        max_resends: 2,
        window_ms: 86_400_000,
    };

    /// Successful sends allowed per number in one rolling window.
    fn allowance(&self) -> usize {
        self.max_resends as usize + 1
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ModelState {
    Pending,
    Approved,
    Declined,
}

/// One verification of the model: opened by a successful send, joined by the next ones.
#[derive(Clone, Debug)]
struct ModelVerification {
    expires_at: i64,
    /// Codes of the sends that were delivered, all acceptable until expiry.
    codes: Vec<String>,
    failures: u32,
    /// Attempts counted while pending (wrong and right).
    attempts: u32,
    state: ModelState,
}

#[derive(Clone, Debug, Default)]
struct ModelNumber {
    /// Times of the successful sends (inside the window once `tick` ran).
    sends: Vec<i64>,
    verification: Option<ModelVerification>,
}

impl ModelNumber {
    /// Forgets what time made irrelevant: an expired verification, sends out of the window.
    fn tick(&mut self, now: i64, limits: &Limits) {
        if self
            .verification
            .as_ref()
            .is_some_and(|v| v.expires_at <= now)
        {
            self.verification = None;
        }
        self.sends.retain(|t| *t > now - limits.window_ms);
    }
}

/// What the model predicts for a send that providers would deliver.
#[derive(Clone, Debug, PartialEq, Eq)]
enum SendExpect {
    /// Reserved and dispatched: a new verification (`joined == false`) or a resend.
    Sent {
        joined: bool,
        resends_left: u32,
        expires_at: i64,
    },
    /// The current verification is declined: `Blocked` with VERIFICATION_CODE_ATTEMPTS_EXCEEDED.
    Declined { retry_after: u64 },
    /// The rolling window is full: `RESEND_LIMIT_EXCEEDED`.
    Throttled { retry_after: u64 },
}

/// Why a check found nothing (for coverage statistics only).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum NotFoundWhy {
    NeverSent,
    Expired,
    AlreadyApproved,
}

/// What the model predicts for a check.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum CheckExpect {
    Approved {
        attempts: u32,
    },
    Failed {
        attempts_left: u32,
        attempts: u32,
    },
    /// Declined by this attempt (`fresh`) or before it.
    Declined {
        attempts: u32,
        fresh: bool,
    },
    NotFound(NotFoundWhy),
}

/// The reference model: a plain state machine written from the product rules.
#[derive(Clone, Debug)]
struct Model {
    limits: Limits,
    numbers: Vec<ModelNumber>,
}

fn secs_ceil(ms: i64) -> u64 {
    (ms.max(0) as u64).div_ceil(1000)
}

impl Model {
    fn new(limits: Limits) -> Self {
        Model {
            limits,
            numbers: vec![ModelNumber::default(); POOL.len()],
        }
    }

    fn predict_send(&mut self, n: usize, now: i64) -> SendExpect {
        let limits = self.limits;
        let num = &mut self.numbers[n];
        num.tick(now, &limits);
        if let Some(v) = &num.verification
            && v.state == ModelState::Declined
        {
            return SendExpect::Declined {
                retry_after: secs_ceil(v.expires_at - now),
            };
        }
        let allowance = limits.allowance();
        if num.sends.len() >= allowance {
            // The send that frees a slot is the oldest of the last `allowance` ones.
            let oldest = num.sends[num.sends.len() - allowance];
            return SendExpect::Throttled {
                retry_after: secs_ceil((oldest + limits.window_ms - now).max(1)),
            };
        }
        let resends_left = (allowance - num.sends.len() - 1) as u32;
        match &num.verification {
            Some(v) if v.state == ModelState::Pending => SendExpect::Sent {
                joined: true,
                resends_left,
                expires_at: v.expires_at,
            },
            _ => SendExpect::Sent {
                joined: false,
                resends_left,
                expires_at: now + limits.validity_ms,
            },
        }
    }

    /// Records a delivered send (after `predict_send` said `Sent`).
    fn commit_send(&mut self, n: usize, now: i64, code: String) {
        let validity = self.limits.validity_ms;
        let num = &mut self.numbers[n];
        num.sends.push(now);
        match num.verification.as_mut() {
            Some(v) if v.state == ModelState::Pending => v.codes.push(code),
            _ => {
                num.verification = Some(ModelVerification {
                    expires_at: now + validity,
                    codes: vec![code],
                    failures: 0,
                    attempts: 0,
                    state: ModelState::Pending,
                });
            }
        }
    }

    fn check(&mut self, n: usize, now: i64, code: &str) -> CheckExpect {
        let limits = self.limits;
        let num = &mut self.numbers[n];
        let expired = num
            .verification
            .as_ref()
            .is_some_and(|v| v.expires_at <= now);
        num.tick(now, &limits);
        let Some(v) = num.verification.as_mut() else {
            return CheckExpect::NotFound(if expired {
                NotFoundWhy::Expired
            } else {
                NotFoundWhy::NeverSent
            });
        };
        match v.state {
            ModelState::Approved => CheckExpect::NotFound(NotFoundWhy::AlreadyApproved),
            ModelState::Declined => CheckExpect::Declined {
                attempts: v.attempts,
                fresh: false,
            },
            ModelState::Pending => {
                v.attempts += 1;
                if v.codes.iter().any(|c| c == code) {
                    v.state = ModelState::Approved;
                    CheckExpect::Approved {
                        attempts: v.attempts,
                    }
                } else {
                    v.failures += 1;
                    if v.failures >= limits.max_attempts {
                        v.state = ModelState::Declined;
                        CheckExpect::Declined {
                            attempts: v.attempts,
                            fresh: true,
                        }
                    } else {
                        CheckExpect::Failed {
                            attempts_left: limits.max_attempts - v.failures,
                            attempts: v.attempts,
                        }
                    }
                }
            }
        }
    }

    /// A send that `predict_send` let through failed on every route: nothing changes.
    fn fail_send(&mut self, _n: usize) {}

    /// Status and attempt count a lookup reports.
    fn lookup(&mut self, n: usize, now: i64) -> Option<(VerificationStatus, u32)> {
        let limits = self.limits;
        let num = &mut self.numbers[n];
        num.tick(now, &limits);
        Some(match &num.verification {
            None => (VerificationStatus::NotFinished, 0),
            Some(v) => (
                match v.state {
                    ModelState::Pending => VerificationStatus::NotFinished,
                    ModelState::Approved => VerificationStatus::Approved,
                    ModelState::Declined => VerificationStatus::Declined,
                },
                v.attempts,
            ),
        })
    }
}

// ---------------------------------------------------------------------------------------------
// The ledger: safety rules checked from the engine's answers alone
// ---------------------------------------------------------------------------------------------

#[derive(Debug)]
struct LedgerVerification {
    first_send: i64,
    codes: Vec<String>,
    /// Checks the engine answered `Failed` or `Declined` while this verification was current.
    failures: u32,
    approved: bool,
}

#[derive(Debug, Default)]
struct LedgerNumber {
    verifications: Vec<LedgerVerification>,
    successful_sends: Vec<i64>,
    /// (verification index, code) pairs the engine approved.
    approved_codes: HashSet<(usize, String)>,
}

#[derive(Debug)]
struct Ledger {
    limits: Limits,
    numbers: Vec<LedgerNumber>,
}

impl Ledger {
    fn new(limits: Limits) -> Self {
        Ledger {
            limits,
            numbers: (0..POOL.len()).map(|_| LedgerNumber::default()).collect(),
        }
    }

    /// A send the engine reported as delivered (`Success` or `Retry`).
    fn sent(
        &mut self,
        n: usize,
        now: i64,
        out: &SendOutcome,
        code: &str,
    ) -> Result<(), TestCaseError> {
        let limits = self.limits;
        let num = &mut self.numbers[n];
        match out.status {
            SendStatus::Success => {
                prop_assert_eq!(out.expires_at, Some(now + limits.validity_ms));
                num.verifications.push(LedgerVerification {
                    first_send: now,
                    codes: vec![code.to_owned()],
                    failures: 0,
                    approved: false,
                });
            }
            SendStatus::Retry => {
                let v = num.verifications.last_mut();
                prop_assert!(
                    v.is_some(),
                    "a resend joined a verification that was never opened"
                );
                let v = v.unwrap();
                prop_assert!(!v.approved, "a resend joined an approved verification");
                prop_assert_eq!(
                    out.expires_at,
                    Some(v.first_send + limits.validity_ms),
                    "a resend moved the expiry of its verification"
                );
                v.codes.push(code.to_owned());
            }
            other => prop_assert!(false, "not a delivered send: {:?}", other),
        }
        // (c) In any rolling window, at most 1 + max_resends successful sends. The window with
        // the most sends ends at a send, so checking the window ending now after each send
        // covers every window.
        num.successful_sends.push(now);
        let in_window = num
            .successful_sends
            .iter()
            .filter(|t| **t > now - limits.window_ms)
            .count();
        prop_assert!(
            in_window <= limits.allowance(),
            "{} successful sends to {} within {} ms (allowed {})",
            in_window,
            POOL[n],
            limits.window_ms,
            limits.allowance()
        );
        Ok(())
    }

    /// A check the engine answered.
    fn checked(
        &mut self,
        n: usize,
        now: i64,
        code: &str,
        out: &CheckOutcome,
    ) -> Result<(), TestCaseError> {
        let limits = self.limits;
        let num = &mut self.numbers[n];
        let index = num.verifications.len().checked_sub(1);
        match out.status {
            CheckStatus::Approved => {
                // (a) Approved only for a delivered code of the current verification, before
                // its expiry, unconsumed, with failures below the budget before this attempt.
                prop_assert!(
                    index.is_some(),
                    "approved a number that was never sent a code"
                );
                let index = index.unwrap();
                let v = &mut num.verifications[index];
                prop_assert!(
                    v.codes.iter().any(|c| c == code),
                    "approved a code that is not one of the current verification's delivered codes"
                );
                prop_assert!(
                    now < v.first_send + limits.validity_ms,
                    "approved {} ms after the first send (validity {} ms)",
                    now - v.first_send,
                    limits.validity_ms
                );
                prop_assert!(
                    v.failures < limits.max_attempts,
                    "approved after {} failures (budget {})",
                    v.failures,
                    limits.max_attempts
                );
                // (b) At most one approval per verification and per code.
                prop_assert!(!v.approved, "a verification was approved twice");
                v.approved = true;
                prop_assert!(
                    num.approved_codes.insert((index, code.to_owned())),
                    "a code was approved twice"
                );
            }
            CheckStatus::Failed | CheckStatus::Declined => {
                if let Some(index) = index {
                    num.verifications[index].failures += 1;
                }
            }
            CheckStatus::InReview | CheckStatus::ExpiredOrNotFound => {}
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// Operations
// ---------------------------------------------------------------------------------------------

#[derive(Clone, Debug)]
enum Op {
    /// A send to a number of the pool.
    Send(usize),
    /// A send to the number last sent to (the first of the pool before any send).
    Resend,
    /// A send where every route fails with `Fallback`.
    FailingSend(usize),
    /// A check of one of the codes delivered to the number so far (any verification).
    CheckRightCode { number: usize, pick: Index },
    /// A check of a random well-formed code (the model decides whether it matches).
    CheckWrongCode(usize, String),
    /// A check of input that cannot be a code of this length.
    CheckGarbage(usize, &'static str),
    /// A check of a code that a failed send carried (never delivered).
    CheckUndeliveredCode { number: usize, pick: Index },
    /// A lookup: the report's status and attempt count.
    Lookup(usize),
    /// Moves the clock forward by this many milliseconds.
    Advance(i64),
    /// Moves the clock to `offset_ms` around a limit's edge for a number: the expiry of its
    /// latest verification, or the moment its oldest send in the window leaves the window
    /// (nothing when that moment has passed).
    AdvanceToEdge {
        number: usize,
        edge: Edge,
        offset_ms: i64,
    },
}

#[derive(Clone, Copy, Debug)]
enum Edge {
    Expiry,
    Window,
}

const GARBAGE: &[&str] = &[
    "",
    "abc",
    "12 345",
    "123",
    "1234",
    "12345678901",
    "１２３４５６",
    "12345a",
    "+123456",
    " 123456",
    "1234567",
];

fn number_strategy() -> impl Strategy<Value = usize> {
    // Biased towards the first number so that its verifications see many operations.
    prop_oneof![3 => Just(0usize), 1 => Just(1usize), 1 => Just(2usize)]
}

/// Clock moves that make expiry (around `validity`) and the rolling window both happen.
fn advance_strategy(limits: Limits) -> impl Strategy<Value = i64> {
    let v = limits.validity_ms;
    let w = limits.window_ms;
    prop_oneof![
        4 => 0..=30_000i64,
        3 => (v - 50_000).max(0)..=(v + 50_000),
        1 => prop_oneof![Just(v - 1), Just(v), Just(1)],
        2 => 3_600_000..=28_800_000i64,
        1 => (w - 400_000)..=(w + 400_000),
        1 => Just(w),
    ]
}

fn op_strategy(limits: Limits) -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => number_strategy().prop_map(Op::Send),
        2 => Just(Op::Resend),
        1 => number_strategy().prop_map(Op::FailingSend),
        5 => (number_strategy(), any::<Index>())
            .prop_map(|(number, pick)| Op::CheckRightCode { number, pick }),
        2 => (number_strategy(), "[0-9]{6}").prop_map(|(n, c)| Op::CheckWrongCode(n, c)),
        1 => (number_strategy(), prop::sample::select(GARBAGE))
            .prop_map(|(n, g)| Op::CheckGarbage(n, g)),
        1 => (number_strategy(), any::<Index>())
            .prop_map(|(number, pick)| Op::CheckUndeliveredCode { number, pick }),
        1 => number_strategy().prop_map(Op::Lookup),
        3 => advance_strategy(limits).prop_map(Op::Advance),
        1 => (
            number_strategy(),
            prop_oneof![Just(Edge::Expiry), Just(Edge::Window)],
            -1..=1i64,
        )
            .prop_map(|(number, edge, offset_ms)| Op::AdvanceToEdge {
                number,
                edge,
                offset_ms
            }),
    ]
}

fn ops_strategy(limits: Limits) -> impl Strategy<Value = Vec<Op>> {
    prop::collection::vec(op_strategy(limits), 1..=MAX_OPS)
}

// ---------------------------------------------------------------------------------------------
// Coverage statistics: prove the random sequences reach every behaviour
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Default)]
struct Stats {
    cases: Cell<usize>,
    ops: Cell<usize>,
    success: Cell<usize>,
    retry: Cell<usize>,
    undeliverable: Cell<usize>,
    throttled: Cell<usize>,
    blocked_declined: Cell<usize>,
    approved: Cell<usize>,
    approved_earlier_code: Cell<usize>,
    failed: Cell<usize>,
    declined_fresh: Cell<usize>,
    declined_after: Cell<usize>,
    not_found_expired: Cell<usize>,
    not_found_approved: Cell<usize>,
    undelivered_code_refused: Cell<usize>,
    lookup_unchecked: Cell<usize>,
}

fn bump(c: &Cell<usize>) {
    c.set(c.get() + 1);
}

impl Stats {
    fn report(&self, name: &str) -> String {
        format!("{name}: {self:?}")
    }

    /// Every behaviour named here was reached at least once.
    fn assert_covered(&self, name: &str, fields: &[(&str, &Cell<usize>)]) {
        for (what, c) in fields {
            assert!(
                c.get() > 0,
                "{name}: the sequences never reached {what}; {self:?}"
            );
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The harness: one engine, its model and its ledger
// ---------------------------------------------------------------------------------------------

struct Harness<'s> {
    te: TestEngine,
    model: Model,
    ledger: Ledger,
    /// Codes delivered to each number, oldest first.
    delivered: Vec<Vec<String>>,
    /// Codes carried by sends that failed on every route.
    undelivered: Vec<Vec<String>>,
    last_sent: usize,
    stats: &'s Stats,
}

impl<'s> Harness<'s> {
    fn new(limits: Limits, overrides: &str, stats: &'s Stats) -> Self {
        Harness {
            te: engine_with(
                &format!("{overrides}\n{FRAUD_OFF}"),
                Providers::delivering(),
            ),
            model: Model::new(limits),
            ledger: Ledger::new(limits),
            delivered: vec![Vec::new(); POOL.len()],
            undelivered: vec![Vec::new(); POOL.len()],
            last_sent: 0,
            stats,
        }
    }

    fn now(&self) -> i64 {
        self.te.clock.now_ms()
    }

    fn providers(&self) -> [&Arc<Scripted>; 4] {
        let p = &self.te.providers;
        [&p.wa, &p.sms_a, &p.sms_b, &p.voice]
    }

    fn call_counts(&self) -> [usize; 4] {
        self.providers().map(|p| p.call_count())
    }

    fn provider(&self, name: &str) -> Option<&Arc<Scripted>> {
        let p = &self.te.providers;
        match name {
            "wa" => Some(&p.wa),
            "sms_a" => Some(&p.sms_a),
            "sms_b" => Some(&p.sms_b),
            "voice" => Some(&p.voice),
            _ => None,
        }
    }

    async fn step(&mut self, op: &Op) -> Result<(), TestCaseError> {
        bump(&self.stats.ops);
        match op {
            Op::Send(n) => self.send(*n, false).await,
            Op::Resend => self.send(self.last_sent, false).await,
            Op::FailingSend(n) => self.send(*n, true).await,
            Op::CheckRightCode { number, pick } => {
                let code = match self.delivered[*number].as_slice() {
                    [] => "000000".to_owned(),
                    codes => pick.get(codes).clone(),
                };
                self.check(*number, code, false).await
            }
            Op::CheckWrongCode(n, code) => self.check(*n, code.clone(), false).await,
            Op::CheckGarbage(n, garbage) => self.check(*n, (*garbage).to_owned(), false).await,
            Op::CheckUndeliveredCode { number, pick } => {
                let code = match self.undelivered[*number].as_slice() {
                    [] => "999999".to_owned(),
                    codes => pick.get(codes).clone(),
                };
                self.check(*number, code, true).await
            }
            Op::Lookup(n) => self.lookup(*n).await,
            Op::AdvanceToEdge {
                number,
                edge,
                offset_ms,
            } => {
                // Edges taken from the ledger, i.e. from the engine's own answers.
                let ledger = &self.ledger.numbers[*number];
                let limits = self.ledger.limits;
                let edge_at = match edge {
                    Edge::Expiry => ledger
                        .verifications
                        .last()
                        .map(|v| v.first_send + limits.validity_ms),
                    Edge::Window => {
                        let now = self.now();
                        ledger
                            .successful_sends
                            .iter()
                            .find(|t| **t > now - limits.window_ms)
                            .map(|t| t + limits.window_ms)
                    }
                };
                if let Some(at) = edge_at {
                    let target = at + offset_ms;
                    let now = self.now();
                    if target > now {
                        self.te.clock.advance_ms(target - now);
                    }
                }
                Ok(())
            }
            Op::Advance(ms) => {
                self.te.clock.advance_ms(*ms);
                Ok(())
            }
        }
    }

    async fn send(&mut self, n: usize, failing: bool) -> Result<(), TestCaseError> {
        let number = POOL[n];
        let now = self.now();
        self.last_sent = n;
        let expect = self.model.predict_send(n, now);
        if failing && matches!(expect, SendExpect::Sent { .. }) {
            // Only when the model says the send reaches the providers: a refused send must
            // not leave script steps behind for a later one.
            for p in self.providers() {
                p.then([Step::Fail(FailureClass::Fallback, "x")]);
            }
        }
        let before = self.call_counts();
        let got = self.te.engine.send(SendRequest::new(number)).await;
        let after = self.call_counts();
        let new_calls: usize = after.iter().zip(before).map(|(a, b)| a - b).sum();

        match (&expect, &got) {
            (
                SendExpect::Sent {
                    joined,
                    resends_left,
                    expires_at,
                },
                Ok(out),
            ) if !failing => {
                let status = if *joined {
                    SendStatus::Retry
                } else {
                    SendStatus::Success
                };
                prop_assert_eq!(out.status, status, "send status; outcome {:?}", out);
                prop_assert_eq!(out.reason.as_deref(), None);
                prop_assert_eq!(out.resends_left, *resends_left, "resends_left");
                prop_assert_eq!(out.retry_after, None);
                prop_assert_eq!(out.expires_at, Some(*expires_at), "expires_at");
                prop_assert_eq!(new_calls, 1, "one provider call for a delivered send");
                let by = out.delivered_by.as_ref();
                prop_assert!(by.is_some(), "a delivered send names its route");
                let provider = self.provider(&by.unwrap().provider);
                prop_assert!(provider.is_some(), "delivered by an unknown provider");
                let call = provider.unwrap().calls().pop().unwrap();
                prop_assert_eq!(&call.to, number);
                let code = call.code.expose().to_owned();
                self.ledger.sent(n, now, out, &code)?;
                self.model.commit_send(n, now, code.clone());
                self.delivered[n].push(code);
                bump(if *joined {
                    &self.stats.retry
                } else {
                    &self.stats.success
                });
            }
            (SendExpect::Sent { resends_left, .. }, Ok(out)) => {
                prop_assert_eq!(out.status, SendStatus::Undeliverable, "outcome {:?}", out);
                prop_assert_eq!(out.reason.as_deref(), Some("all_routes_failed"));
                // A send that failed everywhere does not count: its place in the window is
                // given back (the report never shows more than `max_resends`).
                let given_back = (*resends_left + 1).min(self.model.limits.max_resends);
                prop_assert_eq!(out.resends_left, given_back, "resends_left");
                prop_assert_eq!(out.attempts.len(), 4, "every route was tried");
                prop_assert_eq!(after, before.map(|b| b + 1), "each provider tried once");
                let codes: Vec<String> = self
                    .providers()
                    .iter()
                    .map(|p| p.calls().pop().unwrap().code.expose().to_owned())
                    .collect();
                prop_assert!(codes.iter().all(|c| *c == codes[0]), "one code per send");
                self.undelivered[n].push(codes[0].clone());
                self.model.fail_send(n);
                bump(&self.stats.undeliverable);
            }
            (SendExpect::Declined { retry_after }, Ok(out)) => {
                prop_assert_eq!(out.status, SendStatus::Blocked, "outcome {:?}", out);
                prop_assert_eq!(out.reason.as_deref(), Some(ATTEMPTS_EXCEEDED));
                prop_assert_eq!(out.retry_after, Some(*retry_after), "retry_after");
                prop_assert_eq!(out.resends_left, 0);
                prop_assert_eq!(new_calls, 0, "a blocked send reaches no provider");
                bump(&self.stats.blocked_declined);
            }
            (SendExpect::Throttled { retry_after }, Err(e @ Error::RateLimited { .. })) => {
                prop_assert_eq!(e.code(), "RESEND_LIMIT_EXCEEDED");
                prop_assert_eq!(e.retry_after_secs(), Some(*retry_after), "retry_after");
                prop_assert_eq!(new_calls, 0, "a throttled send reaches no provider");
                bump(&self.stats.throttled);
            }
            (expect, got) => {
                prop_assert!(
                    false,
                    "send to {} (failing routes: {}): model expected {:?}, engine returned {:?}",
                    number,
                    failing,
                    expect,
                    got
                );
            }
        }
        Ok(())
    }

    async fn check(
        &mut self,
        n: usize,
        code: String,
        undelivered: bool,
    ) -> Result<(), TestCaseError> {
        let number = POOL[n];
        let now = self.now();
        // Whether the code is an earlier one of the current verification (for statistics).
        let earlier = self.model.numbers[n]
            .verification
            .as_ref()
            .is_some_and(|v| {
                v.codes
                    .iter()
                    .position(|c| *c == code)
                    .is_some_and(|i| i + 1 < v.codes.len())
            });
        let expect = self.model.check(n, now, &code);
        let out = self
            .te
            .engine
            .check(CheckRequest::new(number, code.clone()))
            .await;
        prop_assert!(out.is_ok(), "check of {} failed: {:?}", number, out);
        let out = out.unwrap();
        self.ledger.checked(n, now, &code, &out)?;

        let (status, reason, attempts_left, phone_status, attempts) = match expect {
            CheckExpect::Approved { attempts } => (
                CheckStatus::Approved,
                None,
                None,
                VerificationStatus::Approved,
                attempts,
            ),
            CheckExpect::Failed {
                attempts_left,
                attempts,
            } => (
                CheckStatus::Failed,
                None,
                Some(attempts_left),
                VerificationStatus::NotFinished,
                attempts,
            ),
            CheckExpect::Declined { attempts, .. } => (
                CheckStatus::Declined,
                Some(ATTEMPTS_EXCEEDED),
                Some(0),
                VerificationStatus::Declined,
                attempts,
            ),
            CheckExpect::NotFound(_) => (
                CheckStatus::ExpiredOrNotFound,
                None,
                None,
                VerificationStatus::NotFinished,
                0,
            ),
        };
        let ctx = format!(
            "check of {number} at clock {now} ms: model expected {expect:?}, engine returned {out:?}"
        );
        prop_assert_eq!(out.status, status, "{}", ctx);
        prop_assert_eq!(out.reason.as_deref(), reason, "{}", ctx);
        prop_assert_eq!(out.attempts_left, attempts_left, "{}", ctx);
        prop_assert_eq!(out.phone.status, phone_status, "{}", ctx);
        prop_assert_eq!(out.phone.verification_attempts, attempts, "{}", ctx);

        let s = self.stats;
        match expect {
            CheckExpect::Approved { .. } => {
                bump(&s.approved);
                if earlier {
                    bump(&s.approved_earlier_code);
                }
            }
            CheckExpect::Failed { .. } => bump(&s.failed),
            CheckExpect::Declined { fresh: true, .. } => bump(&s.declined_fresh),
            CheckExpect::Declined { fresh: false, .. } => bump(&s.declined_after),
            CheckExpect::NotFound(NotFoundWhy::Expired) => bump(&s.not_found_expired),
            CheckExpect::NotFound(NotFoundWhy::AlreadyApproved) => bump(&s.not_found_approved),
            CheckExpect::NotFound(NotFoundWhy::NeverSent) => {}
        }
        if undelivered
            && matches!(
                expect,
                CheckExpect::Failed { .. } | CheckExpect::Declined { fresh: true, .. }
            )
        {
            bump(&s.undelivered_code_refused);
        }
        Ok(())
    }

    async fn lookup(&mut self, n: usize) -> Result<(), TestCaseError> {
        let number = POOL[n];
        let now = self.now();
        let Some((status, attempts)) = self.model.lookup(n, now) else {
            bump(&self.stats.lookup_unchecked);
            return Ok(());
        };
        let report = self.te.engine.lookup(number, None, None, None).await;
        prop_assert!(report.is_ok(), "lookup of {} failed: {:?}", number, report);
        let report = report.unwrap();
        prop_assert_eq!(report.status, status, "lookup status of {}", number);
        prop_assert_eq!(
            report.verification_attempts,
            attempts,
            "lookup attempts of {}",
            number
        );
        Ok(())
    }
}

/// Runs one sequence on a fresh engine inside a current-thread runtime.
fn run_sequence(
    limits: Limits,
    overrides: &str,
    ops: &[Op],
    stats: &Stats,
) -> Result<(), TestCaseError> {
    bump(&stats.cases);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let mut h = Harness::new(limits, overrides, stats);
        for (i, op) in ops.iter().enumerate() {
            h.step(op)
                .await
                .map_err(|e| TestCaseError::fail(format!("op #{i} {op:?}: {e}")))?;
        }
        Ok(())
    })
}

fn runner(cases: u32) -> TestRunner {
    TestRunner::new(ProptestConfig {
        cases,
        // No regression files written next to the sources; a failure prints its minimal
        // sequence instead.
        failure_persistence: None,
        ..ProptestConfig::default()
    })
}

#[test]
fn random_sends_checks_and_clock_moves_keep_every_limit_and_match_the_reference_model() {
    let stats = Stats::default();
    let limits = Limits::DEFAULT;
    let result = runner(1024).run(&ops_strategy(limits), |ops| {
        run_sequence(limits, "", &ops, &stats)
    });
    if let Err(e) = result {
        panic!("{e}\n{}", stats.report("default limits"));
    }
    eprintln!("{}", stats.report("default limits"));
    stats.assert_covered(
        "default limits",
        &[
            ("a new verification (Success)", &stats.success),
            ("a resend (Retry)", &stats.retry),
            ("a send failing on every route", &stats.undeliverable),
            ("RESEND_LIMIT_EXCEEDED", &stats.throttled),
            (
                "a send refused by a declined verification",
                &stats.blocked_declined,
            ),
            ("an approval", &stats.approved),
            (
                "an approval with an earlier code of the verification",
                &stats.approved_earlier_code,
            ),
            ("a failed check", &stats.failed),
            ("a check spending the last attempt", &stats.declined_fresh),
            (
                "a check after the verification was declined",
                &stats.declined_after,
            ),
            ("a check after expiry", &stats.not_found_expired),
            ("a check after approval", &stats.not_found_approved),
            (
                "a refused code of an undelivered send",
                &stats.undelivered_code_refused,
            ),
        ],
    );
}

#[test]
fn workflow_limits_from_config_are_the_ones_enforced() {
    let stats = Stats::default();
    let limits = Limits {
        validity_ms: 60_000,
        max_attempts: 3,
        max_resends: 1,
        window_ms: 86_400_000,
    };
    let overrides = "[workflow.limits]\nmax_attempts = 3\nmax_resends = 1\nvalidity_secs = 60\n";
    let result = runner(512).run(&ops_strategy(limits), |ops| {
        run_sequence(limits, overrides, &ops, &stats)
    });
    if let Err(e) = result {
        panic!("{e}\n{}", stats.report("custom limits"));
    }
    eprintln!("{}", stats.report("custom limits"));
    stats.assert_covered(
        "custom limits",
        &[
            ("a resend (Retry)", &stats.retry),
            ("RESEND_LIMIT_EXCEEDED", &stats.throttled),
            ("an approval", &stats.approved),
            ("a failed check", &stats.failed),
            ("a check spending the last attempt", &stats.declined_fresh),
            ("a check after expiry", &stats.not_found_expired),
        ],
    );
}

// ---------------------------------------------------------------------------------------------
// Concurrency
// ---------------------------------------------------------------------------------------------

const CONCURRENT_CHECKS: usize = 64;

fn multi_thread_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
        .expect("runtime")
}

/// A fresh engine (default limits) with one pending verification to ES_MOBILE; its code.
async fn pending_verification() -> (TestEngine, String) {
    let t = engine_with("", Providers::delivering());
    let sent = t.engine.send(SendRequest::new(ES_MOBILE)).await.unwrap();
    assert_eq!(sent.status, SendStatus::Success);
    let code = t.providers.last_code_to(ES_MOBILE);
    (t, code)
}

/// Distinct well-formed codes, none equal to `right`.
fn wrong_codes(right: &str, count: usize) -> Vec<String> {
    (0..)
        .map(|i| format!("{i:06}"))
        .filter(|c| c != right)
        .take(count)
        .collect()
}

/// Runs all `codes` as checks of ES_MOBILE at once (lined up on a barrier); their outcomes.
async fn check_all_at_once(t: &TestEngine, codes: Vec<String>) -> Vec<CheckOutcome> {
    let barrier = Arc::new(tokio::sync::Barrier::new(codes.len()));
    let tasks: Vec<_> = codes
        .into_iter()
        .map(|code| {
            let engine = t.engine.clone();
            let barrier = barrier.clone();
            tokio::spawn(async move {
                barrier.wait().await;
                engine
                    .check(CheckRequest::new(ES_MOBILE, code))
                    .await
                    .unwrap()
            })
        })
        .collect();
    let mut out = Vec::with_capacity(tasks.len());
    for task in tasks {
        out.push(task.await.expect("check task"));
    }
    out
}

fn count(outcomes: &[CheckOutcome], status: CheckStatus) -> usize {
    outcomes.iter().filter(|o| o.status == status).count()
}

#[test]
fn concurrent_checks_of_the_right_code_approve_exactly_once() {
    let rt = multi_thread_runtime();
    for round in 0..50 {
        rt.block_on(async {
            let (t, code) = pending_verification().await;
            let outcomes = check_all_at_once(&t, vec![code; CONCURRENT_CHECKS]).await;
            assert_eq!(
                count(&outcomes, CheckStatus::Approved),
                1,
                "round {round}: {outcomes:?}"
            );
            assert_eq!(
                count(&outcomes, CheckStatus::ExpiredOrNotFound),
                CONCURRENT_CHECKS - 1,
                "round {round}: every other check finds nothing to approve"
            );
        });
    }
}

#[test]
fn concurrent_wrong_codes_never_exceed_the_attempt_budget_and_decline() {
    let rt = multi_thread_runtime();
    let max_attempts = Limits::DEFAULT.max_attempts as usize;
    for round in 0..20 {
        rt.block_on(async {
            let (t, code) = pending_verification().await;
            let outcomes = check_all_at_once(&t, wrong_codes(&code, CONCURRENT_CHECKS)).await;
            assert_eq!(count(&outcomes, CheckStatus::Approved), 0, "round {round}");
            assert_eq!(
                count(&outcomes, CheckStatus::Failed),
                max_attempts - 1,
                "round {round}: only attempts inside the budget answer Failed"
            );
            let declined: Vec<_> = outcomes
                .iter()
                .filter(|o| o.status == CheckStatus::Declined)
                .collect();
            assert_eq!(
                declined.len(),
                CONCURRENT_CHECKS - (max_attempts - 1),
                "round {round}"
            );
            assert!(
                declined
                    .iter()
                    .all(|o| o.reason.as_deref() == Some(ATTEMPTS_EXCEEDED)
                        && o.attempts_left == Some(0)),
                "round {round}: {declined:?}"
            );
            // Failures were counted up to the budget and no further.
            let report = t.engine.lookup(ES_MOBILE, None, None, None).await.unwrap();
            assert_eq!(report.status, VerificationStatus::Declined);
            assert_eq!(
                report.verification_attempts as usize, max_attempts,
                "round {round}"
            );

            let late = t
                .engine
                .check(CheckRequest::new(ES_MOBILE, code))
                .await
                .unwrap();
            assert_eq!(
                late.status,
                CheckStatus::Declined,
                "round {round}: the right code after the budget"
            );
            assert_eq!(late.reason.as_deref(), Some(ATTEMPTS_EXCEEDED));
            let resend = t.engine.send(SendRequest::new(ES_MOBILE)).await.unwrap();
            assert_eq!(
                resend.status,
                SendStatus::Blocked,
                "round {round}: no fresh attempts by resending"
            );
            assert_eq!(resend.reason.as_deref(), Some(ATTEMPTS_EXCEEDED));
        });
    }
}

#[test]
fn right_code_racing_wrong_codes_is_approved_only_within_the_attempt_budget() {
    let rt = multi_thread_runtime();
    let mut approvals = 0;
    for round in 0..50 {
        rt.block_on(async {
            let (t, code) = pending_verification().await;
            // Small groups so that the right code wins some races and loses others.
            let wrong = 2 + round % 4;
            let mut codes = wrong_codes(&code, wrong);
            codes.insert(round % (wrong + 1), code);
            let total = codes.len();
            let outcomes = check_all_at_once(&t, codes).await;
            let approved = count(&outcomes, CheckStatus::Approved);
            let failed = count(&outcomes, CheckStatus::Failed);
            let declined = count(&outcomes, CheckStatus::Declined);
            let not_found = count(&outcomes, CheckStatus::ExpiredOrNotFound);
            // With a budget of 2: the right code wins before the second wrong one (then every
            // later check finds nothing), or after it (then everything is declined).
            match approved {
                1 => {
                    assert!(
                        failed <= 1,
                        "round {round}: approved after {failed} failures"
                    );
                    assert_eq!(declined, 0, "round {round}: approved and declined");
                    assert_eq!(not_found, total - 1 - failed, "round {round}");
                    approvals += 1;
                }
                0 => {
                    assert_eq!(failed, 1, "round {round}");
                    assert_eq!(declined, total - 1, "round {round}");
                }
                n => panic!("round {round}: {n} approvals"),
            }
        });
    }
    eprintln!("right code won {approvals} of 50 races");
}

/// Regression: `reserve_send` replaces an approved (unexpired) verification with the new
/// pending one before dispatch; when every route then fails, `release_send` must restore the
/// approved one. A send that fails everywhere costs nothing and changes nothing.
#[tokio::test]
async fn a_send_failing_on_every_route_keeps_the_earlier_approval_on_record() {
    let t = engine_with("", Providers::delivering());
    t.engine.send(SendRequest::new(ES_MOBILE)).await.unwrap();
    let code = t.providers.last_code_to(ES_MOBILE);
    let approved = t
        .engine
        .check(CheckRequest::new(ES_MOBILE, code))
        .await
        .unwrap();
    assert_eq!(approved.status, CheckStatus::Approved);
    let before = t.engine.lookup(ES_MOBILE, None, None, None).await.unwrap();
    assert_eq!(before.status, VerificationStatus::Approved);

    for p in [
        &t.providers.wa,
        &t.providers.sms_a,
        &t.providers.sms_b,
        &t.providers.voice,
    ] {
        p.then([Step::Fail(FailureClass::Fallback, "x")]);
    }
    let failed = t.engine.send(SendRequest::new(ES_MOBILE)).await.unwrap();
    assert_eq!(failed.status, SendStatus::Undeliverable);

    let after = t.engine.lookup(ES_MOBILE, None, None, None).await.unwrap();
    assert_eq!(
        after.status,
        VerificationStatus::Approved,
        "the approval is forgotten"
    );
    assert_eq!(after.verification_attempts, before.verification_attempts);
    assert_eq!(after.verified_at, before.verified_at);
}
