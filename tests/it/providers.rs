//! The engine with the real adapters: Twilio and Meta WhatsApp built from config tables through
//! the registry, talking to wiremock emulations of their APIs.

use std::time::Duration;

use serde_json::{Value, json};
use switchboard::providers::{
    Channel, DeliveryReceipt, FailureClass, InboundRequest, ReceiptFailure, ReceiptStatus,
};
use switchboard::report::AttemptOutcome;
use switchboard::routing::RouteTable;
use switchboard::store::Store;
use switchboard::{
    CheckRequest, CheckStatus, Config, Engine, EngineBuilder, ReceiptEffect, SendRequest,
    SendStatus,
};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const NUMBER: &str = "+34600600600";
const SID: &str = "AC0123456789abcdef0123456789abcdef";
const TOKEN: &str = "engine-test-auth-token-77";
const PHONE_NUMBER_ID: &str = "106540352242922";
const WAMID: &str = "wamid.HBgLMzQ2MDA2MDA2MDAVAgARGBI5QTNDQTVCM0Q0Q0Q2RTY3RTcA";
const SMS_SID: &str = "SM1f0e8ae6ade43cb3c0ce4525424e404f";
const META_APP_SECRET: &str = "meta-app-secret-for-receipts-1";

/// WhatsApp via Meta first, SMS via Twilio second, a Twilio call last.
const ROUTES: &str = r#"
currency = "USD"
[default]
preference = ["whatsapp", "sms", "call"]
routes = [
  { channel = "whatsapp", provider = "meta_whatsapp", price = 0.01 },
  { channel = "sms", provider = "twilio", price = 0.05 },
  { channel = "call", provider = "twilio", price = 0.09 },
]
"#;

struct Apis {
    twilio: MockServer,
    meta: MockServer,
}

impl Apis {
    async fn start() -> Self {
        Apis {
            twilio: MockServer::start().await,
            meta: MockServer::start().await,
        }
    }

    fn config(&self, attempt_timeout_ms: u64) -> Config {
        self.config_with(attempt_timeout_ms, "")
    }

    /// The config, with `twilio_extra` appended to the `[providers.twilio]` table.
    fn config_with(&self, attempt_timeout_ms: u64, twilio_extra: &str) -> Config {
        Config::from_toml(&format!(
            r#"
pepper = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"
[code]
hashing = {{ scheme = "hmac-sha256" }}
[routing]
attempt_timeout_ms = {attempt_timeout_ms}
[providers]
stand_in = ""
[providers.twilio]
account_sid = "{SID}"
auth_token = "{TOKEN}"
from = "+15005550006"
voice_from = "+15005550007"
base_url = "{twilio}"
timeout_ms = {attempt_timeout_ms}
{twilio_extra}
[providers.meta_whatsapp]
access_token = "meta-access-token-1"
phone_number_id = "{PHONE_NUMBER_ID}"
app_secret = "{META_APP_SECRET}"
base_url = "{meta}"
timeout_ms = {attempt_timeout_ms}
"#,
            twilio = self.twilio.uri(),
            meta = self.meta.uri(),
        ))
        .expect("test config is valid")
    }

    fn engine(&self, attempt_timeout_ms: u64) -> Engine {
        EngineBuilder::new(self.config(attempt_timeout_ms))
            .routes(RouteTable::from_toml(ROUTES).unwrap())
            .build()
            .expect("engine builds with the configured adapters")
    }

    async fn meta_answers(&self, response: ResponseTemplate, times: u64) {
        Mock::given(method("POST"))
            .and(path(format!("/v23.0/{PHONE_NUMBER_ID}/messages")))
            .respond_with(response)
            .expect(times)
            .mount(&self.meta)
            .await;
    }

    async fn twilio_answers(&self, resource: &str, response: ResponseTemplate, times: u64) {
        Mock::given(method("POST"))
            .and(path(format!("/2010-04-01/Accounts/{SID}/{resource}.json")))
            .respond_with(response)
            .expect(times)
            .mount(&self.twilio)
            .await;
    }

    /// The code in the SMS Twilio was asked to send (`Body=Your+switchboard+code+is+123456`).
    async fn sms_code(&self) -> String {
        let requests = self.twilio.received_requests().await.unwrap();
        let form = String::from_utf8(requests.last().unwrap().body.clone()).unwrap();
        let body = form
            .split('&')
            .find_map(|kv| kv.strip_prefix("Body="))
            .unwrap();
        body.rsplit('+').next().unwrap().to_owned()
    }
}

