//! Outbound webhooks through the sidecar: events on send and check, signed with
//! `X-Signature-V2`, retried when the receiver fails, and verified by an independent
//! implementation (`tests/webhook_verify.py`, Python standard library only).

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};
use switchboard::server::webhooks;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::http::{SANDBOX, sidecar};

const SECRET: &str = "whsec-test-0123456789abcdef";

fn config(receiver: &MockServer) -> String {
    format!(
        "[webhooks]\ndestinations = [{{ url = \"{}/hook\", secret = \"{SECRET}\" }}]\n\
         max_attempts = 4\ninitial_backoff_ms = 20\nmax_backoff_ms = 100\ntimeout_ms = 2000\n",
        receiver.uri()
    )
}

/// One delivery as the receiver saw it.
#[derive(Clone, Debug)]
struct Delivery {
    body: Vec<u8>,
    signature: String,
    timestamp: String,
    signature_v3: String,
    event_header: String,
    json: Value,
}

async fn deliveries(receiver: &MockServer) -> Vec<Delivery> {
    receiver
        .received_requests()
        .await
        .unwrap_or_default()
        .into_iter()
        .map(|r| {
            let header = |n: &str| {
                r.headers
                    .get(n)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default()
                    .to_owned()
            };
            Delivery {
                signature: header("x-signature-v2"),
                timestamp: header("x-timestamp"),
                signature_v3: header("x-signature-v3"),
                event_header: header("x-switchboard-event"),
                json: serde_json::from_slice(&r.body).unwrap_or(Value::Null),
                body: r.body,
            }
        })
        .collect()
}

/// Waits (bounded) until `done` holds for the deliveries so far.
async fn wait_until(
    receiver: &MockServer,
    what: &str,
    done: impl Fn(&[Delivery]) -> bool,
) -> Vec<Delivery> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let got = deliveries(receiver).await;
        if done(&got) {
            return got;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}: {got:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn has(event: &str) -> impl Fn(&[Delivery]) -> bool + '_ {
    move |d| d.iter().any(|d| d.json["event"] == event)
}

