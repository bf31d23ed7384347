//! Twilio: SMS and WhatsApp through the Messages API, the code read aloud through the Calls
//! API, and the status callbacks of both, verified by `X-Twilio-Signature`.
//!
//! - SMS: `POST /2010-04-01/Accounts/{sid}/Messages.json` (form, HTTP Basic) with `To`,
//!   `MessagingServiceSid` or `From`, `Body`, `ValidityPeriod`, `StatusCallback`.
//! - WhatsApp: same endpoint, `whatsapp:+E164` addressing and the approved authentication
//!   template: `ContentSid` + `ContentVariables` `{"1":"<code>"}` (no `Body`).
//! - Voice: `POST .../Calls.json` with inline `Twiml` that reads the code digit by digit, twice,
//!   `Timeout` 15 s (hangs up before most voicemail picks up) and `StatusCallback`.
//!
//! Every failure is classified once, in [`parse_error`] (and [`classify`] for the codes that
//! also arrive later in status callbacks).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use hmac::{Hmac, Mac};
use serde::Deserialize;
use serde_json::Value;
use sha1::Sha1;

use crate::config::{self, FieldError, ProviderContext, ProviderTable};
use crate::http::{self, Endpoint, HeaderMap, HttpClient, ParsedError, Response, is_e164};
use crate::{
    Capabilities, Channel, Delivery, DeliveryError, DeliveryReceipt, DynProvider, FailureClass,
    InboundRequest, OutboundMessage, Provider, ReceiptError, ReceiptFailure, ReceiptStatus,
    Redactor, Secret, lenient_e164_option, lenient_option, lenient_string, secret,
};

/// The registry name.
pub const NAME: &str = "twilio";
/// Twilio's API host.
pub const DEFAULT_BASE_URL: &str = "https://api.twilio.com";
/// Header carrying the callback signature.
pub const SIGNATURE_HEADER: &str = "X-Twilio-Signature";
/// Header naming a non-default signing scheme (SharedKey webhooks).
const SIGNATURE_SETTINGS_HEADER: &str = "X-Twilio-Webhooks-Signature-Settings";
const API_VERSION: &str = "2010-04-01";
/// Seconds a call rings before Twilio gives up: short enough that voicemail rarely answers.
pub const CALL_RING_TIMEOUT_SECS: u32 = 15;
/// Twilio's limit on inline TwiML.
const MAX_TWIML_CHARS: usize = 4000;
/// `ValidityPeriod` is capped here (Twilio accepts at least 1..=14400 everywhere).
const MAX_VALIDITY_SECS: u64 = 14_400;

fn default_base_url() -> String {
    DEFAULT_BASE_URL.to_owned()
}

fn default_rate_per_sec() -> u32 {
    // Twilio's default account-level queueing starts well above this; one long-code number
    // sends ~1 segment/s, so deployments with many senders raise it.
    30
}

