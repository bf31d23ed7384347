//! Twilio: the wiremock emulation of the Messages and Calls APIs, the request shapes, every
//! error row of PROVIDERS.md (send-time and status-callback codes), and callback signatures.

use std::time::Duration;

use base64::Engine as _;
use serde_json::{Value, json};
use switchboard_providers::http::HttpClient;
use switchboard_providers::twilio::{self, TwilioConfig, TwilioProvider};
use switchboard_providers::{
    Channel, FailureClass, InboundRequest, Provider, ProviderContext, ProviderTable, ReceiptError,
    ReceiptStatus, Registry,
};
use wiremock::matchers::{header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::support::{CODE, Emulation, FormWhere, TO, assert_clean, form, message, received_at};

pub const SID: &str = "AC0123456789abcdef0123456789abcdef";
pub const TOKEN: &str = "twilio-auth-token-0f1e2d3c4b5a6978";
pub const CALLBACK: &str = "https://hooks.example.com/twilio/status";
const FROM: &str = "+15005550006";
const WA_FROM: &str = "+14155238886";
const CONTENT_SID: &str = "HXb5b62575e6e4ff6129ad7c8efe1f983e";
const VOICE_FROM: &str = "+15005550007";

/// The Twilio emulation.
pub struct TwilioApi {
    pub server: MockServer,
}

pub fn basic_auth() -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{SID}:{TOKEN}"))
    )
}

pub fn config_table(base_url: &str, overrides: Value) -> ProviderTable {
    let mut table = json!({
        "account_sid": SID,
        "auth_token": TOKEN,
        "from": FROM,
        "whatsapp_from": WA_FROM,
        "content_sid": CONTENT_SID,
        "voice_from": VOICE_FROM,
        "status_callback_url": CALLBACK,
        "base_url": base_url,
    });
    for (k, v) in overrides.as_object().unwrap() {
        if v.is_null() {
            table.as_object_mut().unwrap().remove(k);
        } else {
            table[k] = v.clone();
        }
    }
    ProviderTable::new(table)
}

fn resource(channel: Channel) -> &'static str {
    if channel == Channel::Call {
        "Calls"
    } else {
        "Messages"
    }
}

pub fn endpoint_path(channel: Channel) -> String {
    format!("/2010-04-01/Accounts/{SID}/{}.json", resource(channel))
}

/// Twilio's error body.
pub fn twilio_error(status: u16, code: u32, message: &str) -> ResponseTemplate {
    ResponseTemplate::new(status).set_body_json(json!({
        "code": code,
        "message": message,
        "more_info": format!("https://www.twilio.com/docs/errors/{code}"),
        "status": status,
    }))
}

/// Twilio's `201 Created` for a message or a call.
pub fn created(channel: Channel, sid: &str) -> ResponseTemplate {
    let body = if channel == Channel::Call {
        json!({
            "account_sid": SID, "sid": sid, "status": "queued", "to": TO, "from": VOICE_FROM,
            "direction": "outbound-api", "api_version": "2010-04-01",
            "uri": format!("/2010-04-01/Accounts/{SID}/Calls/{sid}.json"),
        })
    } else {
        json!({
            "account_sid": SID, "api_version": "2010-04-01", "body": "Your Acme code is 482913",
            "date_created": "Thu, 24 Aug 2023 05:01:45 +0000", "direction": "outbound-api",
            "error_code": null, "error_message": null, "from": FROM,
            "messaging_service_sid": null, "num_media": "0", "num_segments": "1",
            "price": null, "price_unit": "USD", "sid": sid, "status": "queued", "to": TO,
            "uri": format!("/2010-04-01/Accounts/{SID}/Messages/{sid}.json"),
        })
    };
    ResponseTemplate::new(201).set_body_json(body)
}

fn is_whatsapp(f: &std::collections::HashMap<String, String>) -> bool {
    f.get("To").is_some_and(|t| t.starts_with("whatsapp:"))
}

/// A status callback as Twilio posts it, signed with `token`.
pub fn callback(params: &[(&str, &str)], token: &str) -> InboundRequest {
    let owned: Vec<(String, String)> = params
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    let body = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(&owned)
        .finish();
    let signature = twilio::compute_signature(token, CALLBACK, &owned);
    InboundRequest::new(
        "POST",
        CALLBACK,
        vec![
            (
                "Content-Type".into(),
                "application/x-www-form-urlencoded".into(),
            ),
            ("X-Twilio-Signature".into(), signature),
        ],
        body,
        received_at(),
    )
}

