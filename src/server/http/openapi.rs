//! The OpenAPI 3 document, generated from the handlers' `#[utoipa::path]` attributes and the
//! derived schemas of the request, response and report types.

use std::sync::OnceLock;

use serde_json::json;
use utoipa::openapi::RefOr;
use utoipa::openapi::schema::{ObjectBuilder, SchemaType, Type};
use utoipa::openapi::security::{ApiKey, ApiKeyValue, SecurityScheme};
use utoipa::{Modify, OpenApi};

use super::types::{
    Blocklist, BlocklistBody, BlocklistEntry, CallbackAck, CheckBody, ErrorBody, ErrorDetail,
    FraudBlocks, FraudRelease, GeoBody, GeoPermissions, Health, LookupBatchBody, LookupBatchItem,
    LookupBatchResponse, LookupBody, LookupResponse, NumberDeletion, ReviewBody, ReviewStatus,
    SafeList, SafeListBody, SafeListChange, SendBody, SendOptionsBody, ServingStatus, SignalsBody,
};
use crate::report::{
    AttemptOutcome, AttemptRecord, Carrier, CheckOutcome, CheckStatus, DeliveredRoute,
    LookupCharge, PhoneReport, SendOutcome, SendStatus, VerificationStatus,
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
        super::records::get_verification,
        super::records::review_verification,
        super::records::delete_number,
        super::lookup_batch,
        super::block,
        super::unblock,
        super::blocklist,
        super::route_stats,
        super::fraud_blocks,
        super::release_fraud_block,
        super::safe_list,
        super::safe_list_add,
        super::safe_list_remove,
        super::geo_permissions,
        super::set_geo_permissions,
        super::workflows::list,
        super::workflows::create,
        super::workflows::get,
        super::workflows::update,
        super::workflows::delete,
        super::sessions::create,
        super::sessions::decision,
        super::destinations::list,
        super::destinations::create,
        super::destinations::delete,
        crate::server::hosted::show,
        crate::server::hosted::send,
        crate::server::hosted::resend,
        crate::server::hosted::check,
        crate::server::hosted::validate,
        crate::server::hosted::asset,
        crate::server::hosted::brand,
        super::callbacks::receive,
        super::callbacks::receive_get,
        super::metrics,
        super::healthz,
        super::openapi_json,
    ),
    components(schemas(
        super::workflows::NewWorkflowBody,
        super::workflows::WorkflowPatchBody,
        super::workflows::Workflows,
        super::workflows::Deleted,
        crate::hosted::WorkflowView,
        crate::hosted::WorkflowSettings,
        crate::hosted::RiskActions,
        super::sessions::NewSessionBody,
        super::sessions::ContactDetails,
        super::sessions::SessionCreated,
        crate::hosted::Decision,
        crate::hosted::SessionStatus,
        crate::hosted::SessionMatch,
        super::destinations::NewDestinationBody,
        super::destinations::DestinationList,
        crate::server::destinations::DestinationView,
        crate::server::destinations::CreatedDestination,
        crate::server::hosted::PageForm,
        SendBody,
        SendOptionsBody,
        SignalsBody,
        CheckBody,
        LookupBody,
        LookupResponse,
        ReviewBody,
        ReviewStatus,
        NumberDeletion,
        crate::store::Deletion,
        crate::Verification,
        crate::store::LifecycleEntry,
        crate::store::LifecycleEvent,
        LookupBatchBody,
        LookupBatchItem,
        LookupBatchResponse,
        BlocklistBody,
        BlocklistEntry,
        Blocklist,
        FraudBlocks,
        FraudRelease,
        crate::RoutesReport,
        crate::RouteStats,
        crate::routing::ledger::RouteChoice,
        SafeListBody,
        SafeListChange,
        SafeList,
        GeoBody,
        GeoPermissions,
        crate::fraud::Block,
        crate::fraud::Rule,
        crate::fraud::GeoAction,
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
        LookupCharge,
        crate::phone::LineType,
        crate::phone::CarrierSource,
        crate::risk::Warning,
        crate::risk::LogType,
        crate::risk::Risk,
    )),
    modifiers(&ApiKeyScheme, &HubMode),
    tags(
        (name = "phone", description = "Send, check and look up"),
        (name = "blocklist", description = "Numbers refused for an application"),
        (name = "fraud", description = "Operating the fraud screen: its blocks, safe list and geo permissions"),
        (name = "workflows", description = "Named sets of verification settings: the configured one (read-only) and those created through the API"),
        (name = "sessions", description = "Hosted verification: create a session, send the user to its page, read its decision"),
        (name = "webhooks", description = "Where events are POSTed: configured destinations (read-only) and those created through the API"),
        (name = "hosted page", description = "The hosted verification page a session URL opens (HTML; no API key: the URL's token is the credential)"),
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

/// Links between operations, for clients and stateful fuzzers: a send's number can be checked,
/// looked up and deleted, its verification fetched and reviewed; a blocked number can be
/// removed. Added to the rendered JSON: utoipa 5.5 serialises `Link` fields in snake_case
/// (`operation_id`), which is not OpenAPI.
fn add_links(doc: &mut serde_json::Value) {
    let number = "$request.body#/phone_number";
    let send = json!({
        "check": {
            "operationId": "check",
            "requestBody": {"phone_number": number, "code": "000000"},
            "description": "Check a code for the number just sent to",
        },
        "lookup": {
            "operationId": "lookup",
            "requestBody": {"phone_number": number},
            "description": "The report of the number just sent to",
        },
        "verification": {
            "operationId": "get_verification",
            "parameters": {"verification_id": "$response.body#/verification_id"},
            "description": "The verification just sent",
        },
        "review": {
            "operationId": "review_verification",
            "parameters": {"verification_id": "$response.body#/verification_id"},
            "description": "Resolve the verification just sent, if it is in review",
        },
        "forget": {
            "operationId": "delete_number",
            "parameters": {"phone_number": number},
            "description": "Delete every record of the number just sent to",
        },
    });
    let block = json!({
        "unblock": {
            "operationId": "unblock",
            "parameters": {"phone_number": "$response.body#/phone_number"},
            "description": "Remove the number just blocked",
        },
    });
    for (path, status, links) in [
        ("/v3/phone/send/", "200", &send),
        ("/v3/blocklist/", "200", &block),
        ("/v3/blocklist/", "201", &block),
    ] {
        if let Some(response) = doc
            .pointer_mut(&format!(
                "/paths/{}/post/responses/{status}",
                path.replace('/', "~1")
            ))
            .and_then(|r| r.as_object_mut())
        {
            response.insert("links".into(), links.clone());
        }
    }
}

/// What utoipa's attributes cannot say, so a schema-driven client is not refused for a value
/// the document admits: a verification id is a UUID, `signals.ip` an IPv4 or IPv6 address (empty:
/// none given), and the geo table's keys are channels (or `all`) then ISO 3166-1 alpha-2
/// countries.
fn refine(doc: &mut serde_json::Value) {
    for (path, name, methods) in [
        (
            "/paths/~1v3~1phone~1verifications~1{verification_id}~1",
            "verification_id",
            &["get", "patch"][..],
        ),
        (
            "/paths/~1v3~1session~1{session_id}~1decision~1",
            "session_id",
            &["get"][..],
        ),
    ] {
        for method in methods {
            if let Some(params) = doc
                .pointer_mut(&format!("{path}/{method}/parameters"))
                .and_then(|p| p.as_array_mut())
            {
                for p in params.iter_mut().filter(|p| p["name"] == name) {
                    p["schema"] = json!({"type": "string", "format": "uuid"});
                }
            }
        }
    }
    if let Some(ip) = doc.pointer_mut("/components/schemas/SignalsBody/properties/ip") {
        let description = ip["description"].clone();
        *ip = json!({
            "description": description,
            "anyOf": [
                {"type": "string", "format": "ipv4"},
                {"type": "string", "format": "ipv6"},
                {"type": "string", "maxLength": 0},
                {"type": "null"},
            ],
        });
    }
    if let Some(geo) = doc.pointer_mut("/components/schemas/GeoBody/properties/geo") {
        let mut channels: Vec<&str> = switchboard_providers::Channel::ALL
            .iter()
            .map(|c| c.as_str())
            .collect();
        channels.push("all");
        geo["propertyNames"] = json!({"enum": channels});
        geo["additionalProperties"]["propertyNames"] = json!({"pattern": "^[A-Z]{2}$"});
    }
}

/// `hub.mode` takes one value.
struct HubMode;

impl Modify for HubMode {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let Some(get) = openapi
            .paths
            .paths
            .get_mut("/callbacks/{provider}")
            .and_then(|i| i.get.as_mut())
        else {
            return;
        };
        for p in get.parameters.iter_mut().flatten() {
            if p.name == "hub.mode" {
                p.schema = Some(RefOr::T(
                    ObjectBuilder::new()
                        .schema_type(SchemaType::from(Type::String))
                        .enum_values(Some(["subscribe"]))
                        .into(),
                ));
            }
        }
    }
}

