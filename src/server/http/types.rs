//! Request and response bodies of the HTTP API. Their OpenAPI schemas are derived from these
//! types (and from the engine's report types), so the document is the wire format.

use serde::{Deserialize, Serialize};
use switchboard_providers::Channel;
use utoipa::ToSchema;
use utoipa::openapi::schema::{Object, ObjectBuilder, SchemaType, Type};

use crate::report::PhoneReport;
use crate::server::errors::{ApiError, TABLE};
use crate::{CheckRequest, SendOptions, SendRequest, Signals};

/// Body of `POST /v3/phone/send/`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SendBody {
    /// The number to verify: E.164 (`+14155552671`), or national format with `region`.
    #[schema(example = "+12025550101")]
    pub phone_number: String,
    /// Pins the channel: only its routes are tried. Omitted: the cheapest deliverable route
    /// for the destination, falling back to the next one on failure.
    #[schema(schema_with = channel_input)]
    pub channel: Option<Channel>,
    /// The caller's user id, for duplicate detection: at most 256 bytes of UTF-8 (the schema's
    /// `maxLength` counts characters; a non-ASCII character counts its UTF-8 bytes).
    #[schema(max_length = 256)]
    pub vendor_data: Option<String>,
    pub options: Option<SendOptionsBody>,
    pub signals: Option<SignalsBody>,
    /// ISO 3166-1 alpha-2 region for numbers in national format (`ES`): a region with a
    /// numbering plan.
    #[schema(schema_with = region_input, example = "ES")]
    pub region: Option<String>,
    /// Your own JSON object, at most 2 KiB as compact JSON: kept with the verification and
    /// echoed in its send, check and fetch answers and in its webhooks.
    #[schema(value_type = Option<Object>)]
    pub metadata: Option<serde_json::Value>,
}

/// A whole number written as `8` or `8.0` (JSON Schema's `integer` admits both), in `T`'s range.
pub(crate) fn integral<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: TryFrom<u64>,
{
    let Some(n) = Option::<serde_json::Number>::deserialize(d)? else {
        return Ok(None);
    };
    n.as_u64()
        .or_else(|| {
            n.as_f64()
                .filter(|f| f.fract() == 0.0 && *f >= 0.0 && *f < u64::MAX as f64)
                .map(|f| f as u64)
        })
        .and_then(|v| T::try_from(v).ok())
        .map(Some)
        .ok_or_else(|| serde::de::Error::custom(format!("{n} is not a whole number in range")))
}

/// `options` of a send.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SendOptionsBody {
    /// Digits in the code, 4 to 10 (the workflow's length, 6 by default, when omitted).
    #[schema(minimum = 4, maximum = 10)]
    #[serde(default, deserialize_with = "integral")]
    pub code_size: Option<u8>,
    /// Message language, a BCP 47 tag (`en`, `es`, `pt-BR`): letters, digits, `-` and `_`, at
    /// most 35. A language without a template falls back to the workflow's.
    #[schema(example = "en", pattern = "^[A-Za-z0-9_-]{1,35}$")]
    pub locale: Option<String>,
    /// Try this channel first, then the usual order.
    #[schema(schema_with = channel_input)]
    pub preferred_channel: Option<Channel>,
}

/// `signals` of a send: the end user's client context, for fraud scoring (not the calling
/// server's). `ip` (and its /24 or /48 network) and `device_id` are counted by the fraud
/// screen; the rest is accepted for the record. Lengths are in bytes of UTF-8 (the schema's
/// `maxLength` counts characters); a longer value is INVALID_REQUEST naming the field.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SignalsBody {
    /// The end user's IPv4 or IPv6 address; anything else is INVALID_REQUEST (`signals.ip`).
    #[schema(example = "203.0.113.7", max_length = 45)]
    pub ip: Option<String>,
    /// A stable id of the end user's device (hashed before it is counted).
    #[schema(max_length = 256)]
    pub device_id: Option<String>,
    #[schema(max_length = 1024)]
    pub user_agent: Option<String>,
    /// `ios`, `android`, `web`, ...
    #[schema(max_length = 64, example = "ios")]
    pub device_platform: Option<String>,
    #[schema(max_length = 128, example = "iPhone15,2")]
    pub device_model: Option<String>,
    #[schema(max_length = 64, example = "17.4")]
    pub os_version: Option<String>,
    #[schema(max_length = 64, example = "3.2.1")]
    pub app_version: Option<String>,
}

