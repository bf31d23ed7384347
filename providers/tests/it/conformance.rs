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
/// as a refusal (not `outcome_unknown`), and the error carries neither the code nor
/// credentials nor the number. `Fraud` is optional: only some providers document a fraud block.
pub async fn each_documented_failure_class_is_reported<E: Emulation>() {
    let channels = E::start().await.adapter().capabilities().channels;
    let mut seen = Vec::new();
    for class in [
        FailureClass::Transient,
        FailureClass::Fallback,
        FailureClass::Permanent,
        FailureClass::Config,
        FailureClass::Fraud,
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
            assert!(!err.may_have_been_delivered(), "{channel}: {err}");
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

/// A provider that does not answer in time is `Transient`, and the message may have been
/// accepted (`outcome_unknown`).
pub async fn timeout_is_transient_and_outcome_unknown<E: Emulation>() {
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
    assert!(err.may_have_been_delivered(), "{err}");
}

/// The adapter declares its endpoint's request timeout (`timeout_ms`).
pub async fn request_timeout_is_the_configured_timeout<E: Emulation>() {
    let e = E::start().await;
    assert_eq!(
        e.adapter_with(json!({ "timeout_ms": 1234 }))
            .request_timeout(),
        Some(Duration::from_millis(1234))
    );
}

/// A host that refuses the connection never saw the request: `Transient`, not
/// `outcome_unknown`.
pub async fn connect_failure_is_transient_and_not_outcome_unknown<E: Emulation>() {
    let e = E::start().await;
    let channel = e.adapter().capabilities().channels[0];
    // A port that was just free: nothing listens there.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let err = e
        .adapter_with(json!({ "base_url": format!("http://127.0.0.1:{port}") }))
        .send(&message(channel))
        .await
        .unwrap_err();
    assert!(err.is_transient(), "{err}");
    assert_eq!(err.code.as_deref(), Some("connect"));
    assert!(!err.may_have_been_delivered(), "{err}");
}

/// A connection closed after the request was written, before any answer: the provider may have
/// accepted the message, so `Transient` and `outcome_unknown`.
pub async fn connection_lost_after_the_request_is_written_is_outcome_unknown<E: Emulation>() {
    use tokio::io::AsyncReadExt;
    let e = E::start().await;
    let channel = e.adapter().capabilities().channels[0];
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = tokio::spawn(async move {
        let (mut socket, _) = listener.accept().await.unwrap();
        let mut buf = vec![0u8; 64 * 1024];
        // Read the request head (and what body arrived with it), then hang up unanswered.
        let _ = socket.read(&mut buf).await;
    });
    let err = e
        .adapter_with(json!({ "base_url": format!("http://127.0.0.1:{port}") }))
        .send(&message(channel))
        .await
        .unwrap_err();
    server.await.unwrap();
    assert!(err.is_transient(), "{err}");
    assert!(err.may_have_been_delivered(), "{err}");
    clean(&e, &err);
}

/// Bad credentials are `Config`.
pub async fn auth_failure_is_config<E: Emulation>() {
    let e = E::start().await;
    let channel = e.adapter().capabilities().channels[0];
    e.mount(channel, e.unauthorized()).await;
    let err = e.adapter().send(&message(channel)).await.unwrap_err();
    assert!(err.is_config(), "{err}");
    assert!(!err.may_have_been_delivered(), "{err}");
    clean(&e, &err);
}

/// Server errors and unreadable success bodies are `Transient` and `outcome_unknown` (the
/// provider may have accepted the message); nothing panics, however large.
pub async fn server_errors_and_malformed_bodies_are_transient_and_outcome_unknown<E: Emulation>() {
    let channel = E::start().await.adapter().capabilities().channels[0];
    let huge = vec![b'{'; 5 * 1024 * 1024];
    for response in [
        ResponseTemplate::new(500).set_body_string("{}"),
        ResponseTemplate::new(503).set_body_raw("<html>down</html>", "text/html"),
        ResponseTemplate::new(502).set_body_raw(huge.clone(), "application/json"),
        ResponseTemplate::new(200).set_body_raw(huge.clone(), "application/json"),
        ResponseTemplate::new(200).set_body_raw("{\"unexpected\":true}", "application/json"),
    ] {
        let e = E::start().await;
        e.mount(channel, response).await;
        let err = e.adapter().send(&message(channel)).await.unwrap_err();
        assert!(err.is_transient(), "{err}");
        assert!(err.may_have_been_delivered(), "{err}");
        clean(&e, &err);
    }
}

/// A 4xx with a body that is not the provider's error format was not accepted: never
/// `outcome_unknown`, never a verdict on the number.
pub async fn a_4xx_with_a_foreign_body_is_not_outcome_unknown<E: Emulation>() {
    let e = E::start().await;
    let channel = e.adapter().capabilities().channels[0];
    e.mount(
        channel,
        ResponseTemplate::new(400).set_body_raw("not json", "text/plain"),
    )
    .await;
    let err = e.adapter().send(&message(channel)).await.unwrap_err();
    assert!(!err.may_have_been_delivered(), "{err}");
    assert!(!err.is_permanent() && !err.is_fraud(), "{err}");
    clean(&e, &err);
}

/// A callback signed by the provider's scheme verifies and parses; a forged one is refused.
pub async fn receipt_signature_accepted_and_forgery_rejected<E: Emulation>() {
    let e = E::start().await;
    let adapter = e.receipt_adapter();
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

    assert_eq!(
        adapter.parse_receipts(&e.forged(&signed)),
        Err(ReceiptError::BadSignature)
    );

    let mut unsigned = signed.clone();
    unsigned.headers.clear();
    assert_eq!(
        adapter.parse_receipts(&unsigned),
        Err(e.unsigned_receipt_error())
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
            async fn timeout_is_transient_and_outcome_unknown() {
                super::timeout_is_transient_and_outcome_unknown::<$emulation>().await;
            }
            #[tokio::test]
            async fn request_timeout_is_the_configured_timeout() {
                super::request_timeout_is_the_configured_timeout::<$emulation>().await;
            }
            #[tokio::test]
            async fn connect_failure_is_transient_and_not_outcome_unknown() {
                super::connect_failure_is_transient_and_not_outcome_unknown::<$emulation>().await;
            }
            #[tokio::test]
            async fn connection_lost_after_the_request_is_written_is_outcome_unknown() {
                super::connection_lost_after_the_request_is_written_is_outcome_unknown::<$emulation>()
                    .await;
            }
            #[tokio::test]
            async fn a_4xx_with_a_foreign_body_is_not_outcome_unknown() {
                super::a_4xx_with_a_foreign_body_is_not_outcome_unknown::<$emulation>().await;
            }
            #[tokio::test]
            async fn auth_failure_is_config() {
                super::auth_failure_is_config::<$emulation>().await;
            }
            #[tokio::test]
            async fn server_errors_and_malformed_bodies_are_transient_and_outcome_unknown() {
                super::server_errors_and_malformed_bodies_are_transient_and_outcome_unknown::<
                    $emulation,
                >()
                .await;
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
