//! Vonage Messages API: SMS, WhatsApp, Viber (`viber_service`) and RCS through one endpoint, and
//! its status webhooks, verified by their signed JWT (`Authorization: Bearer`, HS256 with the
//! signature secret, claim `payload_hash` = SHA-256 of the raw body).
//!
//! `POST {base}/v1/messages`, JSON, authenticated with an application JWT (RS256, signed with the
//! application's private key: what Vonage recommends, and what status webhooks need) or HTTP
//! Basic with the API key and secret. SMS, Viber and RCS carry the localised text; WhatsApp
//! carries the approved authentication template (copy-code button) as a `custom` message, the
//! form Vonage requires for interactive templates. Errors are RFC 7807 problems whose `type`
//! ends in the code (`...#1300`); [`parse_error`] classifies on that code.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::config::{self, FieldError, ProviderContext, ProviderTable};
use crate::http::{
    self, Endpoint, HeaderMap, HttpClient, ParsedError, Response, is_e164, is_message_id,
};
use crate::vonage_app::{self, ApplicationKey};
use crate::{
    Capabilities, Channel, Delivery, DeliveryError, DeliveryReceipt, DynProvider, FailureClass,
    InboundRequest, OutboundMessage, Provider, ReceiptError, ReceiptFailure, ReceiptStatus, Secret,
    lenient_e164_option, lenient_option, receipt, secret, whatsapp,
};

/// The registry name.
pub const NAME: &str = "vonage";
/// Vonage's API host (`https://api-eu.vonage.com` / `https://api-us.vonage.com` for regions).
pub const DEFAULT_BASE_URL: &str = "https://api.nexmo.com";
/// Header carrying the signed webhook token.
pub const SIGNATURE_HEADER: &str = "Authorization";
/// Clock difference tolerated on webhook `iat` / `exp` / `nbf`.
const MAX_CLOCK_SKEW: Duration = Duration::from_secs(300);
/// `client_ref` is at most this long.
const MAX_CLIENT_REF: usize = 100;
/// Largest webhook body parsed and largest token read.
const MAX_WEBHOOK_BYTES: usize = 1024 * 1024;
const MAX_TOKEN_BYTES: usize = 8 * 1024;
/// `ttl` bounds (seconds) of the channels that take one.
const SMS_TTL: (u64, u64) = (1, 259_200);
const VIBER_TTL: (u64, u64) = (30, 259_200);
const RCS_TTL: (u64, u64) = (300, 259_200);

fn default_base_url() -> String {
    DEFAULT_BASE_URL.to_owned()
}
fn default_rate_per_sec() -> u32 {
    // Vonage's default Messages API throughput is 30 requests per second per account.
    30
}
fn default_receipt_max_age_secs() -> u64 {
    // Vonage retries undelivered webhooks; a token older than this is refused.
    86_400
}

