//! One store conformance suite, run unchanged against Memory, Redis and Redis Cluster.

use switchboard::code::CodeDigest;
use switchboard::providers::Channel;
use switchboard::store::{
    CheckInput, CheckVerdict, Count, CounterKey, DeclineReason, DeliveryRef, Field, MemoryStore,
    NewRecord, NumberKey, RecordDelivery, RecordHead, Redeliver, Redelivery, RedisSettings,
    RedisStore, Reservation, ReserveSend, Reserved, SendLimits, Store, VerificationState, Window,
};

use crate::redis_server::{shared_cluster, shared_server, unique_prefix};

const T0: i64 = 1_767_225_600_000;
const MIN: i64 = 60_000;
const DAY: i64 = 86_400_000;

fn limits() -> SendLimits {
    SendLimits {
        validity_ms: 5 * MIN,
        max_resends: 2,
        window_ms: DAY,
        cooldown_ms: 0,
        exempt: false,
    }
}

fn digest(n: u8) -> CodeDigest {
    CodeDigest::from_bytes([n; 32])
}

fn key(e164: &str) -> NumberKey {
    NumberKey::new("app", e164)
}

fn send(now: i64, d: u8) -> ReserveSend<'static> {
    ReserveSend {
        route: "sms\tconsole\t0",
        now,
        digest: digest(d),
        channel: Channel::Sms,
        vendor_data: None,
        refuse_duplicate: false,
        limits: limits(),
        ids_ttl_ms: 86_400_000,
    }
}

fn check(now: i64, d: Option<u8>) -> CheckInput<'static> {
    CheckInput {
        now,
        candidate: d.map(digest),
        max_attempts: 2,
        vendor_data: None,
        refuse_duplicate: false,
        verified_ttl_ms: 365 * DAY,
    }
}

async fn reserved(store: &Store, k: &NumberKey, input: ReserveSend<'_>) -> Reserved {
    match store.reserve_send(k, input).await.unwrap() {
        Reservation::Reserved(r) => r,
        other => panic!("expected a reservation, got {other:?}"),
    }
}

pub fn memory() -> Store {
    Store::Memory(MemoryStore::new())
}

pub fn redis() -> Store {
    redis_at(shared_server().url())
}

pub fn cluster() -> Store {
    redis_at(shared_cluster().url())
}

pub fn redis_at(url: String) -> Store {
    Store::Redis(
        RedisStore::new(&RedisSettings {
            url,
            key_prefix: unique_prefix(),
            command_timeout: std::time::Duration::from_secs(2),
        })
        .unwrap(),
    )
}

async fn first_send_opens_a_verification_and_resends_join_it(store: Store) {
    let k = key("+34600600600");
    let a = reserved(&store, &k, send(T0, 1)).await;
    assert!(!a.joined);
    assert_eq!((a.seq, a.resends_left, a.expires_at), (0, 2, T0 + 5 * MIN));
    let b = reserved(&store, &k, send(T0 + MIN, 2)).await;
    assert!(b.joined);
    assert_eq!(b.verification_id, a.verification_id);
    assert_eq!((b.seq, b.resends_left, b.expires_at), (1, 1, T0 + 5 * MIN));
}

async fn sends_beyond_the_allowance_are_throttled_until_the_window_rolls(store: Store) {
    let k = key("+34600600601");
    for i in 0..3 {
        reserved(&store, &k, send(T0 + i * MIN, 1)).await;
    }
    let r = store
        .reserve_send(&k, send(T0 + 10 * MIN, 1))
        .await
        .unwrap();
    assert_eq!(
        r,
        Reservation::Throttled {
            retry_after_ms: DAY - 10 * MIN,
            cooldown: false
        }
    );
    // The first send leaves the window exactly one day after it was made.
    let r = store.reserve_send(&k, send(T0 + DAY, 1)).await.unwrap();
    assert!(matches!(r, Reservation::Reserved(_)), "{r:?}");
}

