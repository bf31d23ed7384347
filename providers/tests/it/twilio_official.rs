//! Twilio's official signature scheme: signatures computed by Twilio's own Python helper library
//! (`twilio.request_validator.RequestValidator`) verify with our verifier, and a one-byte change
//! to the body, the URL or the signature is rejected.
//!
//! The library is installed on first use into `target/tmp/twilio-python` (`pip --target`). A
//! machine without Python 3 fails this test with a message saying so: nothing is skipped.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;

use serde_json::{Value, json};
use switchboard_providers::twilio;
use switchboard_providers::{InboundRequest, Provider, ReceiptError, ReceiptStatus};

use crate::support::received_at;
use crate::twilio::{CALLBACK, SID, TOKEN};

const PYTHON: &str = "python3";
/// The helper library's major version whose scheme these tests pin.
const TWILIO_REQUIREMENT: &str = "twilio>=9,<10";

/// Computes signatures with the official library: reads `{token, cases: [{url, params}]}`,
/// `params` a list of [name, value] pairs (repeated names become a multi-valued dict, as Flask
/// hands them over), and prints `{signatures, validated}`.
const ORACLE: &str = r#"
import json, sys
from twilio.request_validator import RequestValidator

class MultiDict(dict):
    def __init__(self, pairs):
        super().__init__()
        self.pairs = pairs
        for k, v in pairs:
            self[k] = v
    def getall(self, name):
        return [v for k, v in self.pairs if k == name]

req = json.load(sys.stdin)
validator = RequestValidator(req["token"])
signatures, validated = [], []
for case in req["cases"]:
    params = MultiDict(case["params"])
    sig = validator.compute_signature(case["url"], params)
    signatures.append(sig)
    validated.append(validator.validate(case["url"], params, sig))
print(json.dumps({"signatures": signatures, "validated": validated}))
"#;

static INSTALL: Mutex<()> = Mutex::new(());