/// `[providers.vonage]`. `Debug` hides the secrets and the private key.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VonageConfig {
    /// API key: HTTP Basic user (with `api_secret`); also checked against the `api_key` claim
    /// of signed webhooks.
    #[serde(default, deserialize_with = "lenient_option")]
    pub api_key: Option<String>,
    /// API secret: HTTP Basic password.
    #[serde(default)]
    pub api_secret: Option<Secret>,
    /// Vonage application id: the application JWT's `application_id` (with `private_key`).
    #[serde(default, deserialize_with = "lenient_option")]
    pub application_id: Option<String>,
    /// The application's private key, PEM (PKCS#8 or PKCS#1); `\n` escapes are accepted.
    /// Preferred over `api_key` + `api_secret` when both are set.
    #[serde(default)]
    pub private_key: Option<Secret>,
    /// SMS sender: a number or an alphanumeric sender id.
    #[serde(default, deserialize_with = "lenient_e164_option")]
    pub sms_from: Option<String>,
    /// WhatsApp Business number, E.164.
    #[serde(default, deserialize_with = "lenient_e164_option")]
    pub whatsapp_from: Option<String>,
    /// Approved WhatsApp authentication template (copy-code button); required for WhatsApp.
    #[serde(default, deserialize_with = "lenient_option")]
    pub whatsapp_template: Option<String>,
    /// Locale -> template language code, merged over the defaults.
    #[serde(default)]
    pub whatsapp_languages: BTreeMap<String, String>,
    /// Template language for locales with no mapping.
    #[serde(default = "whatsapp::default_language")]
    pub whatsapp_default_language: String,
    /// Viber Service Message id (`viber_service` sender).
    #[serde(default, deserialize_with = "lenient_option")]
    pub viber_from: Option<String>,
    /// RCS agent id.
    #[serde(default, deserialize_with = "lenient_option")]
    pub rcs_from: Option<String>,
    /// Status webhook URL sent with each message (`webhook_url`); the application's or
    /// account's configured one otherwise.
    #[serde(default, deserialize_with = "lenient_option")]
    pub webhook_url: Option<String>,
    /// Signature secret: verifies status webhooks. Receipts are declared only with it and
    /// application (JWT) authentication: Vonage signs no webhooks for Basic authentication.
    #[serde(default)]
    pub signature_secret: Option<Secret>,
    /// Webhook tokens issued longer ago than this are refused as stale.
    #[serde(default = "default_receipt_max_age_secs")]
    pub receipt_max_age_secs: u64,
    /// API host; override for tests and regions.
    #[serde(default = "default_base_url")]
    pub base_url: String,
    /// Outbound requests per second (bursts up to the same number); 0 = unlimited.
    #[serde(default = "default_rate_per_sec")]
    pub rate_per_sec: u32,
    /// Per-request timeout (see the Twilio adapter's note on `routing.attempt_timeout_ms`).
    #[serde(default = "config::default_timeout_ms")]
    pub timeout_ms: u64,
}

impl VonageConfig {
    /// Cross-field validation; errors name the key. Normalises `base_url`, senders and
    /// `whatsapp_languages` keys. The private key itself is parsed by [`VonageProvider::new`].
    pub fn validate(&mut self) -> Result<(), FieldError> {
        vonage_app::check_application(self.application_id.as_deref(), self.private_key.as_ref())?;
        if let Some(key) = &self.api_key {
            vonage_app::check_api_key(key)?;
        }
        match (&self.api_key, &self.api_secret) {
            (None, Some(_)) => return Err(FieldError::new("api_key", "missing")),
            (_, Some(secret)) if secret.is_empty() => {
                return Err(FieldError::new("api_secret", "missing"));
            }
            // With JWT authentication the key alone only checks the webhooks' `api_key` claim.
            (Some(_), None) if self.application_id.is_none() => {
                return Err(FieldError::new("api_secret", "missing"));
            }
            (None, None) if self.application_id.is_none() => {
                return Err(FieldError::new(
                    "application_id",
                    "no credentials: set application_id + private_key (JWT) or api_key + api_secret (Basic)",
                ));
            }
            _ => {}
        }
        if let Some(from) = &mut self.sms_from {
            let bare = from.trim().trim_start_matches('+').to_owned();
            if bare.is_empty() || bare.len() > 15 || !bare.bytes().all(|b| b.is_ascii_graphic()) {
                return Err(FieldError::new(
                    "sms_from",
                    "must be a number or an alphanumeric sender id",
                ));
            }
            *from = bare;
        }
        if let Some(from) = &mut self.whatsapp_from {
            if !is_e164(from) {
                return Err(FieldError::new(
                    "whatsapp_from",
                    "must be an E.164 number (`+` and digits)",
                ));
            }
            *from = from.trim_start_matches('+').to_owned();
            match &self.whatsapp_template {
                None => {
                    return Err(FieldError::new(
                        "whatsapp_template",
                        "required when whatsapp_from is set (the approved authentication template)",
                    ));
                }
                Some(t) => whatsapp::check_template("whatsapp_template", t)?,
            }
        }
        whatsapp::validate_languages(
            &mut self.whatsapp_languages,
            &self.whatsapp_default_language,
            "whatsapp_languages",
            "whatsapp_default_language",
        )?;
        if let Some(from) = &self.viber_from
            && (from.is_empty() || from.len() > 50 || !from.bytes().all(|b| b.is_ascii_graphic()))
        {
            return Err(FieldError::new(
                "viber_from",
                "must be the Viber Service Message id (1 to 50 characters)",
            ));
        }
        if let Some(from) = &self.rcs_from
            && !vonage_app::token_like(from, 100, b"-_&")
        {
            return Err(FieldError::new(
                "rcs_from",
                "must be the RCS agent id (letters, digits, -, _ and &)",
            ));
        }
        if let Some(url) = &self.webhook_url {
            http::normalize_base_url(url).map_err(|m| FieldError::new("webhook_url", m))?;
        }
        secret::check_optional_secret("signature_secret", self.signature_secret.as_ref())?;
        if self.receipt_max_age_secs == 0 {
            return Err(FieldError::new(
                "receipt_max_age_secs",
                "must be greater than 0",
            ));
        }
        config::validate_endpoint_keys(&mut self.base_url, self.timeout_ms)?;
        if self.channels().is_empty() {
            return Err(FieldError::new(
                "sms_from",
                "no channel configured: set sms_from (SMS), whatsapp_from + whatsapp_template (WhatsApp), viber_from (Viber) or rcs_from (RCS)",
            ));
        }
        Ok(())
    }