impl SendBody {
    /// The engine's request, for application `app`.
    pub fn into_request(self, app: String) -> SendRequest {
        let options = self.options.unwrap_or_default();
        let signals = self.signals.unwrap_or_default();
        SendRequest {
            phone_number: self.phone_number,
            region: self.region,
            channel: self.channel,
            vendor_data: self.vendor_data,
            metadata: self.metadata,
            app: Some(app),
            options: SendOptions {
                code_size: options.code_size,
                locale: options.locale,
                preferred_channel: options.preferred_channel,
                webotp_host: None,
            },
            signals: Signals {
                ip: signals.ip,
                device_id: signals.device_id,
                user_agent: signals.user_agent,
                device_platform: signals.device_platform,
                device_model: signals.device_model,
                os_version: signals.os_version,
                app_version: signals.app_version,
            },
            workflow: None,
        }
    }
}

/// Body of `POST /v3/phone/check/`. Not `Debug`: it carries the code.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CheckBody {
    /// The number the code was sent to (matched with the application's most recent pending
    /// verification of it).
    #[schema(example = "+12025550101")]
    pub phone_number: String,
    /// The code the user typed.
    #[schema(example = "123456")]
    pub code: String,
    /// The caller's user id, for duplicate detection: at most 256 bytes of UTF-8 (the schema's
    /// `maxLength` counts characters; a non-ASCII character counts its UTF-8 bytes).
    #[schema(max_length = 256)]
    pub vendor_data: Option<String>,
    /// ISO 3166-1 alpha-2 region for numbers in national format: a region with a numbering
    /// plan.
    #[schema(schema_with = region_input)]
    pub region: Option<String>,
    /// Accepted for clients of the reference API and ignored: the application's configured
    /// `workflow.risk.duplicated` action applies.
    #[schema(schema_with = risk_action_input)]
    pub duplicated_phone_number_action: Option<ReferenceAction>,
    /// Accepted and ignored: `workflow.risk.disposable` applies.
    #[schema(schema_with = risk_action_input)]
    pub disposable_number_action: Option<ReferenceAction>,
    /// Accepted and ignored: `workflow.risk.voip` applies.
    #[schema(schema_with = risk_action_input)]
    pub voip_number_action: Option<ReferenceAction>,
    /// Accepted and ignored: no paid enrichment here; line facts come from the static data
    /// (and the configured live lookup).
    pub enable_enrichment: Option<bool>,
}

/// A risk action as the reference API spells it, on check bodies.
#[derive(Clone, Copy, Debug, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ReferenceAction {
    Decline,
    Review,
    Approve,
    NoAction,
}

fn risk_action_input() -> Object {
    string_enum(["DECLINE", "REVIEW", "APPROVE", "NO_ACTION"], true)
}

impl CheckBody {
    pub fn into_request(self, app: String) -> CheckRequest {
        // The reference API's risk actions and enrichment switch are accepted, not applied.
        let CheckBody {
            phone_number,
            code,
            vendor_data,
            region,
            duplicated_phone_number_action: _,
            disposable_number_action: _,
            voip_number_action: _,
            enable_enrichment: _,
        } = self;
        let mut req = CheckRequest::new(phone_number, code);
        req.vendor_data = vendor_data;
        req.region = region;
        req.app = Some(app);
        req
    }
}

/// Body of `PATCH /v3/phone/verifications/{verification_id}/`: a reviewer's decision.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReviewBody {
    /// The decision.
    pub status: ReviewStatus,
    /// Why, for the lifecycle and the webhook (at most 1024 bytes).
    #[schema(max_length = 1024)]
    pub reason: Option<String>,
}

/// A reviewer's decision.
#[derive(Clone, Copy, Debug, Deserialize, ToSchema)]
pub enum ReviewStatus {
    Approved,
    Declined,
}

