//! Verification state. Every limit lives behind one atomic operation of the [`Store`]; nothing
//! does read-modify-write across two calls. Each operation is shaped so that it maps to one
//! Redis Lua script: its inputs are plain values (time comes from the engine's clock), and it
//! touches only the keys of one number, which share one hash tag.
//!
//! Operations (the send path uses one call, two on its rare paths; a check is one call):
//! - [`Store::reserve_send`] — blocklist, duplicate and rolling resend/cooldown limits, then
//!   open or join the pending verification and record the new code's digest;
//!   [`Store::reserve_counted`] does the same and adds the fraud screen's counts in the same
//!   call (one script on a single Redis node);
//! - [`Store::record_delivery`] — the delivering channel, when it differs from the planned one,
//!   and the message that carried the code, for providers that confirm approvals;
//! - [`Store::release_send`] — undo a reservation whose send failed on every route;
//! - [`Store::check`] — count the attempt, compare the candidate digest in constant time with
//!   every live code of the verification, and consume it: exactly one winner;
//! - [`Store::inspect`] — blocklist flag, verified-number index and live verification;
//! - blocklist writes and listing; the runtime fraud safe list and geo permissions (admin data
//!   of an application, read by the engine through a short in-process cache);
//! - late fallback, driven by delivery receipts: [`Store::remember_delivery`] keeps where a
//!   delivered message belongs under the provider's message id, [`Store::take_delivery`] finds
//!   it again when the provider reports, and [`Store::redeliver`] adds the code of the next
//!   route to the still-pending verification (the message's own code stays valid);
//! - line facts of live lookups: [`Store::cached_line`], [`Store::claim_lookup`] (one
//!   instance asks the provider, the others wait for its answer) and [`Store::save_line`];
//! - expiry: [`Store::sweep_ended`] takes the verifications whose validity ended while still
//!   pending, each exactly once however many instances sweep (`Engine::sweep_expired`).

pub mod counters;
mod documents;
mod lines;
mod memory;
pub mod records;
mod records_memory;
mod records_redis;
mod redis;

use switchboard_providers::Channel;

use crate::clock::Millis;
use crate::code::CodeDigest;

pub use counters::{Count, CounterKey, Field, Tally, Window};
pub use documents::MemoryDocuments;
pub use lines::{CachedLine, LineWrite};
pub use memory::MemoryStore;
pub use records::{
    Claim, Deletion, LifecycleEntry, LifecycleEvent, NewRecord, RecordHead, RecordUpdate, Review,
    VerificationRecord,
};
pub use redis::{RedisSettings, RedisStore};

/// The state of one phone number inside one application.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct NumberKey {
    pub app: String,
    pub e164: String,
}

impl NumberKey {
    pub fn new(app: impl Into<String>, e164: impl Into<String>) -> Self {
        NumberKey {
            app: app.into(),
            e164: e164.into(),
        }
    }
}

/// How long a verification is kept past its end so that an expiry sweep can still announce
/// how it ended: when no instance sweeps for longer than this, the ends in between go
/// unannounced (Redis store; the memory store keeps them until its next sweep).
pub const ENDED_KEPT_MS: Millis = 30 * 60 * 1000;

/// How long a Redis sweeper holds the deadline entries it took before another may take them
/// (a sweeper that dies mid-sweep delays those ends by this much, announcing none twice).
pub const SWEEP_LEASE_MS: Millis = 30_000;

/// A verification whose validity ended while it was still pending, taken by
/// [`Store::sweep_ended`]: it ended `Abandoned` when no code was ever checked against it,
/// `Expired` otherwise.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EndedVerification {
    pub key: NumberKey,
    pub verification_id: String,
    /// Code-entry attempts made against it.
    pub attempts: u32,
    /// The channel of its last delivered code (`None` if the stored value is unknown).
    pub channel: Option<Channel>,
    pub expires_at: Millis,
}

/// What one [`Store::sweep_ended`] call took.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Swept {
    pub ended: Vec<EndedVerification>,
    /// The call hit its limit: more may be due now.
    pub more: bool,
}

