//! Meta WhatsApp Cloud API: the wiremock emulation, the exact template request, every error
//! row of PROVIDERS.md, webhook receipts with `X-Hub-Signature-256`, and the GET handshake.

use std::time::Duration;

use serde_json::{Value, json};
use switchboard_providers::http::HttpClient;
use switchboard_providers::meta_whatsapp::{self, MetaWhatsappConfig, MetaWhatsappProvider};
use switchboard_providers::{
    Channel, FailureClass, InboundRequest, Provider, ProviderContext, ProviderTable, ReceiptError,
    ReceiptStatus, Registry,
};
use wiremock::matchers::{body_json, header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::support::{CODE, Emulation, TO, assert_clean, message, received_at};

pub const ACCESS_TOKEN: &str = "EAAGm0PX4ZCpsBAtesttokenZBxYz";
pub const PHONE_NUMBER_ID: &str = "106540352242922";
pub const APP_SECRET: &str = "meta-app-secret-5f4dcc3b5aa765d6";
pub const VERIFY_TOKEN: &str = "meta-verify-token-1";
pub const WEBHOOK_URL: &str = "https://hooks.example.com/meta/webhook";
const WAMID: &str = "wamid.HBgLMzQ2MDA2MDA2MDAVAgARGBI5QTNDQTVCM0Q0Q0Q2RTY3RTcA";

/// The Meta Cloud API emulation.
pub struct MetaApi {
    pub server: MockServer,
}

pub fn config_table(base_url: &str, overrides: Value) -> ProviderTable {
    let mut table = json!({
        "access_token": ACCESS_TOKEN,
        "phone_number_id": PHONE_NUMBER_ID,
        "app_secret": APP_SECRET,
        "verify_token": VERIFY_TOKEN,
        "base_url": base_url,
    });
    for (k, v) in overrides.as_object().unwrap() {
        if v.is_null() {
            table.as_object_mut().unwrap().remove(k);
        } else {
            table[k] = v.clone();
        }
    }
    ProviderTable::new(table)
}

pub fn messages_path() -> String {
    format!("/v23.0/{PHONE_NUMBER_ID}/messages")
}

/// Meta's Graph API error body.
pub fn graph_error(status: u16, code: i64, message: &str, details: &str) -> ResponseTemplate {
    ResponseTemplate::new(status).set_body_json(json!({
        "error": {
            "message": message,
            "type": "OAuthException",
            "code": code,
            "error_data": { "messaging_product": "whatsapp", "details": details },
            "fbtrace_id": "AbCdEfGhIjKlMnOp",
        }
    }))
}

pub fn accepted(wamid: &str) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(json!({
        "messaging_product": "whatsapp",
        "contacts": [{ "input": TO.trim_start_matches('+'), "wa_id": TO.trim_start_matches('+') }],
        "messages": [{ "id": wamid }],
    }))
}

/// A webhook body with one status.
pub fn status_webhook(id: &str, status: &str, error_code: Option<i64>) -> Value {
    let mut s = json!({
        "id": id,
        "status": status,
        "timestamp": "1767225600",
        "recipient_id": TO.trim_start_matches('+'),
    });
    if let Some(code) = error_code {
        s["errors"] = json!([{
            "code": code,
            "title": "Message undeliverable",
            "message": "Message undeliverable",
            "error_data": { "details": "Message Undeliverable." },
            "href": "https://developers.facebook.com/docs/whatsapp/cloud-api/support/error-codes/",
        }]);
    }
    json!({
        "object": "whatsapp_business_account",
        "entry": [{
            "id": "102290129340398",
            "changes": [{
                "value": {
                    "messaging_product": "whatsapp",
                    "metadata": { "display_phone_number": "15550783881", "phone_number_id": PHONE_NUMBER_ID },
                    "statuses": [s],
                },
                "field": "messages",
            }],
        }],
    })
}

pub fn signed(body: &[u8], secret: &str) -> InboundRequest {
    InboundRequest::new(
        "POST",
        WEBHOOK_URL,
        vec![
            ("Content-Type".into(), "application/json".into()),
            (
                "X-Hub-Signature-256".into(),
                meta_whatsapp::compute_signature(secret, body),
            ),
        ],
        body.to_vec(),
        received_at(),
    )
}

impl Emulation for MetaApi {
    type Adapter = MetaWhatsappProvider;

    async fn start() -> Self {
        MetaApi {
            server: MockServer::start().await,
        }
    }

    fn server(&self) -> &MockServer {
        &self.server
    }

