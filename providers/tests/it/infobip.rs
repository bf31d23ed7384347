//! Infobip SMS: the wiremock emulation of `POST /sms/2/text/advanced`, every error row of
//! PROVIDERS.md (send-time statuses, API errors and delivery-report errors), and delivery
//! reports verified with the shared secret.

use std::time::{Duration, SystemTime};

use serde_json::{Value, json};
use switchboard_providers::http::HttpClient;
use switchboard_providers::infobip::{self, InfobipConfig, InfobipProvider};
use switchboard_providers::{
    Channel, DeliveryError, FailureClass, InboundRequest, Provider, ProviderContext, ProviderTable,
    ReceiptError, ReceiptStatus, Registry,
};
use wiremock::matchers::{body_json, header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::support::{CODE, Emulation, assert_clean, message, received_at};

pub const API_KEY: &str = "003026bbc133714df1834b8638bb496e-8f4b3d9a-e931-478d-a994-28a725159ab9";
pub const RECEIPT_SECRET: &str = "infobip-receipt-secret-71c2";
pub const RECEIPT_USER: &str = "switchboard";
pub const NOTIFY_URL: &str = "https://hooks.example.com/infobip/reports";
const MESSAGE_ID: &str = "2250be2d4219-3af1-78856-aabe-1362af1edfd2";

/// The Infobip SMS emulation.
pub struct InfobipApi {
    pub server: MockServer,
}

pub fn config_table(base_url: &str, overrides: Value) -> ProviderTable {
    let mut table = json!({
        "api_key": API_KEY,
        "from": "InfoSMS",
        "notify_url": NOTIFY_URL,
        "receipt_secret": RECEIPT_SECRET,
        "receipt_username": RECEIPT_USER,
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

/// A status object.
pub fn status(group_id: i64, group_name: &str, id: i64, name: &str) -> Value {
    json!({
        "groupId": group_id,
        "groupName": group_name,
        "id": id,
        "name": name,
        "description": format!("{name} for 34600600600"),
    })
}

/// Infobip's 200 answer with one message in `status`.
pub fn sent(message_id: &str, status: Value) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(json!({
        "bulkId": "2034072219640523072",
        "messages": [{ "to": "34600600600", "messageId": message_id, "status": status }],
    }))
}

pub fn accepted(message_id: &str) -> ResponseTemplate {
    sent(message_id, status(1, "PENDING", 26, "PENDING_ACCEPTED"))
}

/// Infobip's API error body.
pub fn api_error(status: u16, message_id: &str, text: &str) -> ResponseTemplate {
    ResponseTemplate::new(status).set_body_json(json!({
        "requestError": { "serviceException": { "messageId": message_id, "text": text } }
    }))
}

/// A delivery report entry.
pub fn result(message_id: &str, status: Value, error: Value) -> Value {
    json!({
        "bulkId": "BULK-ID-123-xyz",
        "price": { "pricePerMessage": 0.01, "currency": "EUR" },
        "status": status,
        "error": error,
        "messageId": message_id,
        "doneAt": "2026-01-01T00:00:00.000+0000",
        "sentAt": "2025-12-31T23:59:58.000+0000",
        "smsCount": 1,
        "to": "34600600600",
        "callbackData": "verif-1",
    })
}

pub fn no_error() -> Value {
    json!({ "groupId": 0, "groupName": "OK", "id": 0, "name": "NO_ERROR", "description": "No Error", "permanent": false })
}

/// A delivery report as Infobip posts it through a notification profile with BASIC security
/// (user `RECEIPT_USER`, password `secret`).
pub fn report(body: &[u8], secret: &str) -> InboundRequest {
    InboundRequest::new(
        "POST",
        NOTIFY_URL,
        vec![
            ("Content-Type".into(), "application/json".into()),
            (
                "Authorization".into(),
                infobip::basic_authorization(RECEIPT_USER, secret),
            ),
        ],
        body.to_vec(),
        received_at(),
    )
}

impl Emulation for InfobipApi {
    type Adapter = InfobipProvider;

    async fn start() -> Self {
        InfobipApi {
            server: MockServer::start().await,
        }
    }

    fn server(&self) -> &MockServer {
        &self.server
    }

    fn adapter_with(&self, overrides: Value) -> InfobipProvider {
        let config: InfobipConfig = config_table(&self.server.uri(), overrides).parse().unwrap();
        InfobipProvider::new(config, HttpClient::new().unwrap()).unwrap()
    }

    fn secrets(&self) -> Vec<String> {
        vec![API_KEY.to_owned(), RECEIPT_SECRET.to_owned()]
    }

    async fn mount(&self, _channel: Channel, response: ResponseTemplate) {
        Mock::given(method("POST"))
            .and(path("/sms/2/text/advanced"))
            .and(header("authorization", format!("App {API_KEY}").as_str()))
            .respond_with(response)
            .mount(&self.server)
            .await;
    }

    fn success(&self, _channel: Channel) -> (ResponseTemplate, String) {
        (accepted(MESSAGE_ID), MESSAGE_ID.to_owned())
    }

    fn error(&self, class: FailureClass, _channel: Channel) -> Option<(ResponseTemplate, String)> {
        Some(match class {
            FailureClass::Transient => (
                api_error(429, "TOO_MANY_REQUESTS", "Too many requests"),
                "TOO_MANY_REQUESTS".into(),
            ),
            FailureClass::Fallback => (
                sent(
                    MESSAGE_ID,
                    status(2, "UNDELIVERABLE", 9, "UNDELIVERABLE_NOT_DELIVERED"),
                ),
                "2.9".into(),
            ),
            FailureClass::Permanent => (
                sent(
                    MESSAGE_ID,
                    status(5, "REJECTED", 52, "REJECTED_DESTINATION"),
                ),
                "5.52".into(),
            ),
            FailureClass::Fraud => (
                sent(
                    MESSAGE_ID,
                    status(5, "REJECTED", 20, "REJECTED_FLOODING_FILTER"),
                ),
                "5.20".into(),
            ),
            FailureClass::Config => (
                sent(
                    MESSAGE_ID,
                    status(5, "REJECTED", 12, "REJECTED_NOT_ENOUGH_CREDITS"),
                ),
                "5.12".into(),
            ),
        })
    }

    fn rate_limited(&self, retry_after_secs: u64) -> ResponseTemplate {
        api_error(429, "TOO_MANY_REQUESTS", "Too many requests")
            .insert_header("Retry-After", retry_after_secs.to_string().as_str())
    }

    fn unauthorized(&self) -> ResponseTemplate {
        api_error(401, "UNAUTHORIZED", "Invalid login details")
    }

    fn signed_receipt(&self, message_id: &str) -> InboundRequest {
        let body = json!({ "results": [result(
            message_id,
            status(3, "DELIVERED", 5, "DELIVERED_TO_HANDSET"),
            no_error(),
        )] })
        .to_string();
        report(body.as_bytes(), RECEIPT_SECRET)
    }

    /// BASIC credentials do not cover the body: a forgery has the wrong password.
    fn forged(&self, signed: &InboundRequest) -> InboundRequest {
        report(&signed.body, "not-the-receipt-secret")
    }
}

async fn send_err(response: ResponseTemplate) -> DeliveryError {
    let api = InfobipApi::start().await;
    api.mount(Channel::Sms, response).await;
    let err = api
        .adapter()
        .send(&message(Channel::Sms))
        .await
        .unwrap_err();
    assert_clean(&err, &[API_KEY, RECEIPT_SECRET]);
    err
}

fn offline_adapter(overrides: Value) -> InfobipProvider {
    let config: InfobipConfig = config_table("https://api.infobip.invalid", overrides)
        .parse()
        .unwrap();
    InfobipProvider::new(config, HttpClient::new().unwrap()).unwrap()
}

// ---- request shape ------------------------------------------------------------------------------

#[tokio::test]
async fn sms_is_an_app_key_json_message_with_validity_notify_url_and_callback_data() {
    let api = InfobipApi::start().await;
    Mock::given(method("POST"))
        .and(path("/sms/2/text/advanced"))
        .and(header("authorization", format!("App {API_KEY}").as_str()))
        .and(header("content-type", "application/json"))
        .and(body_json(json!({
            "messages": [{
                "from": "InfoSMS",
                "destinations": [{ "to": "34600600600" }],
                "text": format!("Votre code Acme est {CODE}"),
                "validityPeriod": 5,
                "notifyUrl": NOTIFY_URL,
                "notifyContentType": "application/json",
                "callbackData": "verif-1",
            }]
        })))
        .respond_with(accepted(MESSAGE_ID))
        .expect(1)
        .mount(&api.server)
        .await;
    let mut msg = message(Channel::Sms);
    msg.locale = "fr".into();
    let delivery = api.adapter().send(&msg).await.unwrap();
    assert_eq!(delivery.provider_message_id, MESSAGE_ID);
}

#[tokio::test]
async fn validity_is_rounded_up_to_minutes_within_infobips_limit() {
    for (secs, minutes) in [(1, 1), (61, 2), (600_000, 2880)] {
        let api = InfobipApi::start().await;
        api.mount(Channel::Sms, accepted(MESSAGE_ID)).await;
        let mut msg = message(Channel::Sms);
        msg.validity = Duration::from_secs(secs);
        api.adapter_with(json!({ "notify_url": null, "from": 447491163443u64 }))
            .send(&msg)
            .await
            .unwrap();
        let body: Value =
            serde_json::from_slice(&api.server.received_requests().await.unwrap()[0].body).unwrap();
        let sms = &body["messages"][0];
        assert_eq!(sms["validityPeriod"], minutes, "{secs}");
        assert_eq!(sms["from"], "447491163443");
        assert!(sms.get("notifyUrl").is_none());
    }
}

// ---- send-time errors: one test per row of PROVIDERS.md ---------------------------------------

#[tokio::test]
async fn infobip_rejected_not_enough_credits_is_config() {
    let err = send_err(sent(
        MESSAGE_ID,
        status(5, "REJECTED", 12, "REJECTED_NOT_ENOUGH_CREDITS"),
    ))
    .await;
    assert_eq!(
        (err.class, err.code.as_deref()),
        (FailureClass::Config, Some("5.12"))
    );
    assert!(err.message.contains("REJECTED_NOT_ENOUGH_CREDITS"), "{err}");
}

#[tokio::test]
async fn infobip_undeliverable_group_is_fallback() {
    let err = send_err(sent(
        MESSAGE_ID,
        status(2, "UNDELIVERABLE", 9, "UNDELIVERABLE_NOT_DELIVERED"),
    ))
    .await;
    assert_eq!(
        (err.class, err.code.as_deref()),
        (FailureClass::Fallback, Some("2.9"))
    );
}

#[tokio::test]
async fn infobip_expired_group_is_fallback() {
    let err = send_err(sent(
        MESSAGE_ID,
        status(4, "EXPIRED", 15, "EXPIRED_EXPIRED"),
    ))
    .await;
    assert_eq!(
        (err.class, err.code.as_deref()),
        (FailureClass::Fallback, Some("4.15"))
    );
}

macro_rules! infobip_rejected_tests {
    ($($name:ident: $id:literal, $status:literal => $class:ident;)*) => {$(
        #[tokio::test]
        async fn $name() {
            let err = send_err(sent(MESSAGE_ID, status(5, "REJECTED", $id, $status))).await;
            assert_eq!(err.class, FailureClass::$class, "{err}");
            assert_eq!(err.code.as_deref(), Some(concat!("5.", $id)));
        }
    )*};
}

infobip_rejected_tests! {
    // Network not covered / no route: our account's coverage, not the number.
    infobip_rejected_network_is_config: 6, "REJECTED_NETWORK" => Config;
    infobip_rejected_route_not_available_is_config: 19, "REJECTED_ROUTE_NOT_AVAILABLE" => Config;
    infobip_rejected_prefix_missing_is_permanent: 8, "REJECTED_PREFIX_MISSING" => Permanent;
    infobip_rejected_dnd_is_permanent: 10, "REJECTED_DND" => Permanent;
    // Infobip's SMS-pumping protection: a fraud block, never a reason to try another route.
    infobip_rejected_flooding_filter_is_fraud: 20, "REJECTED_FLOODING_FILTER" => Fraud;
    infobip_rejected_signals_blocked_is_fraud: 87, "SIGNALS_BLOCKED" => Fraud;
    infobip_rejected_destination_is_permanent: 52, "REJECTED_DESTINATION" => Permanent;
    // Beyond the PROVIDERS.md table.
    infobip_rejected_sender_is_config: 13, "REJECTED_SENDER" => Config;
    infobip_rejected_system_error_is_transient: 21, "REJECTED_SYSTEM_ERROR" => Transient;
    infobip_rejected_unknown_id_is_fallback: 99, "REJECTED_SOMETHING_NEW" => Fallback;
}

#[tokio::test]
async fn infobip_401_unauthorized_is_config() {
    let err = send_err(api_error(401, "UNAUTHORIZED", "Invalid login details")).await;
    assert_eq!(
        (err.class, err.code.as_deref()),
        (FailureClass::Config, Some("UNAUTHORIZED"))
    );
}

#[tokio::test]
async fn infobip_429_is_transient_with_retry_after() {
    let err = send_err(
        api_error(429, "TOO_MANY_REQUESTS", "Too many requests").insert_header("Retry-After", "2"),
    )
    .await;
    assert_eq!(err.class, FailureClass::Transient);
    assert_eq!(err.retry_after, Some(Duration::from_secs(2)));
}

#[tokio::test]
async fn infobip_newer_error_shape_and_unknown_4xx() {
    let err = send_err(ResponseTemplate::new(403).set_body_json(
        json!({ "errorCode": "E403", "description": "Forbidden", "action": "Check the API key scopes" }),
    ))
    .await;
    assert_eq!(
        (err.class, err.code.as_deref()),
        (FailureClass::Config, Some("E403"))
    );
    let err = send_err(api_error(400, "BAD_REQUEST", "Bad request")).await;
    assert_eq!(
        (err.class, err.code.as_deref()),
        (FailureClass::Fallback, Some("BAD_REQUEST"))
    );
}

#[tokio::test]
async fn infobip_5xx_and_malformed_bodies_are_transient() {
    let err = send_err(api_error(500, "GENERAL_ERROR", "Something went wrong")).await;
    assert_eq!(err.class, FailureClass::Transient);
    let err = send_err(ResponseTemplate::new(200).set_body_json(json!({ "messages": [] }))).await;
    assert_eq!(
        (err.class, err.code.as_deref()),
        (FailureClass::Transient, Some("malformed_response"))
    );
    let err = send_err(ResponseTemplate::new(200).set_body_json(
        json!({ "messages": [{ "status": status(1, "PENDING", 26, "PENDING_ACCEPTED") }] }),
    ))
    .await;
    assert_eq!(err.code.as_deref(), Some("malformed_response"));
}

// ---- delivery reports ---------------------------------------------------------------------------

fn parse(
    req: &InboundRequest,
) -> Result<Vec<switchboard_providers::DeliveryReceipt>, ReceiptError> {
    offline_adapter(json!({})).parse_receipts(req)
}

fn one(status: Value, error: Value) -> switchboard_providers::DeliveryReceipt {
    let body = json!({ "results": [result(MESSAGE_ID, status, error)] }).to_string();
    parse(&report(body.as_bytes(), RECEIPT_SECRET))
        .unwrap()
        .remove(0)
}

fn handset_error(id: i64, name: &str, permanent: bool) -> Value {
    json!({ "groupId": 1, "groupName": "HANDSET_ERRORS", "id": id, "name": name, "description": name, "permanent": permanent })
}

#[test]
fn report_statuses_become_receipts_with_the_provider_time() {
    for (s, expected) in [
        (
            status(3, "DELIVERED", 5, "DELIVERED_TO_HANDSET"),
            ReceiptStatus::Delivered,
        ),
        (
            status(3, "DELIVERED", 2, "DELIVERED_TO_OPERATOR"),
            ReceiptStatus::Sent,
        ),
        (
            status(1, "PENDING", 7, "PENDING_ENROUTE"),
            ReceiptStatus::Sent,
        ),
        (
            status(1, "PENDING", 26, "PENDING_ACCEPTED"),
            ReceiptStatus::Queued,
        ),
    ] {
        let r = one(s, no_error());
        assert_eq!(r.status, expected);
        assert_eq!(
            (r.provider.as_str(), r.provider_message_id.as_str()),
            ("infobip", MESSAGE_ID)
        );
        assert_eq!(r.failure, None);
        assert_eq!(
            r.at,
            SystemTime::UNIX_EPOCH + Duration::from_secs(1_767_225_600)
        );
    }
}

#[test]
fn infobip_ec_unknown_subscriber_is_permanent() {
    let r = one(
        status(2, "UNDELIVERABLE", 9, "UNDELIVERABLE_NOT_DELIVERED"),
        handset_error(1, "EC_UNKNOWN_SUBSCRIBER", true),
    );
    assert_eq!(r.status, ReceiptStatus::Failed);
    let f = r.failure.unwrap();
    assert_eq!(
        (f.class, f.code.as_deref()),
        (FailureClass::Permanent, Some("1.1"))
    );
}

#[test]
fn infobip_ec_absent_subscriber_is_fallback() {
    let r = one(
        status(2, "UNDELIVERABLE", 9, "UNDELIVERABLE_NOT_DELIVERED"),
        handset_error(27, "EC_ABSENT_SUBSCRIBER", false),
    );
    let f = r.failure.unwrap();
    assert_eq!(
        (f.class, f.code.as_deref()),
        (FailureClass::Fallback, Some("1.27"))
    );
}

#[test]
fn infobip_undeliverable_and_expired_reports_are_fallback() {
    let r = one(status(4, "EXPIRED", 15, "EXPIRED_EXPIRED"), no_error());
    assert_eq!(r.status, ReceiptStatus::Expired);
    let f = r.failure.unwrap();
    assert_eq!(
        (f.class, f.code.as_deref()),
        (FailureClass::Fallback, Some("4.15"))
    );
    let r = one(
        status(2, "UNDELIVERABLE", 4, "UNDELIVERABLE_REJECTED_OPERATOR"),
        no_error(),
    );
    assert_eq!(r.failure.unwrap().class, FailureClass::Fallback);
}

#[test]
fn infobip_permanent_errors_that_do_not_condemn_the_number_are_fallback() {
    // EC_TELESERVICE_NOT_PROVISIONED: SMS is not provisioned, voice may still work.
    let r = one(
        status(2, "UNDELIVERABLE", 9, "UNDELIVERABLE_NOT_DELIVERED"),
        handset_error(11, "EC_TELESERVICE_NOT_PROVISIONED", true),
    );
    assert_eq!(r.failure.unwrap().class, FailureClass::Fallback);
}

#[test]
fn infobip_rejected_reports_are_classified_by_the_status_id() {
    let r = one(
        status(5, "REJECTED", 12, "REJECTED_NOT_ENOUGH_CREDITS"),
        no_error(),
    );
    assert_eq!(r.status, ReceiptStatus::Failed);
    let f = r.failure.unwrap();
    assert_eq!(
        (f.class, f.code.as_deref()),
        (FailureClass::Config, Some("5.12"))
    );
}

#[test]
fn a_report_with_several_results_gives_several_receipts() {
    let body = json!({ "results": [
        result("m-1", status(3, "DELIVERED", 5, "DELIVERED_TO_HANDSET"), no_error()),
        result("m-2", status(9, "FUTURE", 1, "FUTURE_STATUS"), no_error()),
        result("m-3", status(4, "EXPIRED", 15, "EXPIRED_EXPIRED"), no_error()),
    ] })
    .to_string();
    let ids: Vec<_> = parse(&report(body.as_bytes(), RECEIPT_SECRET))
        .unwrap()
        .into_iter()
        .map(|r| r.provider_message_id)
        .collect();
    assert_eq!(ids, ["m-1", "m-3"]);
}

#[test]
fn reports_signed_with_another_secret_or_unsigned_are_rejected_before_parsing() {
    assert_eq!(
        parse(&report(b"not even json", "another-secret")),
        Err(ReceiptError::BadSignature)
    );
    let mut unsigned = report(b"{}", RECEIPT_SECRET);
    unsigned.headers.truncate(1);
    assert_eq!(parse(&unsigned), Err(ReceiptError::BadSignature));
    assert!(matches!(
        parse(&report(b"not even json", RECEIPT_SECRET)),
        Err(ReceiptError::Malformed(_))
    ));
    // Another user, another scheme, or not base64: refused.
    for value in [
        infobip::basic_authorization("someone", RECEIPT_SECRET),
        format!("Bearer {RECEIPT_SECRET}"),
        "Basic !!!".to_owned(),
    ] {
        let mut req = report(b"{\"results\":[]}", RECEIPT_SECRET);
        req.headers[1].1 = value;
        assert_eq!(parse(&req), Err(ReceiptError::BadSignature));
    }
    // The scheme name is case-insensitive.
    let mut lower = report(b"{\"results\":[]}", RECEIPT_SECRET);
    lower.headers[1].1 = lower.headers[1].1.replacen("Basic", "basic", 1);
    assert_eq!(parse(&lower), Ok(vec![]));
}

#[test]
fn the_default_scheme_is_infobip_basic_security_and_the_invented_hmac_header_is_gone() {
    let body = json!({ "results": [result(MESSAGE_ID, status(3, "DELIVERED", 5, "DELIVERED_TO_HANDSET"), no_error())] }).to_string();
    let adapter = offline_adapter(json!({}));
    let receipts = adapter
        .parse_receipts(&report(body.as_bytes(), RECEIPT_SECRET))
        .unwrap();
    assert_eq!(receipts[0].status, ReceiptStatus::Delivered);
    // An `X-Signature` HMAC, which Infobip does not send, proves nothing.
    let hmac = InboundRequest::new(
        "POST",
        NOTIFY_URL,
        vec![(
            "X-Signature".into(),
            switchboard_providers::http::sha256_hex(body.as_bytes()),
        )],
        body.clone(),
        received_at(),
    );
    assert_eq!(
        adapter.parse_receipts(&hmac),
        Err(ReceiptError::BadSignature)
    );
    let base = "https://api.infobip.com";
    let err = registry_error(config_table(
        base,
        json!({ "receipt_scheme": "hmac-sha256" }),
    ));
    assert!(err.starts_with("providers.infobip.receipt_scheme"), "{err}");
    assert_eq!(
        registry_error(config_table(base, json!({ "receipt_username": null }))),
        "providers.infobip.receipt_username: missing"
    );
}

#[test]
fn the_header_scheme_compares_the_shared_secret_itself() {
    let adapter = offline_adapter(json!({
        "receipt_scheme": "header",
        "receipt_secret": "Basic dXNlcjpwYXNz",
    }));
    let body = json!({ "results": [result(MESSAGE_ID, status(3, "DELIVERED", 5, "DELIVERED_TO_HANDSET"), no_error())] }).to_string();
    let with = |value: &str| {
        InboundRequest::new(
            "POST",
            NOTIFY_URL,
            vec![("Authorization".into(), value.into())],
            body.clone(),
            received_at(),
        )
    };
    assert_eq!(
        adapter
            .parse_receipts(&with("Basic dXNlcjpwYXNz"))
            .unwrap()
            .len(),
        1
    );
    assert_eq!(
        adapter.parse_receipts(&with("Basic dXNlcjpwYXNt")),
        Err(ReceiptError::BadSignature)
    );
    // A custom header name.
    let custom = offline_adapter(json!({
        "receipt_scheme": "header",
        "receipt_header": "X-Webhook-Token",
    }));
    let mut req = with(RECEIPT_SECRET);
    assert_eq!(custom.parse_receipts(&req), Err(ReceiptError::BadSignature));
    req.headers[0].0 = "x-webhook-token".into();
    assert!(custom.parse_receipts(&req).is_ok());
}

#[test]
fn receipts_need_the_receipt_secret() {
    let adapter = offline_adapter(json!({ "receipt_secret": null }));
    assert!(!adapter.capabilities().delivery_receipts);
    assert_eq!(
        adapter.parse_receipts(&report(b"{}", RECEIPT_SECRET)),
        Err(ReceiptError::Unsupported)
    );
}

// ---- config -------------------------------------------------------------------------------------

fn registry_error(table: ProviderTable) -> String {
    match Registry::builtin().build("infobip", &table, &ProviderContext::new().unwrap()) {
        Err(e) => e.to_string(),
        Ok(_) => panic!("built from an invalid table"),
    }
}

#[test]
fn missing_keys_and_bad_values_name_the_key() {
    let base = "https://api.infobip.com";
    assert_eq!(
        registry_error(config_table(base, json!({ "api_key": null }))),
        "providers.infobip.api_key: missing"
    );
    assert_eq!(
        registry_error(config_table(base, json!({ "from": null }))),
        "providers.infobip.from: missing"
    );
    let err = registry_error(config_table(base, json!({ "receipt_scheme": "md5" })));
    assert!(err.starts_with("providers.infobip.receipt_scheme"), "{err}");
    assert!(!err.contains("md5"), "{err}");
}

#[test]
fn debug_of_the_adapter_hides_the_key_and_the_secret() {
    let debug = format!("{:?}", offline_adapter(json!({})));
    for secret in [API_KEY, RECEIPT_SECRET] {
        assert!(!debug.contains(secret), "{debug}");
    }
}

#[test]
fn parse_error_and_reports_never_panic() {
    use proptest::prelude::*;
    proptest!(|(status in 100u16..600, body in proptest::collection::vec(any::<u8>(), 0..512))| {
        let _ = infobip::parse_error(status, &body, &Default::default());
    });
    let adapter = offline_adapter(json!({}));
    proptest!(|(body in proptest::collection::vec(any::<u8>(), 0..512))| {
        let _ = adapter.parse_receipts(&report(&body, RECEIPT_SECRET));
    });
    proptest!(|(group in any::<i64>(), id in any::<i64>(), done in "\\PC{0,40}", permanent in any::<bool>())| {
        let body = json!({ "results": [{
            "messageId": "m", "status": { "groupId": group, "id": id },
            "error": { "groupId": 1, "id": id, "permanent": permanent }, "doneAt": done,
        }] });
        let _ = adapter.parse_receipts(&report(body.to_string().as_bytes(), RECEIPT_SECRET));
    });
}