impl EndedVerification {
    /// No check was ever made: the user never came back.
    pub fn abandoned(&self) -> bool {
        self.attempts == 0
    }
}

/// Limits applied by [`Store::reserve_send`], in milliseconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SendLimits {
    /// Lifetime of a verification from its first send; resends do not extend it.
    pub validity_ms: i64,
    /// Sends allowed after the first one inside the rolling window.
    pub max_resends: u32,
    /// Length of the rolling resend window.
    pub window_ms: i64,
    /// Minimum pause between two sends to the same number.
    pub cooldown_ms: i64,
    /// Sandbox numbers skip the resend window and the cooldown. Whatever the exemption, a
    /// verification holds at most `1 + max_resends` live codes: the oldest are dropped first.
    pub exempt: bool,
}

/// Input of [`Store::reserve_send`].
#[derive(Clone, Debug)]
pub struct ReserveSend<'a> {
    pub now: Millis,
    /// Digest of the code about to be sent.
    pub digest: CodeDigest,
    /// The channel the first route will use (corrected by `record_delivery` if another delivers).
    pub channel: Channel,
    /// The route this code goes out on (see [`CodeRoute`]), kept with the code so that its
    /// approval can be credited to the route that carried it.
    pub route: &'a str,
    pub vendor_data: Option<&'a str>,
    /// Refuse when the number was verified for another `vendor_data` (workflow declines duplicates).
    pub refuse_duplicate: bool,
    pub limits: SendLimits,
    /// The verification records' lifetime: the number's index of its verifications keeps an id
    /// this long past the verification's validity. The Redis store writes the index with the
    /// reservation.
    pub ids_ttl_ms: i64,
}

/// What [`Store::reserve_send`] decided.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reservation {
    /// The send may go ahead; the code is recorded.
    Reserved(Reserved),
    /// The number is on the application's blocklist.
    Blocked,
    /// The number was already verified for another `vendor_data`.
    Duplicate,
    /// The current verification was declined (attempts spent, duplicate, blocklist); it stays
    /// declined until it expires, so a resend cannot buy fresh attempts.
    Declined { retry_after_ms: i64 },
    /// The rolling resend budget or the cooldown is spent.
    Throttled { retry_after_ms: i64, cooldown: bool },
}

/// A granted send.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reserved {
    pub verification_id: String,
    /// When the send was reserved (its entry in the rolling window).
    pub reserved_at: Millis,
    /// True when this send joined a pending verification (a resend).
    pub joined: bool,
    /// Position of this code inside the verification (0 for the first send).
    pub seq: u32,
    /// When the verification expires.
    pub expires_at: Millis,
    /// Sends still allowed in the rolling window after this one.
    pub resends_left: u32,
    /// The `vendor_data` the number was verified for, when any (for the duplicate warning).
    pub verified_for: Option<String>,
    /// On a resend: the route the previous code went out on ([`CodeRoute::encode`]).
    pub previous_route: Option<String>,
}

/// Input of [`Store::record_delivery`].
#[derive(Clone, Debug)]
pub struct RecordDelivery<'a> {
    pub verification_id: &'a str,
    pub seq: u32,
    /// The delivering channel, when it differs from the reserved one.
    pub channel: Option<Channel>,
    /// The provider and its message id, for a provider that confirms approvals.
    pub confirm: Option<(&'a str, &'a str)>,
    /// The route that delivered the code, when it is not the one reserved ([`CodeRoute`]).
    pub route: Option<&'a str>,
}

/// Input of [`Store::check`].
#[derive(Clone, Debug)]
pub struct CheckInput<'a> {
    pub now: Millis,
    /// Digest of the typed code; `None` when the input cannot be a code (still counts).
    pub candidate: Option<CodeDigest>,
    pub max_attempts: u32,
    /// The check's own `vendor_data`; without one, the verification's (its first send's).
    pub vendor_data: Option<&'a str>,
    /// Decline instead of approving when the number was verified for another `vendor_data`.
    pub refuse_duplicate: bool,
    /// How long the verified-number index remembers an approval.
    pub verified_ttl_ms: i64,
}

