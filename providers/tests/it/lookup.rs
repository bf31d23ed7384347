//! Line lookups: wiremock emulations of Twilio Lookup v2 and Vonage Number Insight Advanced —
//! the documented success bodies, every documented error class, requests validated against
//! the official OpenAPI parameters (vendored under `tests/specs/`), secrets kept out of errors.

use serde_json::{Value, json};
use switchboard_providers::http::HttpClient;
use switchboard_providers::lookup::{LineKind, LookupRequest, build_lookup};
use switchboard_providers::twilio_lookup::TwilioLookup;
use switchboard_providers::vonage_insight::VonageInsight;
use switchboard_providers::{
    DeliveryError, FailureClass, LineFacts, LineLookup, ProviderContext, ProviderTable,
};
use wiremock::matchers::{method, path_regex};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

const NUMBER: &str = "+14159929960";
const SID: &str = "AC0123456789abcdef0123456789abcdef";
const TOKEN: &str = "twilio-lookup-token-0f1e2d3c4b5a6978";
const KEY: &str = "abcd1234";
const SECRET: &str = "vonage-ni-secret-9a8b7c";

fn want_all() -> LookupRequest<'static> {
    LookupRequest {
        e164: NUMBER,
        line: true,
        sim_swap: true,
    }
}

fn twilio(server: &MockServer) -> TwilioLookup {
    let table = ProviderTable::new(json!({
        "account_sid": SID, "auth_token": TOKEN, "base_url": server.uri(),
    }));
    TwilioLookup::new(table.parse().unwrap(), HttpClient::new().unwrap()).unwrap()
}

fn vonage(server: &MockServer) -> VonageInsight {
    let table = ProviderTable::new(json!({
        "api_key": KEY, "api_secret": SECRET, "base_url": server.uri(),
    }));
    VonageInsight::new(table.parse().unwrap(), HttpClient::new().unwrap()).unwrap()
}

/// Twilio's `fetchLineTypeIntelligence` and `fetchSimSwap` examples, in one body.
pub fn twilio_body(line_type: &str, swapped_period: &str, swapped: bool) -> Value {
    json!({
        "calling_country_code": "1", "country_code": "US", "phone_number": NUMBER,
        "national_format": "(415) 992-9960", "valid": true, "validation_errors": null,
        "caller_name": null, "call_forwarding": null, "line_status": null,
        "identity_match": null, "reassigned_number": null, "sms_pumping_risk": null,
        "phone_number_quality_score": null, "pre_fill": null,
        "line_type_intelligence": {
            "error_code": null, "mobile_country_code": "240", "mobile_network_code": "38",
            "carrier_name": "Twilio - SMS/MMS-SVR", "type": line_type,
        },
        "sim_swap": {
            "last_sim_swap": {
                "last_sim_swap_date": null, "swapped_period": swapped_period,
                "swapped_in_period": swapped,
            },
            "carrier_name": "Vodafone UK", "mobile_country_code": "276",
            "mobile_network_code": "02", "error_code": null,
        },
        "url": format!("https://lookups.twilio.com/v2/PhoneNumbers/{NUMBER}"),
    })
}

async fn mount(server: &MockServer, response: ResponseTemplate) {
    Mock::given(method("GET"))
        .and(path_regex(".*"))
        .respond_with(response)
        .mount(server)
        .await;
}

async fn twilio_answer(response: ResponseTemplate) -> Result<LineFacts, DeliveryError> {
    let server = MockServer::start().await;
    mount(&server, response).await;
    twilio(&server).lookup(&want_all()).await
}

async fn vonage_answer(response: ResponseTemplate) -> Result<LineFacts, DeliveryError> {
    let server = MockServer::start().await;
    mount(&server, response).await;
    vonage(&server).lookup(&want_all()).await
}

fn assert_clean(err: &DeliveryError, secrets: &[&str]) {
    for text in [err.message.clone(), err.to_string(), format!("{err:?}")] {
        for needle in [NUMBER, NUMBER.trim_start_matches('+')]
            .iter()
            .chain(secrets)
        {
            assert!(!text.contains(needle), "{needle:?} leaked into {text:?}");
        }
    }
}