/// The OpenAPI document of the HTTP API.
pub fn document() -> utoipa::openapi::OpenApi {
    ApiDoc::openapi()
}

/// The document as served, rendered once per kind. A sidecar with no API key configured
/// (development) serves it without the key requirement, as it answers without one.
pub(super) fn rendered(keyed: bool) -> &'static str {
    static KEYED: OnceLock<String> = OnceLock::new();
    static OPEN: OnceLock<String> = OnceLock::new();
    let cell = if keyed { &KEYED } else { &OPEN };
    cell.get_or_init(|| {
        let mut doc = serde_json::to_value(document()).expect("the OpenAPI document serialises");
        add_links(&mut doc);
        refine(&mut doc);
        if !keyed {
            drop_key_requirement(&mut doc);
        }
        serde_json::to_string_pretty(&doc).expect("the OpenAPI document serialises")
    })
}

/// Removes the API key from every operation's `security` and from the components.
fn drop_key_requirement(doc: &mut serde_json::Value) {
    if let Some(paths) = doc.get_mut("paths").and_then(|p| p.as_object_mut()) {
        for operation in paths
            .values_mut()
            .filter_map(|item| item.as_object_mut())
            .flat_map(|item| item.values_mut())
            .filter_map(|op| op.as_object_mut())
        {
            operation.remove("security");
        }
    }
    if let Some(components) = doc.get_mut("components").and_then(|c| c.as_object_mut()) {
        components.remove("securitySchemes");
    }
}

/// Whether the API has a route at `path` (as the document writes it).
pub(super) fn has_path(path: &str) -> bool {
    static PATHS: OnceLock<Vec<String>> = OnceLock::new();
    PATHS
        .get_or_init(|| document().paths.paths.keys().cloned().collect())
        .iter()
        .any(|p| p == path)
}