/// What [`Store::check`] decided.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CheckVerdict {
    /// Right code, consumed now: nobody else will get this approval.
    Approved,
    /// Right code, but the number was verified for another `vendor_data` and the workflow
    /// declines duplicates: the verification is now declined.
    Duplicate,
    /// Wrong code; attempts remain.
    Wrong { attempts_left: u32 },
    /// This attempt spent the attempt budget: declined now.
    Exhausted,
    /// The verification was declined before this check (for the reason in its view).
    AlreadyDeclined,
    /// The number is on the blocklist: declined.
    Blocked,
    /// No pending verification (never sent, expired, or already consumed).
    NotFound,
}

/// Lifecycle of a stored verification.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VerificationState {
    Pending,
    Approved,
    Declined,
}

/// Why a verification was declined.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeclineReason {
    AttemptsExceeded,
    Blocked,
    Duplicate,
}

impl DeclineReason {
    /// Compact form stored with the verification.
    pub const fn as_str(self) -> &'static str {
        match self {
            DeclineReason::AttemptsExceeded => "attempts",
            DeclineReason::Blocked => "blocked",
            DeclineReason::Duplicate => "duplicate",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "attempts" => Some(DeclineReason::AttemptsExceeded),
            "blocked" => Some(DeclineReason::Blocked),
            "duplicate" => Some(DeclineReason::Duplicate),
            _ => None,
        }
    }
}

/// A read-only view of a verification, for reports.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerificationView {
    pub id: String,
    pub state: VerificationState,
    pub channel: Channel,
    /// Code-entry attempts made (wrong and right).
    pub attempts: u32,
    pub created_at: Millis,
    pub expires_at: Millis,
    pub verified_at: Option<Millis>,
    /// Set when `state` is `Declined`.
    pub declined: Option<DeclineReason>,
    /// The `vendor_data` its first send gave: a check without one is judged with it.
    pub vendor_data: Option<String>,
}

/// Result of [`Store::check`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckResult {
    pub verdict: CheckVerdict,
    /// On approval: the provider and message id that carried the approved code, when its
    /// provider confirms approvals.
    pub confirm: Option<(String, String)>,
    /// On approval: the route that carried the approved code ([`CodeRoute::encode`]).
    pub route: Option<String>,
    /// On approval: a later code of the verification had gone out before the approved one was
    /// entered (the user asked again: for them, the approved code came too late).
    pub superseded: bool,
    /// The verification the check ran against, after the check.
    pub verification: Option<VerificationView>,
    /// The `vendor_data` the number was verified for before this check.
    pub verified_for: Option<String>,
}

/// The route a code went out on and when, stored with the code as
/// `channel\tprovider\tsent_ms` so an approval can be credited to the route that carried it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CodeRoute {
    pub channel: Channel,
    pub provider: String,
    pub sent_at: Millis,
}

impl CodeRoute {
    pub fn encode(channel: Channel, provider: &str, sent_at: Millis) -> String {
        format!("{}\t{provider}\t{sent_at}", channel.as_str())
    }

    pub fn decode(s: &str) -> Option<Self> {
        let mut parts = s.splitn(3, '\t');
        Some(CodeRoute {
            channel: parts.next()?.parse().ok()?,
            provider: parts.next()?.to_owned(),
            sent_at: parts.next()?.parse().ok()?,
        })
    }
}

/// Where a delivered message belongs: kept under the provider's message id until its
/// verification expires, so that a failure receipt can move the verification to the next
/// route of the same plan.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct DeliveryRef {
    pub app: String,
    pub e164: String,
    pub verification_id: String,
    /// The message's code: its position inside the verification.
    pub seq: u32,
    /// The channel that carried it.
    pub channel: Channel,
    /// Index in the send's plan of the first route not tried yet.
    pub next_route: u32,
    /// The plan's inputs from the request, so the same plan can be made again.
    pub pinned: Option<Channel>,
    pub preferred: Option<Channel>,
    pub locale: String,
    pub code_len: u8,
}

