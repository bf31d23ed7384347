//! Verification records over HTTP: fetch one by id, resolve an `In Review` one, and delete a
//! number's records.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::Response;

use super::types::{ErrorBody, NumberDeletion, ReviewBody, ReviewStatus};
use super::{AppState, Reply, authorize, body, percent_decode, run, split};
use crate::server::errors::ApiError;
use crate::{ReviewVerdict, Verification};

const VERIFICATIONS: &str = "/v3/phone/verifications/";
const NUMBERS: &str = "/v3/phone/numbers/";

/// The path segment after `prefix`, without its trailing `/`, percent-decoded.
pub(super) fn segment(path: &str, prefix: &str, what: &str) -> Result<String, ApiError> {
    let raw = path.strip_prefix(prefix).unwrap_or_default();
    let raw = raw.strip_suffix('/').unwrap_or(raw);
    percent_decode(raw)
        .ok_or_else(|| ApiError::invalid(format!("the {what} in the path is not valid UTF-8")))
}

/// A verification of the calling application: status, phone report, `vendor_data`,
/// `metadata` and its lifecycle.
#[utoipa::path(
    get,
    path = "/v3/phone/verifications/{verification_id}/",
    tag = "phone",
    params(("verification_id" = String, Path, description = "As send and check answered it (a UUID)")),
    security(("api_key" = [])),
    responses(
        (status = 200, description = "The verification and its lifecycle", body = Verification),
        (status = 400, description = "INVALID_REQUEST: the id is not a UUID", body = ErrorBody),
        (status = 401, description = "UNAUTHENTICATED", body = ErrorBody),
        (status = 404, description = "NOT_FOUND: no such verification for this application (or its record expired)", body = ErrorBody),
        (status = 429, description = "RATE_LIMITED", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait"))),
        (status = 503, description = "UNAVAILABLE", body = ErrorBody),
    )
)]
pub(super) async fn get_verification(
    State(state): State<Arc<AppState>>,
    request: Request,
) -> Response {
    run(&state, "get_verification", async {
        let (incoming, _) = split(request);
        let principal = authorize(&state, &incoming)?;
        let id = segment(incoming.uri.path(), VERIFICATIONS, "verification id")?;
        let view = state.engine.verification(&id, Some(&principal.app)).await?;
        Ok(Reply::json(StatusCode::OK, &view, None))
    })
    .await
}

/// Resolves an `In Review` verification: `Approved` or `Declined`, with a reason. The decision
/// joins the lifecycle and `verification.approved` / `verification.declined` goes out.
#[utoipa::path(
    patch,
    path = "/v3/phone/verifications/{verification_id}/",
    tag = "phone",
    request_body = ReviewBody,
    params(("verification_id" = String, Path, description = "As send and check answered it (a UUID)")),
    security(("api_key" = [])),
    responses(
        (status = 200, description = "Resolved: the verification as it now stands", body = Verification),
        (status = 400, description = "INVALID_REQUEST", body = ErrorBody),
        (status = 401, description = "UNAUTHENTICATED", body = ErrorBody),
        (status = 404, description = "NOT_FOUND", body = ErrorBody),
        (status = 409, description = "VERIFICATION_NOT_IN_REVIEW: only an `In Review` verification can be resolved (the message names its status)", body = ErrorBody),
        (status = 429, description = "RATE_LIMITED", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait"))),
        (status = 503, description = "UNAVAILABLE", body = ErrorBody),
    )
)]
pub(super) async fn review_verification(
    State(state): State<Arc<AppState>>,
    request: Request,
) -> Response {
    run(&state, "review_verification", async {
        let (incoming, body) = split(request);
        let principal = authorize(&state, &incoming)?;
        let id = segment(incoming.uri.path(), VERIFICATIONS, "verification id")?;
        let req: ReviewBody = body::json(&incoming.headers, body).await?;
        let verdict = match req.status {
            ReviewStatus::Approved => ReviewVerdict::Approved,
            ReviewStatus::Declined => ReviewVerdict::Declined,
        };
        let view = state
            .engine
            .review(&id, verdict, req.reason, Some(&principal.app))
            .await?;
        Ok(Reply::json(StatusCode::OK, &view, None))
    })
    .await
}

/// Deletes every record of a number for the calling application and says what was removed:
/// verification records and lifecycles, stored idempotent answers, delivery references, the
/// limit state (pending codes, resend window, verified-for index) and its blocklist entry.
#[utoipa::path(
    delete,
    path = "/v3/phone/numbers/{phone_number}/",
    tag = "phone",
    params(("phone_number" = String, Path, description = "E.164; `+` may be written as `%2B`", example = "+34600600600")),
    security(("api_key" = [])),
    responses(
        (status = 200, description = "Deleted (all counts zero when nothing was held)", body = NumberDeletion),
        (status = 400, description = "INVALID_PHONE_NUMBER", body = ErrorBody),
        (status = 401, description = "UNAUTHENTICATED", body = ErrorBody),
        (status = 429, description = "RATE_LIMITED", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait"))),
        (status = 503, description = "UNAVAILABLE", body = ErrorBody),
    )
)]
pub(super) async fn delete_number(
    State(state): State<Arc<AppState>>,
    request: Request,
) -> Response {
    run(&state, "delete_number", async {
        let (incoming, _) = split(request);
        let principal = authorize(&state, &incoming)?;
        let number = segment(incoming.uri.path(), NUMBERS, "phone number")?;
        let (phone_number, removed) = state
            .engine
            .delete_number(&number, Some(&principal.app))
            .await?;
        Ok(Reply::json(
            StatusCode::OK,
            &NumberDeletion {
                phone_number,
                removed,
            },
            None,
        ))
    })
    .await
}