async fn cooldown_throttles_quick_resends(store: Store) {
    let k = key("+34600600602");
    let mut s = send(T0, 1);
    s.limits.cooldown_ms = 30_000;
    reserved(&store, &k, s.clone()).await;
    s.now = T0 + 10_000;
    assert_eq!(
        store.reserve_send(&k, s.clone()).await.unwrap(),
        Reservation::Throttled {
            retry_after_ms: 20_000,
            cooldown: true
        }
    );
    s.now = T0 + 30_000;
    assert!(reserved(&store, &k, s).await.joined);
}

/// Two instances' clocks differ by milliseconds, and a request stamps its time before it
/// reaches the store: a send may arrive stamped just before the last one. Without a cooldown
/// it is not throttled (it used to be refused with RESEND_COOLDOWN "retry in 1 s").
async fn a_send_stamped_before_the_last_one_is_not_throttled_without_a_cooldown(store: Store) {
    let k = key("+34600600626");
    reserved(&store, &k, send(T0 + 5, 1)).await;
    let r = store.reserve_send(&k, send(T0, 2)).await.unwrap();
    assert!(matches!(&r, Reservation::Reserved(r) if r.joined), "{r:?}");
}

async fn exempt_numbers_skip_the_window(store: Store) {
    let k = key("+12025550101");
    for i in 0..6 {
        let mut s = send(T0 + i, 1);
        s.limits.exempt = true;
        reserved(&store, &k, s).await;
    }
}

async fn right_code_is_approved_exactly_once(store: Store) {
    let k = key("+34600600603");
    reserved(&store, &k, send(T0, 7)).await;
    let r = store.check(&k, check(T0 + 1, Some(7))).await.unwrap();
    assert_eq!(r.verdict, CheckVerdict::Approved);
    let v = r.verification.unwrap();
    assert_eq!(
        (v.state, v.attempts, v.verified_at),
        (VerificationState::Approved, 1, Some(T0 + 1))
    );
    let again = store.check(&k, check(T0 + 2, Some(7))).await.unwrap();
    assert_eq!(again.verdict, CheckVerdict::NotFound);
}

async fn wrong_codes_count_and_exhaust_the_budget(store: Store) {
    let k = key("+34600600604");
    reserved(&store, &k, send(T0, 7)).await;
    let r = store.check(&k, check(T0 + 1, Some(8))).await.unwrap();
    assert_eq!(r.verdict, CheckVerdict::Wrong { attempts_left: 1 });
    let r = store.check(&k, check(T0 + 2, None)).await.unwrap();
    assert_eq!(r.verdict, CheckVerdict::Exhausted);
    let r = store.check(&k, check(T0 + 3, Some(7))).await.unwrap();
    assert_eq!(r.verdict, CheckVerdict::AlreadyDeclined);
    let v = r.verification.unwrap();
    assert_eq!(v.state, VerificationState::Declined);
    assert_eq!(v.declined, Some(DeclineReason::AttemptsExceeded));
    assert_eq!(
        v.attempts, 2,
        "a check of a declined verification is not an attempt"
    );
    let refused = store.reserve_send(&k, send(T0 + MIN, 9)).await.unwrap();
    assert_eq!(
        refused,
        Reservation::Declined {
            retry_after_ms: 5 * MIN - MIN
        }
    );
}

async fn every_live_code_of_the_verification_is_accepted(store: Store) {
    let k = key("+34600600605");
    reserved(&store, &k, send(T0, 1)).await;
    reserved(&store, &k, send(T0 + MIN, 2)).await;
    let r = store.check(&k, check(T0 + 2 * MIN, Some(1))).await.unwrap();
    assert_eq!(r.verdict, CheckVerdict::Approved);
}

async fn codes_expire_with_the_verification_and_resends_do_not_extend_it(store: Store) {
    let k = key("+34600600606");
    reserved(&store, &k, send(T0, 1)).await;
    reserved(&store, &k, send(T0 + 4 * MIN, 2)).await;
    let r = store.check(&k, check(T0 + 5 * MIN, Some(2))).await.unwrap();
    assert_eq!(r.verdict, CheckVerdict::NotFound);
    let i = store.inspect(&k, T0 + 5 * MIN).await.unwrap();
    assert!(i.verification.is_none());
}