/// Input of [`Store::redeliver`].
#[derive(Clone, Debug)]
pub struct Redeliver<'a> {
    pub now: Millis,
    pub verification_id: &'a str,
    /// The code whose message failed; only the newest code of the verification is replaced.
    pub failed_seq: u32,
    /// Digest of the code about to be sent on the next route.
    pub digest: CodeDigest,
    /// The channel of that route.
    pub channel: Channel,
    /// That route ([`CodeRoute`]).
    pub route: &'a str,
    /// Live codes the verification may hold (`1 + max_resends`); the oldest go first.
    pub max_live: u32,
}

/// What [`Store::redeliver`] decided.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Redelivery {
    /// The new code is recorded; send it.
    Added { seq: u32, expires_at: Millis },
    /// Nothing to do: the verification is over (approved, declined, expired), or a newer
    /// code was sent after the failed one.
    Stale,
}

/// A store failure. The engine fails closed on it: nothing is sent, nothing approved.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    #[error("state store unavailable: {0}")]
    Unavailable(String),
    #[error("state store returned malformed data: {0}")]
    Corrupt(String),
}

/// The state backends: a closed set, so an enum.
#[derive(Clone, Debug)]
pub enum Store {
    /// In-process state: the embedded default. Not shared between instances.
    Memory(MemoryStore),
    /// Redis or Redis Cluster: shared by every instance, so N instances behave as one.
    Redis(RedisStore),
}

impl Default for Store {
    fn default() -> Self {
        Store::Memory(MemoryStore::default())
    }
}

impl Store {
    /// The store the configuration asks for. Redis connects lazily: this never waits for it.
    pub fn from_config(config: &crate::config::StoreConfig) -> Result<Self, StoreError> {
        Ok(match config.backend {
            crate::config::StoreBackend::Memory => Store::Memory(MemoryStore::default()),
            crate::config::StoreBackend::Redis => Store::Redis(RedisStore::new(&RedisSettings {
                url: config.url.clone(),
                key_prefix: config.key_prefix.clone(),
                command_timeout: std::time::Duration::from_millis(config.command_timeout_ms),
            })?),
        })
    }

    pub async fn reserve_send(
        &self,
        key: &NumberKey,
        input: ReserveSend<'_>,
    ) -> Result<Reservation, StoreError> {
        match self {
            Store::Memory(m) => Ok(m.reserve_send(key, input)),
            Store::Redis(r) => r.reserve_send(key, input).await,
        }
    }

    /// [`Store::reserve_send`] and [`Store::count`] in one round trip (one script call on a
    /// single Redis node): the fraud screen counts a send in the same call that reserves it.
    pub async fn reserve_counted(
        &self,
        key: &NumberKey,
        input: ReserveSend<'_>,
        counts: &[Count],
    ) -> Result<(Reservation, Vec<Tally>), StoreError> {
        match self {
            Store::Memory(m) => {
                let tallies = counts
                    .iter()
                    .map(|c| m.counters().count(input.now, c))
                    .collect();
                Ok((m.reserve_send(key, input), tallies))
            }
            Store::Redis(r) => r.reserve_counted(key, input, counts).await,
        }
    }

    /// Records what a delivered send tells its verification: the channel that delivered (when
    /// it is not the one reserved) and, for a provider that confirms approvals, the provider
    /// and message id that carried code `seq` (returned by the check that approves that code).
    pub async fn record_delivery(
        &self,
        key: &NumberKey,
        delivery: RecordDelivery<'_>,
    ) -> Result<(), StoreError> {
        match self {
            Store::Memory(m) => {
                m.record_delivery(key, &delivery);
                Ok(())
            }
            Store::Redis(r) => r.record_delivery(key, &delivery).await,
        }
    }