/// `[providers.twilio]`. `Debug` hides `auth_token`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TwilioConfig {
    /// `AC...`; also the HTTP Basic user.
    #[serde(deserialize_with = "lenient_string")]
    pub account_sid: String,
    /// HTTP Basic password and the key of callback signatures.
    pub auth_token: Secret,
    /// SMS sender: an E.164 number or an alphanumeric sender id.
    #[serde(default, deserialize_with = "lenient_e164_option")]
    pub from: Option<String>,
    /// `MG...`: sends SMS (and WhatsApp without `whatsapp_from`) through a Messaging Service;
    /// preferred over `from` for SMS when both are set.
    #[serde(default, deserialize_with = "lenient_option")]
    pub messaging_service_sid: Option<String>,
    /// WhatsApp sender, E.164 (`whatsapp:` is added).
    #[serde(default, deserialize_with = "lenient_e164_option")]
    pub whatsapp_from: Option<String>,
    /// `HX...`: the approved WhatsApp authentication template (Content API); required for
    /// WhatsApp.
    #[serde(default, deserialize_with = "lenient_option")]
    pub content_sid: Option<String>,
    /// Locale (`pt-br`, `es`) -> `HX...` of the same template approved in that language: a
    /// Twilio Content template has one language. The full tag is tried, then its language, then
    /// `content_sid`.
    #[serde(default)]
    pub content_sids: std::collections::BTreeMap<String, String>,
    /// Caller id for voice, E.164; voice is off without it.
    #[serde(default, deserialize_with = "lenient_e164_option")]
    pub voice_from: Option<String>,
    /// Public URL Twilio posts status callbacks to; receipts are declared only with it.
    #[serde(default, deserialize_with = "lenient_option")]
    pub status_callback_url: Option<String>,
    /// API host; override for tests.
    #[serde(default = "default_base_url")]
    pub base_url: String,
    /// Outbound requests per second (bursts up to the same number); 0 = unlimited.
    #[serde(default = "default_rate_per_sec")]
    pub rate_per_sec: u32,
    /// Per-request timeout. Keep it above `routing.attempt_timeout_ms` to let the dispatcher
    /// decide (a timeout seen here is `Transient` and retried once).
    #[serde(default = "config::default_timeout_ms")]
    pub timeout_ms: u64,
}

impl TwilioConfig {
    /// Cross-field validation; errors name the key.
    pub fn validate(&mut self) -> Result<(), FieldError> {
        let sid_like = |v: &str, prefix: &str| {
            v.len() > prefix.len()
                && v.len() <= 64
                && v.starts_with(prefix)
                && v.bytes().all(|b| b.is_ascii_alphanumeric())
        };
        if !sid_like(&self.account_sid, "AC") {
            return Err(FieldError::new(
                "account_sid",
                "must be a Twilio Account SID (AC followed by letters and digits)",
            ));
        }
        if self.auth_token.is_empty() {
            return Err(FieldError::new("auth_token", "missing"));
        }
        for (key, value, prefix) in [
            ("messaging_service_sid", &self.messaging_service_sid, "MG"),
            ("content_sid", &self.content_sid, "HX"),
        ] {
            if let Some(v) = value
                && !sid_like(v, prefix)
            {
                return Err(FieldError::new(
                    key,
                    format!("must be a Twilio SID starting with {prefix}"),
                ));
            }
        }
        let mut by_locale = std::collections::BTreeMap::new();
        for (locale, sid) in &self.content_sids {
            let plausible_locale = !locale.is_empty()
                && locale.len() <= 35
                && locale
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
            if !plausible_locale || !sid_like(sid, "HX") {
                return Err(FieldError::new(
                    format!("content_sids.{locale}"),
                    "must map a locale such as pt-BR to a Twilio Content SID starting with HX",
                ));
            }
            by_locale.insert(crate::text::normalize_locale(locale), sid.clone());
        }
        if !by_locale.is_empty() && self.content_sid.is_none() {
            return Err(FieldError::new(
                "content_sid",
                "required with content_sids: the template for every other locale",
            ));
        }
        self.content_sids = by_locale;
        if let Some(from) = &self.from
            && (from.trim().is_empty() || from.len() > 32)
        {
            return Err(FieldError::new(
                "from",
                "must be an E.164 number or a sender id",
            ));
        }
        if let Some(w) = &mut self.whatsapp_from {
            let bare = w.strip_prefix("whatsapp:").unwrap_or(w).to_owned();
            if !is_e164(&bare) {
                return Err(FieldError::new(
                    "whatsapp_from",
                    "must be an E.164 number (`+` and digits)",
                ));
            }
            *w = bare;
            if self.content_sid.is_none() {
                return Err(FieldError::new(
                    "content_sid",
                    "required when whatsapp_from is set (the approved authentication template)",
                ));
            }
        }
        if let Some(v) = &self.voice_from
            && !is_e164(v)
        {
            return Err(FieldError::new(
                "voice_from",
                "must be an E.164 number (`+` and digits)",
            ));
        }
        if let Some(url) = &self.status_callback_url {
            http::normalize_base_url(url).map_err(|m| FieldError::new("status_callback_url", m))?;
        }
        config::validate_endpoint_keys(&mut self.base_url, self.timeout_ms)?;
        if self.channels().is_empty() {
            return Err(FieldError::new(
                "from",
                "no channel configured: set from or messaging_service_sid (SMS), whatsapp_from + content_sid (WhatsApp) or voice_from (voice)",
            ));
        }
        Ok(())
    }

