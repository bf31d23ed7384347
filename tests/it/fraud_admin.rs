//! Operating the fraud screen: client signals on both APIs, the fraud metrics, and the admin
//! calls (blocks, safe list, geo permissions) over HTTP, gRPC, Redis and the CLI.

use reqwest::StatusCode;
use serde_json::{Value, json};
use switchboard::SendRequest;
use switchboard::clock::ManualClock;
use switchboard::report::SendStatus;
use switchboard::server::grpc::pb::{self, switchboard_client::SwitchboardClient};
use switchboard::server::{self, Running};
use switchboard::{Config, Engine};
use tonic::Code;

use switchboard::providers::FailureClass;
use switchboard::routing::RouteTable;

use crate::http::{Sidecar, sidecar, sidecar_with};
use crate::support::{Providers, Scripted, Step, build_engine};

/// Three numbers of one prefix (`+3460060`, the default 4 digits stripped).
const PREFIX_NUMBERS: [&str; 4] = [
    "+34600600600",
    "+34600600601",
    "+34600600602",
    "+34600600603",
];

/// A small prefix budget, and runtime fraud settings read on every send.
fn fraud_config(budget: u32, mode: &str) -> String {
    format!(
        "[workflow.fraud]\nmode = \"{mode}\"\nprefix_budget = {budget}\n[store]\nfraud_admin_cache_ms = 0\n"
    )
}

/// The value of the Prometheus sample named `name` whose labels include every one of
/// `labels` (0 when absent).
async fn sample(s: &Sidecar, name: &str, labels: &[&str]) -> f64 {
    let text = s.get("/metrics").await.text;
    text.lines()
        .filter(|l| l.starts_with(&format!("{name}{{")))
        .find(|l| labels.iter().all(|want| l.contains(want)))
        .and_then(|l| l.rsplit(' ').next())
        .map_or(0.0, |v| v.trim().parse().unwrap())
}