fn meta_error(code: i64, message: &str) -> ResponseTemplate {
    ResponseTemplate::new(400).set_body_json(json!({
        "error": { "message": message, "type": "OAuthException", "code": code,
                   "error_data": { "messaging_product": "whatsapp", "details": message },
                   "fbtrace_id": "A1" }
    }))
}

fn meta_accepted() -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(json!({
        "messaging_product": "whatsapp",
        "contacts": [{ "input": "34600600600", "wa_id": "34600600600" }],
        "messages": [{ "id": WAMID }],
    }))
}

fn twilio_error(status: u16, code: u32, message: &str) -> ResponseTemplate {
    ResponseTemplate::new(status).set_body_json(json!({
        "code": code, "message": message, "status": status,
        "more_info": format!("https://www.twilio.com/docs/errors/{code}"),
    }))
}

fn twilio_created() -> ResponseTemplate {
    ResponseTemplate::new(201).set_body_json(json!({
        "sid": SMS_SID, "status": "queued", "error_code": null, "to": NUMBER,
    }))
}

#[tokio::test]
async fn meta_131026_falls_back_to_sms_via_twilio_and_the_report_says_sms() {
    let apis = Apis::start().await;
    apis.meta_answers(meta_error(131026, "(#131026) Message undeliverable"), 1)
        .await;
    apis.twilio_answers("Messages", twilio_created(), 1).await;
    let engine = apis.engine(2000);

    let out = engine.send(SendRequest::new(NUMBER)).await.unwrap();
    assert_eq!(out.status, SendStatus::Success);
    assert_eq!(out.channel, Some(Channel::Sms));
    let by = out.delivered_by.as_ref().unwrap();
    assert_eq!(
        (by.provider.as_str(), by.provider_message_id.as_str()),
        ("twilio", SMS_SID)
    );
    assert_eq!(out.attempts.len(), 2);
    assert_eq!(out.attempts[0].provider, "meta_whatsapp");
    assert_eq!(out.attempts[0].class, Some(FailureClass::Fallback));
    assert_eq!(out.attempts[0].error_code.as_deref(), Some("131026"));
    let wire: Value = serde_json::to_value(&out).unwrap();
    assert_eq!(wire["channel"], "sms");

    let checked = engine
        .check(CheckRequest::new(NUMBER, apis.sms_code().await))
        .await
        .unwrap();
    assert_eq!(checked.status, CheckStatus::Approved);
}

#[tokio::test]
async fn twilio_21211_stops_the_send_and_nothing_else_is_tried() {
    let apis = Apis::start().await;
    apis.twilio_answers(
        "Messages",
        twilio_error(
            400,
            21211,
            "The 'To' number +34600600600 is not a valid phone number.",
        ),
        1,
    )
    .await;
    apis.twilio_answers("Calls", twilio_created(), 0).await;
    apis.meta_answers(meta_accepted(), 0).await;
    let engine = apis.engine(2000);

    let mut req = SendRequest::new(NUMBER);
    req.options.preferred_channel = Some(Channel::Sms);
    let out = engine.send(req).await.unwrap();
    assert_eq!(out.status, SendStatus::Undeliverable);
    assert_eq!(out.reason.as_deref(), Some("number_unreachable"));
    assert_eq!(out.channel, None);
    assert_eq!(out.attempts.len(), 1);
    assert_eq!(out.attempts[0].class, Some(FailureClass::Permanent));
    assert_eq!(out.attempts[0].error_code.as_deref(), Some("21211"));
}

#[tokio::test]
async fn hanging_provider_is_abandoned_at_the_attempt_timeout_and_the_next_route_delivers() {
    let apis = Apis::start().await;
    // The adapter's own timeout may fire first and be retried once: one or two requests.
    Mock::given(method("POST"))
        .and(path(format!("/v23.0/{PHONE_NUMBER_ID}/messages")))
        .respond_with(meta_accepted().set_delay(Duration::from_secs(30)))
        .expect(1..=2)
        .mount(&apis.meta)
        .await;
    apis.twilio_answers("Messages", twilio_created(), 1).await;
    let engine = apis.engine(300);

    let out = engine.send(SendRequest::new(NUMBER)).await.unwrap();
    assert_eq!(out.channel, Some(Channel::Sms));
    assert_eq!(out.attempts[0].provider, "meta_whatsapp");
    // The dispatcher's timeout and the adapter's own (set equal here) race: either way the
    // attempt is abandoned as one whose outcome is unknown and the next route delivers.
    assert!(
        out.attempts[0].outcome == AttemptOutcome::Timeout
            || out.attempts[0].error_code.as_deref() == Some("timeout"),
        "{:?}",
        out.attempts[0]
    );
}

