//! Verifications as records, black-box over HTTP (and gRPC): stable ids, fetch, review
//! decisions, idempotent sends, number deletion, and the reference API's fields.

use std::collections::BTreeSet;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::http::{Answer, SANDBOX, Sidecar, hook, sidecar, wait_for_event};
use crate::redis_server::{shared_server, unique_prefix};

impl Sidecar {
    pub async fn patch(&self, path: &str, body: Value) -> Answer {
        Self::answer(
            self.client
                .patch(self.url(path))
                .json(&body)
                .send()
                .await
                .unwrap(),
        )
        .await
    }

    async fn send_with(&self, body: Value) -> Answer {
        self.post("/v3/phone/send/", body).await
    }

    async fn send_keyed(&self, key: &str, body: &Value) -> Answer {
        Self::answer(
            self.client
                .post(self.url("/v3/phone/send/"))
                .header("idempotency-key", key)
                .json(body)
                .send()
                .await
                .unwrap(),
        )
        .await
    }
}

fn events(a: &Answer) -> Vec<(String, String)> {
    a.body["lifecycle"]
        .as_array()
        .unwrap_or_else(|| panic!("no lifecycle: {}", a.text))
        .iter()
        .map(|e| {
            (
                e["event"].as_str().unwrap().to_owned(),
                e["status"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

fn verification_path(id: &str) -> String {
    format!("/v3/phone/verifications/{id}/")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_duplicate_goes_to_review_and_a_reviewers_approval_shows_in_its_lifecycle() {
    let s = sidecar("").await;
    let meta = json!({"order": 7, "tags": ["a"]});

    // send (u1) -> check -> Approved, the same verification_id throughout.
    let sent = s
        .send_with(json!({"phone_number": SANDBOX, "vendor_data": "u1", "metadata": meta}))
        .await;
    assert_eq!(sent.body["status"], "Success", "{}", sent.text);
    let first = sent.body["verification_id"].as_str().unwrap().to_owned();
    assert!(uuid::Uuid::try_parse(&first).is_ok(), "{first}");
    assert_eq!(sent.body["vendor_data"], "u1");
    assert_eq!(sent.body["metadata"], meta);
    let checked = s.check(SANDBOX, &s.sandbox_code(SANDBOX)).await;
    assert_eq!(checked.body["status"], "Approved", "{}", checked.text);
    assert_eq!(checked.body["verification_id"], first.as_str());
    assert_eq!(checked.body["vendor_data"], "u1");
    assert_eq!(checked.body["metadata"], meta);

    // The same number for another user: a new verification; the check (without vendor_data,
    // as the reference API's check has none) goes to review as a duplicate.
    let sent = s
        .send_with(json!({"phone_number": SANDBOX, "vendor_data": "u2"}))
        .await;
    let second = sent.body["verification_id"].as_str().unwrap().to_owned();
    assert_ne!(second, first);
    let checked = s.check(SANDBOX, &s.sandbox_code(SANDBOX)).await;
    assert_eq!(checked.body["status"], "In Review", "{}", checked.text);
    assert_eq!(checked.body["verification_id"], second.as_str());
    assert!(
        checked.body["phone"]["warnings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|w| w["risk"] == "DUPLICATED_PHONE_NUMBER"),
        "{}",
        checked.text
    );
    let fetched = s.get(&verification_path(&second)).await;
    assert_eq!(fetched.body["status"], "In Review", "{}", fetched.text);

    // The reviewer approves; GET shows it, with the decision in the lifecycle.
    let decided = s
        .patch(
            &verification_path(&second),
            json!({"status": "Approved", "reason": "same household"}),
        )
        .await;
    assert_eq!(decided.status, StatusCode::OK, "{}", decided.text);
    assert_eq!(decided.body["status"], "Approved");
    let fetched = s.get(&verification_path(&second)).await;
    assert_eq!(fetched.status, StatusCode::OK, "{}", fetched.text);
    assert_eq!(fetched.body["status"], "Approved");
    assert_eq!(fetched.body["phone"]["status"], "Approved");
    assert!(fetched.body["phone"]["verified_at"].is_string());
    assert_eq!(fetched.body["vendor_data"], "u2");
    assert_eq!(fetched.body["phone_number"], SANDBOX);
    assert_eq!(
        events(&fetched),
        [
            ("sent".to_owned(), String::new()),
            ("check".to_owned(), "In Review".to_owned()),
            ("review".to_owned(), "Approved".to_owned()),
        ]
    );
    let review = &fetched.body["lifecycle"][2];
    assert_eq!(review["reason"], "same household");
    assert!(review["at"].as_str().unwrap().ends_with('Z'));
    let sent_entry = &fetched.body["lifecycle"][0];
    assert_eq!(sent_entry["channel"], "sms");
    assert!(sent_entry["provider"].is_string() && sent_entry["price"].is_number());

    // The first verification keeps its own record.
    let fetched = s.get(&verification_path(&first)).await;
    assert_eq!(fetched.body["status"], "Approved");
    assert_eq!(fetched.body["metadata"], meta);
    assert_eq!(
        events(&fetched),
        [
            ("sent".to_owned(), String::new()),
            ("check".to_owned(), "Approved".to_owned()),
        ]
    );

    // Decisions on anything not In Review are refused, naming the status.
    for id in [&first, &second] {
        let refused = s
            .patch(&verification_path(id), json!({"status": "Declined"}))
            .await;
        assert_eq!(refused.status, StatusCode::CONFLICT, "{}", refused.text);
        assert_eq!(refused.code(), "VERIFICATION_NOT_IN_REVIEW");
        assert!(refused.message().contains("Approved"), "{}", refused.text);
    }
    let unknown = s
        .get(&verification_path(&uuid::Uuid::new_v4().to_string()))
        .await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
    assert_eq!(unknown.code(), "NOT_FOUND");
    let bad = s.get(&verification_path("not-an-id")).await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert!(bad.message().contains("verification_id"), "{}", bad.text);
    let bad = s
        .patch(&verification_path(&second), json!({"status": "Maybe"}))
        .await;
    assert_eq!(bad.code(), "INVALID_REQUEST", "{}", bad.text);
    s.running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_review_decision_emits_its_webhook_with_the_verification_id_and_metadata() {
    let receiver = hook().await;
    let s = sidecar(&format!(
        "[webhooks]\ndestinations = [{{ url = \"{}/hook\", secret = \"webhook-secret-0123456789\" }}]\ninitial_backoff_ms = 10\nmax_backoff_ms = 50\n",
        receiver.uri()
    ))
    .await;
    s.send_with(json!({"phone_number": SANDBOX, "vendor_data": "u1"}))
        .await;
    s.check(SANDBOX, &s.sandbox_code(SANDBOX)).await;
    let sent = s
        .send_with(json!({"phone_number": SANDBOX, "vendor_data": "u2", "metadata": {"k": "v"}}))
        .await;
    let id = sent.body["verification_id"].as_str().unwrap().to_owned();
    let started = wait_for_event(&receiver, "verification.started").await;
    assert!(started["verification_id"].is_string());
    s.check(SANDBOX, &s.sandbox_code(SANDBOX)).await;
    let review = wait_for_event(&receiver, "verification.review_started").await;
    assert_eq!(review["verification_id"], id.as_str());
    assert_eq!(review["vendor_data"], "u2");
    let decided = s
        .patch(
            &verification_path(&id),
            json!({"status": "Declined", "reason": "not the owner"}),
        )
        .await;
    assert_eq!(decided.body["status"], "Declined", "{}", decided.text);
    let declined = wait_for_event(&receiver, "verification.declined").await;
    assert_eq!(declined["verification_id"], id.as_str());
    assert_eq!(declined["vendor_data"], "u2");
    assert_eq!(declined["metadata"], json!({"k": "v"}));
    assert_eq!(declined["status"], "Declined");
    assert_eq!(declined["reason"], "not the owner");
    s.running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_application_sees_only_its_own_verifications() {
    let (shop, blog) = ("sk_test_shop_0123456789", "sk_test_blog_0123456789");
    let hash = switchboard::server::auth::hash_key;
    let s = sidecar(&format!(
        "[apps.shop]\nbrand = \"Shop\"\n[apps.blog]\nbrand = \"Blog\"\n[server]\napi_keys = [{{ app = \"shop\", sha256 = \"{}\" }}, {{ app = \"blog\", sha256 = \"{}\" }}]\n",
        hash(shop),
        hash(blog)
    ))
    .await;
    let sent = s
        .post_with_key(
            "/v3/phone/send/",
            Some(shop),
            json!({"phone_number": SANDBOX}),
        )
        .await;
    let id = sent.body["verification_id"].as_str().unwrap().to_owned();
    let get = |key: &'static str| {
        let req = s
            .client
            .get(s.url(&verification_path(&id)))
            .header("x-api-key", key);
        async move { Sidecar::answer(req.send().await.unwrap()).await }
    };
    assert_eq!(get(shop).await.status, StatusCode::OK);
    let other = get(blog).await;
    assert_eq!(other.status, StatusCode::NOT_FOUND, "{}", other.text);
    assert_eq!(other.code(), "NOT_FOUND");
    s.running.shutdown().await;
}

async fn concurrent_sends_with_one_key_send_one_message(s: &Sidecar) {
    let body = json!({"phone_number": SANDBOX, "vendor_data": "u1"});
    let (a, b) = tokio::join!(
        s.send_keyed("order-42-attempt", &body),
        s.send_keyed("order-42-attempt", &body)
    );
    assert_eq!(a.status, StatusCode::OK, "{}", a.text);
    assert_eq!(a.text, b.text, "both callers get the first answer");
    let engine = &s.running.state.engine;
    let messages = || engine.sandbox().unwrap().messages_to(SANDBOX).len();
    assert_eq!(messages(), 1);
    // The same body again, later: the stored answer, nothing sent.
    let c = s.send_keyed("order-42-attempt", &body).await;
    assert_eq!(c.text, a.text);
    // Key order and whitespace do not make another request.
    let reordered = json!({"vendor_data": "u1", "phone_number": SANDBOX});
    assert_eq!(
        s.send_keyed("order-42-attempt", &reordered).await.text,
        a.text
    );
    assert_eq!(messages(), 1);
    // Another body under the same key is refused.
    let other = s
        .send_keyed(
            "order-42-attempt",
            &json!({"phone_number": SANDBOX, "vendor_data": "u2"}),
        )
        .await;
    assert_eq!(
        other.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        other.text
    );
    assert_eq!(other.code(), "IDEMPOTENCY_KEY_REUSED");
    // Another key sends again (a resend of the same verification).
    let d = s.send_keyed("order-42-retry", &body).await;
    assert_eq!(d.body["status"], "Retry", "{}", d.text);
    assert_eq!(d.body["verification_id"], a.body["verification_id"]);
    assert_eq!(messages(), 2);
    let bad = s.send_keyed("has space", &body).await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert!(bad.message().contains("Idempotency-Key"), "{}", bad.text);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_concurrent_sends_with_one_idempotency_key_send_one_message() {
    let s = sidecar("").await;
    concurrent_sends_with_one_key_send_one_message(&s).await;
    s.running.shutdown().await;
}

fn redis_config(prefix: &str) -> String {
    redis_config_at(&shared_server().url(), prefix)
}

fn redis_config_at(url: &str, prefix: &str) -> String {
    format!("[store]\nbackend = \"redis\"\nurl = \"{url}\"\nkey_prefix = \"{prefix}\"\n")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_idempotent_sends_and_review_decisions_work_across_slots() {
    let url = crate::redis_server::shared_cluster().url();
    let s = sidecar(&redis_config_at(&url, &unique_prefix())).await;
    concurrent_sends_with_one_key_send_one_message(&s).await;
    let code = s.sandbox_code(SANDBOX);
    assert_eq!(s.check(SANDBOX, &code).await.body["status"], "Approved");
    let sent = s
        .send_with(json!({"phone_number": SANDBOX, "vendor_data": "u2"}))
        .await;
    let id = sent.body["verification_id"].as_str().unwrap().to_owned();
    let checked = s.check(SANDBOX, &s.sandbox_code(SANDBOX)).await;
    assert_eq!(checked.body["status"], "In Review", "{}", checked.text);
    let decided = s
        .patch(&verification_path(&id), json!({"status": "Approved"}))
        .await;
    assert_eq!(decided.body["status"], "Approved", "{}", decided.text);
    let deleted = s.delete("/v3/phone/numbers/%2B12025550101/").await;
    assert_eq!(
        deleted.body["removed"]["verifications"], 2,
        "{}",
        deleted.text
    );
    assert_eq!(deleted.body["removed"]["idempotency_records"], 2);
    assert_eq!(
        s.get(&verification_path(&id)).await.status,
        StatusCode::NOT_FOUND
    );
    s.running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_two_concurrent_sends_with_one_idempotency_key_send_one_message() {
    let s = sidecar(&redis_config(&unique_prefix())).await;
    concurrent_sends_with_one_key_send_one_message(&s).await;
    s.running.shutdown().await;
}

/// Every key under `prefix` and everything it holds, as text.
async fn dump(prefix: &str) -> Vec<(String, String)> {
    let client = redis::Client::open(shared_server().url()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let mut keys: Vec<String> = Vec::new();
    let mut cursor = 0u64;
    loop {
        let (next, batch): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(format!("{prefix}*"))
            .arg("COUNT")
            .arg(1000)
            .query_async(&mut conn)
            .await
            .unwrap();
        keys.extend(batch);
        if next == 0 {
            break;
        }
        cursor = next;
    }
    let mut out = Vec::new();
    for key in keys {
        let kind: String = redis::cmd("TYPE")
            .arg(&key)
            .query_async(&mut conn)
            .await
            .unwrap();
        let content: Vec<String> = match kind.as_str() {
            "string" => vec![
                redis::cmd("GET")
                    .arg(&key)
                    .query_async(&mut conn)
                    .await
                    .unwrap(),
            ],
            "hash" => redis::cmd("HGETALL")
                .arg(&key)
                .query_async(&mut conn)
                .await
                .unwrap(),
            "list" => redis::cmd("LRANGE")
                .arg(&key)
                .arg(0)
                .arg(-1)
                .query_async(&mut conn)
                .await
                .unwrap(),
            "set" => redis::cmd("SMEMBERS")
                .arg(&key)
                .query_async(&mut conn)
                .await
                .unwrap(),
            "zset" => redis::cmd("ZRANGE")
                .arg(&key)
                .arg(0)
                .arg(-1)
                .query_async(&mut conn)
                .await
                .unwrap(),
            _ => vec![format!("<{kind}>")],
        };
        out.push((key, content.join("\u{1}")));
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_deleting_a_number_leaves_no_key_or_value_naming_it() {
    let prefix = unique_prefix();
    let s = sidecar(&redis_config(&prefix)).await;
    const OTHER: &str = "+12025550102";
    // Everything a number can leave behind: verifications, an idempotent answer, a check, a
    // resend window, a verified-for index, a blocklist entry; and another number's state.
    for number in [SANDBOX, OTHER] {
        let body = json!({"phone_number": number, "vendor_data": "u1", "metadata": {"n": 1}});
        let a = s.send_keyed(&format!("k-{number}"), &body).await;
        assert_eq!(a.body["status"], "Success", "{}", a.text);
        s.check(number, &s.sandbox_code(number)).await;
        s.send_with(json!({"phone_number": number, "vendor_data": "u2"}))
            .await;
    }
    let blocked = s
        .post("/v3/blocklist/", json!({"phone_number": SANDBOX}))
        .await;
    assert_eq!(blocked.status, StatusCode::CREATED);
    let digits = SANDBOX.trim_start_matches('+');
    let naming = |dump: &[(String, String)]| -> BTreeSet<String> {
        dump.iter()
            .filter(|(k, v)| k.contains(digits) || v.contains(digits))
            .map(|(k, _)| k.clone())
            .collect()
    };
    let before = dump(&prefix).await;
    assert!(naming(&before).len() >= 5, "{:?}", naming(&before));

    let deleted = s.delete("/v3/phone/numbers/%2B12025550101/").await;
    assert_eq!(deleted.status, StatusCode::OK, "{}", deleted.text);
    assert_eq!(deleted.body["phone_number"], SANDBOX);
    assert_eq!(
        deleted.body["removed"],
        json!({
            "verifications": 2,
            "idempotency_records": 1,
            "delivery_references": 0,
            "limit_state": true,
            "blocklist_entry": true,
        })
    );
    let after = dump(&prefix).await;
    assert!(naming(&after).is_empty(), "left: {:?}", naming(&after));
    // The other number is untouched.
    let other_digits = OTHER.trim_start_matches('+');
    let others = |d: &[(String, String)]| {
        d.iter()
            .filter(|(k, v)| k.contains(other_digits) || v.contains(other_digits))
            .count()
    };
    assert_eq!(others(&after), others(&before));
    assert!(others(&after) >= 4);
    // Nothing is left to fetch; a second deletion removes nothing.
    let again = s.delete("/v3/phone/numbers/%2B12025550101/").await;
    assert_eq!(again.body["removed"]["verifications"], 0);
    assert_eq!(again.body["removed"]["limit_state"], false);
    let check = s.check(SANDBOX, "000000").await;
    assert_eq!(check.body["status"], "Expired or Not Found");
    s.running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_a_number_in_memory_forgets_its_records() {
    let s = sidecar("").await;
    let sent = s.send_keyed("k1", &json!({"phone_number": SANDBOX})).await;
    let id = sent.body["verification_id"].as_str().unwrap().to_owned();
    let deleted = s.delete("/v3/phone/numbers/%2B12025550101/").await;
    assert_eq!(
        deleted.body["removed"]["verifications"], 1,
        "{}",
        deleted.text
    );
    assert_eq!(deleted.body["removed"]["idempotency_records"], 1);
    assert_eq!(deleted.body["removed"]["limit_state"], true);
    assert_eq!(
        s.get(&verification_path(&id)).await.status,
        StatusCode::NOT_FOUND
    );
    // The key is free again: a new send goes out.
    let again = s.send_keyed("k1", &json!({"phone_number": SANDBOX})).await;
    assert_ne!(again.body["verification_id"], sent.body["verification_id"]);
    let bad = s.delete("/v3/phone/numbers/not-a-number/").await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert_eq!(bad.code(), "INVALID_PHONE_NUMBER");
    s.running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_of_the_reference_api_are_understood() {
    let s = sidecar("").await;
    // VOICE is CALL.
    let sent = s
        .send_with(json!({
            "phone_number": SANDBOX,
            "channel": "VOICE",
            "vendor_data": "u1",
            "options": {"code_size": 6, "locale": "en", "preferred_channel": "whatsapp"},
            "signals": {"ip": "203.0.113.7", "device_id": "d1", "device_platform": "android",
                        "device_model": "Pixel", "os_version": "14", "app_version": "1.0",
                        "user_agent": "ua"},
        }))
        .await;
    assert_eq!(sent.status, StatusCode::OK, "{}", sent.text);
    assert_eq!(sent.body["channel"], "call");
    // The check's optional fields are accepted.
    let checked = s
        .post(
            "/v3/phone/check/",
            json!({
                "phone_number": SANDBOX,
                "code": s.sandbox_code(SANDBOX),
                "duplicated_phone_number_action": "DECLINE",
                "disposable_number_action": "NO_ACTION",
                "voip_number_action": "REVIEW",
                "enable_enrichment": false,
            }),
        )
        .await;
    assert_eq!(checked.status, StatusCode::OK, "{}", checked.text);
    assert_eq!(checked.body["status"], "Approved");
    // Other unknown fields stay errors.
    let refused = s
        .post(
            "/v3/phone/check/",
            json!({"phone_number": SANDBOX, "code": "123456", "bogus": 1}),
        )
        .await;
    assert_eq!(refused.status, StatusCode::BAD_REQUEST);
    assert!(refused.message().contains("bogus"), "{}", refused.text);
    let refused = s
        .post(
            "/v3/phone/check/",
            json!({"phone_number": SANDBOX, "code": "123456", "voip_number_action": "MAYBE"}),
        )
        .await;
    assert_eq!(refused.status, StatusCode::BAD_REQUEST, "{}", refused.text);
    // metadata must be a small object.
    for bad in [json!([1]), json!({"x": "y".repeat(3000)})] {
        let a = s
            .send_with(json!({"phone_number": SANDBOX, "metadata": bad}))
            .await;
        assert_eq!(a.status, StatusCode::BAD_REQUEST, "{}", a.text);
        assert!(a.message().contains("metadata"), "{}", a.text);
    }
    s.running.shutdown().await;
}

mod grpc {
    use switchboard::server::grpc::pb::{self, switchboard_client::SwitchboardClient};
    use tonic::{Code, Request};

    use super::SANDBOX;
    use crate::http::sidecar;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn get_verification_by_id_and_by_number_and_review_over_grpc() {
        let s = sidecar("").await;
        let mut c = SwitchboardClient::connect(format!("http://{}", s.running.grpc_addr))
            .await
            .unwrap();
        let engine = s.running.state.engine.clone();
        let code = || {
            engine
                .sandbox()
                .unwrap()
                .last_code(SANDBOX)
                .unwrap()
                .expose()
                .to_owned()
        };
        let send = |vendor: &str| pb::SendRequest {
            phone_number: SANDBOX.to_owned(),
            vendor_data: Some(vendor.to_owned()),
            metadata: Some(r#"{"order":7}"#.to_owned()),
            ..Default::default()
        };
        let check = |code: String| pb::CheckRequest {
            phone_number: SANDBOX.to_owned(),
            code,
            ..Default::default()
        };
        let first = c.send(send("u1")).await.unwrap().into_inner();
        let id = first.verification_id.clone().expect("an id");
        assert_eq!(first.metadata.as_deref(), Some(r#"{"order":7}"#));
        let checked = c.check(check(code())).await.unwrap().into_inner();
        assert_eq!(checked.verification_id.as_deref(), Some(id.as_str()));
        assert_eq!(checked.vendor_data.as_deref(), Some("u1"));

        let by_id = c
            .get_verification(pb::GetVerificationRequest {
                verification_id: Some(id.clone()),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(by_id.status(), pb::VerificationStatus::Approved);
        assert_eq!(
            by_id
                .lifecycle
                .iter()
                .map(|e| e.event.as_str())
                .collect::<Vec<_>>(),
            ["sent", "check"]
        );

        // The duplicate: by number now finds the newest verification, In Review.
        let second = c.send(send("u2")).await.unwrap().into_inner();
        let second_id = second.verification_id.expect("an id");
        c.check(check(code())).await.unwrap();
        let by_number = c
            .get_verification(pb::GetVerificationRequest {
                phone_number: SANDBOX.to_owned(),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(
            by_number.verification_id.as_deref(),
            Some(second_id.as_str())
        );
        assert_eq!(by_number.status(), pb::VerificationStatus::InReview);
        let decided = c
            .review_verification(pb::ReviewVerificationRequest {
                verification_id: second_id.clone(),
                status: "Approved".into(),
                reason: Some("checked by phone".into()),
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(decided.status(), pb::VerificationStatus::Approved);
        let refused = c
            .review_verification(pb::ReviewVerificationRequest {
                verification_id: second_id,
                status: "Declined".into(),
                reason: None,
            })
            .await
            .unwrap_err();
        assert_eq!(refused.code(), Code::FailedPrecondition);

        // An idempotent send through metadata: one message, the same answer.
        let before = engine.sandbox().unwrap().messages_to(SANDBOX).len();
        let keyed = || {
            let mut r = Request::new(send("u2"));
            r.metadata_mut()
                .insert("idempotency-key", "grpc-key-1".parse().unwrap());
            r
        };
        let (mut c1, mut c2) = (c.clone(), c.clone());
        let (a, b) = tokio::join!(c1.send(keyed()), c2.send(keyed()));
        assert_eq!(a.unwrap().into_inner(), b.unwrap().into_inner());
        assert_eq!(
            engine.sandbox().unwrap().messages_to(SANDBOX).len(),
            before + 1
        );
        let deleted = c
            .delete_phone_number(pb::DeletePhoneNumberRequest {
                phone_number: SANDBOX.to_owned(),
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(deleted.verifications, 3);
        assert_eq!(deleted.idempotency_records, 1);
        drop(c);
        s.running.shutdown().await;
    }
}
