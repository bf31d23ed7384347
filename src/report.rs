//! The wire-neutral results: the phone report, send and check outcomes.

use serde::{Serialize, Serializer};
use switchboard_providers::{Channel, FailureClass};

use crate::clock::{Millis, iso8601};
use crate::phone::{CarrierSource, LineType, PhoneInfo};
use crate::risk::Warning;

/// Overall status of a number's verification (`status` of the report).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub enum VerificationStatus {
    Approved,
    Declined,
    #[serde(rename = "In Review")]
    InReview,
    #[serde(rename = "Not Finished")]
    NotFinished,
    /// Its validity ended without approval after at least one check.
    Expired,
    /// Its validity ended without any check.
    Abandoned,
}

impl VerificationStatus {
    /// The wire spelling (the same as its JSON form).
    pub const fn as_str(self) -> &'static str {
        match self {
            VerificationStatus::Approved => "Approved",
            VerificationStatus::Declined => "Declined",
            VerificationStatus::InReview => "In Review",
            VerificationStatus::NotFinished => "Not Finished",
            VerificationStatus::Expired => "Expired",
            VerificationStatus::Abandoned => "Abandoned",
        }
    }
}

/// `carrier` of the report.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Carrier {
    pub name: Option<String>,
    #[serde(rename = "type")]
    pub line_type: LineType,
    /// `lookup` when a live lookup (cached within its TTL) told the line type or carrier,
    /// `static` when both come from the numbering plan's ranges.
    pub source: CarrierSource,
}

/// The phone report, field for field as PRODUCT.md names them.
#[derive(Clone, Debug, PartialEq, Serialize, utoipa::ToSchema)]
pub struct PhoneReport {
    pub status: VerificationStatus,
    pub phone_number_prefix: String,
    pub phone_number: String,
    pub full_number: String,
    pub country_code: Option<String>,
    pub country_name: Option<String>,
    pub carrier: Carrier,
    pub is_disposable: bool,
    pub is_virtual: bool,
    #[schema(schema_with = schema::optional_channel)]
    pub verification_method: Option<Channel>,
    pub verification_attempts: u32,
    #[serde(serialize_with = "opt_iso8601")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub verified_at: Option<Millis>,
    pub warnings: Vec<Warning>,
}

impl PhoneReport {
    /// A report of the line alone, before any verification.
    pub fn for_line(info: &PhoneInfo, is_disposable: bool, warnings: Vec<Warning>) -> Self {
        PhoneReport {
            status: VerificationStatus::NotFinished,
            phone_number_prefix: info.prefix(),
            phone_number: info.subscriber.clone(),
            full_number: info.e164.clone(),
            country_code: info.region.clone(),
            country_name: (!info.country_name.is_empty()).then(|| info.country_name.to_owned()),
            carrier: Carrier {
                name: info.carrier().map(str::to_owned),
                line_type: info.line_type(),
                source: info.carrier_source(),
            },
            is_disposable,
            is_virtual: info.is_virtual(),
            verification_method: None,
            verification_attempts: 0,
            verified_at: None,
            warnings,
        }
    }
}

fn opt_iso8601<S: Serializer>(v: &Option<Millis>, s: S) -> Result<S::Ok, S::Error> {
    match v {
        Some(ms) => s.serialize_str(&iso8601(*ms)),
        None => s.serialize_none(),
    }
}

/// `status` of a send.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub enum SendStatus {
    /// Sent; a new verification is pending.
    Success,
    /// Re-sent inside a pending verification (earlier codes stay valid).
    Retry,
    /// Every route failed; nothing was charged against the resend budget.
    Undeliverable,
    /// Refused before any money was spent; see `reason`.
    Blocked,
}

impl SendStatus {
    /// The wire spelling (the same as its JSON form).
    pub const fn as_str(self) -> &'static str {
        match self {
            SendStatus::Success => "Success",
            SendStatus::Retry => "Retry",
            SendStatus::Undeliverable => "Undeliverable",
            SendStatus::Blocked => "Blocked",
        }
    }
}