fn message_status(sid: &str, status: &str, error_code: Option<&str>) -> InboundRequest {
    let mut params = vec![
        ("AccountSid", SID),
        ("ApiVersion", "2010-04-01"),
        ("From", FROM),
        ("MessageSid", sid),
        ("MessageStatus", status),
        ("SmsSid", sid),
        ("SmsStatus", status),
        ("To", TO),
        ("RawDlrDoneDate", "2401011200"),
    ];
    if let Some(code) = error_code {
        params.push(("ErrorCode", code));
    }
    callback(&params, TOKEN)
}

fn call_status(sid: &str, status: &str) -> InboundRequest {
    callback(
        &[
            ("AccountSid", SID),
            ("CallSid", sid),
            ("CallStatus", status),
            ("Direction", "outbound-api"),
            ("From", VOICE_FROM),
            ("To", TO),
        ],
        TOKEN,
    )
}

impl Emulation for TwilioApi {
    type Adapter = TwilioProvider;

    async fn start() -> Self {
        TwilioApi {
            server: MockServer::start().await,
        }
    }

    fn server(&self) -> &MockServer {
        &self.server
    }

    fn adapter_with(&self, overrides: Value) -> TwilioProvider {
        let config: TwilioConfig = config_table(&self.server.uri(), overrides).parse().unwrap();
        TwilioProvider::new(config, HttpClient::new().unwrap()).unwrap()
    }

    fn secrets(&self) -> Vec<String> {
        vec![TOKEN.to_owned()]
    }

    async fn mount(&self, channel: Channel, response: ResponseTemplate) {
        let mock = Mock::given(method("POST"))
            .and(path(endpoint_path(channel)))
            .and(header("authorization", basic_auth().as_str()));
        let mock = match channel {
            Channel::Whatsapp => mock.and(FormWhere(is_whatsapp)),
            Channel::Sms => mock.and(FormWhere(|f| !is_whatsapp(f))),
            _ => mock,
        };
        mock.respond_with(response).mount(&self.server).await;
    }

    fn success(&self, channel: Channel) -> (ResponseTemplate, String) {
        let sid = if channel == Channel::Call {
            "CA5ef8732a3c49700934481addd5ce1659"
        } else {
            "SM1f0e8ae6ade43cb3c0ce4525424e404f"
        };
        (created(channel, sid), sid.to_owned())
    }

    fn error(&self, class: FailureClass, channel: Channel) -> Option<(ResponseTemplate, String)> {
        let (status, code, text) = match (class, channel) {
            (FailureClass::Transient, _) => (429, 20429, "Too Many Requests"),
            (FailureClass::Fraud, Channel::Whatsapp | Channel::Call) => return None,
            (FailureClass::Fraud, _) => (
                400,
                30450,
                "Message delivery blocked by SMS Pumping Protection",
            ),
            (FailureClass::Config, _) => (401, 20003, "Authenticate"),
            (FailureClass::Permanent, Channel::Call) => (
                400,
                21217,
                "Phone number does not appear to be valid: +34600600600",
            ),
            (FailureClass::Permanent, _) => (
                400,
                21211,
                "The 'To' number +34600600600 is not a valid phone number.",
            ),
            (FailureClass::Fallback, Channel::Call) => return None,
            (FailureClass::Fallback, _) => (
                400,
                21614,
                "'To' number +34600600600 is not a valid mobile number",
            ),
        };
        Some((twilio_error(status, code, text), code.to_string()))
    }

    fn rate_limited(&self, retry_after_secs: u64) -> ResponseTemplate {
        twilio_error(429, 20429, "Too Many Requests")
            .insert_header("Retry-After", retry_after_secs.to_string().as_str())
    }

    fn unauthorized(&self) -> ResponseTemplate {
        twilio_error(401, 20003, "Authenticate")
    }

    fn signed_receipt(&self, message_id: &str) -> InboundRequest {
        message_status(message_id, "delivered", None)
    }
}

