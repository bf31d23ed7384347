//! Vonage Messages API: the wiremock emulation of `POST /v1/messages` for SMS, WhatsApp, Viber
//! and RCS, both authentication modes (application JWT, Basic), every error row of
//! PROVIDERS.md (send-time problems and status webhooks), and signed status webhooks.

use std::time::{Duration, SystemTime};

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use switchboard_providers::http::HttpClient;
use switchboard_providers::vonage::{self, VonageConfig, VonageProvider};
use switchboard_providers::{
    Channel, DeliveryError, FailureClass, InboundRequest, Provider, ProviderContext, ProviderTable,
    ReceiptError, ReceiptStatus, Registry,
};
use wiremock::matchers::{body_json, header, method, path};
use wiremock::{Match, Mock, MockServer, Request, ResponseTemplate};

use crate::support::{CODE, Emulation, TO, assert_clean, message, received_at};

pub const API_KEY: &str = "a1b2c3d4";
pub const API_SECRET: &str = "vonage-api-secret-Zx81";
pub const SIGNATURE_SECRET: &str = "vonage-signature-secret-4f1c9e2b7a";
pub const APPLICATION_ID: &str = "aaaaaaaa-bbbb-4ccc-8ddd-0123456789ab";
const WA_FROM: &str = "+14155550100";
const VIBER_FROM: &str = "16273";
const RCS_FROM: &str = "acme_agent";
const WEBHOOK_URL: &str = "https://hooks.example.com/vonage/status";
const UUID: &str = "d8f86df1-dec6-442f-870a-2241be27d721";
/// A throwaway 2048-bit key made for these tests (`openssl genpkey -algorithm RSA`).
pub(crate) const TEST_KEY_PKCS8: &str = include_str!("data/vonage_test_key.pem");
/// The same key in PKCS#1 (`openssl rsa -traditional`).
const TEST_KEY_PKCS1: &str = include_str!("data/vonage_test_key_pkcs1.pem");

/// The Vonage Messages API emulation.
pub struct VonageApi {
    pub server: MockServer,
}