async fn send_to(s: &Sidecar, number: &str) -> Value {
    let a = s.send(number).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text);
    a.body
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_lists_a_prefix_block_and_releasing_it_lets_the_next_send_through() {
    let s = sidecar(&fraud_config(2, "enforce")).await;
    for n in &PREFIX_NUMBERS[..2] {
        assert_eq!(send_to(&s, n).await["status"], "Success");
    }
    let blocked = send_to(&s, PREFIX_NUMBERS[2]).await;
    assert_eq!(blocked["status"], "Blocked", "{blocked}");
    assert_eq!(blocked["reason"], "PREFIX_VELOCITY");

    let list = s.get("/v3/fraud/blocks/").await;
    assert_eq!(list.status, StatusCode::OK, "{}", list.text);
    let blocks = list.body["blocks"].as_array().unwrap();
    assert_eq!(blocks.len(), 1, "{}", list.text);
    assert_eq!(blocks[0]["rule"], "PREFIX_VELOCITY");
    assert_eq!(blocks[0]["key"], "prefix:+3460060");
    assert_eq!(blocks[0]["blocks"], 1);
    assert!(blocks[0]["blocked_until"].as_str().unwrap().ends_with('Z'));
    assert_eq!(
        sample(
            &s,
            "switchboard_fraud_decisions_total",
            &["rule=\"PREFIX_VELOCITY\"", "decision=\"blocked\""]
        )
        .await,
        1.0
    );

    let released = s.delete("/v3/fraud/blocks/prefix%3A%2B3460060/").await;
    assert_eq!(released.status, StatusCode::OK, "{}", released.text);
    assert_eq!(released.body, json!({"released": true}));
    let again = s.delete("/v3/fraud/blocks/prefix%3A%2B3460060/").await;
    assert_eq!(again.body, json!({"released": false}));
    let nonsense = s.delete("/v3/fraud/blocks/%FF%FE/").await;
    assert_eq!(
        nonsense.status,
        StatusCode::BAD_REQUEST,
        "{}",
        nonsense.text
    );

    let list = s.get("/v3/fraud/blocks/").await;
    assert_eq!(list.body["blocks"], json!([]));
    let next = send_to(&s, PREFIX_NUMBERS[3]).await;
    assert_eq!(next["status"], "Success", "{next}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shadow_would_block_is_counted_in_metrics() {
    let s = sidecar(&fraud_config(1, "shadow")).await;
    assert_eq!(send_to(&s, PREFIX_NUMBERS[0]).await["status"], "Success");
    let shadowed = send_to(&s, PREFIX_NUMBERS[1]).await;
    assert_eq!(shadowed["status"], "Success", "shadow refuses nothing");
    assert_eq!(
        sample(
            &s,
            "switchboard_fraud_decisions_total",
            &["rule=\"PREFIX_VELOCITY\"", "decision=\"would_block\""]
        )
        .await,
        1.0
    );
    assert_eq!(
        sample(
            &s,
            "switchboard_fraud_decisions_total",
            &["decision=\"blocked\""]
        )
        .await,
        0.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_provider_fraud_block_is_counted_per_provider_in_metrics() {
    let s = sidecar_with("", |b| {
        b.routes(RouteTable::from_toml(crate::support::ROUTES).unwrap())
            .provider(Scripted::new(
                "wa",
                Step::Fail(FailureClass::Fraud, "pumping"),
            ))
    })
    .await;
    let refused = send_to(&s, PREFIX_NUMBERS[0]).await;
    assert_eq!(refused["status"], "Blocked", "{refused}");
    assert_eq!(
        sample(
            &s,
            "switchboard_provider_fraud_blocks_total",
            &["provider=\"wa\""]
        )
        .await,
        1.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_signals_are_accepted_and_validated() {
    let s = sidecar("").await;
    let all = json!({
        "phone_number": PREFIX_NUMBERS[0],
        "signals": {
            "ip": "2001:db8::7", "device_id": "d-1", "user_agent": "ua",
            "device_platform": "ios", "device_model": "iPhone15,2",
            "os_version": "17.4", "app_version": "3.2.1"
        }
    });
    let ok = s.post("/v3/phone/send/", all).await;
    assert_eq!(ok.status, StatusCode::OK, "{}", ok.text);

    let refused = |signals: Value| {
        let s = &s;
        async move {
            let a = s
                .post(
                    "/v3/phone/send/",
                    json!({"phone_number": PREFIX_NUMBERS[1], "signals": signals}),
                )
                .await;
            assert_eq!(a.status, StatusCode::BAD_REQUEST, "{}", a.text);
            assert_eq!(a.code(), "INVALID_REQUEST", "{}", a.text);
            a.message().to_owned()
        }
    };
    assert!(
        refused(json!({"ip": "not-an-ip"}))
            .await
            .contains("signals.ip")
    );
    assert!(
        refused(json!({"device_model": "m".repeat(129)}))
            .await
            .contains("signals.device_model")
    );
    assert!(
        refused(json!({"app_version": "v".repeat(65)}))
            .await
            .contains("signals.app_version")
    );
    assert!(
        refused(json!({"fingerprint": "x"}))
            .await
            .contains("fingerprint")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn safe_list_added_at_runtime_lets_a_blocked_prefix_through() {
    let s = sidecar(&fraud_config(1, "enforce")).await;
    send_to(&s, PREFIX_NUMBERS[0]).await;
    let blocked = send_to(&s, PREFIX_NUMBERS[1]).await;
    assert_eq!(blocked["reason"], "PREFIX_VELOCITY", "{blocked}");

    let entry = json!({"entry": "+3460060*"});
    let added = s.post("/v3/fraud/safe-list/", entry.clone()).await;
    assert_eq!(added.status, StatusCode::CREATED, "{}", added.text);
    assert_eq!(added.body, json!({"entry": "+3460060*", "added": true}));
    let twice = s.post("/v3/fraud/safe-list/", entry.clone()).await;
    assert_eq!(twice.status, StatusCode::OK);
    assert_eq!(twice.body["added"], false);
    let listed = s.get("/v3/fraud/safe-list/").await;
    assert_eq!(
        listed.body,
        json!({"entries": ["+3460060*"], "configured": []})
    );

    let through = send_to(&s, PREFIX_NUMBERS[2]).await;
    assert_eq!(through["status"], "Success", "{through}");

    let removed = Sidecar::answer(
        s.client
            .delete(s.url("/v3/fraud/safe-list/"))
            .json(&entry)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(removed.status, StatusCode::OK, "{}", removed.text);
    assert_eq!(removed.body["removed"], true);
    let blocked_again = send_to(&s, PREFIX_NUMBERS[3]).await;
    assert_eq!(blocked_again["status"], "Blocked", "{blocked_again}");

    for bad in [
        json!({"entry": "3460060*"}),
        json!({"entry": "+34abc"}),
        json!({"entry": "+1234567890123456789"}),
        json!({"entry": "+346", "x": 1}),
    ] {
        let a = s.post("/v3/fraud/safe-list/", bad.clone()).await;
        assert_eq!(a.status, StatusCode::BAD_REQUEST, "{bad}: {}", a.text);
        assert_eq!(a.code(), "INVALID_REQUEST", "{bad}: {}", a.text);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn geo_deny_set_at_runtime_refuses_pinned_and_unpinned_sends() {
    let s = sidecar(&fraud_config(10, "enforce")).await;
    let put = |body: Value| {
        let s = &s;
        async move {
            Sidecar::answer(
                s.client
                    .put(s.url("/v3/fraud/geo/"))
                    .json(&body)
                    .send()
                    .await
                    .unwrap(),
            )
            .await
        }
    };
    let set = put(json!({"geo": {"all": {"ES": "deny"}}})).await;
    assert_eq!(set.status, StatusCode::OK, "{}", set.text);
    assert_eq!(set.body["geo"], json!({"all": {"ES": "deny"}}));
    assert_eq!(set.body["effective"]["all"]["ES"], "deny");
    assert_eq!(
        set.body["effective"]["all"]["UZ"], "monitor",
        "configured entries stay"
    );
    assert_eq!(s.get("/v3/fraud/geo/").await.body, set.body);

    let unpinned = send_to(&s, PREFIX_NUMBERS[0]).await;
    assert_eq!(unpinned["status"], "Blocked", "{unpinned}");
    assert_eq!(unpinned["reason"], "GEO_DENIED");
    let pinned = s
        .post(
            "/v3/phone/send/",
            json!({"phone_number": PREFIX_NUMBERS[1], "channel": "SMS"}),
        )
        .await;
    assert_eq!(
        pinned.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        pinned.text
    );
    assert_eq!(pinned.code(), "CHANNEL_UNAVAILABLE");

    for bad in [
        json!({"geo": {"fax": {"ES": "deny"}}}),
        json!({"geo": {"sms": {"es": "deny"}}}),
        json!({"geo": {"sms": {"ES": "maybe"}}}),
        json!({"geo": {}, "extra": true}),
    ] {
        let a = put(bad.clone()).await;
        assert_eq!(a.status, StatusCode::BAD_REQUEST, "{bad}: {}", a.text);
    }
    // Cleared: the number is reachable again.
    assert_eq!(put(json!({"geo": {}})).await.status, StatusCode::OK);
    assert_eq!(send_to(&s, PREFIX_NUMBERS[2]).await["status"], "Success");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fraud_admin_calls_need_the_application_api_key() {
    let key = "fraud-admin-key-0123456789";
    let s = sidecar(&format!(
        "[apps.shop]\nbrand = \"Shop\"\n[server]\napi_keys = [{{ app = \"shop\", sha256 = \"{}\" }}]\n",
        switchboard::server::auth::hash_key(key)
    ))
    .await;
    for (method, path) in [
        ("GET", "/v3/fraud/blocks/"),
        ("DELETE", "/v3/fraud/blocks/prefix%3A%2B3460060/"),
        ("GET", "/v3/fraud/safe-list/"),
        ("POST", "/v3/fraud/safe-list/"),
        ("DELETE", "/v3/fraud/safe-list/"),
        ("GET", "/v3/fraud/geo/"),
        ("PUT", "/v3/fraud/geo/"),
    ] {
        let req = s
            .client
            .request(method.parse().unwrap(), s.url(path))
            .json(&json!({}));
        let a = Sidecar::answer(req.send().await.unwrap()).await;
        assert_eq!(
            a.status,
            StatusCode::UNAUTHORIZED,
            "{method} {path}: {}",
            a.text
        );
    }
    let a = Sidecar::answer(
        s.client
            .get(s.url("/v3/fraud/blocks/"))
            .header("x-api-key", key)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openapi_documents_the_fraud_admin_calls_and_signal_lengths() {
    let s = sidecar("").await;
    let doc = s.get("/openapi.json").await.body;
    for (path, method) in [
        ("/v3/fraud/blocks/", "get"),
        ("/v3/fraud/blocks/{key}/", "delete"),
        ("/v3/fraud/safe-list/", "get"),
        ("/v3/fraud/safe-list/", "post"),
        ("/v3/fraud/safe-list/", "delete"),
        ("/v3/fraud/geo/", "get"),
        ("/v3/fraud/geo/", "put"),
    ] {
        assert!(
            doc["paths"][path][method].is_object(),
            "{method} {path} missing"
        );
    }
    let signals = &doc["components"]["schemas"]["SignalsBody"]["properties"];
    for (field, max) in [
        ("device_id", 256),
        ("user_agent", 1024),
        ("device_platform", 64),
        ("device_model", 128),
        ("os_version", 64),
        ("app_version", 64),
    ] {
        assert_eq!(signals[field]["maxLength"], max, "{field}: {signals}");
    }
    assert!(signals["ip"].is_object());
    assert!(doc["components"]["schemas"]["Block"].is_object());
}

// ---------------------------------------------------------------------------------------------
// gRPC
// ---------------------------------------------------------------------------------------------

async fn grpc_sidecar(budget: u32) -> (Running, SwitchboardClient<tonic::transport::Channel>) {
    let config = Config::from_toml(&format!(
        "{}[server]\ngrpc_addr = \"127.0.0.1:0\"\nhttp_addr = \"127.0.0.1:0\"\n",
        fraud_config(budget, "enforce")
    ))
    .unwrap();
    let running = server::start(config, |b| b).await.expect("sidecar starts");
    let channel = tonic::transport::Channel::from_shared(format!("http://{}", running.grpc_addr))
        .unwrap()
        .connect()
        .await
        .unwrap();
    (running, SwitchboardClient::new(channel))
}

fn grpc_send(number: &str) -> pb::SendRequest {
    pb::SendRequest {
        phone_number: number.to_owned(),
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_lists_releases_blocks_and_manages_safe_list_and_geo() {
    let (_running, mut c) = grpc_sidecar(1).await;
    c.send(grpc_send(PREFIX_NUMBERS[0])).await.unwrap();
    let blocked = c
        .send(grpc_send(PREFIX_NUMBERS[1]))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(blocked.reason.as_deref(), Some("PREFIX_VELOCITY"));

    let blocks = c
        .list_fraud_blocks(pb::ListFraudBlocksRequest {})
        .await
        .unwrap()
        .into_inner()
        .blocks;
    assert_eq!(blocks.len(), 1);
    assert_eq!(blocks[0].rule, "PREFIX_VELOCITY");
    assert_eq!(blocks[0].key, "prefix:+3460060");
    let released = c
        .release_fraud_block(pb::ReleaseFraudBlockRequest {
            key: blocks[0].key.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(released.released);
    let passed = c
        .send(grpc_send(PREFIX_NUMBERS[2]))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(passed.status_text, "Success", "{passed:?}");

    // Safe list.
    let added = c
        .add_to_safe_list(pb::AddToSafeListRequest {
            entry: "+34600600603".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(added.added);
    let list = c
        .get_safe_list(pb::GetSafeListRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(list.entries, ["+34600600603"]);
    let bad = c
        .add_to_safe_list(pb::AddToSafeListRequest {
            entry: "nope".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(bad.code(), Code::InvalidArgument);
    let removed = c
        .remove_from_safe_list(pb::RemoveFromSafeListRequest {
            entry: "+34600600603".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(removed.removed);

    // Geo: deny Spain on every channel.
    let deny = pb::GeoPermission {
        channel: "all".into(),
        country: "ES".into(),
        action: pb::GeoAction::Deny.into(),
    };
    let set = c
        .set_geo_permissions(pb::SetGeoPermissionsRequest {
            permissions: vec![deny.clone()],
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(set.permissions, vec![deny.clone()]);
    assert!(set.effective.contains(&deny));
    let got = c
        .get_geo_permissions(pb::GetGeoPermissionsRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(got, set);
    let geo_blocked = c
        .send(grpc_send("+34611111111"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(geo_blocked.reason.as_deref(), Some("GEO_DENIED"));
    let pinned = c
        .send(pb::SendRequest {
            channel: pb::Channel::Sms.into(),
            ..grpc_send("+34611111112")
        })
        .await
        .unwrap_err();
    assert_eq!(pinned.code(), Code::FailedPrecondition, "{pinned:?}");
    let invalid = c
        .set_geo_permissions(pb::SetGeoPermissionsRequest {
            permissions: vec![pb::GeoPermission {
                channel: "fax".into(),
                country: "ES".into(),
                action: pb::GeoAction::Deny.into(),
            }],
        })
        .await
        .unwrap_err();
    assert_eq!(invalid.code(), Code::InvalidArgument);
    let unspecified = c
        .set_geo_permissions(pb::SetGeoPermissionsRequest {
            permissions: vec![pb::GeoPermission { action: 0, ..deny }],
        })
        .await
        .unwrap_err();
    assert_eq!(unspecified.code(), Code::InvalidArgument);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_signals_are_accepted_and_validated() {
    let (_running, mut c) = grpc_sidecar(10).await;
    let ok = c
        .send(pb::SendRequest {
            signals: Some(pb::Signals {
                ip: Some("203.0.113.7".into()),
                device_platform: Some("android".into()),
                device_model: Some("Pixel 8".into()),
                os_version: Some("14".into()),
                app_version: Some("1.0.0".into()),
                ..Default::default()
            }),
            ..grpc_send(PREFIX_NUMBERS[0])
        })
        .await;
    assert!(ok.is_ok(), "{ok:?}");
    let long = c
        .send(pb::SendRequest {
            signals: Some(pb::Signals {
                device_model: Some("m".repeat(129)),
                ..Default::default()
            }),
            ..grpc_send(PREFIX_NUMBERS[1])
        })
        .await
        .unwrap_err();
    assert_eq!(long.code(), Code::InvalidArgument);
    assert!(long.message().contains("signals.device_model"), "{long:?}");
    let bad_ip = c
        .send(pb::SendRequest {
            signals: Some(pb::Signals {
                ip: Some("999.1.1.1".into()),
                ..Default::default()
            }),
            ..grpc_send(PREFIX_NUMBERS[1])
        })
        .await
        .unwrap_err();
    assert!(bad_ip.message().contains("signals.ip"), "{bad_ip:?}");
}

// ---------------------------------------------------------------------------------------------
// Redis: runtime settings shared between instances
// ---------------------------------------------------------------------------------------------

fn redis_engine(store: switchboard::store::Store, clock: &ManualClock) -> Engine {
    build_engine(
        &fraud_config(1, "enforce"),
        &Providers::delivering(),
        clock,
        Some(store),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_runtime_safe_list_and_geo_reach_another_instance() {
    let store = crate::store::redis();
    let clock = ManualClock::new(1_700_000_000_000);
    let (a, b) = (
        redis_engine(store.clone(), &clock),
        redis_engine(store, &clock),
    );
    a.send(SendRequest::new(PREFIX_NUMBERS[0])).await.unwrap();
    let blocked = b.send(SendRequest::new(PREFIX_NUMBERS[1])).await.unwrap();
    assert_eq!(blocked.status, SendStatus::Blocked);
    assert_eq!(a.fraud_blocks(None).await.unwrap().len(), 1);

    assert!(a.add_to_fraud_safe_list("+3460060*", None).await.unwrap());
    assert_eq!(b.fraud_safe_list(None).await.unwrap(), ["+3460060*"]);
    let through = b.send(SendRequest::new(PREFIX_NUMBERS[2])).await.unwrap();
    assert_eq!(through.status, SendStatus::Success, "{through:?}");

    let geo: switchboard::GeoTable =
        serde_json::from_value(json!({"sms": {"ES": "deny"}})).unwrap();
    a.set_fraud_geo(&geo, None).await.unwrap();
    assert_eq!(b.fraud_geo(None).await.unwrap(), geo);
    let policy = b.effective_fraud_policy(None).await.unwrap();
    assert_eq!(
        policy.geo(switchboard::providers::Channel::Sms, Some("ES")),
        switchboard::fraud::GeoAction::Deny
    );
    assert!(policy.is_safe("+34600600609"));
    assert!(
        a.release_fraud_block("prefix:+3460060", None)
            .await
            .unwrap()
    );
    assert!(!a.release_fraud_block("garbage", None).await.unwrap());
    assert!(a.fraud_blocks(None).await.unwrap().is_empty());
}
