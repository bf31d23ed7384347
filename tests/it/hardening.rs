//! The engine's answers to abuse: the sandbox in production, attempts whose outcome is unknown,
//! provider fraud blocks, timeouts that must agree.

use std::sync::Arc;
use std::time::Duration;

use switchboard::clock::ManualClock;
use switchboard::providers::{
    Capabilities, Channel, Delivery, DeliveryError, FailureClass, OutboundMessage, Provider,
};
use switchboard::report::{CheckStatus, SendStatus};
use switchboard::routing::RouteTable;
use switchboard::{CheckRequest, Config, EngineBuilder, SendRequest};

use crate::support::{ES_MOBILE, Providers, ROUTES, Scripted, Step, TestEngine, build_engine};

/// A number of the sandbox's approve range.
const SANDBOX_NUMBER: &str = "+12025550107";

/// Production: Redis (the test harness's server), an API key, no stand-in.
fn production(extra: &str) -> String {
    format!(
        "mode = \"production\"\n[store]\nbackend = \"redis\"\n[server]\napi_keys = [{{ app = \"default\", sha256 = \"{}\" }}, {{ app = \"qa\", sha256 = \"{}\" }}]\n{extra}",
        "ab".repeat(32),
        "cd".repeat(32)
    )
}

fn production_engine(extra: &str, providers: Providers) -> TestEngine {
    let clock = ManualClock::default();
    let engine = build_engine(
        &production(extra),
        &providers,
        &clock,
        Some(crate::store::redis()),
    );
    TestEngine {
        engine,
        clock,
        providers,
    }
}

#[tokio::test]
async fn in_production_a_sandbox_number_goes_through_the_normal_route_and_its_limits() {
    let t = production_engine("[apps.qa]\nsandbox = true\n", Providers::delivering());
    for _ in 0..3 {
        let out = t
            .engine
            .send(SendRequest::new(SANDBOX_NUMBER))
            .await
            .unwrap();
        assert_ne!(out.delivered_by.unwrap().provider, "sandbox");
    }
    assert!(
        t.engine
            .sandbox()
            .unwrap()
            .messages_to(SANDBOX_NUMBER)
            .is_empty()
    );
    assert_eq!(t.providers.total_calls(), 3);
    let err = t
        .engine
        .send(SendRequest::new(SANDBOX_NUMBER))
        .await
        .unwrap_err();
    assert_eq!(err.code(), "RESEND_LIMIT_EXCEEDED");
}

#[tokio::test]
async fn in_production_an_application_that_opted_in_gets_the_sandbox() {
    let t = production_engine("[apps.qa]\nsandbox = true\n", Providers::delivering());
    let mut req = SendRequest::new(SANDBOX_NUMBER);
    req.app = Some("qa".into());
    let out = t.engine.send(req).await.unwrap();
    assert_eq!(out.delivered_by.unwrap().provider, "sandbox");
    assert_eq!(t.providers.total_calls(), 0);
    let code = t
        .engine
        .sandbox()
        .unwrap()
        .last_code(SANDBOX_NUMBER)
        .unwrap();
    let mut check = CheckRequest::new(SANDBOX_NUMBER, code.expose());
    check.app = Some("qa".into());
    assert_eq!(
        t.engine.check(check).await.unwrap().status,
        CheckStatus::Approved
    );
}

#[tokio::test]
async fn in_production_the_sandbox_high_risk_number_is_an_ordinary_number_without_opt_in() {
    let t = production_engine("[apps.qa]\n", Providers::delivering());
    let out = t
        .engine
        .send(SendRequest::new("+12025550190"))
        .await
        .unwrap();
    assert_eq!(out.status, SendStatus::Success);
}

#[test]
fn opting_in_to_a_disabled_sandbox_is_refused_naming_the_key() {
    let e =
        Config::from_toml("[sandbox]\nenabled = false\n[apps.qa]\nsandbox = true\n").unwrap_err();
    assert!(e.to_string().contains("apps.qa.sandbox"), "{e}");
}

#[tokio::test]
async fn a_blind_guess_on_a_sandbox_number_faces_at_most_one_plus_max_resends_codes() {
    let t = crate::support::engine();
    let mut codes = Vec::new();
    for _ in 0..30 {
        let mut req = SendRequest::new(SANDBOX_NUMBER);
        req.options.code_size = Some(10);
        t.engine.send(req).await.unwrap();
        codes.push(
            t.engine
                .sandbox()
                .unwrap()
                .last_code(SANDBOX_NUMBER)
                .unwrap()
                .expose()
                .to_owned(),
        );
    }
    // Only the last 1 + max_resends = 3 codes are live; the first one was dropped long ago.
    let first = t
        .engine
        .check(CheckRequest::new(SANDBOX_NUMBER, &codes[0]))
        .await
        .unwrap();
    assert_eq!(first.status, CheckStatus::Failed);
    let live = t
        .engine
        .check(CheckRequest::new(SANDBOX_NUMBER, &codes[27]))
        .await
        .unwrap();
    assert_eq!(live.status, CheckStatus::Approved);
}

fn hanging() -> Providers {
    Providers {
        wa: Scripted::new("wa", Step::Hang),
        sms_a: Scripted::new("sms_a", Step::Hang),
        sms_b: Scripted::new("sms_b", Step::Hang),
        voice: Scripted::new("voice", Step::Hang),
    }
}