    fn adapter_with(&self, overrides: Value) -> MetaWhatsappProvider {
        let config: MetaWhatsappConfig =
            config_table(&self.server.uri(), overrides).parse().unwrap();
        MetaWhatsappProvider::new(config, HttpClient::new().unwrap()).unwrap()
    }

    fn secrets(&self) -> Vec<String> {
        vec![ACCESS_TOKEN.to_owned(), APP_SECRET.to_owned()]
    }

    async fn mount(&self, _channel: Channel, response: ResponseTemplate) {
        Mock::given(method("POST"))
            .and(path(messages_path()))
            .and(header(
                "authorization",
                format!("Bearer {ACCESS_TOKEN}").as_str(),
            ))
            .respond_with(response)
            .mount(&self.server)
            .await;
    }

    fn success(&self, _channel: Channel) -> (ResponseTemplate, String) {
        (accepted(WAMID), WAMID.to_owned())
    }

    fn error(&self, class: FailureClass, _channel: Channel) -> Option<(ResponseTemplate, String)> {
        let (status, code, text) = match class {
            FailureClass::Transient => (400, 130429, "(#130429) Rate limit hit"),
            FailureClass::Fallback => (
                400,
                131026,
                "(#131026) Message undeliverable to 34600600600",
            ),
            FailureClass::Fraud => return None,
            FailureClass::Config => (401, 190, "Error validating access token"),
            // The Cloud API has no error that condemns the number itself.
            FailureClass::Permanent => return None,
        };
        Some((graph_error(status, code, text, "details"), code.to_string()))
    }

    fn rate_limited(&self, retry_after_secs: u64) -> ResponseTemplate {
        graph_error(
            429,
            130429,
            "(#130429) Rate limit hit",
            "Cloud API message throughput has been reached.",
        )
        .insert_header("Retry-After", retry_after_secs.to_string().as_str())
    }

    fn unauthorized(&self) -> ResponseTemplate {
        graph_error(
            401,
            190,
            "Error validating access token: Session has expired",
            "",
        )
    }

    fn signed_receipt(&self, message_id: &str) -> InboundRequest {
        let body = status_webhook(message_id, "delivered", None).to_string();
        signed(body.as_bytes(), APP_SECRET)
    }
}

async fn send_err(response: ResponseTemplate) -> switchboard_providers::DeliveryError {
    let api = MetaApi::start().await;
    api.mount(Channel::Whatsapp, response).await;
    let err = api
        .adapter()
        .send(&message(Channel::Whatsapp))
        .await
        .unwrap_err();
    assert_clean(&err, &[ACCESS_TOKEN, APP_SECRET]);
    err
}

fn adapter_for_receipts(overrides: Value) -> MetaWhatsappProvider {
    let config: MetaWhatsappConfig = config_table("https://graph.facebook.invalid", overrides)
        .parse()
        .unwrap();
    MetaWhatsappProvider::new(config, HttpClient::new().unwrap()).unwrap()
}

// ---- request shape ------------------------------------------------------------------------------

#[tokio::test]
async fn template_request_carries_the_code_in_the_body_and_the_copy_code_button() {
    let api = MetaApi::start().await;
    // Exactly the documented authentication template, code twice.
    let expected = json!({
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        "to": "34600600600",
        "type": "template",
        "template": {
            "name": "verification_code",
            "language": { "policy": "deterministic", "code": "en_US" },
            "components": [
                { "type": "body", "parameters": [{ "type": "text", "text": CODE }] },
                { "type": "button", "sub_type": "url", "index": "0",
                  "parameters": [{ "type": "text", "text": CODE }] }
            ]
        }
    });
    Mock::given(method("POST"))
        .and(path(messages_path()))
        .and(header(
            "authorization",
            format!("Bearer {ACCESS_TOKEN}").as_str(),
        ))
        .and(header("content-type", "application/json"))
        .and(body_json(expected))
        .respond_with(accepted(WAMID))
        .expect(1)
        .mount(&api.server)
        .await;
    let delivery = api
        .adapter()
        .send(&message(Channel::Whatsapp))
        .await
        .unwrap();
    assert_eq!(delivery.provider_message_id, WAMID);
}

