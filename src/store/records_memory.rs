//! Verification records and idempotency records in process memory (module `records` says
//! what they are). One mutex each: records are written a few times per verification, far
//! less often than the limit state the sharded map holds.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::sync::Arc;

use parking_lot::Mutex;

use super::NumberKey;
use super::records::{
    Claim, LifecycleEntry, MAX_LIFECYCLE, NewRecord, RecordHead, RecordUpdate, Review,
    VerificationRecord,
};
use crate::clock::Millis;

struct Stored {
    record: VerificationRecord,
    lifecycle: VecDeque<LifecycleEntry>,
    expires_at: Millis,
}

struct Idempotent {
    fingerprint: String,
    answer: Option<String>,
    /// The number the answer names, for deletion.
    number: Option<NumberKey>,
    expires_at: Millis,
}

#[derive(Default)]
struct State {
    /// By (app, verification id).
    records: HashMap<(String, String), Stored>,
    /// By (app, idempotency key).
    idempotent: HashMap<(String, String), Idempotent>,
    /// Each number's verification ids, oldest first (lookups by number, deletion).
    by_number: HashMap<NumberKey, Vec<String>>,
    /// Expiry times of records (with their number) and idempotency entries, soonest first:
    /// each write drops what expired in O(log n), never a scan of everything.
    record_expiry: BinaryHeap<Reverse<(Millis, String, String, String)>>,
    idempotent_expiry: BinaryHeap<Reverse<(Millis, String, String)>>,
}

impl State {
    /// Drops what expired by `now`. An entry whose expiry moved later (a completed
    /// idempotency claim) is checked against the map before it is removed.
    fn expire(&mut self, now: Millis) {
        while let Some(Reverse((at, ..))) = self.record_expiry.peek()
            && *at <= now
        {
            let Some(Reverse((_, app, e164, id))) = self.record_expiry.pop() else {
                break;
            };
            let key = NumberKey { app, e164 };
            self.records.remove(&(key.app.clone(), id.clone()));
            if let Some(ids) = self.by_number.get_mut(&key) {
                ids.retain(|i| *i != id);
                if ids.is_empty() {
                    self.by_number.remove(&key);
                }
            }
        }
        while let Some(Reverse((at, _, _))) = self.idempotent_expiry.peek()
            && *at <= now
        {
            let Some(Reverse((_, app, key))) = self.idempotent_expiry.pop() else {
                break;
            };
            let slot = (app, key);
            if self
                .idempotent
                .get(&slot)
                .is_some_and(|i| i.expires_at <= now)
            {
                self.idempotent.remove(&slot);
            }
        }
    }

    fn live(&mut self, app: &str, id: &str, now: Millis) -> Option<&mut Stored> {
        self.records
            .get_mut(&(app.to_owned(), id.to_owned()))
            .filter(|r| r.expires_at > now)
    }
}

/// Records of every application, shared by clones.
#[derive(Clone, Default)]
pub struct MemoryRecords {
    state: Arc<Mutex<State>>,
}

fn push(lifecycle: &mut VecDeque<LifecycleEntry>, entry: LifecycleEntry) {
    lifecycle.push_back(entry);
    while lifecycle.len() > MAX_LIFECYCLE {
        lifecycle.pop_front();
    }
}

impl MemoryRecords {
    pub(super) fn create(&self, app: &str, key: &NumberKey, new: &NewRecord<'_>) {
        let mut state = self.state.lock();
        state.expire(new.now);
        state.record_expiry.push(Reverse((
            new.now + new.ttl_ms,
            key.app.clone(),
            key.e164.clone(),
            new.verification_id.to_owned(),
        )));
        state
            .by_number
            .entry(key.clone())
            .or_default()
            .push(new.verification_id.to_owned());
        state.records.insert(
            (app.to_owned(), new.verification_id.to_owned()),
            Stored {
                record: VerificationRecord {
                    verification_id: new.verification_id.to_owned(),
                    head: new.head.clone(),
                    status: crate::report::VerificationStatus::NotFinished
                        .as_str()
                        .to_owned(),
                    created_at: new.now,
                    channel: None,
                    attempts: 0,
                    verified_at: None,
                    lifecycle: Vec::new(),
                },
                lifecycle: VecDeque::new(),
                expires_at: new.now + new.ttl_ms,
            },
        );
    }

    pub(super) fn discard(&self, app: &str, id: &str) {
        let mut state = self.state.lock();
        let Some(stored) = state.records.remove(&(app.to_owned(), id.to_owned())) else {
            return;
        };
        let key = NumberKey::new(app, stored.record.head.phone_number);
        if let Some(ids) = state.by_number.get_mut(&key) {
            ids.retain(|i| i != id);
            if ids.is_empty() {
                state.by_number.remove(&key);
            }
        }
    }

