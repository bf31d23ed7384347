//! The engine on Redis and Redis Cluster: exactly-once approval under concurrency, attempt
//! budgets under concurrency, several instances sharing one Redis, and failing closed.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use futures::future::join_all;
use proptest::prelude::*;
use proptest::test_runner::{Config as ProptestConfig, TestRunner};
use switchboard::clock::{Clock, ManualClock};
use switchboard::store::{RedisSettings, RedisStore, Store};
use switchboard::{CheckRequest, CheckStatus, Engine, SendRequest, SendStatus};

use crate::redis_server::{
    RedisCluster, RedisServer, shared_cluster, shared_server, unique_prefix,
};
use crate::store::redis_at;
use crate::support::{ES_MOBILE, ES_MOBILE_2, FRAUD_OFF, Providers, build_engine};

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
        .unwrap()
}

/// 64 concurrent checks of the right code, `rounds` times: exactly one approval each time.
fn right_code_raced_by_64_checks_is_approved_exactly_once(url: String, rounds: usize) {
    let rt = runtime();
    rt.block_on(async {
        let providers = Providers::delivering();
        let clock = ManualClock::default();
        let engine = build_engine(FRAUD_OFF, &providers, &clock, Some(redis_at(url)));
        for round in 0..rounds {
            let number = format!("+346{:08}", round);
            engine.send(SendRequest::new(number.clone())).await.unwrap();
            let code = providers.last_code_to(&number);
            let outcomes = join_all((0..64).map(|_| {
                let engine = engine.clone();
                let req = CheckRequest::new(number.clone(), code.clone());
                tokio::spawn(async move { engine.check(req).await.unwrap().status })
            }))
            .await;
            let approved = outcomes
                .iter()
                .filter(|o| *o.as_ref().unwrap() == CheckStatus::Approved)
                .count();
            assert_eq!(approved, 1, "round {round}: {approved} approvals");
        }
    });
}

#[test]
fn redis_right_code_raced_by_64_checks_is_approved_exactly_once_200_times() {
    right_code_raced_by_64_checks_is_approved_exactly_once(shared_server().url(), 200);
}

#[test]
fn cluster_right_code_raced_by_64_checks_is_approved_exactly_once_200_times() {
    right_code_raced_by_64_checks_is_approved_exactly_once(shared_cluster().url(), 200);
}

/// 64 concurrent wrong codes: the budget is never exceeded and the verification ends declined.
fn wrong_codes_raced_never_exceed_the_attempt_budget(url: String) {
    let rt = runtime();
    rt.block_on(async {
        let providers = Providers::delivering();
        let clock = ManualClock::default();
        let engine = build_engine(FRAUD_OFF, &providers, &clock, Some(redis_at(url)));
        for round in 0..20 {
            let number = format!("+3461{:07}", round);
            engine.send(SendRequest::new(number.clone())).await.unwrap();
            let code = providers.last_code_to(&number);
            let wrong: String = code
                .chars()
                .map(|c| char::from(b'0' + ((c as u8 - b'0' + 5) % 10)))
                .collect();
            let outcomes: Vec<_> = join_all((0..64).map(|_| {
                let engine = engine.clone();
                let req = CheckRequest::new(number.clone(), wrong.clone());
                tokio::spawn(async move { engine.check(req).await.unwrap() })
            }))
            .await
            .into_iter()
            .map(Result::unwrap)
            .collect();
            let failed = outcomes
                .iter()
                .filter(|o| o.status == CheckStatus::Failed)
                .count();
            let declined: Vec<_> = outcomes
                .iter()
                .filter(|o| o.status == CheckStatus::Declined)
                .collect();
            assert_eq!(
                failed, 1,
                "exactly one attempt is left after the first wrong code"
            );
            assert_eq!(declined.len(), 63);
            assert!(
                declined
                    .iter()
                    .all(|o| o.reason.as_deref() == Some("VERIFICATION_CODE_ATTEMPTS_EXCEEDED"))
            );
            assert!(declined.iter().all(|o| o.phone.verification_attempts == 2));
            let right = engine.check(CheckRequest::new(number, code)).await.unwrap();
            assert_eq!(right.status, CheckStatus::Declined);
        }
    });
}

