//! The console provider: writes every outgoing message to the log. The embedded default for
//! local runs, so a developer reads the code in the terminal.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::recent::RecentMessages;
use crate::{
    Capabilities, Channel, Delivery, DeliveryError, OneTimeCode, OutboundMessage, Provider,
};

/// Logs each message (code included — this is its whole purpose) at `INFO` on the
/// `switchboard::console` target. Never use it in production.
#[derive(Debug, Default)]
pub struct ConsoleProvider {
    sent: AtomicU64,
    recent: RecentMessages,
}

impl ConsoleProvider {
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of messages written so far.
    pub fn sent(&self) -> u64 {
        self.sent.load(Ordering::Relaxed)
    }

    /// The code of the most recent message to `to` among the last few hundred written (for
    /// demos and local tests: the same code is in the log line).
    pub fn last_code(&self, to: &str) -> Option<OneTimeCode> {
        self.recent.last_code(to)
    }
}

impl Provider for ConsoleProvider {
    fn name(&self) -> &str {
        "console"
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities::channels(&Channel::ALL)
    }

    async fn send(&self, message: &OutboundMessage) -> Result<Delivery, DeliveryError> {
        let n = self.sent.fetch_add(1, Ordering::Relaxed) + 1;
        let id = format!("console-{n}");
        // The code is printed on purpose: the console provider is the development stand-in
        // for a real channel, and reading the code here is how a developer completes a check.
        tracing::info!(
            target: "switchboard::console",
            to = %message.to,
            channel = %message.channel,
            message_id = %id,
            "{}",
            message.text()
        );
        self.recent.record(message);
        Ok(Delivery {
            provider_message_id: id,
        })
    }
}
