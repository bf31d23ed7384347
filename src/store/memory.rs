//! The in-memory store: the embedded default for one process. Numbers are spread over
//! mutex-guarded shards; each operation holds one shard lock for its whole duration, which is
//! what makes it atomic (the Redis store gets the same property from one Lua script).

use std::collections::hash_map::DefaultHasher;
use std::collections::{HashMap, VecDeque};
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use parking_lot::Mutex;
use subtle::{ConditionallySelectable, ConstantTimeEq};
use switchboard_providers::Channel;

use super::{
    CheckInput, CheckResult, CheckVerdict, DeclineReason, DeliveryRef, Inspection, NumberKey,
    Redeliver, Redelivery, Reservation, ReserveSend, Reserved, VerificationState, VerificationView,
};
use crate::clock::Millis;
use crate::code::CodeDigest;

const SHARDS: usize = 32;
/// Every this many writes a shard drops the entries that hold nothing live any more.
const SWEEP_EVERY: u64 = 4096;

#[derive(Debug)]
struct Verification {
    id: String,
    state: VerificationState,
    channel: Channel,
    /// One slot per send; a released or superseded code leaves `None`.
    digests: Vec<Option<CodeDigest>>,
    /// Slots before this one hold no live code (dropped by the live-code cap).
    oldest: usize,
    /// Which provider message carried a code, for providers that confirm approvals.
    confirms: Vec<(u32, (String, String))>,
    /// The route each code went out on ([`super::CodeRoute`]).
    routes: Vec<(u32, String)>,
    attempts: u32,
    failures: u32,
    created_at: Millis,
    expires_at: Millis,
    verified_at: Option<Millis>,
    declined: Option<DeclineReason>,
    vendor_data: Option<String>,
}

impl Verification {
    /// Adds a code and drops the oldest live ones beyond `max_live`, so a blind guess never
    /// faces more than `max_live` codes however many sends the verification saw.
    fn add_code(&mut self, digest: CodeDigest, max_live: u32) -> u32 {
        self.digests.push(Some(digest));
        let mut live = self.live().count();
        while live > max_live.max(1) as usize {
            if self.digests[self.oldest].take().is_some() {
                live -= 1;
            }
            self.oldest += 1;
        }
        (self.digests.len() - 1) as u32
    }

    fn live(&self) -> impl Iterator<Item = &CodeDigest> {
        self.digests[self.oldest..].iter().flatten()
    }

    fn live_with_seq(&self) -> impl Iterator<Item = (usize, &CodeDigest)> {
        self.digests
            .iter()
            .enumerate()
            .skip(self.oldest)
            .filter_map(|(i, d)| d.as_ref().map(|d| (i, d)))
    }

    /// A code-entry attempt was made against it: it must outlive a release, or its failures
    /// would be forgotten.
    fn was_checked(&self) -> bool {
        self.attempts > 0
    }

    fn decline(&mut self, reason: DeclineReason) {
        self.state = VerificationState::Declined;
        self.declined = Some(reason);
    }

    fn view(&self) -> VerificationView {
        VerificationView {
            id: self.id.clone(),
            state: self.state,
            channel: self.channel,
            attempts: self.attempts,
            created_at: self.created_at,
            expires_at: self.expires_at,
            verified_at: self.verified_at,
            declined: self.declined,
            vendor_data: self.vendor_data.clone(),
        }
    }
}

#[derive(Debug, Default)]
struct NumberState {
    verification: Option<Verification>,
    /// A concluded verification that a new, not yet delivered one replaced: restored if the
    /// new one's send fails on every route, so a failed send leaves no trace.
    superseded: Option<Verification>,
    /// Times of the sends inside the rolling window, oldest first.
    sends: VecDeque<Millis>,
    blocked: bool,
    /// `vendor_data` the number was approved for, and when that memory expires.
    verified_for: Option<(String, Millis)>,
    /// Verifications whose validity ended while pending, until the expiry sweep takes them:
    /// (id, attempts, channel, end).
    ended: Vec<(String, u32, Channel, Millis)>,
}