#[test]
fn redis_wrong_codes_raced_never_exceed_the_attempt_budget_and_decline() {
    wrong_codes_raced_never_exceed_the_attempt_budget(shared_server().url());
}

#[test]
fn cluster_wrong_codes_raced_never_exceed_the_attempt_budget_and_decline() {
    wrong_codes_raced_never_exceed_the_attempt_budget(shared_cluster().url());
}

#[derive(Clone, Debug)]
enum Op {
    Send(usize),
    CheckRight(usize, usize),
    CheckWrong(usize),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (0..3usize).prop_map(Op::Send),
        3 => (0..3usize, any::<usize>()).prop_map(|(n, i)| Op::CheckRight(n, i)),
        1 => (0..3usize).prop_map(Op::CheckWrong),
    ]
}

/// A batch of operations run concurrently, split over the instances, then a clock move.
fn batch() -> impl Strategy<Value = (Vec<Op>, i64)> {
    (
        prop::collection::vec(op(), 4..12),
        prop_oneof![
            Just(0i64),
            1_000..120_000i64,
            Just(300_000),
            Just(3_600_000),
            Just(43_200_000)
        ],
    )
}

/// Two engine instances over one Redis, ≥ 1,000 random concurrent operations in all: every
/// limit holds exactly as for one instance.
#[test]
fn two_instances_sharing_redis_keep_every_limit_under_random_concurrent_load() {
    let rt = runtime();
    let total_ops = std::cell::Cell::new(0usize);
    // 32 cases × at least 8 batches × at least 4 operations = 1,024: the floor below holds
    // for every draw, not only on average.
    let mut runner = TestRunner::new(ProptestConfig {
        cases: 32,
        failure_persistence: None,
        ..ProptestConfig::default()
    });
    runner
        .run(&prop::collection::vec(batch(), 8..12), |batches| {
            rt.block_on(async {
                let providers = Providers::delivering();
                let clock = ManualClock::default();
                let store = redis_at(shared_server().url());
                let a = build_engine(FRAUD_OFF, &providers, &clock, Some(store.clone()));
                let b = build_engine(FRAUD_OFF, &providers, &clock, Some(store));
                let numbers = ["+34600600600", "+34600600601", "+5511987654321"];
                // Ledger from the engines' answers: (number) -> sends (time, code), approvals.
                let mut sends: HashMap<usize, Vec<(i64, String)>> = HashMap::new();
                let mut successes: HashMap<usize, usize> = HashMap::new();
                let mut approved_codes: HashSet<(usize, String)> = HashSet::new();
                let mut approvals: HashMap<usize, usize> = HashMap::new();
                for (ops, advance) in batches {
                    let now = clock.now_ms();
                    total_ops.set(total_ops.get() + ops.len());
                    let known: Vec<Vec<String>> = (0..3)
                        .map(|n| {
                            sends
                                .get(&n)
                                .map(|v| v.iter().map(|s| s.1.clone()).collect())
                                .unwrap_or_default()
                        })
                        .collect();
                    let futures = ops.iter().enumerate().map(|(i, op)| {
                        let engine: Engine = if i % 2 == 0 { a.clone() } else { b.clone() };
                        let op = op.clone();
                        let code = match &op {
                            Op::CheckRight(n, k) if !known[*n].is_empty() => {
                                Some(known[*n][k % known[*n].len()].clone())
                            }
                            _ => None,
                        };
                        async move {
                            match op {
                                Op::Send(n) => {
                                    let r = engine.send(SendRequest::new(numbers[n])).await;
                                    (n, Some(r.map(|o| o.status)), None)
                                }
                                Op::CheckRight(n, _) | Op::CheckWrong(n) => {
                                    let typed = code.clone().unwrap_or_else(|| "0000000".into());
                                    let r =
                                        engine.check(CheckRequest::new(numbers[n], typed)).await;
                                    (n, None, Some((code, r.map(|o| o.status))))
                                }
                            }
                        }
                    });
                    let results = join_all(futures).await;
                    for (n, send, check) in results {
                        if let Some(r) = send {
                            match r {
                                Ok(SendStatus::Success | SendStatus::Retry) => {
                                    if let Ok(SendStatus::Success) = r {
                                        *successes.entry(n).or_default() += 1;
                                    }
                                }
                                Ok(_) => {}
                                Err(e) => prop_assert_eq!(e.code(), "RESEND_LIMIT_EXCEEDED"),
                            }
                        }
                        if let Some((code, r)) = check {
                            let status = r.expect("check never fails on a healthy store");
                            if status == CheckStatus::Approved {
                                let code = code.expect("only a delivered code can be approved");
                                prop_assert!(
                                    approved_codes.insert((n, code.clone())),
                                    "a code was approved twice"
                                );
                                *approvals.entry(n).or_default() += 1;
                                let sent_at = sends[&n]
                                    .iter()
                                    .filter(|s| s.1 == code)
                                    .map(|s| s.0)
                                    .max()
                                    .unwrap();
                                prop_assert!(now < sent_at + 300_000, "approval after expiry");
                            }
                        }
                    }
                    // Codes the providers delivered in this batch, stamped with the batch time.
                    for (n, number) in numbers.iter().enumerate() {
                        let delivered: Vec<String> = [
                            &providers.wa,
                            &providers.sms_a,
                            &providers.sms_b,
                            &providers.voice,
                        ]
                        .iter()
                        .flat_map(|p| p.calls())
                        .filter(|c| c.to == *number)
                        .map(|c| c.code.expose().to_owned())
                        .collect();
                        let entry = sends.entry(n).or_default();
                        for code in delivered.into_iter().skip(entry.len()) {
                            entry.push((now, code));
                        }
                        // Never more than 1 + max_resends sends inside any rolling day.
                        for (i, (t, _)) in entry.iter().enumerate() {
                            let in_window = entry[i..]
                                .iter()
                                .filter(|(u, _)| *u < t + 86_400_000)
                                .count();
                            prop_assert!(in_window <= 3, "{} sends inside one day", in_window);
                        }
                        prop_assert!(
                            approvals.get(&n).copied().unwrap_or(0)
                                <= successes.get(&n).copied().unwrap_or(0),
                            "more approvals than verifications"
                        );
                    }
                    clock.advance_ms(advance);
                }
                Ok(())
            })
        })
        .unwrap();
    assert!(
        total_ops.get() >= 1_000,
        "only {} operations ran",
        total_ops.get()
    );
}

