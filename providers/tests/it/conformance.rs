//! The conformance suite: every adapter runs the same checks against its emulation, gated by
//! the capabilities it declares. `conformance!(module, Emulation)` instantiates it.
#![allow(dead_code)]

use std::time::Duration;

use serde_json::json;
use switchboard_providers::{Channel, FailureClass, Provider, ReceiptError, ReceiptStatus};
use wiremock::ResponseTemplate;

use crate::support::{Emulation, assert_clean, message};

fn secrets<E: Emulation>(e: &E) -> Vec<String> {
    e.secrets()
}

fn clean<E: Emulation>(e: &E, err: &switchboard_providers::DeliveryError) {
    let s = secrets(e);
    let refs: Vec<&str> = s.iter().map(String::as_str).collect();
    assert_clean(err, &refs);
}

/// Each declared channel delivers and returns the API's message id.
pub async fn success_on_every_declared_channel<E: Emulation>() {
    let channels = E::start().await.adapter().capabilities().channels;
    assert!(
        !channels.is_empty(),
        "an adapter declares at least one channel"
    );
    for channel in channels {
        let e = E::start().await;
        let (response, id) = e.success(channel);
        e.mount(channel, response).await;
        let delivery = e
            .adapter()
            .send(&message(channel))
            .await
            .unwrap_or_else(|err| panic!("{channel}: {err}"));
        assert_eq!(delivery.provider_message_id, id, "{channel}");
    }
}

/// Each failure class the API documents is reported as that class, with the provider's code,
/// and the error carries neither the code nor credentials nor the number.
pub async fn each_documented_failure_class_is_reported<E: Emulation>() {
    let channels = E::start().await.adapter().capabilities().channels;
    let mut seen = Vec::new();
    for class in [
        FailureClass::Transient,
        FailureClass::Fallback,
        FailureClass::Permanent,
        FailureClass::Config,
    ] {
        for &channel in &channels {
            let e = E::start().await;
            let Some((response, code)) = e.error(class, channel) else {
                continue;
            };
            e.mount(channel, response).await;
            let err = e.adapter().send(&message(channel)).await.unwrap_err();
            assert_eq!(err.class, class, "{channel}: {err}");
            assert_eq!(err.code.as_deref(), Some(code.as_str()), "{channel}");
            clean(&e, &err);
            seen.push(class);
        }
    }
    for required in [
        FailureClass::Transient,
        FailureClass::Fallback,
        FailureClass::Config,
    ] {
        assert!(
            seen.contains(&required),
            "the emulation documents no {required} error"
        );
    }
}

/// A rate-limited answer is `Transient` and carries the provider's `Retry-After`.
pub async fn rate_limit_is_transient_with_retry_after<E: Emulation>() {
    let e = E::start().await;
    let channel = e.adapter().capabilities().channels[0];
    e.mount(channel, e.rate_limited(7)).await;
    let err = e.adapter().send(&message(channel)).await.unwrap_err();
    assert!(err.is_transient(), "{err}");
    assert_eq!(err.retry_after, Some(Duration::from_secs(7)));
    clean(&e, &err);
}

/// Our own outbound limit fails fast as `Transient`, with the wait as `Retry-After`.
pub async fn outbound_rate_limit_fails_fast_as_transient<E: Emulation>() {
    let e = E::start().await;
    let channel = e.adapter().capabilities().channels[0];
    let (response, _) = e.success(channel);
    e.mount(channel, response).await;
    let adapter = e.adapter_with(json!({ "rate_per_sec": 1 }));
    let msg = message(channel);
    // Both sends take their permit before either request leaves: no timing involved.
    let (first, second) = tokio::join!(adapter.send(&msg), adapter.send(&msg));
    first.expect("the first send fits the limit");
    let err = second.unwrap_err();
    assert!(err.is_transient(), "{err}");
    assert_eq!(err.code.as_deref(), Some("local_rate_limit"));
    assert!(err.retry_after.is_some_and(|d| d > Duration::ZERO));
    assert_eq!(e.server().received_requests().await.unwrap().len(), 1);
}

/// A provider that does not answer in time is `Transient`.
pub async fn timeout_is_transient<E: Emulation>() {
    let e = E::start().await;
    let channel = e.adapter().capabilities().channels[0];
    let (response, _) = e.success(channel);
    e.mount(channel, response.set_delay(Duration::from_secs(10)))
        .await;
    let err = e
        .adapter_with(json!({ "timeout_ms": 100 }))
        .send(&message(channel))
        .await
        .unwrap_err();
    assert!(err.is_transient(), "{err}");
    assert_eq!(err.code.as_deref(), Some("timeout"));
}

/// Bad credentials are `Config`.
pub async fn auth_failure_is_config<E: Emulation>() {
    let e = E::start().await;
    let channel = e.adapter().capabilities().channels[0];
    e.mount(channel, e.unauthorized()).await;
    let err = e.adapter().send(&message(channel)).await.unwrap_err();
    assert!(err.is_config(), "{err}");
    clean(&e, &err);
}