async fn released_first_send_leaves_nothing_and_gives_the_budget_back(store: Store) {
    let k = key("+34600600607");
    let r = reserved(&store, &k, send(T0, 1)).await;
    store.release_send(&k, &r).await.unwrap();
    assert_eq!(
        store
            .check(&k, check(T0 + 1, Some(1)))
            .await
            .unwrap()
            .verdict,
        CheckVerdict::NotFound
    );
    for i in 0..3 {
        reserved(&store, &k, send(T0 + 2 + i, 1)).await;
    }
}

async fn a_discarded_record_is_gone_by_id_and_by_number(store: Store) {
    let k = key("+34600600619");
    let r = reserved(&store, &k, send(T0, 1)).await;
    let head = RecordHead {
        phone_number: k.e164.clone(),
        vendor_data: Some("u-1".into()),
        metadata: None,
    };
    let new = NewRecord {
        verification_id: &r.verification_id,
        head: &head,
        now: T0,
        ttl_ms: DAY,
    };
    store.create_record(&k.app, &k, new).await.unwrap();
    let opened = store
        .record(&k.app, &r.verification_id, T0 + 1)
        .await
        .unwrap();
    assert_eq!(opened.map(|o| o.head), Some(head));
    assert_eq!(
        store.latest_record_id(&k, T0 + 1).await.unwrap().as_deref(),
        Some(r.verification_id.as_str())
    );
    store
        .discard_record(&k.app, &r.verification_id)
        .await
        .unwrap();
    assert_eq!(
        store
            .record(&k.app, &r.verification_id, T0 + 1)
            .await
            .unwrap(),
        None
    );
    assert_eq!(store.latest_record_id(&k, T0 + 1).await.unwrap(), None);
}

async fn released_resend_keeps_the_earlier_codes(store: Store) {
    let k = key("+34600600608");
    reserved(&store, &k, send(T0, 1)).await;
    let second = reserved(&store, &k, send(T0 + 1, 2)).await;
    store.release_send(&k, &second).await.unwrap();
    assert_eq!(
        store
            .check(&k, check(T0 + 2, Some(2)))
            .await
            .unwrap()
            .verdict,
        CheckVerdict::Wrong { attempts_left: 1 }
    );
    assert_eq!(
        store
            .check(&k, check(T0 + 3, Some(1)))
            .await
            .unwrap()
            .verdict,
        CheckVerdict::Approved
    );
}

async fn released_send_restores_the_approval_it_replaced(store: Store) {
    let k = key("+34600600609");
    reserved(&store, &k, send(T0, 1)).await;
    store.check(&k, check(T0 + 1, Some(1))).await.unwrap();
    let replacing = reserved(&store, &k, send(T0 + 2, 2)).await;
    assert!(!replacing.joined);
    store.release_send(&k, &replacing).await.unwrap();
    let v = store
        .inspect(&k, T0 + 3)
        .await
        .unwrap()
        .verification
        .unwrap();
    assert_eq!(v.state, VerificationState::Approved);
}

async fn blocklist_refuses_sends_declines_checks_and_lists(store: Store) {
    let k = key("+34600600610");
    reserved(&store, &k, send(T0, 1)).await;
    assert!(store.block(&k).await.unwrap());
    assert!(!store.block(&k).await.unwrap());
    assert_eq!(store.blocked("app").await.unwrap(), ["+34600600610"]);
    assert_eq!(
        store.reserve_send(&k, send(T0 + 1, 2)).await.unwrap(),
        Reservation::Blocked
    );
    assert_eq!(
        store
            .check(&k, check(T0 + 2, Some(1)))
            .await
            .unwrap()
            .verdict,
        CheckVerdict::Blocked
    );
    let again = store.check(&k, check(T0 + 2, Some(1))).await.unwrap();
    assert_eq!(again.verdict, CheckVerdict::AlreadyDeclined);
    assert_eq!(
        again.verification.unwrap().declined,
        Some(DeclineReason::Blocked)
    );
    assert!(store.inspect(&k, T0 + 3).await.unwrap().blocked);
    assert!(store.unblock(&k).await.unwrap());
    assert!(!store.unblock(&k).await.unwrap());
    assert!(store.blocked("app").await.unwrap().is_empty());
}