    /// The channels this configuration can carry.
    pub fn channels(&self) -> Vec<Channel> {
        let mut channels = Vec::new();
        if self.sms_from.is_some() {
            channels.push(Channel::Sms);
        }
        if self.whatsapp_from.is_some() && self.whatsapp_template.is_some() {
            channels.push(Channel::Whatsapp);
        }
        if self.rcs_from.is_some() {
            channels.push(Channel::Rcs);
        }
        if self.viber_from.is_some() {
            channels.push(Channel::Viber);
        }
        channels
    }

    /// The WhatsApp template language for a BCP 47 locale: the configured mapping, then the
    /// defaults, for the full tag and then its language; `whatsapp_default_language` otherwise.
    pub fn language_for(&self, locale: &str) -> String {
        whatsapp::language_for(
            &self.whatsapp_languages,
            &self.whatsapp_default_language,
            locale,
        )
    }
}

/// How requests are authenticated.
enum Auth {
    /// Application JWT, RS256.
    Jwt(Box<ApplicationKey>),
    /// HTTP Basic with the API key and secret.
    Basic { api_key: String, api_secret: Secret },
}

impl fmt::Debug for Auth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Auth::Jwt(key) => f.debug_tuple("Jwt").field(key).finish(),
            Auth::Basic { api_key, .. } => f
                .debug_struct("Basic")
                .field("api_key", api_key)
                .finish_non_exhaustive(),
        }
    }
}

/// The Vonage Messages API adapter.
pub struct VonageProvider {
    config: VonageConfig,
    auth: Auth,
    endpoint: Endpoint,
}

impl fmt::Debug for VonageProvider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VonageProvider")
            .field("config", &self.config)
            .field("auth", &self.auth)
            .field("endpoint", &self.endpoint)
            .finish()
    }
}

impl VonageProvider {
    pub fn new(mut config: VonageConfig, http: HttpClient) -> Result<Self, FieldError> {
        config.validate()?;
        let auth = match (&config.application_id, &config.private_key) {
            (Some(id), Some(pem)) => Auth::Jwt(Box::new(ApplicationKey::new(id, pem.expose())?)),
            _ => Auth::Basic {
                api_key: config.api_key.clone().unwrap_or_default(),
                api_secret: config.api_secret.clone().unwrap_or_default(),
            },
        };
        let endpoint = Endpoint::new(
            NAME,
            http,
            config.rate_per_sec,
            Duration::from_millis(config.timeout_ms),
        );
        Ok(VonageProvider {
            config,
            auth,
            endpoint,
        })
    }

