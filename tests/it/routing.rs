//! Route planning and dispatch through the engine: fallback, retries, timeouts, costs.

use std::time::Duration;

use switchboard::providers::{Channel, FailureClass};
use switchboard::report::AttemptOutcome;
use switchboard::{CheckRequest, CheckStatus, SendRequest, SendStatus};

use crate::support::{ES_LANDLINE, ES_MOBILE, Providers, Step, engine, engine_with};

#[tokio::test]
async fn cheapest_preferred_route_delivers_and_its_cost_is_recorded() {
    let t = engine();
    let out = t.engine.send(SendRequest::new(ES_MOBILE)).await.unwrap();
    assert_eq!(out.channel, Some(Channel::Whatsapp));
    let by = out.delivered_by.unwrap();
    assert_eq!(
        (by.provider.as_str(), by.price, by.currency.as_str()),
        ("wa", 0.01, "USD")
    );
    assert_eq!(t.providers.total_calls(), 1);
}

#[tokio::test]
async fn fallback_error_moves_to_the_next_route_and_the_report_names_the_channel_used() {
    let p = Providers::delivering();
    p.wa.then([Step::Fail(FailureClass::Fallback, "131026")]);
    let t = engine_with("", p);
    let out = t.engine.send(SendRequest::new(ES_MOBILE)).await.unwrap();
    assert_eq!(out.status, SendStatus::Success);
    assert_eq!(out.channel, Some(Channel::Sms));
    assert_eq!(out.delivered_by.as_ref().unwrap().provider, "sms_a");
    assert_eq!(out.attempts.len(), 2);
    assert_eq!(out.attempts[0].error_code.as_deref(), Some("131026"));
    assert_eq!(out.attempts[0].class, Some(FailureClass::Fallback));

    let code = t.providers.sms_a.last_code();
    let checked = t
        .engine
        .check(CheckRequest::new(ES_MOBILE, code))
        .await
        .unwrap();
    assert_eq!(checked.status, CheckStatus::Approved);
    assert_eq!(checked.phone.verification_method, Some(Channel::Sms));
}

#[tokio::test]
async fn permanent_error_stops_the_send_and_nothing_else_is_tried() {
    let p = Providers::delivering();
    p.wa.then([Step::Fail(FailureClass::Permanent, "21211")]);
    let t = engine_with("", p);
    let out = t.engine.send(SendRequest::new(ES_MOBILE)).await.unwrap();
    assert_eq!(out.status, SendStatus::Undeliverable);
    assert_eq!(out.reason.as_deref(), Some("number_unreachable"));
    assert_eq!(t.providers.total_calls(), 1);
}

#[tokio::test(start_paused = true)]
async fn transient_error_retries_the_same_route_once_after_retry_after() {
    let p = Providers::delivering();
    p.wa.then([Step::FailAfter(
        FailureClass::Transient,
        "20429",
        Duration::from_secs(1),
    )]);
    let t = engine_with("", p);
    let started = tokio::time::Instant::now();
    let out = t.engine.send(SendRequest::new(ES_MOBILE)).await.unwrap();
    assert_eq!(out.channel, Some(Channel::Whatsapp));
    assert_eq!(t.providers.wa.call_count(), 2);
    // Paused tokio time: the retry waited exactly the provider's Retry-After.
    assert!(started.elapsed() >= Duration::from_secs(1));
}

#[tokio::test(start_paused = true)]
async fn transient_error_twice_falls_back_to_the_next_route() {
    let p = Providers::delivering();
    p.wa.then([
        Step::FailAfter(FailureClass::Transient, "20429", Duration::from_millis(100)),
        Step::FailAfter(FailureClass::Transient, "20429", Duration::from_millis(100)),
    ]);
    let t = engine_with("", p);
    let out = t.engine.send(SendRequest::new(ES_MOBILE)).await.unwrap();
    assert_eq!(t.providers.wa.call_count(), 2);
    assert_eq!(out.channel, Some(Channel::Sms));
}

#[tokio::test(start_paused = true)]
async fn retry_after_longer_than_the_cap_is_not_waited_for() {
    let p = Providers::delivering();
    p.wa.then([Step::FailAfter(
        FailureClass::Transient,
        "20429",
        Duration::from_secs(60),
    )]);
    let t = engine_with("", p);
    let out = t.engine.send(SendRequest::new(ES_MOBILE)).await.unwrap();
    assert_eq!(t.providers.wa.call_count(), 1);
    assert_eq!(out.channel, Some(Channel::Sms));
}

#[tokio::test(start_paused = true)]
async fn hanging_provider_is_abandoned_at_the_attempt_timeout_and_the_next_route_delivers() {
    let p = Providers::delivering();
    p.wa.then([Step::Hang]);
    let t = engine_with("", p);
    let out = t.engine.send(SendRequest::new(ES_MOBILE)).await.unwrap();
    assert_eq!(out.channel, Some(Channel::Sms));
    assert_eq!(out.attempts[0].outcome, AttemptOutcome::Timeout);
}

