//! Telegram Gateway API: our own code delivered in Telegram by `sendVerificationMessage` (with
//! `ttl` and `callback_url`), optionally after a `checkSendAbility`, and the delivery reports
//! Telegram posts to `callback_url`, verified by `X-Request-Timestamp` / `X-Request-Signature`.
//!
//! `POST {base}/{method}`, `Authorization: Bearer <token>`, JSON. Every answer is
//! `{"ok":true,"result":...}` or `{"ok":false,"error":"PHONE_NUMBER_INVALID"}` whatever the HTTP
//! status, so [`parse_error`] branches on `ok` and the error string first.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use parking_lot::Mutex;
use tokio::time::Instant;

use serde::Deserialize;
use serde_json::{Value, json};

use crate::config::{self, FieldError, ProviderContext, ProviderTable};
use crate::http::{self, Endpoint, HeaderMap, HttpClient, ParsedError, Response, is_message_id};
use crate::{
    Capabilities, Channel, Delivery, DeliveryError, DeliveryReceipt, DynProvider, FailureClass,
    InboundRequest, OutboundMessage, Provider, ReceiptError, ReceiptFailure, ReceiptStatus, Secret,
    lenient_option, secret,
};

/// The registry name.
pub const NAME: &str = "telegram";
/// Telegram's Gateway API host.
pub const DEFAULT_BASE_URL: &str = "https://gatewayapi.telegram.org";
/// Header with the Unix time a report was submitted.
pub const TIMESTAMP_HEADER: &str = "X-Request-Timestamp";
/// Header with the report signature.
pub const SIGNATURE_HEADER: &str = "X-Request-Signature";
/// `ttl` we send (seconds): half the code's validity, within these bounds. Telegram accepts
/// 30–3600 s; a `ttl` well inside the validity lets the `expired` report arrive while the code
/// still works, so the engine's late fallback can deliver it by another channel.
pub const MIN_TTL_SECS: u64 = 60;
pub const MAX_TTL_SECS: u64 = 120;
/// How long the `request_id` of a `checkSendAbility` is reused for the same number after a
/// failed send (Telegram documents no lifetime; a retry comes within seconds).
pub const REQUEST_ID_REUSE: Duration = Duration::from_secs(300);
/// At most this many reusable `request_id`s are kept; the oldest goes first.
const MAX_REUSABLE_REQUEST_IDS: usize = 4096;
/// `payload` is at most this many bytes.
const MAX_PAYLOAD_BYTES: usize = 128;
/// `callback_url` is at most this many bytes.
const MAX_CALLBACK_URL_BYTES: usize = 256;
/// Largest report body parsed (a RequestStatus is a few hundred bytes).
const MAX_REPORT_BYTES: usize = 64 * 1024;
/// A report timestamp this far in the future (receiver clock behind) is still accepted.
const MAX_CLOCK_SKEW: Duration = Duration::from_secs(60);

fn default_base_url() -> String {
    DEFAULT_BASE_URL.to_owned()
}
fn default_rate_per_sec() -> u32 {
    // Telegram publishes no number; FLOOD_WAIT tells us when we exceed it.
    30
}
fn default_receipt_max_age_secs() -> u64 {
    300
}

/// `[providers.telegram]`. `Debug` hides the token.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TelegramConfig {
    /// Gateway API token (Bearer); its SHA-256 is also the key of report signatures.
    pub access_token: Secret,
    /// Public HTTPS URL Telegram posts delivery reports to; receipts are declared only with it.
    #[serde(default, deserialize_with = "lenient_option")]
    pub callback_url: Option<String>,
    /// A verified Telegram channel, owned by the token's account, that sends the code.
    #[serde(default, deserialize_with = "lenient_option")]
    pub sender_username: Option<String>,
    /// Calls `checkSendAbility` first and sends with its `request_id` (the check is what is
    /// charged; a number Telegram cannot reach fails before any message is created). A send
    /// that fails transiently keeps that `request_id` for the retry to the same number (for
    /// up to 5 minutes), so the retry does not pay for a second check.
    #[serde(default)]
    pub check_send_ability: bool,
    /// Reports signed longer ago than this (by `X-Request-Timestamp`) are refused as stale.
    #[serde(default = "default_receipt_max_age_secs")]
    pub receipt_max_age_secs: u64,
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

