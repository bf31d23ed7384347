//! Engine events: every status change and delivery report, nothing else, never a code.

use std::sync::Arc;

use parking_lot::Mutex;
use switchboard::clock::ManualClock;
use switchboard::events::{Event, EventKind};
use switchboard::routing::RouteTable;
use switchboard::{CheckRequest, Config, Engine, EngineBuilder, SendRequest};

use crate::support::{ES_MOBILE, Providers, ROUTES};

fn engine_with_events(providers: &Providers) -> (Engine, Arc<Mutex<Vec<Event>>>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let sink = seen.clone();
    let config = Config::from_toml(
        "pepper = \"000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f\"\n[code]\nhashing = { scheme = \"hmac-sha256\" }\n[providers]\nstand_in = \"\"\n",
    )
    .unwrap();
    let engine = EngineBuilder::new(config)
        .routes(RouteTable::from_toml(ROUTES).unwrap())
        .provider(providers.wa.clone())
        .provider(providers.sms_a.clone())
        .provider(providers.sms_b.clone())
        .provider(providers.voice.clone())
        .clock(Arc::new(ManualClock::default()))
        .on_event(Arc::new(move |e| sink.lock().push(e)))
        .build()
        .unwrap();
    (engine, seen)
}

fn kinds(seen: &Mutex<Vec<Event>>) -> Vec<EventKind> {
    seen.lock().iter().map(|e| e.event).collect()
}

#[tokio::test]
async fn send_resend_and_approval_each_emit_one_event() {
    let providers = Providers::delivering();
    let (engine, seen) = engine_with_events(&providers);
    engine.send(SendRequest::new(ES_MOBILE)).await.unwrap();
    engine.send(SendRequest::new(ES_MOBILE)).await.unwrap();
    let code = providers.last_code_to(ES_MOBILE);
    engine
        .check(CheckRequest::new(ES_MOBILE, &code))
        .await
        .unwrap();
    assert_eq!(
        kinds(&seen),
        [EventKind::Started, EventKind::Resent, EventKind::Approved]
    );
    let approved = seen.lock()[2].clone();
    assert_eq!(approved.phone_number, ES_MOBILE);
    assert_eq!(approved.app, "default");
    let json = serde_json::to_string(&*seen.lock()).unwrap();
    assert!(!json.contains(&code), "an event carried the code");
    assert!(json.contains("\"verification.approved\""));
}

#[tokio::test]
async fn a_decline_is_one_event_and_later_checks_of_it_are_none() {
    let providers = Providers::delivering();
    let (engine, seen) = engine_with_events(&providers);
    engine.send(SendRequest::new(ES_MOBILE)).await.unwrap();
    for _ in 0..4 {
        engine
            .check(CheckRequest::new(ES_MOBILE, "0000000"))
            .await
            .unwrap();
    }
    assert_eq!(kinds(&seen), [EventKind::Started, EventKind::Declined]);
    assert_eq!(
        seen.lock()[1].reason.as_deref(),
        Some("VERIFICATION_CODE_ATTEMPTS_EXCEEDED")
    );
}

#[tokio::test]
async fn a_blocked_send_is_a_declined_event_with_its_risk() {
    let providers = Providers::delivering();
    let (engine, seen) = engine_with_events(&providers);
    engine.block(ES_MOBILE, None).await.unwrap();
    engine.send(SendRequest::new(ES_MOBILE)).await.unwrap();
    let events = seen.lock().clone();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].event, EventKind::Declined);
    assert_eq!(
        events[0].reason.as_deref(),
        Some("PHONE_NUMBER_IN_BLOCKLIST")
    );
}
