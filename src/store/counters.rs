//! Windowed outcome counters, the store's side: per counter key, a count per field and time
//! bucket over a sliding window, plus an escalating block. The memory implementation is here;
//! the Redis one is `lua/counter.lua` (one hash per counter key, its own hash tag, so counters
//! of different keys spread over a Redis Cluster).
//!
//! A counter is updated and read in one step ([`Store::count`](super::Store::count)): the
//! increments of one send or one approval and the window sums they produce. A send touches a
//! handful of keys (prefix, country, carrier, signals): on a single Redis node one script call
//! updates them all; on a cluster each key's call goes to its own slot, all sent together on the
//! multiplexed connection. Either way the batch costs one round trip.

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::Mutex;

use crate::clock::Millis;

/// The fields a counter keeps per bucket.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum Field {
    /// Send requests screened (whether or not a provider was then called).
    Sends = 0,
    /// Approved verifications (conversions).
    Approvals = 1,
    /// Money spent, in millionths of the route table's currency.
    Spend = 2,
    /// Attempts handed to a provider (routing ledger).
    Attempts = 3,
    /// Attempts a provider accepted.
    Accepted = 4,
    /// Delivery receipts saying delivered.
    Delivered = 5,
    /// Failed attempts and failure receipts.
    Failed = 6,
    /// Sum of milliseconds from send to approval (with `Approvals`, the mean).
    ApprovalMs = 7,
    /// Approvals of a code the user had already asked to replace (a later code went out
    /// first): the route verified them, but too late for the user (routing ledger).
    LateApprovals = 8,
}

impl Field {
    pub const COUNT: usize = 9;
    pub const ALL: [Field; Field::COUNT] = [
        Field::Sends,
        Field::Approvals,
        Field::Spend,
        Field::Attempts,
        Field::Accepted,
        Field::Delivered,
        Field::Failed,
        Field::ApprovalMs,
        Field::LateApprovals,
    ];

    pub const fn code(self) -> &'static str {
        match self {
            Field::Sends => "s",
            Field::Approvals => "a",
            Field::Spend => "m",
            Field::Attempts => "t",
            Field::Accepted => "k",
            Field::Delivered => "d",
            Field::Failed => "f",
            Field::ApprovalMs => "l",
            Field::LateApprovals => "z",
        }
    }
}

/// A sliding window of `buckets` equal buckets spanning `span_ms`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Window {
    pub span_ms: i64,
    pub buckets: u32,
}

impl Window {
    pub const fn bucket_ms(&self) -> i64 {
        let b = self.span_ms / self.buckets as i64;
        if b < 1 { 1 } else { b }
    }

    /// The bucket `now` falls in.
    pub const fn bucket(&self, now: Millis) -> i64 {
        now.div_euclid(self.bucket_ms())
    }

    /// The oldest bucket still inside the window at `now`.
    pub const fn oldest(&self, now: Millis) -> i64 {
        self.bucket(now) - self.buckets as i64 + 1
    }
}

/// One counter: what it counts (`key`, already namespaced by application) and its window.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct CounterKey(pub String);

/// Increments for one counter, and whether an approval among them lifts its block.
#[derive(Clone, Debug)]
pub struct Count {
    pub key: CounterKey,
    pub window: Window,
    pub add: Vec<(Field, i64)>,
}

/// What a counter holds after a [`Count`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Tally {
    /// Sums over the window, indexed by [`Field`].
    pub sums: [i64; Field::COUNT],
    /// When the key's current block ends (0 = not blocked).
    pub blocked_until: Millis,
    /// How many times the key was blocked (drives the doubling cool-off).
    pub blocks: u32,
}

impl Tally {
    pub fn get(&self, field: Field) -> i64 {
        self.sums[field as usize]
    }

    pub fn is_blocked(&self, now: Millis) -> bool {
        self.blocked_until > now
    }
}

