//! Every provider's delivery-receipt door: the signature verifier, then the parser.
//!
//! Input: one byte picks the provider (twilio, meta_whatsapp, telegram, vonage, infobip, and
//! Meta's subscription handshake); one byte picks the proof: even, a valid one computed over the
//! fuzzed body (so the parser is reached); odd, the text before the first `\n` is the
//! signature header itself (so the verifier is fuzzed). The rest is the body (the query string,
//! for the handshake). Invariants: an error, never a panic; a receipt names its provider and a
//! message id; a forged proof is refused before the body is parsed.

use std::sync::OnceLock;
use std::time::{Duration, SystemTime};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use switchboard_providers::http::HttpClient;
use switchboard_providers::infobip::{self, InfobipProvider};
use switchboard_providers::meta_whatsapp::{self, MetaWhatsappProvider};
use switchboard_providers::telegram::{self, TelegramProvider};
use switchboard_providers::twilio::{self, TwilioProvider};
use switchboard_providers::vonage::VonageProvider;
use switchboard_providers::{DynProvider, InboundRequest, ProviderTable, ReceiptError};

const TWILIO_TOKEN: &str = "fuzz-twilio-auth-token";
const TWILIO_URL: &str = "https://hooks.example.com/twilio/status";
const META_SECRET: &str = "fuzz-meta-app-secret";
const META_VERIFY_TOKEN: &str = "fuzz-meta-verify-token";
const META_URL: &str = "https://hooks.example.com/meta/webhook";
const TELEGRAM_TOKEN: &str = "fuzz-telegram-access-token";
const TELEGRAM_URL: &str = "https://hooks.example.com/telegram/report";
const VONAGE_KEY: &str = "a1b2c3d4";
const VONAGE_SECRET: &str = "fuzz-vonage-signature-secret";
const VONAGE_APPLICATION: &str = "aaaaaaaa-bbbb-4ccc-8ddd-0123456789ab";
/// The providers' tests' throw-away RSA key (signed webhooks need JWT application auth).
const VONAGE_KEY_PEM: &str = include_str!("../../providers/tests/it/data/vonage_test_key.pem");
const VONAGE_URL: &str = "https://hooks.example.com/vonage/status";
const INFOBIP_USER: &str = "switchboard";
const INFOBIP_SECRET: &str = "fuzz-infobip-receipt-secret";
const INFOBIP_URL: &str = "https://hooks.example.com/infobip/reports";

/// When every fuzzed callback arrives (fixed, so runs repeat).
fn received_at() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_767_225_600)
}

struct Providers {
    twilio: TwilioProvider,
    meta: MetaWhatsappProvider,
    telegram: TelegramProvider,
    vonage: VonageProvider,
    infobip: InfobipProvider,
}

fn providers() -> &'static Providers {
    static PROVIDERS: OnceLock<Providers> = OnceLock::new();
    PROVIDERS.get_or_init(|| {
        let http = HttpClient::new().expect("an HTTP client");
        let table = |v: Value| ProviderTable::new(v);
        Providers {
            twilio: TwilioProvider::new(
                table(json!({
                    "account_sid": "AC0123456789abcdef0123456789abcdef",
                    "auth_token": TWILIO_TOKEN,
                    "from": "+15005550006",
                    "status_callback_url": TWILIO_URL,
                    "base_url": "https://api.twilio.invalid",
                }))
                .parse()
                .expect("twilio config"),
                http.clone(),
            )
            .expect("twilio adapter"),
            meta: MetaWhatsappProvider::new(
                table(json!({
                    "access_token": "fuzz-meta-access-token",
                    "phone_number_id": "106540352242922",
                    "app_secret": META_SECRET,
                    "verify_token": META_VERIFY_TOKEN,
                    "base_url": "https://graph.facebook.invalid",
                }))
                .parse()
                .expect("meta config"),
                http.clone(),
            )
            .expect("meta adapter"),
            telegram: TelegramProvider::new(
                table(json!({
                    "access_token": TELEGRAM_TOKEN,
                    "callback_url": TELEGRAM_URL,
                    "base_url": "https://gatewayapi.telegram.invalid",
                }))
                .parse()
                .expect("telegram config"),
                http.clone(),
            )
            .expect("telegram adapter"),
            vonage: VonageProvider::new(
                table(json!({
                    "api_key": VONAGE_KEY,
                    "api_secret": "fuzz-vonage-api-secret",
                    "sms_from": "Acme",
                    "signature_secret": VONAGE_SECRET,
                    "application_id": VONAGE_APPLICATION,
                    "private_key": VONAGE_KEY_PEM,
                    "base_url": "https://api.nexmo.invalid",
                }))
                .parse()
                .expect("vonage config"),
                http.clone(),
            )
            .expect("vonage adapter"),
            infobip: InfobipProvider::new(
                table(json!({
                    "api_key": "fuzz-infobip-api-key",
                    "from": "InfoSMS",
                    "notify_url": INFOBIP_URL,
                    "receipt_secret": INFOBIP_SECRET,
                    "receipt_username": INFOBIP_USER,
                    "base_url": "https://api.infobip.invalid",
                }))
                .parse()
                .expect("infobip config"),
                http,
            )
            .expect("infobip adapter"),
        }
    })
}

pub fn run(data: &[u8]) {
    let _ = receipts(data);
}

