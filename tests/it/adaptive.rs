//! Routing strategies through the engine: the route ledger, adaptive ordering, circuit
//! breakers and the patience-driven resend.

use switchboard::outcomes::{Count, Field};
use switchboard::providers::{Channel, FailureClass};
use switchboard::routing::ledger::{breaker_key, route_key};
use switchboard::store::Window;
use switchboard::{CheckRequest, CheckStatus, SendRequest, SendStatus};

use crate::support::{ES_MOBILE, FRAUD_OFF, Providers, Scripted, Step, TestEngine, engine_with};

fn adaptive(extra: &str) -> String {
    format!("{FRAUD_OFF}[workflow.routing]\nstrategy = \"adaptive\"\nexplore = 0.0\n{extra}")
}

fn number(n: u32) -> String {
    format!("+3460070{n:04}")
}

async fn tally(
    t: &TestEngine,
    key: switchboard::outcomes::CounterKey,
) -> switchboard::outcomes::Tally {
    let count = Count {
        key,
        window: Window {
            span_ms: 1_800_000,
            buckets: 6,
        },
        add: Vec::new(),
    };
    t.engine
        .store()
        .count(t.clock.now_ms(), &[count])
        .await
        .unwrap()
        .remove(0)
}

use switchboard::clock::Clock;

fn sms(to: &str) -> SendRequest {
    let mut r = SendRequest::new(to);
    r.channel = Some(Channel::Sms);
    r
}

#[tokio::test]
async fn a_resend_after_the_patience_goes_to_the_next_route_and_says_why() {
    let t = engine_with(&adaptive("patience_secs = 30\n"), Providers::delivering());
    // SMS only: sms_a (0.04) then sms_b (0.05), within twice its cost.
    let first = t.engine.send(sms(ES_MOBILE)).await.unwrap();
    assert_eq!(first.delivered_by.unwrap().provider, "sms_a");
    t.clock.advance_secs(40);
    let again = t.engine.send(sms(ES_MOBILE)).await.unwrap();
    assert_eq!(again.status, SendStatus::Retry);
    assert_eq!(again.delivered_by.unwrap().provider, "sms_b");
    let why = again.routing.as_ref().unwrap();
    assert_eq!(why.route, "sms:sms_b");
    assert_eq!(why.patience_exceeded.as_deref(), Some("sms:sms_a"));
    // The new code approves, and the approval is credited to the route that carried it.
    let code = t.providers.sms_b.last_code();
    let out = t
        .engine
        .check(CheckRequest::new(ES_MOBILE, code))
        .await
        .unwrap();
    assert_eq!(out.status, CheckStatus::Approved);
    let b = tally(&t, route_key("default", Some("ES"), Channel::Sms, "sms_b")).await;
    let a = tally(&t, route_key("default", Some("ES"), Channel::Sms, "sms_a")).await;
    assert_eq!((b.get(Field::Approvals), a.get(Field::Approvals)), (1, 0));
    assert_eq!((b.get(Field::Accepted), a.get(Field::Accepted)), (1, 1));
    assert_eq!(
        b.get(Field::ApprovalMs),
        0,
        "approved at the moment it was sent"
    );
}

#[tokio::test]
async fn a_lost_code_does_not_move_the_resend_to_a_route_costing_more_than_twice_as_much() {
    let t = engine_with(&adaptive("patience_secs = 30\n"), Providers::delivering());
    // WhatsApp costs 0.01, the next route (SMS) 0.04: a lost WhatsApp code doubles its
    // expected cost to 0.025, still the cheapest.
    t.engine.send(SendRequest::new(ES_MOBILE)).await.unwrap();
    t.clock.advance_secs(40);
    let again = t.engine.send(SendRequest::new(ES_MOBILE)).await.unwrap();
    assert_eq!(again.channel, Some(Channel::Whatsapp));
    assert_eq!(
        again.routing.unwrap().patience_exceeded.as_deref(),
        Some("whatsapp:wa")
    );
}

#[tokio::test]
async fn a_resend_within_the_patience_does_not_demote_the_previous_route() {
    let t = engine_with(
        &adaptive("patience_secs = 30\nprior_weight = 10\n"),
        Providers::delivering(),
    );
    t.engine.send(sms(ES_MOBILE)).await.unwrap();
    t.clock.advance_secs(10);
    let again = t.engine.send(sms(ES_MOBILE)).await.unwrap();
    // One code still in flight barely moves sms_a's P (8 / 11 with a prior worth 10 sends):
    // it stays the cheapest, and nothing demotes it.
    assert_eq!(again.delivered_by.unwrap().provider, "sms_a");
    assert_eq!(again.routing.unwrap().patience_exceeded, None);
}