    /// The channels this configuration can carry.
    pub fn channels(&self) -> Vec<Channel> {
        let mut channels = Vec::new();
        if self.from.is_some() || self.messaging_service_sid.is_some() {
            channels.push(Channel::Sms);
        }
        if self.content_sid.is_some()
            && (self.whatsapp_from.is_some() || self.messaging_service_sid.is_some())
        {
            channels.push(Channel::Whatsapp);
        }
        if self.voice_from.is_some() {
            channels.push(Channel::Call);
        }
        channels
    }
}

/// Form fields of one request, in order.
type Form = Vec<(&'static str, String)>;

/// The Twilio adapter.
#[derive(Debug)]
pub struct TwilioProvider {
    config: TwilioConfig,
    endpoint: Endpoint,
}

impl TwilioProvider {
    pub fn new(mut config: TwilioConfig, http: HttpClient) -> Result<Self, FieldError> {
        config.validate()?;
        let endpoint = Endpoint::new(
            NAME,
            http,
            config.rate_per_sec,
            Duration::from_millis(config.timeout_ms),
        );
        Ok(TwilioProvider { config, endpoint })
    }

    /// The registry constructor.
    pub fn from_table(
        table: &ProviderTable,
        context: &ProviderContext,
    ) -> Result<Arc<dyn DynProvider>, FieldError> {
        let config: TwilioConfig = table.parse()?;
        Ok(Arc::new(Self::new(config, context.http().clone())?))
    }

    pub fn config(&self) -> &TwilioConfig {
        &self.config
    }

    fn url(&self, resource: &str) -> String {
        format!(
            "{}/{API_VERSION}/Accounts/{}/{resource}.json",
            self.config.base_url, self.config.account_sid
        )
    }

    /// The resource and form fields of one message.
    fn request_for(
        &self,
        message: &OutboundMessage,
    ) -> Result<(&'static str, Form), DeliveryError> {
        let c = &self.config;
        let mut form: Form = Vec::with_capacity(8);
        let validity = message.validity.as_secs().clamp(1, MAX_VALIDITY_SECS);
        let not_configured = || {
            DeliveryError::config(
                NAME,
                format!("{} is not configured for twilio", message.channel),
            )
            .with_code("channel_not_configured")
        };
        let resource = match message.channel {
            Channel::Sms => {
                form.push(("To", message.to.clone()));
                match (&c.messaging_service_sid, &c.from) {
                    (Some(mg), _) => form.push(("MessagingServiceSid", mg.clone())),
                    (None, Some(from)) => form.push(("From", from.clone())),
                    (None, None) => return Err(not_configured()),
                }
                form.push(("Body", message.text()));
                form.push(("ValidityPeriod", validity.to_string()));
                "Messages"
            }
            Channel::Whatsapp => {
                let content_sid = crate::text::for_locale(&c.content_sids, &message.locale)
                    .or(c.content_sid.as_deref())
                    .ok_or_else(not_configured)?
                    .to_owned();
                form.push(("To", format!("whatsapp:{}", message.to)));
                match (&c.whatsapp_from, &c.messaging_service_sid) {
                    (Some(from), _) => form.push(("From", format!("whatsapp:{from}"))),
                    (None, Some(mg)) => form.push(("MessagingServiceSid", mg.clone())),
                    (None, None) => return Err(not_configured()),
                }
                form.push(("ContentSid", content_sid));
                form.push((
                    "ContentVariables",
                    serde_json::json!({ "1": message.code.expose() }).to_string(),
                ));
                form.push(("ValidityPeriod", validity.to_string()));
                "Messages"
            }
            Channel::Call => {
                let from = c.voice_from.as_ref().ok_or_else(not_configured)?;
                let twiml = voice_twiml(message);
                if twiml.chars().count() > MAX_TWIML_CHARS {
                    return Err(
                        DeliveryError::config(NAME, "TwiML longer than Twilio accepts")
                            .with_code("twiml_too_long"),
                    );
                }
                form.push(("To", message.to.clone()));
                form.push(("From", from.clone()));
                form.push(("Twiml", twiml));
                form.push(("Timeout", CALL_RING_TIMEOUT_SECS.to_string()));
                "Calls"
            }
            _ => return Err(not_configured()),
        };
        if let Some(cb) = &c.status_callback_url {
            form.push(("StatusCallback", cb.clone()));
            if resource == "Calls" {
                form.push(("StatusCallbackEvent", "completed".to_owned()));
                form.push(("StatusCallbackMethod", "POST".to_owned()));
            }
        }
        Ok((resource, form))
    }

    async fn deliver(&self, message: &OutboundMessage) -> Result<Delivery, DeliveryError> {
        let (resource, form) = self.request_for(message)?;
        let request = self
            .endpoint
            .client()
            .post(self.url(resource))
            .basic_auth(
                &self.config.account_sid,
                Some(self.config.auth_token.expose()),
            )
            .form(&form);
        let response = self.endpoint.send(request).await?;
        parse_response(&response)
    }
}

/// Maps a complete response: a success body to the message (or call) SID, anything else
/// through [`parse_error`]. A 2xx that carries an `error_code` or a failed status is a failure.
pub fn parse_response(response: &Response) -> Result<Delivery, DeliveryError> {
    if !response.is_success() {
        return Err(parse_error(
            response.status,
            &response.body,
            &response.headers,
        ));
    }
    #[derive(Deserialize)]
    struct Created {
        sid: Option<String>,
        status: Option<String>,
        error_code: Option<Value>,
        error_message: Option<String>,
    }
    let unreadable = || http::unreadable_success(NAME, response.status, "message SID");
    let Ok(created) = serde_json::from_slice::<Created>(&response.body) else {
        return Err(unreadable());
    };
    if let Some(code) = created.error_code.as_ref().and_then(code_string) {
        let class = classify(&code).unwrap_or(FailureClass::Fallback);
        let text = created.error_message.unwrap_or_default();
        return Err(DeliveryError::new(
            class,
            NAME,
            Redactor::new().redact(&format!(
                "HTTP {} with error {code}: {text}",
                response.status
            )),
        )
        .with_code(code));
    }
    if matches!(created.status.as_deref(), Some("failed" | "undelivered")) {
        return Err(DeliveryError::fallback(
            NAME,
            "accepted with a failed status and no error code",
        )
        .with_code("failed"));
    }
    match created.sid {
        Some(sid) if is_sid(&sid) => Ok(Delivery {
            provider_message_id: sid,
        }),
        _ => Err(unreadable()),
    }
}

fn is_sid(s: &str) -> bool {
    (3..=64).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_alphanumeric())
}