    pub(super) fn update(
        &self,
        app: &str,
        id: &str,
        update: &RecordUpdate<'_>,
    ) -> Option<RecordHead> {
        let mut state = self.state.lock();
        let stored = state.live(app, id, update.now)?;
        if let Some(status) = update.status {
            stored.record.status = status.to_owned();
            if status == crate::report::VerificationStatus::Approved.as_str() {
                stored.record.verified_at = Some(update.now);
            }
        }
        if update.check {
            stored.record.attempts += 1;
        }
        if let Some(channel) = update.channel {
            stored.record.channel = Some(channel.to_owned());
        }
        push(&mut stored.lifecycle, update.entry.clone());
        Some(stored.record.head.clone())
    }

    pub(super) fn review(
        &self,
        app: &str,
        id: &str,
        status: &str,
        entry: &LifecycleEntry,
        now: Millis,
    ) -> Review {
        let mut state = self.state.lock();
        let Some(stored) = state.live(app, id, now) else {
            return Review::NotFound;
        };
        if stored.record.status != crate::report::VerificationStatus::InReview.as_str() {
            return Review::NotInReview(stored.record.status.clone());
        }
        stored.record.status = status.to_owned();
        if status == crate::report::VerificationStatus::Approved.as_str() {
            stored.record.verified_at = Some(now);
        }
        push(&mut stored.lifecycle, entry.clone());
        Review::Resolved(stored.record.head.clone())
    }

    pub(super) fn get(&self, app: &str, id: &str, now: Millis) -> Option<VerificationRecord> {
        let mut state = self.state.lock();
        let stored = state.live(app, id, now)?;
        let mut record = stored.record.clone();
        record.lifecycle = stored.lifecycle.iter().cloned().collect();
        Some(record)
    }

    pub(super) fn latest(&self, key: &NumberKey, now: Millis) -> Option<String> {
        let state = self.state.lock();
        state.by_number.get(key)?.iter().rev().find_map(|id| {
            state
                .records
                .get(&(key.app.clone(), id.clone()))
                .filter(|r| r.expires_at > now)
                .map(|_| id.clone())
        })
    }

    pub(super) fn claim(
        &self,
        app: &str,
        key: &str,
        fingerprint: &str,
        now: Millis,
        lease_ms: i64,
    ) -> Claim {
        let mut state = self.state.lock();
        state.expire(now);
        let slot = (app.to_owned(), key.to_owned());
        match state.idempotent.get(&slot).filter(|i| i.expires_at > now) {
            Some(i) if i.fingerprint != fingerprint => Claim::Mismatch,
            Some(Idempotent {
                answer: Some(answer),
                ..
            }) => Claim::Done(answer.clone()),
            Some(_) => Claim::Pending,
            None => {
                state.idempotent_expiry.push(Reverse((
                    now + lease_ms,
                    slot.0.clone(),
                    slot.1.clone(),
                )));
                state.idempotent.insert(
                    slot,
                    Idempotent {
                        fingerprint: fingerprint.to_owned(),
                        answer: None,
                        number: None,
                        expires_at: now + lease_ms,
                    },
                );
                Claim::Claimed
            }
        }
    }

    pub(super) fn complete(
        &self,
        app: &str,
        key: &str,
        number: Option<&NumberKey>,
        answer: &str,
        now: Millis,
        ttl_ms: i64,
    ) {
        let mut state = self.state.lock();
        if let Some(i) = state.idempotent.get_mut(&(app.to_owned(), key.to_owned())) {
            i.answer = Some(answer.to_owned());
            i.number = number.cloned();
            i.expires_at = now + ttl_ms;
            state
                .idempotent_expiry
                .push(Reverse((now + ttl_ms, app.to_owned(), key.to_owned())));
        }
    }

    pub(super) fn abandon(&self, app: &str, key: &str) {
        let mut state = self.state.lock();
        let slot = (app.to_owned(), key.to_owned());
        if state
            .idempotent
            .get(&slot)
            .is_some_and(|i| i.answer.is_none())
        {
            state.idempotent.remove(&slot);
        }
    }

    /// Forgets the records and idempotent answers of a number: (records, answers, the message
    /// ids its lifecycles name as (provider, message id)).
    pub(super) fn delete_number(&self, key: &NumberKey) -> (u32, u32, Vec<(String, String)>) {
        let mut state = self.state.lock();
        let mut messages = Vec::new();
        let mut records = 0;
        for id in state.by_number.remove(key).unwrap_or_default() {
            if let Some(r) = state.records.remove(&(key.app.clone(), id)) {
                records += 1;
                messages.extend(
                    r.lifecycle.iter().filter_map(|e| {
                        Some((e.provider.clone()?, e.provider_message_id.clone()?))
                    }),
                );
            }
        }
        let before = state.idempotent.len();
        state
            .idempotent
            .retain(|_, i| i.number.as_ref() != Some(key));
        let answers = before - state.idempotent.len();
        (records, answers as u32, messages)
    }
}
