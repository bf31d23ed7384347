//! Live line intelligence against a wiremock emulation of Twilio Lookup v2: what the facts
//! change (carrier type and source, `is_virtual`, VoIP and SIM-swap risks, voice-only
//! landlines), the cache shared by sidecars on one Redis, outages that never block a send
//! unless the application is fail-closed, and what a lookup costs.

use serde_json::{Value, json};
use switchboard::clock::ManualClock;
use switchboard::phone::{CarrierSource, LineType};
use switchboard::providers::Channel;
use switchboard::store::{CachedLine, LineWrite, Store};
use switchboard::{CheckRequest, CheckStatus, Engine, SendRequest, SendStatus};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::http::{Sidecar, sidecar_with};
use crate::redis_server::{shared_cluster, shared_server, unique_prefix};
use crate::store::redis_at;
use crate::support::{Providers, build_engine};

/// A San Francisco number: libphonenumber calls every US number "fixed line or mobile".
const US: &str = "+14155552671";
const SID: &str = "AC0123456789abcdef0123456789abcdef";
const TOKEN: &str = "lookup-token-0f1e2d3c4b5a6978";
const LOOKUP_PATH: &str = "/v2/PhoneNumbers/+14155552671";
/// 2025-12-30T00:00:00Z: two days before the manual clock's start (2026-01-01).
const TWO_DAYS_AGO: &str = "2025-12-30T00:00:00Z";
/// 2025-12-02T00:00:00Z: thirty days before it.
const THIRTY_DAYS_AGO: &str = "2025-12-02T00:00:00Z";

/// Twilio's answer for [`US`]: its line type and, when given, the date of its last SIM swap.
fn answer(line_type: &str, last_swap: Option<&str>) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(json!({
        "calling_country_code": "1", "country_code": "US", "phone_number": US,
        "national_format": "(415) 555-2671", "valid": true, "validation_errors": null,
        "line_type_intelligence": {
            "error_code": null, "mobile_country_code": "310", "mobile_network_code": "260",
            "carrier_name": "T-Mobile USA, Inc.", "type": line_type,
        },
        "sim_swap": {
            "last_sim_swap": {
                "last_sim_swap_date": last_swap, "swapped_period": "PT24H",
                "swapped_in_period": false,
            },
            "carrier_name": "T-Mobile USA, Inc.", "mobile_country_code": "310",
            "mobile_network_code": "260", "error_code": null,
        },
        "url": format!("https://lookups.twilio.com{LOOKUP_PATH}"),
    }))
}

async fn twilio_lookup(response: ResponseTemplate) -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path(LOOKUP_PATH))
        .respond_with(response)
        .mount(&server)
        .await;
    server
}

/// `[workflow.lookup]` of most tests: US and Canada, numbers of unknown static type.
const US_CA: &str = "mode = \"when_unknown\"\ncountries = [\"US\", \"CA\"]";

/// Config turning lookups on (`lookup`: the `[workflow.lookup]` table) against the emulation
/// at `base`; `extra` is more tables.
fn lookup_config(base: &str, lookup: &str, extra: &str) -> String {
    format!(
        r#"
[workflow.fraud]
mode = "off"
[workflow.lookup]
{lookup}
{extra}
[lookup]
provider = "twilio"
price = 0.008
[lookup.twilio]
account_sid = "{SID}"
auth_token = "{TOKEN}"
base_url = "{base}"
"#
    )
}

fn lookup_engine(server: &MockServer, lookup: &str, extra: &str) -> (Engine, Providers) {
    let providers = Providers::delivering();
    let engine = build_engine(
        &lookup_config(&server.uri(), lookup, extra),
        &providers,
        &ManualClock::default(),
        None,
    );
    (engine, providers)
}

fn risks(report: &switchboard::report::PhoneReport) -> Vec<&'static str> {
    report.warnings.iter().map(|w| w.risk.as_str()).collect()
}

async fn lookups_made(server: &MockServer) -> usize {
    server.received_requests().await.unwrap().len()
}

