//! Every request body the adapters produce, for every channel and option, validates against the
//! provider's official request schema (vendored under `tests/specs/`, see its README). Bodies
//! are captured at the wire with wiremock's `received_requests()`.
//!
//! Twilio's bodies are forms: the fields become a JSON object typed the way the spec's
//! `application/x-www-form-urlencoded` schema declares them (integers parsed, repeated fields
//! as arrays), then validated.
#![allow(dead_code)]

use serde_json::{Map, Value, json};
use switchboard_providers::{Channel, Provider};

use crate::support::{Emulation, message};

/// The vendored schema document `name`.
fn schema(name: &str) -> jsonschema::Validator {
    let path = format!("{}/tests/specs/{name}", env!("CARGO_MANIFEST_DIR"));
    let doc: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    // OpenAPI 3.0 schema objects are a dialect of JSON Schema draft 4.
    jsonschema::draft4::new(&doc).unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn assert_valid(validator: &jsonschema::Validator, body: &Value, what: &str) {
    let errors: Vec<String> = validator
        .iter_errors(body)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect();
    assert!(errors.is_empty(), "{what}: {body}\n{}", errors.join("\n"));
}

/// Sends `message(channel)` through `adapter` against `emulation` and returns the bodies of
/// the requests the API received.
async fn bodies<E: Emulation>(e: &E, adapter: &E::Adapter, channel: Channel) -> Vec<Vec<u8>> {
    let (response, _) = e.success(channel);
    e.mount(channel, response).await;
    adapter
        .send(&message(channel))
        .await
        .unwrap_or_else(|err| panic!("{channel}: {err}"));
    e.server()
        .received_requests()
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.body)
        .collect()
}

/// A form body as the JSON object its form schema describes.
fn form_as_json(body: &[u8], form_schema: &Value) -> Value {
    let props = &form_schema["allOf"][0]["properties"];
    let mut grouped: Map<String, Value> = Map::new();
    for (name, value) in form_urlencoded::parse(body).into_owned() {
        let prop = &props[&name];
        let typed = |kind: &Value, v: &str| match kind.as_str() {
            Some("integer") => v.parse::<i64>().map(Value::from).unwrap_or(json!(v)),
            Some("number") => v.parse::<f64>().map(Value::from).unwrap_or(json!(v)),
            Some("boolean") => v.parse::<bool>().map(Value::from).unwrap_or(json!(v)),
            _ => json!(v),
        };
        if prop["type"] == "array" {
            let item = typed(&prop["items"]["type"], &value);
            grouped
                .entry(name)
                .or_insert_with(|| json!([]))
                .as_array_mut()
                .unwrap()
                .push(item);
        } else {
            grouped.insert(name, typed(&prop["type"], &value));
        }
    }
    Value::Object(grouped)
}

#[cfg(feature = "twilio")]
#[tokio::test]
async fn twilio_messages_and_calls_match_the_official_form_schemas() {
    use crate::twilio::TwilioApi;
    let read = |name: &str| -> Value {
        let path = format!("{}/tests/specs/{name}", env!("CARGO_MANIFEST_DIR"));
        serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
    };
    let cases = [
        ("SMS with From", Channel::Sms, json!({})),
        (
            "SMS with MessagingServiceSid",
            Channel::Sms,
            json!({ "messaging_service_sid": "MG9752274e9e519418a7406176694466fa" }),
        ),
        (
            "WhatsApp ContentSid from a sender",
            Channel::Whatsapp,
            json!({}),
        ),
        (
            "WhatsApp ContentSid through a Messaging Service",
            Channel::Whatsapp,
            json!({ "whatsapp_from": null, "messaging_service_sid": "MG9752274e9e519418a7406176694466fa" }),
        ),
        ("voice call with Twiml", Channel::Call, json!({})),
        (
            "SMS without a status callback",
            Channel::Sms,
            json!({ "status_callback_url": null }),
        ),
    ];
    for (what, channel, overrides) in cases {
        let name = if channel == Channel::Call {
            "twilio_calls_create.json"
        } else {
            "twilio_messages_create.json"
        };
        let e = TwilioApi::start().await;
        let adapter = e.adapter_with(overrides);
        let sent = bodies(&e, &adapter, channel).await;
        assert_eq!(sent.len(), 1, "{what}");
        let body = form_as_json(&sent[0], &read(name));
        assert_valid(&schema(name), &body, what);
    }
}

#[cfg(feature = "meta_whatsapp")]
#[tokio::test]
async fn meta_template_matches_the_official_message_schema() {
    use crate::meta_whatsapp::MetaApi;
    let validator = schema("meta_messages_send.json");
    for locale in ["en", "pt-BR", "ar"] {
        let e = MetaApi::start().await;
        let (response, _) = e.success(Channel::Whatsapp);
        e.mount(Channel::Whatsapp, response).await;
        let mut msg = message(Channel::Whatsapp);
        msg.locale = locale.into();
        e.adapter().send(&msg).await.unwrap();
        let sent = e.server().received_requests().await.unwrap();
        let body: Value = serde_json::from_slice(&sent[0].body).unwrap();
        assert_valid(&validator, &body, locale);
    }
    // Without `policy` (the old body) the official schema refuses the template.
    let mut old = json!({
        "messaging_product": "whatsapp", "recipient_type": "individual", "to": "34600600600",
        "type": "template",
        "template": { "name": "verification_code", "language": { "code": "en_US" } },
    });
    assert!(
        !validator.is_valid(&old),
        "the schema requires language.policy"
    );
    old["template"]["language"]["policy"] = json!("deterministic");
    assert!(validator.is_valid(&old));
}

#[cfg(feature = "vonage")]
#[tokio::test]
async fn vonage_messages_on_every_channel_match_the_official_schema() {
    use crate::vonage::VonageApi;
    let validator = schema("vonage_messages_send.json");
    for channel in [
        Channel::Sms,
        Channel::Whatsapp,
        Channel::Viber,
        Channel::Rcs,
    ] {
        for overrides in [
            json!({}),
            json!({ "webhook_url": "https://hooks.example.com/vonage/status" }),
        ] {
            let e = VonageApi::start().await;
            let adapter = e.adapter_with(overrides.clone());
            let sent = bodies(&e, &adapter, channel).await;
            let body: Value = serde_json::from_slice(&sent[0]).unwrap();
            assert_valid(&validator, &body, &format!("{channel} {overrides}"));
        }
    }
}
