//! The `X-Signature-V2` canonicaliser of outbound webhooks.
//!
//! Input: any bytes; those that are JSON are canonicalised. Invariants: the canonical form is
//! JSON, canonicalising it again gives the same string (stable), it holds the same value (numbers
//! compared by value: `1.50` becomes `1.5`, `2.0` becomes `2`), and its signature verifies.

use serde_json::Value;
use switchboard::server::webhooks::{canonical_json, sign, verify};

const SECRET: &str = "fuzz-webhook-secret";

pub fn run(data: &[u8]) {
    let Ok(value) = serde_json::from_slice::<Value>(data) else {
        return;
    };
    let canonical = canonical_json(&value);
    let reparsed: Value = serde_json::from_str(&canonical).expect("the canonical form is JSON");
    assert_eq!(
        canonical_json(&reparsed),
        canonical,
        "the canonical form is stable"
    );
    assert!(
        same(&value, &reparsed),
        "the canonical form holds the same value"
    );
    let signature = sign(SECRET, &canonical);
    assert!(verify(SECRET, canonical.as_bytes(), &signature));
}

/// Equal values; numbers equal by value.
fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => match (x.as_i64(), y.as_i64()) {
            (Some(x), Some(y)) => x == y,
            _ => match (x.as_u64(), y.as_u64()) {
                (Some(x), Some(y)) => x == y,
                _ => x.as_f64() == y.as_f64(),
            },
        },
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(x, y)| same(x, y))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| same(v, w)))
        }
        _ => a == b,
    }
}