#[tokio::test]
async fn twilio_20429_with_retry_after_is_retried_once_then_falls_back() {
    let apis = Apis::start().await;
    apis.twilio_answers(
        "Messages",
        twilio_error(429, 20429, "Too Many Requests").insert_header("Retry-After", "1"),
        2,
    )
    .await;
    apis.meta_answers(meta_accepted(), 1).await;
    let engine = apis.engine(2000);

    let mut req = SendRequest::new(NUMBER);
    req.options.preferred_channel = Some(Channel::Sms);
    let out = engine.send(req).await.unwrap();
    assert_eq!(out.status, SendStatus::Success);
    assert_eq!(out.channel, Some(Channel::Whatsapp));
    let twilio_attempts: Vec<_> = out
        .attempts
        .iter()
        .filter(|a| a.provider == "twilio")
        .collect();
    assert_eq!(twilio_attempts.len(), 2, "one retry on the same route");
    assert!(
        twilio_attempts
            .iter()
            .all(|a| a.class == Some(FailureClass::Transient)
                && a.error_code.as_deref() == Some("20429"))
    );
}

#[tokio::test]
async fn provider_config_errors_fail_the_build_naming_the_key() {
    let apis = Apis::start().await;
    let mut config = apis.config(2000);
    config.providers.tables.insert(
        "twilio".into(),
        switchboard::providers::ProviderTable::new(json!({ "account_sid": SID })),
    );
    let err = EngineBuilder::new(config)
        .routes(RouteTable::from_toml(ROUTES).unwrap())
        .build()
        .unwrap_err()
        .to_string();
    assert!(err.contains("providers.twilio.auth_token"), "{err}");

    let mut config = apis.config(2000);
    config.providers.tables.insert(
        "twillio".into(),
        switchboard::providers::ProviderTable::default(),
    );
    let err = EngineBuilder::new(config).build().unwrap_err().to_string();
    assert!(err.contains("providers.twillio"), "{err}");
    assert!(
        err.contains("twilio") && err.contains("meta_whatsapp"),
        "{err}"
    );
}

#[tokio::test]
async fn config_debug_never_shows_provider_credentials() {
    let apis = Apis::start().await;
    let debug = format!("{:?}", apis.config(2000));
    assert!(debug.contains("auth_token"), "{debug}");
    assert!(!debug.contains(TOKEN) && !debug.contains("meta-access-token-1"));
}

/// The binary with only the given `SWITCHBOARD_*` variables set.
fn switchboard_with_env(vars: &[(&str, &str)]) -> std::process::Output {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_switchboard"));
    cmd.args(["lookup", NUMBER]);
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("SWITCHBOARD_") {
            cmd.env_remove(&key);
        }
    }
    cmd.env_remove("RUST_LOG").env("NO_COLOR", "1");
    for (k, v) in vars {
        cmd.env(k, v);
    }
    cmd.stdin(std::process::Stdio::null()).output().unwrap()
}

#[test]
fn provider_tables_and_their_secrets_can_come_from_the_environment() {
    let base = [
        ("SWITCHBOARD_PROVIDERS__TWILIO__ACCOUNT_SID", SID),
        ("SWITCHBOARD_PROVIDERS__TWILIO__FROM", "+15005550006"),
    ];
    let missing = switchboard_with_env(&base);
    assert!(!missing.status.success());
    let stderr = String::from_utf8_lossy(&missing.stderr);
    assert!(stderr.contains("providers.twilio.auth_token"), "{stderr}");

    // An all-digit secret arrives as a number through the layered config and still works.
    let mut full = base.to_vec();
    full.push(("SWITCHBOARD_PROVIDERS__TWILIO__AUTH_TOKEN", "1234567890"));
    let ok = switchboard_with_env(&full);
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    assert!(!String::from_utf8_lossy(&ok.stderr).contains("1234567890"));
}

// ---- Telegram Gateway, Vonage Messages and Infobip SMS ---------------------------------------

const TELEGRAM_TOKEN: &str = "engine-telegram-token-5";
const VONAGE_KEY: &str = "abc123de";
const VONAGE_SECRET: &str = "engine-vonage-secret-9";
const INFOBIP_KEY: &str = "engine-infobip-key-3";

/// Telegram, Vonage, Infobip and Twilio emulations behind one engine.
struct MoreApis {
    telegram: MockServer,
    vonage: MockServer,
    infobip: MockServer,
    twilio: MockServer,
}

