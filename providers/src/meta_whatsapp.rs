//! Meta WhatsApp Cloud API: the authentication template with a copy-code button, its webhook
//! status receipts (verified by `X-Hub-Signature-256`) and the GET `hub.challenge` handshake.
//!
//! `POST {base}/{version}/{phone_number_id}/messages`, `Authorization: Bearer`, JSON. The code
//! appears twice in the template: as the body parameter and as the `url` button parameter.
//! Errors are classified on `error.code`, never on titles, in [`parse_error`]; "not on
//! WhatsApp" often arrives later, as a `failed` status in the webhook.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use serde::Deserialize;
use serde_json::{Value, json};

use crate::config::{self, FieldError, ProviderContext, ProviderTable};
use crate::http::{self, Endpoint, HeaderMap, HttpClient, ParsedError, Response};
use crate::{
    Capabilities, Channel, Delivery, DeliveryError, DeliveryReceipt, DynProvider, FailureClass,
    InboundRequest, OutboundMessage, Provider, ReceiptError, ReceiptFailure, ReceiptStatus, Secret,
    lenient_string, receipt, secret, whatsapp,
};

/// The registry name.
pub const NAME: &str = "meta_whatsapp";
/// Meta's Graph API host.
pub const DEFAULT_BASE_URL: &str = "https://graph.facebook.com";
/// Graph API version used unless configured.
pub const DEFAULT_GRAPH_VERSION: &str = "v23.0";
/// Header carrying the webhook signature.
pub const SIGNATURE_HEADER: &str = "X-Hub-Signature-256";
/// Longest `hub.challenge` echoed back.
const MAX_CHALLENGE_LEN: usize = 128;
/// 132001: the template does not exist in the language asked for.
const TEMPLATE_LANGUAGE_MISSING: &str = "132001";
/// 131056 (pair rate limit): Meta allows one message per 6 s to the same user.
const PAIR_RATE_LIMIT_WAIT: Duration = Duration::from_secs(6);
/// Largest webhook body parsed (a batch of statuses is a few KiB).
const MAX_WEBHOOK_BYTES: usize = 1024 * 1024;

fn default_base_url() -> String {
    DEFAULT_BASE_URL.to_owned()
}
fn default_graph_version() -> String {
    DEFAULT_GRAPH_VERSION.to_owned()
}
fn default_template() -> String {
    "verification_code".to_owned()
}
fn default_rate_per_sec() -> u32 {
    // Cloud API's default throughput is 80 messages/s per phone number.
    80
}

/// `[providers.meta_whatsapp]`. `Debug` hides the token and secrets.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetaWhatsappConfig {
    /// System-user access token (Bearer).
    pub access_token: Secret,
    /// The sending phone number's id (not the number).
    #[serde(deserialize_with = "lenient_string")]
    pub phone_number_id: String,
    /// `vNN.N`.
    #[serde(default = "default_graph_version")]
    pub graph_version: String,
    /// Name of the approved authentication template (copy-code button).
    #[serde(default = "default_template")]
    pub template: String,
    /// Locale (`pt-br`, `pt`) -> template language code (`pt_BR`); merged over the defaults.
    #[serde(default)]
    pub languages: BTreeMap<String, String>,
    /// Language code for locales with no mapping, and the language the template is resent in
    /// once when Meta answers 132001 (template not approved in the language asked for): the
    /// template must be approved in this language.
    #[serde(default = "whatsapp::default_language")]
    pub default_language: String,
    /// App secret: verifies webhook signatures. Receipts are declared only with it.
    #[serde(default)]
    pub app_secret: Option<Secret>,
    /// The verify token configured in the app dashboard, for the GET handshake.
    #[serde(default)]
    pub verify_token: Option<Secret>,
    /// API host; override for tests.
    #[serde(default = "default_base_url")]
    pub base_url: String,
    /// Outbound requests per second (bursts up to the same number); 0 = unlimited.
    #[serde(default = "default_rate_per_sec")]
    pub rate_per_sec: u32,
    /// Per-request timeout (see the Twilio adapter's note on `routing.attempt_timeout_ms`).
    #[serde(default = "config::default_timeout_ms")]
    pub timeout_ms: u64,
}