async fn verified_for_index_detects_duplicates(store: Store) {
    let k = key("+34600600611");
    let mut s = send(T0, 1);
    s.vendor_data = Some("user-a");
    reserved(&store, &k, s).await;
    let mut c = check(T0 + 1, Some(1));
    c.vendor_data = Some("user-a");
    assert_eq!(
        store.check(&k, c).await.unwrap().verdict,
        CheckVerdict::Approved
    );
    assert_eq!(
        store
            .inspect(&k, T0 + 2)
            .await
            .unwrap()
            .verified_for
            .as_deref(),
        Some("user-a")
    );

    let mut s = send(T0 + 3, 2);
    s.vendor_data = Some("user-b");
    s.refuse_duplicate = true;
    assert_eq!(
        store.reserve_send(&k, s.clone()).await.unwrap(),
        Reservation::Duplicate
    );
    s.refuse_duplicate = false;
    let r = reserved(&store, &k, s).await;
    assert_eq!(r.verified_for.as_deref(), Some("user-a"));
    let mut c = check(T0 + 4, Some(2));
    c.vendor_data = Some("user-b");
    c.refuse_duplicate = true;
    let r = store.check(&k, c).await.unwrap();
    assert_eq!(r.verdict, CheckVerdict::Duplicate);
    assert_eq!(r.verified_for.as_deref(), Some("user-a"));
}

async fn record_channel_names_the_channel_that_delivered(store: Store) {
    let k = key("+34600600612");
    let r = reserved(&store, &k, send(T0, 1)).await;
    store
        .record_delivery(
            &k,
            RecordDelivery {
                route: None,
                verification_id: &r.verification_id,
                seq: r.seq,
                channel: Some(Channel::Call),
                confirm: None,
            },
        )
        .await
        .unwrap();
    let v = store
        .inspect(&k, T0 + 1)
        .await
        .unwrap()
        .verification
        .unwrap();
    assert_eq!(v.channel, Channel::Call);
}

async fn the_approval_names_the_message_that_carried_the_approved_code(store: Store) {
    let k = key("+34600600623");
    let first = reserved(&store, &k, send(T0, 1)).await;
    let second = reserved(&store, &k, send(T0 + 1, 2)).await;
    for (r, id) in [(&first, "req-1"), (&second, "req-2")] {
        store
            .record_delivery(
                &k,
                RecordDelivery {
                    route: None,
                    verification_id: &r.verification_id,
                    seq: r.seq,
                    channel: None,
                    confirm: Some(("telegram", id)),
                },
            )
            .await
            .unwrap();
    }
    // The user types the first message's code: that is the message to confirm.
    let r = store.check(&k, check(T0 + 2, Some(1))).await.unwrap();
    assert_eq!(r.verdict, CheckVerdict::Approved);
    assert_eq!(r.confirm, Some(("telegram".to_owned(), "req-1".to_owned())));
}

async fn the_approval_names_the_route_that_carried_the_approved_code(store: Store) {
    let k = key("+34600600624");
    let first = reserved(&store, &k, send(T0, 1)).await;
    let second = reserved(
        &store,
        &k,
        ReserveSend {
            route: "whatsapp\tmeta_whatsapp\t1767225600001",
            ..send(T0 + 1, 2)
        },
    )
    .await;
    // The first code went out on another route than the one reserved.
    store
        .record_delivery(
            &k,
            RecordDelivery {
                route: Some("sms\tinfobip\t1767225600000"),
                verification_id: &first.verification_id,
                seq: first.seq,
                channel: None,
                confirm: None,
            },
        )
        .await
        .unwrap();
    assert_eq!(second.seq, 1);
    let r = store.check(&k, check(T0 + 2, Some(1))).await.unwrap();
    assert_eq!(r.verdict, CheckVerdict::Approved);
    assert_eq!(r.route.as_deref(), Some("sms\tinfobip\t1767225600000"));
    assert!(
        r.superseded,
        "a later code had gone out before the first one was entered"
    );
    let k2 = key("+34600600625");
    reserved(&store, &k2, send(T0, 1)).await;
    reserved(
        &store,
        &k2,
        ReserveSend {
            route: "whatsapp\tmeta_whatsapp\t7",
            ..send(T0 + 1, 2)
        },
    )
    .await;
    let r = store.check(&k2, check(T0 + 2, Some(2))).await.unwrap();
    assert_eq!(r.route.as_deref(), Some("whatsapp\tmeta_whatsapp\t7"));
    assert!(!r.superseded, "the latest code is never superseded");
}