fn call(number: &str) -> SendRequest {
    let mut req = SendRequest::new(number);
    req.channel = Some(Channel::Call);
    req
}

#[tokio::test(start_paused = true)]
async fn a_send_that_timed_out_keeps_its_place_in_the_resend_window() {
    let t = crate::support::engine_with("", hanging());
    for _ in 0..3 {
        let err = t.engine.send(call(ES_MOBILE)).await.unwrap_err();
        assert_eq!(err.code(), "phone_provider_unavailable");
    }
    assert_eq!(t.providers.voice.call_count(), 3);
    let err = t.engine.send(call(ES_MOBILE)).await.unwrap_err();
    assert_eq!(err.code(), "RESEND_LIMIT_EXCEEDED");
    assert_eq!(t.providers.voice.call_count(), 3);
}

#[tokio::test(start_paused = true)]
async fn the_code_of_a_send_that_timed_out_stays_acceptable() {
    let t = crate::support::engine_with("", hanging());
    t.engine.send(call(ES_MOBILE)).await.unwrap_err();
    let code = t.providers.voice.last_code();
    let out = t
        .engine
        .check(CheckRequest::new(ES_MOBILE, code))
        .await
        .unwrap();
    assert_eq!(out.status, CheckStatus::Approved);
}

#[tokio::test(start_paused = true)]
async fn two_wrong_codes_across_sends_that_timed_out_decline_the_verification() {
    let t = crate::support::engine_with("", hanging());
    t.engine.send(call(ES_MOBILE)).await.unwrap_err();
    let wrong = |code: String| {
        let mut c: Vec<u8> = code.into_bytes();
        c[0] = if c[0] == b'9' { b'0' } else { c[0] + 1 };
        String::from_utf8(c).unwrap()
    };
    let first = t
        .engine
        .check(CheckRequest::new(
            ES_MOBILE,
            wrong(t.providers.voice.last_code()),
        ))
        .await
        .unwrap();
    assert_eq!(first.status, CheckStatus::Failed);
    t.engine.send(call(ES_MOBILE)).await.unwrap_err();
    let second = t
        .engine
        .check(CheckRequest::new(
            ES_MOBILE,
            wrong(t.providers.voice.last_code()),
        ))
        .await
        .unwrap();
    assert_eq!(second.status, CheckStatus::Declined);
}

#[tokio::test]
async fn an_error_with_an_unknown_outcome_counts_as_possibly_delivered() {
    let p = Providers::delivering();
    let voice = Scripted::new("voice", Step::FailUnknown(FailureClass::Transient, "503"));
    let p = Providers { voice, ..p };
    let t = crate::support::engine_with("", p);
    for _ in 0..3 {
        t.engine.send(call(ES_MOBILE)).await.unwrap_err();
    }
    let err = t.engine.send(call(ES_MOBILE)).await.unwrap_err();
    assert_eq!(err.code(), "RESEND_LIMIT_EXCEEDED");
}

#[tokio::test]
async fn a_failure_known_before_acceptance_costs_no_place_in_the_window() {
    let p = Providers::delivering();
    let voice = Scripted::new("voice", Step::Fail(FailureClass::Fallback, "30003"));
    let p = Providers { voice, ..p };
    let t = crate::support::engine_with("", p);
    for _ in 0..5 {
        let out = t.engine.send(call(ES_MOBILE)).await.unwrap();
        assert_eq!(out.status, SendStatus::Undeliverable);
    }
}

#[tokio::test]
async fn a_provider_fraud_block_stops_the_send_as_blocked_without_trying_another_provider() {
    let p = Providers::delivering();
    p.wa.then([Step::Fail(FailureClass::Fraud, "30450")]);
    let t = crate::support::engine_with("", p);
    let out = t.engine.send(SendRequest::new(ES_MOBILE)).await.unwrap();
    assert_eq!(out.status, SendStatus::Blocked);
    assert_eq!(out.reason.as_deref(), Some("HIGH_RISK_PHONE_NUMBER"));
    assert!(
        out.phone
            .warnings
            .iter()
            .any(|w| w.risk.as_str() == "HIGH_RISK_PHONE_NUMBER")
    );
    assert_eq!(out.attempts.len(), 1);
    assert_eq!(t.providers.total_calls(), 1);
}

/// A provider whose HTTP timeout is longer than the engine's attempt timeout.
struct Slow;

impl Provider for Slow {
    fn name(&self) -> &str {
        "slow"
    }
    fn capabilities(&self) -> Capabilities {
        Capabilities::channels(&[Channel::Sms])
    }
    async fn send(&self, _: &OutboundMessage) -> Result<Delivery, DeliveryError> {
        Err(DeliveryError::transient("slow", "never used"))
    }
    fn request_timeout(&self) -> Option<Duration> {
        Some(Duration::from_secs(10))
    }
}

#[test]
fn a_provider_timeout_longer_than_the_attempt_timeout_refuses_to_build() {
    let config = Config::from_toml(
        "pepper = \"000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f\"\n[routing]\nattempt_timeout_ms = 5000\n",
    )
    .unwrap();
    let e = EngineBuilder::new(config)
        .routes(RouteTable::from_toml(ROUTES).unwrap())
        .provider(Arc::new(Slow))
        .build()
        .unwrap_err();
    let text = e.to_string();
    assert!(
        text.contains("providers.slow.timeout_ms") && text.contains("routing.attempt_timeout_ms"),
        "{text}"
    );
}