#[tokio::test]
async fn a_us_number_twilio_calls_non_fixed_voip_is_voip_virtual_and_voip_number_detected() {
    let server = twilio_lookup(answer("nonFixedVoip", None)).await;
    let (engine, _) = lookup_engine(&server, US_CA, "");
    let sent = engine.send(SendRequest::new(US)).await.unwrap();
    assert_eq!(sent.status, SendStatus::Success);
    let carrier = &sent.phone.carrier;
    assert_eq!(carrier.line_type, LineType::Voip);
    assert_eq!(carrier.source, CarrierSource::Lookup);
    assert_eq!(carrier.name.as_deref(), Some("T-Mobile USA, Inc."));
    assert!(sent.phone.is_virtual);
    assert_eq!(risks(&sent.phone), ["VOIP_NUMBER_DETECTED"]);
    // The wire names.
    let wire = serde_json::to_value(&sent.phone.carrier).unwrap();
    assert_eq!(
        wire,
        json!({ "name": "T-Mobile USA, Inc.", "type": "voip", "source": "lookup" })
    );
}

#[tokio::test]
async fn a_sim_swap_two_days_ago_is_sim_swap_detected_and_its_right_code_ends_in_review() {
    let server = twilio_lookup(answer("mobile", Some(TWO_DAYS_AGO))).await;
    let (engine, providers) = lookup_engine(&server, US_CA, "");
    let sent = engine.send(SendRequest::new(US)).await.unwrap();
    assert_eq!(sent.status, SendStatus::Success);
    assert_eq!(risks(&sent.phone), ["SIM_SWAP_DETECTED"]);
    assert_eq!(sent.phone.carrier.line_type, LineType::Mobile);
    assert!(!sent.phone.is_virtual);
    let checked = engine
        .check(CheckRequest::new(US, providers.last_code_to(US)))
        .await
        .unwrap();
    assert_eq!(checked.status, CheckStatus::InReview);
    assert_eq!(risks(&checked.phone), ["SIM_SWAP_DETECTED"]);
}

#[tokio::test]
async fn a_sim_swap_older_than_the_period_is_no_risk_and_the_right_code_is_approved() {
    let server = twilio_lookup(answer("mobile", Some(THIRTY_DAYS_AGO))).await;
    let (engine, providers) = lookup_engine(&server, US_CA, "");
    let sent = engine.send(SendRequest::new(US)).await.unwrap();
    assert!(risks(&sent.phone).is_empty());
    let checked = engine
        .check(CheckRequest::new(US, providers.last_code_to(US)))
        .await
        .unwrap();
    assert_eq!(checked.status, CheckStatus::Approved);
    // The same swap within a longer configured period, declined by the workflow's action.
    let server = twilio_lookup(answer("mobile", Some(THIRTY_DAYS_AGO))).await;
    let (engine, providers) = lookup_engine(
        &server,
        US_CA,
        "[workflow.risk]\nsim_swap = \"DECLINE\"\nsim_swap_days = 60\n",
    );
    let sent = engine.send(SendRequest::new(US)).await.unwrap();
    assert_eq!(sent.status, SendStatus::Blocked);
    assert_eq!(sent.reason.as_deref(), Some("SIM_SWAP_DETECTED"));
    assert_eq!(providers.total_calls(), 0, "nothing is sent");
}

#[tokio::test]
async fn a_number_twilio_calls_a_landline_gets_a_voice_call_only() {
    let server = twilio_lookup(answer("landline", None)).await;
    let (engine, providers) = lookup_engine(&server, US_CA, "");
    let sent = engine.send(SendRequest::new(US)).await.unwrap();
    assert_eq!(sent.status, SendStatus::Success);
    assert_eq!(sent.channel, Some(Channel::Call));
    assert_eq!(sent.phone.carrier.line_type, LineType::Landline);
    assert!(sent.attempts.iter().all(|a| a.channel == Channel::Call));
    assert_eq!(providers.voice.call_count(), 1);
    assert_eq!(providers.total_calls(), 1, "no text channel is tried");
}

