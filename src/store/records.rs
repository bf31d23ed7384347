//! Verification records: what a verification was and what happened to it, kept apart from the
//! limit state so that it outlives the code's validity (an `In Review` verification is resolved
//! later). A record is keyed by application and `verification_id`; its lifecycle is an ordered,
//! bounded list of entries that expires with the record. Idempotency records of sends live
//! here too, next to the verifications they answer for.
//!
//! Operations, each one store call on one key (one Redis slot):
//! - [`Store::create_record`] when a send opens a verification;
//! - [`Store::update_record`] / [`Store::append_lifecycle`] for every later event (resends,
//!   receipts, checks, fraud decisions, expiry);
//! - [`Store::review_record`] resolves an `In Review` record, refusing any other state;
//! - [`Store::record`] reads one; [`Store::latest_record_id`] finds a number's newest;
//! - [`Store::claim_idempotency`], [`Store::complete_idempotency`],
//!   [`Store::abandon_idempotency`] make a keyed send happen once;
//! - [`Store::delete_number`] forgets everything the store holds about a number.

use serde::{Deserialize, Serialize};

use super::{NumberKey, Store, StoreError};
use crate::clock::Millis;

/// Most lifecycle entries a record keeps; the oldest go first (the first send stays known
/// through the record's `created_at`).
pub const MAX_LIFECYCLE: usize = 64;

/// What a lifecycle entry records.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum LifecycleEvent {
    /// The first code went out (channel, provider, price).
    Sent,
    /// A resend inside the pending verification.
    Resent,
    /// A send that reached nobody (every route failed).
    Undeliverable,
    /// A provider's delivery receipt (`status` is the receipt's).
    Delivery,
    /// A failure receipt moved the verification to the next route: a new code went out.
    Redelivered,
    /// A code check, with its result in `status`.
    Check,
    /// A fraud screen decision on a send (`reason` is the rule).
    Fraud,
    /// A reviewer's decision on an `In Review` verification.
    Review,
    /// The verification reached its validity end without approval.
    Expired,
    /// The verification expired without any check.
    Abandoned,
}

/// One event of a verification's lifecycle. Never carries a code.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct LifecycleEntry {
    pub event: LifecycleEvent,
    /// ISO 8601 time of the event.
    pub at: String,
    /// Lowercase channel (`sms`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider_message_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub price: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub currency: Option<String>,
    /// The result: a check's status, a receipt's delivery status, a review's decision.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    /// The risk, rule or failure behind it, or a reviewer's reason.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The API request that caused it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
}

impl LifecycleEntry {
    pub fn new(event: LifecycleEvent, at: Millis) -> Self {
        LifecycleEntry {
            event,
            at: crate::clock::iso8601(at),
            channel: None,
            provider: None,
            provider_message_id: None,
            price: None,
            currency: None,
            status: None,
            reason: None,
            request_id: None,
        }
    }

    fn encode(&self) -> Result<String, StoreError> {
        serde_json::to_string(self).map_err(|e| StoreError::Corrupt(format!("lifecycle: {e}")))
    }

    pub(super) fn decode(s: &str) -> Result<Self, StoreError> {
        serde_json::from_str(s).map_err(|_| StoreError::Corrupt("lifecycle entry".into()))
    }
}

/// What events and answers repeat about a verification.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RecordHead {
    /// E.164.
    pub phone_number: String,
    pub vendor_data: Option<String>,
    /// The caller's opaque JSON object, as text.
    pub metadata: Option<String>,
}

/// A stored verification record.
#[derive(Clone, Debug, PartialEq)]
pub struct VerificationRecord {
    pub verification_id: String,
    pub head: RecordHead,
    /// Wire status: `Not Finished`, `Approved`, `Declined`, `In Review` (or a terminal status
    /// another writer set, such as `Expired`).
    pub status: String,
    pub created_at: Millis,
    /// The channel of the newest code.
    pub channel: Option<String>,
    /// Checks made.
    pub attempts: u32,
    pub verified_at: Option<Millis>,
    pub lifecycle: Vec<LifecycleEntry>,
}

/// Input of [`Store::create_record`].
#[derive(Clone, Debug)]
pub struct NewRecord<'a> {
    pub verification_id: &'a str,
    pub head: &'a RecordHead,
    pub now: Millis,
    /// How long the record (and its lifecycle) is kept.
    pub ttl_ms: i64,
}

/// Input of [`Store::update_record`].
#[derive(Clone, Debug)]
pub struct RecordUpdate<'a> {
    pub now: Millis,
    /// The record's new wire status, when it changes.
    pub status: Option<&'a str>,
    /// The entry counts as a check.
    pub check: bool,
    /// The channel of a new code.
    pub channel: Option<&'a str>,
    pub entry: &'a LifecycleEntry,
}

/// What [`Store::review_record`] decided.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Review {
    /// Resolved; the record's head (for the event).
    Resolved(RecordHead),
    /// No such record for this application (never existed, expired or deleted).
    NotFound,
    /// The record is not `In Review`: its current status.
    NotInReview(String),
}

/// What [`Store::claim_idempotency`] found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Claim {
    /// Nobody used the key: the caller owns it and must complete or abandon it.
    Claimed,
    /// The key's first request finished with this answer.
    Done(String),
    /// The key's first request is still running.
    Pending,
    /// The key was used with another request body.
    Mismatch,
}

/// What [`Store::delete_number`] removed.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Deletion {
    /// Verification records (with their lifecycles).
    pub verifications: u32,
    /// Stored answers of idempotent sends to the number.
    pub idempotency_records: u32,
    /// References of delivered messages kept for delivery receipts.
    pub delivery_references: u32,
    /// The live limit state: pending codes, the resend window, the verified-for index.
    pub limit_state: bool,
    /// The number was on the application's blocklist (it is no longer).
    pub blocklist_entry: bool,
}

