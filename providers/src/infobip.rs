//! Infobip SMS: `POST {base}/sms/2/text/advanced` with `Authorization: App <api key>`, and its
//! delivery reports, verified with a configured shared secret.
//!
//! A send is answered per destination with a status object; a `REJECTED` (group 5) status in
//! an HTTP 200 is a failure, classified on the status `id` (never on names) in
//! [`classify_status`]. Delivery reports carry the final status and an `error` object with
//! `permanent: true|false`, classified in [`classify_report`].
//!
//! Receipt verification: Infobip authenticates its webhooks with the security settings of a
//! notification profile (Subscriptions API: `BASIC`, `HMAC` or `OAUTH` credentials). The HMAC
//! header format is not publicly documented, so this adapter verifies `BASIC`: with
//! `receipt_scheme = "basic"` (default) the request must carry `Authorization: Basic
//! base64(receipt_username:receipt_secret)`, the credentials configured on the profile (use an
//! HTTPS `notify_url`). With `receipt_scheme = "header"` the header `receipt_header` (default
//! `Authorization`) must equal `receipt_secret` itself. Both compare in constant time.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use serde::Deserialize;
use serde_json::{Value, json};

use crate::config::{self, FieldError, ProviderContext, ProviderTable};
use crate::http::{self, Endpoint, HeaderMap, HttpClient, ParsedError, Response, is_message_id};
use crate::{
    Capabilities, Channel, Delivery, DeliveryError, DeliveryReceipt, DynProvider, FailureClass,
    InboundRequest, OutboundMessage, Provider, ReceiptError, ReceiptFailure, ReceiptStatus,
    Redactor, Secret, lenient_e164_option, lenient_option, receipt, secret,
};

/// The registry name.
pub const NAME: &str = "infobip";
/// Infobip's global API host; accounts also have a personal one (`xxxxx.api.infobip.com`).
pub const DEFAULT_BASE_URL: &str = "https://api.infobip.com";
/// Send path.
pub const SEND_PATH: &str = "/sms/2/text/advanced";
/// `validityPeriod` bounds, minutes (Infobip's maximum is 48 hours).
const MAX_VALIDITY_MINUTES: u64 = 2880;
/// `callbackData` is at most this long.
const MAX_CALLBACK_DATA: usize = 4000;
/// Largest report body parsed.
const MAX_REPORT_BYTES: usize = 1024 * 1024;

/// Status groups.
pub const GROUP_PENDING: i64 = 1;
pub const GROUP_UNDELIVERABLE: i64 = 2;
pub const GROUP_DELIVERED: i64 = 3;
pub const GROUP_EXPIRED: i64 = 4;
pub const GROUP_REJECTED: i64 = 5;

/// How delivery reports prove they come from Infobip.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
pub enum ReceiptScheme {
    /// `Authorization: Basic` with `receipt_username` and `receipt_secret`: the `BASIC`
    /// security of an Infobip notification profile.
    #[default]
    #[serde(rename = "basic")]
    Basic,
    /// The secret itself in the header `receipt_header`.
    #[serde(rename = "header")]
    Header,
}

fn default_base_url() -> String {
    DEFAULT_BASE_URL.to_owned()
}
fn default_rate_per_sec() -> u32 {
    // Infobip's default throughput for /sms/2/text/advanced is well above this; raise per deal.
    50
}

/// `[providers.infobip]`. `Debug` hides the API key and the receipt secret.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InfobipConfig {
    /// API key (`Authorization: App <key>`).
    pub api_key: Secret,
    /// Sender: a number or an alphanumeric sender id.
    #[serde(default, deserialize_with = "lenient_e164_option")]
    pub from: Option<String>,
    /// URL Infobip posts delivery reports to (`notifyUrl`); the account's configured webhook
    /// otherwise.
    #[serde(default, deserialize_with = "lenient_option")]
    pub notify_url: Option<String>,
    /// Shared secret that authenticates delivery reports (the `basic` scheme's password);
    /// receipts are declared only with it.
    #[serde(default)]
    pub receipt_secret: Option<Secret>,
    /// `basic` (default) or `header`.
    #[serde(default)]
    pub receipt_scheme: ReceiptScheme,
    /// The user name of the `basic` scheme (required with it and `receipt_secret`).
    #[serde(default, deserialize_with = "lenient_option")]
    pub receipt_username: Option<String>,
    /// Header carrying the secret in the `header` scheme (default `Authorization`).
    #[serde(default, deserialize_with = "lenient_option")]
    pub receipt_header: Option<String>,
    /// API host (your personal base URL); override for tests.
    #[serde(default = "default_base_url")]
    pub base_url: String,
    /// Outbound requests per second (bursts up to the same number); 0 = unlimited.
    #[serde(default = "default_rate_per_sec")]
    pub rate_per_sec: u32,
    /// Per-request timeout (see the Twilio adapter's note on `routing.attempt_timeout_ms`).
    #[serde(default = "config::default_timeout_ms")]
    pub timeout_ms: u64,
}

