//! Telegram Gateway: the wiremock emulation, the exact `sendVerificationMessage` (and optional
//! `checkSendAbility`) requests, every error row of PROVIDERS.md, and signed, fresh reports.

use std::time::{Duration, SystemTime};

use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use switchboard_providers::http::HttpClient;
use switchboard_providers::telegram::{self, TelegramConfig, TelegramProvider};
use switchboard_providers::{
    Channel, DeliveryError, FailureClass, InboundRequest, Provider, ProviderContext, ProviderTable,
    ReceiptError, ReceiptStatus, Registry,
};
use wiremock::matchers::{body_json, header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::support::{CODE, Emulation, TO, assert_clean, message, received_at};

pub const TOKEN: &str = "AAH7c2VjcmV0LWdhdGV3YXktdG9rZW4tMTIz";
pub const CALLBACK: &str = "https://hooks.example.com/telegram/report";
const REQUEST_ID: &str = "1b3f0e2c9a7d4e5f";

/// The Telegram Gateway emulation.
pub struct TelegramApi {
    pub server: MockServer,
}

pub fn config_table(base_url: &str, overrides: Value) -> ProviderTable {
    let mut table = json!({
        "access_token": TOKEN,
        "callback_url": CALLBACK,
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

/// A RequestStatus as Telegram returns it.
pub fn request_status(request_id: &str, status: Option<&str>) -> Value {
    let mut s = json!({
        "request_id": request_id,
        "phone_number": TO,
        "request_cost": 0.01,
        "remaining_balance": 12.34,
        "payload": "verif-1",
    });
    if let Some(status) = status {
        s["delivery_status"] = json!({ "status": status, "updated_at": 1_767_225_500 });
    }
    s
}

/// `{"ok":true,"result":RequestStatus}`.
pub fn accepted(request_id: &str) -> ResponseTemplate {
    ResponseTemplate::new(200)
        .set_body_json(json!({ "ok": true, "result": request_status(request_id, Some("sent")) }))
}

/// `{"ok":false,"error":...}` with an HTTP status.
pub fn gateway_error(status: u16, error: &str) -> ResponseTemplate {
    ResponseTemplate::new(status).set_body_json(json!({ "ok": false, "error": error }))
}

fn unix(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH).unwrap().as_secs()
}

/// A report as Telegram posts it, signed with `token` at `timestamp`.
pub fn report(body: &[u8], token: &str, timestamp: u64) -> InboundRequest {
    let timestamp = timestamp.to_string();
    InboundRequest::new(
        "POST",
        CALLBACK,
        vec![
            ("Content-Type".into(), "application/json".into()),
            ("X-Request-Timestamp".into(), timestamp.clone()),
            (
                "X-Request-Signature".into(),
                telegram::compute_signature(token, &timestamp, body),
            ),
        ],
        body.to_vec(),
        received_at(),
    )
}

impl Emulation for TelegramApi {
    type Adapter = TelegramProvider;

    async fn start() -> Self {
        TelegramApi {
            server: MockServer::start().await,
        }
    }

    fn server(&self) -> &MockServer {
        &self.server
    }

    fn adapter_with(&self, overrides: Value) -> TelegramProvider {
        let config: TelegramConfig = config_table(&self.server.uri(), overrides).parse().unwrap();
        TelegramProvider::new(config, HttpClient::new().unwrap()).unwrap()
    }

    fn secrets(&self) -> Vec<String> {
        vec![TOKEN.to_owned()]
    }

    async fn mount(&self, _channel: Channel, response: ResponseTemplate) {
        Mock::given(method("POST"))
            .and(path("/sendVerificationMessage"))
            .and(header("authorization", format!("Bearer {TOKEN}").as_str()))
            .respond_with(response)
            .mount(&self.server)
            .await;
    }

    fn success(&self, _channel: Channel) -> (ResponseTemplate, String) {
        (accepted(REQUEST_ID), REQUEST_ID.to_owned())
    }

    fn error(&self, class: FailureClass, _channel: Channel) -> Option<(ResponseTemplate, String)> {
        let (status, error) = match class {
            FailureClass::Transient => (429, "FLOOD_WAIT_5"),
            FailureClass::Fallback => (400, "PHONE_NUMBER_NOT_AVAILABLE"),
            // Nothing Telegram says is a verdict on the number for every channel.
            FailureClass::Permanent => return None,
            FailureClass::Fraud => return None,
            FailureClass::Config => (401, "ACCESS_TOKEN_INVALID"),
        };
        Some((gateway_error(status, error), error.to_owned()))
    }

    fn rate_limited(&self, retry_after_secs: u64) -> ResponseTemplate {
        gateway_error(429, &format!("FLOOD_WAIT_{retry_after_secs}"))
            .insert_header("Retry-After", retry_after_secs.to_string().as_str())
    }

    fn unauthorized(&self) -> ResponseTemplate {
        gateway_error(401, "ACCESS_TOKEN_INVALID")
    }

    fn signed_receipt(&self, message_id: &str) -> InboundRequest {
        let body = request_status(message_id, Some("delivered")).to_string();
        report(body.as_bytes(), TOKEN, unix(received_at()))
    }
}

async fn send_err(response: ResponseTemplate) -> DeliveryError {
    let api = TelegramApi::start().await;
    api.mount(Channel::Telegram, response).await;
    let err = api
        .adapter()
        .send(&message(Channel::Telegram))
        .await
        .unwrap_err();
    assert_clean(&err, &[TOKEN]);
    err
}

fn offline_adapter(overrides: Value) -> TelegramProvider {
    let config: TelegramConfig = config_table("https://gatewayapi.telegram.invalid", overrides)
        .parse()
        .unwrap();
    TelegramProvider::new(config, HttpClient::new().unwrap()).unwrap()
}

// ---- request shape ------------------------------------------------------------------------------

#[tokio::test]
async fn send_verification_message_carries_our_code_ttl_callback_and_reference() {
    let api = TelegramApi::start().await;
    Mock::given(method("POST"))
        .and(path("/sendVerificationMessage"))
        .and(header("authorization", format!("Bearer {TOKEN}").as_str()))
        .and(header("content-type", "application/json"))
        .and(body_json(json!({
            "phone_number": TO,
            "code": CODE,
            "ttl": 120,
            "callback_url": CALLBACK,
            "payload": "verif-1",
        })))
        .respond_with(accepted(REQUEST_ID))
        .expect(1)
        .mount(&api.server)
        .await;
    let delivery = api
        .adapter()
        .send(&message(Channel::Telegram))
        .await
        .unwrap();
    assert_eq!(delivery.provider_message_id, REQUEST_ID);
}

#[tokio::test]
async fn ttl_is_clamped_to_what_the_gateway_accepts_and_the_sender_is_configurable() {
    // Half the validity, within 60..=120 s: the `expired` report comes while the code is valid.
    for (validity, ttl) in [(5, 60), (100, 60), (180, 90), (300, 120), (86_400, 120)] {
        let api = TelegramApi::start().await;
        api.mount(Channel::Telegram, accepted(REQUEST_ID)).await;
        let mut msg = message(Channel::Telegram);
        msg.validity = Duration::from_secs(validity);
        api.adapter_with(json!({ "sender_username": "@acme_codes", "callback_url": null }))
            .send(&msg)
            .await
            .unwrap();
        let body: Value =
            serde_json::from_slice(&api.server.received_requests().await.unwrap()[0].body).unwrap();
        assert_eq!(body["ttl"], ttl, "{validity}");
        assert_eq!(body["sender_username"], "acme_codes");
        assert!(body.get("callback_url").is_none());
    }
}

#[tokio::test]
async fn check_send_ability_first_then_the_free_send_with_its_request_id() {
    let api = TelegramApi::start().await;
    Mock::given(method("POST"))
        .and(path("/checkSendAbility"))
        .and(header("authorization", format!("Bearer {TOKEN}").as_str()))
        .and(body_json(json!({ "phone_number": TO })))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({ "ok": true, "result": request_status("check-77", None) })),
        )
        .expect(1)
        .mount(&api.server)
        .await;
    Mock::given(method("POST"))
        .and(path("/sendVerificationMessage"))
        .and(body_json(json!({
            "phone_number": TO,
            "code": CODE,
            "ttl": 120,
            "request_id": "check-77",
            "callback_url": CALLBACK,
            "payload": "verif-1",
        })))
        .respond_with(accepted("check-77"))
        .expect(1)
        .mount(&api.server)
        .await;
    let delivery = api
        .adapter_with(json!({ "check_send_ability": true }))
        .send(&message(Channel::Telegram))
        .await
        .unwrap();
    assert_eq!(delivery.provider_message_id, "check-77");
}

#[tokio::test]
async fn check_send_ability_refusal_stops_before_any_message() {
    let api = TelegramApi::start().await;
    Mock::given(method("POST"))
        .and(path("/checkSendAbility"))
        .respond_with(gateway_error(400, "PHONE_NUMBER_NOT_AVAILABLE"))
        .expect(1)
        .mount(&api.server)
        .await;
    api.mount(Channel::Telegram, accepted(REQUEST_ID)).await;
    let err = api
        .adapter_with(json!({ "check_send_ability": true }))
        .send(&message(Channel::Telegram))
        .await
        .unwrap_err();
    assert_eq!(err.class, FailureClass::Fallback);
    assert_eq!(api.server.received_requests().await.unwrap().len(), 1);
}

#[tokio::test]
async fn codes_the_gateway_cannot_take_are_refused_without_a_request() {
    let api = TelegramApi::start().await;
    for code in ["123", "123456789", "12ab56"] {
        let mut msg = message(Channel::Telegram);
        msg.code = switchboard_providers::OneTimeCode::new(code);
        let err = api.adapter().send(&msg).await.unwrap_err();
        assert!(err.is_config(), "{code}: {err}");
        assert_eq!(err.code.as_deref(), Some("code_format"));
    }
    assert!(api.server.received_requests().await.unwrap().is_empty());
}

// ---- send-time errors: one test per row of PROVIDERS.md ---------------------------------------

#[tokio::test]
async fn telegram_phone_number_not_found_is_fallback() {
    let err = send_err(gateway_error(400, "PHONE_NUMBER_NOT_FOUND")).await;
    assert_eq!(
        (err.class, err.code.as_deref()),
        (FailureClass::Fallback, Some("PHONE_NUMBER_NOT_FOUND"))
    );
}

#[tokio::test]
async fn telegram_phone_number_not_available_is_fallback() {
    let err = send_err(gateway_error(400, "PHONE_NUMBER_NOT_AVAILABLE")).await;
    assert_eq!(
        (err.class, err.code.as_deref()),
        (FailureClass::Fallback, Some("PHONE_NUMBER_NOT_AVAILABLE"))
    );
}

#[tokio::test]
async fn telegram_flood_wait_is_transient_with_retry_after() {
    let err = send_err(gateway_error(429, "FLOOD_WAIT_17")).await;
    assert_eq!(err.class, FailureClass::Transient);
    assert_eq!(err.code.as_deref(), Some("FLOOD_WAIT_17"));
    assert_eq!(err.retry_after, Some(Duration::from_secs(17)));
}

#[tokio::test]
async fn telegram_phone_number_invalid_is_fallback_not_permanent() {
    // The engine validated the number: Telegram refusing it says nothing for SMS or voice.
    let err = send_err(gateway_error(400, "PHONE_NUMBER_INVALID")).await;
    assert_eq!(
        (err.class, err.code.as_deref()),
        (FailureClass::Fallback, Some("PHONE_NUMBER_INVALID"))
    );
}

#[tokio::test]
async fn telegram_request_id_message_and_code_errors_have_their_classes() {
    for (error, class, unknown) in [
        ("REQUEST_ID_INVALID", FailureClass::Transient, false),
        ("PHONE_NUMBER_MISMATCH", FailureClass::Transient, false),
        ("MESSAGE_ALREADY_SENT", FailureClass::Fallback, true),
        ("CODE_EXPIRED", FailureClass::Fallback, false),
    ] {
        let err = send_err(gateway_error(400, error)).await;
        assert_eq!(err.class, class, "{error}");
        assert_eq!(err.code.as_deref(), Some(error));
        assert_eq!(err.may_have_been_delivered(), unknown, "{error}");
    }
}

/// Mounts a `checkSendAbility` answering `request_id`, expected `times` times.
async fn mount_check(api: &TelegramApi, request_id: &str, times: u64) {
    Mock::given(method("POST"))
        .and(path("/checkSendAbility"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({ "ok": true, "result": request_status(request_id, None) })),
        )
        .expect(times)
        .mount(&api.server)
        .await;
}

/// The `request_id`s of the `sendVerificationMessage` calls received.
async fn sent_request_ids(api: &TelegramApi) -> Vec<String> {
    api.server
        .received_requests()
        .await
        .unwrap()
        .iter()
        .filter(|r| r.url.path() == "/sendVerificationMessage")
        .map(|r| {
            let body: Value = serde_json::from_slice(&r.body).unwrap();
            body["request_id"].as_str().unwrap_or_default().to_owned()
        })
        .collect()
}

#[tokio::test]
async fn a_retry_after_a_transient_send_failure_reuses_the_paid_check() {
    let api = TelegramApi::start().await;
    mount_check(&api, "check-77", 1).await;
    Mock::given(method("POST"))
        .and(path("/sendVerificationMessage"))
        .respond_with(gateway_error(429, "FLOOD_WAIT_1"))
        .up_to_n_times(1)
        .mount(&api.server)
        .await;
    api.mount(Channel::Telegram, accepted("check-77")).await;
    let adapter = api.adapter_with(json!({ "check_send_ability": true }));
    let msg = message(Channel::Telegram);
    assert!(adapter.send(&msg).await.unwrap_err().is_transient());
    let delivery = adapter.send(&msg).await.unwrap();
    assert_eq!(delivery.provider_message_id, "check-77");
    assert_eq!(sent_request_ids(&api).await, ["check-77", "check-77"]);
    // Used up by the successful send: the next message pays for a new check (the mock
    // expecting exactly one check fails on drop otherwise).
}

#[tokio::test]
async fn a_refused_request_id_or_an_expired_reuse_window_pays_for_a_fresh_check() {
    let api = TelegramApi::start().await;
    mount_check(&api, "check-77", 3).await;
    Mock::given(method("POST"))
        .and(path("/sendVerificationMessage"))
        .respond_with(gateway_error(400, "REQUEST_ID_INVALID"))
        .up_to_n_times(1)
        .mount(&api.server)
        .await;
    Mock::given(method("POST"))
        .and(path("/sendVerificationMessage"))
        .respond_with(gateway_error(500, "INTERNAL"))
        .up_to_n_times(1)
        .mount(&api.server)
        .await;
    api.mount(Channel::Telegram, accepted("check-77")).await;
    let adapter = api.adapter_with(json!({ "check_send_ability": true }));
    let msg = message(Channel::Telegram);
    // REQUEST_ID_INVALID: the id is dropped, the retry checks again.
    assert!(adapter.send(&msg).await.unwrap_err().is_transient());
    // A transient failure keeps the new id...
    assert!(adapter.send(&msg).await.unwrap_err().is_transient());
    // ...but not past its reuse window.
    tokio::time::pause();
    tokio::time::advance(telegram::REQUEST_ID_REUSE + Duration::from_secs(1)).await;
    tokio::time::resume();
    adapter.send(&msg).await.unwrap();
}

#[tokio::test]
async fn confirm_approval_reports_the_request_to_check_verification_status() {
    let api = TelegramApi::start().await;
    Mock::given(method("POST"))
        .and(path("/checkVerificationStatus"))
        .and(header("authorization", format!("Bearer {TOKEN}").as_str()))
        .and(body_json(json!({ "request_id": REQUEST_ID })))
        .respond_with(ResponseTemplate::new(200).set_body_json(
            json!({ "ok": true, "result": request_status(REQUEST_ID, Some("delivered")) }),
        ))
        .expect(1)
        .mount(&api.server)
        .await;
    api.adapter().confirm_approval(REQUEST_ID).await;
}

#[tokio::test]
async fn confirm_approval_failures_are_swallowed() {
    let api = TelegramApi::start().await;
    Mock::given(method("POST"))
        .and(path("/checkVerificationStatus"))
        .respond_with(gateway_error(400, "REQUEST_ID_INVALID"))
        .expect(1)
        .mount(&api.server)
        .await;
    // Returns `()`: nothing to propagate, and no panic.
    api.adapter().confirm_approval(REQUEST_ID).await;
    // An id that is not one is not even sent.
    api.adapter().confirm_approval("bad id\n").await;
}

#[tokio::test]
async fn telegram_access_token_invalid_is_config() {
    let err = send_err(gateway_error(401, "ACCESS_TOKEN_INVALID")).await;
    assert_eq!(
        (err.class, err.code.as_deref()),
        (FailureClass::Config, Some("ACCESS_TOKEN_INVALID"))
    );
}

#[tokio::test]
async fn telegram_balance_not_enough_is_config() {
    let err = send_err(gateway_error(400, "BALANCE_NOT_ENOUGH")).await;
    assert_eq!(
        (err.class, err.code.as_deref()),
        (FailureClass::Config, Some("BALANCE_NOT_ENOUGH"))
    );
}

#[tokio::test]
async fn telegram_200_with_ok_false_is_classified_by_the_error() {
    for (error, class) in [
        ("PHONE_NUMBER_INVALID", FailureClass::Fallback),
        ("PHONE_NUMBER_NOT_AVAILABLE", FailureClass::Fallback),
        ("FLOOD_WAIT_3", FailureClass::Transient),
        ("ACCESS_TOKEN_INVALID", FailureClass::Config),
        ("SOMETHING_NEW", FailureClass::Fallback),
    ] {
        let err = send_err(gateway_error(200, error)).await;
        assert_eq!(err.class, class, "{error}");
        assert_eq!(err.code.as_deref(), Some(error));
    }
}

#[tokio::test]
async fn telegram_sender_and_parameter_errors_are_config() {
    for error in [
        "SENDER_NOT_VERIFIED",
        "SENDER_NOT_OWNED",
        "CALLBACK_URL_INVALID",
        "TTL_INVALID",
        "CODE_INVALID",
    ] {
        assert_eq!(
            send_err(gateway_error(400, error)).await.class,
            FailureClass::Config,
            "{error}"
        );
    }
}

#[tokio::test]
async fn telegram_unknown_4xx_error_is_fallback_and_5xx_is_transient() {
    let err = send_err(gateway_error(400, "MESSAGE_ALREADY_SENT")).await;
    assert_eq!(err.class, FailureClass::Fallback);
    let err = send_err(gateway_error(500, "INTERNAL")).await;
    assert_eq!(err.class, FailureClass::Transient);
    let err = send_err(ResponseTemplate::new(502).set_body_string("Bad Gateway")).await;
    assert_eq!(
        (err.class, err.code.as_deref()),
        (FailureClass::Transient, Some("http_502"))
    );
}

#[tokio::test]
async fn telegram_retry_after_header_counts_when_there_is_no_flood_wait() {
    let err =
        send_err(gateway_error(503, "SERVICE_UNAVAILABLE").insert_header("Retry-After", "4")).await;
    assert_eq!(err.class, FailureClass::Transient);
    assert_eq!(err.retry_after, Some(Duration::from_secs(4)));
}

#[tokio::test]
async fn telegram_ok_without_a_request_id_is_transient() {
    let err =
        send_err(ResponseTemplate::new(200).set_body_json(json!({ "ok": true, "result": {} })))
            .await;
    assert_eq!(
        (err.class, err.code.as_deref()),
        (FailureClass::Transient, Some("malformed_response"))
    );
}

#[tokio::test]
async fn telegram_error_strings_never_leak_the_number_code_or_token() {
    let err = send_err(gateway_error(
        400,
        &format!("bad {TO} {CODE} {TOKEN} <script>"),
    ))
    .await;
    assert_eq!(err.code.as_deref(), Some("http_400"));
    assert_eq!(err.class, FailureClass::Fallback);
}

// ---- reports ------------------------------------------------------------------------------------

fn parse(
    req: &InboundRequest,
) -> Result<Vec<switchboard_providers::DeliveryReceipt>, ReceiptError> {
    offline_adapter(json!({})).parse_receipts(req)
}

fn signed_now(body: &Value) -> InboundRequest {
    report(body.to_string().as_bytes(), TOKEN, unix(received_at()))
}

#[test]
fn report_statuses_become_receipts_with_the_provider_time() {
    for (status, expected, failure) in [
        ("sent", ReceiptStatus::Sent, None),
        ("delivered", ReceiptStatus::Delivered, None),
        ("read", ReceiptStatus::Read, None),
        ("expired", ReceiptStatus::Expired, Some("expired")),
        ("revoked", ReceiptStatus::Failed, Some("revoked")),
    ] {
        let receipts = parse(&signed_now(&request_status(REQUEST_ID, Some(status)))).unwrap();
        assert_eq!(receipts.len(), 1, "{status}");
        let r = &receipts[0];
        assert_eq!(
            (r.provider.as_str(), r.provider_message_id.as_str()),
            ("telegram", REQUEST_ID)
        );
        assert_eq!(r.status, expected);
        assert_eq!(
            r.failure.as_ref().map(|f| (f.class, f.code.as_deref())),
            failure.map(|c| (FailureClass::Fallback, Some(c)))
        );
        assert_eq!(
            r.at,
            SystemTime::UNIX_EPOCH + Duration::from_secs(1_767_225_500)
        );
    }
}

#[test]
fn report_without_a_delivery_status_or_with_an_unknown_one_gives_no_receipt() {
    assert!(
        parse(&signed_now(&request_status(REQUEST_ID, None)))
            .unwrap()
            .is_empty()
    );
    assert!(
        parse(&signed_now(&request_status(REQUEST_ID, Some("teleported"))))
            .unwrap()
            .is_empty()
    );
}

#[test]
fn stale_report_is_rejected_even_when_signed() {
    let body = request_status(REQUEST_ID, Some("delivered")).to_string();
    let now = unix(received_at());
    // Inside the 5 minute window, and a little ahead of our clock.
    assert!(parse(&report(body.as_bytes(), TOKEN, now - 300)).is_ok());
    assert!(parse(&report(body.as_bytes(), TOKEN, now + 30)).is_ok());
    for ts in [now - 301, now - 86_400, now + 3600, 0] {
        assert_eq!(
            parse(&report(body.as_bytes(), TOKEN, ts)),
            Err(ReceiptError::Stale),
            "{ts}"
        );
    }
    // The window is configurable.
    let lenient = offline_adapter(json!({ "receipt_max_age_secs": 3600 }));
    assert!(
        lenient
            .parse_receipts(&report(body.as_bytes(), TOKEN, now - 1800))
            .is_ok()
    );
}

#[test]
fn forged_reports_are_rejected_before_parsing() {
    let body = request_status(REQUEST_ID, Some("delivered")).to_string();
    let now = unix(received_at());
    // Signed with another token.
    assert_eq!(
        parse(&report(body.as_bytes(), "another-token", now)),
        Err(ReceiptError::BadSignature)
    );
    // The signature covers the timestamp: a replay with a fresh timestamp fails.
    let mut replayed = report(body.as_bytes(), TOKEN, now - 3600);
    replayed.headers[1].1 = now.to_string();
    assert_eq!(parse(&replayed), Err(ReceiptError::BadSignature));
    // A signature that is not even hex.
    let mut garbage = report(body.as_bytes(), TOKEN, now);
    garbage.headers[2].1 = "zz".into();
    assert_eq!(parse(&garbage), Err(ReceiptError::BadSignature));
    // A missing timestamp.
    let mut no_ts = report(body.as_bytes(), TOKEN, now);
    no_ts.headers.remove(1);
    assert_eq!(parse(&no_ts), Err(ReceiptError::BadSignature));
    // Signed but not a RequestStatus.
    assert!(matches!(
        parse(&report(b"not json", TOKEN, now)),
        Err(ReceiptError::Malformed(_))
    ));
}

#[test]
fn signature_key_is_the_raw_sha256_of_the_token() {
    // An independent implementation of the documented scheme.
    let body = br#"{"request_id":"x"}"#;
    let key = Sha256::digest(TOKEN.as_bytes());
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&key).unwrap();
    mac.update(b"1767225600\n");
    mac.update(body);
    let expected = hex_lower(&mac.finalize().into_bytes());
    assert_eq!(
        telegram::compute_signature(TOKEN, "1767225600", body),
        expected
    );
    // Upper-case hex is accepted too.
    let mut upper = report(body, TOKEN, unix(received_at()));
    upper.headers[2].1 = upper.headers[2].1.to_ascii_uppercase();
    assert!(parse(&upper).is_ok());
}