    /// The registry constructor.
    pub fn from_table(
        table: &ProviderTable,
        context: &ProviderContext,
    ) -> Result<Arc<dyn DynProvider>, FieldError> {
        let config: VonageConfig = table.parse()?;
        Ok(Arc::new(Self::new(config, context.http().clone())?))
    }

    pub fn config(&self) -> &VonageConfig {
        &self.config
    }

    /// Whether status webhooks are declared and verified: a signature secret and JWT auth.
    fn takes_receipts(&self) -> bool {
        self.config.signature_secret.is_some() && matches!(self.auth, Auth::Jwt(_))
    }

    /// An application JWT (RS256) issued at `now`, valid for 15 minutes, with a random `jti`.
    /// `None` with Basic authentication.
    pub fn application_token(&self, now: SystemTime) -> Option<Result<String, DeliveryError>> {
        let Auth::Jwt(key) = &self.auth else {
            return None;
        };
        Some(key.token(NAME, now))
    }

    /// The JSON body of the Messages API request for `message`.
    pub fn request_body(&self, message: &OutboundMessage) -> Result<Value, DeliveryError> {
        let c = &self.config;
        let not_configured = || {
            DeliveryError::config(
                NAME,
                format!("{} is not configured for vonage", message.channel),
            )
            .with_code("channel_not_configured")
        };
        let to = message.to.trim_start_matches('+');
        let validity = message.validity.as_secs();
        let mut body = match message.channel {
            Channel::Sms => {
                let from = c.sms_from.as_ref().ok_or_else(not_configured)?;
                json!({
                    "message_type": "text",
                    "channel": "sms",
                    "to": to,
                    "from": from,
                    "text": message.text(),
                    "ttl": validity.clamp(SMS_TTL.0, SMS_TTL.1),
                })
            }
            Channel::Whatsapp => {
                let (Some(from), Some(template)) = (&c.whatsapp_from, &c.whatsapp_template) else {
                    return Err(not_configured());
                };
                let code = message.code.expose();
                json!({
                    "message_type": "custom",
                    "channel": "whatsapp",
                    "to": to,
                    "from": from,
                    "custom": {
                        "type": "template",
                        "template": {
                            "name": template,
                            "language": whatsapp::template_language(&c.language_for(&message.locale)),
                            "components": whatsapp::template_components(code),
                        }
                    }
                })
            }
            Channel::Viber => {
                let from = c.viber_from.as_ref().ok_or_else(not_configured)?;
                json!({
                    "message_type": "text",
                    "channel": "viber_service",
                    "to": to,
                    "from": from,
                    "text": message.text(),
                    "viber_service": {
                        "category": "transaction",
                        "ttl": validity.clamp(VIBER_TTL.0, VIBER_TTL.1),
                    },
                })
            }
            Channel::Rcs => {
                let from = c.rcs_from.as_ref().ok_or_else(not_configured)?;
                json!({
                    "message_type": "text",
                    "channel": "rcs",
                    "to": to,
                    "from": from,
                    "text": message.text(),
                    "ttl": validity.clamp(RCS_TTL.0, RCS_TTL.1),
                })
            }
            _ => return Err(not_configured()),
        };
        // Echoed in status webhooks; dropped when Vonage would refuse it.
        if !message.reference.is_empty() && message.reference.len() <= MAX_CLIENT_REF {
            body["client_ref"] = json!(message.reference);
        }
        if let Some(url) = &c.webhook_url {
            body["webhook_url"] = json!(url);
        }
        Ok(body)
    }

    async fn deliver(&self, message: &OutboundMessage) -> Result<Delivery, DeliveryError> {
        let body = self.request_body(message)?;
        let request = self
            .endpoint
            .client()
            .post(format!("{}/v1/messages", self.config.base_url))
            .header(reqwest::header::ACCEPT, "application/json")
            .json(&body);
        let request = match &self.auth {
            Auth::Jwt(key) => request.bearer_auth(key.token(NAME, SystemTime::now())?),
            Auth::Basic {
                api_key,
                api_secret,
            } => request.basic_auth(api_key, Some(api_secret.expose())),
        };
        let response = self.endpoint.send(request).await?;
        parse_response(&response)
    }
}