/// Matches a Vonage Messages request for one `channel` (`sms`, `viber_service`).
struct VonageChannel(&'static str);

impl wiremock::Match for VonageChannel {
    fn matches(&self, request: &wiremock::Request) -> bool {
        serde_json::from_slice::<Value>(&request.body).is_ok_and(|b| b["channel"] == self.0)
    }
}

impl MoreApis {
    async fn start() -> Self {
        MoreApis {
            telegram: MockServer::start().await,
            vonage: MockServer::start().await,
            infobip: MockServer::start().await,
            twilio: MockServer::start().await,
        }
    }

    fn engine(&self, routes: &str) -> Engine {
        let config = Config::from_toml(&format!(
            r#"
pepper = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"
[code]
hashing = {{ scheme = "hmac-sha256" }}
[routing]
attempt_timeout_ms = 2000
[providers]
stand_in = ""
[providers.telegram]
access_token = "{TELEGRAM_TOKEN}"
base_url = "{telegram}"
timeout_ms = 2000
[providers.vonage]
api_key = "{VONAGE_KEY}"
api_secret = "{VONAGE_SECRET}"
sms_from = "Acme"
viber_from = "16273"
base_url = "{vonage}"
timeout_ms = 2000
[providers.infobip]
api_key = "{INFOBIP_KEY}"
from = "InfoSMS"
base_url = "{infobip}"
timeout_ms = 2000
[providers.twilio]
account_sid = "{SID}"
auth_token = "{TOKEN}"
from = "+15005550006"
base_url = "{twilio}"
timeout_ms = 2000
"#,
            telegram = self.telegram.uri(),
            vonage = self.vonage.uri(),
            infobip = self.infobip.uri(),
            twilio = self.twilio.uri(),
        ))
        .expect("test config is valid");
        EngineBuilder::new(config)
            .routes(RouteTable::from_toml(routes).unwrap())
            .build()
            .expect("engine builds with the configured adapters")
    }

    async fn telegram_answers(&self, response: ResponseTemplate, times: u64) {
        Mock::given(method("POST"))
            .and(path("/sendVerificationMessage"))
            .and(wiremock::matchers::header(
                "authorization",
                format!("Bearer {TELEGRAM_TOKEN}").as_str(),
            ))
            .respond_with(response)
            .expect(times)
            .mount(&self.telegram)
            .await;
    }

    async fn vonage_answers(&self, channel: &'static str, response: ResponseTemplate, times: u64) {
        Mock::given(method("POST"))
            .and(path("/v1/messages"))
            .and(VonageChannel(channel))
            .respond_with(response)
            .expect(times)
            .mount(&self.vonage)
            .await;
    }

    async fn infobip_answers(&self, response: ResponseTemplate, times: u64) {
        Mock::given(method("POST"))
            .and(path("/sms/2/text/advanced"))
            .and(wiremock::matchers::header(
                "authorization",
                format!("App {INFOBIP_KEY}").as_str(),
            ))
            .respond_with(response)
            .expect(times)
            .mount(&self.infobip)
            .await;
    }

    /// The last word of the text of the last JSON request `server` received at `pointer`.
    async fn code_in(server: &MockServer, pointer: &str) -> String {
        let requests = server.received_requests().await.unwrap();
        let body: Value = serde_json::from_slice(&requests.last().unwrap().body).unwrap();
        let text = body.pointer(pointer).and_then(Value::as_str).unwrap();
        text.rsplit(' ').next().unwrap().to_owned()
    }
}

fn telegram_error(status: u16, error: &str) -> ResponseTemplate {
    ResponseTemplate::new(status).set_body_json(json!({ "ok": false, "error": error }))
}

fn infobip_sent(group_id: i64, id: i64, name: &str) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(json!({
        "bulkId": "2034072219640523072",
        "messages": [{
            "to": "34600600600", "messageId": "ib-msg-1",
            "status": { "groupId": group_id, "id": id, "name": name, "description": name },
        }],
    }))
}

#[tokio::test]
async fn telegram_not_available_falls_back_to_sms_via_infobip_and_the_report_says_sms() {
    let apis = MoreApis::start().await;
    apis.telegram_answers(telegram_error(400, "PHONE_NUMBER_NOT_AVAILABLE"), 1)
        .await;
    apis.infobip_answers(infobip_sent(1, 26, "PENDING_ACCEPTED"), 1)
        .await;
    let engine = apis.engine(
        r#"
currency = "USD"
[default]
preference = ["telegram", "sms"]
routes = [
  { channel = "telegram", provider = "telegram", price = 0.01 },
  { channel = "sms", provider = "infobip", price = 0.03 },
]
"#,
    );

    let out = engine.send(SendRequest::new(NUMBER)).await.unwrap();
    assert_eq!(out.status, SendStatus::Success);
    assert_eq!(out.channel, Some(Channel::Sms));
    let by = out.delivered_by.as_ref().unwrap();
    assert_eq!(
        (by.provider.as_str(), by.provider_message_id.as_str()),
        ("infobip", "ib-msg-1")
    );
    assert_eq!(out.attempts.len(), 2);
    assert_eq!(out.attempts[0].provider, "telegram");
    assert_eq!(out.attempts[0].class, Some(FailureClass::Fallback));
    assert_eq!(
        out.attempts[0].error_code.as_deref(),
        Some("PHONE_NUMBER_NOT_AVAILABLE")
    );
    let wire: Value = serde_json::to_value(&out).unwrap();
    assert_eq!(wire["channel"], "sms");

    let code = MoreApis::code_in(&apis.infobip, "/messages/0/text").await;
    let checked = engine.check(CheckRequest::new(NUMBER, code)).await.unwrap();
    assert_eq!(checked.status, CheckStatus::Approved);
}

