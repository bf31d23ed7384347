//! The fraud screen: each rule, its figure, escalation, modes, safe list, geo permissions,
//! spend caps, and its counters shared by instances on Redis and Redis Cluster.

use std::sync::Arc;

use parking_lot::Mutex;
use switchboard::clock::{Clock, ManualClock};
use switchboard::events::{Event, EventKind};
use switchboard::fraud::Rule;
use switchboard::providers::{Channel, FailureClass};
use switchboard::report::{CheckStatus, SendOutcome, SendStatus};
use switchboard::routing::RouteTable;
use switchboard::store::Store;
use switchboard::{CheckRequest, Config, Engine, EngineBuilder, SendRequest};

use crate::support::{Providers, ROUTES, Step, TestEngine, build_engine, engine_with};

/// Small budgets so each rule trips within a few sends.
fn policy(extra: &str) -> String {
    format!("[workflow.fraud]\nmode = \"enforce\"\n{extra}\n")
}

/// Number `n` of prefix `+3461PPP` (a Spanish mobile range), `n` < 10,000.
fn number(prefix: u32, n: u32) -> String {
    format!("+3461{prefix:03}{n:04}")
}

async fn send(t: &Engine, to: &str) -> SendOutcome {
    t.send(SendRequest::new(to)).await.unwrap()
}

async fn send_from(t: &Engine, to: &str, ip: &str) -> SendOutcome {
    let mut req = SendRequest::new(to);
    req.signals.ip = Some(ip.into());
    t.send(req).await.unwrap()
}

fn figure(out: &SendOutcome) -> &switchboard::fraud::Figure {
    out.phone
        .warnings
        .iter()
        .find(|w| w.risk.as_str() == "HIGH_RISK_PHONE_NUMBER")
        .and_then(|w| w.additional_data.as_ref())
        .expect("a fraud refusal carries its figure")
}

fn dispatched(out: &SendOutcome) -> bool {
    matches!(out.status, SendStatus::Success | SendStatus::Retry)
}

async fn approve(t: &TestEngine, to: &str) {
    let code = t.providers.last_code_to(to);
    let out = t.engine.check(CheckRequest::new(to, code)).await.unwrap();
    assert_eq!(out.status, CheckStatus::Approved, "{to}");
}

#[tokio::test]
async fn prefix_velocity_stops_a_pumper_cycling_through_one_range_and_says_why() {
    let t = engine_with(&policy(""), Providers::delivering());
    for n in 0..10 {
        assert!(
            dispatched(&send(&t.engine, &number(1, n)).await),
            "send {n}"
        );
    }
    let out = send(&t.engine, &number(1, 10)).await;
    assert_eq!(out.status, SendStatus::Blocked);
    assert_eq!(out.reason.as_deref(), Some("PREFIX_VELOCITY"));
    let f = figure(&out);
    assert_eq!(f.rule, Rule::PrefixVelocity);
    assert_eq!(f.key, "prefix:+3461001");
    assert_eq!((f.count, f.budget, f.window_secs), (11.0, 10.0, 3600));
    assert!(f.blocked_until.is_some());
    assert_eq!(t.providers.total_calls(), 10);
    // Another range of the same country is untouched.
    assert!(dispatched(&send(&t.engine, &number(2, 0)).await));
}

#[tokio::test]
async fn a_refused_send_gives_back_what_it_reserved() {
    let t = engine_with(&policy("prefix_budget = 2"), Providers::delivering());
    for n in 0..2 {
        assert!(dispatched(&send(&t.engine, &number(3, n)).await));
    }
    let refused = number(3, 2);
    assert_eq!(
        send(&t.engine, &refused).await.reason.as_deref(),
        Some("PREFIX_VELOCITY")
    );
    // The screen counted the send in the reserving call; the refusal released the
    // reservation: no verification, no code, no place taken in the resend window.
    let state = t
        .engine
        .store()
        .inspect(
            &switchboard::store::NumberKey::new("default", refused.clone()),
            t.clock.now_ms(),
        )
        .await
        .unwrap();
    assert!(state.verification.is_none(), "{state:?}");
}

