//! Events: what the engine tells the outside world when a verification changes status or a
//! delivery is reported. The sidecar turns them into signed outbound webhooks; a library user
//! can subscribe with [`crate::EngineBuilder::on_event`]. Emitting never blocks a send or a
//! check: the sink must hand the event off (queue it) and return.

use std::sync::Arc;

use serde::Serialize;
use switchboard_providers::{Channel, ReceiptStatus};

use crate::report::VerificationStatus;

/// What happened.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
pub enum EventKind {
    /// A new verification started: its first code was sent.
    #[serde(rename = "verification.started")]
    Started,
    /// A code was re-sent inside a pending verification.
    #[serde(rename = "verification.resent")]
    Resent,
    #[serde(rename = "verification.approved")]
    Approved,
    #[serde(rename = "verification.declined")]
    Declined,
    #[serde(rename = "verification.review_started")]
    ReviewStarted,
    /// A verification reached the end of its validity without approval, after at least one
    /// check (status `Expired`).
    #[serde(rename = "verification.expired")]
    Expired,
    /// A verification reached the end of its validity without any check: the user never came
    /// back (status `Abandoned`).
    #[serde(rename = "verification.abandoned")]
    Abandoned,
    /// A send reached nobody: every route failed.
    #[serde(rename = "delivery.undeliverable")]
    Undeliverable,
    /// A provider reported the message's delivery status.
    #[serde(rename = "delivery.status")]
    DeliveryStatus,
    /// The fraud screen refused a send (`fraud` says which rule, key and figure).
    #[serde(rename = "fraud.blocked")]
    FraudBlocked,
    /// Shadow mode: the fraud screen would have refused this send; it went out.
    #[serde(rename = "fraud.would_block")]
    FraudWouldBlock,
    /// A hosted session was created (`Not Started`).
    #[serde(rename = "session.created")]
    SessionCreated,
    /// The session's first code went out (`In Progress`).
    #[serde(rename = "session.in_progress")]
    SessionInProgress,
    #[serde(rename = "session.approved")]
    SessionApproved,
    #[serde(rename = "session.declined")]
    SessionDeclined,
    #[serde(rename = "session.in_review")]
    SessionInReview,
    /// The session's verification ended without any check.
    #[serde(rename = "session.abandoned")]
    SessionAbandoned,
    /// The session's verification expired, or the session did before one started.
    #[serde(rename = "session.expired")]
    SessionExpired,
}

impl EventKind {
    /// Every event, in the order the documentation lists them.
    pub const ALL: [EventKind; 18] = [
        EventKind::Started,
        EventKind::Resent,
        EventKind::Approved,
        EventKind::Declined,
        EventKind::ReviewStarted,
        EventKind::Expired,
        EventKind::Abandoned,
        EventKind::Undeliverable,
        EventKind::DeliveryStatus,
        EventKind::FraudBlocked,
        EventKind::FraudWouldBlock,
        EventKind::SessionCreated,
        EventKind::SessionInProgress,
        EventKind::SessionApproved,
        EventKind::SessionDeclined,
        EventKind::SessionInReview,
        EventKind::SessionAbandoned,
        EventKind::SessionExpired,
    ];

    /// The wire name (`verification.approved`).
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Started => "verification.started",
            EventKind::Resent => "verification.resent",
            EventKind::Approved => "verification.approved",
            EventKind::Declined => "verification.declined",
            EventKind::ReviewStarted => "verification.review_started",
            EventKind::Expired => "verification.expired",
            EventKind::Abandoned => "verification.abandoned",
            EventKind::Undeliverable => "delivery.undeliverable",
            EventKind::DeliveryStatus => "delivery.status",
            EventKind::FraudBlocked => "fraud.blocked",
            EventKind::FraudWouldBlock => "fraud.would_block",
            EventKind::SessionCreated => "session.created",
            EventKind::SessionInProgress => "session.in_progress",
            EventKind::SessionApproved => "session.approved",
            EventKind::SessionDeclined => "session.declined",
            EventKind::SessionInReview => "session.in_review",
            EventKind::SessionAbandoned => "session.abandoned",
            EventKind::SessionExpired => "session.expired",
        }
    }
}

/// One event. Carries no code and no secret.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Event {
    pub event: EventKind,
    /// Unique id of this event (receivers deduplicate retried deliveries with it).
    pub event_id: String,
    /// ISO 8601 time the event happened.
    pub created_at: String,
    /// The application; empty for delivery reports, which a provider sends per account.
    pub app: String,
    /// The request that caused it (empty for provider reports).
    pub request_id: String,
    /// The verification it belongs to (stable across its sends, checks and review); absent
    /// for events of no verification (a send refused before one was opened, an unknown
    /// message's receipt).
    pub verification_id: Option<String>,
    /// The caller's `vendor_data` of the verification.
    pub vendor_data: Option<String>,
    /// The caller's `metadata` object of the verification, as it was sent.
    pub metadata: Option<serde_json::Value>,
    /// E.164; empty when the provider's report does not carry it.
    pub phone_number: String,
    /// Overall verification status after the event.
    pub status: Option<VerificationStatus>,
    pub channel: Option<Channel>,
    pub provider: Option<String>,
    pub provider_message_id: Option<String>,
    pub delivery_status: Option<ReceiptStatus>,
    /// The risk or failure code behind a decline or a failed delivery.
    pub reason: Option<String>,
    /// Fraud events: the rule, the key and the figure that tripped it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fraud: Option<crate::fraud::Figure>,
    /// `verification.started` / `verification.resent`: why the route was chosen (strategy,
    /// score, evidence).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub routing: Option<crate::routing::ledger::RouteChoice>,
    /// `session.*` events: the hosted session.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub session_id: Option<String>,
    /// `session.*` events: the session's status after the event.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub session_status: Option<crate::hosted::SessionStatus>,
}

/// Receives events. Must return quickly: queue, do not send.
pub type EventSink = Arc<dyn Fn(Event) + Send + Sync>;
