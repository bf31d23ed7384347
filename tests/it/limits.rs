//! Validity, attempt and resend limits, through the engine.

use switchboard::{CheckRequest, CheckStatus, SendRequest, SendStatus};

use crate::support::{ES_MOBILE, ES_MOBILE_2, Providers, Step, engine, engine_with};
use switchboard::providers::FailureClass;

fn check(n: &str, code: &str) -> CheckRequest {
    CheckRequest::new(n, code)
}

fn wrong(code: &str) -> String {
    // A code of the same length that differs in every digit.
    code.chars()
        .map(|c| char::from(b'0' + ((c as u8 - b'0' + 1) % 10)))
        .collect()
}

#[tokio::test]
async fn right_code_is_approved_once_and_then_not_found() {
    let t = engine();
    let sent = t.engine.send(SendRequest::new(ES_MOBILE)).await.unwrap();
    assert_eq!(sent.status, SendStatus::Success);
    let code = t.providers.last_code_to(ES_MOBILE);
    let first = t.engine.check(check(ES_MOBILE, &code)).await.unwrap();
    assert_eq!(first.status, CheckStatus::Approved);
    assert_eq!(first.phone.verification_attempts, 1);
    assert!(first.phone.verified_at.is_some());
    let again = t.engine.check(check(ES_MOBILE, &code)).await.unwrap();
    assert_eq!(again.status, CheckStatus::ExpiredOrNotFound);
}

#[tokio::test]
async fn code_expires_five_minutes_after_the_first_send() {
    let t = engine();
    t.engine.send(SendRequest::new(ES_MOBILE)).await.unwrap();
    let code = t.providers.last_code_to(ES_MOBILE);
    t.clock.advance_secs(300);
    let late = t.engine.check(check(ES_MOBILE, &code)).await.unwrap();
    assert_eq!(late.status, CheckStatus::ExpiredOrNotFound);
}

#[tokio::test]
async fn code_is_still_valid_just_before_expiry() {
    let t = engine();
    t.engine.send(SendRequest::new(ES_MOBILE)).await.unwrap();
    let code = t.providers.last_code_to(ES_MOBILE);
    t.clock.advance_ms(299_999);
    let ok = t.engine.check(check(ES_MOBILE, &code)).await.unwrap();
    assert_eq!(ok.status, CheckStatus::Approved);
}

#[tokio::test]
async fn resend_does_not_extend_validity() {
    let t = engine();
    t.engine.send(SendRequest::new(ES_MOBILE)).await.unwrap();
    t.clock.advance_secs(200);
    let resent = t.engine.send(SendRequest::new(ES_MOBILE)).await.unwrap();
    assert_eq!(resent.status, SendStatus::Retry);
    let code = t.providers.last_code_to(ES_MOBILE);
    t.clock.advance_secs(100);
    let late = t.engine.check(check(ES_MOBILE, &code)).await.unwrap();
    assert_eq!(late.status, CheckStatus::ExpiredOrNotFound);
}

#[tokio::test]
async fn code_from_an_earlier_send_of_the_same_verification_stays_acceptable() {
    let t = engine();
    t.engine.send(SendRequest::new(ES_MOBILE)).await.unwrap();
    let first_code = t.providers.last_code_to(ES_MOBILE);
    t.engine.send(SendRequest::new(ES_MOBILE)).await.unwrap();
    let ok = t.engine.check(check(ES_MOBILE, &first_code)).await.unwrap();
    assert_eq!(ok.status, CheckStatus::Approved);
}

#[tokio::test]
async fn two_wrong_codes_decline_with_attempts_exceeded_and_the_right_code_no_longer_works() {
    let t = engine();
    t.engine.send(SendRequest::new(ES_MOBILE)).await.unwrap();
    let code = t.providers.last_code_to(ES_MOBILE);
    let first = t
        .engine
        .check(check(ES_MOBILE, &wrong(&code)))
        .await
        .unwrap();
    assert_eq!(first.status, CheckStatus::Failed);
    assert_eq!(first.attempts_left, Some(1));
    let second = t
        .engine
        .check(check(ES_MOBILE, &wrong(&code)))
        .await
        .unwrap();
    assert_eq!(second.status, CheckStatus::Declined);
    assert_eq!(
        second.reason.as_deref(),
        Some("VERIFICATION_CODE_ATTEMPTS_EXCEEDED")
    );
    assert!(
        second
            .phone
            .warnings
            .iter()
            .any(|w| w.risk.as_str() == "VERIFICATION_CODE_ATTEMPTS_EXCEEDED")
    );
    let right = t.engine.check(check(ES_MOBILE, &code)).await.unwrap();
    assert_eq!(right.status, CheckStatus::Declined);
}