/// Server errors and unreadable bodies are `Transient`; nothing panics, however large.
pub async fn server_errors_and_malformed_bodies_are_transient<E: Emulation>() {
    let channel = E::start().await.adapter().capabilities().channels[0];
    let huge = vec![b'{'; 5 * 1024 * 1024];
    for response in [
        ResponseTemplate::new(500).set_body_string("{}"),
        ResponseTemplate::new(503).set_body_raw("<html>down</html>", "text/html"),
        ResponseTemplate::new(400).set_body_raw("not json", "text/plain"),
        ResponseTemplate::new(502).set_body_raw(huge.clone(), "application/json"),
        ResponseTemplate::new(200).set_body_raw(huge.clone(), "application/json"),
        ResponseTemplate::new(200).set_body_raw("{\"unexpected\":true}", "application/json"),
    ] {
        let e = E::start().await;
        e.mount(channel, response).await;
        let err = e.adapter().send(&message(channel)).await.unwrap_err();
        assert!(err.is_transient(), "{err}");
        clean(&e, &err);
    }
}

/// A callback signed by the provider's scheme verifies and parses; a forged one is refused.
pub async fn receipt_signature_accepted_and_forgery_rejected<E: Emulation>() {
    let e = E::start().await;
    let adapter = e.adapter();
    if !adapter.capabilities().delivery_receipts {
        return;
    }
    let signed = e.signed_receipt("MM0001abcdef");
    let receipts = adapter
        .parse_receipts(&signed)
        .expect("signed receipt verifies");
    assert_eq!(receipts.len(), 1);
    assert_eq!(receipts[0].provider_message_id, "MM0001abcdef");
    assert_eq!(receipts[0].status, ReceiptStatus::Delivered);

    let mut forged = signed.clone();
    let last = forged.body.len() - 1;
    forged.body[last] ^= 0x01;
    assert_eq!(
        adapter.parse_receipts(&forged),
        Err(ReceiptError::BadSignature)
    );

    let mut unsigned = signed.clone();
    unsigned.headers.clear();
    assert_eq!(
        adapter.parse_receipts(&unsigned),
        Err(ReceiptError::BadSignature)
    );
}

/// An adapter asked for a channel it does not carry refuses without calling the API.
pub async fn undeclared_channel_is_refused_without_a_request<E: Emulation>() {
    let e = E::start().await;
    let adapter = e.adapter();
    let declared = adapter.capabilities().channels;
    let Some(other) = Channel::ALL.into_iter().find(|c| !declared.contains(c)) else {
        return;
    };
    let err = adapter.send(&message(other)).await.unwrap_err();
    assert!(err.is_config(), "{err}");
    assert!(e.server().received_requests().await.unwrap().is_empty());
}

/// Instantiates the suite for one emulation as named tests.
#[allow(unused_macros)] // with no adapter compiled in, nothing instantiates it
macro_rules! conformance {
    ($module:ident, $emulation:ty) => {
        mod $module {
            #[tokio::test]
            async fn success_on_every_declared_channel() {
                super::success_on_every_declared_channel::<$emulation>().await;
            }
            #[tokio::test]
            async fn each_documented_failure_class_is_reported() {
                super::each_documented_failure_class_is_reported::<$emulation>().await;
            }
            #[tokio::test]
            async fn rate_limit_is_transient_with_retry_after() {
                super::rate_limit_is_transient_with_retry_after::<$emulation>().await;
            }
            #[tokio::test]
            async fn outbound_rate_limit_fails_fast_as_transient() {
                super::outbound_rate_limit_fails_fast_as_transient::<$emulation>().await;
            }
            #[tokio::test]
            async fn timeout_is_transient() {
                super::timeout_is_transient::<$emulation>().await;
            }
            #[tokio::test]
            async fn auth_failure_is_config() {
                super::auth_failure_is_config::<$emulation>().await;
            }
            #[tokio::test]
            async fn server_errors_and_malformed_bodies_are_transient() {
                super::server_errors_and_malformed_bodies_are_transient::<$emulation>().await;
            }
            #[tokio::test]
            async fn receipt_signature_accepted_and_forgery_rejected() {
                super::receipt_signature_accepted_and_forgery_rejected::<$emulation>().await;
            }
            #[tokio::test]
            async fn undeclared_channel_is_refused_without_a_request() {
                super::undeclared_channel_is_refused_without_a_request::<$emulation>().await;
            }
        }
    };
}

#[cfg(feature = "twilio")]
conformance!(twilio, crate::twilio::TwilioApi);
#[cfg(feature = "meta_whatsapp")]
conformance!(meta_whatsapp, crate::meta_whatsapp::MetaApi);
#[cfg(feature = "telegram")]
conformance!(telegram, crate::telegram::TelegramApi);
#[cfg(feature = "vonage")]
conformance!(vonage, crate::vonage::VonageApi);
#[cfg(feature = "infobip")]
conformance!(infobip, crate::infobip::InfobipApi);