#[derive(Default)]
struct Counter {
    /// (field, bucket) -> count.
    cells: HashMap<(Field, i64), i64>,
    blocked_until: Millis,
    blocks: u32,
    /// When nothing in it matters any more.
    idle_at: Millis,
}

/// Counters of the memory store: shards of counter keys.
#[derive(Clone)]
pub struct MemoryCounters {
    shards: Arc<[Mutex<Shard>]>,
}

#[derive(Default)]
struct Shard {
    counters: HashMap<CounterKey, Counter>,
    writes: u64,
}

/// Every this many writes a shard drops the counters that hold nothing live any more.
const SWEEP_EVERY: u64 = 4096;

impl Default for MemoryCounters {
    fn default() -> Self {
        MemoryCounters {
            shards: (0..16).map(|_| Mutex::new(Shard::default())).collect(),
        }
    }
}

/// A block outlives its counter's window by at most this long (the longest cool-off).
const BLOCK_KEEP_MS: i64 = 7 * 86_400_000;

impl MemoryCounters {
    fn shard(&self, key: &CounterKey) -> &Mutex<Shard> {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        key.hash(&mut h);
        &self.shards[(h.finish() as usize) % self.shards.len()]
    }

    pub fn count(&self, now: Millis, count: &Count) -> Tally {
        let mut shard = self.shard(&count.key).lock();
        shard.writes += 1;
        if shard.writes.is_multiple_of(SWEEP_EVERY) {
            shard.counters.retain(|_, c| c.idle_at > now);
        }
        let c = shard.counters.entry(count.key.clone()).or_default();
        let (cur, oldest) = (count.window.bucket(now), count.window.oldest(now));
        c.cells.retain(|(_, b), _| *b >= oldest);
        for (field, by) in &count.add {
            *c.cells.entry((*field, cur)).or_default() += by;
            if *field == Field::Approvals && *by > 0 {
                c.blocked_until = 0;
            }
        }
        c.idle_at = c
            .idle_at
            .max(now + count.window.span_ms)
            .max(c.blocked_until + BLOCK_KEEP_MS.min(count.window.span_ms));
        let mut tally = Tally {
            blocked_until: c.blocked_until,
            blocks: c.blocks,
            ..Tally::default()
        };
        for ((field, _), n) in &c.cells {
            tally.sums[*field as usize] += n;
        }
        tally
    }

    pub fn block(&self, key: &CounterKey, until: Millis, now: Millis) -> u32 {
        let mut shard = self.shard(key).lock();
        let c = shard.counters.entry(key.clone()).or_default();
        c.blocked_until = until;
        c.blocks += 1;
        c.idle_at = c.idle_at.max(until).max(now);
        c.blocks
    }

    /// Lifts the block, and forgets the sends counted in the window so the key starts afresh
    /// (approvals and the count of blocks stay). Same as `lua/counter_release.lua`.
    pub fn release(&self, key: &CounterKey) -> bool {
        let mut shard = self.shard(key).lock();
        shard.counters.get_mut(key).is_some_and(|c| {
            let was = c.blocked_until != 0;
            c.blocked_until = 0;
            c.cells.retain(|(field, _), _| *field != Field::Sends);
            was
        })
    }

    /// Keys starting with `prefix` that are blocked at `now`, with their block end and count.
    pub fn blocked(&self, prefix: &str, now: Millis) -> Vec<(CounterKey, Millis, u32)> {
        let mut out: Vec<_> = self
            .shards
            .iter()
            .flat_map(|s| {
                s.lock()
                    .counters
                    .iter()
                    .filter(|(k, c)| k.0.starts_with(prefix) && c.blocked_until > now)
                    .map(|(k, c)| (k.clone(), c.blocked_until, c.blocks))
                    .collect::<Vec<_>>()
            })
            .collect();
        out.sort_by(|a, b| a.0.0.cmp(&b.0.0));
        out
    }
}
