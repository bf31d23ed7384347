//! Expiry: a verification whose validity ends while pending ends `Abandoned` (never checked)
//! or `Expired` (checked, never approved), announced once by the sweep, on every backend and
//! however many instances sweep one Redis.

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::Mutex;
use switchboard::clock::ManualClock;
use switchboard::events::{Event, EventKind};
use switchboard::store::Store;
use switchboard::{CheckRequest, Engine, SendRequest, VerificationStatus};

use crate::store::{cluster, memory, redis};
use crate::support::{FRAUD_OFF, Providers, engine_builder};

/// Validity of the default workflow.
const VALIDITY_SECS: i64 = 300;

type Seen = Arc<Mutex<Vec<Event>>>;

fn instance(store: &Store, clock: &ManualClock, providers: &Providers) -> (Engine, Seen) {
    let seen: Seen = Arc::default();
    let sink = seen.clone();
    let engine = engine_builder(FRAUD_OFF, providers, clock, Some(store.clone()))
        .on_event(Arc::new(move |e| sink.lock().push(e)))
        .build()
        .unwrap();
    (engine, seen)
}

/// The end events seen, by phone number.
fn ends(seen: &Seen) -> Vec<(String, EventKind)> {
    let mut out: Vec<_> = seen
        .lock()
        .iter()
        .filter(|e| matches!(e.event, EventKind::Expired | EventKind::Abandoned))
        .map(|e| (e.phone_number.clone(), e.event))
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

fn number(i: usize) -> String {
    format!("+3460060{i:04}")
}

async fn unchecked_ends_abandoned_checked_ends_expired_approved_ends_silently(store: Store) {
    let clock = ManualClock::default();
    let providers = Providers::delivering();
    let (engine, seen) = instance(&store, &clock, &providers);
    for i in 0..3 {
        engine.send(SendRequest::new(number(i))).await.unwrap();
    }
    // 1: a wrong code; 2: the right one.
    engine
        .check(CheckRequest::new(number(1), "000000"))
        .await
        .unwrap();
    let code = providers.last_code_to(&number(2));
    engine
        .check(CheckRequest::new(number(2), &code))
        .await
        .unwrap();

    clock.advance_secs(VALIDITY_SECS - 1);
    assert_eq!(
        engine.sweep_expired().await.unwrap(),
        0,
        "nothing ended yet"
    );
    clock.advance_secs(1);
    assert_eq!(engine.sweep_expired().await.unwrap(), 2);
    assert_eq!(
        ends(&seen),
        [
            (number(0), EventKind::Abandoned),
            (number(1), EventKind::Expired)
        ]
    );
    let abandoned = seen
        .lock()
        .iter()
        .find(|e| e.event == EventKind::Abandoned)
        .cloned()
        .unwrap();
    assert_eq!(abandoned.status, Some(VerificationStatus::Abandoned));
    assert_eq!(abandoned.app, "default");
    let json = serde_json::to_value(&abandoned).unwrap();
    assert_eq!(json["event"], "verification.abandoned");
    assert_eq!(json["status"], "Abandoned");

    clock.advance_secs(VALIDITY_SECS);
    assert_eq!(engine.sweep_expired().await.unwrap(), 0, "announced once");
    assert_eq!(ends(&seen).len(), 2);
}

async fn an_end_is_announced_even_when_a_check_or_a_new_send_comes_before_the_sweep(store: Store) {
    let clock = ManualClock::default();
    let providers = Providers::delivering();
    let (engine, seen) = instance(&store, &clock, &providers);
    engine.send(SendRequest::new(number(0))).await.unwrap();
    engine.send(SendRequest::new(number(1))).await.unwrap();
    // A resend joins the verification: still one end to announce.
    clock.advance_secs(60);
    engine.send(SendRequest::new(number(1))).await.unwrap();
    clock.advance_secs(VALIDITY_SECS);
    // Late: a check after the end, and a send that opens the number's next verification.
    let late = engine
        .check(CheckRequest::new(number(0), "000000"))
        .await
        .unwrap();
    assert_eq!(late.status, switchboard::CheckStatus::ExpiredOrNotFound);
    let next = engine.send(SendRequest::new(number(1))).await.unwrap();
    assert_eq!(next.status, switchboard::SendStatus::Success);

    assert_eq!(engine.sweep_expired().await.unwrap(), 2);
    assert_eq!(
        ends(&seen),
        [
            (number(0), EventKind::Abandoned),
            (number(1), EventKind::Abandoned)
        ]
    );
    // The next verification ends in its own time.
    clock.advance_secs(VALIDITY_SECS);
    assert_eq!(engine.sweep_expired().await.unwrap(), 1);
    assert_eq!(ends(&seen).len(), 3);
}

macro_rules! backends {
    ($($case:ident),* $(,)?) => {
        mod memory {
            $( #[tokio::test] async fn $case() { super::$case(super::memory()).await } )*
        }
        mod redis {
            $( #[tokio::test] async fn $case() { super::$case(super::redis()).await } )*
        }
        mod cluster {
            $( #[tokio::test] async fn $case() { super::$case(super::cluster()).await } )*
        }
    };
}

backends!(
    unchecked_ends_abandoned_checked_ends_expired_approved_ends_silently,
    an_end_is_announced_even_when_a_check_or_a_new_send_comes_before_the_sweep,
);

/// Two instances on one Redis sweep at the same time, over and over: each end is announced
/// by exactly one of them, exactly once.
async fn two_instances_announce_each_end_exactly_once(store: Store) {
    const N: usize = 120;
    let clock = ManualClock::default();
    let providers = Providers::delivering();
    let (a, seen_a) = instance(&store, &clock, &providers);
    let (b, seen_b) = instance(&store, &clock, &providers);
    for i in 0..N {
        let engine = if i % 2 == 0 { &a } else { &b };
        engine.send(SendRequest::new(number(i))).await.unwrap();
    }
    for i in (0..N).step_by(3) {
        a.check(CheckRequest::new(number(i), "000000"))
            .await
            .unwrap();
    }
    clock.advance_secs(VALIDITY_SECS);
    for _ in 0..4 {
        let (x, y) = tokio::join!(a.sweep_expired(), b.sweep_expired());
        x.unwrap();
        y.unwrap();
    }
    let mut all = ends(&seen_a);
    all.extend(ends(&seen_b));
    let mut per_number: HashMap<String, Vec<EventKind>> = HashMap::new();
    for (n, kind) in all {
        per_number.entry(n).or_default().push(kind);
    }
    assert_eq!(per_number.len(), N);
    for i in 0..N {
        let want = if i % 3 == 0 {
            EventKind::Expired
        } else {
            EventKind::Abandoned
        };
        assert_eq!(per_number[&number(i)], [want], "number {i}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_on_one_redis_announce_each_end_exactly_once() {
    two_instances_announce_each_end_exactly_once(redis()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_on_one_redis_cluster_announce_each_end_exactly_once() {
    two_instances_announce_each_end_exactly_once(cluster()).await;
}

#[tokio::test]
async fn a_spawned_sweeper_announces_ends_by_itself() {
    let clock = ManualClock::default();
    let providers = Providers::delivering();
    let (engine, seen) = instance(&memory(), &clock, &providers);
    engine.send(SendRequest::new(number(0))).await.unwrap();
    let _sweeper = engine.spawn_expiry_sweeper(std::time::Duration::from_millis(10));
    clock.advance_secs(VALIDITY_SECS);
    for _ in 0..500 {
        if !ends(&seen).is_empty() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert_eq!(ends(&seen), [(number(0), EventKind::Abandoned)]);
}