/// Checks one received GET against an extracted parameter document: the path fits the
/// template, every query parameter is declared, every required one is there, and each value
/// validates against its schema (booleans and integers typed first).
fn assert_request_matches(spec_file: &str, request: &Request, path_prefix: &str) {
    let file = format!("{}/tests/specs/{spec_file}", env!("CARGO_MANIFEST_DIR"));
    let doc: Value = serde_json::from_slice(&std::fs::read(file).unwrap()).unwrap();
    let template = doc["path"].as_str().unwrap();
    let path = request.url.path().strip_prefix(path_prefix).unwrap();
    let (head, _) = template.split_once('{').unwrap();
    let value = path
        .strip_prefix(head)
        .unwrap_or_else(|| panic!("{path} does not fit {template}"));
    let params = doc["parameters"].as_object().unwrap();
    let path_param = params
        .iter()
        .find(|(_, p)| p["in"] == "path")
        .map(|(n, _)| n.clone())
        .unwrap();
    let mut given: Vec<(String, String, String)> =
        vec![(path_param, "path".into(), percent_decode(value))];
    for (k, v) in request.url.query_pairs() {
        given.push((k.into_owned(), "query".into(), v.into_owned()));
    }
    for (name, p) in params {
        if p["required"] == true && p["in"] != "path" {
            assert!(
                given.iter().any(|(n, _, _)| n == name),
                "{spec_file}: required {name} missing"
            );
        }
    }
    for (name, place, value) in &given {
        let p = params
            .get(name)
            .unwrap_or_else(|| panic!("{spec_file}: undeclared parameter {name}"));
        assert_eq!(p["in"].as_str(), Some(place.as_str()), "{name}");
        let schema = &p["schema"];
        let typed = match schema["type"].as_str() {
            Some("boolean") => value
                .parse::<bool>()
                .map(Value::from)
                .unwrap_or(json!(value)),
            Some("integer") => value
                .parse::<i64>()
                .map(Value::from)
                .unwrap_or(json!(value)),
            _ => json!(value),
        };
        let validator = jsonschema::draft4::new(schema).unwrap();
        assert!(
            validator.is_valid(&typed),
            "{spec_file}: {name}={value:?} does not match {schema}"
        );
    }
}

