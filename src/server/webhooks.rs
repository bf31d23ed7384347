//! Outbound webhooks: every event is POSTed to each configured destination that takes it (its
//! `events`, and its `app` when set), signed, retried with exponential backoff and jitter, off
//! the request path.
//!
//! The signed string: the payload with object keys sorted recursively, floats shortened (trailing
//! zeros after the decimal point dropped, and the point when nothing follows), serialised
//! compactly as JSON; `X-Signature-V2` = hex(HMAC-SHA256(secret, that string)). The body sent
//! is that exact string, so a receiver verifies the raw bytes before parsing.
//!
//! Each attempt also carries `X-Timestamp` (unix seconds, when it was sent) and
//! `X-Signature-V3` = hex(HMAC-SHA256(secret, timestamp + "." + body)): a receiver that checks it
//! and refuses timestamps more than 5 minutes from its clock cannot be fed a replayed delivery.
//!
//! Where events wait depends on the store. With the memory store they wait in an in-process
//! queue: lost if the process stops. Memory is bounded: at most `queue_capacity` events wait in
//! the queue and `max_in_flight` deliveries run at once; when receivers hang, the worker waits
//! for a delivery slot, the queue fills, and new events are dropped (counted as `dropped`).
//! With the Redis store they go through a durable outbox shared by every sidecar (see
//! [`super::outbox`]): a delivery survives a crash or restart of the sidecar.

use std::sync::Arc;
use std::time::Duration;

use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::Sha256;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};

use super::destinations::Destinations;
use super::metrics::Metrics;
use crate::config::{WebhookDestination, WebhooksConfig};
use crate::events::{Event, EventSink};

/// The canonical string of `value` (see the module docs).
pub fn canonical_json(value: &Value) -> String {
    let mut out = Vec::with_capacity(512);
    write_canonical(value, &mut out);
    // Every piece is either ASCII punctuation or written by serde_json, which writes UTF-8.
    String::from_utf8(out).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

fn write_canonical(value: &Value, out: &mut Vec<u8>) {
    match value {
        Value::Object(map) => {
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            entries.sort_unstable_by(|a, b| a.0.cmp(b.0));
            out.push(b'{');
            for (i, (k, v)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_json(out, k.as_str());
                out.push(b':');
                write_canonical(v, out);
            }
            out.push(b'}');
        }
        Value::Array(items) => {
            out.push(b'[');
            for (i, v) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_canonical(v, out);
            }
            out.push(b']');
        }
        Value::Number(n) if n.is_f64() => {
            let s = n.to_string();
            if s.contains('.') && !s.contains(['e', 'E']) {
                out.extend_from_slice(s.trim_end_matches('0').trim_end_matches('.').as_bytes());
            } else {
                out.extend_from_slice(s.as_bytes());
            }
        }
        other => write_json(out, other),
    }
}

/// A string or scalar as compact JSON, straight into `out` (no intermediate `String`).
fn write_json<T: serde::Serialize + ?Sized>(out: &mut Vec<u8>, value: &T) {
    // Serialising a string or a scalar into a `Vec` cannot fail.
    let _ = serde_json::to_writer(out, value);
}