impl TelegramConfig {
    /// Validation; errors name the key. Normalises `base_url`.
    pub fn validate(&mut self) -> Result<(), FieldError> {
        if self.access_token.is_empty() {
            return Err(FieldError::new("access_token", "missing"));
        }
        if let Some(url) = &self.callback_url
            && (!url.starts_with("https://")
                || url.len() > MAX_CALLBACK_URL_BYTES
                || http::normalize_base_url(url).is_err())
        {
            return Err(FieldError::new(
                "callback_url",
                "must be an https:// URL of at most 256 bytes",
            ));
        }
        if let Some(name) = &mut self.sender_username {
            let bare = name.trim().trim_start_matches('@').to_owned();
            if bare.len() < 4
                || bare.len() > 32
                || !bare.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
            {
                return Err(FieldError::new(
                    "sender_username",
                    "must be a Telegram channel username (letters, digits and _)",
                ));
            }
            *name = bare;
        }
        if self.receipt_max_age_secs == 0 {
            return Err(FieldError::new(
                "receipt_max_age_secs",
                "must be greater than 0",
            ));
        }
        config::validate_endpoint_keys(&mut self.base_url, self.timeout_ms)
    }
}

/// The Telegram Gateway adapter.
#[derive(Debug)]
pub struct TelegramProvider {
    config: TelegramConfig,
    endpoint: Endpoint,
    paid_checks: PaidChecks,
}

/// `request_id`s of paid `checkSendAbility` calls whose send failed transiently, by phone
/// number, each until its expiry; bounded (the oldest is dropped when full).
#[derive(Default)]
struct PaidChecks(Mutex<HashMap<String, (String, Instant)>>);

impl PaidChecks {
    /// The unexpired `request_id` kept for `phone`, if any.
    fn get(&self, phone: &str) -> Option<String> {
        let mut map = self.0.lock();
        match map.get(phone) {
            Some((id, until)) if *until > Instant::now() => Some(id.clone()),
            Some(_) => {
                map.remove(phone);
                None
            }
            None => None,
        }
    }

    fn keep(&self, phone: &str, request_id: String) {
        let now = Instant::now();
        let mut map = self.0.lock();
        if map.len() >= MAX_REUSABLE_REQUEST_IDS && !map.contains_key(phone) {
            map.retain(|_, (_, until)| *until > now);
            if map.len() >= MAX_REUSABLE_REQUEST_IDS
                && let Some(oldest) = map
                    .iter()
                    .min_by_key(|(_, (_, until))| *until)
                    .map(|(k, _)| k.clone())
            {
                map.remove(&oldest);
            }
        }
        map.insert(phone.to_owned(), (request_id, now + REQUEST_ID_REUSE));
    }

    fn forget(&self, phone: &str) {
        self.0.lock().remove(phone);
    }
}

impl std::fmt::Debug for PaidChecks {
    /// The count only: the keys are phone numbers.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PaidChecks({})", self.0.lock().len())
    }
}

impl TelegramProvider {
    pub fn new(mut config: TelegramConfig, http: HttpClient) -> Result<Self, FieldError> {
        config.validate()?;
        let endpoint = Endpoint::new(
            NAME,
            http,
            config.rate_per_sec,
            Duration::from_millis(config.timeout_ms),
        );
        Ok(TelegramProvider {
            config,
            endpoint,
            paid_checks: PaidChecks::default(),
        })
    }

    /// The registry constructor.
    pub fn from_table(
        table: &ProviderTable,
        context: &ProviderContext,
    ) -> Result<Arc<dyn DynProvider>, FieldError> {
        let config: TelegramConfig = table.parse()?;
        Ok(Arc::new(Self::new(config, context.http().clone())?))
    }