fn percent_decode(s: &str) -> String {
    form_urlencoded::parse(format!("x={}", s.replace('+', "%2B")).as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}

#[tokio::test]
async fn twilio_non_fixed_voip_and_a_recent_sim_swap_are_read_from_the_documented_body() {
    let facts = twilio_answer(ResponseTemplate::new(200).set_body_json(twilio_body(
        "nonFixedVoip",
        "PT48H",
        true,
    )))
    .await
    .unwrap();
    assert_eq!(facts.provider, "twilio");
    assert_eq!(facts.line, Some(LineKind::NonFixedVoip));
    assert_eq!(facts.carrier.as_deref(), Some("Twilio - SMS/MMS-SVR"));
    assert_eq!(facts.mobile_country_code.as_deref(), Some("240"));
    assert_eq!(facts.mobile_network_code.as_deref(), Some("38"));
    let swap = facts.sim_swap.unwrap();
    assert_eq!(swap.period_secs, Some(48 * 3600));
    assert_eq!(swap.swapped_in_period, Some(true));
    assert_eq!(swap.last_swap_ms, None);

    // A dated swap (Twilio's `fetchSimSwap` example).
    let mut body = twilio_body("mobile", "PT48H", true);
    body["sim_swap"]["last_sim_swap"]["last_sim_swap_date"] = json!("2020-04-27T10:18:50Z");
    let facts = twilio_answer(ResponseTemplate::new(200).set_body_json(body))
        .await
        .unwrap();
    assert_eq!(facts.line, Some(LineKind::Mobile));
    assert_eq!(
        facts.sim_swap.unwrap().last_swap_ms,
        Some(1_587_982_730_000)
    );
}

#[tokio::test]
async fn twilio_lookup_requests_match_the_official_parameters() {
    let server = MockServer::start().await;
    mount(
        &server,
        ResponseTemplate::new(200).set_body_json(twilio_body("mobile", "PT24H", false)),
    )
    .await;
    let adapter = twilio(&server);
    for (line, sim_swap) in [(true, true), (true, false), (false, true)] {
        adapter
            .lookup(&LookupRequest {
                e164: NUMBER,
                line,
                sim_swap,
            })
            .await
            .unwrap();
    }
    let doc: Value = serde_json::from_slice(
        &std::fs::read(format!(
            "{}/tests/specs/twilio_lookup_fetch.json",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap(),
    )
    .unwrap();
    // The spec lists the possible `Fields` values in prose.
    let documented = doc["parameters"]["Fields"]["description"].as_str().unwrap();
    let received = server.received_requests().await.unwrap();
    let fields: Vec<String> = received
        .iter()
        .map(|r| {
            assert_request_matches("twilio_lookup_fetch.json", r, "");
            let auth = r.headers.get("authorization").unwrap().to_str().unwrap();
            assert!(auth.starts_with("Basic "), "HTTP Basic auth");
            r.url
                .query_pairs()
                .find(|(k, _)| k == "Fields")
                .map(|(_, v)| v.into_owned())
                .unwrap()
        })
        .collect();
    assert_eq!(
        fields,
        [
            "line_type_intelligence,sim_swap",
            "line_type_intelligence",
            "sim_swap"
        ]
    );
    for field in fields.iter().flat_map(|f| f.split(',')) {
        assert!(
            documented.contains(field),
            "{field} is not a documented Fields value"
        );
    }
}

#[tokio::test]
async fn twilio_each_documented_error_has_its_class_and_leaks_nothing() {
    let error = |status: u16, code: u32, message: &str| {
        ResponseTemplate::new(status).set_body_json(json!({
            "code": code, "message": format!("{message} for {NUMBER} with {TOKEN}"),
            "more_info": format!("https://www.twilio.com/docs/errors/{code}"), "status": status,
        }))
    };
    let field_error = |code: u32| {
        let mut body = twilio_body("mobile", "PT24H", false);
        body["line_type_intelligence"] = json!({
            "error_code": code, "mobile_country_code": null, "mobile_network_code": null,
            "carrier_name": null, "type": null,
        });
        body["sim_swap"] = json!({
            "last_sim_swap": null, "carrier_name": null, "mobile_country_code": null,
            "mobile_network_code": null, "error_code": code,
        });
        ResponseTemplate::new(200).set_body_json(body)
    };
    let cases = [
        (
            "authentication",
            error(401, 20003, "Authenticate"),
            FailureClass::Config,
            "20003",
        ),
        (
            "not found",
            error(404, 20404, "The requested resource was not found"),
            FailureClass::Permanent,
            "20404",
        ),
        (
            "too many requests",
            error(429, 20429, "Too Many Requests").insert_header("Retry-After", "2"),
            FailureClass::Transient,
            "20429",
        ),
        (
            "server error, no body",
            ResponseTemplate::new(503),
            FailureClass::Transient,
            "http_503",
        ),
        (
            "package not enabled",
            field_error(60606),
            FailureClass::Config,
            "60606",
        ),
        (
            "provider not available",
            field_error(60607),
            FailureClass::Transient,
            "60607",
        ),
        (
            "not valid",
            ResponseTemplate::new(200).set_body_json(json!({
                "phone_number": NUMBER, "valid": false, "validation_errors": ["TOO_LONG"],
                "line_type_intelligence": null, "sim_swap": null,
            })),
            FailureClass::Permanent,
            "invalid_number",
        ),
    ];
    for (what, response, class, code) in cases {
        let err = twilio_answer(response).await.unwrap_err();
        assert_eq!(err.class, class, "{what}: {err}");
        assert_eq!(err.code.as_deref(), Some(code), "{what}");
        assert!(!err.outcome_unknown, "{what}: a lookup is a read");
        assert_clean(&err, &[TOKEN, SID]);
        if what == "too many requests" {
            assert_eq!(err.retry_after, Some(std::time::Duration::from_secs(2)));
        }
    }
    // Out of coverage (60600) is no answer, not a failure.
    let facts = twilio_answer(field_error(60600)).await.unwrap();
    assert_eq!((facts.line, facts.sim_swap), (None, None));
}

#[tokio::test]
async fn vonage_ported_number_reports_its_current_carrier_and_type() {
    let body = json!({
        "status": 0, "status_message": "Success",
        "request_id": "aaaaaaaa-bbbb-cccc-dddd-0123456789ab",
        "international_format_number": "14159929960", "national_format_number": "(415) 992-9960",
        "country_code": "US", "country_code_iso3": "USA", "country_name": "United States of America",
        "country_prefix": "1", "request_price": "0.03000000", "remaining_balance": "1.23456789",
        "current_carrier": { "network_code": "310260", "name": "T-Mobile USA", "country": "US", "network_type": "mobile" },
        "original_carrier": { "network_code": "310410", "name": "AT&T Mobility", "country": "US", "network_type": "mobile" },
        "ported": "ported", "roaming": { "status": "not_roaming" },
        "lookup_outcome": 0, "lookup_outcome_message": "Success",
        "valid_number": "valid", "reachable": "reachable",
    });
    let facts = vonage_answer(ResponseTemplate::new(200).set_body_json(body))
        .await
        .unwrap();
    assert_eq!(facts.provider, "vonage");
    assert_eq!(facts.line, Some(LineKind::Mobile));
    assert_eq!(facts.carrier.as_deref(), Some("T-Mobile USA"));
    assert_eq!(facts.original_carrier.as_deref(), Some("AT&T Mobility"));
    assert_eq!(facts.ported, Some(true));
    assert_eq!(facts.roaming, Some(false));
    assert_eq!(facts.reachable, Some(true));
    assert_eq!(facts.mobile_country_code.as_deref(), Some("310"));
    assert_eq!(facts.mobile_network_code.as_deref(), Some("260"));
    assert_eq!(facts.sim_swap, None);

    // A landline, roaming unknown (the spec's string form), live lookup not returned (44).
    let body = json!({
        "status": 44, "status_message": "Lookup Handler unable to handle request",
        "current_carrier": { "network_code": null, "name": "Verizon", "country": "US", "network_type": "landline" },
        "ported": "unknown", "roaming": "unknown", "reachable": "unknown",
    });
    let facts = vonage_answer(ResponseTemplate::new(200).set_body_json(body))
        .await
        .unwrap();
    assert_eq!(facts.line, Some(LineKind::Landline));
    assert_eq!(
        (facts.ported, facts.roaming, facts.reachable),
        (None, None, None)
    );
    let virtual_line = json!({ "status": 0, "current_carrier": { "network_type": "virtual" } });
    let facts = vonage_answer(ResponseTemplate::new(200).set_body_json(virtual_line))
        .await
        .unwrap();
    assert_eq!(facts.line, Some(LineKind::NonFixedVoip));
}

#[tokio::test]
async fn vonage_insight_requests_match_the_official_parameters() {
    let server = MockServer::start().await;
    mount(
        &server,
        ResponseTemplate::new(200).set_body_json(json!({ "status": 0 })),
    )
    .await;
    vonage(&server).lookup(&want_all()).await.unwrap();
    let received = server.received_requests().await.unwrap();
    assert_eq!(received.len(), 1);
    // The spec's server is `https://api.nexmo.com/ni`; paths are relative to it.
    assert_request_matches("vonage_insight_advanced.json", &received[0], "/ni");
    assert_eq!(received[0].url.path(), "/ni/advanced/json");
}

#[tokio::test]
async fn vonage_each_documented_status_has_its_class_and_leaks_nothing() {
    let status = |code: i64, text: &str| {
        ResponseTemplate::new(200).set_body_json(json!({
            "status": code, "status_message": format!("{text} ({SECRET}, {NUMBER})"),
        }))
    };
    let cases = [
        (status(1, "Busy"), FailureClass::Transient, "1"),
        (status(3, "Invalid"), FailureClass::Permanent, "3"),
        (status(4, "Invalid credentials"), FailureClass::Config, "4"),
        (status(5, "Internal Error"), FailureClass::Transient, "5"),
        (
            status(9, "Partner quota exceeded"),
            FailureClass::Config,
            "9",
        ),
        (
            status(19, "Facility Not Allowed"),
            FailureClass::Config,
            "19",
        ),
        (
            status(999, "Request unparseable"),
            FailureClass::Config,
            "999",
        ),
        (
            ResponseTemplate::new(401).set_body_json(json!({ "error_text": "Bad Credentials" })),
            FailureClass::Config,
            "http_401",
        ),
        (
            ResponseTemplate::new(500),
            FailureClass::Transient,
            "http_500",
        ),
        (
            ResponseTemplate::new(200).set_body_string("<html>"),
            FailureClass::Transient,
            "malformed_response",
        ),
    ];
    for (response, class, code) in cases {
        let err = vonage_answer(response).await.unwrap_err();
        assert_eq!(err.class, class, "{code}: {err}");
        assert_eq!(err.code.as_deref(), Some(code));
        assert_clean(&err, &[SECRET]);
    }
}

#[tokio::test]
async fn lookup_configs_fail_naming_the_key_and_unknown_names_list_the_known() {
    let context = ProviderContext::new().unwrap();
    let err = build_lookup(
        "twilio",
        &ProviderTable::new(json!({ "account_sid": SID })),
        &context,
    )
    .err()
    .unwrap();
    assert_eq!(err.key, "auth_token");
    let err = build_lookup(
        "vonage",
        &ProviderTable::new(json!({ "api_key": KEY, "api_secret": "" })),
        &context,
    )
    .err()
    .unwrap();
    assert_eq!(err.key, "api_secret");
    let err = build_lookup("telesign", &ProviderTable::default(), &context)
        .err()
        .unwrap();
    assert!(
        err.message.contains("twilio") && err.message.contains("vonage"),
        "{}",
        err.message
    );
    // Debug of a config never shows its secret.
    let table = ProviderTable::new(json!({ "account_sid": SID, "auth_token": TOKEN }));
    let config: switchboard_providers::twilio_lookup::TwilioLookupConfig = table.parse().unwrap();
    assert!(!format!("{config:?}").contains(TOKEN));
}

// Identity Insights: the SIM-swap check (and the carrier, without Number Insight keys).

const INSIGHTS_PATH: &str = "/identity-insights/v1/requests";

fn insights_adapter(server: &MockServer, number_insight: bool) -> VonageInsight {
    let mut table = json!({
        "application_id": crate::vonage::APPLICATION_ID,
        "private_key": crate::vonage::TEST_KEY_PKCS8,
        "insights_base_url": server.uri(),
        "base_url": server.uri(),
    });
    if number_insight {
        table["api_key"] = json!(KEY);
        table["api_secret"] = json!(SECRET);
    }
    VonageInsight::new(
        ProviderTable::new(table).parse().unwrap(),
        HttpClient::new().unwrap(),
    )
    .unwrap()
}

fn ok() -> Value {
    json!({ "code": "OK", "message": "Success" })
}

/// Vonage's documented answer shape: one object per insight asked, each with its status.
fn insights_answer(insights: Value) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(json!({
        "request_id": "7e190c2f-22aa-4732-b44e-3794de3fa035",
        "insights": insights,
    }))
}

async fn insights_server(response: ResponseTemplate) -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(wiremock::matchers::path(INSIGHTS_PATH))
        .respond_with(response)
        .mount(&server)
        .await;
    server
}

/// Vonage's example `latest_sim_swap_at`, and the same instant in Unix milliseconds.
const SWAPPED_AT: (&str, i64) = ("2024-07-08T09:30:27.504Z", 1_720_431_027_504);

#[tokio::test]
async fn vonage_identity_insights_reports_a_recent_sim_swap_and_the_current_carrier() {
    let (swapped_at, at_ms) = SWAPPED_AT;
    let server = insights_server(insights_answer(json!({
        "current_carrier": {
            "name": "T-Mobile USA", "network_type": "MOBILE", "country_code": "US",
            "network_code": "310260", "status": ok(),
        },
        "original_carrier": {
            "name": "AT&T Mobility", "network_type": "MOBILE", "country_code": "US",
            "network_code": "310410", "status": ok(),
        },
        "sim_swap": { "latest_sim_swap_at": swapped_at, "is_swapped": true, "status": ok() },
    })))
    .await;
    let adapter = insights_adapter(&server, false);
    assert!(LineLookup::capabilities(&adapter).sim_swap);
    let facts = adapter.lookup(&want_all()).await.unwrap();
    assert_eq!(facts.provider, "vonage");
    assert_eq!(facts.line, Some(LineKind::Mobile));
    assert_eq!(facts.carrier.as_deref(), Some("T-Mobile USA"));
    assert_eq!(facts.original_carrier.as_deref(), Some("AT&T Mobility"));
    assert_eq!(facts.ported, Some(true));
    assert_eq!(
        (
            facts.mobile_country_code.as_deref(),
            facts.mobile_network_code.as_deref()
        ),
        (Some("310"), Some("260"))
    );
    let swap = facts.sim_swap.unwrap();
    assert_eq!(swap.last_swap_ms, Some(at_ms));
    assert_eq!(swap.period_secs, Some(168 * 3600));
    assert_eq!(swap.swapped_in_period, Some(true));
    let now = at_ms + 2 * 86_400_000;
    assert!(swap.swapped_within(now, 7 * 86_400_000));
    assert!(!swap.swapped_within(now, 86_400_000));

    // The request: the documented body, authenticated by an application JWT that verifies.
    let received = server.received_requests().await.unwrap();
    assert_eq!(received.len(), 1);
    let request = &received[0];
    let body: Value = serde_json::from_slice(&request.body).unwrap();
    assert_eq!(
        body,
        json!({
            "phone_number": NUMBER.trim_start_matches('+'),
            "purpose": "FraudPreventionAndDetection",
            "insights": { "current_carrier": {}, "original_carrier": {}, "sim_swap": { "period": 168 } },
        })
    );
    let token = request.headers["authorization"]
        .to_str()
        .unwrap()
        .strip_prefix("Bearer ")
        .unwrap();
    let (input, signature) = token.rsplit_once('.').unwrap();
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    ring::signature::UnparsedPublicKey::new(
        &ring::signature::RSA_PKCS1_2048_8192_SHA256,
        crate::vonage::public_key_der(crate::vonage::TEST_KEY_PKCS8),
    )
    .verify(input.as_bytes(), &b64.decode(signature).unwrap())
    .expect("the application JWT verifies with the application's public key");
    let claims: Value =
        serde_json::from_slice(&b64.decode(input.split_once('.').unwrap().1).unwrap()).unwrap();
    assert_eq!(claims["application_id"], crate::vonage::APPLICATION_ID);
}

#[tokio::test]
async fn vonage_with_both_credentials_takes_the_line_from_number_insight_and_the_sim_swap_from_identity_insights()
 {
    let server = insights_server(insights_answer(json!({
        "sim_swap": { "is_swapped": false, "status": ok() },
    })))
    .await;
    Mock::given(method("GET"))
        .and(wiremock::matchers::path("/ni/advanced/json"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "status": 0,
            "current_carrier": { "network_code": "310260", "name": "T-Mobile USA", "network_type": "mobile" },
            "ported": "not_ported", "reachable": "reachable",
        })))
        .mount(&server)
        .await;
    let adapter = insights_adapter(&server, true);
    let facts = adapter.lookup(&want_all()).await.unwrap();
    assert_eq!(facts.line, Some(LineKind::Mobile));
    assert_eq!((facts.ported, facts.reachable), (Some(false), Some(true)));
    let swap = facts.sim_swap.unwrap();
    assert_eq!(
        (swap.last_swap_ms, swap.swapped_in_period),
        (None, Some(false))
    );
    let received = server.received_requests().await.unwrap();
    assert_eq!(received.len(), 2, "one request to each API");
    let posted = received
        .iter()
        .find(|r| r.method.as_str() == "POST")
        .unwrap();
    let body: Value = serde_json::from_slice(&posted.body).unwrap();
    assert_eq!(body["insights"], json!({ "sim_swap": { "period": 168 } }));

    // A SIM-swap-only request (the line is cached) asks Identity Insights alone.
    let only_swap = LookupRequest {
        e164: NUMBER,
        line: false,
        sim_swap: true,
    };
    adapter.lookup(&only_swap).await.unwrap();
    let received = server.received_requests().await.unwrap();
    assert_eq!(received.len(), 3);
    assert_eq!(received[2].method.as_str(), "POST");

    // Without an application, Vonage offers no SIM-swap check and asks for none.
    assert!(!LineLookup::capabilities(&vonage(&server)).sim_swap);
}