impl NumberState {
    /// Drops what time has made irrelevant.
    fn expire(&mut self, now: Millis, window_ms: Option<i64>) {
        if let Some(v) = self.verification.take_if(|v| v.expires_at <= now)
            && v.state == VerificationState::Pending
        {
            self.ended.push((v.id, v.attempts, v.channel, v.expires_at));
        }
        if self
            .superseded
            .as_ref()
            .is_some_and(|v| v.expires_at <= now)
        {
            self.superseded = None;
        }
        if let Some(window) = window_ms {
            while self.sends.front().is_some_and(|t| *t <= now - window) {
                self.sends.pop_front();
            }
        }
        if self
            .verified_for
            .as_ref()
            .is_some_and(|(_, until)| *until <= now)
        {
            self.verified_for = None;
        }
    }

    /// Drops code `seq` of the verification `verification_id`; a pending verification left
    /// without any code gives way to the one it replaced.
    fn forget_code(&mut self, verification_id: &str, seq: u32) {
        let Some(v) = self
            .verification
            .as_mut()
            .filter(|v| v.id == verification_id)
        else {
            return;
        };
        if let Some(slot) = v.digests.get_mut(seq as usize) {
            *slot = None;
        }
        if v.state == VerificationState::Pending && v.live().next().is_none() && !v.was_checked() {
            self.verification = self.superseded.take();
        }
    }

    fn verified_for(&self) -> Option<String> {
        self.verified_for.as_ref().map(|(v, _)| v.clone())
    }

    fn is_duplicate(&self, vendor_data: Option<&str>) -> bool {
        matches!((&self.verified_for, vendor_data), (Some((prev, _)), Some(cur)) if prev != cur)
    }

    /// True when nothing in this entry matters any more. The send window is kept for a day
    /// at most: entries whose last send is older than that are dropped.
    fn is_idle(&self, now: Millis) -> bool {
        const DAY_MS: i64 = 86_400_000;
        !self.blocked
            && self.verified_for.is_none()
            && self.ended.is_empty()
            && self
                .verification
                .as_ref()
                .is_none_or(|v| v.expires_at <= now)
            && self.sends.back().is_none_or(|t| *t <= now - DAY_MS)
    }
}

#[derive(Default)]
struct Shard {
    numbers: HashMap<NumberKey, NumberState>,
    writes: u64,
}

impl Shard {
    fn touch(&mut self, now: Millis) {
        self.writes += 1;
        if self.writes.is_multiple_of(SWEEP_EVERY) {
            self.numbers.retain(|_, s| !s.is_idle(now));
        }
    }
}

/// Delivered messages by (provider, message id), each until its verification expires.
#[derive(Default)]
struct Deliveries {
    by_message: HashMap<(String, String), (DeliveryRef, Millis)>,
    writes: u64,
}

/// In-process state, shared by clones.
#[derive(Clone)]
pub struct MemoryStore {
    shards: Arc<[Mutex<Shard>]>,
    counters: super::counters::MemoryCounters,
    deliveries: Arc<Mutex<Deliveries>>,
    fraud_admin: Arc<Mutex<HashMap<String, FraudAdmin>>>,
    records: super::records_memory::MemoryRecords,
    lines: super::lines::MemoryLines,
    documents: super::documents::MemoryDocuments,
}

/// An application's fraud admin data: the runtime safe list and geo permissions (JSON).
#[derive(Default)]
struct FraudAdmin {
    safe_list: std::collections::BTreeSet<String>,
    geo: Option<String>,
}

impl Default for MemoryStore {
    fn default() -> Self {
        MemoryStore {
            shards: (0..SHARDS).map(|_| Mutex::new(Shard::default())).collect(),
            counters: Default::default(),
            deliveries: Arc::default(),
            fraud_admin: Arc::default(),
            records: Default::default(),
            lines: Default::default(),
            documents: Default::default(),
        }
    }
}