async fn receiver(first_status: Option<u16>) -> MockServer {
    let server = MockServer::start().await;
    if let Some(status) = first_status {
        Mock::given(method("POST"))
            .and(path("/hook"))
            .respond_with(ResponseTemplate::new(status))
            .up_to_n_times(1)
            .with_priority(1)
            .mount(&server)
            .await;
    }
    Mock::given(method("POST"))
        .and(path("/hook"))
        .respond_with(ResponseTemplate::new(200))
        .with_priority(2)
        .mount(&server)
        .await;
    server
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn send_and_check_emit_signed_started_and_approved_events() {
    let hook = receiver(None).await;
    let s = sidecar(&config(&hook)).await;
    let sent = s.send(SANDBOX).await;
    assert_eq!(sent.status, StatusCode::OK);
    let code = s.sandbox_code(SANDBOX);
    let checked = s.check(SANDBOX, &code).await;
    assert_eq!(checked.body["status"], "Approved");

    let got = wait_until(&hook, "started and approved", |d| {
        has("verification.started")(d) && has("verification.approved")(d)
    })
    .await;
    for d in &got {
        assert!(
            webhooks::verify(SECRET, &d.body, &d.signature),
            "signature of {}",
            d.json
        );
        assert!(!webhooks::verify(
            "another-secret-0123",
            &d.body,
            &d.signature
        ));
        // The body is the signed canonical string itself.
        assert_eq!(
            webhooks::canonical_json(&d.json).as_bytes(),
            &d.body[..],
            "body is canonical"
        );
        assert_eq!(d.event_header, d.json["event"].as_str().unwrap());
        assert!(
            d.json.get("code").is_none(),
            "an event never carries the code"
        );
        assert_eq!(d.json["phone_number"], SANDBOX);
        assert_eq!(d.json["app"], "default");
    }
    let started = got
        .iter()
        .find(|d| d.json["event"] == "verification.started")
        .unwrap();
    assert_eq!(started.json["request_id"], sent.body["request_id"]);
    assert_eq!(started.json["status"], "Not Finished");
    assert_eq!(started.json["channel"], "sms");
    let approved = got
        .iter()
        .find(|d| d.json["event"] == "verification.approved")
        .unwrap();
    assert_eq!(approved.json["request_id"], checked.body["request_id"]);
    assert_eq!(approved.json["status"], "Approved");
    s.running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_that_fails_once_gets_the_same_event_again() {
    let hook = receiver(Some(500)).await;
    let s = sidecar(&config(&hook)).await;
    assert_eq!(s.send(SANDBOX).await.status, StatusCode::OK);
    let got = wait_until(&hook, "a retried delivery", |d| d.len() >= 2).await;
    assert_eq!(got.len(), 2, "one failure, one retry: {got:?}");
    assert_eq!(got[0].body, got[1].body, "the retry carries the same event");
    assert_eq!(got[0].signature, got[1].signature);
    assert_eq!(got[0].json["event"], "verification.started");
    let retried = "switchboard_webhook_deliveries_total{outcome=\"retried\"}";
    let delivered = "switchboard_webhook_deliveries_total{outcome=\"delivered\"}";
    let deadline = Instant::now() + Duration::from_secs(5);
    while s.metric(delivered).await < 1.0 {
        assert!(Instant::now() < deadline, "delivery never counted");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(s.metric(retried).await, 1.0);
    s.running.shutdown().await;
}

/// Runs the independent Python verifier; true when it says OK.
fn python_verifies(body: &[u8], signature: &str) -> bool {
    python_verifier(body, &[signature])
}

/// The Python verifier on `X-Signature-V3` and `X-Timestamp`.
fn python_verifies_timestamped(body: &[u8], signature: &str, timestamp: &str) -> bool {
    python_verifier(body, &[signature, timestamp])
}

fn python_verifier(body: &[u8], args: &[&str]) -> bool {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/webhook_verify.py");
    let mut child = Command::new("python3")
        .arg(script)
        .args(args)
        .env("WEBHOOK_SECRET", SECRET)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3 runs (the verifier needs Python 3, standard library only)");
    child.stdin.take().unwrap().write_all(body).unwrap();
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    assert!(
        stdout == "OK" || stdout.starts_with("FAIL"),
        "verifier broke: {stdout} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.status.success(), stdout == "OK");
    stdout == "OK"
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_independent_python_verifier_accepts_our_signatures_and_refuses_tampering() {
    let hook = receiver(None).await;
    let s = sidecar(&config(&hook)).await;
    s.send(SANDBOX).await;
    let code = s.sandbox_code(SANDBOX);
    s.check(SANDBOX, &code).await;
    let got = wait_until(&hook, "approved", has("verification.approved")).await;
    for d in &got {
        assert!(python_verifies(&d.body, &d.signature), "{}", d.json);
    }
    let approved = got
        .iter()
        .find(|d| d.json["event"] == "verification.approved")
        .unwrap();
    // Tampered: the status, then one byte of the id; and a forged signature.
    let body = String::from_utf8(approved.body.clone()).unwrap();
    let tampered = body.replace("\"Approved\"", "\"Declined\"");
    assert_ne!(tampered, body);
    assert!(!python_verifies(tampered.as_bytes(), &approved.signature));
    let mut flipped = approved.body.clone();
    let at = body.find("request_id").unwrap() + 15;
    flipped[at] = if flipped[at] == b'a' { b'b' } else { b'a' };
    assert!(!python_verifies(&flipped, &approved.signature));
    let forged = webhooks::sign("not-the-secret-0123", &body);
    assert!(!python_verifies(&approved.body, &forged));
    s.running.shutdown().await;
}

#[test]
fn the_python_verifier_agrees_on_sorting_floats_and_unicode() {
    // Our signature over the canonical form; the verifier gets a pretty, unsorted rendering of
    // the same payload and must derive the same string.
    let payload = json!({
        "z": {"b": [1.50, 2.0, 0.25, 1e-7, 1.5e21, 100.0, 1e15, 1e16, 1e-5, 2.5e-5, 5e-324, 1.7976931348623157e308], "a": null},
        "price": 0.0100,
        "é": "naïve \"quoted\" \\ line\nbreak \u{1f} ☎",
        "count": 3,
        "ok": true,
        "A": [],
    });
    let canonical = webhooks::canonical_json(&payload);
    assert!(
        canonical.starts_with("{\"A\":[],\"count\":3,\"ok\":true,\"price\":0.01,"),
        "{canonical}"
    );
    let signature = webhooks::sign(SECRET, &canonical);
    let pretty = serde_json::to_string_pretty(&payload).unwrap();
    assert!(
        python_verifies(pretty.as_bytes(), &signature),
        "{canonical}"
    );
    assert!(python_verifies(canonical.as_bytes(), &signature));
    let changed = pretty.replace("0.25", "0.26");
    assert!(!python_verifies(changed.as_bytes(), &signature));
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deliveries_carry_a_timestamp_and_a_signature_over_timestamp_and_body() {
    let hook = receiver(None).await;
    let s = sidecar(&config(&hook)).await;
    s.send(SANDBOX).await;
    let got = wait_until(&hook, "started", has("verification.started")).await;
    let d = &got[0];
    let ts: u64 = d.timestamp.parse().expect("X-Timestamp is unix seconds");
    assert!(ts.abs_diff(unix_now()) <= 60, "{ts}");
    let now = unix_now();
    assert!(webhooks::verify_timestamped(
        SECRET,
        &d.body,
        &d.timestamp,
        &d.signature_v3,
        now
    ));
    // The seed-compatible body signature is unchanged beside it.
    assert!(webhooks::verify(SECRET, &d.body, &d.signature));
    // The timestamp is covered: moving it breaks the signature; an old one is refused.
    let moved = (ts - 1).to_string();
    assert!(!webhooks::verify_timestamped(
        SECRET,
        &d.body,
        &moved,
        &d.signature_v3,
        now
    ));
    assert!(!webhooks::verify_timestamped(
        SECRET,
        &d.body,
        &d.timestamp,
        &d.signature_v3,
        ts + 301
    ));
    // The independent verifier agrees, and refuses a replay signed 10 minutes ago.
    assert!(python_verifies_timestamped(
        &d.body,
        &d.signature_v3,
        &d.timestamp
    ));
    assert!(!python_verifies_timestamped(
        &d.body,
        &d.signature_v3,
        &moved
    ));
    let old = unix_now() - 600;
    let body = String::from_utf8(d.body.clone()).unwrap();
    let replayed = webhooks::sign_timestamped(SECRET, old, &body);
    assert!(!python_verifies_timestamped(
        &d.body,
        &replayed,
        &old.to_string()
    ));
    s.running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_destination_bound_to_an_application_receives_only_that_applications_events() {
    let shop_hook = receiver(None).await;
    let all_hook = receiver(None).await;
    let shop_key = "sk_shop_0123456789abcdef";
    let default_key = "sk_default_0123456789abcdef";
    let s = sidecar(&format!(
        "[apps.shop]\nbrand = \"Shop\"\n[server]\napi_keys = [\
         {{ app = \"shop\", sha256 = \"{}\" }}, {{ app = \"default\", sha256 = \"{}\" }}]\n\
         [webhooks]\ndestinations = [\
         {{ url = \"{}/hook\", secret = \"{SECRET}\", app = \"shop\" }}, \
         {{ url = \"{}/hook\", secret = \"{SECRET}\" }}]\n\
         initial_backoff_ms = 20\nmax_backoff_ms = 100\n",
        switchboard::server::auth::hash_key(shop_key),
        switchboard::server::auth::hash_key(default_key),
        shop_hook.uri(),
        all_hook.uri(),
    ))
    .await;
    let send = |key: &'static str, number: &'static str| {
        let s = &s;
        async move {
            s.post_with_key(
                "/v3/phone/send/",
                Some(key),
                json!({"phone_number": number}),
            )
            .await
        }
    };
    assert_eq!(
        send(default_key, "+12025550102").await.status,
        StatusCode::OK
    );
    assert_eq!(send(shop_key, "+12025550103").await.status, StatusCode::OK);
    // The unbound destination gets both; the bound one only the shop's.
    let all = wait_until(&all_hook, "both events", |d| d.len() >= 2).await;
    let apps: std::collections::BTreeSet<_> = all
        .iter()
        .map(|d| d.json["app"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(apps.into_iter().collect::<Vec<_>>(), ["default", "shop"]);
    let shop = wait_until(&shop_hook, "the shop's event", |d| !d.is_empty()).await;
    // Deliveries are concurrent: the default app's, had it been sent, would be in by now.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let shop = deliveries(&shop_hook)
        .await
        .into_iter()
        .chain(shop)
        .collect::<Vec<_>>();
    assert!(shop.iter().all(|d| d.json["app"] == "shop"), "{shop:?}");
    assert!(
        shop.iter()
            .any(|d| d.json["phone_number"] == "+12025550103")
    );
    s.running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deliveries_in_flight_are_bounded_when_a_receiver_hangs() {
    let hanging = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/hook"))
        .respond_with(ResponseTemplate::new(200).set_delay(Duration::from_secs(60)))
        .mount(&hanging)
        .await;
    let s = sidecar(&format!(
        "[webhooks]\ndestinations = [{{ url = \"{}/hook\", secret = \"{SECRET}\" }}]\n\
         timeout_ms = 60000\nmax_in_flight = 2\nqueue_capacity = 2\n",
        hanging.uri()
    ))
    .await;
    // Ten events (one per first send), into 2 slots and a queue of 2.
    for i in 0..10 {
        let number = format!("+120255501{i:02}");
        assert_eq!(s.send(&number).await.status, StatusCode::OK);
    }
    let dropped = "switchboard_webhook_deliveries_total{outcome=\"dropped\"}";
    let deadline = Instant::now() + Duration::from_secs(10);
    while s.metric(dropped).await < 1.0 {
        assert!(Instant::now() < deadline, "nothing was dropped");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let seen = hanging.received_requests().await.unwrap_or_default().len();
    assert!(
        seen <= 2,
        "{seen} deliveries in flight at once, max_in_flight = 2"
    );
    // Slots + the one the worker holds + the queue: the rest was dropped.
    assert!(s.metric(dropped).await >= 5.0);
    s.running.shutdown().await;
}