#[tokio::test]
async fn vonage_identity_insights_statuses_and_errors_have_their_class_and_leak_nothing() {
    let digits = NUMBER.trim_start_matches('+');
    let swap_status = |code: &str| {
        insights_answer(json!({
            "current_carrier": { "name": "T-Mobile USA", "network_type": "MOBILE", "status": ok() },
            "original_carrier": { "status": ok() },
            "sim_swap": { "status": { "code": code, "message": format!("{code} for {digits}") } },
        }))
    };
    // No coverage, not found, an unsupported network type, an operator that has not approved
    // the application: the carrier is used, no swap status.
    for code in [
        "NO_COVERAGE",
        "NOT_FOUND",
        "UNSUPPORTED_NETWORK_TYPE",
        "UNAUTHORIZED",
        "INVALID_PURPOSE",
        "SOMETHING_NEW",
    ] {
        let server = insights_server(swap_status(code)).await;
        let facts = insights_adapter(&server, false)
            .lookup(&want_all())
            .await
            .unwrap();
        assert_eq!(facts.line, Some(LineKind::Mobile), "{code}");
        assert_eq!(facts.sim_swap, None, "{code}");
    }
    let problem = |status: u16, title: &str| {
        ResponseTemplate::new(status).set_body_json(json!({
            "type": "https://developer.vonage.com/api-errors",
            "title": title, "detail": format!("phone_number {digits}"),
            "instance": "bf0ca0bf927b3b52e3cb03217e1a1ddf",
        }))
    };
    let cases = [
        (
            swap_status("INVALID_NUMBER_FORMAT"),
            FailureClass::Permanent,
            "INVALID_NUMBER_FORMAT",
        ),
        (
            problem(400, "Invalid request"),
            FailureClass::Permanent,
            "http_400",
        ),
        (
            problem(401, "Unauthorized"),
            FailureClass::Config,
            "http_401",
        ),
        (problem(403, "Forbidden"), FailureClass::Config, "http_403"),
        (
            problem(408, "Request Timeout"),
            FailureClass::Transient,
            "http_408",
        ),
        (
            problem(429, "Rate Limit Hit").insert_header("retry-after", "3"),
            FailureClass::Transient,
            "http_429",
        ),
        (
            problem(500, "Internal Error"),
            FailureClass::Transient,
            "http_500",
        ),
        (
            ResponseTemplate::new(200).set_body_string("<html>"),
            FailureClass::Transient,
            "malformed_response",
        ),
    ];
    for (response, class, code) in cases {
        let server = insights_server(response).await;
        let err = insights_adapter(&server, false)
            .lookup(&want_all())
            .await
            .unwrap_err();
        assert_eq!(err.class, class, "{code}: {err}");
        assert_eq!(err.code.as_deref(), Some(code));
        if code == "http_429" {
            assert_eq!(err.retry_after, Some(std::time::Duration::from_secs(3)));
        }
        assert_clean(&err, &[crate::vonage::APPLICATION_ID, "PRIVATE KEY"]);
    }
    // With both APIs asked, a failure of either fails the lookup: no half answer is cached.
    let server = insights_server(problem(500, "Internal Error")).await;
    Mock::given(method("GET"))
        .and(wiremock::matchers::path("/ni/advanced/json"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({ "status": 0 })))
        .mount(&server)
        .await;
    let err = insights_adapter(&server, true)
        .lookup(&want_all())
        .await
        .unwrap_err();
    assert_eq!(err.class, FailureClass::Transient);
}