#[tokio::test]
async fn one_wrong_code_then_the_right_one_is_approved_on_the_second_attempt() {
    let t = engine();
    t.engine.send(SendRequest::new(ES_MOBILE)).await.unwrap();
    let code = t.providers.last_code_to(ES_MOBILE);
    t.engine
        .check(check(ES_MOBILE, &wrong(&code)))
        .await
        .unwrap();
    let ok = t.engine.check(check(ES_MOBILE, &code)).await.unwrap();
    assert_eq!(ok.status, CheckStatus::Approved);
    assert_eq!(ok.phone.verification_attempts, 2);
}

#[tokio::test]
async fn garbage_code_counts_as_an_attempt() {
    let t = engine();
    t.engine.send(SendRequest::new(ES_MOBILE)).await.unwrap();
    let out = t
        .engine
        .check(check(ES_MOBILE, "12ab<script>"))
        .await
        .unwrap();
    assert_eq!(out.status, CheckStatus::Failed);
    assert_eq!(out.attempts_left, Some(1));
}

#[tokio::test]
async fn resend_never_resets_the_failure_count() {
    let t = engine();
    t.engine.send(SendRequest::new(ES_MOBILE)).await.unwrap();
    let code = t.providers.last_code_to(ES_MOBILE);
    t.engine
        .check(check(ES_MOBILE, &wrong(&code)))
        .await
        .unwrap();
    t.engine.send(SendRequest::new(ES_MOBILE)).await.unwrap();
    let new_code = t.providers.last_code_to(ES_MOBILE);
    let out = t
        .engine
        .check(check(ES_MOBILE, &wrong(&new_code)))
        .await
        .unwrap();
    assert_eq!(out.status, CheckStatus::Declined);
}

#[tokio::test]
async fn declined_verification_refuses_new_sends_until_it_expires() {
    let t = engine();
    t.engine.send(SendRequest::new(ES_MOBILE)).await.unwrap();
    for _ in 0..2 {
        t.engine.check(check(ES_MOBILE, "000000")).await.unwrap();
    }
    let refused = t.engine.send(SendRequest::new(ES_MOBILE)).await.unwrap();
    assert_eq!(refused.status, SendStatus::Blocked);
    assert_eq!(
        refused.reason.as_deref(),
        Some("VERIFICATION_CODE_ATTEMPTS_EXCEEDED")
    );
    assert!(refused.retry_after.unwrap() <= 300);
    t.clock.advance_secs(300);
    let fresh = t.engine.send(SendRequest::new(ES_MOBILE)).await.unwrap();
    assert_eq!(fresh.status, SendStatus::Success);
}

#[tokio::test]
async fn fourth_send_in_a_day_is_refused_with_retry_after_until_the_window_rolls() {
    let t = engine();
    let statuses: Vec<_> = futures_statuses(&t, 3).await;
    assert_eq!(
        statuses,
        [SendStatus::Success, SendStatus::Retry, SendStatus::Retry]
    );
    let err = t
        .engine
        .send(SendRequest::new(ES_MOBILE))
        .await
        .unwrap_err();
    assert_eq!(err.code(), "RESEND_LIMIT_EXCEEDED");
    assert!(err.is_retryable());
    assert_eq!(err.retry_after_secs(), Some(86_400));
    // The window is rolling: the first send leaves it after 24 h.
    t.clock.advance_secs(86_400);
    let ok = t.engine.send(SendRequest::new(ES_MOBILE)).await.unwrap();
    assert_eq!(ok.status, SendStatus::Success);
}

async fn futures_statuses(t: &crate::support::TestEngine, n: usize) -> Vec<SendStatus> {
    let mut out = Vec::new();
    for _ in 0..n {
        out.push(
            t.engine
                .send(SendRequest::new(ES_MOBILE))
                .await
                .unwrap()
                .status,
        );
    }
    out
}

#[tokio::test]
async fn resends_left_counts_down() {
    let t = engine();
    let a = t.engine.send(SendRequest::new(ES_MOBILE)).await.unwrap();
    let b = t.engine.send(SendRequest::new(ES_MOBILE)).await.unwrap();
    let c = t.engine.send(SendRequest::new(ES_MOBILE)).await.unwrap();
    assert_eq!((a.resends_left, b.resends_left, c.resends_left), (2, 1, 0));
}

#[tokio::test]
async fn resend_limit_is_per_number() {
    let t = engine();
    for _ in 0..3 {
        t.engine.send(SendRequest::new(ES_MOBILE)).await.unwrap();
    }
    assert!(t.engine.send(SendRequest::new(ES_MOBILE)).await.is_err());
    let other = t.engine.send(SendRequest::new(ES_MOBILE_2)).await.unwrap();
    assert_eq!(other.status, SendStatus::Success);
}

