//! The engine's errors, each with a stable machine code. The sidecar maps codes to gRPC and
//! HTTP statuses in one table; messages never carry a code, a secret or internal detail.

use crate::phone::PhoneError;
use crate::store::StoreError;

/// An engine error.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The phone number (or its default region) is not valid.
    #[error(transparent)]
    InvalidPhone(#[from] PhoneError),
    /// A request field is out of range.
    #[error("invalid `{field}`: {message}")]
    InvalidRequest {
        field: &'static str,
        message: String,
    },
    /// The request names an application the configuration does not know.
    #[error("unknown application {0:?}")]
    UnknownApp(String),
    /// The pinned channel cannot reach this number (line type or route table).
    #[error("channel {channel} cannot reach this number")]
    ChannelUnavailable {
        channel: switchboard_providers::Channel,
    },
    /// The resend budget or cooldown is spent; retry after the given seconds.
    #[error("too many codes sent to this number; retry in {retry_after_secs} s")]
    RateLimited {
        retry_after_secs: u64,
        cooldown: bool,
    },
    /// Every provider failed for reasons of their own (outage, rate limit, credentials):
    /// retryable, and says nothing about the number.
    #[error("phone providers are unavailable; retry later")]
    ProviderUnavailable,
    /// The state store cannot be reached: nothing was sent and nothing approved.
    #[error("verification state is unavailable; retry later")]
    StoreUnavailable(#[source] StoreError),
    /// The thing asked for does not exist for this application (or expired).
    #[error("{0}")]
    NotFound(&'static str),
    /// A review decision on a verification that is not `In Review`.
    #[error(
        "the verification is {status:?}, not \"In Review\": only an In Review verification can be resolved"
    )]
    NotInReview { status: String },
    /// An `Idempotency-Key` reused with a different request body.
    #[error("this Idempotency-Key was used with a different request body; use a new key")]
    IdempotencyKeyReused,
    /// The first request with this `Idempotency-Key` is still running.
    #[error("the first request with this Idempotency-Key is still running; retry shortly")]
    IdempotencyKeyInProgress,
    /// Something the configuration defines (a workflow, a webhook destination) changed
    /// through the API, where it is read-only.
    #[error("{0} is defined in the configuration and is read-only through the API")]
    ConfigReadOnly(String),
    /// The application holds as many of something (workflows, webhook destinations) as it
    /// may; delete one first.
    #[error("{0}")]
    LimitReached(&'static str),
    /// A bug or an impossible state; details go to the log only.
    #[error("internal error")]
    Internal,
}

impl Error {
    /// The stable machine code.
    pub fn code(&self) -> &'static str {
        match self {
            Error::InvalidPhone(e) => e.code(),
            Error::InvalidRequest { .. } => "INVALID_REQUEST",
            Error::UnknownApp(_) => "UNKNOWN_APP",
            Error::ChannelUnavailable { .. } => "CHANNEL_UNAVAILABLE",
            Error::RateLimited {
                cooldown: false, ..
            } => "RESEND_LIMIT_EXCEEDED",
            Error::RateLimited { cooldown: true, .. } => "RESEND_COOLDOWN",
            Error::ProviderUnavailable => "phone_provider_unavailable",
            Error::StoreUnavailable(_) => "UNAVAILABLE",
            Error::NotFound(_) => "NOT_FOUND",
            Error::NotInReview { .. } => "VERIFICATION_NOT_IN_REVIEW",
            Error::IdempotencyKeyReused => "IDEMPOTENCY_KEY_REUSED",
            Error::IdempotencyKeyInProgress => "IDEMPOTENCY_KEY_IN_PROGRESS",
            Error::ConfigReadOnly(_) => "CONFIG_READ_ONLY",
            Error::LimitReached(_) => "LIMIT_REACHED",
            Error::Internal => "INTERNAL",
        }
    }

    /// True when the same request may succeed later.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            Error::RateLimited { .. }
                | Error::ProviderUnavailable
                | Error::StoreUnavailable(_)
                | Error::IdempotencyKeyInProgress
        )
    }

    /// Seconds to wait before retrying, when known.
    pub fn retry_after_secs(&self) -> Option<u64> {
        match self {
            Error::RateLimited {
                retry_after_secs, ..
            } => Some(*retry_after_secs),
            Error::IdempotencyKeyInProgress => Some(1),
            _ => None,
        }
    }
}

impl From<StoreError> for Error {
    fn from(e: StoreError) -> Self {
        tracing::error!(error = %e, "state store failure");
        Error::StoreUnavailable(e)
    }
}