async fn numbers_and_apps_do_not_share_state(store: Store) {
    let a = NumberKey::new("app", "+34600600613");
    let b = NumberKey::new("other", "+34600600613");
    reserved(&store, &a, send(T0, 1)).await;
    assert_eq!(
        store
            .check(&b, check(T0 + 1, Some(1)))
            .await
            .unwrap()
            .verdict,
        CheckVerdict::NotFound
    );
    assert!(!reserved(&store, &b, send(T0 + 2, 1)).await.joined);
}

fn redeliver(now: i64, verification_id: &str, failed_seq: u32, d: u8) -> Redeliver<'_> {
    Redeliver {
        route: "sms\tconsole\t0",
        now,
        verification_id,
        failed_seq,
        digest: digest(d),
        channel: Channel::Sms,
        max_live: 3,
    }
}

async fn late_fallback_code_joins_only_the_newest_send_of_a_pending_verification(store: Store) {
    let k = key("+34600600614");
    let first = reserved(&store, &k, send(T0, 1)).await;
    let id = first.verification_id.as_str();
    let added = store
        .redeliver(&k, redeliver(T0 + 10, id, 0, 2))
        .await
        .unwrap();
    assert_eq!(
        added,
        Redelivery::Added {
            seq: 1,
            expires_at: first.expires_at
        },
        "same verification, same expiry"
    );
    let v = store
        .inspect(&k, T0 + 11)
        .await
        .unwrap()
        .verification
        .unwrap();
    assert_eq!(v.channel, Channel::Sms);
    assert_eq!(v.attempts, 0, "a late fallback adds no attempt");
    // A second failure report of the first message: a newer code exists, nothing to do.
    assert_eq!(
        store
            .redeliver(&k, redeliver(T0 + 12, id, 0, 3))
            .await
            .unwrap(),
        Redelivery::Stale
    );
    assert_eq!(
        store
            .redeliver(&k, redeliver(T0 + 12, "another-id", 1, 3))
            .await
            .unwrap(),
        Redelivery::Stale
    );
    // It took no place in the send window: two resends are still allowed.
    let resend = reserved(&store, &k, send(T0 + 20, 4)).await;
    assert!(resend.joined);
    assert_eq!(resend.seq, 2);
    assert_eq!(resend.resends_left, 1);
    // Both the failed message's code and the fallback code stay acceptable, once.
    assert_eq!(
        store
            .check(&k, check(T0 + 30, Some(2)))
            .await
            .unwrap()
            .verdict,
        CheckVerdict::Approved
    );
    assert_eq!(
        store
            .check(&k, check(T0 + 31, Some(1)))
            .await
            .unwrap()
            .verdict,
        CheckVerdict::NotFound
    );
    // Over: no fallback for an approved verification.
    assert_eq!(
        store
            .redeliver(&k, redeliver(T0 + 40, id, 2, 5))
            .await
            .unwrap(),
        Redelivery::Stale
    );
}

async fn late_fallback_never_revives_an_expired_or_declined_verification(store: Store) {
    let k = key("+34600600615");
    let r = reserved(&store, &k, send(T0, 1)).await;
    assert_eq!(
        store
            .redeliver(&k, redeliver(T0 + 5 * MIN, &r.verification_id, 0, 2))
            .await
            .unwrap(),
        Redelivery::Stale,
        "expired"
    );
    let k = key("+34600600616");
    let r = reserved(&store, &k, send(T0, 1)).await;
    store.check(&k, check(T0 + 1, Some(9))).await.unwrap();
    let exhausted = store.check(&k, check(T0 + 2, Some(9))).await.unwrap();
    assert_eq!(exhausted.verdict, CheckVerdict::Exhausted);
    assert_eq!(
        store
            .redeliver(&k, redeliver(T0 + 3, &r.verification_id, 0, 2))
            .await
            .unwrap(),
        Redelivery::Stale,
        "declined"
    );
}

