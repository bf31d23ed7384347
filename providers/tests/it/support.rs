//! Shared fixtures: the test message, form matchers, the emulation every adapter provides.
#![allow(dead_code)]

use std::collections::HashMap;
use std::time::{Duration, SystemTime};

use switchboard_providers::{
    Channel, DeliveryError, FailureClass, InboundRequest, OneTimeCode, OutboundMessage, Provider,
    ReceiptError,
};
use wiremock::{Match, MockServer, Request, ResponseTemplate};

/// The destination of every test message (a Spanish mobile).
pub const TO: &str = "+34600600600";
/// The code of every test message: it must never show up in an error.
pub const CODE: &str = "482913";

pub fn message(channel: Channel) -> OutboundMessage {
    OutboundMessage {
        to: TO.to_owned(),
        country: Some("ES".to_owned()),
        channel,
        code: OneTimeCode::new(CODE),
        brand: "Acme".to_owned(),
        locale: "en".to_owned(),
        validity: Duration::from_secs(300),
        reference: "verif-1".to_owned(),
        webotp_host: None,
    }
}

/// A fixed receive time for callbacks.
pub fn received_at() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_767_225_600)
}

/// Fails when the error's message, `Display` or `Debug` carries the code, the full destination
/// number (with or without `+`) or any of `secrets`.
pub fn assert_clean(err: &DeliveryError, secrets: &[&str]) {
    let texts = [err.message.clone(), err.to_string(), format!("{err:?}")];
    for text in &texts {
        for needle in [CODE, TO, TO.trim_start_matches('+')]
            .iter()
            .chain(secrets.iter())
        {
            assert!(!text.contains(needle), "{needle:?} leaked into {text:?}");
        }
    }
}

/// The decoded form fields of a request (last value wins).
pub fn form(request: &Request) -> HashMap<String, String> {
    form_urlencoded::parse(&request.body).into_owned().collect()
}

/// Matches a form-encoded request on a predicate over its fields.
pub struct FormWhere(pub fn(&HashMap<String, String>) -> bool);

impl Match for FormWhere {
    fn matches(&self, request: &Request) -> bool {
        (self.0)(&form(request))
    }
}

/// A wiremock emulation of one provider's API, as the conformance suite drives it.
#[allow(async_fn_in_trait)]
pub trait Emulation: Sized {
    type Adapter: Provider;

    /// A fresh mock server.
    async fn start() -> Self;
    fn server(&self) -> &MockServer;
    /// An adapter pointed at the server; `overrides` are merged into its config table.
    fn adapter_with(&self, overrides: serde_json::Value) -> Self::Adapter;
    fn adapter(&self) -> Self::Adapter {
        self.adapter_with(serde_json::json!({}))
    }
    /// The adapter that takes delivery callbacks (the plain one unless receipts need other
    /// credentials).
    fn receipt_adapter(&self) -> Self::Adapter {
        self.adapter()
    }
    /// Credentials that must never appear in an error.
    fn secrets(&self) -> Vec<String>;

    /// Mounts `response` on the endpoint that carries `channel`, for requests that carry the
    /// right credentials.
    async fn mount(&self, channel: Channel, response: ResponseTemplate);
    /// The API's success answer for `channel`, and the message id in it.
    fn success(&self, channel: Channel) -> (ResponseTemplate, String);
    /// A documented error of `class` on `channel` and its code, if the API has one.
    fn error(&self, class: FailureClass, channel: Channel) -> Option<(ResponseTemplate, String)>;
    /// The API's answer to a rate-limited request, with `Retry-After`.
    fn rate_limited(&self, retry_after_secs: u64) -> ResponseTemplate;
    /// The API's answer to bad credentials.
    fn unauthorized(&self) -> ResponseTemplate;
    /// A delivery callback for `message_id`, signed as the provider signs it.
    fn signed_receipt(&self, message_id: &str) -> InboundRequest;
    /// `signed` with its proof broken: by default one body byte changed (the signature covers
    /// the body); schemes whose proof does not cover the body change the proof instead.
    fn forged(&self, signed: &InboundRequest) -> InboundRequest {
        let mut forged = signed.clone();
        let last = forged.body.len() - 1;
        forged.body[last] ^= 0x01;
        forged
    }
    /// What a callback without any proof gets.
    fn unsigned_receipt_error(&self) -> ReceiptError {
        ReceiptError::BadSignature
    }
}