#[tokio::test]
async fn telegram_phone_number_invalid_falls_back_to_sms_as_the_engine_already_validated_it() {
    let apis = MoreApis::start().await;
    apis.telegram_answers(telegram_error(400, "PHONE_NUMBER_INVALID"), 1)
        .await;
    apis.infobip_answers(infobip_sent(1, 26, "PENDING_ACCEPTED"), 1)
        .await;
    let engine = apis.engine(
        r#"
currency = "USD"
[default]
preference = ["telegram", "sms"]
routes = [
  { channel = "telegram", provider = "telegram", price = 0.01 },
  { channel = "sms", provider = "infobip", price = 0.03 },
]
"#,
    );

    let out = engine.send(SendRequest::new(NUMBER)).await.unwrap();
    assert_eq!(out.status, SendStatus::Success);
    assert_eq!(out.channel, Some(Channel::Sms));
    assert_eq!(out.attempts.len(), 2);
    assert_eq!(out.attempts[0].class, Some(FailureClass::Fallback));
    assert_eq!(
        out.attempts[0].error_code.as_deref(),
        Some("PHONE_NUMBER_INVALID")
    );
}

#[tokio::test]
async fn telegram_delivers_our_own_code_it_verifies_and_the_approval_is_confirmed_to_telegram() {
    let apis = MoreApis::start().await;
    Mock::given(method("POST"))
        .and(path("/checkVerificationStatus"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "ok": true,
            "result": { "request_id": "tg-req-1", "phone_number": NUMBER, "request_cost": 0.01,
                        "verification_status": { "status": "code_valid" } },
        })))
        .mount(&apis.telegram)
        .await;
    apis.telegram_answers(
        ResponseTemplate::new(200).set_body_json(json!({
            "ok": true,
            "result": { "request_id": "tg-req-1", "phone_number": NUMBER, "request_cost": 0.01 },
        })),
        1,
    )
    .await;
    let engine = apis.engine(
        r#"
currency = "USD"
[default]
preference = ["telegram", "sms"]
routes = [
  { channel = "telegram", provider = "telegram", price = 0.01 },
  { channel = "sms", provider = "infobip", price = 0.03 },
]
"#,
    );
    let out = engine.send(SendRequest::new(NUMBER)).await.unwrap();
    assert_eq!(out.channel, Some(Channel::Telegram));
    let requests = apis.telegram.received_requests().await.unwrap();
    let body: Value = serde_json::from_slice(&requests[0].body).unwrap();
    let code = body["code"].as_str().unwrap().to_owned();
    let checked = engine.check(CheckRequest::new(NUMBER, code)).await.unwrap();
    assert_eq!(checked.status, CheckStatus::Approved);
    // The confirmation runs off the request path: wait for it to reach the emulator.
    let mut confirmed = None;
    for _ in 0..500 {
        let requests = apis.telegram.received_requests().await.unwrap();
        confirmed = requests
            .into_iter()
            .find(|r| r.url.path() == "/checkVerificationStatus");
        if confirmed.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let body: Value = serde_json::from_slice(&confirmed.expect("approval confirmed").body).unwrap();
    assert_eq!(body["request_id"], "tg-req-1");
}

