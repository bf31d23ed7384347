//! Verifications as records: every send that opens a verification writes its record
//! (`vendor_data`, `metadata`, status) and every later event of it appends to its lifecycle.
//! A record is fetched by `verification_id` (or by number: the newest), an `In Review` one is
//! resolved by a reviewer's decision, and a number's records are deleted on request. The
//! store keeps them per application (module `store::records`).

use serde::Serialize;
use serde_json::Value;

use super::{Engine, EventExtra, new_request_id};
use crate::clock::Millis;
use crate::error::Error;
use crate::events::EventKind;
use crate::fraud::Verdict as FraudVerdict;
use crate::report::{
    CheckOutcome, CheckStatus, PhoneReport, SendOutcome, SendStatus, VerificationStatus,
};
use crate::store::{
    CheckResult, CheckVerdict, Deletion, LifecycleEntry, LifecycleEvent, NewRecord, NumberKey,
    RecordHead, RecordUpdate, Review, Store, StoreError,
};

/// Largest `metadata` accepted, serialised as compact JSON.
pub const MAX_METADATA: usize = 2048;
/// Longest reviewer's `reason` accepted.
const MAX_REASON: usize = 1024;

/// How long a record update the store failed is retried in the background.
const RECORD_RETRY_FOR: std::time::Duration = std::time::Duration::from_secs(30);

/// One later write of a verification's record (a send's outcome, a check), owned so that it
/// can be retried off the request path.
struct RecordWrite {
    app: String,
    id: String,
    now: Millis,
    status: Option<&'static str>,
    check: bool,
    channel: Option<String>,
    entry: LifecycleEntry,
}

impl RecordWrite {
    /// The record's head once written; `None` when the record does not exist.
    async fn apply(&self, store: &Store) -> Result<Option<RecordHead>, StoreError> {
        store
            .update_record(
                &self.app,
                &self.id,
                RecordUpdate {
                    now: self.now,
                    status: self.status,
                    check: self.check,
                    channel: self.channel.as_deref(),
                    entry: &self.entry,
                },
            )
            .await
    }
}

/// What the caller gave a send to keep with its verification.
pub(super) struct Given {
    pub vendor_data: Option<String>,
    pub metadata: Option<Value>,
}

/// The verification an answer or event belongs to, and what it repeats of it.
#[derive(Clone, Debug, Default)]
pub(super) struct Linked {
    pub id: Option<String>,
    pub vendor_data: Option<String>,
    pub metadata: Option<Value>,
}

impl Linked {
    fn from_head(id: &str, head: RecordHead) -> Self {
        Linked {
            id: Some(id.to_owned()),
            vendor_data: head.vendor_data,
            metadata: head.metadata.and_then(|m| serde_json::from_str(&m).ok()),
        }
    }
}

/// A reviewer's decision on an `In Review` verification.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    Approved,
    Declined,
}

impl Verdict {
    fn status(self) -> VerificationStatus {
        match self {
            Verdict::Approved => VerificationStatus::Approved,
            Verdict::Declined => VerificationStatus::Declined,
        }
    }
}

/// A verification as `GET /v3/phone/verifications/{verification_id}/` answers it.
#[derive(Clone, Debug, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Verification {
    pub verification_id: String,
    /// `Not Finished`, `Approved`, `Declined` or `In Review` (a reviewer's decision replaces
    /// `In Review`).
    pub status: String,
    /// E.164.
    pub phone_number: String,
    pub vendor_data: Option<String>,
    /// The caller's object, as the first send gave it.
    #[schema(value_type = Option<Object>)]
    pub metadata: Option<Value>,
    /// ISO 8601 time of the first send.
    pub created_at: String,
    /// The phone report: the line, its risks, and this verification's channel, attempts and
    /// approval time.
    pub phone: PhoneReport,
    /// What happened to it, oldest first (at most the newest 64 entries).
    pub lifecycle: Vec<LifecycleEntry>,
}

/// Refuses a `metadata` that is not a JSON object or is larger than [`MAX_METADATA`].
pub(crate) fn check_metadata(metadata: Option<&Value>) -> Result<(), Error> {
    let Some(m) = metadata else { return Ok(()) };
    if !m.is_object() {
        return Err(Error::InvalidRequest {
            field: "metadata",
            message: "must be a JSON object".into(),
        });
    }
    if serde_json::to_string(m).map_or(usize::MAX, |s| s.len()) > MAX_METADATA {
        return Err(Error::InvalidRequest {
            field: "metadata",
            message: format!("must be at most {MAX_METADATA} bytes as compact JSON"),
        });
    }
    Ok(())
}