#[tokio::test]
async fn the_static_strategy_resends_on_the_tables_route_however_long_the_wait() {
    let t = engine_with(FRAUD_OFF, Providers::delivering());
    t.engine.send(SendRequest::new(ES_MOBILE)).await.unwrap();
    t.clock.advance_secs(200);
    let again = t.engine.send(SendRequest::new(ES_MOBILE)).await.unwrap();
    assert_eq!(again.channel, Some(Channel::Whatsapp));
    assert_eq!(again.routing.unwrap().strategy, "static");
}

#[tokio::test]
async fn adaptive_learns_to_skip_a_route_whose_codes_are_never_entered() {
    let t = engine_with(&adaptive(""), Providers::delivering());
    // WhatsApp (0.01) is first by the table; SMS costs 0.04. With prior 0.8 x 5 sends,
    // WhatsApp's expected cost passes SMS's after about 15 accepted sends without approval.
    let mut switched_at = None;
    for n in 0..60 {
        let out = t.engine.send(SendRequest::new(number(n))).await.unwrap();
        if out.channel == Some(Channel::Sms) {
            switched_at = Some(n);
            let why = out.routing.unwrap();
            assert_eq!(why.strategy, "adaptive");
            assert_eq!(
                why.evidence, 0,
                "SMS has no evidence yet: its prior decides"
            );
            break;
        }
    }
    let n = switched_at.expect("adaptive never left the route that does not convert");
    assert!((10..=20).contains(&n), "switched after {n} sends");
}

#[tokio::test]
async fn with_no_evidence_adaptive_orders_like_the_table() {
    let t = engine_with(&adaptive(""), Providers::delivering());
    let out = t.engine.send(SendRequest::new(ES_MOBILE)).await.unwrap();
    assert_eq!(out.channel, Some(Channel::Whatsapp));
    let why = out.routing.unwrap();
    assert_eq!((why.route.as_str(), why.evidence), ("whatsapp:wa", 0));
    assert!((why.p_verified - 0.8).abs() < 1e-9);
    assert!((why.score - 0.01 / 0.8).abs() < 1e-9);
}

#[tokio::test]
async fn a_failing_provider_opens_its_breaker_and_its_routes_go_last_until_the_cooloff_ends() {
    let mut p = Providers::delivering();
    // Meta's 131005 (access denied): the provider cannot send for us at all.
    p.wa = Scripted::new("wa", Step::Fail(FailureClass::Config, "131005"));
    let t = engine_with(FRAUD_OFF, p);
    for n in 0..20 {
        let out = t.engine.send(SendRequest::new(number(n))).await.unwrap();
        assert_eq!(out.attempts.len(), 2, "WhatsApp tried first, SMS delivered");
    }
    let out = t.engine.send(SendRequest::new(number(20))).await.unwrap();
    assert_eq!(
        out.attempts.len(),
        1,
        "the open breaker moved WhatsApp last"
    );
    assert_eq!(out.channel, Some(Channel::Sms));
    assert_eq!(out.routing.unwrap().broken, ["whatsapp:wa"]);
    let b = tally(&t, breaker_key(Channel::Whatsapp, "wa")).await;
    assert!(b.is_blocked(t.clock.now_ms()));
    // After the 60 s cool-off the route is probed again.
    t.clock.advance_secs(61);
    let out = t.engine.send(SendRequest::new(number(21))).await.unwrap();
    assert_eq!(out.attempts[0].provider, "wa");
}

#[tokio::test]
async fn numbers_a_channel_cannot_reach_never_open_its_breaker() {
    // "Not on WhatsApp" for every number: a healthy provider answering about recipients.
    let mut p = Providers::delivering();
    p.wa = Scripted::new("wa", Step::Fail(FailureClass::Fallback, "131026"));
    let t = engine_with(FRAUD_OFF, p);
    for n in 0..40 {
        let out = t.engine.send(SendRequest::new(number(n))).await.unwrap();
        assert_eq!(
            out.attempts[0].provider, "wa",
            "send {n}: WhatsApp still first"
        );
        assert!(out.routing.unwrap().broken.is_empty());
    }
    let b = tally(&t, breaker_key(Channel::Whatsapp, "wa")).await;
    assert_eq!((b.get(Field::Attempts), b.get(Field::Failed)), (40, 0));
}

#[tokio::test]
async fn an_unsure_route_is_explored_on_a_bounded_share_of_sends() {
    let t = engine_with(
        &format!("{FRAUD_OFF}[workflow.routing]\nstrategy = \"adaptive\"\nexplore = 0.2\n"),
        Providers::delivering(),
    );
    let mut explored = 0;
    for n in 0..200 {
        let out = t.engine.send(SendRequest::new(number(n))).await.unwrap();
        explored += usize::from(out.routing.unwrap().explored);
    }
    // 20% of 200 sends: 40 expected; far from 0 and from all.
    assert!((15..=70).contains(&explored), "{explored} explored");
}