async fn send_err(
    channel: Channel,
    response: ResponseTemplate,
) -> switchboard_providers::DeliveryError {
    let api = TwilioApi::start().await;
    api.mount(channel, response).await;
    let err = api.adapter().send(&message(channel)).await.unwrap_err();
    assert_clean(&err, &[TOKEN]);
    err
}

// ---- request shapes -------------------------------------------------------------------------

#[test]
fn say_names_a_voice_that_speaks_each_language_of_the_text() {
    // Twilio's TTS voice table: each Polly voice with the language code it takes.
    for (locale, voice, language, text_start) in [
        ("en", "Polly.Joanna", "en-US", "Your Acme code"),
        ("es-MX", "Polly.Lucia", "es-ES", "Tu código"),
        ("pt-BR", "Polly.Camila", "pt-BR", "Seu código"),
        ("fr", "Polly.Lea", "fr-FR", "Votre code"),
        ("de", "Polly.Vicki", "de-DE", "Ihr Acme-Code"),
        ("ar", "Polly.Zeina", "arb", "رمز Acme"),
        ("xx", "Polly.Joanna", "en-US", "Your Acme code"),
    ] {
        let mut msg = message(Channel::Call);
        msg.locale = locale.into();
        let twiml = twilio::voice_twiml(&msg);
        assert!(
            twiml.starts_with(&format!(
                r#"<Response><Say loop="2" voice="{voice}" language="{language}">{text_start}"#
            )),
            "{locale}: {twiml}"
        );
    }
}

#[tokio::test]
async fn sms_is_a_basic_auth_form_post_with_the_localised_body() {
    let api = TwilioApi::start().await;
    let (response, sid) = api.success(Channel::Sms);
    api.mount(Channel::Sms, response).await;
    let mut msg = message(Channel::Sms);
    msg.locale = "pt-BR".into();
    let delivery = api.adapter().send(&msg).await.unwrap();
    assert_eq!(delivery.provider_message_id, sid);

    let requests = api.server.received_requests().await.unwrap();
    let f = form(&requests[0]);
    assert_eq!(
        requests[0].headers.get("content-type").unwrap(),
        "application/x-www-form-urlencoded"
    );
    assert_eq!(f["To"], TO);
    assert_eq!(f["From"], FROM);
    assert_eq!(f["Body"], format!("Seu código Acme é {CODE}"));
    assert_eq!(f["ValidityPeriod"], "300");
    assert_eq!(f["StatusCallback"], CALLBACK);
    assert!(!f.contains_key("ContentSid") && !f.contains_key("MessagingServiceSid"));
}

#[tokio::test]
async fn messaging_service_sid_replaces_from_for_sms() {
    let api = TwilioApi::start().await;
    let (response, _) = api.success(Channel::Sms);
    api.mount(Channel::Sms, response).await;
    api.adapter_with(json!({ "messaging_service_sid": "MG9752274e9e519418a7406176694466fa" }))
        .send(&message(Channel::Sms))
        .await
        .unwrap();
    let f = form(&api.server.received_requests().await.unwrap()[0]);
    assert_eq!(
        f["MessagingServiceSid"],
        "MG9752274e9e519418a7406176694466fa"
    );
    assert!(!f.contains_key("From"));
}

#[tokio::test]
async fn whatsapp_uses_the_authentication_template_and_whatsapp_addresses() {
    let api = TwilioApi::start().await;
    let (response, _) = api.success(Channel::Whatsapp);
    api.mount(Channel::Whatsapp, response).await;
    api.adapter()
        .send(&message(Channel::Whatsapp))
        .await
        .unwrap();
    let f = form(&api.server.received_requests().await.unwrap()[0]);
    assert_eq!(f["To"], format!("whatsapp:{TO}"));
    assert_eq!(f["From"], format!("whatsapp:{WA_FROM}"));
    assert_eq!(f["ContentSid"], CONTENT_SID);
    let vars: Value = serde_json::from_str(&f["ContentVariables"]).unwrap();
    assert_eq!(vars, json!({ "1": CODE }));
    assert!(!f.contains_key("Body"), "the template carries the text");
}

