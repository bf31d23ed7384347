//! Verification records over gRPC: fetch (by id or by number), review, deletion, and the
//! idempotent send's stored answer.

use base64::Engine as _;
use prost::Message as _;
use sha2::Digest as _;

use super::{pb, phone_report};
use crate::server::errors::ApiError;
use crate::store::LifecycleEntry;
use crate::{Engine, Error, IdempotentSend, ReviewVerdict, SendOutcome, Verification};

/// The metadata entry that makes a send idempotent.
pub const IDEMPOTENCY_KEY_METADATA: &str = "idempotency-key";

fn status_of(status: &str) -> pb::VerificationStatus {
    match status {
        "Approved" => pb::VerificationStatus::Approved,
        "Declined" => pb::VerificationStatus::Declined,
        "In Review" => pb::VerificationStatus::InReview,
        "Expired" => pb::VerificationStatus::Expired,
        "Abandoned" => pb::VerificationStatus::Abandoned,
        _ => pb::VerificationStatus::NotFinished,
    }
}

fn entry(e: LifecycleEntry) -> pb::LifecycleEntry {
    pb::LifecycleEntry {
        event: serde_json::to_value(e.event)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default(),
        at: e.at,
        channel: e.channel,
        provider: e.provider,
        provider_message_id: e.provider_message_id,
        price: e.price,
        currency: e.currency,
        status: e.status,
        reason: e.reason,
        request_id: e.request_id,
    }
}

/// The answer of GetVerification and ReviewVerification for a record.
pub fn verification_response(v: Verification) -> pb::GetVerificationResponse {
    pb::GetVerificationResponse {
        status: status_of(&v.status).into(),
        status_text: v.status,
        phone: Some(phone_report(v.phone)),
        verification_id: Some(v.verification_id),
        vendor_data: v.vendor_data,
        metadata: v.metadata.map(|m| m.to_string()),
        created_at: Some(v.created_at),
        lifecycle: v.lifecycle.into_iter().map(entry).collect(),
    }
}

/// GetVerification: by id, or by number (its newest record, else its live state).
pub async fn get(
    engine: &Engine,
    app: &str,
    req: pb::GetVerificationRequest,
) -> Result<pb::GetVerificationResponse, ApiError> {
    if let Some(id) = req.verification_id.filter(|id| !id.is_empty()) {
        return Ok(verification_response(
            engine.verification(&id, Some(app)).await?,
        ));
    }
    match engine
        .verification_by_number(&req.phone_number, req.region.as_deref(), Some(app))
        .await
    {
        Ok(v) => return Ok(verification_response(v)),
        Err(Error::NotFound(_)) => {}
        Err(e) => return Err(e.into()),
    }
    let report = engine
        .lookup(
            &req.phone_number,
            req.region.as_deref(),
            req.vendor_data.as_deref(),
            Some(app),
        )
        .await?;
    Ok(pb::GetVerificationResponse {
        status: status_of(report.status.as_str()).into(),
        status_text: report.status.as_str().to_owned(),
        phone: Some(phone_report(report)),
        ..Default::default()
    })
}

pub async fn review(
    engine: &Engine,
    app: &str,
    req: pb::ReviewVerificationRequest,
) -> Result<pb::GetVerificationResponse, ApiError> {
    let verdict = match req.status.as_str() {
        "Approved" => ReviewVerdict::Approved,
        "Declined" => ReviewVerdict::Declined,
        _ => {
            return Err(ApiError::invalid(
                "invalid `status`: must be `Approved` or `Declined`",
            ));
        }
    };
    let view = engine
        .review(&req.verification_id, verdict, req.reason, Some(app))
        .await?;
    Ok(verification_response(view))
}

pub async fn delete(
    engine: &Engine,
    app: &str,
    req: pb::DeletePhoneNumberRequest,
) -> Result<pb::DeletePhoneNumberResponse, ApiError> {
    let (phone_number, d) = engine.delete_number(&req.phone_number, Some(app)).await?;
    Ok(pb::DeletePhoneNumberResponse {
        phone_number,
        verifications: d.verifications,
        idempotency_records: d.idempotency_records,
        delivery_references: d.delivery_references,
        limit_state: d.limit_state,
        blocklist_entry: d.blocklist_entry,
    })
}

/// A send under an idempotency key: the fingerprint is the encoded request; the stored
/// answer is the encoded response (base64). Returns the response and, when this call ran
/// the send, its outcome (for metrics).
pub async fn send_once(
    engine: &Engine,
    request: crate::SendRequest,
    encoded_request: &[u8],
    key: &str,
    respond: impl FnOnce(SendOutcome) -> pb::SendResponse,
) -> Result<(pb::SendResponse, Option<SendOutcome>), ApiError> {
    let b64 = base64::engine::general_purpose::STANDARD;
    let send_key = crate::SendKey {
        scope: "grpc",
        key,
        fingerprint: hex::encode(sha2::Sha256::digest(encoded_request)),
    };
    let mut fresh = None;
    let answer = engine
        .send_once(request, send_key, |o| {
            let response = respond(o.clone());
            let text = b64.encode(response.encode_to_vec());
            fresh = Some(response);
            text
        })
        .await?;
    match answer {
        IdempotentSend::Fresh { outcome, .. } => {
            let response = fresh.ok_or_else(ApiError::internal)?;
            Ok((response, Some(*outcome)))
        }
        IdempotentSend::Replayed(text) => {
            let bytes = b64.decode(text).map_err(|_| ApiError::internal())?;
            let response =
                pb::SendResponse::decode(bytes.as_slice()).map_err(|_| ApiError::internal())?;
            Ok((response, None))
        }
    }
}