#[tokio::test]
async fn vonage_viber_1300_falls_back_to_vonage_sms() {
    let apis = MoreApis::start().await;
    apis.vonage_answers(
        "viber_service",
        ResponseTemplate::new(422).set_body_raw(
            json!({
                "type": "https://developer.vonage.com/api-errors/messages#1300",
                "title": "Not part of the provider network",
                "detail": "The number or ID is not a user in the provider network.",
                "instance": "bf0ca0bf927b3b52e3cb03217e1a1ddf",
            })
            .to_string(),
            "application/problem+json",
        ),
        1,
    )
    .await;
    apis.vonage_answers(
        "sms",
        ResponseTemplate::new(202)
            .set_body_json(json!({ "message_uuid": "d8f86df1-dec6-442f-870a-2241be27d721" })),
        1,
    )
    .await;
    let engine = apis.engine(
        r#"
currency = "USD"
[default]
preference = ["viber", "sms"]
routes = [
  { channel = "viber", provider = "vonage", price = 0.02 },
  { channel = "sms", provider = "vonage", price = 0.04 },
]
"#,
    );

    let out = engine.send(SendRequest::new(NUMBER)).await.unwrap();
    assert_eq!(out.status, SendStatus::Success);
    assert_eq!(out.channel, Some(Channel::Sms));
    assert_eq!(out.delivered_by.as_ref().unwrap().provider, "vonage");
    assert_eq!(out.attempts.len(), 2);
    assert_eq!(out.attempts[0].channel, Channel::Viber);
    assert_eq!(out.attempts[0].class, Some(FailureClass::Fallback));
    assert_eq!(out.attempts[0].error_code.as_deref(), Some("1300"));

    let code = MoreApis::code_in(&apis.vonage, "/text").await;
    let checked = engine.check(CheckRequest::new(NUMBER, code)).await.unwrap();
    assert_eq!(checked.status, CheckStatus::Approved);
}

#[tokio::test]
async fn infobip_out_of_credit_is_skipped_and_twilio_delivers_the_sms() {
    let apis = MoreApis::start().await;
    apis.infobip_answers(infobip_sent(5, 12, "REJECTED_NOT_ENOUGH_CREDITS"), 1)
        .await;
    Mock::given(method("POST"))
        .and(path(format!("/2010-04-01/Accounts/{SID}/Messages.json")))
        .respond_with(twilio_created())
        .expect(1)
        .mount(&apis.twilio)
        .await;
    let engine = apis.engine(
        r#"
currency = "USD"
[default]
preference = ["sms"]
routes = [
  { channel = "sms", provider = "infobip", price = 0.03 },
  { channel = "sms", provider = "twilio", price = 0.05 },
]
"#,
    );

    let out = engine.send(SendRequest::new(NUMBER)).await.unwrap();
    assert_eq!(out.status, SendStatus::Success);
    assert_eq!(out.channel, Some(Channel::Sms));
    assert_eq!(out.delivered_by.as_ref().unwrap().provider, "twilio");
    assert_eq!(out.attempts.len(), 2);
    assert_eq!(out.attempts[0].provider, "infobip");
    assert_eq!(out.attempts[0].class, Some(FailureClass::Config));
    assert_eq!(out.attempts[0].error_code.as_deref(), Some("5.12"));
}

/// Meta's status webhook for our message, signed with the app secret as Meta signs it.
fn meta_status_callback(status: &str, error: Option<i64>) -> InboundRequest {
    let mut s = json!({
        "id": WAMID, "status": status, "timestamp": "1767225600", "recipient_id": "34600600600",
    });
    if let Some(code) = error {
        s["errors"] = json!([{ "code": code, "title": "Message undeliverable",
            "message": "Message undeliverable", "error_data": { "details": "Message Undeliverable." } }]);
    }
    let body = serde_json::to_vec(&json!({
        "object": "whatsapp_business_account",
        "entry": [{ "id": "102290129340398", "changes": [{ "field": "messages", "value": {
            "messaging_product": "whatsapp",
            "metadata": { "display_phone_number": "15550783881", "phone_number_id": PHONE_NUMBER_ID },
            "statuses": [s],
        }}]}],
    }))
    .unwrap();
    InboundRequest::new(
        "POST",
        "https://otp.example.com/callbacks/meta_whatsapp",
        vec![
            ("Content-Type".into(), "application/json".into()),
            (
                "X-Hub-Signature-256".into(),
                switchboard::providers::meta_whatsapp::compute_signature(META_APP_SECRET, &body),
            ),
        ],
        body,
        std::time::SystemTime::now(),
    )
}

