//! Risk screening and decisions through the engine.

use switchboard::risk::LogType;
use switchboard::{CheckRequest, CheckStatus, SendRequest, SendStatus, VerificationStatus};

use crate::support::{ES_MOBILE, Providers, engine, engine_with};

/// A UK premium-rate number (09).
const PREMIUM: &str = "+449098765432";
/// A Spanish shared-cost number (901).
const SHARED_COST: &str = "+34901123456";
/// A UK VoIP number (056).
const VOIP: &str = "+445612345678";

fn risks(report: &switchboard::PhoneReport) -> Vec<&'static str> {
    report.warnings.iter().map(|w| w.risk.as_str()).collect()
}

#[tokio::test]
async fn premium_rate_and_shared_cost_numbers_are_blocked_as_high_risk_before_any_provider() {
    let t = engine();
    for n in [PREMIUM, SHARED_COST] {
        let out = t.engine.send(SendRequest::new(n)).await.unwrap();
        assert_eq!(out.status, SendStatus::Blocked, "{n}");
        assert_eq!(out.reason.as_deref(), Some("HIGH_RISK_PHONE_NUMBER"));
        assert_eq!(out.phone.status, VerificationStatus::Declined);
    }
    assert_eq!(t.providers.total_calls(), 0);
}

#[tokio::test]
async fn pumping_prone_prefix_from_config_is_high_risk() {
    let t = engine_with(
        "[risk]\nhigh_risk_prefixes = [\"+3460060\"]\n",
        Providers::delivering(),
    );
    let out = t.engine.send(SendRequest::new(ES_MOBILE)).await.unwrap();
    assert_eq!(out.reason.as_deref(), Some("HIGH_RISK_PHONE_NUMBER"));
    assert_eq!(t.providers.total_calls(), 0);
}

#[tokio::test]
async fn blocklisted_number_is_blocked_before_any_provider_and_unblocking_restores_it() {
    let t = engine();
    assert!(t.engine.block(ES_MOBILE, None).await.unwrap());
    assert_eq!(t.engine.blocklist(None).await.unwrap(), [ES_MOBILE]);
    let out = t.engine.send(SendRequest::new(ES_MOBILE)).await.unwrap();
    assert_eq!(out.status, SendStatus::Blocked);
    assert_eq!(out.reason.as_deref(), Some("PHONE_NUMBER_IN_BLOCKLIST"));
    assert_eq!(risks(&out.phone), ["PHONE_NUMBER_IN_BLOCKLIST"]);
    assert_eq!(t.providers.total_calls(), 0);
    assert!(t.engine.unblock(ES_MOBILE, None).await.unwrap());
    let out = t.engine.send(SendRequest::new(ES_MOBILE)).await.unwrap();
    assert_eq!(out.status, SendStatus::Success);
}

#[tokio::test]
async fn number_blocklisted_after_the_send_is_declined_at_check() {
    let t = engine();
    t.engine.send(SendRequest::new(ES_MOBILE)).await.unwrap();
    let code = t.providers.last_code_to(ES_MOBILE);
    t.engine.block(ES_MOBILE, None).await.unwrap();
    let out = t
        .engine
        .check(CheckRequest::new(ES_MOBILE, code.clone()))
        .await
        .unwrap();
    assert_eq!(out.status, CheckStatus::Declined);
    assert_eq!(out.reason.as_deref(), Some("PHONE_NUMBER_IN_BLOCKLIST"));
    // The verification stays declined for that reason, even once the number is unblocked.
    t.engine.unblock(ES_MOBILE, None).await.unwrap();
    let again = t
        .engine
        .check(CheckRequest::new(ES_MOBILE, code))
        .await
        .unwrap();
    assert_eq!(again.status, CheckStatus::Declined);
    assert_eq!(again.reason.as_deref(), Some("PHONE_NUMBER_IN_BLOCKLIST"));
}

#[tokio::test]
async fn voip_number_under_review_policy_is_sent_and_ends_in_review() {
    let t = engine();
    let sent = t.engine.send(SendRequest::new(VOIP)).await.unwrap();
    assert_eq!(sent.status, SendStatus::Success);
    assert!(sent.phone.is_virtual);
    let code = t.providers.last_code_to(VOIP);
    let out = t.engine.check(CheckRequest::new(VOIP, code)).await.unwrap();
    assert_eq!(out.status, CheckStatus::InReview);
    assert_eq!(out.phone.status, VerificationStatus::InReview);
    assert_eq!(risks(&out.phone), ["VOIP_NUMBER_DETECTED"]);
    assert_eq!(out.phone.warnings[0].log_type, LogType::Warning);
}

#[tokio::test]
async fn voip_number_under_decline_policy_is_blocked_before_any_provider() {
    let t = engine_with(
        "[workflow.risk]\nvoip = \"DECLINE\"\n",
        Providers::delivering(),
    );
    let out = t.engine.send(SendRequest::new(VOIP)).await.unwrap();
    assert_eq!(out.status, SendStatus::Blocked);
    assert_eq!(out.reason.as_deref(), Some("VOIP_NUMBER_DETECTED"));
    assert_eq!(t.providers.total_calls(), 0);
}

#[tokio::test]
async fn voip_number_under_approve_policy_is_approved_with_an_information_warning() {
    let t = engine_with(
        "[workflow.risk]\nvoip = \"APPROVE\"\n",
        Providers::delivering(),
    );
    t.engine.send(SendRequest::new(VOIP)).await.unwrap();
    let code = t.providers.last_code_to(VOIP);
    let out = t.engine.check(CheckRequest::new(VOIP, code)).await.unwrap();
    assert_eq!(out.status, CheckStatus::Approved);
    assert_eq!(out.phone.warnings[0].log_type, LogType::Information);
}