#[tokio::test]
async fn send_that_every_route_failed_does_not_consume_the_resend_budget() {
    let p = Providers::delivering();
    for provider in [&p.wa, &p.sms_a, &p.sms_b, &p.voice] {
        provider.then([Step::Fail(FailureClass::Fallback, "unreachable"); 5]);
    }
    let t = engine_with("", p);
    for _ in 0..5 {
        let out = t.engine.send(SendRequest::new(ES_MOBILE)).await.unwrap();
        assert_eq!(out.status, SendStatus::Undeliverable);
        assert_eq!(out.resends_left, 2);
    }
    for expected in [SendStatus::Success, SendStatus::Retry, SendStatus::Retry] {
        assert_eq!(
            t.engine
                .send(SendRequest::new(ES_MOBILE))
                .await
                .unwrap()
                .status,
            expected
        );
    }
}

#[tokio::test]
async fn failed_first_send_leaves_nothing_to_check() {
    let p = Providers::delivering();
    for provider in [&p.wa, &p.sms_a, &p.sms_b, &p.voice] {
        provider.then([Step::Fail(FailureClass::Fallback, "unreachable")]);
    }
    let t = engine_with("", p);
    t.engine.send(SendRequest::new(ES_MOBILE)).await.unwrap();
    let code = t.providers.last_code_to(ES_MOBILE);
    let out = t.engine.check(check(ES_MOBILE, &code)).await.unwrap();
    assert_eq!(out.status, CheckStatus::ExpiredOrNotFound);
}

#[tokio::test]
async fn cooldown_refuses_a_quick_resend_when_configured() {
    let t = engine_with(
        "[workflow.limits]\nresend_cooldown_secs = 30\n",
        Providers::delivering(),
    );
    t.engine.send(SendRequest::new(ES_MOBILE)).await.unwrap();
    t.clock.advance_secs(10);
    let err = t
        .engine
        .send(SendRequest::new(ES_MOBILE))
        .await
        .unwrap_err();
    assert_eq!(err.code(), "RESEND_COOLDOWN");
    assert_eq!(err.retry_after_secs(), Some(20));
    t.clock.advance_secs(20);
    assert_eq!(
        t.engine
            .send(SendRequest::new(ES_MOBILE))
            .await
            .unwrap()
            .status,
        SendStatus::Retry
    );
}

#[tokio::test]
async fn limits_are_configurable_per_app() {
    let t = engine_with(
        "[apps.lenient.limits]\nmax_attempts = 3\nvalidity_secs = 600\n",
        Providers::delivering(),
    );
    let mut send = SendRequest::new(ES_MOBILE);
    send.app = Some("lenient".into());
    t.engine.send(send).await.unwrap();
    let code = t.providers.last_code_to(ES_MOBILE);
    let attempt = |c: &str| {
        let mut r = check(ES_MOBILE, c);
        r.app = Some("lenient".into());
        r
    };
    for left in [2, 1] {
        let out = t.engine.check(attempt(&wrong(&code))).await.unwrap();
        assert_eq!(out.attempts_left, Some(left));
    }
    t.clock.advance_secs(400);
    assert_eq!(
        t.engine.check(attempt(&code)).await.unwrap().status,
        CheckStatus::Approved
    );
}

#[tokio::test]
async fn state_is_scoped_per_app() {
    let t = engine_with("[apps.other]\nbrand = \"Other\"\n", Providers::delivering());
    t.engine.send(SendRequest::new(ES_MOBILE)).await.unwrap();
    let code = t.providers.last_code_to(ES_MOBILE);
    let mut other = CheckRequest::new(ES_MOBILE, code);
    other.app = Some("other".into());
    assert_eq!(
        t.engine.check(other).await.unwrap().status,
        CheckStatus::ExpiredOrNotFound
    );
}

#[tokio::test]
async fn unknown_app_is_a_clear_error() {
    let t = engine();
    let mut send = SendRequest::new(ES_MOBILE);
    send.app = Some("nope".into());
    let err = t.engine.send(send).await.unwrap_err();
    assert_eq!(err.code(), "UNKNOWN_APP");
    assert_eq!(t.providers.total_calls(), 0);
}

#[tokio::test]
async fn code_size_option_sets_the_number_of_digits_and_is_validated() {
    let t = engine();
    let mut send = SendRequest::new(ES_MOBILE);
    send.options.code_size = Some(8);
    t.engine.send(send).await.unwrap();
    assert_eq!(t.providers.last_code_to(ES_MOBILE).len(), 8);
    for bad in [3, 11] {
        let mut send = SendRequest::new(ES_MOBILE_2);
        send.options.code_size = Some(bad);
        let err = t.engine.send(send).await.unwrap_err();
        assert_eq!(err.code(), "INVALID_REQUEST");
        assert!(err.to_string().contains("code_size"));
    }
}