#[tokio::test]
async fn template_name_graph_version_and_language_are_configurable() {
    let api = MetaApi::start().await;
    Mock::given(method("POST"))
        .and(path(format!("/v21.0/{PHONE_NUMBER_ID}/messages")))
        .respond_with(accepted(WAMID))
        .mount(&api.server)
        .await;
    let adapter = api.adapter_with(json!({
        "graph_version": "v21.0",
        "template": "acme_otp",
        "languages": { "pt_BR": "pt_BR", "es": "es_MX" },
    }));
    let mut msg = message(Channel::Whatsapp);
    msg.locale = "es".into();
    adapter.send(&msg).await.unwrap();
    let body: Value =
        serde_json::from_slice(&api.server.received_requests().await.unwrap()[0].body).unwrap();
    assert_eq!(body["template"]["name"], "acme_otp");
    assert_eq!(body["template"]["language"]["code"], "es_MX");
}

#[test]
fn locales_map_to_template_languages() {
    let adapter = adapter_for_receipts(json!({ "default_language": "en_GB" }));
    let c = adapter.config();
    for (locale, code) in [
        ("en", "en_US"),
        ("es", "es"),
        ("pt-BR", "pt_BR"),
        ("pt", "pt_BR"),
        ("pt_PT", "pt_PT"),
        ("fr", "fr"),
        ("de-AT", "de"),
        ("ar", "ar"),
        ("xx", "en_GB"),
    ] {
        assert_eq!(c.language_for(locale), code, "{locale}");
    }
}

// ---- send-time errors: one test per row of PROVIDERS.md ---------------------------------------

macro_rules! meta_error_tests {
    ($($name:ident: $status:literal, $code:literal => $class:ident;)*) => {$(
        #[tokio::test]
        async fn $name() {
            let err = send_err(graph_error(
                $status,
                $code,
                &format!("(#{}) error for 34600600600 code {CODE}", $code),
                "details",
            ))
            .await;
            assert_eq!(err.class, FailureClass::$class, "{err}");
            assert_eq!(err.code.as_deref(), Some(stringify!($code)));
        }
    )*};
}

meta_error_tests! {
    meta_131026_not_on_whatsapp_is_fallback: 400, 131026 => Fallback;
    meta_130472_experiment_is_fallback: 400, 130472 => Fallback;
    meta_131048_spam_rate_limit_is_fallback: 400, 131048 => Fallback;
    meta_130429_throughput_is_transient: 400, 130429 => Transient;
    meta_131056_pair_rate_limit_is_transient: 400, 131056 => Transient;
    meta_4_app_rate_limit_is_transient: 400, 4 => Transient;
    meta_131030_recipient_not_allowed_is_config: 400, 131030 => Config;
    meta_131047_reengagement_is_config: 400, 131047 => Config;
    meta_0_auth_is_config: 401, 0 => Config;
    meta_190_access_token_is_config: 401, 190 => Config;
    // Beyond the PROVIDERS.md table (Meta's own "retry" and "permission/template" codes).
    meta_131000_something_went_wrong_is_transient: 500, 131000 => Transient;
    meta_131016_service_unavailable_is_transient: 503, 131016 => Transient;
    meta_10_permission_denied_is_config: 403, 10 => Config;
    // Not approved in this language (and the message was already in the default language):
    // the next route, not the end of Meta for the whole send.
    meta_132001_template_language_missing_is_fallback: 404, 132001 => Fallback;
    meta_132000_template_param_count_is_config: 400, 132000 => Config;
    meta_100_invalid_parameter_is_config: 400, 100 => Config;
    meta_131008_required_parameter_missing_is_config: 400, 131008 => Config;
    meta_131009_parameter_value_invalid_is_config: 400, 131009 => Config;
    meta_133010_phone_number_not_registered_is_config: 400, 133010 => Config;
    meta_368_blocked_for_policy_violations_is_config: 403, 368 => Config;
    meta_80007_waba_rate_limit_is_transient: 400, 80007 => Transient;
    meta_unknown_4xx_code_is_fallback: 400, 131999 => Fallback;
    meta_unknown_5xx_code_is_transient: 502, 999 => Transient;
}

#[tokio::test]
async fn meta_5xx_is_transient() {
    let err = send_err(ResponseTemplate::new(503).set_body_string("Service Unavailable")).await;
    assert_eq!(err.class, FailureClass::Transient);
    assert_eq!(err.code.as_deref(), Some("http_503"));
}

