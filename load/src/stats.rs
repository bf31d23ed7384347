//! What one worker records: an HDR histogram per operation (microseconds), error counts by
//! code, correctness violations, and a few counters. Each worker owns its own [`Stats`]; they
//! are merged when a level ends, so recording never contends.

use std::collections::BTreeMap;
use std::time::Duration;

use hdrhistogram::Histogram;

/// Highest latency a histogram holds: one minute, in microseconds.
const MAX_US: u64 = 60_000_000;

/// A latency histogram in microseconds, 3 significant digits.
#[derive(Clone, Debug)]
pub struct Latency(Histogram<u64>);

impl Default for Latency {
    fn default() -> Self {
        Latency(Histogram::new_with_bounds(1, MAX_US, 3).expect("valid HDR bounds"))
    }
}

impl Latency {
    pub fn record(&mut self, d: Duration) {
        self.record_us(d.as_micros().min(u128::from(MAX_US)) as u64);
    }

    pub fn record_us(&mut self, us: u64) {
        self.0.saturating_record(us.clamp(1, MAX_US));
    }

    pub fn add(&mut self, other: &Latency) {
        self.0.add(&other.0).expect("same bounds");
    }

    pub fn count(&self) -> u64 {
        self.0.len()
    }

    /// The value at `q` (0..=1) in milliseconds; 0 when empty.
    pub fn ms_at(&self, q: f64) -> f64 {
        if self.0.is_empty() {
            return 0.0;
        }
        self.0.value_at_quantile(q) as f64 / 1000.0
    }

    pub fn max_ms(&self) -> f64 {
        if self.0.is_empty() {
            return 0.0;
        }
        self.0.max() as f64 / 1000.0
    }

    pub fn summary(&self) -> Summary {
        Summary {
            mean: if self.0.is_empty() {
                0.0
            } else {
                self.0.mean() / 1000.0
            },
            count: self.count(),
            p50: self.ms_at(0.50),
            p95: self.ms_at(0.95),
            p99: self.ms_at(0.99),
            max: self.max_ms(),
        }
    }
}

/// Percentiles of one histogram, in milliseconds.
#[derive(Clone, Copy, Debug, Default)]
pub struct Summary {
    pub count: u64,
    pub mean: f64,
    pub p50: f64,
    pub p95: f64,
    pub p99: f64,
    pub max: f64,
}

/// Operations timed separately.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Op {
    Send,
    Check,
    Lookup,
    /// A whole send→check pair: send start to the end of the approving check.
    Pair,
    /// Time the provider emulator spent on one send (every attempt, fallbacks included).
    Provider,
    /// Send latency minus the provider time of that same send.
    EngineAdded,
    /// Calls of a reference service (empty gRPC service).
    Call,
}

impl Op {
    pub fn name(self) -> &'static str {
        match self {
            Op::Send => "send",
            Op::Check => "check",
            Op::Lookup => "lookup",
            Op::Pair => "pair",
            Op::Provider => "provider",
            Op::EngineAdded => "engine_added",
            Op::Call => "call",
        }
    }
}

/// Kinds of correctness violation. Every one must stay at 0.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Violation {
    /// A right code, checked inside its validity with attempts left, was not approved.
    RightCodeNotApproved,
    /// One verification approved twice (a second check, or concurrent checks, of its codes).
    DoubleApproval,
    /// A wrong code was approved.
    WrongCodeApproved,
    /// A right code was approved after the attempt budget was spent.
    AttemptLimitExceeded,
    /// A send was accepted beyond the resend budget of the rolling window.
    ResendLimitExceeded,
    /// A code was approved after its verification expired.
    ApprovedAfterExpiry,
    /// A send reported success but no provider received the message.
    SuccessWithoutDelivery,
    /// A response that contradicts the request (wrong attempts_left, wrong status for the step).
    UnexpectedStatus,
}