    /// Undoes the reservation of a send that no provider can have accepted: the code is
    /// forgotten, the resend budget is given back, and a verification this send opened is
    /// removed (the one it replaced, if any, comes back) unless a check was already made
    /// against it: a verification with recorded attempts is never deleted by a release.
    pub async fn release_send(
        &self,
        key: &NumberKey,
        reserved: &Reserved,
    ) -> Result<(), StoreError> {
        match self {
            Store::Memory(m) => {
                m.release_send(key, reserved);
                Ok(())
            }
            Store::Redis(r) => r.release_send(key, reserved).await,
        }
    }

    pub async fn check(
        &self,
        key: &NumberKey,
        input: CheckInput<'_>,
    ) -> Result<CheckResult, StoreError> {
        match self {
            Store::Memory(m) => Ok(m.check(key, input)),
            Store::Redis(r) => r.check(key, input).await,
        }
    }

    /// Forgets one code of a pending verification (a late-fallback code no route delivered).
    /// Leaves the send window alone: a late fallback never took a place in it.
    pub async fn forget_code(
        &self,
        key: &NumberKey,
        verification_id: &str,
        seq: u32,
    ) -> Result<(), StoreError> {
        match self {
            Store::Memory(m) => {
                m.forget_code(key, verification_id, seq);
                Ok(())
            }
            Store::Redis(r) => r.forget_code(key, verification_id, seq).await,
        }
    }

    /// Keeps `delivery` under (`provider`, `message_id`) until `expires_at`.
    pub async fn remember_delivery(
        &self,
        provider: &str,
        message_id: &str,
        delivery: &DeliveryRef,
        now: Millis,
        expires_at: Millis,
    ) -> Result<(), StoreError> {
        if expires_at <= now {
            return Ok(());
        }
        match self {
            Store::Memory(m) => {
                m.remember_delivery(provider, message_id, delivery, now, expires_at);
                Ok(())
            }
            Store::Redis(r) => {
                r.remember_delivery(provider, message_id, delivery, expires_at - now)
                    .await
            }
        }
    }

    /// The delivery kept under (`provider`, `message_id`), removed when `remove` is set so that
    /// a repeated receipt cannot act twice.
    pub async fn take_delivery(
        &self,
        provider: &str,
        message_id: &str,
        remove: bool,
        now: Millis,
    ) -> Result<Option<DeliveryRef>, StoreError> {
        match self {
            Store::Memory(m) => Ok(m.take_delivery(provider, message_id, remove, now)),
            Store::Redis(r) => r.take_delivery(provider, message_id, remove).await,
        }
    }

    /// Adds the code of a late fallback to a pending verification, without touching the send
    /// window or the attempt count: the user asked for one code and gets one that arrives.
    pub async fn redeliver(
        &self,
        key: &NumberKey,
        input: Redeliver<'_>,
    ) -> Result<Redelivery, StoreError> {
        match self {
            Store::Memory(m) => Ok(m.redeliver(key, input)),
            Store::Redis(r) => r.redeliver(key, input).await,
        }
    }

    /// Takes up to `limit` verifications whose validity ended before `now` while pending. Each
    /// is returned once over every caller sharing the store (the Redis store decides each one
    /// in one script; the memory store under its shard lock).
    pub async fn sweep_ended(&self, now: Millis, limit: usize) -> Result<Swept, StoreError> {
        match self {
            Store::Memory(m) => Ok(m.sweep_ended(now, limit)),
            Store::Redis(r) => r.sweep_ended(now, limit).await,
        }
    }

    /// Blocklist flag, verified-for index and live verification of a number, in one read.
    pub async fn inspect(&self, key: &NumberKey, now: Millis) -> Result<Inspection, StoreError> {
        match self {
            Store::Memory(m) => Ok(m.inspect(key, now)),
            Store::Redis(r) => r.inspect(key, now).await,
        }
    }

    /// Adds a number to an application's blocklist. Returns false when it was already there.
    pub async fn block(&self, key: &NumberKey) -> Result<bool, StoreError> {
        match self {
            Store::Memory(m) => Ok(m.set_blocked(key, true)),
            Store::Redis(r) => r.set_blocked(key, true).await,
        }
    }