/// Maps a complete response: `message_uuid` of a 2xx, [`parse_error`] for anything else
/// (including a 2xx whose body is a problem document).
pub fn parse_response(response: &Response) -> Result<Delivery, DeliveryError> {
    let body: Option<Value> = serde_json::from_slice(&response.body).ok();
    let id = body
        .as_ref()
        .and_then(|b| b.get("message_uuid"))
        .and_then(Value::as_str)
        .filter(|id| is_message_id(id));
    let is_problem = body
        .as_ref()
        .and_then(|b| b.get("type"))
        .and_then(Value::as_str)
        .is_some_and(|t| t.contains('#'));
    if !response.is_success() || (id.is_none() && is_problem) {
        return Err(parse_error(
            response.status,
            &response.body,
            &response.headers,
        ));
    }
    match id {
        Some(id) => Ok(Delivery {
            provider_message_id: id.to_owned(),
        }),
        None => Err(http::unreadable_success(
            NAME,
            response.status,
            "message_uuid",
        )),
    }
}

/// The class of a Messages API error code: the numeric codes (`1300`) of send-time problems
/// and status webhooks, and the named generic ones (`low-balance`). `None` for codes this
/// table does not know.
pub fn classify(code: &str) -> Option<FailureClass> {
    use FailureClass::*;
    if let Ok(n) = code.parse::<u32>() {
        return Some(match n {
            // Throttled, internal error, communication failed, absent subscriber (temporary),
            // handset busy, network error, too many requests to the number, provider error,
            // Fraud Defender burst protection.
            1000 | 1030 | 1100 | 1180 | 1220 | 1230 | 1241 | 1331 | 1472 => Transient,
            // Daily limit reached: retrying today fails again, another route is not capped.
            1460 => Fallback,
            // Portability, anti-spam, unroutable, destination unreachable, age restriction,
            // blocked by carrier / provider, recipient out of credit, not on the channel (not a
            // Viber / RCS user), unsuitable device, carrier unknown error, TTL expired, provider
            // auto-limiting, Fraud Defender traffic rule (our own prefix rules).
            1200 | 1210 | 1250 | 1260 | 1270 | 1280 | 1282 | 1290 | 1300 | 1310 | 1330 | 1360
            | 1461 | 1470 => Fallback,
            // Fraud Defender AIT protection: Vonage blocked the number as artificially inflated
            // traffic (SMS pumping).
            1473 => Fraud,
            // Number barred, invalid number, absent subscriber (permanent), opted out (STOP),
            // invalid recipient.
            1050 | 1170 | 1190 | 1240 | 1430 => Permanent,
            // Our request or account: missing params, invalid params (our request's values,
            // never a verdict on the number), invalid message (1040), tag / template, account barred, out of
            // credit, REST not enabled, message too long, signature, sender rejected, TTL,
            // facility, message class, destination not whitelisted, WhatsApp window / access
            // token, resources, channel / sender / message type / client_ref, regulatory
            // registration filters.
            1010
            | 1020
            | 1021
            | 1022
            | 1040
            | 1060
            | 1070
            | 1080
            | 1090
            | 1110
            | 1120
            | 1130
            | 1140
            | 1150
            | 1160
            | 1340
            | 1350
            | 1370
            | 1380..=1382
            | 1400
            | 1410
            | 1420
            | 1440
            | 1450
            | 1451
            | 1480..=1484 => Config,
            _ => return None,
        });
    }
    Some(match code {
        "throttled" | "rate-limit" => Transient,
        "low-balance" | "unauthorized" | "forbidden" | "not-found" | "unprovisioned"
        | "account-suspended" | "jwt-expired" | "jwt-revoked" | "invalid-api-key"
        | "invalid-signature" => Config,
        // Invalid parameters (generic `#invalid-params`, Messages `…/Errors#InvalidParams`):
        // our request, not the number.
        "invalid-params" | "InvalidParams" => Config,
        _ => return None,
    })
}