impl Store {
    /// Opens the record of a verification a send is about to start: `Not Finished`, no
    /// channel yet, an empty lifecycle (the send's outcome is appended by
    /// [`Store::update_record`]).
    pub async fn create_record(
        &self,
        app: &str,
        key: &NumberKey,
        record: NewRecord<'_>,
    ) -> Result<(), StoreError> {
        match self {
            Store::Memory(m) => {
                m.records().create(app, key, &record);
                Ok(())
            }
            Store::Redis(r) => r.create_record(app, &record).await,
        }
    }

    /// Removes a record opened for a send that reached nobody and was given back: its
    /// verification no longer exists and no client was told its id.
    pub async fn discard_record(&self, app: &str, verification_id: &str) -> Result<(), StoreError> {
        match self {
            Store::Memory(m) => {
                m.records().discard(app, verification_id);
                Ok(())
            }
            Store::Redis(r) => r.discard_record(app, verification_id).await,
        }
    }

    /// Appends `update.entry` to a record's lifecycle and applies its status, attempt count
    /// and channel. `None` when the record does not exist (expired or deleted).
    pub async fn update_record(
        &self,
        app: &str,
        verification_id: &str,
        update: RecordUpdate<'_>,
    ) -> Result<Option<RecordHead>, StoreError> {
        match self {
            Store::Memory(m) => Ok(m.records().update(app, verification_id, &update)),
            Store::Redis(r) => {
                let entry = update.entry.encode()?;
                r.update_record(app, verification_id, &update, &entry).await
            }
        }
    }

    /// Appends one entry to a verification's lifecycle (any writer: receipts, the expiry
    /// sweep). `None` when the record does not exist.
    pub async fn append_lifecycle(
        &self,
        app: &str,
        verification_id: &str,
        entry: &LifecycleEntry,
        now: Millis,
    ) -> Result<Option<RecordHead>, StoreError> {
        self.update_record(
            app,
            verification_id,
            RecordUpdate {
                now,
                status: None,
                check: false,
                channel: None,
                entry,
            },
        )
        .await
    }

    /// Resolves an `In Review` record to `status` (`Approved` or `Declined`), appending
    /// `entry`, in one atomic step: two reviewers cannot both decide.
    pub async fn review_record(
        &self,
        app: &str,
        verification_id: &str,
        status: &str,
        entry: &LifecycleEntry,
        now: Millis,
    ) -> Result<Review, StoreError> {
        let encoded = entry.encode()?;
        match self {
            Store::Memory(m) => Ok(m.records().review(app, verification_id, status, entry, now)),
            Store::Redis(r) => {
                r.review_record(app, verification_id, status, &encoded, now)
                    .await
            }
        }
    }

    /// A record of `app`, lifecycle included.
    pub async fn record(
        &self,
        app: &str,
        verification_id: &str,
        now: Millis,
    ) -> Result<Option<VerificationRecord>, StoreError> {
        match self {
            Store::Memory(m) => Ok(m.records().get(app, verification_id, now)),
            Store::Redis(r) => r.record(app, verification_id).await,
        }
    }

    /// The newest verification of a number that still has a record.
    pub async fn latest_record_id(
        &self,
        key: &NumberKey,
        now: Millis,
    ) -> Result<Option<String>, StoreError> {
        match self {
            Store::Memory(m) => Ok(m.records().latest(key, now)),
            Store::Redis(r) => r.latest_record_id(key, now).await,
        }
    }

    /// Claims an idempotency key of `app` for a request whose body hashes to `fingerprint`.
    /// A claim is held `lease_ms` (a crashed holder frees it then).
    pub async fn claim_idempotency(
        &self,
        app: &str,
        key: &str,
        fingerprint: &str,
        now: Millis,
        lease_ms: i64,
    ) -> Result<Claim, StoreError> {
        match self {
            Store::Memory(m) => Ok(m.records().claim(app, key, fingerprint, now, lease_ms)),
            Store::Redis(r) => r.claim_idempotency(app, key, fingerprint, lease_ms).await,
        }
    }

    /// Stores the answer of a claimed key for `ttl_ms`, indexed under the number it named.
    pub async fn complete_idempotency(
        &self,
        app: &str,
        key: &str,
        number: Option<&NumberKey>,
        answer: &str,
        now: Millis,
        ttl_ms: i64,
    ) -> Result<(), StoreError> {
        match self {
            Store::Memory(m) => {
                m.records().complete(app, key, number, answer, now, ttl_ms);
                Ok(())
            }
            Store::Redis(r) => {
                r.complete_idempotency(app, key, number, answer, ttl_ms)
                    .await
            }
        }
    }

    /// Frees a claimed key whose request failed, so that a retry can run it again.
    pub async fn abandon_idempotency(&self, app: &str, key: &str) -> Result<(), StoreError> {
        match self {
            Store::Memory(m) => {
                m.records().abandon(app, key);
                Ok(())
            }
            Store::Redis(r) => r.abandon_idempotency(app, key).await,
        }
    }

    /// Removes everything the store holds about a number for one application: its limit
    /// state, its verification records, the stored answers of idempotent sends to it, the
    /// references of its delivered messages and its blocklist entry.
    pub async fn delete_number(&self, key: &NumberKey) -> Result<Deletion, StoreError> {
        match self {
            Store::Memory(m) => Ok(m.delete_number(key)),
            Store::Redis(r) => r.delete_number(key).await,
        }
    }
}