#[tokio::test]
async fn whatsapp_picks_the_template_approved_in_the_message_language() {
    const PT_BR: &str = "HX11111111111111111111111111111111";
    const ES: &str = "HX22222222222222222222222222222222";
    let api = TwilioApi::start().await;
    let (response, _) = api.success(Channel::Whatsapp);
    api.mount(Channel::Whatsapp, response).await;
    let adapter = api.adapter_with(json!({ "content_sids": { "pt_BR": PT_BR, "es": ES } }));
    for locale in ["pt-BR", "es-MX", "es", "de", "pt-PT"] {
        let mut m = message(Channel::Whatsapp);
        m.locale = locale.into();
        adapter.send(&m).await.unwrap();
    }
    let sids: Vec<String> = api
        .server
        .received_requests()
        .await
        .unwrap()
        .iter()
        .map(|r| form(r)["ContentSid"].clone())
        .collect();
    // Full tag, then language, then the default template.
    assert_eq!(sids, [PT_BR, ES, ES, CONTENT_SID, CONTENT_SID]);
}

#[test]
fn a_locale_template_that_is_not_a_content_sid_names_its_key() {
    let err = registry_error(config_table(
        "https://api.twilio.com",
        json!({ "content_sids": { "pt-BR": "not-a-sid" } }),
    ));
    assert!(
        err.starts_with("providers.twilio.content_sids.pt-BR:"),
        "{err}"
    );
}

#[tokio::test]
async fn voice_call_reads_the_code_digit_by_digit_twice_with_a_short_ring_timeout() {
    let api = TwilioApi::start().await;
    let (response, sid) = api.success(Channel::Call);
    api.mount(Channel::Call, response).await;
    let delivery = api.adapter().send(&message(Channel::Call)).await.unwrap();
    assert_eq!(delivery.provider_message_id, sid);
    let requests = api.server.received_requests().await.unwrap();
    assert_eq!(requests[0].url.path(), endpoint_path(Channel::Call));
    let f = form(&requests[0]);
    assert_eq!(f["To"], TO);
    assert_eq!(f["From"], VOICE_FROM);
    assert_eq!(
        f["Twiml"],
        r#"<Response><Say loop="2" voice="Polly.Joanna" language="en-US">Your Acme code is 4, 8, 2, 9, 1, 3.</Say></Response>"#
    );
    assert_eq!(f["Timeout"], "15");
    assert_eq!(f["StatusCallback"], CALLBACK);
    assert_eq!(f["StatusCallbackEvent"], "completed");
}

#[tokio::test]
async fn capabilities_follow_the_configured_senders() {
    let api = TwilioApi::start().await;
    let sms_only = api.adapter_with(json!({
        "whatsapp_from": null, "content_sid": null, "voice_from": null, "status_callback_url": null
    }));
    let caps = sms_only.capabilities();
    assert_eq!(caps.channels, vec![Channel::Sms]);
    assert!(!caps.delivery_receipts);
    let all = api.adapter().capabilities();
    assert_eq!(
        all.channels,
        vec![Channel::Sms, Channel::Whatsapp, Channel::Call]
    );
    assert!(all.delivery_receipts);
}

// ---- send-time errors: one test per row of PROVIDERS.md ---------------------------------------

#[tokio::test]
async fn twilio_21211_invalid_to_is_permanent() {
    let err = send_err(
        Channel::Sms,
        twilio_error(
            400,
            21211,
            "The 'To' number +34600600600 is not a valid phone number.",
        ),
    )
    .await;
    assert_eq!(
        (err.class, err.code.as_deref()),
        (FailureClass::Permanent, Some("21211"))
    );
    assert!(err.message.contains("not a valid phone number"), "{err}");
}

#[tokio::test]
async fn twilio_21408_region_not_enabled_is_config() {
    let err = send_err(
        Channel::Sms,
        twilio_error(
            400,
            21408,
            "Permission to send an SMS has not been enabled for the region indicated by the 'To' number: +34600600600.",
        ),
    )
    .await;
    assert_eq!(err.class, FailureClass::Config);
    assert_eq!(err.code.as_deref(), Some("21408"));
}

#[tokio::test]
async fn twilio_21610_opted_out_of_this_sender_is_fallback_not_permanent() {
    // STOP blocks our sender only: another provider or channel may still reach the user.
    let err = send_err(
        Channel::Sms,
        twilio_error(400, 21610, "Attempt to send to unsubscribed recipient"),
    )
    .await;
    assert_eq!(err.class, FailureClass::Fallback);
    assert!(!err.may_have_been_delivered());
}