#[tokio::test]
async fn disposable_number_from_config_is_declined_by_default() {
    let t = engine_with(
        "[risk]\ndisposable_numbers = [\"+346006006*\"]\n",
        Providers::delivering(),
    );
    let out = t.engine.send(SendRequest::new(ES_MOBILE)).await.unwrap();
    assert_eq!(out.status, SendStatus::Blocked);
    assert_eq!(out.reason.as_deref(), Some("DISPOSABLE_NUMBER_DETECTED"));
    assert!(out.phone.is_disposable);
    assert_eq!(t.providers.total_calls(), 0);
}

#[tokio::test]
async fn disposable_number_under_review_policy_ends_in_review() {
    let t = engine_with(
        "[risk]\ndisposable_numbers = [\"+34600600600\"]\n[workflow.risk]\ndisposable = \"REVIEW\"\n",
        Providers::delivering(),
    );
    t.engine.send(SendRequest::new(ES_MOBILE)).await.unwrap();
    let code = t.providers.last_code_to(ES_MOBILE);
    let out = t
        .engine
        .check(CheckRequest::new(ES_MOBILE, code))
        .await
        .unwrap();
    assert_eq!(out.status, CheckStatus::InReview);
    assert!(out.phone.is_disposable);
}

async fn verify(t: &crate::support::TestEngine, vendor: &str) -> switchboard::CheckOutcome {
    let mut send = SendRequest::new(ES_MOBILE);
    send.vendor_data = Some(vendor.into());
    t.engine.send(send).await.unwrap();
    let mut check = CheckRequest::new(ES_MOBILE, t.providers.last_code_to(ES_MOBILE));
    check.vendor_data = Some(vendor.into());
    t.engine.check(check).await.unwrap()
}

#[tokio::test]
async fn number_verified_for_another_user_is_flagged_duplicated_and_reviewed() {
    let t = engine();
    assert_eq!(verify(&t, "user-a").await.status, CheckStatus::Approved);
    let second = verify(&t, "user-b").await;
    assert_eq!(second.status, CheckStatus::InReview);
    assert_eq!(risks(&second.phone), ["DUPLICATED_PHONE_NUMBER"]);
    // The same user verifying again is no duplicate.
    assert_eq!(verify(&t, "user-a").await.status, CheckStatus::Approved);
}

#[tokio::test]
async fn duplicate_under_decline_policy_refuses_the_send() {
    let t = engine_with(
        "[workflow.risk]\nduplicated = \"DECLINE\"\n",
        Providers::delivering(),
    );
    assert_eq!(verify(&t, "user-a").await.status, CheckStatus::Approved);
    let calls = t.providers.total_calls();
    let mut send = SendRequest::new(ES_MOBILE);
    send.vendor_data = Some("user-b".into());
    let out = t.engine.send(send).await.unwrap();
    assert_eq!(out.status, SendStatus::Blocked);
    assert_eq!(out.reason.as_deref(), Some("DUPLICATED_PHONE_NUMBER"));
    assert_eq!(t.providers.total_calls(), calls);
}

#[tokio::test]
async fn lookup_reports_line_risks_and_verification_state_without_sending() {
    let t = engine();
    let report = t.engine.lookup(VOIP, None, None, None).await.unwrap();
    assert_eq!(report.status, VerificationStatus::NotFinished);
    assert_eq!(risks(&report), ["VOIP_NUMBER_DETECTED"]);
    assert_eq!(t.providers.total_calls(), 0);

    verify(&t, "user-a").await;
    let report = t
        .engine
        .lookup(ES_MOBILE, None, Some("user-b"), None)
        .await
        .unwrap();
    assert_eq!(report.status, VerificationStatus::Approved);
    assert_eq!(risks(&report), ["DUPLICATED_PHONE_NUMBER"]);
}

#[tokio::test]
async fn sandbox_numbers_follow_their_script_without_real_providers() {
    let t = engine();
    let approve = "+12025550101";
    let sent = t.engine.send(SendRequest::new(approve)).await.unwrap();
    assert_eq!(sent.status, SendStatus::Success);
    let code = t.engine.sandbox().unwrap().last_code(approve).unwrap();
    let out = t
        .engine
        .check(CheckRequest::new(approve, code.expose()))
        .await
        .unwrap();
    assert_eq!(out.status, CheckStatus::Approved);

    let high = t
        .engine
        .send(SendRequest::new("+12025550190"))
        .await
        .unwrap();
    assert_eq!(high.reason.as_deref(), Some("HIGH_RISK_PHONE_NUMBER"));
    let undeliverable = t
        .engine
        .send(SendRequest::new("+12025550199"))
        .await
        .unwrap();
    assert_eq!(undeliverable.status, SendStatus::Undeliverable);
    assert_eq!(t.providers.total_calls(), 0, "no real provider was called");
}

#[tokio::test]
async fn sandbox_numbers_are_exempt_from_the_resend_limit() {
    let t = engine();
    for _ in 0..6 {
        let out = t
            .engine
            .send(SendRequest::new("+12025550102"))
            .await
            .unwrap();
        assert_ne!(out.status, SendStatus::Blocked);
    }
}

#[tokio::test]
async fn invalid_phone_number_is_a_clear_error_and_nothing_is_sent() {
    let t = engine();
    for bad in ["", "hello", "+", "+999", "+34 600", "+3460060060012345678"] {
        let err = t.engine.send(SendRequest::new(bad)).await.unwrap_err();
        assert_eq!(err.code(), "INVALID_PHONE_NUMBER", "{bad:?}");
        assert!(!err.to_string().is_empty());
    }
    assert_eq!(t.providers.total_calls(), 0);
}