#[tokio::test]
async fn approvals_earn_a_prefix_its_budget_back() {
    let t = engine_with(&policy("cooloff_secs = 1"), Providers::delivering());
    for n in 0..10 {
        send(&t.engine, &number(1, n)).await;
        approve(&t, &number(1, n)).await;
    }
    // 10 sends, 10 approvals: the budget is 10 + 3 x 10 = 40.
    for n in 10..40 {
        assert!(
            dispatched(&send(&t.engine, &number(1, n)).await),
            "send {n}"
        );
    }
    assert_eq!(
        send(&t.engine, &number(1, 40)).await.reason.as_deref(),
        Some("PREFIX_VELOCITY")
    );
}

#[tokio::test]
async fn a_blocked_prefix_stays_blocked_for_its_cooloff_which_doubles_on_repeat() {
    let t = engine_with(&policy("cooloff_secs = 600"), Providers::delivering());
    for n in 0..11 {
        send(&t.engine, &number(1, n)).await;
    }
    // Within the cool-off every number of the range is refused.
    t.clock.advance_secs(300);
    let out = send(&t.engine, &number(1, 500)).await;
    assert_eq!(out.reason.as_deref(), Some("PREFIX_VELOCITY"));
    let first_end = figure(&out).blocked_until.clone().unwrap();
    // After it the window still holds the unconverted sends: blocked again, twice as long.
    t.clock.advance_secs(301);
    let again = send(&t.engine, &number(1, 501)).await;
    assert_eq!(again.reason.as_deref(), Some("PREFIX_VELOCITY"));
    let second_end = figure(&again).blocked_until.clone().unwrap();
    assert!(second_end > first_end);
    let now_plus_1200 =
        switchboard::clock::iso8601(switchboard::clock::Clock::now_ms(&t.clock) + 1_200_000);
    assert_eq!(second_end, now_plus_1200);
}

#[tokio::test]
async fn an_approval_in_a_blocked_prefix_lifts_the_block() {
    let t = engine_with(&policy(""), Providers::delivering());
    for n in 0..11 {
        send(&t.engine, &number(1, n)).await;
    }
    assert!(!dispatched(&send(&t.engine, &number(1, 11)).await));
    // A real user of the range types the code that reached them before the block.
    approve(&t, &number(1, 3)).await;
    assert!(dispatched(&send(&t.engine, &number(1, 12)).await));
}

#[tokio::test]
async fn country_anomaly_holds_a_country_never_converted_in_to_its_floor() {
    let t = engine_with(&policy(""), Providers::delivering());
    // One number per range, so no prefix trips: the country floor (50) does.
    for p in 0..50 {
        assert!(
            dispatched(&send(&t.engine, &number(p, 0)).await),
            "send {p}"
        );
    }
    let out = send(&t.engine, &number(50, 0)).await;
    assert_eq!(out.reason.as_deref(), Some("COUNTRY_ANOMALY"));
    assert_eq!(figure(&out).key, "country:ES");
    // Another country is not affected.
    assert!(dispatched(&send(&t.engine, "+447911123456").await));
}

#[tokio::test]
async fn a_converting_population_over_many_prefixes_is_never_blocked() {
    let t = engine_with(&policy(""), Providers::delivering());
    let mut blocked = 0;
    for i in 0..400u32 {
        let to = number(i % 80, i / 80);
        let out = send_from(&t.engine, &to, &format!("10.{}.{}.1", i / 256, i % 256)).await;
        if !dispatched(&out) {
            blocked += 1;
            continue;
        }
        // 70% of the users type their code.
        if i % 10 < 7 {
            approve(&t, &to).await;
        }
    }
    assert_eq!(blocked, 0);
}

