//! Delivery receipts: what a provider tells us later, on its own callback, about a message it
//! accepted. Each provider verifies its own signature scheme and parses its own shape into one
//! common [`DeliveryReceipt`].

use std::fmt;
use std::time::SystemTime;

use crate::FailureClass;

/// Where a message stands, as the provider reported it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ReceiptStatus {
    /// Accepted and waiting at the provider.
    Queued,
    /// Handed to the carrier / the messaging network.
    Sent,
    /// On the handset (for a call: answered).
    Delivered,
    /// Opened by the user (messaging apps only).
    Read,
    /// Never reached the user; [`DeliveryReceipt::failure`] says why.
    Failed,
    /// The provider stopped trying when the validity ran out.
    Expired,
}

/// Why a message failed, classified like a send-time [`crate::DeliveryError`].
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct ReceiptFailure {
    pub class: FailureClass,
    /// The provider's own error code (`30003`, `131026`, `busy`), when it gave one.
    pub code: Option<String>,
}

/// One status report about one message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeliveryReceipt {
    /// Name of the provider that reported it.
    pub provider: String,
    /// The id the provider returned from `send` ([`crate::Delivery::provider_message_id`]).
    pub provider_message_id: String,
    pub status: ReceiptStatus,
    /// Set when `status` is [`ReceiptStatus::Failed`] (or `Expired`, when the provider says why).
    pub failure: Option<ReceiptFailure>,
    /// When the provider says it happened; the time the callback was received otherwise.
    pub at: SystemTime,
}

/// A callback as the provider made it, handed over by whatever HTTP server received it.
#[derive(Clone)]
pub struct InboundRequest {
    /// `POST`, `GET`.
    pub method: String,
    /// The full URL exactly as the provider called it (scheme, host, port, path and query):
    /// Twilio signs it. Behind a proxy, rebuild it from the public address, not the local one.
    pub url: String,
    /// Header names in any case.
    pub headers: Vec<(String, String)>,
    /// The raw body, byte for byte (Meta signs it).
    pub body: Vec<u8>,
    /// The query string of `url`, decoded.
    pub query: Vec<(String, String)>,
    /// When the callback arrived, from the receiver's clock; used for freshness windows and as
    /// the receipt time when the provider gives none.
    pub received_at: SystemTime,
}

impl InboundRequest {
    /// A request; `query` is decoded from `url`.
    pub fn new(
        method: impl Into<String>,
        url: impl Into<String>,
        headers: Vec<(String, String)>,
        body: impl Into<Vec<u8>>,
        received_at: SystemTime,
    ) -> Self {
        let url = url.into();
        let query = url
            .split_once('?')
            .map(|(_, q)| q.split('#').next().unwrap_or_default())
            .map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect())
            .unwrap_or_default();
        InboundRequest {
            method: method.into(),
            url,
            headers,
            body: body.into(),
            query,
            received_at,
        }
    }

    /// The first header named `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The first query parameter named `name`.
    pub fn query_param(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The header that carries a callback's proof (signature, token, secret); a missing one is
    /// [`ReceiptError::BadSignature`].
    #[cfg(feature = "http")]
    #[cfg_attr(
        not(any(
            feature = "twilio",
            feature = "meta_whatsapp",
            feature = "telegram",
            feature = "infobip"
        )),
        allow(dead_code)
    )]
    pub(crate) fn proof_header(&self, name: &str) -> Result<&str, ReceiptError> {
        self.header(name).ok_or(ReceiptError::BadSignature)
    }

    pub fn is_post(&self) -> bool {
        self.method.eq_ignore_ascii_case("POST")
    }

    pub fn is_get(&self) -> bool {
        self.method.eq_ignore_ascii_case("GET")
    }
}

impl fmt::Debug for InboundRequest {
    /// Method and sizes only: bodies carry phone numbers and the URL may carry tokens.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InboundRequest")
            .field("method", &self.method)
            .field("headers", &self.headers.len())
            .field("body_bytes", &self.body.len())
            .finish_non_exhaustive()
    }
}

/// The configured secret that verifies a provider's callbacks; without one the provider takes
/// none ([`ReceiptError::Unsupported`]).
#[cfg_attr(
    not(any(feature = "meta_whatsapp", feature = "vonage", feature = "infobip")),
    allow(dead_code)
)]
pub(crate) fn verifying_secret(secret: Option<&crate::Secret>) -> Result<&str, ReceiptError> {
    secret
        .map(crate::Secret::expose)
        .ok_or(ReceiptError::Unsupported)
}

/// Why a callback was refused. Nothing is recorded for a refused callback.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ReceiptError {
    /// The signature is missing or wrong (checked before anything is parsed).
    #[error("receipt signature missing or invalid")]
    BadSignature,
    /// The signed timestamp is outside the freshness window.
    #[error("receipt timestamp outside the accepted window")]
    Stale,
    /// Signed, but not a shape this provider sends.
    #[error("malformed receipt: {0}")]
    Malformed(&'static str),
    /// This provider does not take callbacks (or is not configured to verify them).
    #[error("this provider does not accept delivery receipts")]
    Unsupported,
    /// The callback carries no proof although this provider is set up to sign its callbacks
    /// (its signing is off at the provider's side, or not yet on). Not a forgery to refuse for
    /// good: answer with a 5xx so the provider retries, and the receipt is not lost once the
    /// signing is fixed.
    #[error("receipt is unsigned; the provider should retry once its signing is set up")]
    Unverifiable,
}
