//! The sidecar under hostile traffic: the per-IP limit in front of authentication and
//! signatures, slow and malformed connections, and the answers every client gets
//! (`x-request-id`, the JSON error envelope) whatever went wrong.

use std::time::Instant;

use reqwest::StatusCode;
use serde_json::json;
use switchboard::server::auth::hash_key;
use switchboard::server::grpc::pb::{self, switchboard_client::SwitchboardClient};
use tonic::Code;

use crate::http::{Answer, Sidecar, sidecar};

const KEY: &str = "sk_test_0123456789abcdef";

/// API keys required; the per-IP limit small (20 at once, then 1 a second).
fn keyed_with_small_ip_limit(extra: &str) -> String {
    format!(
        "[server]\napi_keys = [{{ app = \"default\", sha256 = \"{}\" }}]\nrate_per_ip = 1\nburst_per_ip = 20\n{extra}",
        hash_key(KEY)
    )
}

/// Counts the statuses of `answers`: (401s, 429s).
fn tally(answers: &[Answer]) -> (usize, usize) {
    let count = |s| answers.iter().filter(|a| a.status == s).count();
    (
        count(StatusCode::UNAUTHORIZED),
        count(StatusCode::TOO_MANY_REQUESTS),
    )
}

/// At most the burst, plus one a second for the time the flood took, got past the limiter.
fn assert_limited(answers: &[Answer], started: Instant, what: &str) {
    let (refused, limited) = tally(answers);
    let refill = started.elapsed().as_secs() as usize + 1;
    assert_eq!(refused + limited, answers.len(), "{what}: only 401 or 429");
    assert!(
        (20..=20 + refill).contains(&refused),
        "{what}: {refused} reached authentication, burst 20"
    );
    assert!(limited >= 300 - 20 - refill, "{what}: {limited} limited");
    let last = answers.last().unwrap();
    assert_eq!(last.code(), "RATE_LIMITED", "{what}");
    assert!(last.header("retry-after").is_some(), "{what}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_api_keys_from_one_ip_are_rate_limited_before_authentication() {
    let s = sidecar(&keyed_with_small_ip_limit("")).await;
    let started = Instant::now();
    let mut answers = Vec::new();
    for i in 0..300 {
        let key = format!("sk_wrong_{i:04}_0123456789");
        answers.push(
            s.post_with_key(
                "/v3/phone/send/",
                Some(&key),
                json!({"phone_number": "+12025550101"}),
            )
            .await,
        );
    }
    assert_limited(&answers, started, "wrong keys");
    s.running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_signature_callbacks_from_one_ip_are_rate_limited_before_the_signature_check() {
    let s = sidecar(&keyed_with_small_ip_limit(
        "[providers.twilio]\naccount_sid = \"AC0123456789abcdef0123456789abcdef\"\n\
         auth_token = \"twilio-test-auth-token-0123\"\nfrom = \"+15005550006\"\n\
         base_url = \"http://127.0.0.1:1\"\n",
    ))
    .await;
    // 256 KiB of form body under a signature that does not match.
    let body = format!(
        "MessageSid=SM1&MessageStatus=delivered&Pad={}",
        "a".repeat(256 * 1024 - 60)
    );
    let post = |body: String| {
        s.client
            .post(s.url("/callbacks/twilio"))
            .header("content-type", "application/x-www-form-urlencoded")
            .header("x-twilio-signature", "bm90LWEtc2lnbmF0dXJl")
            .body(body)
            .send()
    };
    let started = Instant::now();
    let (mut refused, mut limited, mut cut_off) = (0usize, 0usize, 0usize);
    for _ in 0..300 {
        match post(body.clone()).await {
            Ok(response) => match Sidecar::answer(response).await.code() {
                "BAD_SIGNATURE" => refused += 1,
                "RATE_LIMITED" => limited += 1,
                other => panic!("unexpected answer {other}"),
            },
            // Refused before its body was read: the server answered 429 and closed while the
            // upload was still going, so the client may see the reset instead of the answer.
            Err(e) if refused >= 20 => {
                assert!(e.is_request(), "{e}");
                cut_off += 1;
            }
            Err(e) => panic!("a callback within the burst failed: {e}"),
        }
    }
    let refill = started.elapsed().as_secs() as usize + 1;
    assert!(
        (20..=20 + refill).contains(&refused),
        "{refused} reached the signature check, burst 20"
    );
    assert_eq!(refused + limited + cut_off, 300);
    let last = Sidecar::answer(post("MessageSid=SM1".into()).await.unwrap()).await;
    assert_eq!(last.code(), "RATE_LIMITED", "{}", last.text);
    assert!(last.header("retry-after").is_some());
    s.running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_api_keys_over_grpc_from_one_ip_are_rate_limited_before_authentication() {
    let s = sidecar(&keyed_with_small_ip_limit("")).await;
    let channel = tonic::transport::Channel::from_shared(format!("http://{}", s.running.grpc_addr))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut client = SwitchboardClient::new(channel);
    let started = Instant::now();
    let (mut refused, mut limited) = (0usize, 0usize);
    for i in 0..300 {
        let mut request = tonic::Request::new(pb::ListBlocklistRequest {});
        request.metadata_mut().insert(
            "x-api-key",
            format!("sk_wrong_{i:04}_0123456789").parse().unwrap(),
        );
        match client.list_blocklist(request).await.unwrap_err().code() {
            Code::Unauthenticated => refused += 1,
            Code::ResourceExhausted => limited += 1,
            other => panic!("unexpected {other:?}"),
        }
    }
    let refill = started.elapsed().as_secs() as usize + 1;
    assert!(
        (20..=20 + refill).contains(&refused),
        "{refused} authenticated"
    );
    assert!(limited >= 300 - 20 - refill, "{limited} limited");
    drop(client);
    s.running.shutdown().await;
}
