//! The sandbox provider: deterministic test numbers that never reach a real provider.
//!
//! - numbers starting with the *approve prefix* are always delivered, and their codes are
//!   recorded so tests (and integrators' test suites) can read them;
//! - the *undeliverable* number fails on every channel with a fallback-class error, so a send
//!   to it ends `Undeliverable` after trying every route;
//! - the *high-risk* number is refused by the engine's risk screen before any provider runs;
//!   if it ever reaches this provider it is refused here too.

use std::sync::atomic::{AtomicU64, Ordering};

use serde::Deserialize;

use crate::recent::{RecentMessages, RecordedMessage};
use crate::{
    Capabilities, Channel, Delivery, DeliveryError, OneTimeCode, OutboundMessage, Provider,
};

/// The sandbox's test numbers (E.164).
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SandboxNumbers {
    /// Every number starting with this prefix is delivered and its code recorded.
    pub approve_prefix: String,
    /// This number is always judged high risk and declined.
    pub high_risk: String,
    /// This number fails on every channel.
    pub undeliverable: String,
}

impl Default for SandboxNumbers {
    /// Inside the North American fictional 555-01XX block, so they can never be a real line.
    fn default() -> Self {
        SandboxNumbers {
            approve_prefix: "+1202555010".to_owned(),
            high_risk: "+12025550190".to_owned(),
            undeliverable: "+12025550199".to_owned(),
        }
    }
}

impl SandboxNumbers {
    /// True when `e164` is one of the sandbox's numbers.
    pub fn contains(&self, e164: &str) -> bool {
        e164.starts_with(&self.approve_prefix)
            || e164 == self.high_risk
            || e164 == self.undeliverable
    }
}

/// Delivers to sandbox numbers without leaving the process and remembers the most recent
/// messages (a bounded ring: memory does not grow with the number of sends).
#[derive(Debug, Default)]
pub struct SandboxProvider {
    numbers: SandboxNumbers,
    sent: RecentMessages,
    ids: AtomicU64,
}

impl SandboxProvider {
    pub fn new(numbers: SandboxNumbers) -> Self {
        SandboxProvider {
            numbers,
            ..Self::default()
        }
    }

    pub fn numbers(&self) -> &SandboxNumbers {
        &self.numbers
    }

    /// The code of the most recent remembered message to `e164`.
    pub fn last_code(&self, e164: &str) -> Option<OneTimeCode> {
        self.sent.last_code(e164)
    }

    /// The remembered messages to `e164`, oldest first (among the last
    /// [`REMEMBERED`](crate::recent::REMEMBERED) messages of any number).
    pub fn messages_to(&self, e164: &str) -> Vec<RecordedMessage> {
        self.sent.to(e164)
    }
}

impl Provider for SandboxProvider {
    fn name(&self) -> &str {
        "sandbox"
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities::channels(&Channel::ALL)
    }

    async fn send(&self, message: &OutboundMessage) -> Result<Delivery, DeliveryError> {
        let to = message.to.as_str();
        if to == self.numbers.undeliverable {
            return Err(DeliveryError::fallback(
                "sandbox",
                format!("sandbox number is undeliverable on {}", message.channel),
            )
            .with_code("SANDBOX_UNDELIVERABLE"));
        }
        if to == self.numbers.high_risk {
            return Err(
                DeliveryError::permanent("sandbox", "sandbox high-risk number")
                    .with_code("SANDBOX_HIGH_RISK"),
            );
        }
        if !to.starts_with(&self.numbers.approve_prefix) {
            return Err(DeliveryError::permanent("sandbox", "not a sandbox number")
                .with_code("SANDBOX_NOT_A_TEST_NUMBER"));
        }
        let id = format!("sandbox-{}", self.ids.fetch_add(1, Ordering::Relaxed) + 1);
        self.sent.record(message);
        Ok(Delivery {
            provider_message_id: id,
        })
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn message(to: &str, channel: Channel) -> OutboundMessage {
        OutboundMessage {
            to: to.to_owned(),
            country: Some("US".to_owned()),
            channel,
            code: OneTimeCode::new("123456"),
            brand: "Acme".to_owned(),
            locale: "en".to_owned(),
            validity: Duration::from_secs(300),
            reference: "v1".to_owned(),
            webotp_host: None,
        }
    }

    #[tokio::test]
    async fn approve_range_delivers_and_records_the_code() {
        let sandbox = SandboxProvider::default();
        sandbox
            .send(&message("+12025550101", Channel::Sms))
            .await
            .unwrap();
        assert_eq!(
            sandbox.last_code("+12025550101").unwrap().expose(),
            "123456"
        );
        assert_eq!(sandbox.messages_to("+12025550101").len(), 1);
    }

    #[tokio::test]
    async fn undeliverable_number_fails_on_every_channel_with_fallback_class() {
        let sandbox = SandboxProvider::default();
        for channel in Channel::ALL {
            let err = sandbox
                .send(&message("+12025550199", channel))
                .await
                .unwrap_err();
            assert!(err.is_fallback(), "{channel}: {err}");
        }
        assert!(sandbox.last_code("+12025550199").is_none());
    }

    #[tokio::test]
    async fn the_record_of_sent_codes_is_a_bounded_ring() {
        let sandbox = SandboxProvider::default();
        for i in 0..(crate::recent::REMEMBERED * 4) {
            let to = format!("+1202555010{}", i % 10);
            sandbox.send(&message(&to, Channel::Sms)).await.unwrap();
        }
        assert_eq!(sandbox.sent.len(), crate::recent::REMEMBERED);
        assert!(sandbox.last_code("+12025550101").is_some());
    }

    #[tokio::test]
    async fn numbers_outside_the_sandbox_are_refused() {
        let sandbox = SandboxProvider::default();
        let err = sandbox
            .send(&message("+34600600600", Channel::Sms))
            .await
            .unwrap_err();
        assert!(err.is_permanent());
    }
}