#[tokio::test]
async fn facts_are_cached_per_ttl_and_only_the_expired_sim_swap_is_asked_again() {
    let server = twilio_lookup(answer("mobile", None)).await;
    let providers = Providers::delivering();
    let clock = ManualClock::default();
    let engine = build_engine(
        &lookup_config(&server.uri(), US_CA, ""),
        &providers,
        &clock,
        None,
    );
    let first = engine.send(SendRequest::new(US)).await.unwrap();
    let charge = first.lookup.expect("the first send paid for a lookup");
    assert_eq!((charge.provider.as_str(), charge.price), ("twilio", 0.008));
    assert_eq!(charge.currency, "USD");
    // Within both TTLs: the check and a report read the cache.
    engine.check(CheckRequest::new(US, "000000")).await.unwrap();
    let report = engine.lookup(US, None, None, None).await.unwrap();
    assert_eq!(report.carrier.source, CarrierSource::Lookup);
    assert_eq!(lookups_made(&server).await, 1);
    // Past the SIM-swap TTL (15 minutes) but well within the line TTL: only sim_swap is asked.
    clock.advance_secs(16 * 60);
    let again = engine.send(SendRequest::new(US)).await.unwrap();
    assert!(again.lookup.is_some(), "the SIM-swap lookup is paid for");
    let received = server.received_requests().await.unwrap();
    assert_eq!(received.len(), 2);
    let fields: Vec<String> = received
        .iter()
        .map(|r| {
            r.url
                .query_pairs()
                .find(|(k, _)| k == "Fields")
                .unwrap()
                .1
                .into_owned()
        })
        .collect();
    assert_eq!(fields, ["line_type_intelligence,sim_swap", "sim_swap"]);
    let once_more = engine.send(SendRequest::new(US)).await.unwrap();
    assert!(once_more.lookup.is_none(), "cached: nothing paid");
}

#[tokio::test]
async fn numbers_out_of_scope_or_with_a_known_line_type_are_not_looked_up() {
    let server = twilio_lookup(answer("mobile", None)).await;
    let (engine, _) = lookup_engine(&server, US_CA, "");
    // Spain is out of the US/CA scope; a report in "cached" mode never pays.
    let es = engine.send(SendRequest::new("+34600600600")).await.unwrap();
    assert_eq!(es.phone.carrier.source, CarrierSource::Static);
    let report = engine.lookup(US, None, None, None).await.unwrap();
    assert_eq!(report.carrier.source, CarrierSource::Static);
    assert_eq!(report.carrier.line_type, LineType::Unknown);
    assert_eq!(lookups_made(&server).await, 0);
    // In scope but known statically (a UK mobile) under "when_unknown": not looked up either.
    let server = twilio_lookup(answer("mobile", None)).await;
    let (engine, _) = lookup_engine(&server, "mode = \"when_unknown\"", "");
    let uk = engine
        .send(SendRequest::new("+447400123456"))
        .await
        .unwrap();
    assert_eq!(uk.phone.carrier.source, CarrierSource::Static);
    assert_eq!(lookups_made(&server).await, 0);
}

#[tokio::test]
async fn a_fail_closed_application_refuses_the_send_when_the_lookup_fails() {
    let server = twilio_lookup(ResponseTemplate::new(503)).await;
    let (engine, providers) = lookup_engine(&server, &format!("{US_CA}\nfail_closed = true"), "");
    let err = engine.send(SendRequest::new(US)).await.unwrap_err();
    assert_eq!(err.code(), "phone_provider_unavailable");
    assert_eq!(providers.total_calls(), 0);
}

/// A development sidecar (the console stands in for delivery) with lookups on, over `store`.
async fn lookup_sidecar(lookup: &MockServer, store: &str) -> Sidecar {
    let config = format!(
        "{}\n{store}",
        lookup_config(&lookup.uri(), "mode = \"always\"", "")
    );
    sidecar_with(&config, |b| b).await
}