impl InfobipConfig {
    /// Validation; errors name the key. Normalises `base_url` and `from`.
    pub fn validate(&mut self) -> Result<(), FieldError> {
        if self.api_key.is_empty() {
            return Err(FieldError::new("api_key", "missing"));
        }
        match &mut self.from {
            None => return Err(FieldError::new("from", "missing")),
            Some(from) => {
                // Numeric senders go without `+`, as Infobip shows them.
                let bare = from.trim().trim_start_matches('+').to_owned();
                if bare.is_empty() || bare.len() > 16 || bare.bytes().any(|b| b.is_ascii_control())
                {
                    return Err(FieldError::new(
                        "from",
                        "must be a number or an alphanumeric sender id",
                    ));
                }
                *from = bare;
            }
        }
        if let Some(url) = &self.notify_url {
            http::normalize_base_url(url).map_err(|m| FieldError::new("notify_url", m))?;
        }
        secret::check_optional_secret("receipt_secret", self.receipt_secret.as_ref())?;
        if self.receipt_scheme == ReceiptScheme::Basic && self.receipt_secret.is_some() {
            match &self.receipt_username {
                None => return Err(FieldError::new("receipt_username", "missing")),
                Some(u) if u.is_empty() || u.contains(':') || u.len() > 255 => {
                    return Err(FieldError::new(
                        "receipt_username",
                        "must be 1 to 255 characters without `:`",
                    ));
                }
                Some(_) => {}
            }
        }
        if let Some(h) = &self.receipt_header
            && (h.is_empty()
                || h.len() > 64
                || !h
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'))
        {
            return Err(FieldError::new(
                "receipt_header",
                "must be an HTTP header name",
            ));
        }
        config::validate_endpoint_keys(&mut self.base_url, self.timeout_ms)
    }

    /// The header that carries the report's proof.
    pub fn receipt_header(&self) -> &str {
        match (&self.receipt_header, self.receipt_scheme) {
            (Some(h), ReceiptScheme::Header) => h,
            _ => "Authorization",
        }
    }
}

/// The Infobip SMS adapter.
#[derive(Debug)]
pub struct InfobipProvider {
    config: InfobipConfig,
    endpoint: Endpoint,
}

impl InfobipProvider {
    pub fn new(mut config: InfobipConfig, http: HttpClient) -> Result<Self, FieldError> {
        config.validate()?;
        let endpoint = Endpoint::new(
            NAME,
            http,
            config.rate_per_sec,
            Duration::from_millis(config.timeout_ms),
        );
        Ok(InfobipProvider { config, endpoint })
    }

    /// The registry constructor.
    pub fn from_table(
        table: &ProviderTable,
        context: &ProviderContext,
    ) -> Result<Arc<dyn DynProvider>, FieldError> {
        let config: InfobipConfig = table.parse()?;
        Ok(Arc::new(Self::new(config, context.http().clone())?))
    }

    pub fn config(&self) -> &InfobipConfig {
        &self.config
    }

    /// The JSON body of the send request for `message`.
    pub fn request_body(&self, message: &OutboundMessage) -> Value {
        let minutes = message
            .validity
            .as_secs()
            .div_ceil(60)
            .clamp(1, MAX_VALIDITY_MINUTES);
        let mut sms = json!({
            "from": self.config.from.as_deref().unwrap_or_default(),
            "destinations": [ { "to": message.to.trim_start_matches('+') } ],
            "text": message.text(),
            "validityPeriod": minutes,
        });
        if let Some(url) = &self.config.notify_url {
            sms["notifyUrl"] = json!(url);
            sms["notifyContentType"] = json!("application/json");
        }
        if !message.reference.is_empty() && message.reference.len() <= MAX_CALLBACK_DATA {
            sms["callbackData"] = json!(message.reference);
        }
        json!({ "messages": [sms] })
    }