/// `X-Signature-V2` of a canonical string.
pub fn sign(secret: &str, canonical: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key");
    mac.update(canonical.as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

/// `X-Signature-V3` of a body sent at `timestamp` (unix seconds).
pub fn sign_timestamped(secret: &str, timestamp: u64, body: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body.as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

/// How far a receiver should let `X-Timestamp` be from its own clock.
pub const TIMESTAMP_TOLERANCE_SECS: u64 = 300;

/// Verifies a raw body against its `X-Timestamp` and `X-Signature-V3`, in constant time, and
/// that the timestamp is within [`TIMESTAMP_TOLERANCE_SECS`] of `now` (unix seconds).
pub fn verify_timestamped(
    secret: &str,
    body: &[u8],
    timestamp: &str,
    signature_hex: &str,
    now: u64,
) -> bool {
    let Ok(ts) = timestamp.trim().parse::<u64>() else {
        return false;
    };
    if ts.abs_diff(now) > TIMESTAMP_TOLERANCE_SECS {
        return false;
    }
    let Ok(expected) = hex::decode(signature_hex.trim()) else {
        return false;
    };
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key");
    mac.update(ts.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    mac.verify_slice(&expected).is_ok()
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Verifies a raw body against its `X-Signature-V2`, in constant time.
pub fn verify(secret: &str, body: &[u8], signature_hex: &str) -> bool {
    let Ok(expected) = hex::decode(signature_hex.trim()) else {
        return false;
    };
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key");
    mac.update(body);
    mac.verify_slice(&expected).is_ok()
}

/// Queues events and delivers them in the background.
pub struct Webhooks {
    tx: Option<mpsc::Sender<Event>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for Webhooks {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

impl Webhooks {
    /// Starts delivering (on the current tokio runtime) to `destinations` (configured and
    /// created through the API): through the durable outbox when `outbox` (the Redis store) is
    /// given, else from an in-process queue.
    pub fn start(
        config: &WebhooksConfig,
        destinations: Arc<Destinations>,
        outbox: Option<crate::store::RedisStore>,
        metrics: Arc<Metrics>,
    ) -> Self {
        let (tx, rx) = mpsc::channel(config.queue_capacity);
        let client = reqwest::Client::builder()
            .timeout(Duration::from_millis(config.timeout_ms))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("HTTP client");
        let tasks = match outbox {
            Some(store) => {
                super::outbox::start(rx, config.clone(), destinations, store, client, metrics)
            }
            None => vec![tokio::spawn(worker(
                rx,
                config.clone(),
                destinations,
                client,
                metrics,
            ))],
        };
        Webhooks {
            tx: Some(tx),
            tasks,
        }
    }

    /// The engine's event sink: queues without waiting; a full queue drops (and counts).
    pub fn sink(&self, metrics: Arc<Metrics>) -> Option<EventSink> {
        let tx = self.tx.clone()?;
        Some(Arc::new(move |event: Event| {
            if tx.try_send(event).is_err() {
                metrics.webhook("dropped");
                tracing::warn!("webhook queue full: event dropped");
            }
        }))
    }
}

async fn worker(
    mut rx: mpsc::Receiver<Event>,
    config: WebhooksConfig,
    destinations: Arc<Destinations>,
    client: reqwest::Client,
    metrics: Arc<Metrics>,
) {
    let config = Arc::new(config);
    let slots = Arc::new(Semaphore::new(config.max_in_flight));
    while let Some(event) = rx.recv().await {
        metrics.webhook_queue(rx.len() as u64, 0.0, 0);
        let dests = destinations.current().await;
        let mut body = LazyBody::new(&event);
        for dest in dests.iter() {
            if !takes(dest, &event) {
                continue;
            }
            let Some(body) = body.get() else { break };
            // Waits while `max_in_flight` deliveries run: the queue absorbs the wait, and
            // overflows (counted) rather than growing without bound.
            let Ok(slot) = slots.clone().acquire_owned().await else {
                return;
            };
            // Each delivery retries on its own task, so one slow receiver delays nobody
            // until the slots run out.
            tokio::spawn(deliver(
                client.clone(),
                dest.clone(),
                body,
                event.event.as_str(),
                config.clone(),
                metrics.clone(),
                slot,
            ));
        }
    }
}

/// An event's body (and signed string), made on first use: most events go to no destination,
/// and those are never serialised.
pub(super) struct LazyBody<'a> {
    event: &'a Event,
    made: Option<Arc<String>>,
}

impl<'a> LazyBody<'a> {
    pub(super) fn new(event: &'a Event) -> Self {
        LazyBody { event, made: None }
    }

    /// The body; `None` only if the event cannot be serialised.
    pub(super) fn get(&mut self) -> Option<Arc<String>> {
        if self.made.is_none() {
            let value = serde_json::to_value(self.event).ok()?;
            self.made = Some(Arc::new(canonical_json(&value)));
        }
        self.made.clone()
    }
}

/// Whether `dest` receives `event`: its `events` filter and its application.
pub(super) fn takes(dest: &WebhookDestination, event: &Event) -> bool {
    let wanted = dest.events.is_empty() || dest.events.iter().any(|e| e == event.event.as_str());
    let app = dest.app.as_ref().is_none_or(|app| *app == event.app);
    wanted && app
}

async fn deliver(
    client: reqwest::Client,
    dest: WebhookDestination,
    body: Arc<String>,
    event: &'static str,
    config: Arc<WebhooksConfig>,
    metrics: Arc<Metrics>,
    _slot: OwnedSemaphorePermit,
) {
    if deliver_with_retries(&client, &dest, &body, event, &config, &metrics)
        .await
        .is_err()
    {
        metrics.webhook("failed");
        tracing::warn!(
            event,
            "webhook given up after {} attempts",
            config.max_attempts
        );
    }
}

/// Delivers `body` to `dest`, retrying with exponential backoff and full jitter up to
/// `max_attempts` times. Counts `delivered` and `retried`; the last failure is returned.
pub(super) async fn deliver_with_retries(
    client: &reqwest::Client,
    dest: &WebhookDestination,
    body: &str,
    event: &str,
    config: &WebhooksConfig,
    metrics: &Metrics,
) -> Result<(), String> {
    let secret = dest.secret.expose();
    let signature = sign(secret, body);
    let mut backoff = Duration::from_millis(config.initial_backoff_ms);
    let mut last = String::new();
    for attempt in 1..=config.max_attempts {
        let timestamp = unix_now();
        let result = client
            .post(&dest.url)
            .header("content-type", "application/json")
            .header("x-signature-v2", &signature)
            .header("x-timestamp", timestamp.to_string())
            .header("x-signature-v3", sign_timestamped(secret, timestamp, body))
            .header("x-switchboard-event", event)
            .body(body.as_bytes().to_vec())
            .send()
            .await;
        match result {
            Ok(r) if r.status().is_success() => {
                metrics.webhook("delivered");
                return Ok(());
            }
            Ok(r) => {
                tracing::info!(status = r.status().as_u16(), attempt, "webhook refused");
                last = format!("HTTP {}", r.status().as_u16());
            }
            Err(e) => {
                let e = e.without_url();
                tracing::info!(error = %e, attempt, "webhook failed");
                last = e.to_string();
            }
        }
        if attempt == config.max_attempts {
            break;
        }
        metrics.webhook("retried");
        // Full jitter: a random pause up to the current backoff.
        let pause = backoff.mul_f64(rand::random::<f64>());
        tokio::time::sleep(pause.max(Duration::from_millis(1))).await;
        backoff = (backoff * 2).min(Duration::from_millis(config.max_backoff_ms));
    }
    Err(last)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn canonical_form_sorts_keys_recursively_and_shortens_floats() {
        let v =
            json!({"b": 1, "a": {"z": [1.50, 2.0, {"y": 0.25, "x": "é"}], "c": null}, "f": 10.0});
        assert_eq!(
            canonical_json(&v),
            r#"{"a":{"c":null,"z":[1.5,2,{"x":"é","y":0.25}]},"b":1,"f":10}"#
        );
    }

    #[test]
    fn the_timestamped_signature_covers_the_timestamp_and_expires_after_five_minutes() {
        let secret = "a-shared-secret-123";
        let body = canonical_json(&json!({"event": "verification.approved"}));
        let sig = sign_timestamped(secret, 1_700_000_000, &body);
        let ok = |ts: &str, now: u64| verify_timestamped(secret, body.as_bytes(), ts, &sig, now);
        assert!(ok("1700000000", 1_700_000_000));
        assert!(ok("1700000000", 1_700_000_300));
        assert!(!ok("1700000000", 1_700_000_301), "stale");
        assert!(!ok("1700000001", 1_700_000_000), "another timestamp");
        assert!(!ok("", 1_700_000_000));
        assert_eq!(
            sig,
            sign(secret, &format!("1700000000.{body}")),
            "HMAC over timestamp + \".\" + body"
        );
    }

    #[test]
    fn signature_verifies_and_a_tampered_body_does_not() {
        let body = canonical_json(&json!({"event": "verification.approved"}));
        let sig = sign("a-shared-secret-123", &body);
        assert!(verify("a-shared-secret-123", body.as_bytes(), &sig));
        let mut tampered = body.clone().into_bytes();
        tampered[3] ^= 1;
        assert!(!verify("a-shared-secret-123", &tampered, &sig));
        assert!(!verify("another-secret-1234", body.as_bytes(), &sig));
    }
}