#[tokio::test]
async fn two_sidecars_on_one_redis_looking_up_the_same_number_make_one_provider_lookup() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path(LOOKUP_PATH))
        // Slow enough that both sidecars ask while the first lookup is in flight.
        .respond_with(answer("mobile", None).set_delay(std::time::Duration::from_millis(400)))
        .mount(&server)
        .await;
    let store = format!(
        "[store]\nbackend = \"redis\"\nurl = \"{}\"\nkey_prefix = \"{}\"\n",
        shared_server().url(),
        unique_prefix()
    );
    let a = lookup_sidecar(&server, &store).await;
    let b = lookup_sidecar(&server, &store).await;
    let body = json!({ "phone_number": US });
    let (x, y) = tokio::join!(
        a.post("/v3/phone/send/", body.clone()),
        b.post("/v3/phone/send/", body.clone())
    );
    for answer in [&x, &y] {
        assert_eq!(answer.status, 200, "{}", answer.text);
        assert_eq!(
            answer.body["phone"]["carrier"]["source"], "lookup",
            "{}",
            answer.text
        );
        assert_eq!(answer.body["phone"]["carrier"]["type"], "mobile");
    }
    // Later, within the TTL, from either sidecar: the cache.
    let report = b.post("/v3/phone/lookup/", body).await;
    assert_eq!(
        report.body["phone"]["carrier"]["source"], "lookup",
        "{}",
        report.text
    );
    assert_eq!(lookups_made(&server).await, 1);
    let paid: Vec<&Value> = [&x, &y]
        .iter()
        .filter_map(|a| a.body.get("lookup"))
        .collect();
    assert_eq!(paid.len(), 1, "one send paid for the one lookup");
}

#[tokio::test]
async fn a_lookup_provider_outage_still_sends_on_static_facts_and_metrics_count_the_failures() {
    let server = twilio_lookup(ResponseTemplate::new(503)).await;
    let sidecar = lookup_sidecar(&server, "").await;
    for _ in 0..2 {
        let sent = sidecar
            .post("/v3/phone/send/", json!({ "phone_number": US }))
            .await;
        assert_eq!(sent.status, 200, "{}", sent.text);
        assert!(
            ["Success", "Retry"].contains(&sent.body["status"].as_str().unwrap()),
            "{}",
            sent.text
        );
        assert_eq!(sent.body["phone"]["carrier"]["source"], "static");
        assert_eq!(sent.body["phone"]["carrier"]["type"], "unknown");
        assert!(
            sent.body.get("lookup").is_none(),
            "a failed lookup is not charged"
        );
        // The next send may try again: a failure is not cached.
    }
    assert_eq!(lookups_made(&server).await, 2);
    let metrics = sidecar.get("/metrics").await.text;
    assert!(
        metrics.contains(
            "switchboard_line_lookups_total{provider=\"twilio\",outcome=\"failed_transient\"} 2"
        ),
        "{metrics}"
    );
    // The token never reaches the log-facing metrics.
    assert!(!metrics.contains(TOKEN));
}

/// A number of the shipped disposable list (its last line).
fn shipped_disposable() -> String {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/data/disposable_numbers.txt");
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .rfind(|l| l.starts_with('+'))
        .unwrap()
        .to_owned()
}