    async fn deliver(&self, message: &OutboundMessage) -> Result<Delivery, DeliveryError> {
        http::require_channel(NAME, message, Channel::Sms)?;
        let request = self
            .endpoint
            .client()
            .post(format!("{}{SEND_PATH}", self.config.base_url))
            .header(
                reqwest::header::AUTHORIZATION,
                format!("App {}", self.config.api_key.expose()),
            )
            .header(reqwest::header::ACCEPT, "application/json")
            .json(&self.request_body(message));
        let response = self.endpoint.send(request).await?;
        parse_response(&response)
    }
}

/// A status or error object (`groupId`, `id`, names and `permanent` for errors).
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct StatusObject {
    group_id: Option<i64>,
    id: Option<i64>,
    name: Option<String>,
    description: Option<String>,
    permanent: Option<bool>,
}

/// The class of a send-time or report status that did not deliver: `None` for statuses still
/// on their way (pending) or delivered.
///
/// REJECTED (group 5) by `id`: 12 no credits, 17 prepaid package expired, 11/13 sender, 18 the
/// account may not send to this destination, 23–25 our message, 6 network not covered by our
/// account and 19 no route on our account are `Config`; 8 prefix missing, 10 DND (opted out),
/// 14 destination blocked, 51 missing `to`, 52 invalid destination are `Permanent`; 20 flooding
/// filter and 87 signals blocked (Infobip's SMS-pumping protection) are `Fraud`; 21 system
/// error is `Transient`; any other rejection is `Fallback`. UNDELIVERABLE (2) and EXPIRED (4)
/// are `Fallback`.
pub fn classify_status(group_id: i64, id: i64) -> Option<FailureClass> {
    use FailureClass::*;
    match group_id {
        GROUP_UNDELIVERABLE | GROUP_EXPIRED => Some(Fallback),
        GROUP_REJECTED => Some(match id {
            6 | 11 | 12 | 13 | 17 | 18 | 19 | 23 | 24 | 25 => Config,
            8 | 10 | 14 | 51 | 52 => Permanent,
            20 | 87 => Fraud,
            21 => Transient,
            _ => Fallback,
        }),
        _ => None,
    }
}

/// Handset errors (group 1) that condemn the number itself when `permanent: true`:
/// EC_UNKNOWN_SUBSCRIBER (1), EC_ILLEGAL_SUBSCRIBER (9).
const NUMBER_IS_BAD: [i64; 2] = [1, 9];
/// EC_DEACTIVATED_LIST: the number is on the list of deactivated numbers.
const EC_DEACTIVATED_LIST: i64 = 3041;

/// The class of a report that did not deliver: a REJECTED status by its `id`; otherwise the
/// error object — EC_DEACTIVATED_LIST, or a handset error that condemns the number and is
/// `permanent: true`, is `Permanent`; anything else (`EC_ABSENT_SUBSCRIBER`, not permanent)
/// is `Fallback`.
fn classify_report(status: &StatusObject, error: Option<&StatusObject>) -> FailureClass {
    let group = status.group_id.unwrap_or_default();
    if group == GROUP_REJECTED {
        return classify_status(group, status.id.unwrap_or_default())
            .unwrap_or(FailureClass::Fallback);
    }
    match error {
        Some(e) if e.id == Some(EC_DEACTIVATED_LIST) => FailureClass::Permanent,
        Some(e)
            if e.group_id == Some(1)
                && e.id.is_some_and(|id| NUMBER_IS_BAD.contains(&id))
                && e.permanent == Some(true) =>
        {
            FailureClass::Permanent
        }
        _ => FailureClass::Fallback,
    }
}

/// Maps a complete response: the first message's `messageId`, unless its status is a failure
/// (a 200 that rejected the message, see [`classify_status`]); [`parse_error`] for anything
/// but a 2xx.
pub fn parse_response(response: &Response) -> Result<Delivery, DeliveryError> {
    if !response.is_success() {
        return Err(parse_error(
            response.status,
            &response.body,
            &response.headers,
        ));
    }
    #[derive(Deserialize)]
    struct Sent {
        messages: Vec<SentMessage>,
    }
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct SentMessage {
        message_id: Option<String>,
        #[serde(default)]
        status: StatusObject,
    }
    let first = serde_json::from_slice::<Sent>(&response.body)
        .ok()
        .and_then(|s| s.messages.into_iter().next());
    let unreadable = || http::unreadable_success(NAME, response.status, "message id");
    let Some(sent) = first else {
        return Err(unreadable());
    };
    let group = sent.status.group_id.unwrap_or_default();
    let id = sent.status.id.unwrap_or_default();
    if let Some(class) = classify_status(group, id) {
        let text = format!(
            "HTTP {} with status {} {}",
            response.status,
            sent.status.name.as_deref().unwrap_or("unnamed"),
            sent.status.description.as_deref().unwrap_or_default()
        );
        return Err(
            DeliveryError::new(class, NAME, Redactor::new().redact(&text))
                .with_code(status_code(group, id)),
        );
    }
    match sent.message_id {
        Some(id) if is_message_id(&id) => Ok(Delivery {
            provider_message_id: id,
        }),
        _ => Err(unreadable()),
    }
}

/// Our code for a status: `<groupId>.<id>` (`5.12`), stable where names are not.
fn status_code(group: i64, id: i64) -> String {
    format!("{group}.{id}")
}

/// Unknown errors: 429 and 5xx are `Transient`; 401/403 and redirects `Config`; any other 4xx
/// `Fallback` (Infobip refused this message for a reason the table does not know).
fn class_by_status(status: u16) -> FailureClass {
    match status {
        429 => FailureClass::Transient,
        401 | 403 | 300..=399 => FailureClass::Config,
        400..=499 => FailureClass::Fallback,
        _ => FailureClass::Transient,
    }
}

/// Maps an error response to a classified error. Infobip answers
/// `{"requestError":{"serviceException":{"messageId":"UNAUTHORIZED","text":"..."}}}` (newer
/// endpoints `{"errorCode":"E401","description":"..."}`): `UNAUTHORIZED` / `FORBIDDEN` are
/// `Config`, `TOO_MANY_REQUESTS` is `Transient`, other codes go by the HTTP status. An
/// unreadable body is `Transient` (`Config` for 401/403 and redirects). `Retry-After` is kept
/// on transient errors.
pub fn parse_error(status: u16, body: &[u8], headers: &HeaderMap) -> DeliveryError {
    let parsed: Option<Value> = serde_json::from_slice(body).ok();
    let service = parsed
        .as_ref()
        .and_then(|v| v.pointer("/requestError/serviceException"))
        .map(|e| (e.get("messageId"), e.get("text")));
    let newer = parsed
        .as_ref()
        .filter(|v| v.get("errorCode").is_some())
        .map(|v| (v.get("errorCode"), v.get("description")));
    let parsed = service.or(newer).map(|(code, text)| {
        let code = code
            .and_then(Value::as_str)
            .filter(|c| {
                !c.is_empty()
                    && c.len() <= 64
                    && c.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
            })
            .map(str::to_owned);
        let known = match code.as_deref() {
            Some("UNAUTHORIZED" | "FORBIDDEN" | "E401" | "E403") => Some(FailureClass::Config),
            Some("TOO_MANY_REQUESTS" | "E429") => Some(FailureClass::Transient),
            _ => None,
        };
        let class = known.unwrap_or_else(|| class_by_status(status));
        let text = format!(
            "HTTP {status}: {}",
            text.and_then(Value::as_str).unwrap_or("no message")
        );
        ParsedError {
            class,
            code,
            text,
            refused: known.is_some(),
        }
    });
    http::error_response(NAME, status, headers, parsed)
}

/// The `Authorization` value of the `basic` scheme: `Basic base64(username:secret)`.
pub fn basic_authorization(username: &str, secret: &str) -> String {
    use base64::Engine as _;
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{username}:{secret}"))
    )
}