/// A `verification_id` must be a UUID: anything else cannot name a record.
fn check_id(id: &str) -> Result<(), Error> {
    uuid::Uuid::try_parse(id)
        .map(|_| ())
        .map_err(|_| Error::InvalidRequest {
            field: "verification_id",
            message: "must be a UUID".into(),
        })
}

fn not_found() -> Error {
    Error::NotFound("no verification with this id for this application (or it expired)")
}

impl Engine {
    /// Opens the record of the verification a first send is about to start, before any
    /// provider is called: a client told a verification was sent can fetch it by id even when
    /// this process dies right after answering. Nothing is sent when the record cannot be
    /// written; the caller gives the reservation back.
    pub(super) async fn open_record(
        &self,
        key: &NumberKey,
        req: &super::SendRequest,
        verification_id: &str,
        record_ttl_secs: u64,
    ) -> Result<(), StoreError> {
        let head = RecordHead {
            phone_number: key.e164.clone(),
            vendor_data: req.vendor_data.clone(),
            metadata: req.metadata.as_ref().map(Value::to_string),
        };
        self.inner
            .store
            .create_record(
                &key.app,
                key,
                NewRecord {
                    verification_id,
                    head: &head,
                    now: self.now(),
                    ttl_ms: super::secs_ms(record_ttl_secs),
                },
            )
            .await
    }

    /// Writes what a send did to its verification's record (opened by
    /// [`Engine::open_record`]): the first code, a resend, an undeliverable send or the
    /// provider's refusal, and a shadow fraud verdict. Fills the outcome's `vendor_data` and
    /// `metadata` (the first send's).
    pub(super) async fn record_send(
        &self,
        app: &str,
        given: Given,
        outcome: &mut SendOutcome,
    ) -> Option<Linked> {
        let mut linked = Linked {
            id: None,
            vendor_data: given.vendor_data,
            metadata: given.metadata,
        };
        if let Some(id) = outcome.verification_id.clone()
            && let Some(head) = self.write_send(app, &id, outcome).await
        {
            linked = Linked::from_head(&id, head);
        }
        outcome.vendor_data = linked.vendor_data.clone();
        outcome.metadata = linked.metadata.clone();
        Some(linked)
    }

    /// The store writes of [`Engine::record_send`]; the record's head when it exists.
    async fn write_send(&self, app: &str, id: &str, outcome: &SendOutcome) -> Option<RecordHead> {
        let now = self.now();
        let event = match outcome.status {
            SendStatus::Success => LifecycleEvent::Sent,
            SendStatus::Retry => LifecycleEvent::Resent,
            SendStatus::Undeliverable => LifecycleEvent::Undeliverable,
            SendStatus::Blocked => LifecycleEvent::Fraud,
        };
        let mut entry = LifecycleEntry::new(event, now);
        entry.request_id = Some(outcome.request_id.clone());
        entry.reason = outcome.reason.clone();
        if let Some(d) = &outcome.delivered_by {
            entry.channel = Some(d.channel.as_str().to_owned());
            entry.provider = Some(d.provider.clone());
            entry.provider_message_id = Some(d.provider_message_id.clone());
            entry.price = Some(d.price);
            entry.currency = Some(d.currency.clone());
        }
        let write = RecordWrite {
            app: app.to_owned(),
            id: id.to_owned(),
            now,
            status: None,
            check: false,
            channel: entry.channel.clone(),
            entry,
        };
        let written = self.write_record(&outcome.request_id, write).await;
        if let Some(FraudVerdict::WouldBlock(f)) = &outcome.fraud {
            let mut fraud = LifecycleEntry::new(LifecycleEvent::Fraud, now);
            fraud.status = Some("would_block".into());
            fraud.reason = Some(f.rule.as_str().to_owned());
            fraud.request_id = Some(outcome.request_id.clone());
            self.note(app, id, &fraud).await;
        }
        written
    }