impl std::fmt::Debug for MemoryStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryStore")
            .field("numbers", &self.len())
            .finish()
    }
}

impl MemoryStore {
    pub(super) fn lines(&self) -> &super::lines::MemoryLines {
        &self.lines
    }

    pub fn new() -> Self {
        Self::default()
    }

    /// Number of phone numbers with state (live or not yet swept).
    pub fn len(&self) -> usize {
        self.shards.iter().map(|s| s.lock().numbers.len()).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub(crate) fn counters(&self) -> &super::counters::MemoryCounters {
        &self.counters
    }

    pub(super) fn records(&self) -> &super::records_memory::MemoryRecords {
        &self.records
    }

    /// Forgets a number: its limit state, records, idempotent answers, delivery references
    /// and blocklist entry.
    pub(super) fn delete_number(&self, key: &NumberKey) -> super::records::Deletion {
        let state = self.shard(key).lock().numbers.remove(key);
        let (verifications, idempotency_records, messages) = self.records.delete_number(key);
        let mut deliveries = self.deliveries.lock();
        let before = deliveries.by_message.len();
        deliveries.by_message.retain(|(provider, message), (r, _)| {
            let names_it = r.app == key.app && r.e164 == key.e164;
            let listed = messages.iter().any(|(p, m)| p == provider && m == message);
            !(names_it || listed)
        });
        let delivery_references = (before - deliveries.by_message.len()) as u32;
        super::records::Deletion {
            verifications,
            idempotency_records,
            delivery_references,
            limit_state: state.as_ref().is_some_and(|s| {
                s.verification.is_some() || !s.sends.is_empty() || s.verified_for.is_some()
            }),
            blocklist_entry: state.is_some_and(|s| s.blocked),
        }
    }

    fn shard(&self, key: &NumberKey) -> &Mutex<Shard> {
        let mut h = DefaultHasher::new();
        key.hash(&mut h);
        &self.shards[(h.finish() as usize) % self.shards.len()]
    }

    fn new_id(&self) -> String {
        // A random (v4) UUID: unguessable, so it can be shown and used to fetch the record.
        uuid::Uuid::new_v4().to_string()
    }

    pub(super) fn reserve_send(&self, key: &NumberKey, input: ReserveSend<'_>) -> Reservation {
        let now = input.now;
        let limits = input.limits;
        let mut shard = self.shard(key).lock();
        shard.touch(now);
        let state = shard.numbers.entry(key.clone()).or_default();
        state.expire(now, Some(limits.window_ms));

        if state.blocked {
            return Reservation::Blocked;
        }
        if input.refuse_duplicate && state.is_duplicate(input.vendor_data) {
            return Reservation::Duplicate;
        }
        if let Some(v) = &state.verification
            && v.state == VerificationState::Declined
        {
            return Reservation::Declined {
                retry_after_ms: v.expires_at - now,
            };
        }
        if !limits.exempt {
            let allowance = limits.max_resends as usize + 1;
            if state.sends.len() >= allowance {
                let oldest = state.sends[state.sends.len() - allowance];
                return Reservation::Throttled {
                    retry_after_ms: (oldest + limits.window_ms - now).max(1),
                    cooldown: false,
                };
            }
            if let Some(last) = state.sends.back()
                && limits.cooldown_ms > 0
                && now < last + limits.cooldown_ms
            {
                return Reservation::Throttled {
                    retry_after_ms: last + limits.cooldown_ms - now,
                    cooldown: true,
                };
            }
            // Oldest first, even for a send stamped before the last one (another instance's
            // clock): the window and the allowance read the order.
            let at = state.sends.partition_point(|&t| t <= now);
            state.sends.insert(at, now);
        }
        let resends_left = if limits.exempt {
            limits.max_resends
        } else {
            (limits.max_resends as usize + 1).saturating_sub(state.sends.len()) as u32
        };
        let verified_for = state.verified_for();

        let pending = state
            .verification
            .as_mut()
            .filter(|v| v.state == VerificationState::Pending);
        let mut previous_route = None;
        let (verification_id, joined, seq, expires_at) = match pending {
            Some(v) => {
                let seq = v.add_code(input.digest, limits.max_resends + 1);
                previous_route = v
                    .routes
                    .iter()
                    .find(|(s, _)| *s + 1 == seq)
                    .map(|(_, r)| r.clone());
                v.routes.push((seq, input.route.to_owned()));
                (v.id.clone(), true, seq, v.expires_at)
            }
            None => {
                let id = self.new_id();
                let expires_at = now + limits.validity_ms;
                state.superseded = state.verification.take();
                state.verification = Some(Verification {
                    id: id.clone(),
                    state: VerificationState::Pending,
                    channel: input.channel,
                    digests: vec![Some(input.digest)],
                    oldest: 0,
                    confirms: Vec::new(),
                    routes: vec![(0, input.route.to_owned())],
                    attempts: 0,
                    failures: 0,
                    created_at: now,
                    expires_at,
                    verified_at: None,
                    declined: None,
                    vendor_data: input.vendor_data.map(str::to_owned),
                });
                (id, false, 0, expires_at)
            }
        };
        Reservation::Reserved(Reserved {
            verification_id,
            reserved_at: now,
            joined,
            seq,
            expires_at,
            resends_left,
            verified_for,
            previous_route,
        })
    }

    pub(super) fn sweep_ended(&self, now: Millis, limit: usize) -> super::Swept {
        let mut out = Vec::new();
        for shard in self.shards.iter() {
            let mut shard = shard.lock();
            for (key, state) in shard.numbers.iter_mut() {
                if out.len() >= limit {
                    return super::Swept {
                        ended: out,
                        more: true,
                    };
                }
                state.expire(now, None);
                let take = state.ended.len().min(limit - out.len());
                out.extend(
                    state
                        .ended
                        .drain(..take)
                        .map(|(id, attempts, channel, end)| super::EndedVerification {
                            key: key.clone(),
                            verification_id: id,
                            attempts,
                            channel: Some(channel),
                            expires_at: end,
                        }),
                );
            }
        }
        super::Swept {
            ended: out,
            more: false,
        }
    }

    pub(super) fn record_delivery(&self, key: &NumberKey, d: &super::RecordDelivery<'_>) {
        let mut shard = self.shard(key).lock();
        if let Some(v) = shard
            .numbers
            .get_mut(key)
            .and_then(|s| s.verification.as_mut())
            .filter(|v| v.id == d.verification_id)
        {
            if let Some(channel) = d.channel {
                v.channel = channel;
            }
            if let Some((provider, message)) = d.confirm {
                v.confirms
                    .push((d.seq, (provider.to_owned(), message.to_owned())));
            }
            if let Some(route) = d.route {
                v.routes.retain(|(seq, _)| *seq != d.seq);
                v.routes.push((d.seq, route.to_owned()));
            }
        }
    }

    pub(super) fn release_send(&self, key: &NumberKey, reserved: &Reserved) {
        let mut shard = self.shard(key).lock();
        let Some(state) = shard.numbers.get_mut(key) else {
            return;
        };
        if let Some(pos) = state.sends.iter().rposition(|t| *t == reserved.reserved_at) {
            state.sends.remove(pos);
        }
        state.forget_code(&reserved.verification_id, reserved.seq);
    }

    pub(super) fn forget_code(&self, key: &NumberKey, verification_id: &str, seq: u32) {
        let mut shard = self.shard(key).lock();
        if let Some(state) = shard.numbers.get_mut(key) {
            state.forget_code(verification_id, seq);
        }
    }

    pub(super) fn redeliver(&self, key: &NumberKey, input: Redeliver<'_>) -> Redelivery {
        let now = input.now;
        let mut shard = self.shard(key).lock();
        shard.touch(now);
        let Some(state) = shard.numbers.get_mut(key) else {
            return Redelivery::Stale;
        };
        state.expire(now, None);
        // A number blocked after its send gets no new code.
        if state.blocked {
            return Redelivery::Stale;
        }
        let Some(v) = state.verification.as_mut().filter(|v| {
            v.id == input.verification_id
                && v.state == VerificationState::Pending
                && v.digests.len() == input.failed_seq as usize + 1
        }) else {
            return Redelivery::Stale;
        };
        let seq = v.add_code(input.digest, input.max_live);
        v.routes.push((seq, input.route.to_owned()));
        v.channel = input.channel;
        Redelivery::Added {
            seq,
            expires_at: v.expires_at,
        }
    }

    pub(super) fn remember_delivery(
        &self,
        provider: &str,
        message_id: &str,
        delivery: &DeliveryRef,
        now: Millis,
        expires_at: Millis,
    ) {
        let mut d = self.deliveries.lock();
        d.writes += 1;
        if d.writes.is_multiple_of(SWEEP_EVERY) {
            d.by_message.retain(|_, (_, until)| *until > now);
        }
        d.by_message.insert(
            (provider.to_owned(), message_id.to_owned()),
            (delivery.clone(), expires_at),
        );
    }

    pub(super) fn take_delivery(
        &self,
        provider: &str,
        message_id: &str,
        remove: bool,
        now: Millis,
    ) -> Option<DeliveryRef> {
        let mut d = self.deliveries.lock();
        let key = (provider.to_owned(), message_id.to_owned());
        let found = if remove {
            d.by_message.remove(&key)
        } else {
            d.by_message.get(&key).cloned()
        };
        found.filter(|(_, until)| *until > now).map(|(r, _)| r)
    }

    pub(super) fn check(&self, key: &NumberKey, input: CheckInput<'_>) -> CheckResult {
        let now = input.now;
        let mut shard = self.shard(key).lock();
        shard.touch(now);
        let Some(state) = shard.numbers.get_mut(key) else {
            return CheckResult {
                verdict: CheckVerdict::NotFound,
                confirm: None,
                route: None,
                superseded: false,
                verification: None,
                verified_for: None,
            };
        };
        state.expire(now, None);
        let verified_for = state.verified_for();
        let blocked = state.blocked;
        // A check without `vendor_data` is judged with its verification's.
        let vendor = input.vendor_data.map(str::to_owned).or_else(|| {
            state
                .verification
                .as_ref()
                .and_then(|v| v.vendor_data.clone())
        });
        let duplicate = state.is_duplicate(vendor.as_deref());

        let Some(v) = state.verification.as_mut() else {
            return CheckResult {
                verdict: CheckVerdict::NotFound,
                confirm: None,
                route: None,
                superseded: false,
                verification: None,
                verified_for,
            };
        };
        let mut matched_seq = u64::MAX;
        let mut confirm = None;
        let mut route = None;
        let mut superseded = false;
        let verdict = match v.state {
            VerificationState::Approved => CheckVerdict::NotFound,
            VerificationState::Declined => CheckVerdict::AlreadyDeclined,
            VerificationState::Pending if blocked => {
                v.decline(DeclineReason::Blocked);
                CheckVerdict::Blocked
            }
            VerificationState::Pending => {
                // The attempt is counted before the comparison, whatever its outcome.
                v.attempts += 1;
                let matched = input.candidate.as_ref().is_some_and(|c| {
                    // Constant time over every live code: no early exit.
                    let mut any = subtle::Choice::from(0);
                    for (seq, d) in v.live_with_seq() {
                        let hit = d.ct_eq(c);
                        matched_seq.conditional_assign(&(seq as u64), hit);
                        any |= hit;
                    }
                    bool::from(any)
                });
                if matched && duplicate && input.refuse_duplicate {
                    v.decline(DeclineReason::Duplicate);
                    CheckVerdict::Duplicate
                } else if matched {
                    v.state = VerificationState::Approved;
                    v.verified_at = Some(now);
                    confirm = v
                        .confirms
                        .iter()
                        .find(|(seq, _)| u64::from(*seq) == matched_seq)
                        .map(|(_, c)| c.clone());
                    route = v
                        .routes
                        .iter()
                        .find(|(seq, _)| u64::from(*seq) == matched_seq)
                        .map(|(_, r)| r.clone());
                    superseded = v.live_with_seq().any(|(seq, _)| seq as u64 > matched_seq);
                    if let Some(vendor) = vendor.as_deref()
                        && !duplicate
                    {
                        state_verified(
                            &mut state.verified_for,
                            vendor,
                            now + input.verified_ttl_ms,
                        );
                    }
                    CheckVerdict::Approved
                } else {
                    v.failures += 1;
                    if v.failures >= input.max_attempts {
                        v.decline(DeclineReason::AttemptsExceeded);
                        CheckVerdict::Exhausted
                    } else {
                        CheckVerdict::Wrong {
                            attempts_left: input.max_attempts - v.failures,
                        }
                    }
                }
            }
        };
        CheckResult {
            verdict,
            confirm,
            route,
            superseded,
            verification: state.verification.as_ref().map(Verification::view),
            verified_for,
        }
    }

    pub(super) fn inspect(&self, key: &NumberKey, now: Millis) -> Inspection {
        let shard = self.shard(key).lock();
        let Some(state) = shard.numbers.get(key) else {
            return Inspection::default();
        };
        Inspection {
            blocked: state.blocked,
            verified_for: state
                .verified_for
                .as_ref()
                .filter(|(_, until)| *until > now)
                .map(|(v, _)| v.clone()),
            verification: state
                .verification
                .as_ref()
                .filter(|v| v.expires_at > now)
                .map(Verification::view),
        }
    }

    pub(super) fn set_blocked(&self, key: &NumberKey, blocked: bool) -> bool {
        let mut shard = self.shard(key).lock();
        let state = shard.numbers.entry(key.clone()).or_default();
        std::mem::replace(&mut state.blocked, blocked) != blocked
    }

    pub(super) fn blocked(&self, app: &str) -> Vec<String> {
        let mut out: Vec<String> = self
            .shards
            .iter()
            .flat_map(|s| {
                s.lock()
                    .numbers
                    .iter()
                    .filter(|(k, v)| v.blocked && k.app == app)
                    .map(|(k, _)| k.e164.clone())
                    .collect::<Vec<_>>()
            })
            .collect();
        out.sort();
        out
    }
}

impl MemoryStore {
    pub(super) fn set_safe_listed(&self, app: &str, entry: &str, listed: bool) -> bool {
        let mut admin = self.fraud_admin.lock();
        let state = admin.entry(app.to_owned()).or_default();
        if listed {
            state.safe_list.insert(entry.to_owned())
        } else {
            state.safe_list.remove(entry)
        }
    }

    pub(super) fn fraud_admin(&self, app: &str) -> (Vec<String>, Option<String>) {
        self.fraud_admin
            .lock()
            .get(app)
            .map_or_else(Default::default, |a| {
                (a.safe_list.iter().cloned().collect(), a.geo.clone())
            })
    }

    pub(super) fn documents(&self) -> &super::documents::MemoryDocuments {
        &self.documents
    }

    pub(super) fn set_fraud_geo(&self, app: &str, geo: &str) {
        self.fraud_admin
            .lock()
            .entry(app.to_owned())
            .or_default()
            .geo = Some(geo.to_owned());
    }
}

/// Remembers the first `vendor_data` a number was approved for; later approvals for the same
/// vendor only extend the memory.
fn state_verified(slot: &mut Option<(String, Millis)>, vendor: &str, until: Millis) {
    match slot {
        Some((prev, t)) if prev == vendor => *t = until,
        Some(_) => {}
        None => *slot = Some((vendor.to_owned(), until)),
    }
}