/// Checks a report's proof under `scheme`, in constant time: for `basic` the header must be
/// `Basic` credentials equal to `username:secret`, for `header` the header must equal `secret`.
pub fn verify_report(scheme: ReceiptScheme, username: &str, secret: &str, header: &str) -> bool {
    match scheme {
        ReceiptScheme::Basic => {
            use base64::Engine as _;
            let Some((kind, encoded)) = header.trim().split_once(' ') else {
                return false;
            };
            let Ok(given) = base64::engine::general_purpose::STANDARD.decode(encoded.trim()) else {
                return false;
            };
            kind.eq_ignore_ascii_case("basic")
                && http::constant_time_eq(&given, format!("{username}:{secret}").as_bytes())
        }
        ReceiptScheme::Header => {
            http::constant_time_eq(header.trim().as_bytes(), secret.as_bytes())
        }
    }
}

/// Parses a verified delivery report: one receipt per `results[]` entry with a known status
/// group.
pub fn parse_report(
    body: &[u8],
    received_at: SystemTime,
) -> Result<Vec<DeliveryReceipt>, ReceiptError> {
    #[derive(Deserialize)]
    struct Report {
        results: Vec<ReportResult>,
    }
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct ReportResult {
        message_id: String,
        status: StatusObject,
        error: Option<StatusObject>,
        done_at: Option<String>,
    }
    if body.len() > MAX_REPORT_BYTES {
        return Err(ReceiptError::Malformed("body too large"));
    }
    let report: Report = serde_json::from_slice(body)
        .map_err(|_| ReceiptError::Malformed("not a delivery report"))?;
    let mut receipts = Vec::with_capacity(report.results.len());
    for r in report.results {
        if !is_message_id(&r.message_id) {
            return Err(ReceiptError::Malformed("invalid messageId"));
        }
        let group = r.status.group_id.unwrap_or_default();
        let id = r.status.id.unwrap_or_default();
        let status = match group {
            // 7 ENROUTE and 3 WAITING_DELIVERY are with the operator; 26 ACCEPTED is not yet.
            GROUP_PENDING if id == 26 => ReceiptStatus::Queued,
            GROUP_PENDING => ReceiptStatus::Sent,
            // 2 DELIVERED_TO_OPERATOR has not reached the handset yet.
            GROUP_DELIVERED if id == 2 => ReceiptStatus::Sent,
            GROUP_DELIVERED => ReceiptStatus::Delivered,
            GROUP_EXPIRED => ReceiptStatus::Expired,
            GROUP_UNDELIVERABLE | GROUP_REJECTED => ReceiptStatus::Failed,
            _ => continue,
        };
        let failure = matches!(status, ReceiptStatus::Failed | ReceiptStatus::Expired).then(|| {
            let error = r.error.as_ref().filter(|e| e.id.is_some_and(|id| id != 0));
            ReceiptFailure {
                class: classify_report(&r.status, error),
                code: Some(match error {
                    // The error is the more precise reason when there is one.
                    Some(e) if group != GROUP_REJECTED => {
                        format!(
                            "{}.{}",
                            e.group_id.unwrap_or_default(),
                            e.id.unwrap_or_default()
                        )
                    }
                    _ => status_code(group, id),
                }),
            }
        });
        let at = r
            .done_at
            .as_deref()
            .and_then(crate::timestamp::parse_rfc3339)
            .unwrap_or(received_at);
        receipts.push(DeliveryReceipt {
            provider: NAME.to_owned(),
            provider_message_id: r.message_id,
            status,
            failure,
            at,
        });
    }
    Ok(receipts)
}

impl Provider for InfobipProvider {
    fn name(&self) -> &str {
        NAME
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            delivery_receipts: self.config.receipt_secret.is_some(),
            ..Capabilities::channels(&[Channel::Sms])
        }
    }

    async fn send(&self, message: &OutboundMessage) -> Result<Delivery, DeliveryError> {
        self.deliver(message)
            .await
            .map_err(|e| secret::redact_send_error(e, message, &[self.config.api_key.expose()]))
    }

    fn request_timeout(&self) -> Option<Duration> {
        Some(self.endpoint.timeout())
    }

    fn parse_receipts(
        &self,
        request: &InboundRequest,
    ) -> Result<Vec<DeliveryReceipt>, ReceiptError> {
        let secret = receipt::verifying_secret(self.config.receipt_secret.as_ref())?;
        let proof = request.proof_header(self.config.receipt_header())?;
        let username = self.config.receipt_username.as_deref().unwrap_or_default();
        if !verify_report(self.config.receipt_scheme, username, secret, proof) {
            return Err(ReceiptError::BadSignature);
        }
        parse_report(&request.body, request.received_at)
    }
}