/// A directory from which `import twilio` works, installing the library there if needed.
fn twilio_library() -> PathBuf {
    let _guard = INSTALL.lock().unwrap_or_else(|e| e.into_inner());
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("twilio-python");
    match Command::new(PYTHON).arg("--version").output() {
        Ok(out) if out.status.success() => {}
        _ => panic!(
            "this test needs Python 3 (`{PYTHON}`) to run Twilio's official RequestValidator; \
             install Python 3 with pip"
        ),
    }
    let importable = || {
        Command::new(PYTHON)
            .args(["-c", "import twilio.request_validator"])
            .env("PYTHONPATH", &dir)
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    if !importable() {
        let out = Command::new(PYTHON)
            .args([
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
                "--no-warn-script-location",
                "--upgrade",
                "--target",
            ])
            .arg(&dir)
            .arg(TWILIO_REQUIREMENT)
            .output()
            .expect("runs pip");
        assert!(
            out.status.success(),
            "installing the official twilio library failed (pip needs PyPI):\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(importable(), "twilio installed but not importable");
    }
    dir
}

/// Signatures of `cases` (url, params) by the official library.
fn official_signatures(cases: &[(&str, Vec<(String, String)>)]) -> Vec<String> {
    let dir = twilio_library();
    let input = json!({
        "token": TOKEN,
        "cases": cases.iter().map(|(url, params)| json!({ "url": url, "params": params })).collect::<Vec<_>>(),
    });
    let mut child = Command::new(PYTHON)
        .args(["-c", ORACLE])
        .env("PYTHONPATH", &dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("runs python3");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.to_string().as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "the oracle failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let result: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(
        result["validated"]
            .as_array()
            .unwrap()
            .iter()
            .all(|v| v == &json!(true)),
        "the library validates its own signatures"
    );
    result["signatures"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap().to_owned())
        .collect()
}

fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

fn status_callback_params() -> Vec<(String, String)> {
    pairs(&[
        ("SmsSid", "SM1f0e8ae6ade43cb3c0ce4525424e404f"),
        ("SmsStatus", "undelivered"),
        ("MessageStatus", "undelivered"),
        ("To", "+34600600600"),
        ("MessageSid", "SM1f0e8ae6ade43cb3c0ce4525424e404f"),
        ("AccountSid", SID),
        ("From", "+15005550006"),
        ("ApiVersion", "2010-04-01"),
        ("ErrorCode", "30003"),
        ("Body", "Olá — ✓ unicode & symbols=+"),
    ])
}

/// twilio-python's `compute_signature` sorts each name's values as a set: a value repeated
/// under the same name is signed once. Pinned against the library itself.
#[test]
fn a_repeated_identical_parameter_is_signed_as_the_official_library_signs_it() {
    let cases = [
        (CALLBACK, pairs(&[("Tag", "a"), ("Tag", "b"), ("Tag", "a")])),
        (CALLBACK, pairs(&[("To", "+1"), ("To", "+1")])),
    ];
    let signatures = official_signatures(&cases);
    for ((url, params), signature) in cases.iter().zip(&signatures) {
        assert_eq!(&twilio::compute_signature(TOKEN, url, params), signature);
        assert!(twilio::verify_signature(TOKEN, url, params, signature));
    }
}

/// A signer that appends every name and value as Twilio documents it (twilio-node's
/// validator), repeated values included: its signature is accepted too, and a signature over
/// different duplicates is not.
#[test]
fn a_repeated_parameter_signed_with_its_duplicates_kept_is_accepted() {
    use base64::Engine as _;
    use hmac::{Hmac, Mac};
    let params = pairs(&[("Tag", "a"), ("Tag", "b"), ("Tag", "a"), ("Amount", "1")]);
    let mut mac = <Hmac<sha1::Sha1> as Mac>::new_from_slice(TOKEN.as_bytes()).unwrap();
    mac.update(format!("{CALLBACK}Amount1TagaTagaTagb").as_bytes());
    let kept = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
    assert!(twilio::verify_signature(TOKEN, CALLBACK, &params, &kept));
    let fewer = pairs(&[("Tag", "a"), ("Tag", "b"), ("Amount", "1")]);
    assert!(!twilio::verify_signature(TOKEN, CALLBACK, &fewer, &kept));
}

#[test]
fn official_twilio_signature_verifies_and_a_one_byte_change_is_rejected() {
    let params = status_callback_params();
    let with_port = "https://hooks.example.com:443/twilio/status";
    let query_url = "https://hooks.example.com/twilio/status?attempt=2&ref=v%201";
    let repeated = pairs(&[("Tag", "b"), ("Tag", "a"), ("Amount", "1")]);
    let cases = [
        (CALLBACK, params.clone()),
        (with_port, params.clone()),
        (query_url, params.clone()),
        (CALLBACK, repeated.clone()),
        (CALLBACK, Vec::new()),
    ];
    let signatures = official_signatures(&cases);

    for ((url, params), signature) in cases.iter().zip(&signatures) {
        assert!(
            twilio::verify_signature(TOKEN, url, params, signature),
            "official signature for {url} rejected"
        );
        assert_eq!(&twilio::compute_signature(TOKEN, url, params), signature);
    }
    // Twilio signs with or without the default port; the receiver sees either form.
    assert!(twilio::verify_signature(
        TOKEN,
        CALLBACK,
        &params,
        &signatures[1]
    ));

    // One byte changed anywhere: rejected.
    let mut changed = params.clone();
    changed[8].1 = "30004".into();
    assert!(!twilio::verify_signature(
        TOKEN,
        CALLBACK,
        &changed,
        &signatures[0]
    ));
    assert!(!twilio::verify_signature(
        TOKEN,
        "https://hooks.example.com/twilio/statuS",
        &params,
        &signatures[0]
    ));
    let mut sig = signatures[0].clone().into_bytes();
    sig[0] = if sig[0] == b'A' { b'B' } else { b'A' };
    assert!(!twilio::verify_signature(
        TOKEN,
        CALLBACK,
        &params,
        &String::from_utf8(sig).unwrap()
    ));
}

#[test]
fn official_twilio_signature_on_a_status_callback_yields_its_receipt() {
    let params = status_callback_params();
    let signature = official_signatures(&[(CALLBACK, params.clone())]).remove(0);
    let body = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(&params)
        .finish()
        .into_bytes();
    let request = |body: Vec<u8>| {
        InboundRequest::new(
            "POST",
            CALLBACK,
            vec![("X-Twilio-Signature".to_owned(), signature.clone())],
            body,
            received_at(),
        )
    };
    let config: twilio::TwilioConfig =
        crate::twilio::config_table("https://api.twilio.invalid", json!({}))
            .parse()
            .unwrap();
    let adapter = twilio::TwilioProvider::new(
        config,
        switchboard_providers::http::HttpClient::new().unwrap(),
    )
    .unwrap();

    let receipts = adapter.parse_receipts(&request(body.clone())).unwrap();
    assert_eq!(receipts.len(), 1);
    assert_eq!(receipts[0].status, ReceiptStatus::Failed);
    assert_eq!(
        receipts[0].failure.as_ref().unwrap().code.as_deref(),
        Some("30003")
    );

    let mut one_byte = body;
    let at = one_byte.iter().position(|&b| b == b'3').unwrap();
    one_byte[at] = b'4';
    assert_eq!(
        adapter.parse_receipts(&request(one_byte)),
        Err(ReceiptError::BadSignature)
    );
}