    /// Applies one write of a verification's record. The send or check it describes already
    /// happened and its answer names the verification, whose record exists (it is opened
    /// before the first code goes out), so a write the store fails (a failover, a timeout) is
    /// retried off the request path for [`RECORD_RETRY_FOR`] to bring its status and lifecycle
    /// up to date. `None` also when the record is gone (expired or deleted).
    async fn write_record(&self, request_id: &str, write: RecordWrite) -> Option<RecordHead> {
        let e = match write.apply(&self.inner.store).await {
            Ok(head) => return head,
            Err(e) => e,
        };
        tracing::warn!(%request_id, "verification record not updated: {e}; retrying");
        let store = self.inner.store.clone();
        let request_id = request_id.to_owned();
        tokio::spawn(async move {
            let deadline = tokio::time::Instant::now() + RECORD_RETRY_FOR;
            let mut pause = std::time::Duration::from_millis(100);
            let mut last = e;
            while tokio::time::Instant::now() + pause < deadline {
                tokio::time::sleep(pause).await;
                match write.apply(&store).await {
                    Ok(_) => {
                        tracing::info!(%request_id, "verification record updated on retry");
                        return;
                    }
                    Err(e) => last = e,
                }
                pause = (pause * 2).min(std::time::Duration::from_secs(2));
            }
            tracing::warn!(%request_id, "verification record still not updated after {RECORD_RETRY_FOR:?}: {last}");
        });
        None
    }

    /// Appends a check and its result to the record, moves its status when the check decided
    /// it, and fills the outcome's `verification_id`, `vendor_data` and `metadata`.
    pub(super) async fn record_check(
        &self,
        app: &str,
        result: &CheckResult,
        outcome: &mut CheckOutcome,
    ) -> Option<Linked> {
        if outcome.status == CheckStatus::ExpiredOrNotFound {
            return None;
        }
        let id = result.verification.as_ref()?.id.clone();
        outcome.verification_id = Some(id.clone());
        let now = self.now();
        let mut entry = LifecycleEntry::new(LifecycleEvent::Check, now);
        entry.status = Some(outcome.status.as_str().to_owned());
        entry.reason = outcome.reason.clone();
        entry.request_id = Some(outcome.request_id.clone());
        let status = match outcome.status {
            CheckStatus::Approved => Some(VerificationStatus::Approved),
            CheckStatus::InReview => Some(VerificationStatus::InReview),
            CheckStatus::Declined => Some(VerificationStatus::Declined),
            CheckStatus::Failed | CheckStatus::ExpiredOrNotFound => None,
        };
        let counted = !matches!(
            result.verdict,
            CheckVerdict::AlreadyDeclined | CheckVerdict::Blocked
        );
        let write = RecordWrite {
            app: app.to_owned(),
            id: id.clone(),
            now,
            status: status.map(VerificationStatus::as_str),
            check: counted,
            channel: None,
            entry,
        };
        let head = self.write_record(&outcome.request_id, write).await?;
        let linked = Linked::from_head(&id, head);
        outcome.vendor_data = linked.vendor_data.clone();
        outcome.metadata = linked.metadata.clone();
        Some(linked)
    }

    /// Appends `entry` to a record, best effort (receipts, fraud verdicts): what the event of
    /// the same news repeats of the verification.
    pub(super) async fn note(&self, app: &str, id: &str, entry: &LifecycleEntry) -> Option<Linked> {
        match self
            .inner
            .store
            .append_lifecycle(app, id, entry, self.now())
            .await
        {
            Ok(head) => head.map(|h| Linked::from_head(id, h)),
            Err(e) => {
                tracing::warn!(verification = %id, "lifecycle entry not written: {e}");
                None
            }
        }
    }