    pub fn config(&self) -> &TelegramConfig {
        &self.config
    }

    /// The `sendVerificationMessage` parameters for `message` (with the `request_id` of a
    /// preceding `checkSendAbility`, when there was one).
    pub fn request_body(&self, message: &OutboundMessage, request_id: Option<&str>) -> Value {
        let ttl = (message.validity.as_secs() / 2).clamp(MIN_TTL_SECS, MAX_TTL_SECS);
        let mut body = json!({
            "phone_number": message.to,
            "code": message.code.expose(),
            "ttl": ttl,
        });
        if let Some(id) = request_id {
            body["request_id"] = json!(id);
        }
        if let Some(sender) = &self.config.sender_username {
            body["sender_username"] = json!(sender);
        }
        if let Some(url) = &self.config.callback_url {
            body["callback_url"] = json!(url);
        }
        // Our reference comes back in the report; dropped when Telegram would refuse it.
        if !message.reference.is_empty() && message.reference.len() <= MAX_PAYLOAD_BYTES {
            body["payload"] = json!(message.reference);
        }
        body
    }

    async fn call(&self, method: &str, body: &Value) -> Result<Response, DeliveryError> {
        let request = self
            .endpoint
            .client()
            .post(format!("{}/{method}", self.config.base_url))
            .bearer_auth(self.config.access_token.expose())
            .json(body);
        self.endpoint.send(request).await
    }

    async fn deliver(&self, message: &OutboundMessage) -> Result<Delivery, DeliveryError> {
        http::require_channel(NAME, message, Channel::Telegram)?;
        let code = message.code.expose();
        if !(4..=8).contains(&code.len()) || !code.bytes().all(|b| b.is_ascii_digit()) {
            // Telegram takes only codes of 4 to 8 digits: the engine's code format does not fit.
            return Err(DeliveryError::config(
                NAME,
                "Telegram Gateway accepts only codes of 4 to 8 digits",
            )
            .with_code("code_format"));
        }
        if !self.config.check_send_ability {
            let response = self
                .call("sendVerificationMessage", &self.request_body(message, None))
                .await?;
            return parse_response(&response);
        }
        let request_id = match self.paid_checks.get(&message.to) {
            Some(id) => id,
            None => {
                let response = self
                    .call("checkSendAbility", &json!({ "phone_number": message.to }))
                    .await?;
                parse_response(&response)?.provider_message_id
            }
        };
        let body = self.request_body(message, Some(&request_id));
        let result = match self.call("sendVerificationMessage", &body).await {
            Ok(response) => parse_response(&response),
            Err(e) => Err(e),
        };
        match &result {
            // The check is paid for and nothing went out with it: the retry reuses it. An
            // error about the request id itself needs a fresh check.
            Err(e)
                if e.is_transient()
                    && !matches!(
                        e.code.as_deref(),
                        Some("REQUEST_ID_INVALID" | "PHONE_NUMBER_MISMATCH")
                    ) =>
            {
                self.paid_checks.keep(&message.to, request_id)
            }
            _ => self.paid_checks.forget(&message.to),
        }
        result
    }

    /// Reports an approved code's request to `checkVerificationStatus` (Telegram's conversion
    /// accounting). Failures are logged, without the token or the number, never returned.
    async fn report_approval(&self, request_id: &str) {
        if !is_message_id(request_id) {
            tracing::warn!(
                provider = NAME,
                "not reporting approval: invalid request_id"
            );
            return;
        }
        let outcome = match self
            .call(
                "checkVerificationStatus",
                &json!({ "request_id": request_id }),
            )
            .await
        {
            Ok(response) => parse_response(&response).map(|_| ()),
            Err(e) => Err(e),
        };
        if let Err(e) = outcome {
            let e = secret::redact_send_error_with(e, &[self.config.access_token.expose()]);
            tracing::warn!(
                provider = NAME,
                class = %e.class,
                code = e.code.as_deref().unwrap_or(""),
                "checkVerificationStatus failed: {}",
                e.message
            );
        }
    }
}