#[tokio::test]
async fn twilio_21614_not_a_mobile_is_fallback() {
    let err = send_err(
        Channel::Sms,
        twilio_error(400, 21614, "'To' number is not a valid mobile number"),
    )
    .await;
    assert_eq!(err.class, FailureClass::Fallback);
}

#[tokio::test]
async fn twilio_21635_landline_is_fallback() {
    let err = send_err(
        Channel::Sms,
        twilio_error(400, 21635, "'To' number cannot be a landline"),
    )
    .await;
    assert_eq!(err.class, FailureClass::Fallback);
}

#[tokio::test]
async fn twilio_20003_authentication_is_config() {
    let err = send_err(Channel::Sms, twilio_error(401, 20003, "Authenticate")).await;
    assert_eq!(err.class, FailureClass::Config);
    assert_eq!(err.code.as_deref(), Some("20003"));
}

#[tokio::test]
async fn twilio_20429_too_many_requests_is_transient_with_retry_after() {
    let err = send_err(
        Channel::Sms,
        twilio_error(429, 20429, "Too Many Requests").insert_header("Retry-After", "3"),
    )
    .await;
    assert_eq!(err.class, FailureClass::Transient);
    assert_eq!(err.retry_after, Some(Duration::from_secs(3)));
}

#[tokio::test]
async fn twilio_retry_after_as_http_date_is_measured_against_the_response_date() {
    let err = send_err(
        Channel::Sms,
        twilio_error(429, 20429, "Too Many Requests")
            .insert_header("Date", "Wed, 21 Oct 2015 07:28:00 GMT")
            .insert_header("Retry-After", "Wed, 21 Oct 2015 07:28:10 GMT"),
    )
    .await;
    assert_eq!(err.class, FailureClass::Transient);
    assert_eq!(err.retry_after, Some(Duration::from_secs(10)));
}

#[tokio::test]
async fn twilio_21217_invalid_call_number_is_permanent() {
    let err = send_err(
        Channel::Call,
        twilio_error(400, 21217, "Phone number does not appear to be valid"),
    )
    .await;
    assert_eq!(err.class, FailureClass::Permanent);
}

#[tokio::test]
async fn twilio_21215_geo_permission_is_config() {
    let err = send_err(
        Channel::Call,
        twilio_error(400, 21215, "Account not authorized to call +34600600600."),
    )
    .await;
    assert_eq!(err.class, FailureClass::Config);
}

#[tokio::test]
async fn twilio_13224_invalid_call_number_is_permanent() {
    let err = send_err(
        Channel::Call,
        twilio_error(
            400,
            13224,
            "Dial: Twilio does not support calling this number or the number is invalid",
        ),
    )
    .await;
    assert_eq!(err.class, FailureClass::Permanent);
}

#[tokio::test]
async fn twilio_5xx_is_transient() {
    for status in [500, 502, 503] {
        let err = send_err(
            Channel::Sms,
            twilio_error(status, 20500, "Internal Server Error"),
        )
        .await;
        assert_eq!(err.class, FailureClass::Transient, "{status}");
    }
}

#[tokio::test]
async fn twilio_malformed_error_body_is_transient() {
    let err = send_err(
        Channel::Sms,
        ResponseTemplate::new(400).set_body_raw("<html>Bad Request</html>", "text/html"),
    )
    .await;
    assert_eq!(err.class, FailureClass::Transient);
    assert_eq!(err.code.as_deref(), Some("http_400"));
}

#[tokio::test]
async fn twilio_unknown_4xx_code_is_fallback() {
    let err = send_err(
        Channel::Sms,
        twilio_error(
            400,
            21612,
            "The 'To' phone number is not currently reachable via SMS",
        ),
    )
    .await;
    assert_eq!(err.class, FailureClass::Fallback);
    assert_eq!(err.code.as_deref(), Some("21612"));
}