impl MetaWhatsappConfig {
    /// Validation; errors name the key. Normalises `languages` keys and `base_url`.
    pub fn validate(&mut self) -> Result<(), FieldError> {
        if self.access_token.is_empty() {
            return Err(FieldError::new("access_token", "missing"));
        }
        if self.phone_number_id.is_empty()
            || self.phone_number_id.len() > 32
            || !self.phone_number_id.bytes().all(|b| b.is_ascii_digit())
        {
            return Err(FieldError::new(
                "phone_number_id",
                "must be the numeric phone number id from the WhatsApp Manager",
            ));
        }
        let v = &self.graph_version;
        let valid_version = v.strip_prefix('v').is_some_and(|rest| {
            let mut parts = rest.split('.');
            matches!((parts.next(), parts.next(), parts.next()),
                (Some(a), Some(b), None) if !a.is_empty() && !b.is_empty()
                    && a.bytes().chain(b.bytes()).all(|c| c.is_ascii_digit()))
        });
        if !valid_version {
            return Err(FieldError::new("graph_version", "must look like v23.0"));
        }
        whatsapp::check_template("template", &self.template)?;
        whatsapp::validate_languages(
            &mut self.languages,
            &self.default_language,
            "languages",
            "default_language",
        )?;
        secret::check_optional_secret("app_secret", self.app_secret.as_ref())?;
        secret::check_optional_secret("verify_token", self.verify_token.as_ref())?;
        config::validate_endpoint_keys(&mut self.base_url, self.timeout_ms)
    }

    /// The template language for a BCP 47 locale: the configured mapping, then the defaults,
    /// for the full tag and then its language; `default_language` otherwise.
    pub fn language_for(&self, locale: &str) -> String {
        whatsapp::language_for(&self.languages, &self.default_language, locale)
    }
}

/// The Meta WhatsApp Cloud API adapter.
#[derive(Debug)]
pub struct MetaWhatsappProvider {
    config: MetaWhatsappConfig,
    endpoint: Endpoint,
}

impl MetaWhatsappProvider {
    pub fn new(mut config: MetaWhatsappConfig, http: HttpClient) -> Result<Self, FieldError> {
        config.validate()?;
        let endpoint = Endpoint::new(
            NAME,
            http,
            config.rate_per_sec,
            Duration::from_millis(config.timeout_ms),
        );
        Ok(MetaWhatsappProvider { config, endpoint })
    }

    /// The registry constructor.
    pub fn from_table(
        table: &ProviderTable,
        context: &ProviderContext,
    ) -> Result<Arc<dyn DynProvider>, FieldError> {
        let config: MetaWhatsappConfig = table.parse()?;
        Ok(Arc::new(Self::new(config, context.http().clone())?))
    }

    pub fn config(&self) -> &MetaWhatsappConfig {
        &self.config
    }

    /// The JSON body of the authentication template for `message`.
    pub fn request_body(&self, message: &OutboundMessage) -> Value {
        self.request_body_in(message, &self.config.language_for(&message.locale))
    }

    /// The JSON body of the authentication template for `message` in template language
    /// `language`.
    fn request_body_in(&self, message: &OutboundMessage, language: &str) -> Value {
        let code = message.code.expose();
        json!({
            "messaging_product": "whatsapp",
            "recipient_type": "individual",
            "to": message.to.trim_start_matches('+'),
            "type": "template",
            "template": {
                "name": self.config.template,
                "language": whatsapp::template_language(language),
                "components": whatsapp::template_components(code),
            }
        })
    }