/// Maps a complete response: `result.request_id` of `{"ok":true}`, [`parse_error`] for
/// anything else (`{"ok":false}` with any HTTP status, or a failed status).
pub fn parse_response(response: &Response) -> Result<Delivery, DeliveryError> {
    #[derive(Deserialize)]
    struct Envelope {
        ok: Option<bool>,
        result: Option<Value>,
    }
    let envelope = serde_json::from_slice::<Envelope>(&response.body).ok();
    let ok = envelope.as_ref().and_then(|e| e.ok);
    if ok == Some(false) || !response.is_success() {
        return Err(parse_error(
            response.status,
            &response.body,
            &response.headers,
        ));
    }
    let id = envelope
        .as_ref()
        .filter(|_| ok == Some(true))
        .and_then(|e| e.result.as_ref())
        .and_then(|r| r.get("request_id"))
        .and_then(Value::as_str)
        .filter(|id| is_message_id(id));
    match id {
        Some(id) => Ok(Delivery {
            provider_message_id: id.to_owned(),
        }),
        None => Err(http::unreadable_success(
            NAME,
            response.status,
            "request_id",
        )),
    }
}

/// The seconds of a `FLOOD_WAIT_<n>` error.
pub fn flood_wait(error: &str) -> Option<Duration> {
    let secs = error.strip_prefix("FLOOD_WAIT_")?;
    if secs.is_empty() || secs.len() > 9 || !secs.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(Duration::from_secs(secs.parse().ok()?).min(http::MAX_RETRY_AFTER))
}

/// The class of a Gateway error string (`PHONE_NUMBER_INVALID`); `None` for strings this table
/// does not know.
pub fn classify(error: &str) -> Option<FailureClass> {
    use FailureClass::*;
    if error.starts_with("FLOOD_WAIT") {
        return Some(Transient);
    }
    Some(match error {
        // No Telegram account on the number / Telegram cannot deliver to it: another channel
        // may. PHONE_NUMBER_INVALID too: the engine validated the number before any send, so
        // Telegram disagreeing says nothing about the number for SMS or voice.
        "PHONE_NUMBER_NOT_FOUND" | "PHONE_NUMBER_NOT_AVAILABLE" | "PHONE_NUMBER_INVALID" => {
            Fallback
        }
        // The `request_id` of our `checkSendAbility` was refused (expired, or not for this
        // number): the adapter drops it and the retry pays for a fresh check.
        "REQUEST_ID_INVALID" | "PHONE_NUMBER_MISMATCH" => Transient,
        // A message already went out with this `request_id` (an earlier attempt that timed
        // out got through). Which code it carried cannot be told: another route, and the
        // error says a message may have been delivered.
        "MESSAGE_ALREADY_SENT" => Fallback,
        // Telegram's code validity ran out (only `checkVerificationStatus` says it): this
        // message cannot be used any more, another route can.
        "CODE_EXPIRED" => Fallback,
        // Our token, balance or parameters.
        "ACCESS_TOKEN_INVALID"
        | "ACCESS_TOKEN_REQUIRED"
        | "BALANCE_NOT_ENOUGH"
        | "CODE_INVALID"
        | "CODE_LENGTH_INVALID"
        | "CODE_LENGTH_REQUIRED"
        | "SENDER_USERNAME_INVALID"
        | "SENDER_NOT_VERIFIED"
        | "SENDER_NOT_OWNED"
        | "CALLBACK_URL_INVALID"
        | "TTL_INVALID"
        | "PAYLOAD_INVALID"
        | "UNKNOWN_METHOD" => Config,
        _ => return None,
    })
}

/// Unknown errors: 429 and 5xx are `Transient`, 401/403 and redirects `Config`, any other
/// status (4xx, or a 2xx that says `ok:false`) `Fallback`: Telegram refused this message for a
/// reason the table does not know, so the next route is tried.
fn class_by_status(status: u16) -> FailureClass {
    match status {
        429 => FailureClass::Transient,
        401 | 403 | 300..=399 => FailureClass::Config,
        200..=299 | 400..=499 => FailureClass::Fallback,
        _ => FailureClass::Transient,
    }
}