#[tokio::test]
async fn ip_velocity_limits_sends_from_one_address_and_from_one_network() {
    let t = engine_with(&policy(""), Providers::delivering());
    for p in 0..10 {
        assert!(dispatched(
            &send_from(&t.engine, &number(p, 1), "203.0.113.7").await
        ));
    }
    let out = send_from(&t.engine, &number(10, 1), "203.0.113.7").await;
    assert_eq!(out.reason.as_deref(), Some("IP_VELOCITY"));
    assert_eq!(figure(&out).key, "ip:203.0.113.7");

    // 30 addresses of one /24 (3 sends each would pass the per-IP budget).
    let t = engine_with(&policy("country_budget = 1000"), Providers::delivering());
    for i in 0..30u32 {
        let out = send_from(&t.engine, &number(i, 2), &format!("198.51.100.{i}")).await;
        assert!(dispatched(&out), "send {i}");
    }
    let out = send_from(&t.engine, &number(30, 2), "198.51.100.200").await;
    assert_eq!(out.reason.as_deref(), Some("IP_VELOCITY"));
    assert_eq!(figure(&out).key, "net:198.51.100.0/24");
}

#[tokio::test]
async fn ipv6_clients_are_counted_by_their_slash_48() {
    let t = engine_with(
        &policy("country_budget = 1000\nip_budget = 1000\nnetwork_budget = 3"),
        Providers::delivering(),
    );
    for i in 0..3u32 {
        assert!(dispatched(
            &send_from(&t.engine, &number(i, 3), &format!("2001:db8:1:{i}::1")).await
        ));
    }
    let out = send_from(&t.engine, &number(9, 3), "2001:db8:1:ffff::9").await;
    assert_eq!(figure(&out).key, "net:2001:db8:1::/48");
}

#[tokio::test]
async fn device_velocity_limits_sends_from_one_device() {
    let t = engine_with(&policy("device_budget = 3"), Providers::delivering());
    let req = |to: String| {
        let mut r = SendRequest::new(to);
        r.signals.device_id = Some("device-42".into());
        r
    };
    for p in 0..3 {
        assert!(dispatched(&t.engine.send(req(number(p, 4))).await.unwrap()));
    }
    let out = t.engine.send(req(number(3, 4))).await.unwrap();
    assert_eq!(out.reason.as_deref(), Some("DEVICE_VELOCITY"));
    // The device id is counted hashed: it never appears in the key.
    assert!(!figure(&out).key.contains("device-42"));
}

#[tokio::test]
async fn an_ip_that_does_not_parse_is_refused_naming_the_field() {
    let t = engine_with(&policy(""), Providers::delivering());
    let mut req = SendRequest::new(number(1, 1));
    req.signals.ip = Some("not-an-ip".into());
    let err = t.engine.send(req).await.unwrap_err();
    assert_eq!(err.code(), "INVALID_REQUEST");
    assert!(err.to_string().contains("signals.ip"), "{err}");
    assert_eq!(t.providers.total_calls(), 0);
}

fn with_events(overrides: &str) -> (TestEngine, Arc<Mutex<Vec<Event>>>) {
    let providers = Providers::delivering();
    let clock = ManualClock::default();
    let events = Arc::new(Mutex::new(Vec::new()));
    let sink = events.clone();
    let config = Config::from_toml(&format!(
        "pepper = \"000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f\"\n[code]\nhashing = {{ scheme = \"hmac-sha256\" }}\n[providers]\nstand_in = \"\"\n{overrides}"
    ))
    .unwrap();
    let engine = EngineBuilder::new(config)
        .routes(RouteTable::from_toml(ROUTES).unwrap())
        .provider(providers.wa.clone())
        .provider(providers.sms_a.clone())
        .provider(providers.sms_b.clone())
        .provider(providers.voice.clone())
        .clock(Arc::new(clock.clone()))
        .on_event(Arc::new(move |e| sink.lock().push(e)))
        .build()
        .unwrap();
    (
        TestEngine {
            engine,
            clock,
            providers,
        },
        events,
    )
}