fn hex_lower(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn receipts_are_declared_only_with_a_callback_url() {
    assert!(offline_adapter(json!({})).capabilities().delivery_receipts);
    assert!(
        !offline_adapter(json!({ "callback_url": null }))
            .capabilities()
            .delivery_receipts
    );
}

// ---- config -------------------------------------------------------------------------------------

fn registry_error(table: ProviderTable) -> String {
    match Registry::builtin().build("telegram", &table, &ProviderContext::new().unwrap()) {
        Err(e) => e.to_string(),
        Ok(_) => panic!("built from an invalid table"),
    }
}

#[test]
fn missing_access_token_names_the_key() {
    let err = registry_error(config_table(
        "https://gatewayapi.telegram.org",
        json!({ "access_token": null }),
    ));
    assert_eq!(err, "providers.telegram.access_token: missing");
}

#[test]
fn callback_url_must_be_https_and_short() {
    for url in [
        "http://hooks.example.com/r".to_owned(),
        format!("https://hooks.example.com/{}", "a".repeat(300)),
    ] {
        let err = registry_error(config_table(
            "https://gatewayapi.telegram.org",
            json!({ "callback_url": url }),
        ));
        assert!(err.starts_with("providers.telegram.callback_url:"), "{err}");
    }
}

#[test]
fn debug_of_the_adapter_hides_the_token() {
    let debug = format!("{:?}", offline_adapter(json!({})));
    assert!(!debug.contains(TOKEN), "{debug}");
}

#[test]
fn parse_error_never_panics_on_arbitrary_bodies() {
    use proptest::prelude::*;
    proptest!(|(status in 100u16..600, body in proptest::collection::vec(any::<u8>(), 0..512))| {
        let _ = telegram::parse_error(status, &body, &Default::default());
    });
    proptest!(|(error in "\\PC{0,80}")| {
        let body = json!({ "ok": false, "error": error }).to_string();
        let err = telegram::parse_error(400, body.as_bytes(), &Default::default());
        prop_assert!(err.code.is_some());
    });
}

#[test]
fn report_parser_never_panics_on_arbitrary_signed_bodies() {
    use proptest::prelude::*;
    let adapter = offline_adapter(json!({}));
    let now = unix(received_at());
    proptest!(|(body in proptest::collection::vec(any::<u8>(), 0..512))| {
        let _ = adapter.parse_receipts(&report(&body, TOKEN, now));
    });
    proptest!(|(id in "\\PC{0,40}", status in "\\PC{0,12}", at in any::<i64>())| {
        let body = json!({ "request_id": id, "delivery_status": { "status": status, "updated_at": at } });
        let _ = adapter.parse_receipts(&report(body.to_string().as_bytes(), TOKEN, now));
    });
}
