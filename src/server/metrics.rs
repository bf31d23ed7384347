//! Prometheus metrics, one registry per sidecar (tests run several side by side).

use prometheus::{
    Encoder, Gauge, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, Opts,
    Registry, TextEncoder,
};

use switchboard_providers::FailureClass;

use crate::ReceiptEffect;
use crate::fraud::Verdict;
use crate::report::{CheckOutcome, SendOutcome};

pub struct Metrics {
    registry: Registry,
    /// Delivery attempts by channel, provider and outcome (delivered, failed, timeout).
    sends: IntCounterVec,
    /// Send results by status (Success, Retry, Undeliverable, Blocked) or error code.
    send_results: IntCounterVec,
    /// Sends delivered by a route after an earlier one failed.
    fallbacks: IntCounter,
    /// Check results by status or error code.
    checks: IntCounterVec,
    /// Request latency by API (grpc, http) and method.
    latency: HistogramVec,
    /// Store failures (every UNAVAILABLE answer).
    store_errors: IntCounter,
    /// Webhook deliveries by outcome (delivered, retried, failed, dropped).
    webhooks: IntCounterVec,
    /// Verified delivery receipts by provider and effect (reported, rerouted, not_rerouted).
    receipts: IntCounterVec,
    /// Connections closed at accept because their listener was full, by listener.
    connections_refused: IntCounterVec,
    /// Sends the fraud screen refused (`blocked`) or, in shadow mode, would have refused
    /// (`would_block`), by rule.
    fraud_decisions: IntCounterVec,
    /// Sends a provider's own fraud protection refused, by provider.
    provider_fraud_blocks: IntCounterVec,
    /// Events waiting in the webhook queue (the Redis outbox: every sidecar reports the shared
    /// stream, so take the max over sidecars, not the sum).
    webhook_queue_depth: IntGauge,
    /// Age of the oldest event waiting in the Redis outbox.
    webhook_oldest_age: Gauge,
    /// Entries in the Redis outbox's dead-letter stream.
    webhook_dead_letters: IntGauge,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let registry =
            Registry::new_custom(Some("switchboard".into()), None).expect("valid metrics prefix");
        let counter_vec = |name: &str, help: &str, labels: &[&str]| {
            let c = IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric");
            registry
                .register(Box::new(c.clone()))
                .expect("unique metric");
            c
        };
        let counter = |name: &str, help: &str| {
            let c = IntCounter::new(name, help).expect("valid metric");
            registry
                .register(Box::new(c.clone()))
                .expect("unique metric");
            c
        };
        let sends = counter_vec(
            "delivery_attempts_total",
            "Delivery attempts by channel, provider and outcome",
            &["channel", "provider", "outcome"],
        );
        let send_results = counter_vec("sends_total", "Send results by status", &["status"]);
        let fallbacks = counter("fallbacks_total", "Sends delivered after a route failed");
        let checks = counter_vec("checks_total", "Check results by status", &["status"]);
        let store_errors = counter("store_errors_total", "State store failures");
        let webhooks = counter_vec(
            "webhook_deliveries_total",
            "Webhook deliveries by outcome",
            &["outcome"],
        );
        let receipts = counter_vec(
            "receipts_total",
            "Verified delivery receipts by provider and effect",
            &["provider", "effect"],
        );
        let connections_refused = counter_vec(
            "connections_refused_total",
            "Connections closed at accept: the listener was at server.max_connections",
            &["listener"],
        );
        let fraud_decisions = counter_vec(
            "fraud_decisions_total",
            "Sends the fraud screen refused (blocked) or would have refused in shadow mode (would_block), by rule",
            &["rule", "decision"],
        );
        let provider_fraud_blocks = counter_vec(
            "provider_fraud_blocks_total",
            "Sends refused by a provider's own fraud protection, by provider",
            &["provider"],
        );
        let int_gauge = |name: &str, help: &str| {
            let g = IntGauge::new(name, help).expect("valid metric");
            registry
                .register(Box::new(g.clone()))
                .expect("unique metric");
            g
        };
        let webhook_queue_depth = int_gauge(
            "webhook_queue_depth",
            "Events waiting to be delivered (Redis outbox: the shared stream, the same on every sidecar)",
        );
        let webhook_dead_letters = int_gauge(
            "webhook_dead_letters",
            "Deliveries in the Redis outbox's dead-letter stream (every attempt failed)",
        );
        let webhook_oldest_age = Gauge::new(
            "webhook_oldest_event_age_seconds",
            "Age of the oldest event waiting in the Redis outbox (0 when it is empty)",
        )
        .expect("valid metric");
        registry
            .register(Box::new(webhook_oldest_age.clone()))
            .expect("unique metric");
        let latency = HistogramVec::new(
            HistogramOpts::new("request_duration_seconds", "Request latency").buckets(vec![
                0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
            ]),
            &["api", "method"],
        )
        .expect("valid metric");
        registry
            .register(Box::new(latency.clone()))
            .expect("unique metric");
        Metrics {
            registry,
            sends,
            send_results,
            fallbacks,
            checks,
            latency,
            store_errors,
            webhooks,
            receipts,
            connections_refused,
            fraud_decisions,
            provider_fraud_blocks,
            webhook_queue_depth,
            webhook_oldest_age,
            webhook_dead_letters,
        }
    }

    pub fn record_send(&self, outcome: &SendOutcome) {
        for a in &outcome.attempts {
            self.sends
                .with_label_values(&[a.channel.as_str(), a.provider.as_str(), a.outcome.as_str()])
                .inc();
            if a.class == Some(FailureClass::Fraud) {
                self.provider_fraud_blocks
                    .with_label_values(&[a.provider.as_str()])
                    .inc();
            }
        }
        let decision = match &outcome.fraud {
            Some(Verdict::Block(f)) => Some((f.rule, "blocked")),
            Some(Verdict::WouldBlock(f)) => Some((f.rule, "would_block")),
            _ => None,
        };
        if let Some((rule, decision)) = decision {
            self.fraud_decisions
                .with_label_values(&[rule.as_str(), decision])
                .inc();
        }
        if outcome.delivered_by.is_some() && outcome.attempts.len() > 1 {
            self.fallbacks.inc();
        }
        self.send_results
            .with_label_values(&[outcome.status.as_str()])
            .inc();
    }

    pub fn record_check(&self, outcome: &CheckOutcome) {
        self.checks
            .with_label_values(&[outcome.status.as_str()])
            .inc();
    }

    /// Counts an error answer of `method` (`send`, `check`, ...).
    pub fn record_error(&self, method: &str, code: &str) {
        if code == "UNAVAILABLE" {
            self.store_errors.inc();
        }
        match method {
            "send" => self.send_results.with_label_values(&[code]).inc(),
            "check" => self.checks.with_label_values(&[code]).inc(),
            _ => {}
        }
    }

    pub fn observe(&self, api: &str, method: &str, seconds: f64) {
        self.latency
            .with_label_values(&[api, method])
            .observe(seconds);
    }

    /// Counts what one verified receipt of `provider` did (a late fallback is `rerouted`).
    pub fn record_receipt(&self, provider: &str, effect: &ReceiptEffect) {
        let effect = match effect {
            ReceiptEffect::Reported => "reported",
            ReceiptEffect::Rerouted(_) => "rerouted",
            ReceiptEffect::NotRerouted => "not_rerouted",
        };
        self.receipts.with_label_values(&[provider, effect]).inc();
    }

    /// A connection closed at accept by the cap of `listener` (`http`, `grpc`).
    pub fn connection_refused(&self, listener: &str) {
        self.connections_refused
            .with_label_values(&[listener])
            .inc();
    }

    pub fn webhook(&self, outcome: &str) {
        self.webhooks.with_label_values(&[outcome]).inc();
    }

    /// The webhook queue's state: events waiting, the oldest one's age (when known) and the
    /// dead letters (when the queue keeps them).
    pub fn webhook_queue(&self, depth: u64, oldest_age_secs: f64, dead_letters: u64) {
        self.webhook_queue_depth
            .set(i64::try_from(depth).unwrap_or(i64::MAX));
        self.webhook_oldest_age.set(oldest_age_secs);
        self.webhook_dead_letters
            .set(i64::try_from(dead_letters).unwrap_or(i64::MAX));
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut out = Vec::new();
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut out);
        String::from_utf8(out).unwrap_or_default()
    }
}