    /// Removes a number from an application's blocklist. Returns false when it was not there.
    pub async fn unblock(&self, key: &NumberKey) -> Result<bool, StoreError> {
        match self {
            Store::Memory(m) => Ok(m.set_blocked(key, false)),
            Store::Redis(r) => r.set_blocked(key, false).await,
        }
    }

    /// Adds to windowed outcome counters and returns each one's window sums and block state,
    /// in the order of `counts`. One round trip however many counters (they are sent together).
    pub async fn count(&self, now: Millis, counts: &[Count]) -> Result<Vec<Tally>, StoreError> {
        match self {
            Store::Memory(m) => Ok(counts.iter().map(|c| m.counters().count(now, c)).collect()),
            Store::Redis(r) => r.count(now, counts).await,
        }
    }

    /// Blocks counter `key` of `app` until `until`; returns how many times it was blocked.
    pub async fn block_counter(
        &self,
        app: &str,
        key: &CounterKey,
        until: Millis,
        now: Millis,
    ) -> Result<u32, StoreError> {
        match self {
            Store::Memory(m) => Ok(m.counters().block(key, until, now)),
            Store::Redis(r) => r.block_counter(app, key, until, now).await,
        }
    }

    /// Lifts the block of counter `key` of `app` and forgets the sends counted in its window
    /// (an admin's release: the key starts afresh; its count of blocks stays, so a key that
    /// trips again is blocked longer). False when it was not blocked.
    pub async fn release_counter(&self, app: &str, key: &CounterKey) -> Result<bool, StoreError> {
        match self {
            Store::Memory(m) => Ok(m.counters().release(key)),
            Store::Redis(r) => r.release_counter(app, key).await,
        }
    }

    /// The counters of `app` blocked at `now` (key, block end, times blocked), sorted by key.
    /// `key_prefix` is the application's namespace of counter keys.
    pub async fn blocked_counters(
        &self,
        app: &str,
        key_prefix: &str,
        now: Millis,
    ) -> Result<Vec<(CounterKey, Millis, u32)>, StoreError> {
        match self {
            Store::Memory(m) => Ok(m.counters().blocked(key_prefix, now)),
            Store::Redis(r) => r.blocked_counters(app, now).await,
        }
    }

    /// Adds (`listed`) or removes an entry of the application's runtime fraud safe list
    /// (admin data, no TTL). Returns whether the list changed.
    pub async fn set_safe_listed(
        &self,
        app: &str,
        entry: &str,
        listed: bool,
    ) -> Result<bool, StoreError> {
        match self {
            Store::Memory(m) => Ok(m.set_safe_listed(app, entry, listed)),
            Store::Redis(r) => r.set_safe_listed(app, entry, listed).await,
        }
    }

    /// The application's runtime fraud admin data in one read: its safe list (sorted) and its
    /// geo permissions as stored by [`Store::set_fraud_geo`] (`None` when never set).
    pub async fn fraud_admin(
        &self,
        app: &str,
    ) -> Result<(Vec<String>, Option<String>), StoreError> {
        match self {
            Store::Memory(m) => Ok(m.fraud_admin(app)),
            Store::Redis(r) => r.fraud_admin(app).await,
        }
    }

    /// Replaces the application's runtime geo permissions (an opaque JSON document; admin
    /// data, no TTL).
    pub async fn set_fraud_geo(&self, app: &str, geo: &str) -> Result<(), StoreError> {
        match self {
            Store::Memory(m) => {
                m.set_fraud_geo(app, geo);
                Ok(())
            }
            Store::Redis(r) => r.set_fraud_geo(app, geo).await,
        }
    }

    /// The application's blocklist, sorted.
    pub async fn blocked(&self, app: &str) -> Result<Vec<String>, StoreError> {
        match self {
            Store::Memory(m) => Ok(m.blocked(app)),
            Store::Redis(r) => r.blocked(app).await,
        }
    }
}

/// What the store holds about a number beyond its pending send, for lookups.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Inspection {
    pub blocked: bool,
    pub verified_for: Option<String>,
    /// The live (unexpired) verification.
    pub verification: Option<VerificationView>,
}