/// Answer of `DELETE /v3/phone/numbers/{phone_number}/`.
#[derive(Debug, Serialize, ToSchema)]
pub struct NumberDeletion {
    /// E.164.
    pub phone_number: String,
    /// What was removed for the calling application.
    pub removed: crate::store::Deletion,
}

/// Body of `POST /v3/phone/lookup/`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LookupBody {
    #[schema(example = "+34600600600")]
    pub phone_number: String,
    /// ISO 3166-1 alpha-2 region for numbers in national format: a region with a numbering
    /// plan.
    #[schema(schema_with = region_input)]
    pub region: Option<String>,
    /// The caller's user id: reports `DUPLICATED_PHONE_NUMBER` when the number was verified
    /// for another one. At most 256 bytes of UTF-8 (the schema's `maxLength` counts
    /// characters; a non-ASCII character counts its UTF-8 bytes).
    #[schema(max_length = 256)]
    pub vendor_data: Option<String>,
}

/// Answer of `POST /v3/phone/lookup/`: the phone report, nothing sent.
#[derive(Debug, Serialize, ToSchema)]
pub struct LookupResponse {
    pub request_id: String,
    pub phone: PhoneReport,
}

/// Body of `POST /v3/phone/lookup/batch/`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LookupBatchBody {
    /// 1 to 1,000 numbers: E.164, or national format with `region`. More is
    /// `BATCH_TOO_LARGE`.
    #[schema(example = json!(["+34600600600", "+5511987654321"]), min_items = 1, max_items = 1000)]
    pub phone_numbers: Vec<String>,
    /// ISO 3166-1 alpha-2 region for the numbers in national format: a region with a numbering
    /// plan. An invalid one fails the whole call with `INVALID_REGION`.
    #[schema(schema_with = region_input)]
    pub region: Option<String>,
    /// The caller's user id, applied to every number: at most 256 bytes of UTF-8.
    #[schema(max_length = 256)]
    pub vendor_data: Option<String>,
}

/// One number's answer in a batch: its report, or why it is not a valid number.
#[derive(Debug, Serialize, ToSchema)]
#[serde(untagged)]
pub enum LookupBatchItem {
    Phone { phone: Box<PhoneReport> },
    Error { error: ErrorDetail },
}

/// Answer of `POST /v3/phone/lookup/batch/`: one result per number, in the order given.
#[derive(Debug, Serialize, ToSchema)]
pub struct LookupBatchResponse {
    pub request_id: String,
    pub results: Vec<LookupBatchItem>,
}

impl From<crate::server::lookup_batch::LookupResult> for LookupBatchItem {
    fn from(result: crate::server::lookup_batch::LookupResult) -> Self {
        match result {
            Ok(report) => LookupBatchItem::Phone {
                phone: Box::new(report),
            },
            Err(e) => LookupBatchItem::Error {
                error: ErrorBody::from(&e).error,
            },
        }
    }
}

/// Body of `POST /v3/blocklist/`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BlocklistBody {
    #[schema(example = "+34600600600")]
    pub phone_number: String,
}

/// One number on the blocklist.
#[derive(Debug, Serialize, ToSchema)]
pub struct BlocklistEntry {
    /// E.164.
    pub phone_number: String,
}

/// The application's blocklist.
#[derive(Debug, Serialize, ToSchema)]
pub struct Blocklist {
    /// E.164 numbers, sorted.
    pub phone_numbers: Vec<String>,
}

/// Answer of `GET /v3/fraud/blocks/`: the application's current fraud blocks.
#[derive(Debug, Serialize, ToSchema)]
pub struct FraudBlocks {
    pub blocks: Vec<crate::fraud::Block>,
}

/// Answer of `DELETE /v3/fraud/blocks/{key}/`.
#[derive(Debug, Serialize, ToSchema)]
pub struct FraudRelease {
    /// False when the key was not blocked.
    pub released: bool,
}

/// Body of `POST` and `DELETE /v3/fraud/safe-list/`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SafeListBody {
    /// An E.164 number, or a prefix ending in `*`.
    #[schema(example = "+3460060*", max_length = 17, pattern = r"^\+[0-9]+\*?$")]
    pub entry: String,
}