/// Twilio's error code as text: a number, or a string of digits.
fn code_string(v: &Value) -> Option<String> {
    match v {
        Value::Number(n) => n.as_u64().map(|n| n.to_string()),
        Value::String(s)
            if !s.is_empty() && s.len() <= 16 && s.bytes().all(|b| b.is_ascii_digit()) =>
        {
            Some(s.clone())
        }
        _ => None,
    }
}

/// The class of a Twilio error code, for codes returned at send time and codes reported later
/// in status callbacks (`ErrorCode`). `None` for codes this table does not know.
pub fn classify(code: &str) -> Option<FailureClass> {
    use FailureClass::*;
    Some(match code {
        // Invalid `To`, invalid call number, unknown handset: the number itself.
        "21211" | "21217" | "13224" | "30005" => Permanent,
        // Region not enabled, authentication, voice geo permissions, WhatsApp template/config.
        "21408" | "20003" | "21215" | "63016" => Config,
        // Sender registration: invalid / not owned / not SMS-capable `From`, `From` not a
        // valid messaging sender for this destination, unregistered or suspended A2P 10DLC
        // or toll-free number.
        "21212" | "21606" | "21659" | "21660" | "21910" | "30032" | "30034" => Config,
        // Twilio's SMS pumping protection blocked the number: a fraud signal, stop the send.
        "30450" | "30453" => Fraud,
        // Not a mobile / a landline; unreachable, blocked, filtered, unknown; WhatsApp: not on
        // WhatsApp / cannot be reached.
        "21614" | "21635" | "30003" | "30004" | "30006" | "30007" | "30008" | "63003" | "63024"
        | "63032" => Fallback,
        // Opted out of this sender (STOP): the user blocked our route, not every channel.
        "21610" => Fallback,
        // Daily caps (account daily limit, WhatsApp business daily limit): retrying today fails
        // again, another route may not be capped.
        "30023" | "63038" => Fallback,
        // Too many requests; queue-rate cap; WhatsApp rate limit.
        "20429" | "30022" | "63018" => Transient,
        _ => return None,
    })
}