    async fn deliver(&self, message: &OutboundMessage) -> Result<Delivery, DeliveryError> {
        http::require_channel(NAME, message, Channel::Whatsapp)?;
        let language = self.config.language_for(&message.locale);
        match self.post(&self.request_body_in(message, &language)).await {
            // The template is not approved in the user's language: once more in the default
            // language (a template in another language beats no message), else the next route.
            Err(e) if e.code.as_deref() == Some(TEMPLATE_LANGUAGE_MISSING) => {
                let default = &self.config.default_language;
                if language.eq_ignore_ascii_case(default) {
                    return Err(e);
                }
                self.post(&self.request_body_in(message, default)).await
            }
            other => other,
        }
    }

    async fn post(&self, body: &Value) -> Result<Delivery, DeliveryError> {
        let url = format!(
            "{}/{}/{}/messages",
            self.config.base_url, self.config.graph_version, self.config.phone_number_id
        );
        let request = self
            .endpoint
            .client()
            .post(url)
            .bearer_auth(self.config.access_token.expose())
            .json(body);
        let response = self.endpoint.send(request).await?;
        parse_response(&response)
    }
}

/// Maps a complete response: `messages[0].id` of a success, [`parse_error`] for anything else,
/// including a 2xx whose body is an `error` object.
pub fn parse_response(response: &Response) -> Result<Delivery, DeliveryError> {
    let body: Option<Value> = serde_json::from_slice(&response.body).ok();
    let has_error = body.as_ref().is_some_and(|b| b.get("error").is_some());
    if !response.is_success() || has_error {
        return Err(parse_error(
            response.status,
            &response.body,
            &response.headers,
        ));
    }
    let id = body
        .as_ref()
        .and_then(|b| b.pointer("/messages/0/id"))
        .and_then(Value::as_str)
        .filter(|id| !id.is_empty() && id.len() <= 256 && id.is_ascii());
    match id {
        Some(id) => Ok(Delivery {
            provider_message_id: id.to_owned(),
        }),
        None => Err(http::unreadable_success(
            NAME,
            response.status,
            "message id",
        )),
    }
}

/// The class of a Cloud API error code (`error.code`, or `errors[].code` in a webhook).
/// `None` for codes this table does not know.
pub fn classify(code: i64) -> Option<FailureClass> {
    use FailureClass::*;
    Some(match code {
        // Not on WhatsApp / undeliverable; experiment; spam rate limit of this business;
        // template not approved in this language (after the retry in the default language):
        // the next route, without giving up on this provider for the rest of the send.
        131026 | 130472 | 131048 | 132001 => Fallback,
        // Throughput, pair rate limit (one message per 6 s to a user), app rate limit,
        // rate limit of this phone number / WABA.
        130429 | 131056 | 4 | 80007 => Transient,
        // Unknown API error / service temporarily unavailable (Meta: retry later).
        1 | 2 | 131000 | 131016 => Transient,
        // Recipient not in the allowed list; re-engagement window; auth.
        131030 | 131047 | 0 | 190 => Config,
        // Permissions, account locked or unpaid, template missing or not approved.
        3 | 10 | 200..=299 | 131031 | 131042 | 132000..=132999 => Config,
        // Invalid parameter, required parameter missing, parameter value invalid: our request;
        // the sending number is not registered; the account is blocked for policy violations.
        100 | 131008 | 131009 | 133010 | 368 => Config,
        _ => return None,
    })
}

/// A Cloud API error code: a number, or a string of one.
fn error_code(code: &Value) -> Option<i64> {
    match code {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.parse().ok(),
        _ => None,
    }
}

/// Unknown codes: 429 and 5xx are `Transient`, 401/403 `Config`, any other 4xx `Fallback` (Meta
/// refused this message for a reason the table does not know: try the next route).
fn class_by_status(status: u16) -> FailureClass {
    match status {
        429 => FailureClass::Transient,
        401 | 403 => FailureClass::Config,
        300..=399 => FailureClass::Config,
        400..=499 => FailureClass::Fallback,
        200..=299 => FailureClass::Fallback,
        _ => FailureClass::Transient,
    }
}