    /// A verification of the application by its id: status, phone report, `vendor_data`,
    /// `metadata` and lifecycle. Another application's id is not found.
    pub async fn verification(
        &self,
        verification_id: &str,
        app: Option<&str>,
    ) -> Result<Verification, Error> {
        let (app, _) = self.workflow(app)?;
        check_id(verification_id)?;
        let record = self
            .inner
            .store
            .record(app, verification_id, self.now())
            .await?
            .ok_or_else(not_found)?;
        let mut phone = self
            .lookup(
                &record.head.phone_number,
                None,
                record.head.vendor_data.as_deref(),
                Some(app),
            )
            .await?;
        phone.status = match record.status.as_str() {
            "Approved" => VerificationStatus::Approved,
            "Declined" => VerificationStatus::Declined,
            "In Review" => VerificationStatus::InReview,
            _ => VerificationStatus::NotFinished,
        };
        phone.verification_method = record.channel.as_deref().and_then(|c| c.parse().ok());
        phone.verification_attempts = record.attempts;
        phone.verified_at = record.verified_at;
        Ok(Verification {
            verification_id: record.verification_id,
            status: record.status,
            phone_number: record.head.phone_number,
            vendor_data: record.head.vendor_data,
            metadata: record
                .head
                .metadata
                .and_then(|m| serde_json::from_str(&m).ok()),
            created_at: crate::clock::iso8601(record.created_at),
            phone,
            lifecycle: record.lifecycle,
        })
    }

    /// The newest verification of a number that still has a record.
    pub async fn verification_by_number(
        &self,
        phone_number: &str,
        region: Option<&str>,
        app: Option<&str>,
    ) -> Result<Verification, Error> {
        let (app, _) = self.workflow(app)?;
        let info = crate::phone::parse(phone_number, region)?;
        let id = self
            .inner
            .store
            .latest_record_id(&NumberKey::new(app, info.e164), self.now())
            .await?
            .ok_or_else(not_found)?;
        self.verification(&id, Some(app)).await
    }

    /// Resolves an `In Review` verification with a reviewer's decision: its status becomes
    /// `Approved` or `Declined`, the decision joins its lifecycle and the matching
    /// `verification.approved` / `verification.declined` event goes out. Any other state is
    /// refused with [`Error::NotInReview`].
    pub async fn review(
        &self,
        verification_id: &str,
        verdict: Verdict,
        reason: Option<String>,
        app: Option<&str>,
    ) -> Result<Verification, Error> {
        let (app, _) = self.workflow(app)?;
        check_id(verification_id)?;
        if reason.as_ref().is_some_and(|r| r.len() > MAX_REASON) {
            return Err(Error::InvalidRequest {
                field: "reason",
                message: format!("must be at most {MAX_REASON} bytes"),
            });
        }
        let request_id = new_request_id();
        let now = self.now();
        let status = verdict.status();
        let mut entry = LifecycleEntry::new(LifecycleEvent::Review, now);
        entry.status = Some(status.as_str().to_owned());
        entry.reason = reason.clone();
        entry.request_id = Some(request_id.clone());
        let head = match self
            .inner
            .store
            .review_record(app, verification_id, status.as_str(), &entry, now)
            .await?
        {
            Review::Resolved(head) => head,
            Review::NotFound => return Err(not_found()),
            Review::NotInReview(current) => return Err(Error::NotInReview { status: current }),
        };
        tracing::info!(%request_id, verification = %verification_id, status = status.as_str(), "review decided");
        let view = self.verification(verification_id, Some(app)).await?;
        let kind = match verdict {
            Verdict::Approved => EventKind::Approved,
            Verdict::Declined => EventKind::Declined,
        };
        self.emit_with(
            kind,
            app,
            &request_id,
            &view.phone,
            reason,
            EventExtra {
                verification: Some(Linked::from_head(verification_id, head)),
                ..EventExtra::default()
            },
        );
        Ok(view)
    }

    /// Deletes every record of a number for the application: limit state, verification
    /// records and lifecycles, stored answers of idempotent sends, delivery references and its
    /// blocklist entry, and the users hosted sessions approved it for. Returns the number's E.164 form and what was removed. The route ledger
    /// and the fraud counters hold no number (only prefixes, countries and routes), so nothing
    /// of them is touched.
    pub async fn delete_number(
        &self,
        phone_number: &str,
        app: Option<&str>,
    ) -> Result<(String, Deletion), Error> {
        let (app, _) = self.workflow(app)?;
        let info = crate::phone::parse(phone_number, None)?;
        let deletion = self
            .inner
            .store
            .delete_number(&NumberKey::new(app, info.e164.clone()))
            .await?;
        self.forget_session_matches(app, &info.e164).await?;
        tracing::info!(
            verifications = deletion.verifications,
            idempotency_records = deletion.idempotency_records,
            "number's records deleted"
        );
        Ok((info.e164, deletion))
    }
}