#[tokio::test]
async fn meta_4xx_without_the_error_envelope_is_fallback_or_config_never_transient() {
    for (status, class) in [
        (400, FailureClass::Fallback),
        (404, FailureClass::Fallback),
        (401, FailureClass::Config),
        (403, FailureClass::Config),
    ] {
        for body in [
            "{\"error\":",
            "<html>Bad Request</html>",
            "{\"message\":\"nope\"}",
        ] {
            let err = send_err(ResponseTemplate::new(status).set_body_raw(body, "text/html")).await;
            assert_eq!(err.class, class, "{status} {body}: {err}");
            assert!(!err.may_have_been_delivered(), "{err}");
        }
    }
    // A bare 429 is still a rate limit.
    let err = send_err(ResponseTemplate::new(429).set_body_raw("slow down", "text/plain")).await;
    assert_eq!(err.class, FailureClass::Transient);
}

#[tokio::test]
async fn meta_131056_pair_rate_limit_waits_at_least_six_seconds() {
    let err = send_err(graph_error(
        400,
        131056,
        "(#131056) Pair rate limit hit",
        "",
    ))
    .await;
    assert_eq!(err.class, FailureClass::Transient);
    assert_eq!(err.retry_after, Some(Duration::from_secs(6)));
    let err = send_err(
        graph_error(400, 131056, "(#131056) Pair rate limit hit", "")
            .insert_header("Retry-After", "9"),
    )
    .await;
    assert_eq!(err.retry_after, Some(Duration::from_secs(9)));
}