/// Unknown codes: 429 and 5xx are `Transient`; 401/402/403/404 and redirects `Config`; any
/// other 4xx `Fallback` (Vonage refused this message for a reason the table does not know).
fn class_by_status(status: u16) -> FailureClass {
    match status {
        429 => FailureClass::Transient,
        401..=404 | 300..=399 => FailureClass::Config,
        200..=299 | 400..=499 => FailureClass::Fallback,
        _ => FailureClass::Transient,
    }
}

/// The code of a problem / webhook error: a numeric `title` or `code`, else the fragment of
/// `type` (`https://developer.vonage.com/api-errors/messages#1300` -> `1300`,
/// `...#low-balance` -> `low-balance`).
fn problem_code(error: &Map<String, Value>) -> Option<String> {
    let numeric = |v: &Value| match v {
        Value::Number(n) => n.as_u64().map(|n| n.to_string()),
        Value::String(s)
            if !s.is_empty() && s.len() <= 9 && s.bytes().all(|b| b.is_ascii_digit()) =>
        {
            Some(s.clone())
        }
        _ => None,
    };
    error
        .get("title")
        .and_then(numeric)
        .or_else(|| error.get("code").and_then(numeric))
        .or_else(|| {
            let fragment = error.get("type")?.as_str()?.rsplit_once('#')?.1.trim();
            (!fragment.is_empty()
                && fragment.len() <= 64
                && fragment
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'))
            .then(|| fragment.to_owned())
        })
}

/// Maps an error response to a classified error: the problem's code first (see [`classify`]),
/// the HTTP status otherwise. An unreadable body is `Transient` (`Config` for 401/403 and
/// redirects). `Retry-After` is kept on transient errors. The message is the problem's title
/// and detail, numbers masked; [`Provider::send`] also hides the code and the credentials.
pub fn parse_error(status: u16, body: &[u8], headers: &HeaderMap) -> DeliveryError {
    let problem = serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|v| match v {
            Value::Object(map) => Some(map),
            _ => None,
        })
        .filter(|m| m.contains_key("type") || m.contains_key("title"))
        .map(|p| {
            let code = problem_code(&p);
            let known = code.as_deref().and_then(classify);
            let class = known.unwrap_or_else(|| class_by_status(status));
            let field = |k: &str| match p.get(k) {
                Some(Value::String(s)) => s.clone(),
                Some(Value::Number(n)) => n.to_string(),
                _ => String::new(),
            };
            let mut text = format!("HTTP {status}: {}", field("title"));
            let detail = field("detail");
            if !detail.is_empty() {
                text.push_str(" — ");
                text.push_str(&detail);
            }
            ParsedError {
                class,
                code,
                text,
                refused: known.is_some(),
            }
        });
    http::error_response(NAME, status, headers, problem)
}

/// Verifies an HS256 JWT with `secret` and returns its claims. Only `alg: HS256` is accepted
/// (never `none`, never an asymmetric algorithm keyed with the secret); any defect is
/// `BadSignature`.
pub fn verify_jwt_hs256(secret: &str, token: &str) -> Result<Map<String, Value>, ReceiptError> {
    if token.len() > MAX_TOKEN_BYTES {
        return Err(ReceiptError::BadSignature);
    }
    let mut parts = token.split('.');
    let (Some(header), Some(claims), Some(signature), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(ReceiptError::BadSignature);
    };
    let decode = |part: &str| {
        URL_SAFE_NO_PAD
            .decode(part.as_bytes())
            .map_err(|_| ReceiptError::BadSignature)
    };
    let header: Map<String, Value> =
        serde_json::from_slice(&decode(header)?).map_err(|_| ReceiptError::BadSignature)?;
    if header.get("alg").and_then(Value::as_str) != Some("HS256") || header.contains_key("crit") {
        return Err(ReceiptError::BadSignature);
    }
    let given = decode(signature)?;
    let signing_input = &token[..token.len() - signature.len() - 1];
    let expected = http::hmac_sha256(secret.as_bytes(), signing_input.as_bytes());
    if !http::constant_time_eq(&expected, &given) {
        return Err(ReceiptError::BadSignature);
    }
    serde_json::from_slice(&decode(claims)?)
        .map_err(|_| ReceiptError::Malformed("JWT claims are not a JSON object"))
}

