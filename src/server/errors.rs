//! One table maps every stable error code to a gRPC code and an HTTP status. Both APIs read it;
//! nothing else decides a status. Internal errors leave as a bare `INTERNAL` with no detail.

use serde::Serialize;

use crate::Error;

/// An error as both APIs return it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ApiError {
    /// Stable machine code (`INVALID_PHONE_NUMBER`, `phone_provider_unavailable`, ...).
    pub code: &'static str,
    /// Human-readable; never carries a code, a secret or internal detail.
    pub message: String,
    /// Seconds to wait before retrying, for 429 and retryable errors.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry_after: Option<u64>,
}

/// `(code, HTTP status, gRPC code)` for every code the sidecar returns.
pub const TABLE: &[(&str, u16, tonic::Code)] = &[
    ("INVALID_PHONE_NUMBER", 400, tonic::Code::InvalidArgument),
    ("INVALID_REGION", 400, tonic::Code::InvalidArgument),
    ("INVALID_REQUEST", 400, tonic::Code::InvalidArgument),
    ("BATCH_TOO_LARGE", 400, tonic::Code::InvalidArgument),
    ("UNAUTHENTICATED", 401, tonic::Code::Unauthenticated),
    ("BAD_SIGNATURE", 401, tonic::Code::Unauthenticated),
    ("UNKNOWN_APP", 403, tonic::Code::PermissionDenied),
    ("NOT_FOUND", 404, tonic::Code::NotFound),
    ("METHOD_NOT_ALLOWED", 405, tonic::Code::Unimplemented),
    ("URI_TOO_LONG", 414, tonic::Code::InvalidArgument),
    (
        "VERIFICATION_NOT_IN_REVIEW",
        409,
        tonic::Code::FailedPrecondition,
    ),
    ("IDEMPOTENCY_KEY_IN_PROGRESS", 409, tonic::Code::Aborted),
    ("CONFIG_READ_ONLY", 409, tonic::Code::FailedPrecondition),
    ("LIMIT_REACHED", 409, tonic::Code::FailedPrecondition),
    ("CHANNEL_UNAVAILABLE", 422, tonic::Code::FailedPrecondition),
    (
        "IDEMPOTENCY_KEY_REUSED",
        422,
        tonic::Code::FailedPrecondition,
    ),
    ("RESEND_LIMIT_EXCEEDED", 429, tonic::Code::ResourceExhausted),
    ("RESEND_COOLDOWN", 429, tonic::Code::ResourceExhausted),
    ("RATE_LIMITED", 429, tonic::Code::ResourceExhausted),
    (
        "REQUEST_HEADERS_TOO_LARGE",
        431,
        tonic::Code::InvalidArgument,
    ),
    ("INTERNAL", 500, tonic::Code::Internal),
    ("phone_provider_unavailable", 502, tonic::Code::Unavailable),
    ("UNAVAILABLE", 503, tonic::Code::Unavailable),
];

impl ApiError {
    pub fn new(code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            code,
            message: message.into(),
            retry_after: None,
        }
    }

    pub fn with_retry_after(mut self, secs: u64) -> Self {
        self.retry_after = Some(secs);
        self
    }

    pub fn unauthenticated() -> Self {
        Self::new(
            "UNAUTHENTICATED",
            "missing or invalid API key (header x-api-key)",
        )
    }

    pub fn rate_limited(retry_after: u64) -> Self {
        Self::new("RATE_LIMITED", "too many requests; slow down").with_retry_after(retry_after)
    }

    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new("INVALID_REQUEST", message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new("NOT_FOUND", message)
    }

    pub fn internal() -> Self {
        Self::new("INTERNAL", "internal error")
    }

    fn row(&self) -> (u16, tonic::Code) {
        TABLE
            .iter()
            .find(|(c, _, _)| *c == self.code)
            .map(|(_, h, g)| (*h, *g))
            .unwrap_or((500, tonic::Code::Internal))
    }

    /// The HTTP status for this error.
    pub fn http_status(&self) -> u16 {
        self.row().0
    }

    /// The gRPC code for this error.
    pub fn grpc_code(&self) -> tonic::Code {
        self.row().1
    }
}

impl From<&Error> for ApiError {
    fn from(e: &Error) -> Self {
        match e {
            // Detail goes to the log only.
            Error::Internal => {
                tracing::error!("internal error");
                ApiError::internal()
            }
            e => {
                let mut api = ApiError::new(e.code(), e.to_string());
                api.retry_after = e.retry_after_secs();
                api
            }
        }
    }
}

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        ApiError::from(&e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_engine_error_code_has_a_row() {
        let errors = [
            Error::InvalidRequest {
                field: "x",
                message: "y".into(),
            },
            Error::UnknownApp("a".into()),
            Error::ChannelUnavailable {
                channel: switchboard_providers::Channel::Sms,
            },
            Error::RateLimited {
                retry_after_secs: 1,
                cooldown: false,
            },
            Error::RateLimited {
                retry_after_secs: 1,
                cooldown: true,
            },
            Error::ProviderUnavailable,
            Error::NotFound("x"),
            Error::NotInReview {
                status: "Approved".into(),
            },
            Error::IdempotencyKeyReused,
            Error::IdempotencyKeyInProgress,
            Error::ConfigReadOnly("workflow \"default\"".into()),
            Error::LimitReached("x"),
            Error::StoreUnavailable(crate::store::StoreError::Unavailable("x".into())),
            Error::Internal,
        ];
        for e in errors {
            assert!(TABLE.iter().any(|(c, _, _)| *c == e.code()), "{}", e.code());
        }
    }

    #[test]
    fn statuses_follow_the_product_contract() {
        let status = |code| ApiError::new(code, "").http_status();
        assert_eq!(status("INVALID_PHONE_NUMBER"), 400);
        assert_eq!(status("UNAUTHENTICATED"), 401);
        assert_eq!(status("RESEND_LIMIT_EXCEEDED"), 429);
        assert_eq!(status("phone_provider_unavailable"), 502);
        assert_eq!(status("UNAVAILABLE"), 503);
    }

    #[test]
    fn internal_errors_carry_no_detail() {
        let api = ApiError::from(Error::Internal);
        assert_eq!(
            (api.code, api.message.as_str()),
            ("INTERNAL", "internal error")
        );
    }
}
