//! Delivery failures, classified once at the provider boundary. The router reads only the
//! class, never a raw HTTP status or provider code.

use std::fmt;
use std::time::Duration;

/// What the router should do after a failed delivery attempt.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureClass {
    /// Try the same route again after a pause (rate limit, 5xx, timeout).
    Transient,
    /// This route cannot reach the number (not on WhatsApp, unreachable handset): next route.
    Fallback,
    /// The number itself is bad (invalid, opted out): stop the whole send.
    Permanent,
    /// Our side is misconfigured (credentials, permissions, balance): skip this provider, alert.
    Config,
    /// The provider refused the number as fraud (its SMS-pumping protection): stop the whole
    /// send as `Blocked` with `HIGH_RISK_PHONE_NUMBER`; never a reason to try another provider.
    Fraud,
}

impl FailureClass {
    pub const fn as_str(self) -> &'static str {
        match self {
            FailureClass::Transient => "transient",
            FailureClass::Fallback => "fallback",
            FailureClass::Permanent => "permanent",
            FailureClass::Config => "config",
            FailureClass::Fraud => "fraud",
        }
    }
}

impl fmt::Display for FailureClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A failed delivery attempt: its class, the provider's own error code, a message that carries
/// no secret and no code, and the pause the provider asked for.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{provider}: {class} failure{}: {message}", code.as_ref().map(|c| format!(" (code {c})")).unwrap_or_default())]
pub struct DeliveryError {
    pub class: FailureClass,
    /// Name of the provider that failed.
    pub provider: String,
    /// The provider's own error code (`21211`, `131026`, `PHONE_NUMBER_INVALID`), when it gave one.
    pub code: Option<String>,
    /// A short human-readable reason, already redacted.
    pub message: String,
    /// `Retry-After` as the provider sent it.
    pub retry_after: Option<Duration>,
    /// The provider may have accepted the message although the attempt failed (timeout,
    /// connection lost after the request was written, a 5xx without a documented "not
    /// accepted" meaning). The engine then counts the send as possibly delivered: it keeps its
    /// place in the resend window and its code stays valid.
    pub outcome_unknown: bool,
}

impl DeliveryError {
    pub fn new(
        class: FailureClass,
        provider: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        DeliveryError {
            class,
            provider: provider.into(),
            code: None,
            message: message.into(),
            retry_after: None,
            outcome_unknown: false,
        }
    }

    pub fn transient(provider: impl Into<String>, message: impl Into<String>) -> Self {
        Self::new(FailureClass::Transient, provider, message)
    }

    pub fn fallback(provider: impl Into<String>, message: impl Into<String>) -> Self {
        Self::new(FailureClass::Fallback, provider, message)
    }

    pub fn permanent(provider: impl Into<String>, message: impl Into<String>) -> Self {
        Self::new(FailureClass::Permanent, provider, message)
    }

    pub fn config(provider: impl Into<String>, message: impl Into<String>) -> Self {
        Self::new(FailureClass::Config, provider, message)
    }

    pub fn fraud(provider: impl Into<String>, message: impl Into<String>) -> Self {
        Self::new(FailureClass::Fraud, provider, message)
    }

    /// Marks the attempt as one the provider may have accepted (see `outcome_unknown`).
    pub fn outcome_unknown(mut self) -> Self {
        self.outcome_unknown = true;
        self
    }

    /// Attaches the provider's own error code.
    pub fn with_code(mut self, code: impl Into<String>) -> Self {
        self.code = Some(code.into());
        self
    }

    /// Attaches the pause the provider asked for.
    pub fn with_retry_after(mut self, after: Duration) -> Self {
        self.retry_after = Some(after);
        self
    }

    pub fn is_transient(&self) -> bool {
        self.class == FailureClass::Transient
    }

    pub fn is_fallback(&self) -> bool {
        self.class == FailureClass::Fallback
    }

    pub fn is_permanent(&self) -> bool {
        self.class == FailureClass::Permanent
    }

    pub fn is_config(&self) -> bool {
        self.class == FailureClass::Config
    }

    pub fn is_fraud(&self) -> bool {
        self.class == FailureClass::Fraud
    }

    /// True when the message may have been delivered despite this error.
    pub fn may_have_been_delivered(&self) -> bool {
        self.outcome_unknown
    }
}