#[tokio::test]
async fn twilio_201_with_an_error_code_is_classified_by_the_code() {
    let body = json!({
        "sid": "SM1f0e8ae6ade43cb3c0ce4525424e404f", "status": "failed",
        "error_code": 30007, "error_message": "Message filtered",
    });
    let err = send_err(Channel::Sms, ResponseTemplate::new(201).set_body_json(body)).await;
    assert_eq!(
        (err.class, err.code.as_deref()),
        (FailureClass::Fallback, Some("30007"))
    );
}

#[tokio::test]
async fn twilio_201_without_a_sid_is_transient() {
    let err = send_err(
        Channel::Sms,
        ResponseTemplate::new(201).set_body_json(json!({ "status": "queued" })),
    )
    .await;
    assert_eq!(err.class, FailureClass::Transient);
}

#[tokio::test]
async fn twilio_error_messages_never_echo_the_code_or_the_token() {
    let text = format!("Body '{CODE}' rejected for {TO}; token {TOKEN}");
    let err = send_err(Channel::Sms, twilio_error(400, 21211, &text)).await;
    assert!(err.message.contains("<redacted>"), "{err}");
}

// ---- status callbacks: the later-error table --------------------------------------------------

fn adapter_for_receipts() -> TwilioProvider {
    let config: TwilioConfig = config_table("https://api.twilio.invalid", json!({}))
        .parse()
        .unwrap();
    TwilioProvider::new(config, HttpClient::new().unwrap()).unwrap()
}

fn later_error(code: &str) -> (ReceiptStatus, FailureClass, Option<String>) {
    let r = adapter_for_receipts()
        .parse_receipts(&message_status(
            "SM1f0e8ae6ade43cb3c0ce4525424e404f",
            "undelivered",
            Some(code),
        ))
        .unwrap();
    let failure = r[0].failure.clone().unwrap();
    (r[0].status, failure.class, failure.code)
}

macro_rules! later_error_tests {
    ($($name:ident: $code:literal => $class:ident;)*) => {$(
        #[test]
        fn $name() {
            assert_eq!(
                later_error($code),
                (ReceiptStatus::Failed, FailureClass::$class, Some($code.to_owned()))
            );
        }
    )*};
}

later_error_tests! {
    twilio_30003_unreachable_handset_is_fallback: "30003" => Fallback;
    twilio_30004_blocked_is_fallback: "30004" => Fallback;
    twilio_30005_unknown_handset_is_permanent: "30005" => Permanent;
    twilio_30006_landline_or_unreachable_carrier_is_fallback: "30006" => Fallback;
    twilio_30007_filtered_is_fallback: "30007" => Fallback;
    twilio_30008_unknown_error_is_fallback: "30008" => Fallback;
    twilio_30450_pumping_protection_is_fraud: "30450" => Fraud;
    twilio_30453_pumping_protection_is_fraud: "30453" => Fraud;
    twilio_30022_rate_cap_is_transient: "30022" => Transient;
    twilio_30023_daily_cap_is_fallback: "30023" => Fallback;
    twilio_63038_whatsapp_daily_cap_is_fallback: "63038" => Fallback;
    twilio_21212_invalid_from_is_config: "21212" => Config;
    twilio_21606_from_not_sms_capable_is_config: "21606" => Config;
    twilio_21659_from_not_a_valid_sender_is_config: "21659" => Config;
    twilio_21660_from_not_owned_is_config: "21660" => Config;
    twilio_21910_from_to_pair_invalid_is_config: "21910" => Config;
    twilio_30032_toll_free_unverified_is_config: "30032" => Config;
    twilio_30034_unregistered_10dlc_is_config: "30034" => Config;
    twilio_63003_whatsapp_unreachable_is_fallback: "63003" => Fallback;
    twilio_63024_whatsapp_invalid_recipient_is_fallback: "63024" => Fallback;
    twilio_63032_whatsapp_cannot_receive_is_fallback: "63032" => Fallback;
    twilio_63018_whatsapp_rate_limit_is_transient: "63018" => Transient;
    twilio_63016_whatsapp_template_config_is_config: "63016" => Config;
    twilio_unknown_later_error_is_fallback: "39999" => Fallback;
}