impl Violation {
    pub fn name(self) -> &'static str {
        match self {
            Violation::RightCodeNotApproved => "right_code_not_approved",
            Violation::DoubleApproval => "double_approval",
            Violation::WrongCodeApproved => "wrong_code_approved",
            Violation::AttemptLimitExceeded => "attempt_limit_exceeded",
            Violation::ResendLimitExceeded => "resend_limit_exceeded",
            Violation::ApprovedAfterExpiry => "approved_after_expiry",
            Violation::SuccessWithoutDelivery => "success_without_delivery",
            Violation::UnexpectedStatus => "unexpected_status",
        }
    }
}

/// One worker's (or one merged level's) record.
#[derive(Clone, Debug, Default)]
pub struct Stats {
    pub latency: BTreeMap<Op, Latency>,
    /// Calls that failed, by `grpc code/reason` (or `http status/code`).
    pub errors: BTreeMap<String, u64>,
    /// Refusals the workload provoked on purpose (over-limit resends, declined numbers), by code.
    pub expected: BTreeMap<String, u64>,
    pub violations: BTreeMap<Violation, u64>,
    /// Free-form counters: `approved`, `fallback`, `channel_sms`, ...
    pub counters: BTreeMap<&'static str, u64>,
    /// send→check pairs completed with an approval.
    pub pairs: u64,
    /// Every call made (all operations).
    pub calls: u64,
    /// Sessions started (a session is one item of the mix).
    pub sessions: u64,
}

impl Stats {
    pub fn record(&mut self, op: Op, d: Duration) {
        self.latency.entry(op).or_default().record(d);
    }

    pub fn record_us(&mut self, op: Op, us: u64) {
        self.latency.entry(op).or_default().record_us(us);
    }

    pub fn error(&mut self, code: impl Into<String>) {
        *self.errors.entry(code.into()).or_default() += 1;
    }

    pub fn expected(&mut self, code: impl Into<String>) {
        *self.expected.entry(code.into()).or_default() += 1;
    }

    pub fn violation(&mut self, v: Violation) {
        *self.violations.entry(v).or_default() += 1;
    }

    pub fn count(&mut self, name: &'static str) {
        *self.counters.entry(name).or_default() += 1;
    }

    pub fn merge(&mut self, other: &Stats) {
        for (op, h) in &other.latency {
            self.latency.entry(*op).or_default().add(h);
        }
        for (k, v) in &other.errors {
            *self.errors.entry(k.clone()).or_default() += v;
        }
        for (k, v) in &other.expected {
            *self.expected.entry(k.clone()).or_default() += v;
        }
        for (k, v) in &other.violations {
            *self.violations.entry(*k).or_default() += v;
        }
        for (k, v) in &other.counters {
            *self.counters.entry(k).or_default() += v;
        }
        self.pairs += other.pairs;
        self.calls += other.calls;
        self.sessions += other.sessions;
    }

    pub fn summary(&self, op: Op) -> Summary {
        self.latency
            .get(&op)
            .map(Latency::summary)
            .unwrap_or_default()
    }

    pub fn total_errors(&self) -> u64 {
        self.errors.values().sum()
    }

    pub fn total_expected(&self) -> u64 {
        self.expected.values().sum()
    }

    pub fn total_violations(&self) -> u64 {
        self.violations.values().sum()
    }

    pub fn counter(&self, name: &str) -> u64 {
        self.counters.get(name).copied().unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merged_histograms_keep_every_sample() {
        let mut a = Stats::default();
        let mut b = Stats::default();
        for ms in 1..=99 {
            a.record(Op::Send, Duration::from_millis(ms));
        }
        b.record(Op::Send, Duration::from_millis(100));
        b.violation(Violation::DoubleApproval);
        a.merge(&b);
        let s = a.summary(Op::Send);
        assert_eq!(s.count, 100);
        assert!((s.p50 - 50.0).abs() < 0.1, "{s:?}");
        assert!((s.max - 100.0).abs() < 0.1, "{s:?}");
        assert_eq!(a.total_violations(), 1);
    }
}