/// Verifies a signed webhook: the `Authorization: Bearer` token (HS256 with the signature
/// secret), its `payload_hash` against the raw body, the `api_key` claim when we know ours, and
/// the time claims against `received_at` (`exp` / `nbf` within 5 minutes of skew, `iat` not
/// in the future and at most `max_age` old).
pub fn verify_webhook(
    signature_secret: &str,
    authorization: &str,
    body: &[u8],
    api_key: Option<&str>,
    received_at: SystemTime,
    max_age: Duration,
) -> Result<(), ReceiptError> {
    let authorization = authorization.trim();
    let token = authorization
        .split_once(' ')
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, t)| t.trim())
        .ok_or(ReceiptError::BadSignature)?;
    let claims = verify_jwt_hs256(signature_secret, token)?;
    let hash = claims
        .get("payload_hash")
        .and_then(Value::as_str)
        .ok_or(ReceiptError::BadSignature)?;
    let actual = http::sha256_hex(body);
    if !http::constant_time_eq(actual.as_bytes(), hash.to_ascii_lowercase().as_bytes()) {
        return Err(ReceiptError::BadSignature);
    }
    if let (Some(ours), Some(theirs)) = (api_key, claims.get("api_key").and_then(Value::as_str))
        && ours != theirs
    {
        return Err(ReceiptError::BadSignature);
    }
    let now = received_at
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_err(|_| ReceiptError::Stale)?
        .as_secs_f64();
    let time = |name: &'static str| -> Result<Option<f64>, ReceiptError> {
        match claims.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Number(n)) => Ok(n.as_f64()),
            Some(_) => Err(ReceiptError::Malformed("JWT time claim is not a number")),
        }
    };
    let skew = MAX_CLOCK_SKEW.as_secs_f64();
    if time("exp")?.is_some_and(|exp| now > exp + skew)
        || time("nbf")?.is_some_and(|nbf| nbf > now + skew)
        || time("iat")?.is_some_and(|iat| iat > now + skew || now - iat > max_age.as_secs_f64())
    {
        return Err(ReceiptError::Stale);
    }
    Ok(())
}

/// Parses a verified status webhook. A body without a `status` (an inbound message) or with a
/// status this table does not know gives no receipt.
pub fn parse_webhook(
    body: &[u8],
    received_at: SystemTime,
) -> Result<Option<DeliveryReceipt>, ReceiptError> {
    #[derive(Deserialize)]
    struct Status {
        message_uuid: Value,
        status: Option<String>,
        timestamp: Option<Value>,
        error: Option<Value>,
    }
    if body.len() > MAX_WEBHOOK_BYTES {
        return Err(ReceiptError::Malformed("body too large"));
    }
    let hook: Status = serde_json::from_slice(body)
        .map_err(|_| ReceiptError::Malformed("not a status webhook"))?;
    let id = hook
        .message_uuid
        .as_str()
        .filter(|id| is_message_id(id))
        .ok_or(ReceiptError::Malformed("invalid message_uuid"))?;
    let Some(status) = hook.status else {
        return Ok(None);
    };
    let status = match status.as_str() {
        "submitted" => ReceiptStatus::Sent,
        "delivered" => ReceiptStatus::Delivered,
        "read" => ReceiptStatus::Read,
        "rejected" | "undeliverable" => ReceiptStatus::Failed,
        _ => return Ok(None),
    };
    let failure = (status == ReceiptStatus::Failed).then(|| {
        let code = match &hook.error {
            Some(Value::Object(e)) => problem_code(e),
            _ => None,
        };
        ReceiptFailure {
            class: code
                .as_deref()
                .and_then(classify)
                .unwrap_or(FailureClass::Fallback),
            code,
        }
    });
    let at = hook
        .timestamp
        .as_ref()
        .and_then(Value::as_str)
        .and_then(crate::timestamp::parse_rfc3339)
        .unwrap_or(received_at);
    Ok(Some(DeliveryReceipt {
        provider: NAME.to_owned(),
        provider_message_id: id.to_owned(),
        status,
        failure,
        at,
    }))
}