/// What the provider picked by `data` made of it: the number of receipts, or its refusal;
/// `None` for inputs too short to pick one, and for the handshake.
pub fn receipts(data: &[u8]) -> Option<Result<usize, ReceiptError>> {
    let [which, proof, rest @ ..] = data else {
        return None;
    };
    let (forged_proof, body) = if proof % 2 == 1 {
        let (header, body) = super::split_line(rest);
        (Some(String::from_utf8_lossy(header).into_owned()), body)
    } else {
        (None, rest)
    };
    let p = providers();
    let (provider, mut request, proof_header): (&dyn DynProvider, InboundRequest, &str) =
        match which % 6 {
            0 => (&p.twilio, twilio_request(body), "X-Twilio-Signature"),
            1 => (&p.meta, meta_request(body), "X-Hub-Signature-256"),
            2 => (&p.telegram, telegram_request(body), "X-Request-Signature"),
            3 => (&p.vonage, vonage_request(body), "Authorization"),
            4 => (&p.infobip, infobip_request(body), "Authorization"),
            _ => {
                handshake(&p.meta, body);
                return None;
            }
        };
    let mut forged = false;
    if let Some(value) = forged_proof {
        let (_, honest) = request
            .headers
            .iter_mut()
            .find(|(name, _)| name == proof_header)
            .expect("the request carries its proof");
        forged = *honest != value;
        *honest = value;
    }
    let outcome = provider.parse_receipts(&request);
    match &outcome {
        Ok(receipts) => {
            assert!(!forged, "a forged proof is refused");
            for r in receipts {
                assert_eq!(r.provider, provider.name(), "a receipt names its provider");
                assert!(
                    !r.provider_message_id.is_empty(),
                    "a receipt names a message"
                );
            }
        }
        Err(ReceiptError::Malformed(why)) => assert!(
            !forged,
            "a forged proof is refused before the body is read, not as malformed ({why})"
        ),
        Err(_) => {}
    }
    Some(outcome.map(|r| r.len()))
}

fn request(url: &str, headers: Vec<(&str, String)>, body: &[u8]) -> InboundRequest {
    InboundRequest::new(
        "POST",
        url,
        headers
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v))
            .collect(),
        body.to_vec(),
        received_at(),
    )
}

fn twilio_request(body: &[u8]) -> InboundRequest {
    let params: Vec<(String, String)> = form_urlencoded::parse(body).into_owned().collect();
    let signature = twilio::compute_signature(TWILIO_TOKEN, TWILIO_URL, &params);
    request(
        TWILIO_URL,
        vec![
            (
                "Content-Type",
                "application/x-www-form-urlencoded".to_owned(),
            ),
            ("X-Twilio-Signature", signature),
        ],
        body,
    )
}

fn meta_request(body: &[u8]) -> InboundRequest {
    let signature = meta_whatsapp::compute_signature(META_SECRET, body);
    request(
        META_URL,
        vec![
            ("Content-Type", "application/json".to_owned()),
            ("X-Hub-Signature-256", signature),
        ],
        body,
    )
}

fn telegram_request(body: &[u8]) -> InboundRequest {
    let timestamp = unix(received_at()).to_string();
    let signature = telegram::compute_signature(TELEGRAM_TOKEN, &timestamp, body);
    request(
        TELEGRAM_URL,
        vec![
            ("Content-Type", "application/json".to_owned()),
            ("X-Request-Timestamp", timestamp),
            ("X-Request-Signature", signature),
        ],
        body,
    )
}

/// Vonage signs a JWT (HS256) whose `payload_hash` is the SHA-256 of the body.
fn vonage_request(body: &[u8]) -> InboundRequest {
    let authorization = {
        let claims = json!({
            "iat": unix(received_at()),
            "jti": "c5ba8f24-1a14-4c10-bfdf-3fbe8ce511b5",
            "iss": "Vonage",
            "payload_hash": hex::encode(Sha256::digest(body)),
            "api_key": VONAGE_KEY,
            "application_id": VONAGE_APPLICATION,
        });
        let input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(json!({"alg": "HS256", "typ": "JWT"}).to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let mut mac =
            Hmac::<Sha256>::new_from_slice(VONAGE_SECRET.as_bytes()).expect("HMAC takes any key");
        mac.update(input.as_bytes());
        let signature = URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes());
        format!("Bearer {input}.{signature}")
    };
    request(
        VONAGE_URL,
        vec![
            ("Content-Type", "application/json".to_owned()),
            ("Authorization", authorization),
        ],
        body,
    )
}

fn infobip_request(body: &[u8]) -> InboundRequest {
    let authorization = infobip::basic_authorization(INFOBIP_USER, INFOBIP_SECRET);
    request(
        INFOBIP_URL,
        vec![
            ("Content-Type", "application/json".to_owned()),
            ("Authorization", authorization),
        ],
        body,
    )
}

/// Meta's GET handshake: the query string is fuzzed; only our verify token earns the challenge.
fn handshake(meta: &MetaWhatsappProvider, query: &[u8]) {
    let query = String::from_utf8_lossy(query);
    let request = InboundRequest::new(
        "GET",
        format!("{META_URL}?{query}"),
        Vec::new(),
        Vec::new(),
        received_at(),
    );
    if let Ok(challenge) = DynProvider::verify_subscription(meta, &request) {
        assert!(
            request
                .query
                .iter()
                .any(|(k, v)| k == "hub.verify_token" && v == META_VERIFY_TOKEN),
            "the challenge is answered only to our verify token"
        );
        assert!(
            request
                .query
                .iter()
                .any(|(k, v)| k == "hub.challenge" && *v == challenge),
            "the answer is the challenge"
        );
    }
}

fn unix(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}
