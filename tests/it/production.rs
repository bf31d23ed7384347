//! Black box, in `production` mode: the sidecar over HTTP with Redis, a pepper, API keys and the
//! real Twilio adapter pointed at a wire-level emulator. What an attacker can do from outside.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use switchboard::routing::RouteTable;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::http::{Answer, Sidecar, sidecar_with};
use crate::redis_server::{shared_server, unique_prefix};

const SID: &str = "AC0123456789abcdef0123456789abcdef";
const KEY: &str = "production-test-api-key-default-0001";
const QA_KEY: &str = "production-test-api-key-qa-000000002";
const SANDBOX_NUMBER: &str = "+12025550107";

/// US SMS through Twilio only.
const ROUTES: &str = r#"
currency = "USD"
[default]
preference = ["sms"]
routes = [{ channel = "sms", provider = "twilio", price = 0.0079 }]
"#;

fn sha256(key: &str) -> String {
    hex::encode(Sha256::digest(key.as_bytes()))
}

async fn production(twilio: &MockServer, attempt_timeout_ms: u64) -> Sidecar {
    let config = format!(
        r#"
mode = "production"
pepper = "q8x3Vb1mZ0pW7yK2nR5tL9cD4fG6hJ0aS8eU1iO3wQ4="
[code]
hashing = {{ scheme = "hmac-sha256" }}
[routing]
attempt_timeout_ms = {attempt_timeout_ms}
[providers]
stand_in = ""
[providers.twilio]
account_sid = "{SID}"
auth_token = "production-test-auth-token"
from = "+15005550006"
base_url = "{base}"
timeout_ms = {attempt_timeout_ms}
[store]
backend = "redis"
url = "{redis}"
key_prefix = "{prefix}"
[server]
api_keys = [{{ app = "default", sha256 = "{key}" }}, {{ app = "qa", sha256 = "{qa}" }}]
[apps.qa]
sandbox = true
"#,
        base = twilio.uri(),
        redis = shared_server().url(),
        prefix = unique_prefix(),
        key = sha256(KEY),
        qa = sha256(QA_KEY),
    );
    sidecar_with(&config, |b| {
        b.routes(RouteTable::from_toml(ROUTES).unwrap())
    })
    .await
}

fn created() -> ResponseTemplate {
    ResponseTemplate::new(201).set_body_json(json!({
        "sid": "SM1f0e8ae6ade43cb3c0ce4525424e404f", "status": "queued", "error_code": null,
    }))
}

async fn twilio(response: ResponseTemplate) -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(format!("/2010-04-01/Accounts/{SID}/Messages.json")))
        .respond_with(response)
        .mount(&server)
        .await;
    server
}

async fn send(s: &Sidecar, key: &str, number: &str) -> Answer {
    s.post_with_key(
        "/v3/phone/send/",
        Some(key),
        json!({ "phone_number": number }),
    )
    .await
}

async fn check(s: &Sidecar, number: &str, code: &str) -> Answer {
    s.post_with_key(
        "/v3/phone/check/",
        Some(KEY),
        json!({ "phone_number": number, "code": code }),
    )
    .await
}

/// The codes Twilio was asked to deliver, in order.
async fn codes_sent(twilio: &MockServer) -> Vec<String> {
    let requests = twilio.received_requests().await.unwrap_or_default();
    requests
        .iter()
        .filter_map(|r| {
            // Digits are never percent-encoded: the code is a run of six in the `Body` field.
            let form = String::from_utf8_lossy(&r.body).into_owned();
            let body = form.split('&').find_map(|kv| kv.strip_prefix("Body="))?;
            body.split(|c: char| !c.is_ascii_digit())
                .find(|w| w.len() == 6)
                .map(str::to_owned)
        })
        .collect()
}

fn wrong(code: &str) -> String {
    code.chars()
        .map(|c| char::from(b'0' + ((c as u8 - b'0' + 1) % 10)))
        .collect()
}

#[tokio::test]
async fn in_production_a_sandbox_number_reaches_the_real_provider_and_its_fourth_send_is_refused() {
    let emulator = twilio(created()).await;
    let s = production(&emulator, 5000).await;
    for i in 0..3 {
        let a = send(&s, KEY, SANDBOX_NUMBER).await;
        assert_eq!(a.status, StatusCode::OK, "send {i}: {}", a.text);
        assert_eq!(a.body["delivered_by"]["provider"], "twilio", "{}", a.text);
    }
    assert_eq!(codes_sent(&emulator).await.len(), 3);
    let fourth = send(&s, KEY, SANDBOX_NUMBER).await;
    assert_eq!(fourth.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(fourth.code(), "RESEND_LIMIT_EXCEEDED");

    // The application that opted in gets the sandbox, and no message reaches Twilio.
    let qa = send(&s, QA_KEY, SANDBOX_NUMBER).await;
    assert_eq!(qa.status, StatusCode::OK, "{}", qa.text);
    assert_eq!(qa.body["delivered_by"]["provider"], "sandbox");
    assert_eq!(codes_sent(&emulator).await.len(), 3);
}

#[tokio::test]
async fn in_production_sends_that_time_out_stay_counted_and_their_wrong_codes_decline() {
    // Twilio answers after the attempt timeout: every send may have gone out.
    let emulator = twilio(created().set_delay(Duration::from_millis(1500))).await;
    let s = production(&emulator, 300).await;
    let number = "+12025551234";
    for i in 0..3 {
        let a = send(&s, KEY, number).await;
        assert_eq!(
            a.code(),
            "phone_provider_unavailable",
            "send {i}: {}",
            a.text
        );
    }
    let fourth = send(&s, KEY, number).await;
    assert_eq!(fourth.code(), "RESEND_LIMIT_EXCEEDED", "{}", fourth.text);

    // Another number: a wrong code after each timed-out send; the second declines.
    let other = "+12025551235";
    send(&s, KEY, other).await;
    let code = codes_sent(&emulator)
        .await
        .last()
        .cloned()
        .expect("a code went out");
    let first = check(&s, other, &wrong(&code)).await;
    assert_eq!(first.body["status"], "Failed", "{}", first.text);
    send(&s, KEY, other).await;
    let code = codes_sent(&emulator).await.last().cloned().unwrap();
    let second = check(&s, other, &wrong(&code)).await;
    assert_eq!(second.body["status"], "Declined", "{}", second.text);
    let _: Value = second.body;
}