/// The `language.code` of a received template request.
fn sent_language(request: &wiremock::Request) -> String {
    let body: Value = serde_json::from_slice(&request.body).unwrap();
    assert_eq!(body["template"]["language"]["policy"], "deterministic");
    body["template"]["language"]["code"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[tokio::test]
async fn meta_132001_resends_once_in_the_default_language_and_succeeds() {
    let api = MetaApi::start().await;
    let missing = graph_error(
        404,
        132001,
        "(#132001) Template name does not exist in the translation",
        "template name (verification_code) does not exist in pt_BR",
    );
    Mock::given(method("POST"))
        .and(path(messages_path()))
        .and(wiremock::matchers::body_partial_json(
            json!({ "template": { "language": { "code": "pt_BR" } } }),
        ))
        .respond_with(missing)
        .expect(1)
        .mount(&api.server)
        .await;
    let (ok, id) = api.success(Channel::Whatsapp);
    Mock::given(method("POST"))
        .and(path(messages_path()))
        .and(wiremock::matchers::body_partial_json(
            json!({ "template": { "language": { "code": "en_US" } } }),
        ))
        .respond_with(ok)
        .expect(1)
        .mount(&api.server)
        .await;
    let mut msg = message(Channel::Whatsapp);
    msg.locale = "pt-BR".into();
    let delivery = api.adapter().send(&msg).await.unwrap();
    assert_eq!(delivery.provider_message_id, id);
    let requests = api.server.received_requests().await.unwrap();
    let languages: Vec<String> = requests.iter().map(sent_language).collect();
    assert_eq!(languages, ["pt_BR", "en_US"]);
}

#[tokio::test]
async fn meta_132001_in_the_default_language_too_is_fallback_after_one_retry() {
    let api = MetaApi::start().await;
    api.mount(
        Channel::Whatsapp,
        graph_error(
            404,
            132001,
            "(#132001) Template name does not exist in the translation",
            "",
        ),
    )
    .await;
    let adapter = api.adapter_with(json!({ "default_language": "es" }));
    let mut msg = message(Channel::Whatsapp);
    msg.locale = "pt-BR".into();
    let err = adapter.send(&msg).await.unwrap_err();
    assert_eq!(err.class, FailureClass::Fallback);
    assert_eq!(err.code.as_deref(), Some("132001"));
    let requests = api.server.received_requests().await.unwrap();
    let languages: Vec<String> = requests.iter().map(sent_language).collect();
    assert_eq!(languages, ["pt_BR", "es"]);
}

#[tokio::test]
async fn meta_200_with_an_error_body_is_classified_by_the_code() {
    let body = json!({ "error": { "message": "(#131026) Message undeliverable", "code": 131026 } });
    let err = send_err(ResponseTemplate::new(200).set_body_json(body)).await;
    assert_eq!(err.class, FailureClass::Fallback);
    assert_eq!(err.code.as_deref(), Some("131026"));
}

#[tokio::test]
async fn meta_errors_keep_details_but_never_the_number_code_or_token() {
    let err = send_err(graph_error(
        400,
        131026,
        &format!("(#131026) Message undeliverable to {TO} with {CODE}"),
        &format!("token {ACCESS_TOKEN} for 34600600600"),
    ))
    .await;
    assert!(err.message.contains("Message undeliverable"), "{err}");
    assert!(err.message.contains("<redacted>"), "{err}");
}

// ---- webhook receipts ---------------------------------------------------------------------------

fn receipt(status: &str, code: Option<i64>) -> switchboard_providers::DeliveryReceipt {
    let body = status_webhook(WAMID, status, code).to_string();
    adapter_for_receipts(json!({}))
        .parse_receipts(&signed(body.as_bytes(), APP_SECRET))
        .unwrap()
        .remove(0)
}

#[test]
fn webhook_statuses_become_receipts_with_the_provider_timestamp() {
    for (status, expected) in [
        ("sent", ReceiptStatus::Sent),
        ("delivered", ReceiptStatus::Delivered),
        ("read", ReceiptStatus::Read),
    ] {
        let r = receipt(status, None);
        assert_eq!(r.status, expected);
        assert_eq!(r.provider_message_id, WAMID);
        assert_eq!(r.provider, "meta_whatsapp");
        assert_eq!(
            r.at,
            std::time::SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_767_225_600)
        );
    }
}

#[test]
fn meta_131026_in_a_failed_webhook_status_is_fallback() {
    let r = receipt("failed", Some(131026));
    assert_eq!(r.status, ReceiptStatus::Failed);
    let failure = r.failure.unwrap();
    assert_eq!(failure.class, FailureClass::Fallback);
    assert_eq!(failure.code.as_deref(), Some("131026"));
}

#[test]
fn meta_130429_in_a_failed_webhook_status_is_transient() {
    assert_eq!(
        receipt("failed", Some(130429)).failure.unwrap().class,
        FailureClass::Transient
    );
}

#[test]
fn webhook_without_statuses_or_with_unknown_ones_gives_no_receipt() {
    let adapter = adapter_for_receipts(json!({}));
    let incoming = json!({ "object": "whatsapp_business_account", "entry": [{ "id": "1", "changes": [{ "field": "messages", "value": { "messages": [{ "from": "34600600600", "id": "wamid.x", "type": "text" }] } }] }] }).to_string();
    assert!(
        adapter
            .parse_receipts(&signed(incoming.as_bytes(), APP_SECRET))
            .unwrap()
            .is_empty()
    );
    let deleted = status_webhook(WAMID, "deleted", None).to_string();
    assert!(
        adapter
            .parse_receipts(&signed(deleted.as_bytes(), APP_SECRET))
            .unwrap()
            .is_empty()
    );
}

#[test]
fn webhook_signed_with_another_secret_is_rejected_before_parsing() {
    let adapter = adapter_for_receipts(json!({}));
    let forged = signed(b"not even json", "another-secret");
    assert_eq!(
        adapter.parse_receipts(&forged),
        Err(ReceiptError::BadSignature)
    );
    let mut bad_prefix = signed(b"{}", APP_SECRET);
    bad_prefix.headers[1].1 = bad_prefix.headers[1].1.replace("sha256=", "sha1=");
    assert_eq!(
        adapter.parse_receipts(&bad_prefix),
        Err(ReceiptError::BadSignature)
    );
    let valid_but_garbage = signed(b"not even json", APP_SECRET);
    assert!(matches!(
        adapter.parse_receipts(&valid_but_garbage),
        Err(ReceiptError::Malformed(_))
    ));
}

#[test]
fn webhook_receipts_need_the_app_secret() {
    let adapter = adapter_for_receipts(json!({ "app_secret": null }));
    assert!(!adapter.capabilities().delivery_receipts);
    let req = signed(b"{}", APP_SECRET);
    assert_eq!(adapter.parse_receipts(&req), Err(ReceiptError::Unsupported));
}

#[test]
fn signature_header_is_sha256_hex_hmac_of_the_raw_body() {
    // HMAC-SHA256("key", "The quick brown fox jumps over the lazy dog"), RFC 4231-style vector.
    assert_eq!(
        meta_whatsapp::compute_signature("key", b"The quick brown fox jumps over the lazy dog"),
        "sha256=f7bc83f430538424b13298e6aa6fb143ef4d59a14946175997479dbc2d1a3cd8"
    );
    assert!(meta_whatsapp::verify_signature(
        "key",
        b"The quick brown fox jumps over the lazy dog",
        "sha256=F7BC83F430538424B13298E6AA6FB143EF4D59A14946175997479DBC2D1A3CD8"
    ));
}

// ---- subscription handshake ---------------------------------------------------------------------

fn handshake(query: &str) -> InboundRequest {
    InboundRequest::new(
        "GET",
        format!("{WEBHOOK_URL}?{query}"),
        Vec::new(),
        Vec::new(),
        received_at(),
    )
}

#[test]
fn handshake_echoes_the_challenge_for_our_verify_token() {
    let adapter = adapter_for_receipts(json!({}));
    let ok = adapter.verify_subscription(&handshake(&format!(
        "hub.mode=subscribe&hub.verify_token={VERIFY_TOKEN}&hub.challenge=1158201444"
    )));
    assert_eq!(ok.as_deref(), Ok("1158201444"));
}

#[test]
fn handshake_with_a_wrong_token_or_a_hostile_challenge_is_refused() {
    let adapter = adapter_for_receipts(json!({}));
    assert_eq!(
        adapter.verify_subscription(&handshake(
            "hub.mode=subscribe&hub.verify_token=guess&hub.challenge=1"
        )),
        Err(ReceiptError::BadSignature)
    );
    assert!(matches!(
        adapter.verify_subscription(&handshake(&format!(
            "hub.mode=subscribe&hub.verify_token={VERIFY_TOKEN}&hub.challenge=%3Cscript%3E"
        ))),
        Err(ReceiptError::Malformed(_))
    ));
    assert!(matches!(
        adapter.verify_subscription(&handshake(&format!(
            "hub.mode=unsubscribe&hub.verify_token={VERIFY_TOKEN}&hub.challenge=1"
        ))),
        Err(ReceiptError::Malformed(_))
    ));
    let without = adapter_for_receipts(json!({ "verify_token": null }));
    assert_eq!(
        without.verify_subscription(&handshake("hub.mode=subscribe&hub.challenge=1")),
        Err(ReceiptError::Unsupported)
    );
}

// ---- config -------------------------------------------------------------------------------------

fn registry_error(table: ProviderTable) -> String {
    match Registry::builtin().build("meta_whatsapp", &table, &ProviderContext::new().unwrap()) {
        Err(e) => e.to_string(),
        Ok(_) => panic!("built from an invalid table"),
    }
}

#[test]
fn missing_access_token_names_the_key() {
    let err = registry_error(config_table(
        "https://graph.facebook.com",
        json!({ "access_token": null }),
    ));
    assert_eq!(err, "providers.meta_whatsapp.access_token: missing");
}

#[test]
fn bad_graph_version_names_the_key() {
    let err = registry_error(config_table(
        "https://graph.facebook.com",
        json!({ "graph_version": "23" }),
    ));
    assert!(
        err.starts_with("providers.meta_whatsapp.graph_version:"),
        "{err}"
    );
}

#[test]
fn debug_of_the_adapter_hides_token_and_secrets() {
    let debug = format!("{:?}", adapter_for_receipts(json!({})));
    for secret in [ACCESS_TOKEN, APP_SECRET, VERIFY_TOKEN] {
        assert!(!debug.contains(secret), "{debug}");
    }
}

#[test]
fn parse_error_never_panics_on_arbitrary_bodies() {
    use proptest::prelude::*;
    proptest!(|(status in 100u16..600, body in proptest::collection::vec(any::<u8>(), 0..512))| {
        let _ = meta_whatsapp::parse_error(status, &body, &Default::default());
    });
}

#[test]
fn webhook_parser_never_panics_on_arbitrary_signed_bodies() {
    use proptest::prelude::*;
    let adapter = adapter_for_receipts(json!({}));
    proptest!(|(body in proptest::collection::vec(any::<u8>(), 0..512))| {
        let _ = adapter.parse_receipts(&signed(&body, APP_SECRET));
    });
}

#[test]
fn webhook_parser_never_panics_on_json_shaped_bodies() {
    use proptest::prelude::*;
    let adapter = adapter_for_receipts(json!({}));
    let shapes = prop_oneof![
        Just(json!({"entry": [{"changes": [{"value": {"statuses": [{}]}}]}]})),
        Just(json!({"entry": [{"changes": [{"value": {"statuses": [{"id": 1, "status": []}]}}]}]})),
        Just(json!({"entry": "x"})),
        any::<i64>().prop_map(|n| json!({"entry": [{"changes": [{"value": {"statuses": [{"id": "w", "status": "failed", "timestamp": n, "errors": [{"code": n}]}]}}]}]})),
    ];
    proptest!(|(body in shapes)| {
        let _ = adapter.parse_receipts(&signed(body.to_string().as_bytes(), APP_SECRET));
    });
}