impl Provider for VonageProvider {
    fn name(&self) -> &str {
        NAME
    }

    /// Receipts need the signature secret and application (JWT) authentication: Vonage signs
    /// the webhooks of applications only, so with Basic authentication none could be verified.
    fn capabilities(&self) -> Capabilities {
        Capabilities {
            delivery_receipts: self.takes_receipts(),
            ..Capabilities::channels(&self.config.channels())
        }
    }

    fn request_timeout(&self) -> Option<Duration> {
        Some(self.endpoint.timeout())
    }

    async fn send(&self, message: &OutboundMessage) -> Result<Delivery, DeliveryError> {
        let api_secret = self.config.api_secret.as_ref().map(Secret::expose);
        self.deliver(message)
            .await
            .map_err(|e| secret::redact_send_error(e, message, &[api_secret.unwrap_or_default()]))
    }

    fn parse_receipts(
        &self,
        request: &InboundRequest,
    ) -> Result<Vec<DeliveryReceipt>, ReceiptError> {
        if !self.takes_receipts() {
            return Err(ReceiptError::Unsupported);
        }
        let secret = receipt::verifying_secret(self.config.signature_secret.as_ref())?;
        // Unsigned: Vonage's signing is off for the application. A 5xx makes Vonage retry.
        let authorization = request
            .header(SIGNATURE_HEADER)
            .ok_or(ReceiptError::Unverifiable)?;
        verify_webhook(
            secret,
            authorization,
            &request.body,
            self.config.api_key.as_deref(),
            request.received_at,
            Duration::from_secs(self.config.receipt_max_age_secs),
        )?;
        parse_webhook(&request.body, request.received_at).map(|r| r.into_iter().collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verifies_the_jwt_io_hs256_example() {
        // The example token of jwt.io, signed with "your-256-bit-secret".
        let token = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4gRG9lIiwiaWF0IjoxNTE2MjM5MDIyfQ.SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c";
        let claims = verify_jwt_hs256("your-256-bit-secret", token).unwrap();
        assert_eq!(claims["name"], "John Doe");
        assert_eq!(
            verify_jwt_hs256("another-secret", token),
            Err(ReceiptError::BadSignature)
        );
    }

    #[test]
    fn refuses_alg_none_and_other_algorithms() {
        let claims = URL_SAFE_NO_PAD.encode(br#"{"payload_hash":"x"}"#);
        for header in [
            r#"{"alg":"none"}"#,
            r#"{"alg":"HS512"}"#,
            r#"{"alg":"RS256"}"#,
            "{}",
        ] {
            let input = format!("{}.{claims}", URL_SAFE_NO_PAD.encode(header));
            let sig = URL_SAFE_NO_PAD.encode(http::hmac_sha256(b"s", input.as_bytes()));
            assert_eq!(
                verify_jwt_hs256("s", &format!("{input}.{sig}")),
                Err(ReceiptError::BadSignature),
                "{header}"
            );
            assert_eq!(
                verify_jwt_hs256("s", &format!("{input}.")),
                Err(ReceiptError::BadSignature)
            );
        }
    }

    #[test]
    fn problem_codes_come_from_title_code_or_type_fragment() {
        let code = |v: Value| problem_code(v.as_object().unwrap());
        assert_eq!(
            code(
                json!({"type": "https://developer.vonage.com/api-errors/messages#1300", "title": "Not part of the provider network"})
            ),
            Some("1300".into())
        );
        assert_eq!(code(json!({"title": 1250})), Some("1250".into()));
        assert_eq!(
            code(json!({"code": 1300, "reason": "x"})),
            Some("1300".into())
        );
        assert_eq!(
            code(json!({"type": "https://developer.nexmo.com/api-errors/#low-balance"})),
            Some("low-balance".into())
        );
        assert_eq!(code(json!({"type": "https://x#<script>"})), None);
    }
}