/// The class of a failed response with no known error code.
///
/// Decision for unknown 4xx codes: `Fallback` — Twilio refused this request for a reason the
/// table does not know; retrying it is pointless and stopping the whole send is not justified,
/// so the next route is tried. 401/403/404 (credentials, account, resource) are `Config`.
fn class_by_status(status: u16) -> FailureClass {
    match status {
        429 => FailureClass::Transient,
        401 | 403 | 404 => FailureClass::Config,
        300..=399 => FailureClass::Config,
        400..=499 => FailureClass::Fallback,
        _ => FailureClass::Transient,
    }
}

/// Maps a non-success response to a classified error: Twilio's `code` first (see
/// [`classify`]), the HTTP status otherwise. An unreadable body is `Transient` (`Config` for
/// 401/403 and redirects). `Retry-After` is kept on transient errors. The message is the
/// provider's, with numbers masked; [`Provider::send`] also hides the code and the token.
pub fn parse_error(status: u16, body: &[u8], headers: &HeaderMap) -> DeliveryError {
    #[derive(Deserialize)]
    struct ErrorBody {
        code: Option<Value>,
        message: Option<String>,
    }
    let parsed = serde_json::from_slice::<ErrorBody>(body)
        .ok()
        .filter(|b| b.code.is_some() || b.message.is_some())
        .map(|b| {
            let code = b.code.as_ref().and_then(code_string);
            let known = code.as_deref().and_then(classify);
            let text = format!(
                "HTTP {status}: {}",
                b.message.as_deref().unwrap_or("no message")
            );
            ParsedError {
                class: known.unwrap_or_else(|| class_by_status(status)),
                code,
                text,
                refused: known.is_some(),
            }
        });
    http::error_response(NAME, status, headers, parsed)
}

/// The TwiML of a voice message: the localised text with the code read digit by digit
/// ("1, 2, 3, ..."), said twice, by an explicit voice that speaks the text's language.
pub fn voice_twiml(message: &OutboundMessage) -> String {
    let voice = say_voice(&message.locale);
    let digits = message
        .code
        .expose()
        .chars()
        .map(String::from)
        .collect::<Vec<_>>()
        .join(", ");
    let text = crate::text::render(voice.text_locale, &message.brand, &digits);
    format!(
        r#"<Response><Say loop="2" voice="{}" language="{}">{}.</Say></Response>"#,
        voice.voice,
        voice.language,
        xml_escape(&text)
    )
}