/// Maps an error response (or a 2xx carrying an `error` object) to a classified error: on
/// `error.code` first, the HTTP status otherwise. A 4xx that is not Meta's envelope is
/// `Config` (401/403) or `Fallback` (429 stays `Transient`); another unreadable body is
/// `Transient`. 131056 (pair rate limit) waits at least 6 s. The message is Meta's `message` and `error_data.details`, numbers masked.
pub fn parse_error(status: u16, body: &[u8], headers: &HeaderMap) -> DeliveryError {
    #[derive(Deserialize)]
    struct Envelope {
        error: Option<GraphError>,
    }
    #[derive(Deserialize)]
    struct GraphError {
        code: Option<Value>,
        message: Option<String>,
        error_data: Option<ErrorData>,
    }
    #[derive(Deserialize)]
    struct ErrorData {
        details: Option<String>,
    }
    let envelope = serde_json::from_slice::<Envelope>(body)
        .ok()
        .and_then(|e| e.error);
    let is_envelope = envelope.is_some();
    let mut pair_rate_limited = false;
    let parsed = envelope.map(|e| {
        let code = e.code.as_ref().and_then(error_code);
        let known = code.and_then(classify);
        pair_rate_limited = code == Some(131056);
        let mut text = format!(
            "HTTP {status}: {}",
            e.message.as_deref().unwrap_or("no message")
        );
        if let Some(details) = e.error_data.and_then(|d| d.details) {
            text.push_str(" — ");
            text.push_str(&details);
        }
        ParsedError {
            class: known.unwrap_or_else(|| class_by_status(status)),
            code: code.map(|c| c.to_string()),
            text,
            refused: known.is_some(),
        }
    });
    // A 4xx that is not Meta's error envelope (a proxy's page, an HTML error): refused, and the
    // same request would be refused again.
    let parsed = parsed.or_else(|| {
        (!is_envelope && (400..=499).contains(&status) && status != 429).then(|| ParsedError {
            class: class_by_status(status),
            code: None,
            text: format!("HTTP {status} without Meta's error envelope"),
            refused: true,
        })
    });
    let err = http::error_response(NAME, status, headers, parsed);
    if pair_rate_limited {
        // The dispatcher waits at most a short while: in practice this falls back.
        let wait = err
            .retry_after
            .unwrap_or_default()
            .max(PAIR_RATE_LIMIT_WAIT);
        return err.with_retry_after(wait);
    }
    err
}

/// `sha256=` + hex(HMAC-SHA256(app secret, raw body)), the value of `X-Hub-Signature-256`.
pub fn compute_signature(app_secret: &str, body: &[u8]) -> String {
    format!(
        "sha256={}",
        http::hmac_sha256_hex(app_secret.as_bytes(), body)
    )
}

/// Checks an `X-Hub-Signature-256` value against the raw body, in constant time.
pub fn verify_signature(app_secret: &str, body: &[u8], header: &str) -> bool {
    header
        .trim()
        .strip_prefix("sha256=")
        .is_some_and(|hex_sig| http::hmac_sha256_hex_matches(app_secret.as_bytes(), body, hex_sig))
}