#[test]
fn twilio_call_busy_no_answer_and_failed_are_fallback() {
    let adapter = adapter_for_receipts();
    for status in ["busy", "no-answer", "failed"] {
        let r = adapter
            .parse_receipts(&call_status("CA5ef8732a3c49700934481addd5ce1659", status))
            .unwrap();
        assert_eq!(r[0].status, ReceiptStatus::Failed, "{status}");
        let failure = r[0].failure.clone().unwrap();
        assert_eq!(failure.class, FailureClass::Fallback, "{status}");
        assert_eq!(failure.code.as_deref(), Some(status));
    }
    let done = adapter
        .parse_receipts(&call_status(
            "CA5ef8732a3c49700934481addd5ce1659",
            "completed",
        ))
        .unwrap();
    assert_eq!(done[0].status, ReceiptStatus::Delivered);
    assert!(done[0].failure.is_none());
}

#[test]
fn message_statuses_map_to_receipts_and_unknown_params_are_accepted() {
    let adapter = adapter_for_receipts();
    for (status, expected) in [
        ("queued", ReceiptStatus::Queued),
        ("sent", ReceiptStatus::Sent),
        ("delivered", ReceiptStatus::Delivered),
        ("read", ReceiptStatus::Read),
    ] {
        let r = adapter
            .parse_receipts(&message_status("SM1", status, None))
            .unwrap();
        assert_eq!(r.len(), 1);
        assert_eq!(r[0].status, expected, "{status}");
        assert_eq!(r[0].provider, "twilio");
        assert_eq!(r[0].at, received_at());
        assert!(r[0].failure.is_none());
    }
    let none = adapter
        .parse_receipts(&message_status("SM1", "partially_delivered", None))
        .unwrap();
    assert!(none.is_empty(), "an unknown status gives no receipt");
}

#[test]
fn callback_without_a_sid_is_malformed_once_signed() {
    let req = callback(&[("Foo", "bar")], TOKEN);
    assert!(matches!(
        adapter_for_receipts().parse_receipts(&req),
        Err(ReceiptError::Malformed(_))
    ));
}

#[test]
fn callback_signed_with_another_token_is_rejected() {
    let mut req = message_status("SM1", "delivered", None);
    let params: Vec<(String, String)> = form_urlencoded::parse(&req.body).into_owned().collect();
    let forged = twilio::compute_signature("not-the-token", CALLBACK, &params);
    req.headers.retain(|(n, _)| n != "X-Twilio-Signature");
    req.headers.push(("x-twilio-signature".into(), forged));
    assert_eq!(
        adapter_for_receipts().parse_receipts(&req),
        Err(ReceiptError::BadSignature)
    );
}

#[test]
fn callback_signed_for_another_url_is_rejected() {
    let mut req = message_status("SM1", "delivered", None);
    req.url = "https://hooks.example.com/twilio/other".into();
    assert_eq!(
        adapter_for_receipts().parse_receipts(&req),
        Err(ReceiptError::BadSignature)
    );
}

#[test]
fn callback_signed_with_an_explicit_port_is_accepted_either_way() {
    let params = vec![
        ("MessageSid".to_owned(), "SM1".to_owned()),
        ("MessageStatus".to_owned(), "delivered".to_owned()),
    ];
    let with_port = "https://hooks.example.com:443/twilio/status";
    let signature = twilio::compute_signature(TOKEN, with_port, &params);
    assert!(twilio::verify_signature(
        TOKEN, CALLBACK, &params, &signature
    ));
    let plain = twilio::compute_signature(TOKEN, CALLBACK, &params);
    assert!(twilio::verify_signature(TOKEN, with_port, &params, &plain));
}

#[test]
fn shared_key_signed_callbacks_are_not_downgraded_to_the_auth_token_scheme() {
    let mut req = message_status("SM1", "delivered", None);
    req.headers.push((
        "X-Twilio-Webhooks-Signature-Settings".into(),
        "key=webhooks_sharedkey_1,algorithm=HMAC_SHA256".into(),
    ));
    assert_eq!(
        adapter_for_receipts().parse_receipts(&req),
        Err(ReceiptError::BadSignature)
    );
}