/// What happened to one delivery attempt.
#[derive(Clone, Debug, PartialEq, Serialize, utoipa::ToSchema)]
pub struct AttemptRecord {
    #[schema(schema_with = schema::channel)]
    pub channel: Channel,
    pub provider: String,
    /// `delivered`, `failed` or `timeout`.
    pub outcome: AttemptOutcome,
    /// Failure class when the attempt failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(schema_with = schema::failure_class)]
    pub class: Option<FailureClass>,
    /// The provider's own error code.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_code: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum AttemptOutcome {
    Delivered,
    Failed,
    Timeout,
}

impl AttemptOutcome {
    /// The wire spelling (the same as its JSON form).
    pub const fn as_str(self) -> &'static str {
        match self {
            AttemptOutcome::Delivered => "delivered",
            AttemptOutcome::Failed => "failed",
            AttemptOutcome::Timeout => "timeout",
        }
    }
}

/// The route that carried a code and what it cost.
#[derive(Clone, Debug, PartialEq, Serialize, utoipa::ToSchema)]
pub struct DeliveredRoute {
    #[schema(schema_with = schema::channel)]
    pub channel: Channel,
    pub provider: String,
    pub price: f64,
    pub currency: String,
    pub provider_message_id: String,
}

/// A live line lookup this send paid for (absent when the facts came from the cache or no
/// lookup was made).
#[derive(Clone, Debug, PartialEq, Serialize, utoipa::ToSchema)]
pub struct LookupCharge {
    /// The lookup provider (`twilio`, `vonage`).
    pub provider: String,
    /// `[lookup].price`, in the route table's currency; counted in the spend caps.
    pub price: f64,
    pub currency: String,
}

/// Result of [`crate::Engine::send`].
#[derive(Clone, Debug, PartialEq, Serialize, utoipa::ToSchema)]
pub struct SendOutcome {
    pub request_id: String,
    /// The verification this send opened or joined: the same on every resend and check of it
    /// (absent when none was opened: refused or undeliverable sends).
    pub verification_id: Option<String>,
    /// The verification's `vendor_data` (the first send's, on a resend).
    pub vendor_data: Option<String>,
    /// The verification's `metadata` object, as sent.
    #[schema(value_type = Option<Object>)]
    pub metadata: Option<serde_json::Value>,
    pub status: SendStatus,
    /// Why a send was `Blocked` (a risk name) or `Undeliverable` (`phone_provider_unavailable`,
    /// `permanent_delivery_failure`).
    pub reason: Option<String>,
    /// The channel that carried the code.
    #[schema(schema_with = schema::optional_channel)]
    pub channel: Option<Channel>,
    pub delivered_by: Option<DeliveredRoute>,
    /// Sends left to this number in the rolling window.
    pub resends_left: u32,
    /// Seconds until the next send is allowed, when throttled.
    pub retry_after: Option<u64>,
    /// When the pending verification expires.
    #[serde(serialize_with = "opt_iso8601")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub expires_at: Option<Millis>,
    pub attempts: Vec<AttemptRecord>,
    pub phone: PhoneReport,
    /// What the fraud screen decided when it refused the send or would have (shadow mode); for
    /// metrics and events (the wire carries the figure in the warning's `additional_data`).
    #[serde(skip)]
    #[schema(ignore)]
    pub fraud: Option<crate::fraud::Verdict>,
    /// Why the first route was chosen: strategy, expected cost per verified user, the
    /// estimated P(verified) and the evidence behind it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub routing: Option<crate::routing::ledger::RouteChoice>,
    /// The live line lookup this send paid for; its price adds to `delivered_by.price` in the
    /// send's cost.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lookup: Option<LookupCharge>,
}