#[test]
fn vonage_lookup_credentials_are_checked_naming_the_key() {
    let context = ProviderContext::new().unwrap();
    let key_of = |table: Value| {
        build_lookup("vonage", &ProviderTable::new(table), &context)
            .err()
            .unwrap()
            .key
    };
    let app = crate::vonage::APPLICATION_ID;
    let pem = crate::vonage::TEST_KEY_PKCS8;
    assert_eq!(key_of(json!({})), "api_key");
    assert_eq!(key_of(json!({ "api_key": KEY })), "api_secret");
    assert_eq!(key_of(json!({ "application_id": app })), "private_key");
    assert_eq!(key_of(json!({ "private_key": pem })), "application_id");
    assert_eq!(
        key_of(json!({ "application_id": app, "private_key": "not a key" })),
        "private_key"
    );
    for hours in [0, 2401] {
        assert_eq!(
            key_of(
                json!({ "application_id": app, "private_key": pem, "sim_swap_period_hours": hours })
            ),
            "sim_swap_period_hours"
        );
    }
    assert_eq!(
        key_of(
            json!({ "application_id": app, "private_key": pem, "insights_base_url": "ftp://x" })
        ),
        "insights_base_url"
    );
    let ok = build_lookup(
        "vonage",
        &ProviderTable::new(json!({ "application_id": app, "private_key": pem })),
        &context,
    )
    .unwrap();
    assert!(ok.capabilities().sim_swap);
    // Debug never shows the key or the secret.
    let table = ProviderTable::new(json!({
        "application_id": app, "private_key": pem, "api_key": KEY, "api_secret": SECRET,
    }));
    let config: switchboard_providers::vonage_insight::VonageInsightConfig = table.parse().unwrap();
    let shown = format!("{config:?}");
    assert!(
        !shown.contains(SECRET) && !shown.contains("PRIVATE KEY"),
        "{shown}"
    );
    let adapter = VonageInsight::new(config, HttpClient::new().unwrap()).unwrap();
    let shown = format!("{adapter:?}");
    assert!(
        !shown.contains(SECRET) && !shown.contains("PRIVATE KEY"),
        "{shown}"
    );
}
