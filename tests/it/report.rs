//! The wire shape of the phone report and outcomes.

use switchboard::{CheckRequest, SendRequest};

use crate::support::{ES_MOBILE, engine};

#[tokio::test]
async fn report_serialises_with_exactly_the_product_field_names() {
    let t = engine();
    t.engine.send(SendRequest::new(ES_MOBILE)).await.unwrap();
    let code = t.providers.last_code_to(ES_MOBILE);
    let out = t
        .engine
        .check(CheckRequest::new(ES_MOBILE, code))
        .await
        .unwrap();
    let json = serde_json::to_value(&out).unwrap();
    let phone = json["phone"].as_object().unwrap();
    let keys: Vec<&str> = phone.keys().map(String::as_str).collect();
    assert_eq!(
        keys,
        [
            "status",
            "phone_number_prefix",
            "phone_number",
            "full_number",
            "country_code",
            "country_name",
            "carrier",
            "is_disposable",
            "is_virtual",
            "verification_method",
            "verification_attempts",
            "verified_at",
            "warnings",
        ]
    );
    assert_eq!(json["status"], "Approved");
    assert_eq!(phone["phone_number_prefix"], "+34");
    assert_eq!(phone["phone_number"], "600600600");
    assert_eq!(phone["full_number"], "+34600600600");
    assert_eq!(phone["country_code"], "ES");
    assert_eq!(phone["country_name"], "Spain");
    assert_eq!(phone["carrier"]["name"], "Vodafone");
    assert_eq!(phone["carrier"]["type"], "mobile");
    assert_eq!(phone["verification_method"], "whatsapp");
    assert_eq!(phone["verification_attempts"], 1);
    // ISO 8601 UTC with milliseconds: 2026-01-01T00:00:00.000Z on the test clock.
    assert_eq!(phone["verified_at"], "2026-01-01T00:00:00.000Z");
}

#[tokio::test]
async fn statuses_use_their_wire_spelling() {
    let t = engine();
    let out = t
        .engine
        .check(CheckRequest::new(ES_MOBILE, "123456"))
        .await
        .unwrap();
    let json = serde_json::to_value(&out).unwrap();
    assert_eq!(json["status"], "Expired or Not Found");
    assert_eq!(json["phone"]["status"], "Not Finished");
}

#[tokio::test]
async fn warnings_carry_risk_log_type_and_descriptions() {
    let t = engine();
    let report = t
        .engine
        .lookup("+445612345678", None, None, None)
        .await
        .unwrap();
    let json = serde_json::to_value(&report).unwrap();
    let w = &json["warnings"][0];
    assert_eq!(w["risk"], "VOIP_NUMBER_DETECTED");
    assert_eq!(w["log_type"], "warning");
    assert!(w["short_description"].as_str().unwrap().len() > 5);
    assert!(w["long_description"].as_str().unwrap().len() > 20);
}

#[test]
fn debug_output_of_requests_never_shows_the_code() {
    let req = CheckRequest::new(ES_MOBILE, "918273");
    assert!(!format!("{req:?}").contains("918273"));
}