#[tokio::test]
async fn config_error_skips_every_route_of_that_provider() {
    let p = Providers::delivering();
    p.sms_a.then([Step::Fail(FailureClass::Config, "20003")]);
    let t = engine_with("", p);
    let mut req = SendRequest::new(ES_MOBILE);
    req.channel = Some(Channel::Sms);
    let out = t.engine.send(req).await.unwrap();
    assert_eq!(out.delivered_by.unwrap().provider, "sms_b");
}

#[tokio::test]
async fn provider_side_failures_on_every_route_are_a_retryable_provider_outage() {
    let p = Providers::delivering();
    for provider in [&p.wa, &p.sms_a, &p.sms_b, &p.voice] {
        provider.then([Step::Fail(FailureClass::Config, "20003")]);
    }
    let t = engine_with("", p);
    let err = t
        .engine
        .send(SendRequest::new(ES_MOBILE))
        .await
        .unwrap_err();
    assert_eq!(err.code(), "phone_provider_unavailable");
    assert!(err.is_retryable());
}

#[tokio::test]
async fn landline_is_reached_by_voice_only() {
    let t = engine();
    let out = t.engine.send(SendRequest::new(ES_LANDLINE)).await.unwrap();
    assert_eq!(out.channel, Some(Channel::Call));
    assert_eq!(
        t.providers.wa.call_count() + t.providers.sms_a.call_count(),
        0
    );
}

#[tokio::test]
async fn pinning_an_app_channel_for_a_landline_is_refused_before_anything_is_spent() {
    let t = engine();
    let mut req = SendRequest::new(ES_LANDLINE);
    req.channel = Some(Channel::Whatsapp);
    let err = t.engine.send(req).await.unwrap_err();
    assert_eq!(err.code(), "CHANNEL_UNAVAILABLE");
    assert_eq!(t.providers.total_calls(), 0);
}

#[tokio::test]
async fn pinned_channel_is_the_only_channel_tried() {
    let p = Providers::delivering();
    p.sms_a.then([Step::Fail(FailureClass::Fallback, "30003")]);
    p.sms_b.then([Step::Fail(FailureClass::Fallback, "30003")]);
    let t = engine_with("", p);
    let mut req = SendRequest::new(ES_MOBILE);
    req.channel = Some(Channel::Sms);
    let out = t.engine.send(req).await.unwrap();
    assert_eq!(out.status, SendStatus::Undeliverable);
    assert_eq!(
        t.providers.wa.call_count() + t.providers.voice.call_count(),
        0
    );
}

#[tokio::test]
async fn preferred_channel_goes_first_then_the_usual_order() {
    let p = Providers::delivering();
    p.voice.then([Step::Fail(FailureClass::Fallback, "busy")]);
    let t = engine_with("", p);
    let mut req = SendRequest::new(ES_MOBILE);
    req.options.preferred_channel = Some(Channel::Call);
    let out = t.engine.send(req).await.unwrap();
    assert_eq!(out.attempts[0].channel, Channel::Call);
    assert_eq!(out.channel, Some(Channel::Whatsapp));
}

#[tokio::test]
async fn workflow_channel_preference_replaces_the_table_order() {
    let t = engine_with(
        "[workflow]\nchannel_preference = [\"sms\", \"whatsapp\"]\n",
        Providers::delivering(),
    );
    let out = t.engine.send(SendRequest::new(ES_MOBILE)).await.unwrap();
    assert_eq!(out.channel, Some(Channel::Sms));
}

#[tokio::test]
async fn message_carries_only_brand_and_code_in_the_requested_language() {
    let t = engine_with("[workflow]\nbrand = \"Acme\"\n", Providers::delivering());
    let mut req = SendRequest::new(ES_MOBILE);
    req.options.locale = Some("es".into());
    t.engine.send(req).await.unwrap();
    let call = t.providers.wa.calls().pop().unwrap();
    assert_eq!(call.channel, Channel::Whatsapp);
    assert_eq!(
        call.text,
        format!("Tu código de Acme es {}", call.code.expose())
    );
}

#[tokio::test]
async fn default_route_table_sends_whatsapp_first_in_brazil_and_sms_first_in_the_us() {
    use switchboard::phone::NumberType;
    use switchboard::routing::{PlanRequest, RouteTable, plan};
    let table = RouteTable::embedded();
    assert!(table.countries().count() >= 40);
    let first = |cc: &'static str, nt| {
        plan(
            &table,
            &PlanRequest {
                country: Some(cc),
                number_type: nt,
                pinned: None,
                preferred: None,
                workflow_preference: None,
            },
        )[0]
        .channel
    };
    for cc in ["BR", "IN", "MX", "ID"] {
        assert_eq!(first(cc, NumberType::Mobile), Channel::Whatsapp, "{cc}");
    }
    for cc in ["US", "CA"] {
        assert_eq!(
            first(cc, NumberType::FixedLineOrMobile),
            Channel::Sms,
            "{cc}"
        );
    }
    assert_eq!(first("BR", NumberType::FixedLine), Channel::Call);
}