async fn forgotten_late_fallback_code_is_refused_and_the_rest_stays(store: Store) {
    let k = key("+34600600617");
    let r = reserved(&store, &k, send(T0, 1)).await;
    let Redelivery::Added { seq, .. } = store
        .redeliver(&k, redeliver(T0 + 1, &r.verification_id, 0, 2))
        .await
        .unwrap()
    else {
        panic!("pending verification takes the fallback code");
    };
    store
        .forget_code(&k, &r.verification_id, seq)
        .await
        .unwrap();
    assert!(matches!(
        store
            .check(&k, check(T0 + 2, Some(2)))
            .await
            .unwrap()
            .verdict,
        CheckVerdict::Wrong { .. }
    ));
    assert_eq!(
        store
            .check(&k, check(T0 + 3, Some(1)))
            .await
            .unwrap()
            .verdict,
        CheckVerdict::Approved
    );
}

fn delivery_ref(e164: &str) -> DeliveryRef {
    DeliveryRef {
        app: "app".into(),
        e164: e164.into(),
        verification_id: "v1".into(),
        seq: 0,
        channel: Channel::Whatsapp,
        next_route: 1,
        pinned: None,
        preferred: Some(Channel::Whatsapp),
        locale: "pt-BR".into(),
        code_len: 6,
    }
}

async fn delivery_records_are_found_by_provider_and_message_and_taken_once(store: Store) {
    let msg = format!("wamid.{}", unique_prefix());
    let record = delivery_ref("+5511987654321");
    store
        .remember_delivery("meta_whatsapp", &msg, &record, T0, T0 + 5 * MIN)
        .await
        .unwrap();
    assert_eq!(
        store
            .take_delivery("twilio", &msg, true, T0 + 1)
            .await
            .unwrap(),
        None,
        "another provider's message"
    );
    assert_eq!(
        store
            .take_delivery("meta_whatsapp", &msg, false, T0 + 1)
            .await
            .unwrap(),
        Some(record.clone()),
        "a progress report leaves it in place"
    );
    assert_eq!(
        store
            .take_delivery("meta_whatsapp", &msg, true, T0 + 2)
            .await
            .unwrap(),
        Some(record)
    );
    assert_eq!(
        store
            .take_delivery("meta_whatsapp", &msg, true, T0 + 3)
            .await
            .unwrap(),
        None,
        "a repeated final report finds nothing"
    );
    // A verification that is already over keeps nothing.
    store
        .remember_delivery("meta_whatsapp", "late", &delivery_ref("+1"), T0, T0)
        .await
        .unwrap();
    assert_eq!(
        store
            .take_delivery("meta_whatsapp", "late", true, T0)
            .await
            .unwrap(),
        None
    );
}

fn exempt(now: i64, d: u8) -> ReserveSend<'static> {
    ReserveSend {
        route: "sms\tconsole\t0",
        limits: SendLimits {
            exempt: true,
            ..limits()
        },
        ..send(now, d)
    }
}

fn check_with_budget(now: i64, d: u8) -> CheckInput<'static> {
    CheckInput {
        max_attempts: 100,
        ..check(now, Some(d))
    }
}

async fn exempt_sends_never_leave_more_than_one_plus_max_resends_live_codes(store: Store) {
    let k = key("+12025550107");
    // 20 sends of codes 1..=20: with max_resends = 2 only 18, 19 and 20 may be live.
    for d in 1..=20u8 {
        reserved(&store, &k, exempt(T0 + i64::from(d), d)).await;
    }
    for d in [1u8, 10, 17] {
        assert!(
            matches!(
                store
                    .check(&k, check_with_budget(T0 + 100, d))
                    .await
                    .unwrap()
                    .verdict,
                CheckVerdict::Wrong { .. }
            ),
            "code {d} was dropped and must not match"
        );
    }
    assert_eq!(
        store
            .check(&k, check_with_budget(T0 + 101, 18))
            .await
            .unwrap()
            .verdict,
        CheckVerdict::Approved
    );
}