/// A master of a cluster with replicas dies (SIGKILL) holding pending verifications: once its
/// replica is promoted, every verification is still there, its code is approved exactly once,
/// and the engine found the new master by itself.
#[test]
fn cluster_master_failover_keeps_pending_verifications_and_approves_each_once() {
    let rt = runtime();
    let cluster = RedisCluster::start_with(1, 1000);
    rt.block_on(async {
        let providers = Providers::delivering();
        let clock = ManualClock::default();
        let store = Store::Redis(
            RedisStore::new(&RedisSettings {
                url: cluster.url(),
                key_prefix: unique_prefix(),
                // Long enough that a check the new master ran is not taken for a failure.
                command_timeout: Duration::from_secs(2),
            })
            .unwrap(),
        );
        let engine = build_engine(FRAUD_OFF, &providers, &clock, Some(store));
        // 24 numbers: their hash tags spread over the three masters' slots.
        let numbers: Vec<String> = (0..24).map(|i| format!("+3461{:07}", 5_000 + i)).collect();
        let mut codes = Vec::new();
        for n in &numbers {
            let sent = engine.send(SendRequest::new(n.clone())).await.unwrap();
            assert_eq!(sent.status, SendStatus::Success);
            codes.push(providers.last_code_to(n));
        }
        assert!(cluster.wait_replicated(Duration::from_secs(10)));
        let (_, _) = tokio::task::block_in_place(|| cluster.kill_master(Duration::from_secs(30)));
        for (n, code) in numbers.iter().zip(&codes) {
            // Until the engine's connection learns the new slot owner, calls fail closed.
            let mut answer = None;
            for _ in 0..100 {
                match engine
                    .check(CheckRequest::new(n.clone(), code.clone()))
                    .await
                {
                    Ok(o) => {
                        answer = Some(o.status);
                        break;
                    }
                    Err(e) => {
                        assert_eq!(e.code(), "UNAVAILABLE");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                }
            }
            assert_eq!(answer, Some(CheckStatus::Approved), "{n}");
            let again = engine
                .check(CheckRequest::new(n.clone(), code.clone()))
                .await
                .unwrap();
            assert_ne!(again.status, CheckStatus::Approved, "{n} approved twice");
        }
    });
}

/// A master dies while sends are at the provider: a send that still answers `Success` names a
/// verification whose record may live on the dead master. The record is written once the
/// replica takes over, so the verification is found by its id (it used to be lost for good:
/// the record write was tried once, after the provider call, and its failure only logged).
#[test]
fn cluster_failover_during_sends_loses_no_verification_record() {
    let rt = runtime();
    let cluster = std::sync::Arc::new(RedisCluster::start_with(1, 1000));
    rt.block_on(async {
        let mut providers = Providers::delivering();
        providers.wa = crate::support::Scripted::new(
            "wa",
            crate::support::Step::DeliverAfter(Duration::from_millis(700)),
        );
        let clock = ManualClock::default();
        let store = Store::Redis(
            RedisStore::new(&RedisSettings {
                url: cluster.url(),
                key_prefix: unique_prefix(),
                command_timeout: Duration::from_millis(500),
            })
            .unwrap(),
        );
        let engine = build_engine(FRAUD_OFF, &providers, &clock, Some(store));
        // Each send is exposed when its number's slot survives and its record's slot (random)
        // is on the killed master: 2/9 of them; 30 make a miss one chance in 2,000.
        let sends: Vec<_> = (0..30)
            .map(|i| {
                let engine = engine.clone();
                tokio::spawn(async move {
                    engine
                        .send(SendRequest::new(format!("+3461{:07}", 7_000 + i)))
                        .await
                })
            })
            .collect();
        tokio::time::sleep(Duration::from_millis(200)).await;
        let c = cluster.clone();
        let kill = tokio::task::spawn_blocking(move || c.kill_master(Duration::from_secs(30)));
        let mut told = Vec::new();
        for s in join_all(sends).await {
            if let Ok(o) = s.unwrap()
                && o.status == SendStatus::Success
            {
                told.push(o.verification_id.expect("a Success names its verification"));
            }
        }
        kill.await.unwrap();
        assert!(!told.is_empty(), "no send survived the failover");
        for id in &told {
            let mut found = false;
            for _ in 0..100 {
                if engine.verification(id, None).await.is_ok() {
                    found = true;
                    break;
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            assert!(
                found,
                "verification {id} was answered Success but is not found"
            );
        }
    });
}

/// Sets the ACL rules of the user `sidecar` (password `pw`) on the server `admin` reaches.
fn sidecar_acl(admin: &redis::Client, rules: &[&str]) {
    let mut conn = admin.get_connection().unwrap();
    redis::cmd("ACL")
        .arg("SETUSER")
        .arg("sidecar")
        .arg(rules)
        .exec(&mut conn)
        .unwrap();
}

/// The rules that leave every key readable and every key but the verification records'
/// writable: a store that refuses record writes, for real.
fn records_read_only(prefix: &str) -> [String; 3] {
    [
        "resetkeys".into(),
        format!("~{prefix}:{{[^v]*"),
        "%R~*".into(),
    ]
}

/// An engine on `url` whose WhatsApp answers after 700 ms.
fn slow_whatsapp_engine(
    url: String,
    prefix: &str,
    providers: &mut Providers,
    clock: &ManualClock,
) -> Engine {
    providers.wa = crate::support::Scripted::new(
        "wa",
        crate::support::Step::DeliverAfter(Duration::from_millis(700)),
    );
    let store = Store::Redis(
        RedisStore::new(&RedisSettings {
            url,
            key_prefix: prefix.to_owned(),
            command_timeout: Duration::from_millis(500),
        })
        .unwrap(),
    );
    build_engine(FRAUD_OFF, providers, clock, Some(store))
}

/// A redis-server with a user `sidecar` (password `pw`) allowed everything; the URL as that
/// user.
fn server_with_sidecar_user() -> (RedisServer, redis::Client, String) {
    let server = RedisServer::start_on(crate::redis_server::free_port(), &[]);
    let admin = redis::Client::open(server.url()).unwrap();
    sidecar_acl(&admin, &["reset", "on", ">pw", "~*", "&*", "+@all"]);
    let as_sidecar = server.url().replace("redis://", "redis://sidecar:pw@");
    (server, admin, as_sidecar)
}

/// The process that answered a send dies (its runtime is shut down, background retries and
/// all) while the store refuses its record writes: the verification it answered `Success` for
/// is still found by id from a new process, because its record was opened before the provider
/// was called. (It used to be written only after the provider call; a write the store refused
/// was then retried in memory and died with the process.) The store's refusal is real: an ACL
/// that takes write access to record keys away from the sidecar's user mid-send.
#[test]
fn a_verification_answered_sent_survives_its_process_dying_before_its_record_is_updated() {
    let (server, admin, as_sidecar) = server_with_sidecar_user();
    let prefix = unique_prefix();
    let clock = ManualClock::default();
    let rt = runtime();
    let id = rt.block_on(async {
        let mut providers = Providers::delivering();
        let engine = slow_whatsapp_engine(as_sidecar, &prefix, &mut providers, &clock);
        let send = tokio::spawn({
            let engine = engine.clone();
            async move { engine.send(SendRequest::new(ES_MOBILE)).await }
        });
        // The code is at the provider (for 700 ms): the record writes start failing now.
        while providers.wa.call_count() == 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let rules = records_read_only(&prefix);
        sidecar_acl(&admin, &rules.each_ref().map(String::as_str));
        let outcome = send.await.unwrap().unwrap();
        assert_eq!(outcome.status, SendStatus::Success);
        outcome
            .verification_id
            .expect("a Success names its verification")
    });
    rt.shutdown_background();
    runtime().block_on(async {
        let mut providers = Providers::delivering();
        let engine = slow_whatsapp_engine(server.url(), &prefix, &mut providers, &clock);
        let found = engine.verification(&id, None).await.unwrap_or_else(|e| {
            panic!("verification {id} was answered Success but is not found: {e:?}")
        });
        assert_eq!(found.status, "Not Finished");
        assert_eq!(found.phone_number, ES_MOBILE);
    });
}

/// A first send whose record the store will not write sends nothing: it fails closed with
/// `UNAVAILABLE`, no provider is called, and its reservation is given back (the next send
/// opens a verification of its own, with the whole resend budget).
#[test]
fn a_first_send_whose_record_cannot_be_opened_sends_nothing_and_costs_nothing() {
    let (_server, admin, as_sidecar) = server_with_sidecar_user();
    let prefix = unique_prefix();
    let clock = ManualClock::default();
    runtime().block_on(async {
        let mut providers = Providers::delivering();
        let engine = slow_whatsapp_engine(as_sidecar, &prefix, &mut providers, &clock);
        let before = engine.send(SendRequest::new(ES_MOBILE_2)).await.unwrap();
        let rules = records_read_only(&prefix);
        sidecar_acl(&admin, &rules.each_ref().map(String::as_str));
        let refused = engine.send(SendRequest::new(ES_MOBILE)).await;
        assert!(
            matches!(refused, Err(switchboard::Error::StoreUnavailable(_))),
            "{refused:?}"
        );
        assert_eq!(
            providers.total_calls(),
            1,
            "only the first number's code went out"
        );
        sidecar_acl(&admin, &["resetkeys", "~*"]);
        let sent = engine.send(SendRequest::new(ES_MOBILE)).await.unwrap();
        assert_eq!(
            sent.status,
            SendStatus::Success,
            "a new verification, not a resend"
        );
        assert_eq!(sent.resends_left, before.resends_left);
        let id = sent.verification_id.unwrap();
        assert!(engine.verification(&id, None).await.is_ok());
    });
}

/// A first send that no provider accepted (a permanent refusal) is given back, and so is the
/// record opened for it: no answer names it and nothing of it stays in the store.
#[test]
fn a_first_send_that_reached_nobody_leaves_no_record() {
    use switchboard_providers::FailureClass;
    let server = shared_server();
    let prefix = unique_prefix();
    let clock = ManualClock::default();
    runtime().block_on(async {
        let refusing = |name| {
            crate::support::Scripted::new(
                name,
                crate::support::Step::Fail(FailureClass::Permanent, "21211"),
            )
        };
        let providers = Providers {
            wa: refusing("wa"),
            sms_a: refusing("sms_a"),
            sms_b: refusing("sms_b"),
            voice: refusing("voice"),
        };
        let store = Store::Redis(
            RedisStore::new(&RedisSettings {
                url: server.url(),
                key_prefix: prefix.clone(),
                command_timeout: Duration::from_secs(2),
            })
            .unwrap(),
        );
        let engine = build_engine(FRAUD_OFF, &providers, &clock, Some(store));
        let outcome = engine.send(SendRequest::new(ES_MOBILE)).await.unwrap();
        assert_eq!(outcome.status, SendStatus::Undeliverable);
        assert_eq!(outcome.verification_id, None);
        assert!(providers.total_calls() >= 1);
        let mut conn = redis::Client::open(server.url())
            .unwrap()
            .get_multiplexed_async_connection()
            .await
            .unwrap();
        let records: Vec<String> = redis::cmd("KEYS")
            .arg(format!("{prefix}:{{vr:*"))
            .query_async(&mut conn)
            .await
            .unwrap();
        assert_eq!(records, Vec::<String>::new());
    });
}

/// Redis stops in the middle of a load: no approval and no provider call while it is down,
/// every call answers with the retryable UNAVAILABLE error, and service resumes by itself
/// when Redis is back on the same address.
#[test]
fn redis_down_fails_closed_and_recovers_without_restart() {
    let rt = runtime();
    let port = crate::redis_server::free_port();
    let server = RedisServer::start_on(port, &[]);
    rt.block_on(async {
        let providers = Providers::delivering();
        let clock = ManualClock::default();
        let store = Store::Redis(
            RedisStore::new(&RedisSettings {
                url: server.url(),
                key_prefix: unique_prefix(),
                command_timeout: Duration::from_millis(200),
            })
            .unwrap(),
        );
        let engine = build_engine(FRAUD_OFF, &providers, &clock, Some(store));
        // Healthy: a pending verification whose code we know.
        engine.send(SendRequest::new(ES_MOBILE)).await.unwrap();
        let code = providers.last_code_to(ES_MOBILE);

        server.stop();
        let calls_before = providers.total_calls();
        let mut outcomes = Vec::new();
        for i in 0..40u32 {
            let engine = engine.clone();
            // Generous liveness bound: the store gives up after 200 ms; nothing may hang.
            let bound = Duration::from_secs(3);
            if i % 2 == 0 {
                let r = tokio::time::timeout(
                    bound,
                    engine.check(CheckRequest::new(ES_MOBILE, code.clone())),
                )
                .await;
                let r = r.expect("check answered");
                outcomes.push(r.map(|_| ()).map_err(|e| e.code()));
            } else {
                let r = tokio::time::timeout(
                    bound,
                    engine.send(SendRequest::new(format!("+3462{:07}", i))),
                )
                .await;
                let r = r.expect("send answered");
                outcomes.push(r.map(|_| ()).map_err(|e| e.code()));
            }
        }
        assert!(
            outcomes.iter().all(|o| *o == Err("UNAVAILABLE")),
            "{outcomes:?}"
        );
        assert_eq!(
            providers.total_calls(),
            calls_before,
            "no provider call while down"
        );

        let server = RedisServer::start_on(port, &[]);
        // The first call after the restart may still meet the dead connection; by the third
        // the store has reconnected. (Verification state was lost with that Redis, which
        // kept nothing on disk: the old code is gone, not approved.)
        let mut resumed = None;
        for attempt in 0..3 {
            match engine.send(SendRequest::new("+34630000001")).await {
                Ok(o) => {
                    assert_eq!(o.status, SendStatus::Success);
                    resumed = Some(attempt);
                    break;
                }
                Err(e) => assert_eq!(e.code(), "UNAVAILABLE"),
            }
        }
        assert!(resumed.is_some(), "the engine did not reconnect by itself");
        let after = engine
            .check(CheckRequest::new(ES_MOBILE, code))
            .await
            .unwrap();
        assert_ne!(after.status, CheckStatus::Approved);
        drop(server);
    });
}

/// A number's index of its verifications is written by the reservation itself (Redis) or with
/// the record (memory): either way a lookup by number finds the newest verification that has a
/// record, past a newer one whose send reached nobody.
async fn lookup_by_number_finds_the_newest_record_past_sends_without_one(store: Option<Store>) {
    use switchboard::providers::FailureClass;

    use crate::support::Step;
    let providers = Providers::delivering();
    let clock = ManualClock::default();
    let engine = build_engine(FRAUD_OFF, &providers, &clock, store);
    let sent = engine.send(SendRequest::new(ES_MOBILE)).await.unwrap();
    let first = sent.verification_id.clone().unwrap();
    let code = providers.last_code_to(ES_MOBILE);
    let checked = engine
        .check(CheckRequest::new(ES_MOBILE, code))
        .await
        .unwrap();
    assert_eq!(checked.status, CheckStatus::Approved);
    let all = [
        &providers.wa,
        &providers.sms_a,
        &providers.sms_b,
        &providers.voice,
    ];
    // Every route refuses: the new verification is released.
    for p in all {
        p.then([Step::Fail(FailureClass::Fallback, "x")]);
    }
    let failed = engine.send(SendRequest::new(ES_MOBILE)).await.unwrap();
    assert_eq!(failed.status, SendStatus::Undeliverable);
    let found = engine
        .verification_by_number(ES_MOBILE, None, None)
        .await
        .unwrap();
    assert_eq!(
        found.verification_id, first,
        "the released one has no record"
    );
    // A delivered send is the newest with a record.
    clock.advance_secs(60);
    let next = engine.send(SendRequest::new(ES_MOBILE)).await.unwrap();
    assert_eq!(next.status, SendStatus::Success);
    let found = engine
        .verification_by_number(ES_MOBILE, None, None)
        .await
        .unwrap();
    assert_eq!(Some(found.verification_id), next.verification_id);
}

#[tokio::test]
async fn lookup_by_number_finds_the_newest_record_past_sends_without_one_on_redis() {
    lookup_by_number_finds_the_newest_record_past_sends_without_one(Some(redis_at(
        shared_server().url(),
    )))
    .await;
}

#[tokio::test]
async fn lookup_by_number_finds_the_newest_record_past_sends_without_one_in_memory() {
    lookup_by_number_finds_the_newest_record_past_sends_without_one(None).await;
}