/// Maps a failed answer to a classified error: the `error` string first (the code kept as
/// Telegram wrote it, `FLOOD_WAIT_<n>` giving `retry_after` = n s), the HTTP status otherwise.
/// An unreadable body is `Transient` (`Config` for 401/403 and redirects). A `Retry-After`
/// header is kept on transient errors that have no `FLOOD_WAIT`.
pub fn parse_error(status: u16, body: &[u8], headers: &HeaderMap) -> DeliveryError {
    #[derive(Deserialize)]
    struct Envelope {
        ok: Option<bool>,
        error: Option<Value>,
    }
    let error = serde_json::from_slice::<Envelope>(body)
        .ok()
        .filter(|e| e.ok != Some(true))
        .and_then(|e| e.error)
        .and_then(|e| match e {
            Value::String(s) => Some(s),
            _ => None,
        })
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty());
    let wait = error.as_deref().and_then(flood_wait);
    let already_sent = error.as_deref() == Some("MESSAGE_ALREADY_SENT");
    let parsed = error.map(|e| ParsedError {
        refused: classify(&e).is_some(),
        class: classify(&e).unwrap_or_else(|| class_by_status(status)),
        // Telegram's errors are UPPER_SNAKE tokens; anything else is kept out of the code.
        code: (e.len() <= 64
            && e.bytes()
                .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_'))
        .then(|| e.clone()),
        text: format!("HTTP {status}: {e}"),
    });
    let mut err = http::error_response(NAME, status, headers, parsed);
    // FLOOD_WAIT (always `Transient`) says how long, and overrides `Retry-After`.
    if err.is_transient()
        && let Some(wait) = wait
    {
        err = err.with_retry_after(wait);
    }
    if already_sent {
        err = err.outcome_unknown();
    }
    err
}

/// The report signing key: SHA-256 of the API token, as raw bytes.
fn signing_key(access_token: &str) -> [u8; 32] {
    use sha2::Digest;
    sha2::Sha256::digest(access_token.as_bytes()).into()
}

/// hex(HMAC-SHA256(key = SHA256(token), timestamp + "\n" + raw body)): the value of
/// `X-Request-Signature`.
pub fn compute_signature(access_token: &str, timestamp: &str, body: &[u8]) -> String {
    http::hmac_sha256_hex(&signing_key(access_token), &signed_message(timestamp, body))
}

/// What a report signs: timestamp + "\n" + raw body.
fn signed_message(timestamp: &str, body: &[u8]) -> Vec<u8> {
    let mut message = Vec::with_capacity(timestamp.len() + 1 + body.len());
    message.extend_from_slice(timestamp.as_bytes());
    message.push(b'\n');
    message.extend_from_slice(body);
    message
}

/// Checks a report: the signature over timestamp and body (constant time), then the freshness
/// of the timestamp against `received_at` (at most `max_age` old, at most a minute ahead).
pub fn verify_report(
    access_token: &str,
    timestamp: &str,
    signature: &str,
    body: &[u8],
    received_at: SystemTime,
    max_age: Duration,
) -> Result<(), ReceiptError> {
    let timestamp = timestamp.trim();
    if !http::hmac_sha256_hex_matches(
        &signing_key(access_token),
        &signed_message(timestamp, body),
        signature.trim(),
    ) {
        return Err(ReceiptError::BadSignature);
    }
    let secs = timestamp
        .parse::<i64>()
        .ok()
        .filter(|_| timestamp.bytes().all(|b| b.is_ascii_digit()))
        .ok_or(ReceiptError::Malformed(
            "X-Request-Timestamp is not a Unix time",
        ))?;
    let sent = crate::timestamp::from_unix(secs).ok_or(ReceiptError::Malformed(
        "X-Request-Timestamp is not a Unix time",
    ))?;
    let fresh = match received_at.duration_since(sent) {
        Ok(age) => age <= max_age,
        Err(ahead) => ahead.duration() <= MAX_CLOCK_SKEW,
    };
    if !fresh {
        return Err(ReceiptError::Stale);
    }
    Ok(())
}

