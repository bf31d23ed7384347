//! What the clients were told, kept by the client itself for the chaos run's audit: every call's
//! outcome on a 100-ms clock (answered, or failed for want of the service: the recovery time),
//! every verification a send said was sent (`verification_id` of a `Success`/`Retry`), every
//! `Approved` answer per verification, and the accepted sends per number.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use dashmap::DashMap;
use parking_lot::Mutex;

use crate::client::CallError;

/// Width of one bucket of the call clock.
pub const TICK: Duration = Duration::from_millis(100);

/// One verification a client was told was sent.
#[derive(Debug)]
pub struct Told {
    pub number: String,
    /// The phase in which its first accepted send answered.
    pub phase: usize,
    /// `Approved` answers its checks got.
    pub approvals: AtomicU32,
}

pub struct Ledger {
    epoch: Instant,
    /// Per tick since the epoch: calls answered, calls that failed for want of the service.
    ticks: Mutex<Vec<(u64, u64)>>,
    pub verifications: DashMap<String, Told>,
    /// Accepted sends (`Success`/`Retry`) per number over the whole run.
    pub accepted: DashMap<String, u32>,
    phase: AtomicU64,
}

/// Whether a failed call failed for want of the service (the store failing closed, a sidecar
/// gone, a deadline), as opposed to an answer that refuses (`RESEND_LIMIT_EXCEEDED`, ...).
pub fn unavailable(e: &CallError) -> bool {
    let code = e.0.split('/').next().unwrap_or("");
    matches!(
        code,
        "Unavailable" | "DeadlineExceeded" | "Cancelled" | "Unknown" | "Internal" | "HTTP"
    ) || code.starts_with("HTTP5")
}

impl Ledger {
    pub fn new() -> Self {
        Ledger {
            epoch: Instant::now(),
            ticks: Mutex::new(Vec::new()),
            verifications: DashMap::new(),
            accepted: DashMap::new(),
            phase: AtomicU64::new(0),
        }
    }

    /// The tick `at` falls in.
    pub fn tick_of(&self, at: Instant) -> usize {
        (at.saturating_duration_since(self.epoch).as_millis() / TICK.as_millis()) as usize
    }

    pub fn set_phase(&self, phase: usize) {
        self.phase.store(phase as u64, Ordering::Relaxed);
    }

    /// A call ended now: answered, or failed with `error`.
    pub fn call(&self, error: Option<&CallError>) {
        let tick = self.tick_of(Instant::now());
        let mut ticks = self.ticks.lock();
        if ticks.len() <= tick {
            ticks.resize(tick + 1, (0, 0));
        }
        match error {
            Some(e) if unavailable(e) => ticks[tick].1 += 1,
            _ => ticks[tick].0 += 1,
        }
    }

    /// A send answered `Success`/`Retry` for `verification_id`.
    pub fn sent(&self, number: &str, verification_id: Option<&str>) {
        *self.accepted.entry(number.to_owned()).or_default() += 1;
        if let Some(id) = verification_id {
            self.verifications
                .entry(id.to_owned())
                .or_insert_with(|| Told {
                    number: number.to_owned(),
                    phase: self.phase.load(Ordering::Relaxed) as usize,
                    approvals: AtomicU32::new(0),
                });
        }
    }

    /// A check answered `Approved` for `verification_id` (approvals of verifications no send
    /// told of are kept too: they still count for double approvals).
    pub fn approved(&self, number: &str, verification_id: Option<&str>) {
        let id = verification_id.unwrap_or("(no id)");
        self.verifications
            .entry(id.to_owned())
            .or_insert_with(|| Told {
                number: number.to_owned(),
                phase: self.phase.load(Ordering::Relaxed) as usize,
                approvals: AtomicU32::new(0),
            })
            .approvals
            .fetch_add(1, Ordering::Relaxed);
    }

    /// Calls answered and failed per tick from `from` to `to` (exclusive).
    pub fn ticks(&self, from: usize, to: usize) -> Vec<(u64, u64)> {
        let ticks = self.ticks.lock();
        (from..to)
            .map(|t| ticks.get(t).copied().unwrap_or((0, 0)))
            .collect()
    }
}

/// Time to recover, in ticks from `ticks[0]`: the end of the last 1-s window (10 ticks,
/// sliding by one tick) whose share of answered calls is below `target` or that has no call at
/// all; 0 when there is none. `None` when the last window is still below the target.
pub fn recovery_ticks(ticks: &[(u64, u64)], target: f64) -> Option<usize> {
    let w = (Duration::from_secs(1).as_millis() / TICK.as_millis()) as usize;
    if ticks.len() < w {
        return None;
    }
    let mut last_bad = None;
    for end in w..=ticks.len() {
        let (ok, failed) = ticks[end - w..end]
            .iter()
            .fold((0, 0), |(a, b), &(x, y)| (a + x, b + y));
        let total = ok + failed;
        if total == 0 || (ok as f64) < target * total as f64 {
            last_bad = Some(end);
        }
    }
    match last_bad {
        Some(end) if end == ticks.len() => None,
        Some(end) => Some(end),
        None => Some(0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recovery_is_the_end_of_the_last_window_below_target() {
        let mut t = vec![(100, 0); 40];
        assert_eq!(recovery_ticks(&t, 0.99), Some(0));
        t[5] = (50, 50);
        t[12] = (0, 0);
        // Windows ending at 6..=15 hold tick 5; those ending at 13..=22 hold tick 12, but
        // one empty tick among nine full ones does not make a window empty.
        assert_eq!(recovery_ticks(&t, 0.99), Some(15));
        t[39] = (0, 10);
        assert_eq!(recovery_ticks(&t, 0.99), None);
        assert!(unavailable(&CallError(
            "Unavailable/STORE_UNAVAILABLE".into()
        )));
        assert!(unavailable(&CallError("HTTP/transport: reset".into())));
        assert!(unavailable(&CallError("HTTP503/STORE_UNAVAILABLE".into())));
        assert!(!unavailable(&CallError(
            "ResourceExhausted/RESEND_LIMIT_EXCEEDED".into()
        )));
    }
}