/// A `<Say>` voice: Twilio's voice name, the `language` it takes, the text locale it reads.
struct SayVoice {
    voice: &'static str,
    language: &'static str,
    text_locale: &'static str,
}

/// The `<Say>` voice for a locale: one Amazon Polly standard voice per language the message
/// text has (Twilio's text-to-speech voice table lists each with this language code; the
/// account's default voice may not speak the language). Unknown languages are read in English.
fn say_voice(locale: &str) -> SayVoice {
    let (voice, language, text_locale) = match crate::text::language(locale).as_str() {
        "es" => ("Polly.Lucia", "es-ES", "es"),
        "pt" => ("Polly.Camila", "pt-BR", "pt"),
        "fr" => ("Polly.Lea", "fr-FR", "fr"),
        "de" => ("Polly.Vicki", "de-DE", "de"),
        "ar" => ("Polly.Zeina", "arb", "ar"),
        _ => ("Polly.Joanna", "en-US", "en"),
    };
    SayVoice {
        voice,
        language,
        text_locale,
    }
}

fn xml_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
    out
}

impl Provider for TwilioProvider {
    fn name(&self) -> &str {
        NAME
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            delivery_receipts: self.config.status_callback_url.is_some(),
            ..Capabilities::channels(&self.config.channels())
        }
    }

    async fn send(&self, message: &OutboundMessage) -> Result<Delivery, DeliveryError> {
        self.deliver(message)
            .await
            .map_err(|e| secret::redact_send_error(e, message, &[self.config.auth_token.expose()]))
    }

    fn request_timeout(&self) -> Option<Duration> {
        Some(self.endpoint.timeout())
    }

    fn parse_receipts(
        &self,
        request: &InboundRequest,
    ) -> Result<Vec<DeliveryReceipt>, ReceiptError> {
        let params = verified_params(self.config.auth_token.expose(), request)?;
        parse_callback(&params, request).map(|r| r.into_iter().collect())
    }
}

/// Verifies `X-Twilio-Signature` and returns the signed parameters. Nothing of the request is
/// interpreted before the signature holds (beyond what the signature itself covers).
pub fn verified_params(
    auth_token: &str,
    request: &InboundRequest,
) -> Result<Vec<(String, String)>, ReceiptError> {
    let signature = request.proof_header(SIGNATURE_HEADER)?;
    if let Some(settings) = request.header(SIGNATURE_SETTINGS_HEADER) {
        // A SharedKey-signed webhook: not the Auth Token scheme this adapter verifies.
        let algorithm = settings
            .split(',')
            .filter_map(|p| p.split_once('='))
            .find(|(k, _)| k.trim() == "algorithm")
            .map(|(_, v)| v.trim());
        if algorithm.is_some_and(|a| !a.eq_ignore_ascii_case("HMAC_SHA1")) {
            return Err(ReceiptError::BadSignature);
        }
    }
    let body_hash = request.query_param("bodySHA256");
    let params: Vec<(String, String)> = match body_hash {
        // JSON-bodied webhooks: the URL (with the body's hash) is signed, the body is hashed.
        Some(_) => Vec::new(),
        None if request.is_post() => form_urlencoded::parse(&request.body).into_owned().collect(),
        None => Vec::new(),
    };
    if !verify_signature(auth_token, &request.url, &params, signature) {
        return Err(ReceiptError::BadSignature);
    }
    if let Some(expected) = body_hash {
        let actual = http::sha256_hex(&request.body);
        if !http::constant_time_eq(actual.as_bytes(), expected.to_ascii_lowercase().as_bytes()) {
            return Err(ReceiptError::BadSignature);
        }
        let fields: BTreeMap<String, Value> = serde_json::from_slice(&request.body)
            .map_err(|_| ReceiptError::Malformed("JSON body is not an object"))?;
        return Ok(fields
            .into_iter()
            .filter_map(|(k, v)| match v {
                Value::String(s) => Some((k, s)),
                Value::Number(n) => Some((k, n.to_string())),
                _ => None,
            })
            .collect());
    }
    if !request.is_post() {
        // A GET callback: its parameters are in the (signed) URL.
        return Ok(request.query.clone());
    }
    Ok(params)
}