#[tokio::test]
async fn shadow_mode_refuses_nothing_and_reports_every_would_block() {
    let (t, events) = with_events("[workflow.fraud]\nmode = \"shadow\"\n");
    for n in 0..30 {
        let out = send(&t.engine, &number(1, n)).await;
        assert!(dispatched(&out), "send {n}");
    }
    assert_eq!(t.providers.total_calls(), 30);
    let would: Vec<_> = events
        .lock()
        .iter()
        .filter(|e| e.event == EventKind::FraudWouldBlock)
        .cloned()
        .collect();
    assert_eq!(would.len(), 20);
    assert_eq!(would[0].reason.as_deref(), Some("PREFIX_VELOCITY"));
    assert_eq!(would[0].fraud.as_ref().unwrap().key, "prefix:+3461001");
}

#[tokio::test]
async fn enforce_mode_emits_fraud_blocked_with_rule_and_key() {
    let (t, events) = with_events("[workflow.fraud]\nmode = \"enforce\"\n");
    for n in 0..11 {
        send(&t.engine, &number(1, n)).await;
    }
    let blocked: Vec<_> = events
        .lock()
        .iter()
        .filter(|e| e.event == EventKind::FraudBlocked)
        .cloned()
        .collect();
    assert_eq!(blocked.len(), 1);
    let f = blocked[0].fraud.as_ref().unwrap();
    assert_eq!(
        (f.rule, f.key.as_str()),
        (Rule::PrefixVelocity, "prefix:+3461001")
    );
}

#[tokio::test]
async fn fraud_off_counts_and_refuses_nothing() {
    let t = engine_with(
        "[workflow.fraud]\nmode = \"off\"\n",
        Providers::delivering(),
    );
    for n in 0..40 {
        assert!(dispatched(&send(&t.engine, &number(1, n)).await));
    }
}

#[tokio::test]
async fn safe_listed_numbers_are_never_refused_by_a_fraud_rule_but_keep_their_limits() {
    let t = engine_with(
        &policy("safe_list = [\"+3461001*\"]"),
        Providers::delivering(),
    );
    for n in 0..30 {
        assert!(
            dispatched(&send(&t.engine, &number(1, n)).await),
            "send {n}"
        );
    }
    // The store's resend limit still holds for a safe-listed number.
    for _ in 0..2 {
        send(&t.engine, &number(1, 0)).await;
    }
    let err = t
        .engine
        .send(SendRequest::new(number(1, 0)))
        .await
        .unwrap_err();
    assert_eq!(err.code(), "RESEND_LIMIT_EXCEEDED");
}

#[tokio::test]
async fn geo_denied_channels_are_not_planned_and_a_denied_country_is_refused() {
    let t = engine_with(
        "[workflow.fraud.geo]\nwhatsapp = { ES = \"deny\" }\n",
        Providers::delivering(),
    );
    // WhatsApp comes first in the table; denied for ES, SMS carries the code.
    let out = send(&t.engine, &number(1, 1)).await;
    assert_eq!(out.channel, Some(Channel::Sms));
    assert_eq!(t.providers.wa.call_count(), 0);
    let mut pinned = SendRequest::new(number(1, 2));
    pinned.channel = Some(Channel::Whatsapp);
    let err = t.engine.send(pinned).await.unwrap_err();
    assert_eq!(err.code(), "CHANNEL_UNAVAILABLE");

    let t = engine_with(
        "[workflow.fraud.geo]\nall = { ES = \"deny\" }\n",
        Providers::delivering(),
    );
    let out = send(&t.engine, &number(1, 1)).await;
    assert_eq!(out.status, SendStatus::Blocked);
    assert_eq!(out.reason.as_deref(), Some("GEO_DENIED"));
    assert_eq!(figure(&out).key, "geo:whatsapp:ES");
    assert_eq!(t.providers.total_calls(), 0);
}

#[tokio::test]
async fn geo_permissions_are_validated_at_load() {
    let e = Config::from_toml("[workflow.fraud.geo]\nsms = { Spain = \"deny\" }\n").unwrap_err();
    assert!(e.to_string().contains("workflow.fraud.geo"), "{e}");
    let e = Config::from_toml("[workflow.fraud.geo]\npigeon = { ES = \"deny\" }\n").unwrap_err();
    assert!(e.to_string().contains("pigeon"), "{e}");
}