async fn the_live_code_cap_holds_for_late_fallback_codes_too(store: Store) {
    let k = key("+34600600620");
    reserved(&store, &k, send(T0, 1)).await;
    reserved(&store, &k, send(T0 + 1, 2)).await;
    let last = reserved(&store, &k, send(T0 + 2, 3)).await;
    // Three live codes (1, 2, 3); a late fallback adds code 4 and drops code 1.
    let added = store
        .redeliver(&k, redeliver(T0 + 3, &last.verification_id, last.seq, 4))
        .await
        .unwrap();
    assert!(matches!(added, Redelivery::Added { .. }), "{added:?}");
    assert!(matches!(
        store
            .check(&k, check_with_budget(T0 + 4, 1))
            .await
            .unwrap()
            .verdict,
        CheckVerdict::Wrong { .. }
    ));
    assert_eq!(
        store
            .check(&k, check_with_budget(T0 + 5, 2))
            .await
            .unwrap()
            .verdict,
        CheckVerdict::Approved
    );
}

async fn a_release_never_deletes_a_verification_that_was_checked(store: Store) {
    let k = key("+34600600621");
    // A send in flight; a wrong check meanwhile; then its only code is released.
    let r = reserved(&store, &k, send(T0, 1)).await;
    assert_eq!(
        store
            .check(&k, check(T0 + 1, Some(9)))
            .await
            .unwrap()
            .verdict,
        CheckVerdict::Wrong { attempts_left: 1 }
    );
    store.release_send(&k, &r).await.unwrap();
    // The next send joins the same verification: the failure is still counted.
    let next = reserved(&store, &k, send(T0 + 2, 2)).await;
    assert_eq!(next.verification_id, r.verification_id);
    assert_eq!(
        store
            .check(&k, check(T0 + 3, Some(9)))
            .await
            .unwrap()
            .verdict,
        CheckVerdict::Exhausted
    );
}

async fn late_fallback_gives_no_new_code_to_a_number_blocked_after_its_send(store: Store) {
    let k = key("+34600600622");
    let r = reserved(&store, &k, send(T0, 1)).await;
    store.block(&k).await.unwrap();
    assert_eq!(
        store
            .redeliver(&k, redeliver(T0 + 1, &r.verification_id, r.seq, 2))
            .await
            .unwrap(),
        Redelivery::Stale
    );
}

fn counter(key: &str, add: Vec<(Field, i64)>) -> Count {
    Count {
        key: CounterKey(format!("app:prefix:{key}")),
        window: Window {
            span_ms: 60 * MIN,
            buckets: 6,
        },
        add,
    }
}

async fn counters_sum_over_a_sliding_window(store: Store) {
    let key = "+3460001";
    let sends = |n| counter(key, vec![(Field::Sends, n)]);
    assert_eq!(
        store.count(T0, &[sends(3)]).await.unwrap()[0].get(Field::Sends),
        3
    );
    let t = store.count(T0 + 30 * MIN, &[sends(2)]).await.unwrap()[0];
    assert_eq!(t.get(Field::Sends), 5);
    // 70 minutes on, the first bucket has left the window; the second has not.
    let t = store.count(T0 + 70 * MIN, &[sends(0)]).await.unwrap()[0];
    assert_eq!(t.get(Field::Sends), 2);
    let t = store.count(T0 + 200 * MIN, &[sends(0)]).await.unwrap()[0];
    assert_eq!(t.get(Field::Sends), 0);
}