/// Twilio's signature of a request: base64(HMAC-SHA1(auth token, url + every parameter as
/// name + value, names sorted, a repeated name's distinct values sorted)) — the form
/// twilio-python's validator computes.
pub fn compute_signature(auth_token: &str, url: &str, params: &[(String, String)]) -> String {
    signature_of(auth_token, url, params, false)
}

/// The signature over the sorted parameters, with a repeated name's values either
/// de-duplicated (twilio-python) or all kept (twilio-node and the documented "append each
/// name and value"): the official libraries disagree on repeated values, so both are accepted.
fn signature_of(
    auth_token: &str,
    url: &str,
    params: &[(String, String)],
    keep_duplicates: bool,
) -> String {
    let mut sorted: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (name, value) in params {
        sorted.entry(name).or_default().push(value);
    }
    let mut mac = <Hmac<Sha1> as Mac>::new_from_slice(auth_token.as_bytes())
        .expect("HMAC accepts keys of any length");
    mac.update(url.as_bytes());
    for (name, mut values) in sorted {
        values.sort_unstable();
        if !keep_duplicates {
            values.dedup();
        }
        for value in values {
            mac.update(name.as_bytes());
            mac.update(value.as_bytes());
        }
    }
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

/// Checks `signature` against the URL with and without its port (Twilio signs either form, as
/// its own validators accept), and, when a parameter repeats a value, with and without the
/// duplicates, in constant time.
pub fn verify_signature(
    auth_token: &str,
    url: &str,
    params: &[(String, String)],
    signature: &str,
) -> bool {
    let signature = signature.trim().as_bytes();
    let repeats = params.iter().collect::<BTreeSet<_>>().len() != params.len();
    let mut ok = false;
    // Every form is computed so timing does not tell which one matched.
    for form in url_forms(url) {
        for keep in [false, true] {
            if keep && !repeats {
                continue;
            }
            ok |= http::constant_time_eq(
                signature_of(auth_token, &form, params, keep).as_bytes(),
                signature,
            );
        }
    }
    ok
}

/// The URL without and with an explicit port (443 for https, 80 otherwise).
fn url_forms(url: &str) -> [String; 2] {
    let Some(scheme_end) = url.find("://") else {
        return [url.to_owned(), url.to_owned()];
    };
    let start = scheme_end + 3;
    let end = url[start..]
        .find(['/', '?', '#'])
        .map_or(url.len(), |i| start + i);
    let authority = &url[start..end];
    let host_start = authority.rfind('@').map_or(0, |i| i + 1);
    let host_port = &authority[host_start..];
    let port_at = match host_port.rfind(':') {
        Some(i) if !host_port[i..].contains(']') => Some(i),
        _ => None,
    };
    let port = port_at
        .map(|i| &host_port[i + 1..])
        .filter(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
        .filter(|p| p.parse::<u32>().is_ok_and(|n| n > 0));
    match (port, port_at) {
        (Some(_), Some(i)) => {
            let cut = start + host_start + i;
            [format!("{}{}", &url[..cut], &url[end..]), url.to_owned()]
        }
        _ => {
            let default = if url[..scheme_end].eq_ignore_ascii_case("https") {
                "443"
            } else {
                "80"
            };
            [
                url.to_owned(),
                format!("{}:{default}{}", &url[..end], &url[end..]),
            ]
        }
    }
}

/// Parses the parameters of a verified message or call status callback. Unknown parameters are
/// ignored; an unknown status gives no receipt.
pub fn parse_callback(
    params: &[(String, String)],
    request: &InboundRequest,
) -> Result<Option<DeliveryReceipt>, ReceiptError> {
    let get = |name: &str| {
        params
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
            .filter(|v| !v.is_empty())
    };
    let error_code = get("ErrorCode")
        .filter(|c| c.len() <= 16 && c.bytes().all(|b| b.is_ascii_digit()))
        .map(str::to_owned);
    let receipt = |sid: &str, status, failure| {
        if !is_sid(sid) {
            return Err(ReceiptError::Malformed("invalid SID"));
        }
        Ok(Some(DeliveryReceipt {
            provider: NAME.to_owned(),
            provider_message_id: sid.to_owned(),
            status,
            failure,
            at: request.received_at,
        }))
    };
    if let Some(sid) = get("MessageSid").or_else(|| get("SmsSid")) {
        let status = get("MessageStatus")
            .or_else(|| get("SmsStatus"))
            .ok_or(ReceiptError::Malformed("MessageStatus missing"))?;
        let status = match status {
            "accepted" | "scheduled" | "queued" | "sending" => ReceiptStatus::Queued,
            "sent" => ReceiptStatus::Sent,
            "delivered" => ReceiptStatus::Delivered,
            "read" => ReceiptStatus::Read,
            "undelivered" | "failed" | "canceled" => ReceiptStatus::Failed,
            _ => return Ok(None),
        };
        let failure = (status == ReceiptStatus::Failed).then(|| ReceiptFailure {
            class: error_code
                .as_deref()
                .and_then(classify)
                .unwrap_or(FailureClass::Fallback),
            code: error_code.clone(),
        });
        return receipt(sid, status, failure);
    }
    if let Some(sid) = get("CallSid") {
        let call_status = get("CallStatus").ok_or(ReceiptError::Malformed("CallStatus missing"))?;
        let (status, failure) = match call_status {
            "queued" | "initiated" | "ringing" => (ReceiptStatus::Queued, None),
            "in-progress" | "answered" => (ReceiptStatus::Sent, None),
            "completed" => (ReceiptStatus::Delivered, None),
            // The call did not reach them: another channel may.
            "busy" | "no-answer" | "failed" | "canceled" => (
                ReceiptStatus::Failed,
                Some(ReceiptFailure {
                    class: error_code
                        .as_deref()
                        .and_then(classify)
                        .unwrap_or(FailureClass::Fallback),
                    code: Some(error_code.clone().unwrap_or_else(|| call_status.to_owned())),
                }),
            ),
            _ => return Ok(None),
        };
        return receipt(sid, status, failure);
    }
    Err(ReceiptError::Malformed("neither MessageSid nor CallSid"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_forms_add_and_remove_the_default_port() {
        assert_eq!(
            url_forms("https://example.com/cb?x=1"),
            [
                "https://example.com/cb?x=1".to_owned(),
                "https://example.com:443/cb?x=1".to_owned()
            ]
        );
        assert_eq!(
            url_forms("http://example.com:8080/cb"),
            [
                "http://example.com/cb".to_owned(),
                "http://example.com:8080/cb".to_owned()
            ]
        );
        assert_eq!(
            url_forms("http://example.com"),
            [
                "http://example.com".to_owned(),
                "http://example.com:80".to_owned()
            ]
        );
        assert_eq!(url_forms("garbage")[0], "garbage");
    }

    #[test]
    fn voice_twiml_reads_the_code_digit_by_digit_twice_and_escapes_the_brand() {
        let msg = OutboundMessage {
            to: "+34600600600".into(),
            country: None,
            channel: Channel::Call,
            code: crate::OneTimeCode::new("123456"),
            brand: "A&B <Co>".into(),
            locale: "es".into(),
            validity: Duration::from_secs(300),
            reference: "r".into(),
            webotp_host: None,
        };
        assert_eq!(
            voice_twiml(&msg),
            r#"<Response><Say loop="2" voice="Polly.Lucia" language="es-ES">Tu código de A&amp;B &lt;Co&gt; es 1, 2, 3, 4, 5, 6.</Say></Response>"#
        );
    }
}