pub fn config_table(base_url: &str, overrides: Value) -> ProviderTable {
    let mut table = json!({
        "api_key": API_KEY,
        "api_secret": API_SECRET,
        "sms_from": "Acme",
        "whatsapp_from": WA_FROM,
        "whatsapp_template": "acme_otp",
        "viber_from": VIBER_FROM,
        "rcs_from": RCS_FROM,
        "signature_secret": SIGNATURE_SECRET,
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

/// Overrides that add application (JWT) authentication, which is preferred over Basic and
/// needed for status webhooks; `api_key` stays to check the webhooks' `api_key` claim.
pub fn with_application() -> Value {
    json!({ "application_id": APPLICATION_ID, "private_key": TEST_KEY_PKCS8 })
}

pub fn basic_auth() -> String {
    format!(
        "Basic {}",
        STANDARD.encode(format!("{API_KEY}:{API_SECRET}"))
    )
}

/// The `channel` value of the request for our channel.
pub fn wire_channel(channel: Channel) -> &'static str {
    match channel {
        Channel::Viber => "viber_service",
        other => other.as_str(),
    }
}

/// Matches a JSON request whose `channel` is the given one.
pub struct OnChannel(pub &'static str);

impl Match for OnChannel {
    fn matches(&self, request: &Request) -> bool {
        serde_json::from_slice::<Value>(&request.body).is_ok_and(|b| b["channel"] == self.0)
    }
}

/// An RFC 7807 problem as the Messages API answers it.
pub fn problem(status: u16, code: &str, title: &str, detail: &str) -> ResponseTemplate {
    let base = if code.bytes().all(|b| b.is_ascii_digit()) {
        "https://developer.vonage.com/api-errors/messages"
    } else {
        "https://developer.vonage.com/api-errors"
    };
    ResponseTemplate::new(status).set_body_raw(
        json!({
            "type": format!("{base}#{code}"),
            "title": title,
            "detail": detail,
            "instance": "bf0ca0bf927b3b52e3cb03217e1a1ddf",
        })
        .to_string(),
        "application/problem+json",
    )
}

pub fn accepted(uuid: &str) -> ResponseTemplate {
    ResponseTemplate::new(202).set_body_json(json!({ "message_uuid": uuid }))
}

fn unix(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH).unwrap().as_secs()
}

/// An HS256 JWT, written independently of the adapter's verifier.
pub fn hs256(secret: &str, header: &Value, claims: &Value) -> String {
    let input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(input.as_bytes());
    format!(
        "{input}.{}",
        URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
    )
}

/// The claims Vonage puts in a signed webhook for `body`, issued at `iat`.
pub fn webhook_claims(body: &[u8], iat: u64) -> Value {
    json!({
        "iat": iat,
        "jti": "c5ba8f24-1a14-4c10-bfdf-3fbe8ce511b5",
        "iss": "Vonage",
        "payload_hash": hex_lower(&Sha256::digest(body)),
        "api_key": API_KEY,
        "application_id": APPLICATION_ID,
    })
}

fn hex_lower(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A status webhook as Vonage posts it, with the given token.
pub fn webhook(body: &[u8], token: &str) -> InboundRequest {
    InboundRequest::new(
        "POST",
        WEBHOOK_URL,
        vec![
            ("Content-Type".into(), "application/json".into()),
            ("Authorization".into(), format!("Bearer {token}")),
        ],
        body.to_vec(),
        received_at(),
    )
}

/// A status webhook signed with `secret`, issued now.
pub fn signed(body: &[u8], secret: &str) -> InboundRequest {
    let token = hs256(
        secret,
        &json!({ "alg": "HS256", "typ": "JWT" }),
        &webhook_claims(body, unix(received_at())),
    );
    webhook(body, &token)
}

/// A message status webhook body.
pub fn status_body(uuid: &str, status: &str, error: Option<Value>) -> Value {
    let mut body = json!({
        "message_uuid": uuid,
        "to": "34600600600",
        "from": VIBER_FROM,
        "timestamp": "2026-01-01T00:00:00.000Z",
        "status": status,
        "channel": "viber_service",
        "client_ref": "verif-1",
    });
    if let Some(e) = error {
        body["error"] = e;
    }
    body
}

impl Emulation for VonageApi {
    type Adapter = VonageProvider;

    async fn start() -> Self {
        VonageApi {
            server: MockServer::start().await,
        }
    }

    fn server(&self) -> &MockServer {
        &self.server
    }

    fn adapter_with(&self, overrides: Value) -> VonageProvider {
        let config: VonageConfig = config_table(&self.server.uri(), overrides).parse().unwrap();
        VonageProvider::new(config, HttpClient::new().unwrap()).unwrap()
    }

    /// Vonage signs webhooks for applications only: receipts need JWT authentication.
    fn receipt_adapter(&self) -> VonageProvider {
        self.adapter_with(with_application())
    }

    fn unsigned_receipt_error(&self) -> ReceiptError {
        ReceiptError::Unverifiable
    }

    fn secrets(&self) -> Vec<String> {
        vec![API_SECRET.to_owned(), SIGNATURE_SECRET.to_owned()]
    }

    async fn mount(&self, channel: Channel, response: ResponseTemplate) {
        Mock::given(method("POST"))
            .and(path("/v1/messages"))
            .and(header("authorization", basic_auth().as_str()))
            .and(OnChannel(wire_channel(channel)))
            .respond_with(response)
            .mount(&self.server)
            .await;
    }

    fn success(&self, _channel: Channel) -> (ResponseTemplate, String) {
        (accepted(UUID), UUID.to_owned())
    }

    fn error(&self, class: FailureClass, _channel: Channel) -> Option<(ResponseTemplate, String)> {
        let (status, code, title) = match class {
            FailureClass::Transient => (429, "1000", "Throttled"),
            FailureClass::Fallback => (422, "1300", "Not part of the provider network"),
            FailureClass::Permanent => (422, "1170", "Invalid or Missing Msisdn Param"),
            FailureClass::Fraud => (422, "1473", "Fraud Defender AIT protection"),
            FailureClass::Config => (401, "unauthorized", "Unauthorized"),
        };
        Some((
            problem(status, code, title, "The number 34600600600 was refused"),
            code.to_owned(),
        ))
    }

    fn rate_limited(&self, retry_after_secs: u64) -> ResponseTemplate {
        problem(
            429,
            "throttled",
            "Rate Limit Hit",
            "Please wait, then retry your request",
        )
        .insert_header("Retry-After", retry_after_secs.to_string().as_str())
    }

    fn unauthorized(&self) -> ResponseTemplate {
        problem(
            401,
            "unauthorized",
            "Unauthorized",
            "You did not provide correct credentials.",
        )
    }

    fn signed_receipt(&self, message_id: &str) -> InboundRequest {
        let body = status_body(message_id, "delivered", None).to_string();
        signed(body.as_bytes(), SIGNATURE_SECRET)
    }
}

async fn send_err(channel: Channel, response: ResponseTemplate) -> DeliveryError {
    let api = VonageApi::start().await;
    api.mount(channel, response).await;
    let err = api.adapter().send(&message(channel)).await.unwrap_err();
    assert_clean(&err, &[API_SECRET, SIGNATURE_SECRET]);
    err
}

fn offline_adapter(overrides: Value) -> VonageProvider {
    let config: VonageConfig = config_table("https://api.nexmo.invalid", overrides)
        .parse()
        .unwrap();
    VonageProvider::new(config, HttpClient::new().unwrap()).unwrap()
}

async fn sent_body(api: &VonageApi) -> Value {
    serde_json::from_slice(&api.server.received_requests().await.unwrap()[0].body).unwrap()
}

// ---- request shapes -----------------------------------------------------------------------------

#[tokio::test]
async fn sms_is_a_basic_auth_json_text_message() {
    let api = VonageApi::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/messages"))
        .and(header("authorization", basic_auth().as_str()))
        .and(header("content-type", "application/json"))
        .and(body_json(json!({
            "message_type": "text",
            "channel": "sms",
            "to": "34600600600",
            "from": "Acme",
            "text": format!("Your Acme code is {CODE}"),
            "ttl": 300,
            "client_ref": "verif-1",
        })))
        .respond_with(accepted(UUID))
        .expect(1)
        .mount(&api.server)
        .await;
    let delivery = api.adapter().send(&message(Channel::Sms)).await.unwrap();
    assert_eq!(delivery.provider_message_id, UUID);
}

#[tokio::test]
async fn whatsapp_sends_the_authentication_template_as_a_custom_message() {
    let api = VonageApi::start().await;
    api.mount(Channel::Whatsapp, accepted(UUID)).await;
    let mut msg = message(Channel::Whatsapp);
    msg.locale = "pt-BR".into();
    api.adapter().send(&msg).await.unwrap();
    assert_eq!(
        sent_body(&api).await,
        json!({
            "message_type": "custom",
            "channel": "whatsapp",
            "to": "34600600600",
            "from": "14155550100",
            "custom": {
                "type": "template",
                "template": {
                    "name": "acme_otp",
                    "language": { "policy": "deterministic", "code": "pt_BR" },
                    "components": [
                        { "type": "body", "parameters": [{ "type": "text", "text": CODE }] },
                        { "type": "button", "sub_type": "url", "index": "0",
                          "parameters": [{ "type": "text", "text": CODE }] }
                    ]
                }
            },
            "client_ref": "verif-1",
        })
    );
}

#[tokio::test]
async fn viber_goes_as_a_transactional_viber_service_message() {
    let api = VonageApi::start().await;
    api.mount(Channel::Viber, accepted(UUID)).await;
    let mut msg = message(Channel::Viber);
    msg.locale = "es".into();
    api.adapter_with(json!({ "webhook_url": WEBHOOK_URL }))
        .send(&msg)
        .await
        .unwrap();
    assert_eq!(
        sent_body(&api).await,
        json!({
            "message_type": "text",
            "channel": "viber_service",
            "to": "34600600600",
            "from": VIBER_FROM,
            "text": format!("Tu código de Acme es {CODE}"),
            "viber_service": { "category": "transaction", "ttl": 300 },
            "client_ref": "verif-1",
            "webhook_url": WEBHOOK_URL,
        })
    );
}

#[tokio::test]
async fn rcs_is_a_text_message_from_the_agent_with_a_bounded_ttl() {
    let api = VonageApi::start().await;
    api.mount(Channel::Rcs, accepted(UUID)).await;
    let mut msg = message(Channel::Rcs);
    msg.validity = Duration::from_secs(60);
    api.adapter().send(&msg).await.unwrap();
    assert_eq!(
        sent_body(&api).await,
        json!({
            "message_type": "text",
            "channel": "rcs",
            "to": "34600600600",
            "from": RCS_FROM,
            "text": format!("Your Acme code is {CODE}"),
            "ttl": 300,
            "client_ref": "verif-1",
        })
    );
}

#[tokio::test]
async fn capabilities_follow_the_configured_senders() {
    let all = offline_adapter(with_application()).capabilities();
    assert_eq!(
        all.channels,
        vec![
            Channel::Sms,
            Channel::Whatsapp,
            Channel::Rcs,
            Channel::Viber
        ]
    );
    assert!(all.delivery_receipts);
    let viber_only = offline_adapter(json!({
        "sms_from": null, "whatsapp_from": null, "rcs_from": null, "signature_secret": null
    }))
    .capabilities();
    assert_eq!(viber_only.channels, vec![Channel::Viber]);
    assert!(!viber_only.delivery_receipts);
}

#[test]
fn receipts_are_declared_only_with_application_jwt_auth_and_unsigned_ones_ask_for_a_retry() {
    // Basic authentication: Vonage sends no signed webhooks, so none is declared or taken.
    let basic = offline_adapter(json!({}));
    assert!(!basic.capabilities().delivery_receipts);
    let body = status_body(UUID, "delivered", None).to_string();
    assert_eq!(
        basic.parse_receipts(&signed(body.as_bytes(), SIGNATURE_SECRET)),
        Err(ReceiptError::Unsupported)
    );
    // JWT authentication: declared; an unsigned webhook is not refused for good (the server
    // answers 5xx and Vonage retries), a wrongly signed one is.
    let jwt = offline_adapter(with_application());
    assert!(jwt.capabilities().delivery_receipts);
    let mut unsigned = signed(body.as_bytes(), SIGNATURE_SECRET);
    unsigned
        .headers
        .retain(|(name, _)| !name.eq_ignore_ascii_case("authorization"));
    assert_eq!(
        jwt.parse_receipts(&unsigned),
        Err(ReceiptError::Unverifiable)
    );
    assert_eq!(
        jwt.parse_receipts(&signed(body.as_bytes(), "another-secret")),
        Err(ReceiptError::BadSignature)
    );
}

#[test]
fn locales_map_to_whatsapp_template_languages() {
    let adapter = offline_adapter(json!({
        "whatsapp_languages": { "es": "es_MX" },
        "whatsapp_default_language": "en_GB",
    }));
    let c = adapter.config();
    for (locale, code) in [
        ("en", "en_US"),
        ("es", "es_MX"),
        ("pt_PT", "pt_PT"),
        ("de-AT", "de"),
        ("ar", "ar"),
        ("xx", "en_GB"),
    ] {
        assert_eq!(c.language_for(locale), code, "{locale}");
    }
}

// ---- application JWT authentication -------------------------------------------------------------

fn jwt_overrides(pem: &str) -> Value {
    json!({
        "api_key": null, "api_secret": null,
        "application_id": APPLICATION_ID, "private_key": pem,
    })
}

pub(crate) fn public_key_der(pem: &str) -> Vec<u8> {
    use ring::signature::KeyPair as _;
    let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    let der = STANDARD.decode(body).unwrap();
    let pair = ring::signature::RsaKeyPair::from_pkcs8(&der).unwrap();
    pair.public_key().as_ref().to_vec()
}

#[tokio::test]
async fn application_jwt_is_rs256_signed_with_the_private_key() {
    let api = VonageApi::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/messages"))
        .respond_with(accepted(UUID))
        .expect(1)
        .mount(&api.server)
        .await;
    let before = unix(SystemTime::now());
    api.adapter_with(jwt_overrides(TEST_KEY_PKCS8))
        .send(&message(Channel::Sms))
        .await
        .unwrap();
    let request = &api.server.received_requests().await.unwrap()[0];
    let auth = request
        .headers
        .get("authorization")
        .unwrap()
        .to_str()
        .unwrap();
    let token = auth.strip_prefix("Bearer ").expect("a Bearer token");
    let (input, signature) = token.rsplit_once('.').unwrap();
    ring::signature::UnparsedPublicKey::new(
        &ring::signature::RSA_PKCS1_2048_8192_SHA256,
        public_key_der(TEST_KEY_PKCS8),
    )
    .verify(
        input.as_bytes(),
        &URL_SAFE_NO_PAD.decode(signature).unwrap(),
    )
    .expect("RS256 signature verifies with the public key");
    let (header, claims) = input.split_once('.').unwrap();
    let header: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(header).unwrap()).unwrap();
    assert_eq!(header, json!({ "alg": "RS256", "typ": "JWT" }));
    let claims: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(claims).unwrap()).unwrap();
    assert_eq!(claims["application_id"], APPLICATION_ID);
    let iat = claims["iat"].as_u64().unwrap();
    assert!(iat >= before && iat <= before + 5);
    assert_eq!(claims["exp"].as_u64().unwrap(), iat + 900);
    let jti = claims["jti"].as_str().unwrap();
    assert_eq!(jti.len(), 32);
}

#[test]
fn each_application_jwt_has_its_own_jti() {
    let adapter = offline_adapter(jwt_overrides(TEST_KEY_PKCS8));
    let now = SystemTime::now();
    let a = adapter.application_token(now).unwrap().unwrap();
    let b = adapter.application_token(now).unwrap().unwrap();
    assert_ne!(a, b);
    assert!(offline_adapter(json!({})).application_token(now).is_none());
}

#[test]
fn private_keys_in_pkcs1_or_with_escaped_newlines_are_accepted() {
    offline_adapter(jwt_overrides(TEST_KEY_PKCS1));
    offline_adapter(jwt_overrides(&TEST_KEY_PKCS8.replace('\n', "\\n")));
}

fn registry_error(table: ProviderTable) -> String {
    match Registry::builtin().build("vonage", &table, &ProviderContext::new().unwrap()) {
        Err(e) => e.to_string(),
        Ok(_) => panic!("built from an invalid table"),
    }
}

#[test]
fn an_invalid_private_key_names_the_key_without_echoing_it() {
    let pem =
        "-----BEGIN PRIVATE KEY-----\nc2VjcmV0LWJ1dC1ub3QtYS1rZXk=\n-----END PRIVATE KEY-----";
    let err = registry_error(config_table("https://api.nexmo.com", jwt_overrides(pem)));
    assert!(err.starts_with("providers.vonage.private_key:"), "{err}");
    assert!(!err.contains("c2VjcmV0"), "{err}");
}

#[test]
fn credentials_must_come_in_pairs() {
    let base = "https://api.nexmo.com";
    assert!(
        registry_error(config_table(base, json!({ "api_secret": null })))
            .starts_with("providers.vonage.api_secret: missing")
    );
    assert!(
        registry_error(config_table(base, json!({ "api_key": null })))
            .starts_with("providers.vonage.api_key: missing")
    );
    assert!(
        registry_error(config_table(
            base,
            json!({ "application_id": APPLICATION_ID })
        ))
        .starts_with("providers.vonage.private_key: missing")
    );
    let none = registry_error(config_table(
        base,
        json!({ "api_key": null, "api_secret": null }),
    ));
    assert!(
        none.starts_with("providers.vonage.application_id:"),
        "{none}"
    );
}

#[test]
fn whatsapp_needs_its_template_and_some_channel_is_needed() {
    let base = "https://api.nexmo.com";
    let err = registry_error(config_table(base, json!({ "whatsapp_template": null })));
    assert!(
        err.starts_with("providers.vonage.whatsapp_template:"),
        "{err}"
    );
    let err = registry_error(config_table(
        base,
        json!({ "sms_from": null, "whatsapp_from": null, "viber_from": null, "rcs_from": null }),
    ));
    assert!(err.starts_with("providers.vonage.sms_from:"), "{err}");
}

#[test]
fn debug_of_the_adapter_hides_secrets_and_the_private_key() {
    for adapter in [
        offline_adapter(json!({})),
        offline_adapter(jwt_overrides(TEST_KEY_PKCS8)),
    ] {
        let debug = format!("{adapter:?}");
        for secret in [API_SECRET, SIGNATURE_SECRET, "MII"] {
            assert!(!debug.contains(secret), "{secret} in {debug}");
        }
    }
}

// ---- send-time errors: one test per row of PROVIDERS.md ---------------------------------------

macro_rules! vonage_error_tests {
    ($($name:ident: $channel:ident, $status:literal, $code:literal => $class:ident;)*) => {$(
        #[tokio::test]
        async fn $name() {
            let err = send_err(
                Channel::$channel,
                problem($status, $code, "Refused", &format!("for 34600600600 code {CODE}")),
            )
            .await;
            assert_eq!(err.class, FailureClass::$class, "{err}");
            assert_eq!(err.code.as_deref(), Some($code));
        }
    )*};
}

vonage_error_tests! {
    vonage_1000_throttled_is_transient: Sms, 429, "1000" => Transient;
    vonage_1180_absent_subscriber_temporary_is_transient: Sms, 422, "1180" => Transient;
    vonage_1220_handset_busy_is_transient: Sms, 422, "1220" => Transient;
    vonage_1230_network_error_is_transient: Sms, 422, "1230" => Transient;
    vonage_1331_provider_error_is_transient: Viber, 422, "1331" => Transient;
    vonage_1210_anti_spam_is_fallback: Sms, 422, "1210" => Fallback;
    vonage_1250_unroutable_is_fallback: Sms, 422, "1250" => Fallback;
    vonage_1260_destination_unreachable_is_fallback: Viber, 422, "1260" => Fallback;
    vonage_1280_blocked_by_carrier_is_fallback: Sms, 422, "1280" => Fallback;
    vonage_1300_not_on_channel_is_fallback: Viber, 422, "1300" => Fallback;
    vonage_1310_unsuitable_device_is_fallback: Rcs, 422, "1310" => Fallback;
    // Invalid params: our request's values, never a verdict on the number.
    vonage_1020_invalid_params_is_config_not_permanent: Sms, 422, "1020" => Config;
    vonage_1040_is_config: Sms, 422, "1040" => Config;
    vonage_1460_daily_limit_is_fallback: Sms, 422, "1460" => Fallback;
    vonage_invalid_params_type_fragment_is_config: Sms, 422, "InvalidParams" => Config;
    vonage_1170_invalid_number_is_permanent: Sms, 422, "1170" => Permanent;
    vonage_1190_absent_subscriber_permanent_is_permanent: Sms, 422, "1190" => Permanent;
    vonage_1240_opted_out_is_permanent: Sms, 422, "1240" => Permanent;
    vonage_1050_number_barred_is_permanent: Sms, 422, "1050" => Permanent;
    // Beyond the PROVIDERS.md table.
    vonage_1120_illegal_sender_is_config: Sms, 422, "1120" => Config;
    vonage_1340_outside_the_whatsapp_window_is_config: Whatsapp, 422, "1340" => Config;
    vonage_low_balance_is_config: Sms, 402, "low-balance" => Config;
    vonage_unauthorized_is_config: Sms, 401, "unauthorized" => Config;
    vonage_unknown_4xx_code_is_fallback: Sms, 422, "1999" => Fallback;
    vonage_unknown_5xx_code_is_transient: Sms, 503, "1999" => Transient;
    vonage_generic_invalid_params_is_config: Sms, 422, "invalid-params" => Config;
    vonage_1473_fraud_defender_ait_protection_is_fraud: Sms, 422, "1473" => Fraud;
}

#[tokio::test]
async fn vonage_429_rate_limit_hit_is_transient_with_retry_after() {
    let err = send_err(
        Channel::Sms,
        problem(429, "throttled", "Rate Limit Hit", "Please wait")
            .insert_header("Retry-After", "3"),
    )
    .await;
    assert_eq!(err.class, FailureClass::Transient);
    assert_eq!(err.code.as_deref(), Some("throttled"));
    assert_eq!(err.retry_after, Some(Duration::from_secs(3)));
}

#[tokio::test]
async fn vonage_numeric_title_and_legacy_code_are_read_too() {
    let err = send_err(
        Channel::Viber,
        ResponseTemplate::new(422).set_body_json(json!({ "type": "about:blank", "title": 1300 })),
    )
    .await;
    assert_eq!(
        (err.class, err.code.as_deref()),
        (FailureClass::Fallback, Some("1300"))
    );
}

#[tokio::test]
async fn vonage_malformed_bodies_and_missing_uuid_are_transient() {
    let err = send_err(
        Channel::Sms,
        ResponseTemplate::new(422).set_body_raw("<html>no</html>", "text/html"),
    )
    .await;
    assert_eq!(
        (err.class, err.code.as_deref()),
        (FailureClass::Transient, Some("http_422"))
    );
    let err = send_err(
        Channel::Sms,
        ResponseTemplate::new(202).set_body_json(json!({})),
    )
    .await;
    assert_eq!(
        (err.class, err.code.as_deref()),
        (FailureClass::Transient, Some("malformed_response"))
    );
}

#[tokio::test]
async fn vonage_2xx_carrying_a_problem_is_classified_by_its_code() {
    let err = send_err(Channel::Sms, problem(200, "1240", "Illegal Number", "STOP")).await;
    assert_eq!(
        (err.class, err.code.as_deref()),
        (FailureClass::Permanent, Some("1240"))
    );
}

#[tokio::test]
async fn vonage_errors_keep_title_and_detail_but_never_the_number_code_or_secret() {
    let err = send_err(
        Channel::Sms,
        problem(
            422,
            "1250",
            "Unroutable",
            &format!("{TO} {CODE} {API_SECRET}"),
        ),
    )
    .await;
    assert!(err.message.contains("Unroutable"), "{err}");
}

// ---- status webhooks ----------------------------------------------------------------------------

fn parse(
    req: &InboundRequest,
) -> Result<Vec<switchboard_providers::DeliveryReceipt>, ReceiptError> {
    offline_adapter(with_application()).parse_receipts(req)
}

fn receipt(status: &str, error: Option<Value>) -> switchboard_providers::DeliveryReceipt {
    let body = status_body(UUID, status, error).to_string();
    parse(&signed(body.as_bytes(), SIGNATURE_SECRET))
        .unwrap()
        .remove(0)
}

#[test]
fn webhook_statuses_become_receipts_with_the_provider_time() {
    for (status, expected) in [
        ("submitted", ReceiptStatus::Sent),
        ("delivered", ReceiptStatus::Delivered),
        ("read", ReceiptStatus::Read),
    ] {
        let r = receipt(status, None);
        assert_eq!(r.status, expected);
        assert_eq!(
            (r.provider.as_str(), r.provider_message_id.as_str()),
            ("vonage", UUID)
        );
        assert_eq!(r.failure, None);
        assert_eq!(
            r.at,
            SystemTime::UNIX_EPOCH + Duration::from_secs(1_767_225_600)
        );
    }
}

#[test]
fn vonage_1300_in_an_undeliverable_webhook_is_fallback() {
    let r = receipt(
        "undeliverable",
        Some(json!({
            "type": "https://developer.nexmo.com/api-errors/messages-olympus#1300",
            "title": 1300,
            "detail": "Not part of the provider network",
        })),
    );
    assert_eq!(r.status, ReceiptStatus::Failed);
    let f = r.failure.unwrap();
    assert_eq!(
        (f.class, f.code.as_deref()),
        (FailureClass::Fallback, Some("1300"))
    );
}

#[test]
fn webhook_error_title_may_be_a_string_and_codes_keep_their_class() {
    for (error, class, code) in [
        (
            json!({ "type": "https://developer.vonage.com/api-errors/messages#1240", "title": "1240" }),
            FailureClass::Permanent,
            "1240",
        ),
        (
            json!({ "type": "https://developer.vonage.com/api-errors/messages#1220", "title": "Handset Busy" }),
            FailureClass::Transient,
            "1220",
        ),
        (
            json!({ "code": 1170, "reason": "Invalid or Missing Msisdn Param" }),
            FailureClass::Permanent,
            "1170",
        ),
    ] {
        let f = receipt("rejected", Some(error)).failure.unwrap();
        assert_eq!((f.class, f.code.as_deref()), (class, Some(code)));
    }
    let f = receipt("rejected", None).failure.unwrap();
    assert_eq!((f.class, f.code), (FailureClass::Fallback, None));
}

#[test]
fn webhooks_without_a_status_or_with_an_unknown_one_give_no_receipt() {
    let inbound = json!({ "message_uuid": UUID, "to": "14155550100", "from": "34600600600", "channel": "whatsapp", "message_type": "text", "text": "hi" }).to_string();
    assert!(
        parse(&signed(inbound.as_bytes(), SIGNATURE_SECRET))
            .unwrap()
            .is_empty()
    );
    let deleted = status_body(UUID, "deleted", None).to_string();
    assert!(
        parse(&signed(deleted.as_bytes(), SIGNATURE_SECRET))
            .unwrap()
            .is_empty()
    );
}

#[test]
fn webhook_signed_with_another_secret_or_tampered_is_rejected_before_parsing() {
    let body = status_body(UUID, "delivered", None).to_string();
    assert_eq!(
        parse(&signed(body.as_bytes(), "another-secret")),
        Err(ReceiptError::BadSignature)
    );
    // Valid token, other body: the payload hash does not match.
    let mut tampered = signed(body.as_bytes(), SIGNATURE_SECRET);
    tampered.body = status_body(UUID, "read", None).to_string().into_bytes();
    assert_eq!(parse(&tampered), Err(ReceiptError::BadSignature));
    // Valid signature over garbage: signed, then malformed.
    assert!(matches!(
        parse(&signed(b"not json", SIGNATURE_SECRET)),
        Err(ReceiptError::Malformed(_))
    ));
}

fn token_with(claims: Value) -> String {
    hs256(
        SIGNATURE_SECRET,
        &json!({ "alg": "HS256", "typ": "JWT" }),
        &claims,
    )
}

#[test]
fn webhook_tokens_without_payload_hash_or_for_another_api_key_are_rejected() {
    let body = status_body(UUID, "delivered", None).to_string();
    let mut claims = webhook_claims(body.as_bytes(), unix(received_at()));
    claims.as_object_mut().unwrap().remove("payload_hash");
    assert_eq!(
        parse(&webhook(body.as_bytes(), &token_with(claims))),
        Err(ReceiptError::BadSignature)
    );
    let mut claims = webhook_claims(body.as_bytes(), unix(received_at()));
    claims["api_key"] = json!("someoneelse");
    assert_eq!(
        parse(&webhook(body.as_bytes(), &token_with(claims))),
        Err(ReceiptError::BadSignature)
    );
}

#[test]
fn webhook_tokens_with_alg_none_or_another_scheme_are_rejected() {
    let body = status_body(UUID, "delivered", None).to_string();
    let claims = webhook_claims(body.as_bytes(), unix(received_at()));
    let unsigned = format!(
        "{}.{}.",
        URL_SAFE_NO_PAD.encode(r#"{"alg":"none","typ":"JWT"}"#),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    assert_eq!(
        parse(&webhook(body.as_bytes(), &unsigned)),
        Err(ReceiptError::BadSignature)
    );
    let mut basic = signed(body.as_bytes(), SIGNATURE_SECRET);
    basic.headers[1].1 = basic.headers[1].1.replace("Bearer", "Basic");
    assert_eq!(parse(&basic), Err(ReceiptError::BadSignature));
}

#[test]
fn webhook_tokens_out_of_their_time_window_are_stale() {
    let body = status_body(UUID, "delivered", None).to_string();
    let now = unix(received_at());
    let with = |f: &dyn Fn(&mut Value)| {
        let mut claims = webhook_claims(body.as_bytes(), now);
        f(&mut claims);
        parse(&webhook(body.as_bytes(), &token_with(claims)))
    };
    assert!(with(&|c| c["exp"] = json!(now + 60)).is_ok());
    assert!(with(&|c| c["iat"] = json!(now - 3600)).is_ok());
    assert_eq!(
        with(&|c| c["exp"] = json!(now - 3600)),
        Err(ReceiptError::Stale)
    );
    assert_eq!(
        with(&|c| c["iat"] = json!(now + 3600)),
        Err(ReceiptError::Stale)
    );
    assert_eq!(
        with(&|c| c["iat"] = json!(now - 90_000)),
        Err(ReceiptError::Stale)
    );
    assert_eq!(
        with(&|c| c["nbf"] = json!(now + 3600)),
        Err(ReceiptError::Stale)
    );
    assert!(matches!(
        with(&|c| c["iat"] = json!("yesterday")),
        Err(ReceiptError::Malformed(_))
    ));
}

#[test]
fn webhook_receipts_need_the_signature_secret() {
    let adapter = offline_adapter(json!({ "signature_secret": null }));
    let body = status_body(UUID, "delivered", None).to_string();
    assert_eq!(
        adapter.parse_receipts(&signed(body.as_bytes(), SIGNATURE_SECRET)),
        Err(ReceiptError::Unsupported)
    );
}

#[test]
fn parse_error_never_panics_on_arbitrary_bodies() {
    use proptest::prelude::*;
    proptest!(|(status in 100u16..600, body in proptest::collection::vec(any::<u8>(), 0..512))| {
        let _ = vonage::parse_error(status, &body, &Default::default());
    });
    proptest!(|(t in "\\PC{0,80}", title in any::<i64>())| {
        let body = json!({ "type": t, "title": title }).to_string();
        let _ = vonage::parse_error(422, body.as_bytes(), &Default::default());
    });
}

#[test]
fn webhook_verifier_never_panics_on_arbitrary_tokens_and_bodies() {
    use proptest::prelude::*;
    let adapter = offline_adapter(with_application());
    proptest!(|(token in "\\PC{0,200}", body in proptest::collection::vec(any::<u8>(), 0..256))| {
        let _ = adapter.parse_receipts(&webhook(&body, &token));
    });
    proptest!(|(body in proptest::collection::vec(any::<u8>(), 0..512))| {
        let _ = adapter.parse_receipts(&signed(&body, SIGNATURE_SECRET));
    });
}