#[test]
fn get_callbacks_are_verified_on_the_url_and_read_from_the_query() {
    let url = format!("{CALLBACK}?MessageSid=SM1&MessageStatus=delivered");
    let signature = twilio::compute_signature(TOKEN, &url, &[]);
    let req = InboundRequest::new(
        "GET",
        url.clone(),
        vec![("X-Twilio-Signature".into(), signature.clone())],
        Vec::new(),
        received_at(),
    );
    let adapter = adapter_for_receipts();
    assert_eq!(
        adapter.parse_receipts(&req).unwrap()[0].status,
        ReceiptStatus::Delivered
    );
    let tampered = InboundRequest::new(
        "GET",
        url.replace("delivered", "failed"),
        vec![("X-Twilio-Signature".into(), signature)],
        Vec::new(),
        received_at(),
    );
    assert_eq!(
        adapter.parse_receipts(&tampered),
        Err(ReceiptError::BadSignature)
    );
}

#[test]
fn json_callbacks_verify_the_body_hash_in_the_signed_url() {
    let body = br#"{"MessageSid":"SM1","MessageStatus":"delivered"}"#;
    let hash = {
        use sha2::Digest;
        hex::encode(sha2::Sha256::digest(body))
    };
    let url = format!("{CALLBACK}?bodySHA256={hash}");
    let signature = twilio::compute_signature(TOKEN, &url, &[]);
    let req = InboundRequest::new(
        "POST",
        url.clone(),
        vec![("X-Twilio-Signature".into(), signature.clone())],
        body.to_vec(),
        received_at(),
    );
    let adapter = adapter_for_receipts();
    assert_eq!(
        adapter.parse_receipts(&req).unwrap()[0].status,
        ReceiptStatus::Delivered
    );
    let tampered = InboundRequest::new(
        "POST",
        url,
        vec![("X-Twilio-Signature".into(), signature)],
        br#"{"MessageSid":"SM1","MessageStatus":"failed"}"#.to_vec(),
        received_at(),
    );
    assert_eq!(
        adapter.parse_receipts(&tampered),
        Err(ReceiptError::BadSignature)
    );
}

// ---- config -------------------------------------------------------------------------------------

fn registry_error(table: ProviderTable) -> String {
    match Registry::builtin().build("twilio", &table, &ProviderContext::new().unwrap()) {
        Err(e) => e.to_string(),
        Ok(_) => panic!("built from an invalid table"),
    }
}

#[test]
fn missing_auth_token_names_the_key() {
    let err = registry_error(config_table(
        "https://api.twilio.com",
        json!({ "auth_token": null }),
    ));
    assert_eq!(err, "providers.twilio.auth_token: missing");
}

#[test]
fn whatsapp_sender_without_a_template_names_content_sid() {
    let err = registry_error(config_table(
        "https://api.twilio.com",
        json!({ "content_sid": null }),
    ));
    assert!(err.starts_with("providers.twilio.content_sid:"), "{err}");
}

#[test]
fn unknown_key_is_refused_by_name() {
    let err = registry_error(config_table(
        "https://api.twilio.com",
        json!({ "auth_tokn": "x" }),
    ));
    assert!(
        err.starts_with("providers.twilio.auth_tokn: unknown key"),
        "{err}"
    );
}

#[test]
fn debug_of_the_adapter_and_its_config_hides_the_token() {
    let adapter = adapter_for_receipts();
    let debug = format!("{adapter:?}");
    assert!(debug.contains("auth_token: <redacted>"), "{debug}");
    assert!(!debug.contains(TOKEN), "{debug}");
}

#[test]
fn parse_error_never_panics_on_arbitrary_bodies() {
    use proptest::prelude::*;
    proptest!(|(status in 100u16..600, body in proptest::collection::vec(any::<u8>(), 0..512))| {
        let err = twilio::parse_error(status, &body, &Default::default());
        prop_assert!(err.message.chars().count() <= switchboard_providers::MAX_MESSAGE_CHARS);
    });
}

#[test]
fn callback_parser_never_panics_on_arbitrary_signed_bodies() {
    use proptest::prelude::*;
    let adapter = adapter_for_receipts();
    proptest!(|(body in proptest::collection::vec(any::<u8>(), 0..512))| {
        let params: Vec<(String, String)> = form_urlencoded::parse(&body).into_owned().collect();
        let signature = twilio::compute_signature(TOKEN, CALLBACK, &params);
        let req = InboundRequest::new(
            "POST",
            CALLBACK,
            vec![("X-Twilio-Signature".into(), signature)],
            body,
            received_at(),
        );
        let _ = adapter.parse_receipts(&req);
    });
}
