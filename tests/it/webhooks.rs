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
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/webhook_verify.py");
    let mut child = Command::new("python3")
        .arg(script)
        .arg(signature)
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