/// Parses a verified report (a RequestStatus) into a receipt. A report without a delivery
/// status, or with one this table does not know, gives none.
pub fn parse_report(
    body: &[u8],
    received_at: SystemTime,
) -> Result<Option<DeliveryReceipt>, ReceiptError> {
    #[derive(Deserialize)]
    struct RequestStatus {
        request_id: String,
        delivery_status: Option<DeliveryStatus>,
    }
    #[derive(Deserialize)]
    struct DeliveryStatus {
        status: String,
        updated_at: Option<Value>,
    }
    if body.len() > MAX_REPORT_BYTES {
        return Err(ReceiptError::Malformed("body too large"));
    }
    let report: RequestStatus =
        serde_json::from_slice(body).map_err(|_| ReceiptError::Malformed("not a RequestStatus"))?;
    if !is_message_id(&report.request_id) {
        return Err(ReceiptError::Malformed("invalid request_id"));
    }
    let Some(delivery) = report.delivery_status else {
        return Ok(None);
    };
    let failure = |code: &str| {
        Some(ReceiptFailure {
            class: FailureClass::Fallback,
            code: Some(code.to_owned()),
        })
    };
    let (status, failure) = match delivery.status.as_str() {
        "sent" => (ReceiptStatus::Sent, None),
        "delivered" => (ReceiptStatus::Delivered, None),
        "read" => (ReceiptStatus::Read, None),
        // Not delivered within `ttl` (refunded): another channel may reach them.
        "expired" => (ReceiptStatus::Expired, failure("expired")),
        "revoked" => (ReceiptStatus::Failed, failure("revoked")),
        _ => return Ok(None),
    };
    let at = delivery
        .updated_at
        .and_then(|t| t.as_i64())
        .and_then(crate::timestamp::from_unix)
        .unwrap_or(received_at);
    Ok(Some(DeliveryReceipt {
        provider: NAME.to_owned(),
        provider_message_id: report.request_id,
        status,
        failure,
        at,
    }))
}

impl Provider for TelegramProvider {
    fn name(&self) -> &str {
        NAME
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            delivery_receipts: self.config.callback_url.is_some(),
            ..Capabilities::channels(&[Channel::Telegram])
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

    fn confirms_approvals(&self) -> bool {
        true
    }

    async fn confirm_approval(&self, provider_message_id: &str) {
        self.report_approval(provider_message_id).await;
    }

    fn parse_receipts(
        &self,
        request: &InboundRequest,
    ) -> Result<Vec<DeliveryReceipt>, ReceiptError> {
        let timestamp = request.proof_header(TIMESTAMP_HEADER)?;
        let signature = request.proof_header(SIGNATURE_HEADER)?;
        verify_report(
            self.config.access_token.expose(),
            timestamp,
            signature,
            &request.body,
            request.received_at,
            Duration::from_secs(self.config.receipt_max_age_secs),
        )?;
        parse_report(&request.body, request.received_at).map(|r| r.into_iter().collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flood_wait_reads_the_seconds() {
        assert_eq!(flood_wait("FLOOD_WAIT_17"), Some(Duration::from_secs(17)));
        assert_eq!(flood_wait("FLOOD_WAIT_"), None);
        assert_eq!(flood_wait("FLOOD_WAIT_x"), None);
        assert_eq!(
            flood_wait("FLOOD_WAIT_99999999"),
            Some(http::MAX_RETRY_AFTER)
        );
    }

    #[test]
    fn signature_matches_the_documented_scheme() {
        // Computed with Python: hmac.new(hashlib.sha256(b"token").digest(),
        // b"1767225600\n{}", hashlib.sha256).hexdigest()
        assert_eq!(
            compute_signature("token", "1767225600", b"{}"),
            "31e2acbea00d5f745c03176cd9cc447689681f46563f8e16186e7f38f0a965e9"
        );
    }
}