#[tokio::test]
async fn spend_cap_refuses_sends_once_the_hour_is_spent() {
    // WhatsApp at 0.01 per send: a 0.05 cap lets five through.
    let t = engine_with(&policy("spend_cap_hour = 0.05"), Providers::delivering());
    let mut passed = 0;
    let mut refusal = None;
    for p in 0..10 {
        let out = send(&t.engine, &number(p, 5)).await;
        // The spend is counted off the request path: let it land.
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
        if dispatched(&out) {
            passed += 1;
        } else {
            refusal = Some(out);
            break;
        }
    }
    assert_eq!(passed, 5);
    let out = refusal.expect("the cap refused a send");
    assert_eq!(out.reason.as_deref(), Some("SPEND_CAP"));
    assert_eq!(figure(&out).key, "spend:hour");
}

#[tokio::test]
async fn a_provider_fraud_block_blocks_the_prefix_for_every_number_in_it() {
    let p = Providers::delivering();
    p.wa.then([Step::Fail(FailureClass::Fraud, "30450")]);
    let t = engine_with(&policy(""), p);
    let out = send(&t.engine, &number(1, 1)).await;
    assert_eq!(out.status, SendStatus::Blocked);
    let next = send(&t.engine, &number(1, 2)).await;
    assert_eq!(next.reason.as_deref(), Some("PREFIX_VELOCITY"));
    assert_eq!(t.providers.total_calls(), 1);
}

/// Two instances on one store: 40 concurrent sends to one range never dispatch more than its
/// budget (a block set by the 11th may also stop a concurrent earlier one: never more, maybe
/// fewer).
async fn instances_sharing_a_store_share_the_prefix_budget(store: Store) {
    let providers = Providers::delivering();
    let clock = ManualClock::default();
    let only_prefix = policy("country_budget = 1000");
    let a = build_engine(&only_prefix, &providers, &clock, Some(store.clone()));
    let b = build_engine(&only_prefix, &providers, &clock, Some(store));
    let sends = (0..40u32).map(|n| {
        let engine = if n % 2 == 0 { a.clone() } else { b.clone() };
        async move { engine.send(SendRequest::new(number(7, n))).await.unwrap() }
    });
    let outs = futures::future::join_all(sends).await;
    let passed = outs.iter().filter(|o| dispatched(o)).count();
    assert!((1..=10).contains(&passed), "{passed} dispatched");
    assert_eq!(providers.total_calls(), passed);
    assert!(
        outs.iter()
            .filter(|o| !dispatched(o))
            .all(|o| o.reason.as_deref() == Some("PREFIX_VELOCITY"))
    );
}

#[tokio::test]
async fn two_instances_on_redis_share_the_prefix_budget() {
    instances_sharing_a_store_share_the_prefix_budget(crate::store::redis()).await;
}

#[tokio::test]
async fn two_instances_on_redis_cluster_share_the_prefix_budget() {
    instances_sharing_a_store_share_the_prefix_budget(crate::store::cluster()).await;
}

#[tokio::test]
async fn blocks_are_listed_and_released_on_redis() {
    let providers = Providers::delivering();
    let clock = ManualClock::default();
    let store = crate::store::redis();
    let e = build_engine(&policy(""), &providers, &clock, Some(store.clone()));
    for n in 0..11 {
        e.send(SendRequest::new(number(3, n))).await.unwrap();
    }
    let now = switchboard::clock::Clock::now_ms(&clock);
    let blocks = switchboard::fraud::blocks(&store, "default", now)
        .await
        .unwrap();
    assert_eq!(blocks.len(), 1);
    assert_eq!(blocks[0].key, "prefix:+3461003");
    assert!(
        switchboard::fraud::release(&store, "default", "prefix:+3461003")
            .await
            .unwrap()
    );
    assert!(
        switchboard::fraud::blocks(&store, "default", now)
            .await
            .unwrap()
            .is_empty()
    );
}
