//! The OpenAPI 3 document, generated from the handlers' `#[utoipa::path]` attributes and the
//! derived schemas of the request, response and report types.

use std::sync::OnceLock;

use utoipa::openapi::security::{ApiKey, ApiKeyValue, SecurityScheme};
use utoipa::{Modify, OpenApi};

use super::types::{
    Blocklist, BlocklistBody, BlocklistEntry, CallbackAck, CheckBody, ErrorBody, ErrorDetail,
    Health, LookupBody, LookupResponse, SendBody, SendOptionsBody, ServingStatus, SignalsBody,
};
use crate::report::{
    AttemptOutcome, AttemptRecord, Carrier, CheckOutcome, CheckStatus, DeliveredRoute, PhoneReport,
    SendOutcome, SendStatus, VerificationStatus,
};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "switchboard",
        description = "Multi-channel one-time-code phone verification. Phone numbers are E.164 \
                       strings with the leading `+`; channels are UPPERCASE on the way in \
                       (`SMS`) and lowercase on the way out (`sms`). Errors are \
                       `{\"error\": {\"code\", \"message\", \"retry_after\"?}}`."
    ),
    paths(
        super::send,
        super::check,
        super::lookup,
        super::block,
        super::unblock,
        super::blocklist,
        super::callbacks::receive,
        super::callbacks::receive_get,
        super::metrics,
        super::healthz,
        super::openapi_json,
    ),
    components(schemas(
        SendBody,
        SendOptionsBody,
        SignalsBody,
        CheckBody,
        LookupBody,
        LookupResponse,
        BlocklistBody,
        BlocklistEntry,
        Blocklist,
        Health,
        ServingStatus,
        CallbackAck,
        ErrorBody,
        ErrorDetail,
        SendOutcome,
        SendStatus,
        CheckOutcome,
        CheckStatus,
        PhoneReport,
        VerificationStatus,
        Carrier,
        AttemptRecord,
        AttemptOutcome,
        DeliveredRoute,
        crate::phone::LineType,
        crate::risk::Warning,
        crate::risk::LogType,
        crate::risk::Risk,
    )),
    modifiers(&ApiKeyScheme),
    tags(
        (name = "phone", description = "Send, check and look up"),
        (name = "blocklist", description = "Numbers refused for an application"),
        (name = "callbacks", description = "Delivery receipts from providers, verified by their signatures (no API key)"),
        (name = "operations", description = "Health, metrics and this document"),
    )
)]
struct ApiDoc;

struct ApiKeyScheme;

impl Modify for ApiKeyScheme {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "api_key",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                super::API_KEY_HEADER,
                "An application's API key. Not required when the server has no keys configured \
                 (development mode).",
            ))),
        );
    }
}

/// The OpenAPI document of the HTTP API.
pub fn document() -> utoipa::openapi::OpenApi {
    ApiDoc::openapi()
}

/// The document as served, rendered once.
pub(super) fn rendered() -> &'static str {
    static RENDERED: OnceLock<String> = OnceLock::new();
    RENDERED.get_or_init(|| {
        document()
            .to_pretty_json()
            .expect("the OpenAPI document serialises")
    })
}

/// Whether the API has a route at `path` (as the document writes it).
pub(super) fn has_path(path: &str) -> bool {
    static PATHS: OnceLock<Vec<String>> = OnceLock::new();
    PATHS
        .get_or_init(|| document().paths.paths.keys().cloned().collect())
        .iter()
        .any(|p| p == path)
}