/// Parses a verified webhook body: every `entry[].changes[].value.statuses[]` becomes a
/// receipt; other changes (incoming messages, errors) and unknown statuses give none.
pub fn parse_webhook(
    body: &[u8],
    received_at: SystemTime,
) -> Result<Vec<DeliveryReceipt>, ReceiptError> {
    #[derive(Deserialize)]
    struct Webhook {
        #[serde(default)]
        entry: Vec<Entry>,
    }
    #[derive(Deserialize)]
    struct Entry {
        #[serde(default)]
        changes: Vec<Change>,
    }
    #[derive(Deserialize)]
    struct Change {
        #[serde(default)]
        value: ChangeValue,
    }
    #[derive(Default, Deserialize)]
    struct ChangeValue {
        #[serde(default)]
        statuses: Vec<Status>,
    }
    #[derive(Deserialize)]
    struct Status {
        id: String,
        status: String,
        timestamp: Option<Value>,
        #[serde(default)]
        errors: Vec<StatusError>,
    }
    #[derive(Deserialize)]
    struct StatusError {
        code: Option<Value>,
    }

    if body.len() > MAX_WEBHOOK_BYTES {
        return Err(ReceiptError::Malformed("body too large"));
    }
    let hook: Webhook =
        serde_json::from_slice(body).map_err(|_| ReceiptError::Malformed("not a webhook body"))?;
    let mut receipts = Vec::new();
    for status in hook
        .entry
        .into_iter()
        .flat_map(|e| e.changes)
        .flat_map(|c| c.value.statuses)
    {
        if status.id.is_empty() || status.id.len() > 256 || !status.id.is_ascii() {
            return Err(ReceiptError::Malformed("invalid message id"));
        }
        let kind = match status.status.as_str() {
            "sent" => ReceiptStatus::Sent,
            "delivered" => ReceiptStatus::Delivered,
            "read" => ReceiptStatus::Read,
            "failed" => ReceiptStatus::Failed,
            _ => continue,
        };
        let failure = (kind == ReceiptStatus::Failed).then(|| {
            let code = status
                .errors
                .first()
                .and_then(|e| e.code.as_ref())
                .and_then(error_code);
            ReceiptFailure {
                class: code.and_then(classify).unwrap_or(FailureClass::Fallback),
                code: code.map(|c| c.to_string()),
            }
        });
        let at = status
            .timestamp
            .and_then(|t| match t {
                Value::String(s) => s.parse::<u64>().ok(),
                Value::Number(n) => n.as_u64(),
                _ => None,
            })
            .and_then(|secs| SystemTime::UNIX_EPOCH.checked_add(Duration::from_secs(secs)))
            .unwrap_or(received_at);
        receipts.push(DeliveryReceipt {
            provider: NAME.to_owned(),
            provider_message_id: status.id,
            status: kind,
            failure,
            at,
        });
    }
    Ok(receipts)
}

impl Provider for MetaWhatsappProvider {
    fn name(&self) -> &str {
        NAME
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            delivery_receipts: self.config.app_secret.is_some(),
            ..Capabilities::channels(&[Channel::Whatsapp])
        }
    }

    async fn send(&self, message: &OutboundMessage) -> Result<Delivery, DeliveryError> {
        self.deliver(message).await.map_err(|e| {
            secret::redact_send_error(e, message, &[self.config.access_token.expose()])
        })
    }

    fn request_timeout(&self) -> Option<Duration> {
        Some(self.endpoint.timeout())
    }

    fn parse_receipts(
        &self,
        request: &InboundRequest,
    ) -> Result<Vec<DeliveryReceipt>, ReceiptError> {
        let secret = receipt::verifying_secret(self.config.app_secret.as_ref())?;
        let signature = request.proof_header(SIGNATURE_HEADER)?;
        if !verify_signature(secret, &request.body, signature) {
            return Err(ReceiptError::BadSignature);
        }
        parse_webhook(&request.body, request.received_at)
    }

    fn verify_subscription(&self, request: &InboundRequest) -> Result<String, ReceiptError> {
        let token = receipt::verifying_secret(self.config.verify_token.as_ref())?;
        if request.query_param("hub.mode") != Some("subscribe") {
            return Err(ReceiptError::Malformed("hub.mode is not subscribe"));
        }
        let given = request
            .query_param("hub.verify_token")
            .ok_or(ReceiptError::BadSignature)?;
        if !http::constant_time_eq(given.as_bytes(), token.as_bytes()) {
            return Err(ReceiptError::BadSignature);
        }
        let challenge = request
            .query_param("hub.challenge")
            .ok_or(ReceiptError::Malformed("hub.challenge missing"))?;
        // Echoed verbatim into our response: accept only what Meta sends (a token of digits).
        if challenge.is_empty()
            || challenge.len() > MAX_CHALLENGE_LEN
            || !challenge
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err(ReceiptError::Malformed(
                "hub.challenge is not a plain token",
            ));
        }
        Ok(challenge.to_owned())
    }
}