/// Waits (bounded) until the engine kept the record of message `id`: the send writes it off
/// the request path.
pub async fn wait_for_delivery_record(store: &Store, provider: &str, id: &str) {
    for _ in 0..500 {
        if store
            .take_delivery(provider, id, false, 0)
            .await
            .unwrap()
            .is_some()
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("no delivery record for {provider} {id}");
}

async fn sent_on_whatsapp(engine: &Engine) -> switchboard::SendOutcome {
    let out = engine.send(SendRequest::new(NUMBER)).await.unwrap();
    assert_eq!(out.channel, Some(Channel::Whatsapp));
    wait_for_delivery_record(engine.store(), "meta_whatsapp", WAMID).await;
    out
}

async fn receipts(engine: &Engine, callback: &InboundRequest) -> Vec<ReceiptEffect> {
    let receipts = engine
        .receipt("meta_whatsapp", callback)
        .expect("Meta's signature verifies");
    engine.apply_receipts(&receipts).await
}

impl Apis {
    /// The code in the WhatsApp template Meta was asked to send (its body parameter).
    async fn whatsapp_code(&self) -> String {
        let requests = self.meta.received_requests().await.unwrap();
        let body: Value = serde_json::from_slice(&requests.last().unwrap().body).unwrap();
        body["template"]["components"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|c| c["parameters"].as_array().cloned().unwrap_or_default())
            .find_map(|p| p["text"].as_str().map(str::to_owned))
            .expect("the template carries the code")
    }
}

#[tokio::test]
async fn a_whatsapp_131026_receipt_sends_a_new_code_by_sms_that_is_approved() {
    let apis = Apis::start().await;
    apis.meta_answers(meta_accepted(), 1).await;
    apis.twilio_answers("Messages", twilio_created(), 1).await;
    let engine = apis.engine(2000);

    sent_on_whatsapp(&engine).await;
    assert!(apis.twilio.received_requests().await.unwrap().is_empty());

    // Meta accepted the message, then reports that the number is not on WhatsApp.
    let effects = receipts(&engine, &meta_status_callback("failed", Some(131026))).await;
    let [ReceiptEffect::Rerouted(by)] = effects.as_slice() else {
        panic!("expected one late fallback, got {effects:?}");
    };
    assert_eq!(
        (
            by.channel,
            by.provider.as_str(),
            by.provider_message_id.as_str()
        ),
        (Channel::Sms, "twilio", SMS_SID)
    );
    // Meta retries its webhooks: the same report again sends nothing more (Twilio expects 1).
    let again = receipts(&engine, &meta_status_callback("failed", Some(131026))).await;
    assert_eq!(again, vec![ReceiptEffect::NotRerouted]);

    let sms_code = apis.sms_code().await;
    assert_ne!(sms_code, apis.whatsapp_code().await, "a new code");
    let checked = engine
        .check(CheckRequest::new(NUMBER, sms_code))
        .await
        .unwrap();
    assert_eq!(checked.status, CheckStatus::Approved);
    assert_eq!(checked.phone.verification_method, Some(Channel::Sms));
}

#[tokio::test]
async fn a_late_fallback_adds_no_attempt_and_keeps_the_expiry() {
    let apis = Apis::start().await;
    apis.meta_answers(meta_accepted(), 1).await;
    apis.twilio_answers("Messages", twilio_created(), 1).await;
    let engine = apis.engine(2000);
    let sent = sent_on_whatsapp(&engine).await;
    receipts(&engine, &meta_status_callback("failed", Some(131026))).await;

    let wrong = engine
        .check(CheckRequest::new(NUMBER, "0000000"))
        .await
        .unwrap();
    assert_eq!(wrong.status, CheckStatus::Failed);
    assert_eq!(wrong.attempts_left, Some(1), "the first wrong code of two");
    let view = engine
        .store()
        .inspect(&switchboard::store::NumberKey::new("default", NUMBER), 0)
        .await
        .unwrap();
    assert_eq!(
        view.verification.unwrap().expires_at,
        sent.expires_at.unwrap()
    );
}

#[tokio::test]
async fn a_delivered_receipt_or_a_failure_after_approval_sends_nothing() {
    let apis = Apis::start().await;
    apis.meta_answers(meta_accepted(), 1).await;
    apis.twilio_answers("Messages", twilio_created(), 0).await;
    let engine = apis.engine(2000);
    sent_on_whatsapp(&engine).await;

    let sent = receipts(&engine, &meta_status_callback("sent", None)).await;
    assert_eq!(sent, vec![ReceiptEffect::Reported]);
    let code = apis.whatsapp_code().await;
    let checked = engine.check(CheckRequest::new(NUMBER, code)).await.unwrap();
    assert_eq!(checked.status, CheckStatus::Approved);
    let late = receipts(&engine, &meta_status_callback("failed", Some(131026))).await;
    assert_eq!(late, vec![ReceiptEffect::NotRerouted]);
}

#[tokio::test]
async fn a_permanent_receipt_failure_is_reported_but_not_rerouted() {
    let apis = Apis::start().await;
    apis.meta_answers(meta_accepted(), 1).await;
    apis.twilio_answers("Messages", twilio_created(), 0).await;
    let engine = apis.engine(2000);
    sent_on_whatsapp(&engine).await;
    let receipt = DeliveryReceipt {
        provider: "meta_whatsapp".into(),
        provider_message_id: WAMID.into(),
        status: ReceiptStatus::Failed,
        failure: Some(ReceiptFailure {
            class: FailureClass::Permanent,
            code: Some("131009".into()),
        }),
        at: std::time::SystemTime::now(),
    };
    assert_eq!(
        engine.apply_receipts(&[receipt]).await,
        vec![ReceiptEffect::NotRerouted]
    );
}

#[tokio::test]
async fn with_receipt_fallback_off_a_failure_receipt_only_reports() {
    let apis = Apis::start().await;
    apis.meta_answers(meta_accepted(), 1).await;
    apis.twilio_answers("Messages", twilio_created(), 0).await;
    let mut config = apis.config(2000);
    config.routing.receipt_fallback = false;
    let engine = EngineBuilder::new(config)
        .routes(RouteTable::from_toml(ROUTES).unwrap())
        .build()
        .unwrap();
    engine.send(SendRequest::new(NUMBER)).await.unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(
        engine
            .store()
            .take_delivery("meta_whatsapp", WAMID, false, 0)
            .await
            .unwrap(),
        None,
        "nothing kept when the fallback is off"
    );
    let effects = receipts(&engine, &meta_status_callback("failed", Some(131026))).await;
    assert_eq!(effects, vec![ReceiptEffect::NotRerouted]);
}

#[tokio::test]
async fn when_every_later_route_fails_the_fallback_code_is_forgotten() {
    let apis = Apis::start().await;
    apis.meta_answers(meta_accepted(), 1).await;
    apis.twilio_answers(
        "Messages",
        twilio_error(400, 30003, "Unreachable destination handset"),
        1,
    )
    .await;
    apis.twilio_answers(
        "Calls",
        twilio_error(400, 30003, "Unreachable destination handset"),
        1,
    )
    .await;
    let engine = apis.engine(2000);
    sent_on_whatsapp(&engine).await;
    let effects = receipts(&engine, &meta_status_callback("failed", Some(131026))).await;
    assert_eq!(effects, vec![ReceiptEffect::NotRerouted]);
    // The WhatsApp code is still the verification's code.
    let code = apis.whatsapp_code().await;
    let checked = engine.check(CheckRequest::new(NUMBER, code)).await.unwrap();
    assert_eq!(checked.status, CheckStatus::Approved);
}

#[tokio::test]
async fn a_twilio_30003_status_callback_moves_the_code_from_sms_to_whatsapp() {
    const CALLBACK: &str = "https://otp.example.com/callbacks/twilio";
    let apis = Apis::start().await;
    apis.twilio_answers("Messages", twilio_created(), 1).await;
    apis.meta_answers(meta_accepted(), 1).await;
    let engine = EngineBuilder::new(
        apis.config_with(2000, &format!("status_callback_url = \"{CALLBACK}\"")),
    )
    .routes(RouteTable::from_toml(ROUTES).unwrap())
    .build()
    .unwrap();
    let mut req = SendRequest::new(NUMBER);
    req.options.preferred_channel = Some(Channel::Sms);
    let out = engine.send(req).await.unwrap();
    assert_eq!(out.channel, Some(Channel::Sms));
    wait_for_delivery_record(engine.store(), "twilio", SMS_SID).await;

    // Twilio's status callback: the handset was unreachable. Signed as Twilio signs it.
    let params: Vec<(String, String)> = [
        ("AccountSid", SID),
        ("MessageSid", SMS_SID),
        ("MessageStatus", "undelivered"),
        ("ErrorCode", "30003"),
        ("To", NUMBER),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    let body = params
        .iter()
        .map(|(k, v)| format!("{k}={}", v.replace('+', "%2B")))
        .collect::<Vec<_>>()
        .join("&");
    let signature = switchboard::providers::twilio::compute_signature(TOKEN, CALLBACK, &params);
    let callback = InboundRequest::new(
        "POST",
        CALLBACK,
        vec![
            (
                "Content-Type".into(),
                "application/x-www-form-urlencoded".into(),
            ),
            ("X-Twilio-Signature".into(), signature),
        ],
        body.into_bytes(),
        std::time::SystemTime::now(),
    );
    let receipts = engine
        .receipt("twilio", &callback)
        .expect("Twilio's signature verifies");
    let effects = engine.apply_receipts(&receipts).await;
    let [ReceiptEffect::Rerouted(by)] = effects.as_slice() else {
        panic!("expected one late fallback, got {effects:?}");
    };
    assert_eq!(
        (by.channel, by.provider.as_str()),
        (Channel::Whatsapp, "meta_whatsapp")
    );
    let checked = engine
        .check(CheckRequest::new(NUMBER, apis.whatsapp_code().await))
        .await
        .unwrap();
    assert_eq!(checked.status, CheckStatus::Approved);
}