async fn a_reservation_carries_its_counts_and_a_refused_one_still_counts(store: Store) {
    let k = key("+34600600626");
    let counts = [
        counter("+3460004", vec![(Field::Sends, 1)]),
        counter("+3460005", vec![(Field::Sends, 2)]),
    ];
    let (r, t) = store
        .reserve_counted(&k, send(T0, 1), &counts)
        .await
        .unwrap();
    assert!(matches!(r, Reservation::Reserved(_)), "{r:?}");
    assert_eq!((t[0].get(Field::Sends), t[1].get(Field::Sends)), (1, 2));
    store.block(&k).await.unwrap();
    let (r, t) = store
        .reserve_counted(&k, send(T0 + 1, 2), &counts)
        .await
        .unwrap();
    assert_eq!(r, Reservation::Blocked);
    assert_eq!((t[0].get(Field::Sends), t[1].get(Field::Sends)), (2, 4));
    // Without counts it is a plain reservation.
    let (r, t) = store
        .reserve_counted(&key("+34600600627"), send(T0, 1), &[])
        .await
        .unwrap();
    assert!(matches!(r, Reservation::Reserved(_)));
    assert!(t.is_empty());
}

async fn counters_of_one_batch_are_independent_and_ordered(store: Store) {
    let tallies = store
        .count(
            T0,
            &[
                counter("+3460002", vec![(Field::Sends, 1)]),
                counter("+3460003", vec![(Field::Sends, 4), (Field::Approvals, 2)]),
            ],
        )
        .await
        .unwrap();
    assert_eq!(tallies[0].get(Field::Sends), 1);
    assert_eq!(
        (
            tallies[1].get(Field::Sends),
            tallies[1].get(Field::Approvals)
        ),
        (4, 2)
    );
}

async fn a_counter_block_holds_until_its_end_and_an_approval_lifts_it(store: Store) {
    let c = counter("+3460004", vec![(Field::Sends, 1)]);
    store.count(T0, std::slice::from_ref(&c)).await.unwrap();
    assert_eq!(
        store
            .block_counter("app", &c.key, T0 + MIN, T0)
            .await
            .unwrap(),
        1
    );
    let t = store.count(T0 + 1, std::slice::from_ref(&c)).await.unwrap()[0];
    assert!(t.is_blocked(T0 + 1) && t.blocks == 1);
    assert!(!t.is_blocked(T0 + MIN));
    let approval = counter("+3460004", vec![(Field::Approvals, 1)]);
    let t = store.count(T0 + 2, &[approval]).await.unwrap()[0];
    assert!(!t.is_blocked(T0 + 2));
    // The count of blocks stays: the next cool-off doubles.
    assert_eq!(t.blocks, 1);
}

macro_rules! conformance {
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

conformance!(
    first_send_opens_a_verification_and_resends_join_it,
    sends_beyond_the_allowance_are_throttled_until_the_window_rolls,
    cooldown_throttles_quick_resends,
    a_send_stamped_before_the_last_one_is_not_throttled_without_a_cooldown,
    exempt_numbers_skip_the_window,
    right_code_is_approved_exactly_once,
    wrong_codes_count_and_exhaust_the_budget,
    every_live_code_of_the_verification_is_accepted,
    codes_expire_with_the_verification_and_resends_do_not_extend_it,
    released_first_send_leaves_nothing_and_gives_the_budget_back,
    a_discarded_record_is_gone_by_id_and_by_number,
    released_resend_keeps_the_earlier_codes,
    released_send_restores_the_approval_it_replaced,
    blocklist_refuses_sends_declines_checks_and_lists,
    verified_for_index_detects_duplicates,
    record_channel_names_the_channel_that_delivered,
    the_approval_names_the_message_that_carried_the_approved_code,
    the_approval_names_the_route_that_carried_the_approved_code,
    numbers_and_apps_do_not_share_state,
    late_fallback_code_joins_only_the_newest_send_of_a_pending_verification,
    late_fallback_never_revives_an_expired_or_declined_verification,
    forgotten_late_fallback_code_is_refused_and_the_rest_stays,
    delivery_records_are_found_by_provider_and_message_and_taken_once,
    exempt_sends_never_leave_more_than_one_plus_max_resends_live_codes,
    the_live_code_cap_holds_for_late_fallback_codes_too,
    a_release_never_deletes_a_verification_that_was_checked,
    late_fallback_gives_no_new_code_to_a_number_blocked_after_its_send,
    counters_sum_over_a_sliding_window,
    counters_of_one_batch_are_independent_and_ordered,
    a_reservation_carries_its_counts_and_a_refused_one_still_counts,
    a_counter_block_holds_until_its_end_and_an_approval_lifts_it,
);