/// `status` of a check.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub enum CheckStatus {
    Approved,
    Declined,
    #[serde(rename = "In Review")]
    InReview,
    /// Wrong code; attempts remain.
    Failed,
    #[serde(rename = "Expired or Not Found")]
    ExpiredOrNotFound,
}

impl CheckStatus {
    /// The wire spelling (the same as its JSON form).
    pub const fn as_str(self) -> &'static str {
        match self {
            CheckStatus::Approved => "Approved",
            CheckStatus::Declined => "Declined",
            CheckStatus::InReview => "In Review",
            CheckStatus::Failed => "Failed",
            CheckStatus::ExpiredOrNotFound => "Expired or Not Found",
        }
    }
}

/// Result of [`crate::Engine::check`].
#[derive(Clone, Debug, PartialEq, Serialize, utoipa::ToSchema)]
pub struct CheckOutcome {
    pub request_id: String,
    /// The verification the code was checked against (absent when `Expired or Not Found`).
    pub verification_id: Option<String>,
    /// The verification's `vendor_data`, as its first send gave it.
    pub vendor_data: Option<String>,
    /// The verification's `metadata` object, as its first send gave it.
    #[schema(value_type = Option<Object>)]
    pub metadata: Option<serde_json::Value>,
    pub status: CheckStatus,
    /// The risk that declined, when `Declined`.
    pub reason: Option<String>,
    /// Code-entry attempts left, when `Failed`.
    pub attempts_left: Option<u32>,
    pub phone: PhoneReport,
}

/// OpenAPI schemas of the providers crate's wire enums, built from the values they serialise to
/// so the document cannot drift from the wire.
mod schema {
    use switchboard_providers::{Channel, FailureClass};
    use utoipa::openapi::schema::{Object, ObjectBuilder, SchemaType, Type};

    fn string_enum(values: Vec<serde_json::Value>, nullable: bool) -> Object {
        let (kind, values) = if nullable {
            let mut values = values;
            values.push(serde_json::Value::Null);
            (SchemaType::from_iter([Type::String, Type::Null]), values)
        } else {
            (SchemaType::from(Type::String), values)
        };
        ObjectBuilder::new()
            .schema_type(kind)
            .enum_values(Some(values))
            .build()
    }

    fn channels() -> Vec<serde_json::Value> {
        Channel::ALL.iter().map(|c| c.as_str().into()).collect()
    }

    /// A channel as reports write it (`sms`, `whatsapp`, ...).
    pub fn channel() -> Object {
        string_enum(channels(), false)
    }

    pub fn optional_channel() -> Object {
        string_enum(channels(), true)
    }

    /// The failure class of a failed attempt (absent when it succeeded).
    pub fn failure_class() -> Object {
        let values = [
            FailureClass::Transient,
            FailureClass::Fallback,
            FailureClass::Permanent,
            FailureClass::Config,
            FailureClass::Fraud,
        ]
        .iter()
        .filter_map(|c| serde_json::to_value(c).ok())
        .collect();
        string_enum(values, false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn json(v: impl Serialize) -> String {
        serde_json::to_value(v)
            .unwrap()
            .as_str()
            .unwrap()
            .to_owned()
    }

    #[test]
    fn as_str_is_the_json_spelling_of_every_status() {
        use VerificationStatus as V;
        for v in [V::Approved, V::Declined, V::InReview, V::NotFinished] {
            assert_eq!(v.as_str(), json(v));
        }
        use SendStatus as S;
        for v in [S::Success, S::Retry, S::Undeliverable, S::Blocked] {
            assert_eq!(v.as_str(), json(v));
        }
        use CheckStatus as C;
        for v in [
            C::Approved,
            C::Declined,
            C::InReview,
            C::Failed,
            C::ExpiredOrNotFound,
        ] {
            assert_eq!(v.as_str(), json(v));
        }
        use AttemptOutcome as A;
        for v in [A::Delivered, A::Failed, A::Timeout] {
            assert_eq!(v.as_str(), json(v));
        }
    }
}