/// Answer of `POST` / `DELETE /v3/fraud/safe-list/`.
#[derive(Debug, Serialize, ToSchema)]
pub struct SafeListChange {
    pub entry: String,
    /// `POST`: false when the entry was already there.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub added: Option<bool>,
    /// `DELETE`: false when the entry was not there.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub removed: Option<bool>,
}

/// Answer of `GET /v3/fraud/safe-list/`.
#[derive(Debug, Serialize, ToSchema)]
pub struct SafeList {
    /// The runtime entries (set through this API), sorted.
    pub entries: Vec<String>,
    /// The entries of the configuration (`fraud.safe_list`).
    pub configured: Vec<String>,
}

/// Body of `PUT /v3/fraud/geo/`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GeoBody {
    /// Channel (`sms`, `whatsapp`, `telegram`, `rcs`, `viber`, `call` or `all`) -> ISO 3166-1
    /// alpha-2 country (uppercase) -> `allow`, `monitor` or `deny`. Replaces every runtime
    /// entry; `{}` clears them.
    #[schema(value_type = BTreeMap<String, BTreeMap<String, crate::fraud::GeoAction>>,
             example = json!({"sms": {"UZ": "deny"}}))]
    pub geo: crate::engine::GeoTable,
}

/// Answer of `GET` / `PUT /v3/fraud/geo/`.
#[derive(Debug, Serialize, ToSchema)]
pub struct GeoPermissions {
    /// The runtime entries.
    #[schema(value_type = BTreeMap<String, BTreeMap<String, crate::fraud::GeoAction>>)]
    pub geo: crate::engine::GeoTable,
    /// What applies: the configured entries with the runtime ones over them.
    #[schema(value_type = BTreeMap<String, BTreeMap<String, crate::fraud::GeoAction>>)]
    pub effective: crate::engine::GeoTable,
}

/// Answer of `GET /healthz`.
#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    pub status: ServingStatus,
}

#[derive(Debug, Serialize, ToSchema)]
pub enum ServingStatus {
    #[serde(rename = "SERVING")]
    Serving,
}

/// Answer to an accepted provider callback.
#[derive(Debug, Serialize, ToSchema)]
pub struct CallbackAck {
    /// Delivery receipts the callback carried.
    pub receipts: usize,
}

/// Every error answer: `{"error": {"code", "message", "retry_after"?}}`.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorDetail {
    /// Stable machine code; the HTTP status follows from it.
    #[schema(schema_with = error_code)]
    pub code: &'static str,
    /// Human-readable: what is wrong and, for a field, which one.
    pub message: String,
    /// Seconds to wait before retrying (also sent as `Retry-After`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry_after: Option<u64>,
}

impl From<&ApiError> for ErrorBody {
    fn from(e: &ApiError) -> Self {
        ErrorBody {
            error: ErrorDetail {
                code: e.code,
                message: e.message.clone(),
                retry_after: e.retry_after,
            },
        }
    }
}

pub(crate) fn string_enum<S: Into<serde_json::Value>>(
    values: impl IntoIterator<Item = S>,
    nullable: bool,
) -> Object {
    let mut values: Vec<serde_json::Value> = values.into_iter().map(Into::into).collect();
    let kind = if nullable {
        values.push(serde_json::Value::Null);
        SchemaType::from_iter([Type::String, Type::Null])
    } else {
        SchemaType::from(Type::String)
    };
    ObjectBuilder::new()
        .schema_type(kind)
        .enum_values(Some(values))
        .build()
}

/// A region with a numbering plan, or null.
fn region_input() -> Object {
    string_enum(crate::phone::supported_regions(), true)
}

/// A channel as requests name it (`SMS`, `WHATSAPP`, ...), or null.
/// The input channels, and `VOICE`, the reference API's name of `CALL`.
pub(crate) fn channel_input() -> Object {
    string_enum(
        Channel::ALL
            .map(Channel::as_input)
            .into_iter()
            .chain(["VOICE"]),
        true,
    )
}

/// Every code of the error table.
fn error_code() -> Object {
    string_enum(TABLE.iter().map(|(code, _, _)| *code), false)
}
