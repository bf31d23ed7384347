//! The gRPC API: protobuf request bodies, decoded as tonic decodes them, through the service's
//! own conversion and the engine's validation, in process on embedded defaults (the server the
//! `http` target starts).
//!
//! Input: one byte picks the method (send, check, lookup, batch lookup, get/review
//! verification, number deletion, blocklist, fraud admin, safe list, geo, route stats); the rest
//! is the encoded request message. Invariant: bytes that decode as the message never make an
//! `INTERNAL` or `UNKNOWN` status (a panic or an unmapped error).

use prost::Message;
use switchboard::server::grpc::Api;
use switchboard::server::grpc::pb::{self, switchboard_server::Switchboard};
use tonic::{Code, Request, Status};

/// Decodes `bytes` as `M` and calls `method` with it; `None` when they do not decode.
macro_rules! call {
    ($api:expr, $bytes:expr, $message:ty, $method:ident) => {{
        match <$message>::decode($bytes) {
            Ok(message) => Some($api.$method(Request::new(message)).await.map(|_| ())),
            Err(_) => None,
        }
    }};
}

pub fn run(data: &[u8]) {
    let Some((&which, body)) = data.split_first() else {
        return;
    };
    let server = super::http::server();
    let api = Api::new(server.state());
    let outcome: Option<Result<(), Status>> = server.block_on(async {
        match which % 15 {
            0 => call!(api, body, pb::SendRequest, send),
            1 => call!(api, body, pb::CheckRequest, check),
            2 => call!(api, body, pb::LookupRequest, lookup),
            3 => call!(api, body, pb::LookupBatchRequest, lookup_batch),
            4 => call!(api, body, pb::GetVerificationRequest, get_verification),
            5 => call!(
                api,
                body,
                pb::ReviewVerificationRequest,
                review_verification
            ),
            6 => call!(api, body, pb::DeletePhoneNumberRequest, delete_phone_number),
            7 => call!(api, body, pb::AddToBlocklistRequest, add_to_blocklist),
            8 => call!(
                api,
                body,
                pb::RemoveFromBlocklistRequest,
                remove_from_blocklist
            ),
            9 => call!(api, body, pb::ReleaseFraudBlockRequest, release_fraud_block),
            10 => call!(api, body, pb::AddToSafeListRequest, add_to_safe_list),
            11 => call!(
                api,
                body,
                pb::RemoveFromSafeListRequest,
                remove_from_safe_list
            ),
            12 => call!(api, body, pb::SetGeoPermissionsRequest, set_geo_permissions),
            13 => call!(api, body, pb::GetRouteStatsRequest, get_route_stats),
            _ => call!(api, body, pb::ListFraudBlocksRequest, list_fraud_blocks),
        }
    });
    if let Some(Err(status)) = outcome {
        assert!(
            !matches!(status.code(), Code::Internal | Code::Unknown),
            "no request makes {:?}: {}",
            status.code(),
            status.message()
        );
    }
}