#[tokio::test]
async fn the_shipped_disposable_list_declines_by_default_and_config_can_replace_or_extend_it() {
    let listed = shipped_disposable();
    let offline = |overrides: &str| {
        build_engine(
            overrides,
            &Providers::delivering(),
            &ManualClock::default(),
            None,
        )
    };
    let report = offline("").lookup_offline(&listed, None).unwrap();
    assert!(report.is_disposable, "{listed}");
    assert_eq!(risks(&report), ["DISPOSABLE_NUMBER_DETECTED"]);
    let sent = offline("")
        .send(SendRequest::new(listed.clone()))
        .await
        .unwrap();
    assert_eq!(sent.status, SendStatus::Blocked);
    assert_eq!(sent.reason.as_deref(), Some("DISPOSABLE_NUMBER_DETECTED"));
    // Replaced: the shipped list off, an own file instead.
    let dir = std::env::temp_dir().join(format!("sb-disposable-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("ours.txt");
    std::fs::write(&file, "# our own list\n+34600600*\n").unwrap();
    let replaced = offline(&format!(
        "[risk]\ndisposable_builtin = false\ndisposable_files = [{:?}]\n",
        file.display().to_string()
    ));
    assert!(
        !replaced
            .lookup_offline(&listed, None)
            .unwrap()
            .is_disposable
    );
    assert!(
        replaced
            .lookup_offline("+34600600600", None)
            .unwrap()
            .is_disposable
    );
    // A bad file entry fails the configuration, naming the key.
    std::fs::write(&file, "+34 600\n").unwrap();
    let err = switchboard::Config::from_toml(&format!(
        "[risk]\ndisposable_files = [{:?}]\n",
        file.display().to_string()
    ))
    .unwrap_err()
    .to_string();
    assert!(err.contains("risk.disposable_files[0]"), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn lookup_prices_count_toward_the_spend_cap() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(wiremock::matchers::path_regex("^/v2/PhoneNumbers/"))
        .respond_with(answer("mobile", None))
        .mount(&server)
        .await;
    // WhatsApp at 0.01 and a lookup at 0.02 per number: a 0.09 cap lets three sends through
    // (nine without the lookups).
    let config = lookup_config(&server.uri(), US_CA, "")
        .replace("price = 0.008", "price = 0.02")
        .replace(
            "[workflow.fraud]\nmode = \"off\"",
            "[workflow.fraud]\nmode = \"enforce\"\nspend_cap_hour = 0.09",
        );
    let providers = Providers::delivering();
    let engine = build_engine(&config, &providers, &ManualClock::default(), None);
    let mut passed = 0;
    for n in 0..10 {
        let out = engine
            .send(SendRequest::new(format!("+14155552{:03}", 600 + n)))
            .await
            .unwrap();
        // The spend is counted off the request path: let it land.
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
        if out.status != SendStatus::Success {
            assert_eq!(out.reason.as_deref(), Some("SPEND_CAP"));
            break;
        }
        assert_eq!(out.lookup.as_ref().map(|l| l.price), Some(0.02));
        passed += 1;
    }
    assert_eq!(passed, 3);
}

/// The cache on one store: one claim at a time, entries with their own TTLs, a save gives the
/// claim back.
async fn line_cache_claims_once_and_keeps_each_entry_for_its_ttl(store: Store) {
    const T0: i64 = 1_767_225_600_000;
    let n = "+14155552671";
    assert_eq!(
        store.cached_line(n, T0).await.unwrap(),
        CachedLine::default()
    );
    assert!(store.claim_lookup(n, T0, 3_000).await.unwrap());
    assert!(!store.claim_lookup(n, T0, 3_000).await.unwrap(), "claimed");
    store
        .save_line(
            n,
            T0,
            LineWrite {
                line: Some(("line-facts", 60_000)),
                sim: Some(("sim-facts", 1_000)),
            },
        )
        .await
        .unwrap();
    let cached = store.cached_line(n, T0).await.unwrap();
    assert_eq!(cached.line.as_deref(), Some("line-facts"));
    assert_eq!(cached.sim.as_deref(), Some("sim-facts"));
    assert!(
        store.claim_lookup(n, T0, 3_000).await.unwrap(),
        "the save released it"
    );
    store.save_line(n, T0, LineWrite::default()).await.unwrap();
    // Redis expires by its own clock: wait past the short TTL (the memory store reads `now`).
    tokio::time::sleep(std::time::Duration::from_millis(1_100)).await;
    let later = store.cached_line(n, T0 + 1_100).await.unwrap();
    assert_eq!(later.line.as_deref(), Some("line-facts"));
    assert_eq!(later.sim, None, "the SIM-swap entry expired first");
}

#[tokio::test]
async fn line_cache_claims_once_and_keeps_each_entry_for_its_ttl_in_memory() {
    line_cache_claims_once_and_keeps_each_entry_for_its_ttl(Store::default()).await;
}

#[tokio::test]
async fn line_cache_claims_once_and_keeps_each_entry_for_its_ttl_on_redis() {
    line_cache_claims_once_and_keeps_each_entry_for_its_ttl(redis_at(shared_server().url())).await;
}

#[tokio::test]
async fn line_cache_claims_once_and_keeps_each_entry_for_its_ttl_on_a_cluster() {
    line_cache_claims_once_and_keeps_each_entry_for_its_ttl(redis_at(shared_cluster().url())).await;
}

#[test]
fn lookup_configuration_errors_name_the_key_and_debug_hides_the_token() {
    let load = |toml: &str| switchboard::Config::from_toml(toml);
    let err = |toml: &str| load(toml).unwrap_err().to_string();
    assert!(err("[lookup]\nprovider = \"twilio\"\n").contains("`lookup.twilio`"));
    assert!(err("[lookup]\nsim_swap_ttl_secs = 0\n").contains("lookup.sim_swap_ttl_secs"));
    assert!(err("[lookup]\nprice = -1.0\n").contains("lookup.price"));
    assert!(
        err("[workflow.lookup]\ncountries = [\"USA\"]\n").contains("workflow.lookup.countries[0]")
    );
    assert!(err("[workflow.lookup]\nmode = \"sometimes\"\n").contains("sometimes"));
    assert!(err("[workflow.risk]\nsim_swap_days = 0\n").contains("workflow.risk.sim_swap_days"));
    // Tables are checked when the engine is built, naming the key.
    let build = |toml: &str| {
        switchboard::EngineBuilder::new(load(toml).unwrap())
            .build()
            .unwrap_err()
            .to_string()
    };
    let missing = build(&format!("[lookup.twilio]\naccount_sid = \"{SID}\"\n"));
    assert!(missing.contains("lookup.twilio.auth_token"), "{missing}");
    let unknown = build("[lookup.telesign]\napi_key = \"k\"\n");
    assert!(
        unknown.contains("lookup.telesign") && unknown.contains("twilio"),
        "{unknown}"
    );
    let config = load(&format!(
        "[lookup]\nprovider = \"twilio\"\n[lookup.twilio]\naccount_sid = \"{SID}\"\nauth_token = \"{TOKEN}\"\n"
    ))
    .unwrap();
    assert!(!format!("{config:?}").contains(TOKEN));
}

#[tokio::test]
async fn grpc_send_carries_the_carrier_source_and_the_lookup_charge() {
    use switchboard::server::grpc::pb::{self, switchboard_client::SwitchboardClient};
    let server = twilio_lookup(answer("nonFixedVoip", None)).await;
    let sidecar = lookup_sidecar(&server, "").await;
    let mut client = SwitchboardClient::connect(format!("http://{}", sidecar.running.grpc_addr))
        .await
        .unwrap();
    let sent = client
        .send(pb::SendRequest {
            phone_number: US.to_owned(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let carrier = sent.phone.unwrap().carrier.unwrap();
    assert_eq!(
        (carrier.r#type.as_str(), carrier.source.as_str()),
        ("voip", "lookup")
    );
    let charge = sent.lookup.expect("the send paid for a lookup");
    assert_eq!((charge.provider.as_str(), charge.price), ("twilio", 0.008));
    // A static report says so.
    let report = client
        .lookup(pb::LookupRequest {
            phone_number: "+34600600600".to_owned(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(report.phone.unwrap().carrier.unwrap().source, "static");
}

#[tokio::test]
async fn a_ported_number_reports_the_current_carrier_vonage_names() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/ni/advanced/json"))
        .and(wiremock::matchers::query_param("number", "14155552671"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "status": 0, "status_message": "Success",
            "current_carrier": { "network_code": "310260", "name": "T-Mobile USA", "country": "US", "network_type": "mobile" },
            "original_carrier": { "network_code": "310410", "name": "AT&T Mobility", "country": "US", "network_type": "mobile" },
            "ported": "ported", "roaming": { "status": "not_roaming" }, "reachable": "reachable",
        })))
        .mount(&server)
        .await;
    let config = format!(
        "[workflow.fraud]\nmode = \"off\"\n[workflow.lookup]\n{US_CA}\n[lookup]\nprovider = \"vonage\"\n[lookup.vonage]\napi_key = \"abcd1234\"\napi_secret = \"vonage-secret\"\nbase_url = \"{}\"\n",
        server.uri()
    );
    let providers = Providers::delivering();
    let engine = build_engine(&config, &providers, &ManualClock::default(), None);
    let sent = engine.send(SendRequest::new(US)).await.unwrap();
    assert_eq!(sent.phone.carrier.name.as_deref(), Some("T-Mobile USA"));
    assert_eq!(sent.phone.carrier.line_type, LineType::Mobile);
    assert_eq!(sent.phone.carrier.source, CarrierSource::Lookup);
    // Without an application key Vonage offers no SIM-swap check: none is asked, no risk.
    assert!(risks(&sent.phone).is_empty());
    assert_eq!(
        sent.channel,
        Some(Channel::Whatsapp),
        "a mobile gets the app channels"
    );
    assert_eq!(lookups_made(&server).await, 1);
    engine.send(SendRequest::new(US)).await.unwrap();
    assert_eq!(
        lookups_made(&server).await,
        1,
        "cached: no SIM-swap entry is missing"
    );
}

#[tokio::test]
async fn a_sim_swap_vonage_identity_insights_reports_is_sim_swap_detected_and_ends_in_review() {
    let server = MockServer::start().await;
    let ok = json!({ "code": "OK", "message": "Success" });
    Mock::given(method("POST"))
        .and(path("/identity-insights/v1/requests"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "request_id": "7e190c2f-22aa-4732-b44e-3794de3fa035",
            "insights": {
                "current_carrier": { "name": "T-Mobile USA", "network_type": "MOBILE", "network_code": "310260", "status": ok },
                "original_carrier": { "name": "T-Mobile USA", "network_type": "MOBILE", "status": ok },
                "sim_swap": { "latest_sim_swap_at": TWO_DAYS_AGO, "is_swapped": true, "status": ok },
            },
        })))
        .mount(&server)
        .await;
    let key = include_str!("../../providers/tests/it/data/vonage_test_key.pem");
    let config = format!(
        "[workflow.fraud]\nmode = \"off\"\n[workflow.lookup]\n{US_CA}\n[lookup]\nprovider = \"vonage\"\n[lookup.vonage]\napplication_id = \"aaaaaaaa-bbbb-4ccc-8ddd-0123456789ab\"\nprivate_key = '''\n{key}'''\ninsights_base_url = \"{}\"\n",
        server.uri()
    );
    let providers = Providers::delivering();
    let engine = build_engine(&config, &providers, &ManualClock::default(), None);
    let sent = engine.send(SendRequest::new(US)).await.unwrap();
    assert_eq!(sent.status, SendStatus::Success);
    assert_eq!(risks(&sent.phone), ["SIM_SWAP_DETECTED"]);
    assert_eq!(sent.phone.carrier.name.as_deref(), Some("T-Mobile USA"));
    assert_eq!(sent.phone.carrier.source, CarrierSource::Lookup);
    let checked = engine
        .check(CheckRequest::new(US, providers.last_code_to(US)))
        .await
        .unwrap();
    assert_eq!(checked.status, CheckStatus::InReview);
    // One request answered both the line and the SIM swap.
    assert_eq!(lookups_made(&server).await, 1);
}
