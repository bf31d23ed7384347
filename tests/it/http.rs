//! The HTTP/JSON API end to end: an in-process sidecar on `127.0.0.1:0`, driven with reqwest
//! as a new user would drive it with curl.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use reqwest::header::HeaderMap;
use serde_json::{Value, json};
use switchboard::providers::{
    Capabilities, Channel, ConsoleProvider, Delivery, DeliveryError, FailureClass, OutboundMessage,
    Provider,
};
use switchboard::routing::RouteTable;
use switchboard::server::{self, Running};
use switchboard::{Config, EngineBuilder};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::support::{Scripted, Step};

/// A sandbox number that always approves.
pub const SANDBOX: &str = "+12025550101";
/// A Spanish mobile: not a sandbox number, so real limits apply (the console stands in).
const ES_MOBILE: &str = "+34600600600";

/// An in-process sidecar and a client for its HTTP API.
pub struct Sidecar {
    pub running: Running,
    pub client: reqwest::Client,
    pub base: String,
}

/// A reply: status, headers and the body as JSON (`Value::Null` when it is not JSON).
pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Value,
    pub text: String,
}

impl Answer {
    pub fn code(&self) -> &str {
        self.body["error"]["code"].as_str().unwrap_or_default()
    }

    pub fn message(&self) -> &str {
        self.body["error"]["message"].as_str().unwrap_or_default()
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// A sidecar on the embedded defaults plus `overrides` (TOML), both servers on free ports.
pub async fn sidecar(overrides: &str) -> Sidecar {
    sidecar_with(overrides, |b| b).await
}

pub async fn sidecar_with(
    overrides: &str,
    customize: impl FnOnce(EngineBuilder) -> EngineBuilder,
) -> Sidecar {
    let mut config = Config::from_toml(overrides).expect("test config is valid");
    config.server.grpc_addr = "127.0.0.1:0".into();
    config.server.http_addr = "127.0.0.1:0".into();
    let running = server::start(config, customize)
        .await
        .expect("sidecar starts");
    let base = format!("http://{}", running.http_addr);
    Sidecar {
        running,
        client: reqwest::Client::builder()
            .timeout(Duration::from_secs(20))
            .build()
            .unwrap(),
        base,
    }
}

impl Sidecar {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub async fn answer(response: reqwest::Response) -> Answer {
        let status = response.status();
        let headers = response.headers().clone();
        let text = response.text().await.unwrap();
        let body = serde_json::from_str(&text).unwrap_or(Value::Null);
        Answer {
            status,
            headers,
            body,
            text,
        }
    }

    pub async fn post(&self, path: &str, body: Value) -> Answer {
        Self::answer(
            self.client
                .post(self.url(path))
                .json(&body)
                .send()
                .await
                .unwrap(),
        )
        .await
    }

    pub async fn post_with_key(&self, path: &str, key: Option<&str>, body: Value) -> Answer {
        let mut req = self.client.post(self.url(path)).json(&body);
        if let Some(key) = key {
            req = req.header("x-api-key", key);
        }
        Self::answer(req.send().await.unwrap()).await
    }

    pub async fn post_raw(&self, path: &str, content_type: Option<&str>, body: &str) -> Answer {
        let mut req = self.client.post(self.url(path)).body(body.to_owned());
        if let Some(ct) = content_type {
            req = req.header("content-type", ct);
        }
        Self::answer(req.send().await.unwrap()).await
    }

    pub async fn get(&self, path: &str) -> Answer {
        Self::answer(self.client.get(self.url(path)).send().await.unwrap()).await
    }

    pub async fn delete(&self, path: &str) -> Answer {
        Self::answer(self.client.delete(self.url(path)).send().await.unwrap()).await
    }

    /// Sends to `number` and returns the send answer.
    pub async fn send(&self, number: &str) -> Answer {
        self.post("/v3/phone/send/", json!({ "phone_number": number }))
            .await
    }

    pub async fn check(&self, number: &str, code: &str) -> Answer {
        self.post(
            "/v3/phone/check/",
            json!({ "phone_number": number, "code": code }),
        )
        .await
    }

    /// The code the sandbox recorded for `number`.
    pub fn sandbox_code(&self, number: &str) -> String {
        self.running
            .state
            .engine
            .sandbox()
            .unwrap()
            .last_code(number)
            .expect("a code was sent")
            .expose()
            .to_owned()
    }

    /// The value of one sample of the Prometheus text (0 when absent).
    pub async fn metric(&self, sample: &str) -> f64 {
        let text = self.get("/metrics").await.text;
        text.lines()
            .find_map(|l| l.strip_prefix(sample)?.strip_prefix(' '))
            .map_or(0.0, |v| v.trim().parse().unwrap())
    }
}

/// A code that is not `code` (same length).
fn wrong(code: &str) -> String {
    code.chars()
        .map(|c| if c == '9' { '0' } else { '9' })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_user_flow_send_then_check_is_approved() {
    let s = sidecar("").await;
    let sent = s.send(SANDBOX).await;
    assert_eq!(sent.status, StatusCode::OK, "{}", sent.text);
    assert_eq!(sent.body["status"], "Success");
    assert_eq!(sent.body["channel"], "sms");
    assert_eq!(sent.body["phone"]["full_number"], SANDBOX);
    let request_id = sent.body["request_id"].as_str().unwrap();
    assert_eq!(sent.header("x-request-id"), Some(request_id));
    assert!(sent.body["expires_at"].as_str().unwrap().ends_with('Z'));

    let code = s.sandbox_code(SANDBOX);
    let checked = s.check(SANDBOX, &code).await;
    assert_eq!(checked.status, StatusCode::OK, "{}", checked.text);
    assert_eq!(checked.body["status"], "Approved");
    assert_eq!(checked.body["phone"]["status"], "Approved");
    assert_eq!(checked.body["phone"]["verification_method"], "sms");
    assert_eq!(checked.body["phone"]["country_code"], "US");
    assert!(checked.body["phone"]["verified_at"].is_string());
    assert_eq!(
        checked.header("x-request-id"),
        checked.body["request_id"].as_str()
    );
    s.running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_code_twice_declines_with_attempts_exceeded() {
    let s = sidecar("").await;
    assert_eq!(s.send(SANDBOX).await.status, StatusCode::OK);
    let bad = wrong(&s.sandbox_code(SANDBOX));
    let first = s.check(SANDBOX, &bad).await;
    assert_eq!(first.status, StatusCode::OK);
    assert_eq!(first.body["status"], "Failed");
    assert_eq!(first.body["attempts_left"], 1);
    let second = s.check(SANDBOX, &bad).await;
    assert_eq!(second.status, StatusCode::OK);
    assert_eq!(second.body["status"], "Declined");
    assert_eq!(second.body["reason"], "VERIFICATION_CODE_ATTEMPTS_EXCEEDED");
    assert_eq!(second.body["phone"]["status"], "Declined");
    let risks: Vec<&str> = second.body["phone"]["warnings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["risk"].as_str().unwrap())
        .collect();
    assert!(
        risks.contains(&"VERIFICATION_CODE_ATTEMPTS_EXCEEDED"),
        "{risks:?}"
    );
    // The right code cannot undo it.
    let right = s.check(SANDBOX, &s.sandbox_code(SANDBOX)).await;
    assert_eq!(right.body["status"], "Declined");
    s.running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalid_number_is_400_with_a_clear_message() {
    let s = sidecar("").await;
    for (number, expected) in [
        ("12345", "country calling code is missing"),
        ("+1 202 555", "too few digits"),
        ("", "empty"),
        ("hello", "does not look like a phone number"),
    ] {
        let a = s.send(number).await;
        assert_eq!(a.status, StatusCode::BAD_REQUEST, "{number}: {}", a.text);
        assert_eq!(a.code(), "INVALID_PHONE_NUMBER", "{number}");
        assert!(a.message().contains(expected), "{number}: {}", a.message());
        assert!(a.body["error"].get("retry_after").is_none());
    }
    let a = s
        .post(
            "/v3/phone/send/",
            json!({"phone_number": "600600600", "region": "XX"}),
        )
        .await;
    assert_eq!(
        (a.status, a.code()),
        (StatusCode::BAD_REQUEST, "INVALID_REGION")
    );
    // National format with a region is normalised; the answer carries E.164.
    let a = s
        .post(
            "/v3/phone/lookup/",
            json!({"phone_number": "600 600 600", "region": "ES"}),
        )
        .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text);
    assert_eq!(a.body["phone"]["full_number"], ES_MOBILE);
    s.running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_requests_are_400_naming_the_field_never_plain_text() {
    let s = sidecar("").await;
    let cases = [
        (
            json!({"phone_number": SANDBOX, "channel": "FAX"}),
            "`channel`",
        ),
        (json!({"phone_number": SANDBOX, "channel": 7}), "`channel`"),
        (json!({"phone_number": 12025550101u64}), "`phone_number`"),
        (
            json!({"phone_number": SANDBOX, "colour": "red"}),
            "unknown field `colour`",
        ),
        (
            json!({"phone_number": SANDBOX, "options": {"code_size": "six"}}),
            "`options.code_size`",
        ),
        (
            json!({"phone_number": SANDBOX, "options": {"code_size": 3}}),
            "options.code_size",
        ),
        (
            json!({"phone_number": SANDBOX, "options": {"channel": "SMS"}}),
            "unknown field `channel`",
        ),
        (
            json!({"phone_number": SANDBOX, "signals": {"ip": 1}}),
            "`signals.ip`",
        ),
        (json!({"channel": "SMS"}), "missing field `phone_number`"),
        (json!([SANDBOX]), "invalid request body"),
    ];
    for (body, expected) in cases {
        let a = s.post("/v3/phone/send/", body.clone()).await;
        assert_eq!(a.status, StatusCode::BAD_REQUEST, "{body}: {}", a.text);
        assert_eq!(a.code(), "INVALID_REQUEST", "{body}");
        assert!(a.message().contains(expected), "{body}: {}", a.message());
    }
    let a = s
        .post(
            "/v3/phone/check/",
            json!({"phone_number": SANDBOX, "code": 123456}),
        )
        .await;
    assert_eq!(
        (a.status, a.code()),
        (StatusCode::BAD_REQUEST, "INVALID_REQUEST")
    );
    assert!(a.message().contains("`code`"), "{}", a.message());

    let raw = [
        (
            Some("application/json"),
            "{\"phone_number\": ",
            "not valid JSON",
        ),
        (Some("application/json"), "", "empty"),
        (
            Some("text/plain"),
            "{\"phone_number\": \"+12025550101\"}",
            "content-type",
        ),
        (None, "{\"phone_number\": \"+12025550101\"}", "content-type"),
        (
            Some("application/x-www-form-urlencoded"),
            "phone_number=%2B12025550101",
            "content-type",
        ),
    ];
    for (ct, body, expected) in raw {
        let a = s.post_raw("/v3/phone/send/", ct, body).await;
        assert_eq!(
            a.status,
            StatusCode::BAD_REQUEST,
            "{ct:?} {body}: {}",
            a.text
        );
        assert_eq!(a.code(), "INVALID_REQUEST");
        assert!(a.message().contains(expected), "{}", a.message());
    }
    let huge = json!({"phone_number": SANDBOX, "vendor_data": "x".repeat(20_000)}).to_string();
    let a = s
        .post_raw("/v3/phone/send/", Some("application/json"), &huge)
        .await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST);
    assert!(
        a.message().contains("larger than 16384 bytes"),
        "{}",
        a.message()
    );
    let a = s
        .post(
            "/v3/phone/send/",
            json!({"phone_number": SANDBOX, "vendor_data": "x".repeat(300)}),
        )
        .await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST);
    assert!(a.message().contains("vendor_data"), "{}", a.message());
    s.running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_paths_and_methods_answer_json() {
    let s = sidecar("").await;
    let a = s
        .post("/v3/phone/send", json!({"phone_number": SANDBOX}))
        .await;
    assert_eq!((a.status, a.code()), (StatusCode::NOT_FOUND, "NOT_FOUND"));
    assert!(a.message().contains("`/v3/phone/send/`"), "{}", a.message());
    let a = s.get("/v3/phone/send/").await;
    assert_eq!(a.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(a.code(), "METHOD_NOT_ALLOWED");
    s.running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_keys_are_required_when_configured() {
    let key = "sk_test_0123456789abcdef";
    let s = sidecar(&format!(
        "[apps.shop]\nbrand = \"Shop\"\n[server]\napi_keys = [{{ app = \"shop\", sha256 = \"{}\" }}]\n",
        server::auth::hash_key(key)
    ))
    .await;
    let body = json!({ "phone_number": SANDBOX });
    for presented in [None, Some("sk_test_wrong"), Some("")] {
        let a = s
            .post_with_key("/v3/phone/send/", presented, body.clone())
            .await;
        assert_eq!(a.status, StatusCode::UNAUTHORIZED, "{presented:?}");
        assert_eq!(a.code(), "UNAUTHENTICATED");
        assert!(a.message().contains("x-api-key"));
    }
    // Authentication comes before the body is even read.
    let a = s
        .post_raw("/v3/phone/send/", Some("application/json"), "{not json")
        .await;
    assert_eq!(a.status, StatusCode::UNAUTHORIZED);
    let a = Sidecar::answer(s.client.get(s.url("/v3/blocklist/")).send().await.unwrap()).await;
    assert_eq!(a.status, StatusCode::UNAUTHORIZED);

    let a = s.post_with_key("/v3/phone/send/", Some(key), body).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text);
    let code = s.sandbox_code(SANDBOX);
    let a = s
        .post_with_key(
            "/v3/phone/check/",
            Some(key),
            json!({"phone_number": SANDBOX, "code": code}),
        )
        .await;
    assert_eq!(a.body["status"], "Approved");
    // Operations endpoints and callbacks need no key.
    assert_eq!(s.get("/healthz").await.status, StatusCode::OK);
    assert_eq!(s.get("/metrics").await.status, StatusCode::OK);
    assert_eq!(s.get("/openapi.json").await.status, StatusCode::OK);
    s.running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_the_rate_limit_is_429_with_retry_after() {
    let s = sidecar("[server]\nrate_per_key = 1\nburst_per_key = 2\n").await;
    let mut statuses = Vec::new();
    let mut limited = None;
    for _ in 0..4 {
        let a = s.get("/v3/blocklist/").await;
        statuses.push(a.status);
        if a.status == StatusCode::TOO_MANY_REQUESTS {
            limited = Some(a);
        }
    }
    assert_eq!(
        &statuses[..2],
        &[StatusCode::OK, StatusCode::OK],
        "{statuses:?}"
    );
    let a = limited.expect("the third request in a second is limited");
    assert_eq!(a.code(), "RATE_LIMITED");
    let retry: u64 = a.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=2).contains(&retry), "{retry}");
    assert_eq!(a.body["error"]["retry_after"], retry);
    s.running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_the_resend_limit_is_429_resend_limit_exceeded_with_retry_after() {
    let console = Arc::new(ConsoleProvider::new());
    let c = console.clone();
    let s = sidecar_with("[workflow.limits]\nmax_resends = 1\n", move |b| {
        b.provider(c)
    })
    .await;
    let first = s.send(ES_MOBILE).await;
    assert_eq!(first.status, StatusCode::OK, "{}", first.text);
    assert_eq!(first.body["status"], "Success");
    assert_eq!(first.body["resends_left"], 1);
    let code_1 = console.last_code(ES_MOBILE).unwrap().expose().to_owned();
    let second = s.send(ES_MOBILE).await;
    assert_eq!(second.body["status"], "Retry", "{}", second.text);
    assert_eq!(second.body["resends_left"], 0);
    let third = s.send(ES_MOBILE).await;
    assert_eq!(
        third.status,
        StatusCode::TOO_MANY_REQUESTS,
        "{}",
        third.text
    );
    assert_eq!(third.code(), "RESEND_LIMIT_EXCEEDED");
    let retry: u64 = third.header("retry-after").unwrap().parse().unwrap();
    assert!(retry > 3600 && retry <= 86_400, "{retry}");
    assert_eq!(third.body["error"]["retry_after"], retry);
    assert_eq!(console.sent(), 2);
    // The first code still checks (resends keep earlier codes valid).
    let checked = s.check(ES_MOBILE, &code_1).await;
    assert_eq!(checked.body["status"], "Approved", "{}", checked.text);
    s.running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_provider_outage_is_502_phone_provider_unavailable() {
    let routes = r#"
currency = "USD"
[default]
preference = ["sms", "whatsapp"]
routes = [
  { channel = "sms", provider = "down_a", price = 0.01 },
  { channel = "whatsapp", provider = "down_b", price = 0.02 },
]
"#;
    let a = Scripted::new("down_a", Step::Fail(FailureClass::Transient, "503"));
    let b = Scripted::new("down_b", Step::Fail(FailureClass::Config, "401"));
    let (pa, pb) = (a.clone(), b.clone());
    let s = sidecar_with("[routing]\nretry_backoff_ms = 10\n", move |builder| {
        builder
            .routes(RouteTable::from_toml(routes).unwrap())
            .provider(pa)
            .provider(pb)
    })
    .await;
    let before = s
        .metric("switchboard_sends_total{status=\"phone_provider_unavailable\"}")
        .await;
    let r = s.send(ES_MOBILE).await;
    assert_eq!(r.status, StatusCode::BAD_GATEWAY, "{}", r.text);
    assert_eq!(r.code(), "phone_provider_unavailable");
    assert!(!r.message().contains("invalid"), "{}", r.message());
    assert!(a.call_count() >= 1 && b.call_count() >= 1);
    let after = s
        .metric("switchboard_sends_total{status=\"phone_provider_unavailable\"}")
        .await;
    assert_eq!(after, before + 1.0);
    // Nothing was charged: once the providers are back, the full budget is there.
    s.running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_outage_is_503_unavailable() {
    let s = sidecar(
        "[store]\nbackend = \"redis\"\nurl = \"redis://127.0.0.1:1\"\ncommand_timeout_ms = 200\n",
    )
    .await;
    let started = Instant::now();
    let r = s.send(SANDBOX).await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE, "{}", r.text);
    assert_eq!(r.code(), "UNAVAILABLE");
    assert!(
        !r.message().contains("127.0.0.1"),
        "no internals: {}",
        r.message()
    );
    let r = s.check(SANDBOX, "123456").await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::SERVICE_UNAVAILABLE, "UNAVAILABLE")
    );
    let r = s.get("/v3/blocklist/").await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(started.elapsed() < Duration::from_secs(10));
    assert!(s.metric("switchboard_store_errors_total").await >= 2.0);
    // Health is about the server; it still answers.
    assert_eq!(s.get("/healthz").await.status, StatusCode::OK);
    s.running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_blocklist_endpoints_add_list_and_remove() {
    let s = sidecar("").await;
    let added = s
        .post("/v3/blocklist/", json!({"phone_number": "+34 600 600 600"}))
        .await;
    assert_eq!(added.status, StatusCode::CREATED, "{}", added.text);
    assert_eq!(added.body, json!({"phone_number": ES_MOBILE}));
    let again = s
        .post("/v3/blocklist/", json!({"phone_number": ES_MOBILE}))
        .await;
    assert_eq!(again.status, StatusCode::OK);
    let list = s.get("/v3/blocklist/").await;
    assert_eq!(list.body, json!({"phone_numbers": [ES_MOBILE]}));

    let refused = s.send(ES_MOBILE).await;
    assert_eq!(refused.status, StatusCode::OK);
    assert_eq!(refused.body["status"], "Blocked");
    assert_eq!(refused.body["reason"], "PHONE_NUMBER_IN_BLOCKLIST");
    let looked = s
        .post("/v3/phone/lookup/", json!({"phone_number": ES_MOBILE}))
        .await;
    assert!(
        looked.text.contains("PHONE_NUMBER_IN_BLOCKLIST"),
        "{}",
        looked.text
    );

    let bad = s
        .post("/v3/blocklist/", json!({"phone_number": "12"}))
        .await;
    assert_eq!(
        (bad.status, bad.code()),
        (StatusCode::BAD_REQUEST, "INVALID_PHONE_NUMBER")
    );

    let removed = s.delete("/v3/blocklist/%2B34600600600").await;
    assert_eq!(removed.status, StatusCode::OK, "{}", removed.text);
    assert_eq!(removed.body, json!({"phone_number": ES_MOBILE}));
    let gone = s.delete(&format!("/v3/blocklist/{ES_MOBILE}")).await;
    assert_eq!(
        (gone.status, gone.code()),
        (StatusCode::NOT_FOUND, "NOT_FOUND")
    );
    assert_eq!(
        s.get("/v3/blocklist/").await.body,
        json!({"phone_numbers": []})
    );
    assert_eq!(s.send(ES_MOBILE).await.body["status"], "Success");
    s.running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lookup_reports_the_line_without_sending() {
    let s = sidecar("").await;
    let a = s
        .post("/v3/phone/lookup/", json!({"phone_number": ES_MOBILE}))
        .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text);
    let phone = &a.body["phone"];
    assert_eq!(phone["status"], "Not Finished");
    assert_eq!(phone["phone_number_prefix"], "+34");
    assert_eq!(phone["phone_number"], "600600600");
    assert_eq!(phone["country_name"], "Spain");
    assert_eq!(phone["carrier"]["type"], "mobile");
    assert_eq!(phone["verification_method"], Value::Null);
    assert_eq!(a.header("x-request-id"), a.body["request_id"].as_str());
    assert_eq!(
        s.running
            .state
            .engine
            .sandbox()
            .unwrap()
            .messages_to(ES_MOBILE)
            .len(),
        0
    );
    s.running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lookup_batch_answers_every_number_in_order_with_its_own_errors() {
    let s = sidecar("").await;
    let a = s
        .post(
            "/v3/phone/lookup/batch/",
            json!({"phone_numbers": [ES_MOBILE, "not a number", "600 600 601", "+14155552671"], "region": "ES"}),
        )
        .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text);
    assert_eq!(a.header("x-request-id"), a.body["request_id"].as_str());
    let results = a.body["results"].as_array().expect("results");
    assert_eq!(results.len(), 4, "{}", a.text);
    assert_eq!(results[0]["phone"]["full_number"], ES_MOBILE);
    assert_eq!(results[0]["phone"]["carrier"]["type"], "mobile");
    assert_eq!(results[1]["error"]["code"], "INVALID_PHONE_NUMBER");
    assert!(results[1].get("phone").is_none());
    assert_eq!(results[2]["phone"]["full_number"], "+34600600601");
    assert_eq!(results[3]["phone"]["country_code"], "US");
    // Nothing was sent.
    let sandbox = s.running.state.engine.sandbox().unwrap();
    assert_eq!(sandbox.messages_to(ES_MOBILE).len(), 0);
    s.running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lookup_batch_takes_up_to_1000_numbers_and_refuses_more_as_batch_too_large() {
    let s = sidecar("").await;
    let numbers: Vec<String> = (0..1000).map(|i| format!("+34600{i:06}")).collect();
    let a = s
        .post(
            "/v3/phone/lookup/batch/",
            json!({ "phone_numbers": numbers }),
        )
        .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text);
    let results = a.body["results"].as_array().expect("results");
    assert_eq!(results.len(), 1000);
    for (number, result) in numbers.iter().zip(results) {
        assert_eq!(&result["phone"]["full_number"], number, "{result}");
    }

    let mut too_many = numbers.clone();
    too_many.push(ES_MOBILE.to_owned());
    let a = s
        .post(
            "/v3/phone/lookup/batch/",
            json!({ "phone_numbers": too_many }),
        )
        .await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST, "{}", a.text);
    assert_eq!(a.code(), "BATCH_TOO_LARGE");
    assert!(a.message().contains("1000"), "{}", a.message());

    let a = s
        .post("/v3/phone/lookup/batch/", json!({ "phone_numbers": [] }))
        .await;
    assert_eq!(
        (a.status, a.code()),
        (StatusCode::BAD_REQUEST, "INVALID_REQUEST")
    );
    let a = s
        .post(
            "/v3/phone/lookup/batch/",
            json!({ "phone_numbers": ["600600600"], "region": "XX" }),
        )
        .await;
    assert_eq!(
        (a.status, a.code()),
        (StatusCode::BAD_REQUEST, "INVALID_REGION")
    );
    s.running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_sends_checks_and_latency() {
    let s = sidecar("").await;
    let sends = "switchboard_sends_total{status=\"Success\"}";
    let checks = "switchboard_checks_total{status=\"Approved\"}";
    let failed = "switchboard_checks_total{status=\"Failed\"}";
    let refused = "switchboard_sends_total{status=\"INVALID_PHONE_NUMBER\"}";
    let (s0, c0, f0, r0) = (
        s.metric(sends).await,
        s.metric(checks).await,
        s.metric(failed).await,
        s.metric(refused).await,
    );
    s.send(SANDBOX).await;
    let code = s.sandbox_code(SANDBOX);
    s.check(SANDBOX, &wrong(&code)).await;
    s.check(SANDBOX, &code).await;
    s.send("12").await;
    assert_eq!(s.metric(sends).await, s0 + 1.0);
    assert_eq!(s.metric(checks).await, c0 + 1.0);
    assert_eq!(s.metric(failed).await, f0 + 1.0);
    assert_eq!(s.metric(refused).await, r0 + 1.0);
    let text = s.get("/metrics").await;
    assert!(
        text.header("content-type")
            .unwrap()
            .starts_with("text/plain"),
        "{:?}",
        text.headers
    );
    assert!(
        text.text
            .contains("switchboard_request_duration_seconds_count{api=\"http\",method=\"send\"} 2"),
        "{}",
        text.text
    );
    assert!(
        text.text
            .contains("switchboard_delivery_attempts_total{channel=\"sms\",outcome=\"delivered\",provider=\"sandbox\"} 1"),
        "{}",
        text.text
    );
    s.running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_reports_serving() {
    let s = sidecar("").await;
    let a = s.get("/healthz").await;
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(a.body, json!({"status": "SERVING"}));
    s.running.shutdown().await;
}

/// A provider that takes a while to deliver.
struct Slow;

impl Provider for Slow {
    fn name(&self) -> &str {
        "slow"
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities::channels(&Channel::ALL)
    }

    async fn send(&self, _message: &OutboundMessage) -> Result<Delivery, DeliveryError> {
        tokio::time::sleep(Duration::from_millis(500)).await;
        Ok(Delivery {
            provider_message_id: "slow-1".into(),
        })
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_drains_in_flight_requests_then_stops_listening() {
    let routes = r#"
currency = "USD"
[default]
preference = ["sms"]
routes = [{ channel = "sms", provider = "slow", price = 0.01 }]
"#;
    let s = sidecar_with("", |b| {
        b.routes(RouteTable::from_toml(routes).unwrap())
            .provider(Arc::new(Slow))
    })
    .await;
    let (client, url) = (s.client.clone(), s.url("/v3/phone/send/"));
    let in_flight = tokio::spawn(async move {
        client
            .post(url)
            .json(&json!({"phone_number": ES_MOBILE}))
            .send()
            .await
            .map(|r| r.status())
    });
    tokio::time::sleep(Duration::from_millis(150)).await;
    let base = s.base.clone();
    s.running.shutdown().await;
    assert_eq!(in_flight.await.unwrap().unwrap(), StatusCode::OK);
    let after = reqwest::Client::new()
        .get(format!("{base}/healthz"))
        .send()
        .await;
    assert!(after.is_err(), "the server still answers after shutdown");
}

// --- provider callbacks ---------------------------------------------------------------------

const TWILIO_TOKEN: &str = "twilio-test-auth-token-0123";
const META_VERIFY_TOKEN: &str = "meta-verify-token-0123";

/// Providers configured for callbacks (their APIs unreachable: no test sends through them),
/// and every event POSTed to `hook`.
fn callback_config(hook: &str, public_url: &str) -> String {
    format!(
        r#"
[providers.twilio]
account_sid = "AC0123456789abcdef0123456789abcdef"
auth_token = "{TWILIO_TOKEN}"
from = "+15005550006"
base_url = "http://127.0.0.1:1"

[providers.meta_whatsapp]
access_token = "meta-access-token"
phone_number_id = "1234567890"
verify_token = "{META_VERIFY_TOKEN}"
app_secret = "meta-app-secret-0123"
base_url = "http://127.0.0.1:1"

[webhooks]
destinations = [{{ url = "{hook}", secret = "webhook-secret-0123456789" }}]
initial_backoff_ms = 10
max_backoff_ms = 50

[server]
public_url = "{public_url}"
"#
    )
}

/// The events the hook received so far, by name.
pub async fn received_events(server: &MockServer) -> Vec<Value> {
    server
        .received_requests()
        .await
        .unwrap_or_default()
        .iter()
        .filter_map(|r| serde_json::from_slice::<Value>(&r.body).ok())
        .collect()
}

/// Waits (bounded) until the hook received an event named `name`.
pub async fn wait_for_event(server: &MockServer, name: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(e) = received_events(server)
            .await
            .into_iter()
            .find(|e| e["event"] == name)
        {
            return e;
        }
        assert!(Instant::now() < deadline, "no {name} event arrived");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn twilio_params() -> Vec<(String, String)> {
    [
        ("MessageSid", "SM0123456789abcdef0123456789abcdef"),
        ("MessageStatus", "delivered"),
        ("AccountSid", "AC0123456789abcdef0123456789abcdef"),
        ("To", "+12025550101"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect()
}

async fn post_twilio(s: &Sidecar, signature: &str) -> Answer {
    let form: String = twilio_params()
        .iter()
        .map(|(k, v)| format!("{k}={}", v.replace('+', "%2B")))
        .collect::<Vec<_>>()
        .join("&");
    Sidecar::answer(
        s.client
            .post(s.url("/callbacks/twilio"))
            .header("content-type", "application/x-www-form-urlencoded")
            .header("x-twilio-signature", signature)
            .body(form)
            .send()
            .await
            .unwrap(),
    )
    .await
}

pub async fn hook() -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/hook"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&server)
        .await;
    server
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twilio_callbacks_are_verified_against_the_url_twilio_called() {
    let receiver = hook().await;
    let s = sidecar(&callback_config(&format!("{}/hook", receiver.uri()), "")).await;
    let url = s.url("/callbacks/twilio");

    // Forged: signed with another token. Refused, and nothing recorded.
    let forged =
        switchboard::providers::twilio::compute_signature("not-the-token", &url, &twilio_params());
    let a = post_twilio(&s, &forged).await;
    assert_eq!(a.status, StatusCode::UNAUTHORIZED, "{}", a.text);
    assert_eq!(a.code(), "BAD_SIGNATURE");
    let a = post_twilio(&s, "").await;
    assert_eq!(a.code(), "BAD_SIGNATURE");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        received_events(&receiver)
            .await
            .iter()
            .all(|e| e["event"] != "delivery.status"),
        "a refused callback must record nothing"
    );

    // Signed over the URL as called (scheme, Host, path) and the sorted parameters.
    let signature =
        switchboard::providers::twilio::compute_signature(TWILIO_TOKEN, &url, &twilio_params());
    let a = post_twilio(&s, &signature).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text);
    assert_eq!(a.body, json!({"receipts": 1}));
    let event = wait_for_event(&receiver, "delivery.status").await;
    assert_eq!(event["provider"], "twilio");
    assert_eq!(
        event["provider_message_id"],
        "SM0123456789abcdef0123456789abcdef"
    );
    assert_eq!(event["delivery_status"], "delivered");
    s.running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn behind_a_proxy_the_public_url_is_what_twilio_signed() {
    let receiver = hook().await;
    let public = "https://otp.example.com";
    let s = sidecar(&callback_config(
        &format!("{}/hook", receiver.uri()),
        public,
    ))
    .await;
    let local = switchboard::providers::twilio::compute_signature(
        TWILIO_TOKEN,
        &s.url("/callbacks/twilio"),
        &twilio_params(),
    );
    assert_eq!(
        post_twilio(&s, &local).await.status,
        StatusCode::UNAUTHORIZED
    );
    let signature = switchboard::providers::twilio::compute_signature(
        TWILIO_TOKEN,
        &format!("{public}/callbacks/twilio"),
        &twilio_params(),
    );
    let a = post_twilio(&s, &signature).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text);
    wait_for_event(&receiver, "delivery.status").await;
    s.running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn meta_subscription_handshake_answers_the_challenge() {
    let receiver = hook().await;
    let s = sidecar(&callback_config(&format!("{}/hook", receiver.uri()), "")).await;
    let a = s
        .get(&format!(
            "/callbacks/meta_whatsapp?hub.mode=subscribe&hub.verify_token={META_VERIFY_TOKEN}&hub.challenge=1158201444"
        ))
        .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text);
    assert_eq!(a.text, "1158201444");
    assert!(a.header("content-type").unwrap().starts_with("text/plain"));
    let a = s
        .get("/callbacks/meta_whatsapp?hub.mode=subscribe&hub.verify_token=wrong&hub.challenge=1")
        .await;
    assert_eq!(
        (a.status, a.code()),
        (StatusCode::UNAUTHORIZED, "BAD_SIGNATURE")
    );
    // A Meta delivery callback without its signature.
    let a = s
        .post_raw(
            "/callbacks/meta_whatsapp",
            Some("application/json"),
            "{\"entry\": []}",
        )
        .await;
    assert_eq!(a.status, StatusCode::UNAUTHORIZED, "{}", a.text);
    s.running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn callbacks_of_unknown_providers_are_404() {
    let s = sidecar("").await;
    for p in ["/callbacks/nosuch", "/callbacks/Twilio", "/callbacks/a%2Fb"] {
        let a = s.post_raw(p, Some("application/json"), "{}").await;
        assert_eq!(
            (a.status, a.code()),
            (StatusCode::NOT_FOUND, "NOT_FOUND"),
            "{p}"
        );
    }
    // Twilio is not configured here: the console stand-in takes no callbacks.
    let a = s.get("/callbacks/twilio?hub.mode=subscribe").await;
    assert_eq!(a.status, StatusCode::NOT_FOUND);
    s.running.shutdown().await;
}

// --- the OpenAPI document -------------------------------------------------------------------

/// Every route the server answers, as `(method, path)`.
const ROUTES: &[(&str, &str)] = &[
    ("post", "/v3/phone/send/"),
    ("post", "/v3/phone/check/"),
    ("post", "/v3/phone/lookup/"),
    ("get", "/v3/phone/verifications/{verification_id}/"),
    ("patch", "/v3/phone/verifications/{verification_id}/"),
    ("delete", "/v3/phone/numbers/{phone_number}/"),
    ("post", "/v3/phone/lookup/batch/"),
    ("post", "/v3/blocklist/"),
    ("get", "/v3/blocklist/"),
    ("delete", "/v3/blocklist/{phone_number}"),
    ("get", "/v3/fraud/blocks/"),
    ("delete", "/v3/fraud/blocks/{key}/"),
    ("get", "/v3/fraud/safe-list/"),
    ("post", "/v3/fraud/safe-list/"),
    ("delete", "/v3/fraud/safe-list/"),
    ("get", "/v3/fraud/geo/"),
    ("put", "/v3/fraud/geo/"),
    ("get", "/v3/routes/stats/"),
    ("get", "/v3/workflows/"),
    ("post", "/v3/workflows/"),
    ("get", "/v3/workflows/{workflow_id}/"),
    ("patch", "/v3/workflows/{workflow_id}/"),
    ("delete", "/v3/workflows/{workflow_id}/"),
    ("post", "/v3/session/"),
    ("get", "/v3/session/{session_id}/decision/"),
    ("get", "/v3/webhook/destinations/"),
    ("post", "/v3/webhook/destinations/"),
    ("delete", "/v3/webhook/destinations/{destination_id}/"),
    ("get", "/session/{token}/"),
    ("post", "/session/{token}/send"),
    ("post", "/session/{token}/resend"),
    ("post", "/session/{token}/check"),
    ("get", "/session/{token}/validate"),
    ("get", "/hosted/static/{file}"),
    ("get", "/hosted/static/brand/{file}"),
    ("post", "/callbacks/{provider}"),
    ("get", "/callbacks/{provider}"),
    ("get", "/metrics"),
    ("get", "/healthz"),
    ("get", "/openapi.json"),
];

fn resolve<'a>(doc: &'a Value, schema: &'a Value) -> &'a Value {
    match schema.get("$ref").and_then(Value::as_str) {
        Some(r) => {
            let name = r.strip_prefix("#/components/schemas/").expect("local ref");
            let target = &doc["components"]["schemas"][name];
            assert!(!target.is_null(), "dangling $ref {r}");
            resolve(doc, target)
        }
        None => schema,
    }
}

/// Checks `value` against `schema` (the subset utoipa emits): types, enums, required and
/// declared properties, items, oneOf/allOf. Any key not declared is an error: the document
/// must describe everything the endpoint returns.
fn conforms(doc: &Value, schema: &Value, value: &Value, at: &str) -> Result<(), String> {
    let schema = resolve(doc, schema);
    if let Some(any) = schema
        .get("oneOf")
        .or(schema.get("anyOf"))
        .and_then(Value::as_array)
    {
        return if any.iter().any(|s| conforms(doc, s, value, at).is_ok()) {
            Ok(())
        } else {
            Err(format!("{at}: {value} matches no alternative"))
        };
    }
    if let Some(all) = schema.get("allOf").and_then(Value::as_array) {
        for s in all {
            conforms(doc, s, value, at)?;
        }
    }
    if let Some(values) = schema.get("enum").and_then(Value::as_array)
        && !values.contains(value)
    {
        return Err(format!("{at}: {value} not in {values:?}"));
    }
    let types: Vec<&str> = match schema.get("type") {
        Some(Value::String(t)) => vec![t.as_str()],
        Some(Value::Array(ts)) => ts.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    };
    let type_of = match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_u64() || n.is_i64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    };
    let type_ok = types.is_empty()
        || types.contains(&type_of)
        || (type_of == "integer" && types.contains(&"number"));
    if !type_ok {
        return Err(format!("{at}: {type_of} where {types:?} expected"));
    }
    if let Value::Object(map) = value {
        let props = schema.get("properties").and_then(Value::as_object);
        for req in schema
            .get("required")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let req = req.as_str().unwrap();
            if !map.contains_key(req) {
                return Err(format!("{at}: required `{req}` missing"));
            }
        }
        if let Some(props) = props {
            for (k, v) in map {
                let s = props
                    .get(k)
                    .ok_or_else(|| format!("{at}: `{k}` is not documented"))?;
                conforms(doc, s, v, &format!("{at}.{k}"))?;
            }
        }
    }
    if let (Value::Array(items), Some(item)) = (value, schema.get("items")) {
        for (i, v) in items.iter().enumerate() {
            conforms(doc, item, v, &format!("{at}[{i}]"))?;
        }
    }
    Ok(())
}

fn response_schema<'a>(doc: &'a Value, method: &str, path: &str, status: u16) -> &'a Value {
    let op = &doc["paths"][path][method];
    let schema = &op["responses"][status.to_string()]["content"]["application/json"]["schema"];
    assert!(
        !schema.is_null(),
        "{method} {path} documents no JSON {status}"
    );
    schema
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_openapi_document_lists_every_route_and_describes_real_answers() {
    let s = sidecar("").await;
    let a = s.get("/openapi.json").await;
    assert_eq!(a.status, StatusCode::OK);
    assert!(
        a.header("content-type")
            .unwrap()
            .starts_with("application/json")
    );
    let doc = a.body;
    assert!(
        doc["openapi"].as_str().unwrap().starts_with("3."),
        "{}",
        doc["openapi"]
    );
    assert_eq!(doc["info"]["title"], "switchboard");
    assert!(doc["info"]["version"].is_string());

    let documented: BTreeSet<(String, String)> = doc["paths"]
        .as_object()
        .unwrap()
        .iter()
        .flat_map(|(p, item)| {
            item.as_object()
                .unwrap()
                .keys()
                .filter(|m| ["get", "post", "put", "delete", "patch"].contains(&m.as_str()))
                .map(move |m| (m.clone(), p.clone()))
        })
        .collect();
    let routed: BTreeSet<(String, String)> = ROUTES
        .iter()
        .map(|(m, p)| (m.to_string(), p.to_string()))
        .collect();
    assert_eq!(documented, routed);

    // Every operation has an id, responses, and only resolvable references.
    for (m, p) in ROUTES {
        let op = &doc["paths"][*p][*m];
        assert!(op["operationId"].is_string(), "{m} {p}");
        assert!(!op["responses"].as_object().unwrap().is_empty(), "{m} {p}");
        // The server answers at the documented path (no 404 from the router).
        let concrete = p
            .replace("{phone_number}", "%2B34600600600")
            .replace("{verification_id}", "00000000-0000-4000-8000-000000000000")
            .replace("{key}", "prefix%3A%2B3460060")
            .replace("{provider}", "twilio");
        let status = s
            .client
            .request(m.to_uppercase().parse().unwrap(), s.url(&concrete))
            .send()
            .await
            .unwrap()
            .status();
        assert!(
            status != StatusCode::METHOD_NOT_ALLOWED,
            "{m} {p}: {status}"
        );
    }
    fn refs(v: &Value, out: &mut Vec<String>) {
        match v {
            Value::Object(m) => {
                if let Some(Value::String(r)) = m.get("$ref") {
                    out.push(r.clone());
                }
                m.values().for_each(|v| refs(v, out));
            }
            Value::Array(a) => a.iter().for_each(|v| refs(v, out)),
            _ => {}
        }
    }
    let mut all = Vec::new();
    refs(&doc, &mut all);
    assert!(!all.is_empty());
    for r in &all {
        resolve(&doc, &json!({ "$ref": r }));
    }
    // This sidecar has no API key, so its document asks for none (the keyed document:
    // server_hardening.rs).
    assert!(doc["components"]["securitySchemes"].is_null());
    assert!(doc["paths"]["/v3/phone/send/"]["post"]["security"].is_null());
    let error_codes = &doc["components"]["schemas"]["ErrorDetail"]["properties"]["code"]["enum"];
    for code in [
        "INVALID_PHONE_NUMBER",
        "UNAUTHENTICATED",
        "RESEND_LIMIT_EXCEEDED",
        "phone_provider_unavailable",
        "UNAVAILABLE",
    ] {
        assert!(
            error_codes.as_array().unwrap().contains(&json!(code)),
            "{code}"
        );
    }

    // Real answers conform to what the document says.
    let check_all = |method: &str, path: &str, answer: &Answer| {
        let schema = response_schema(&doc, method, path, answer.status.as_u16());
        conforms(&doc, schema, &answer.body, "$")
            .unwrap_or_else(|e| panic!("{method} {path} {}: {e}\n{}", answer.status, answer.text));
    };
    let sent = s.send(SANDBOX).await;
    check_all("post", "/v3/phone/send/", &sent);
    // The checker is not vacuous: an undocumented key, a missing required one or a value
    // outside an enum fails it.
    let schema = response_schema(&doc, "post", "/v3/phone/send/", 200);
    for broken in [
        {
            let mut b = sent.body.clone();
            b["bogus"] = json!(1);
            b
        },
        {
            let mut b = sent.body.clone();
            b.as_object_mut().unwrap().remove("request_id");
            b
        },
        {
            let mut b = sent.body.clone();
            b["phone"]["carrier"]["type"] = json!("satellite");
            b
        },
        {
            let mut b = sent.body.clone();
            b["resends_left"] = json!("two");
            b
        },
    ] {
        assert!(conforms(&doc, schema, &broken, "$").is_err(), "{broken}");
    }
    let code = s.sandbox_code(SANDBOX);
    check_all(
        "post",
        "/v3/phone/check/",
        &s.check(SANDBOX, &wrong(&code)).await,
    );
    check_all("post", "/v3/phone/check/", &s.check(SANDBOX, &code).await);
    check_all("post", "/v3/phone/check/", &s.check(ES_MOBILE, &code).await);
    check_all(
        "post",
        "/v3/phone/lookup/",
        &s.post("/v3/phone/lookup/", json!({"phone_number": SANDBOX}))
            .await,
    );
    let id = sent.body["verification_id"].as_str().unwrap();
    let path = format!("/v3/phone/verifications/{id}/");
    check_all(
        "get",
        "/v3/phone/verifications/{verification_id}/",
        &s.get(&path).await,
    );
    check_all(
        "patch",
        "/v3/phone/verifications/{verification_id}/",
        &s.patch(&path, json!({"status": "Approved"})).await,
    );
    check_all(
        "delete",
        "/v3/phone/numbers/{phone_number}/",
        &s.delete("/v3/phone/numbers/%2B34600600600/").await,
    );
    check_all(
        "post",
        "/v3/phone/lookup/batch/",
        &s.post(
            "/v3/phone/lookup/batch/",
            json!({"phone_numbers": [SANDBOX, "12"]}),
        )
        .await,
    );
    check_all(
        "post",
        "/v3/phone/lookup/batch/",
        &s.post(
            "/v3/phone/lookup/batch/",
            json!({"phone_numbers": vec![SANDBOX; 1001]}),
        )
        .await,
    );
    check_all("post", "/v3/phone/send/", &s.send("12").await);
    check_all("post", "/v3/phone/send/", &s.send("+12025550190").await); // high risk: Blocked
    check_all("post", "/v3/phone/send/", &s.send("+12025550199").await); // undeliverable
    check_all(
        "post",
        "/v3/blocklist/",
        &s.post("/v3/blocklist/", json!({"phone_number": ES_MOBILE}))
            .await,
    );
    check_all("get", "/v3/blocklist/", &s.get("/v3/blocklist/").await);
    check_all(
        "delete",
        "/v3/blocklist/{phone_number}",
        &s.delete("/v3/blocklist/%2B34600600600").await,
    );
    check_all(
        "delete",
        "/v3/blocklist/{phone_number}",
        &s.delete("/v3/blocklist/%2B34600600600").await,
    );
    check_all("get", "/healthz", &s.get("/healthz").await);
    s.running.shutdown().await;
}

/// WhatsApp through Meta, then SMS through Twilio, both emulated by wiremock.
const META_THEN_TWILIO: &str = r#"
currency = "USD"
[default]
preference = ["whatsapp", "sms"]
routes = [
  { channel = "whatsapp", provider = "meta_whatsapp", price = 0.01 },
  { channel = "sms", provider = "twilio", price = 0.05 },
]
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signed_whatsapp_failure_callback_reroutes_to_sms_and_tells_the_webhook() {
    let receiver = hook().await;
    let meta = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v23.0/1234567890/messages"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "messaging_product": "whatsapp",
            "contacts": [{ "input": "34600600600", "wa_id": "34600600600" }],
            "messages": [{ "id": "wamid.HBgLMzQ2MDA2MDA2MDAVAgARGBIxMjM0" }],
        })))
        .expect(1)
        .mount(&meta)
        .await;
    let twilio = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(
            "/2010-04-01/Accounts/AC0123456789abcdef0123456789abcdef/Messages.json",
        ))
        .respond_with(ResponseTemplate::new(201).set_body_json(json!({
            "sid": "SM1f0e8ae6ade43cb3c0ce4525424e4099", "status": "queued",
        })))
        .expect(1)
        .mount(&twilio)
        .await;
    let config = callback_config(&format!("{}/hook", receiver.uri()), "")
        .replacen("http://127.0.0.1:1", &twilio.uri(), 1)
        .replacen("http://127.0.0.1:1", &meta.uri(), 1);
    let store = switchboard::store::Store::default();
    let s = sidecar_with(&config, |b| {
        b.routes(RouteTable::from_toml(META_THEN_TWILIO).unwrap())
            .store(store.clone())
    })
    .await;

    let sent = s.send(ES_MOBILE).await;
    assert_eq!(sent.status, StatusCode::OK, "{}", sent.text);
    assert_eq!(sent.body["channel"], "whatsapp");
    crate::providers::wait_for_delivery_record(
        &store,
        "meta_whatsapp",
        "wamid.HBgLMzQ2MDA2MDA2MDAVAgARGBIxMjM0",
    )
    .await;

    // Meta reports, on its signed webhook, that the number is not on WhatsApp.
    let body = serde_json::to_vec(&json!({
        "object": "whatsapp_business_account",
        "entry": [{ "id": "102290129340398", "changes": [{ "field": "messages", "value": {
            "messaging_product": "whatsapp",
            "metadata": { "display_phone_number": "15550783881", "phone_number_id": "1234567890" },
            "statuses": [{
                "id": "wamid.HBgLMzQ2MDA2MDA2MDAVAgARGBIxMjM0", "status": "failed",
                "timestamp": "1767225600", "recipient_id": "34600600600",
                "errors": [{ "code": 131026, "title": "Message undeliverable" }],
            }],
        }}]}],
    }))
    .unwrap();
    let signature =
        switchboard::providers::meta_whatsapp::compute_signature("meta-app-secret-0123", &body);
    let a = Sidecar::answer(
        s.client
            .post(s.url("/callbacks/meta_whatsapp"))
            .header("content-type", "application/json")
            .header("x-hub-signature-256", signature)
            .body(body)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text);

    let resent = wait_for_event(&receiver, "verification.resent").await;
    assert_eq!(resent["phone_number"], ES_MOBILE);
    assert_eq!(resent["channel"], "sms");
    assert_eq!(resent["reason"], "131026");
    let status = wait_for_event(&receiver, "delivery.status").await;
    assert_eq!(status["app"], "default");
    assert_eq!(status["phone_number"], ES_MOBILE);
    assert_eq!(status["delivery_status"], "failed");

    // The SMS carries a new code, and it verifies.
    let requests = twilio.received_requests().await.unwrap();
    let form = String::from_utf8(requests[0].body.clone()).unwrap();
    let code = form
        .split('&')
        .find_map(|kv| kv.strip_prefix("Body="))
        .and_then(|b| b.rsplit('+').next())
        .unwrap()
        .to_owned();
    let checked = s.check(ES_MOBILE, &code).await;
    assert_eq!(checked.body["status"], "Approved", "{}", checked.text);
    let rerouted = r#"switchboard_receipts_total{effect="rerouted",provider="meta_whatsapp"}"#;
    let deadline = Instant::now() + Duration::from_secs(10);
    while s.metric(rerouted).await < 1.0 {
        assert!(
            Instant::now() < deadline,
            "the late fallback was not counted"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    s.running.shutdown().await;
}
