//! A bounded record of recent messages, for the providers that keep what they "sent" so tests
//! and developers can read the codes back (console, sandbox). A ring: the oldest message goes
//! when it is full, so memory stays bounded however many messages pass.

use std::collections::VecDeque;

use parking_lot::Mutex;

use crate::{Channel, OneTimeCode, OutboundMessage};

/// How many recent messages are kept.
pub const REMEMBERED: usize = 256;

/// One message a recording provider accepted.
#[derive(Clone, Debug)]
pub struct RecordedMessage {
    pub to: String,
    pub channel: Channel,
    pub code: OneTimeCode,
    pub reference: String,
}

/// The last [`REMEMBERED`] messages, oldest first.
#[derive(Debug, Default)]
pub(crate) struct RecentMessages(Mutex<VecDeque<RecordedMessage>>);

impl RecentMessages {
    pub(crate) fn record(&self, message: &OutboundMessage) {
        let mut recent = self.0.lock();
        if recent.len() == REMEMBERED {
            recent.pop_front();
        }
        recent.push_back(RecordedMessage {
            to: message.to.clone(),
            channel: message.channel,
            code: message.code.clone(),
            reference: message.reference.clone(),
        });
    }

    /// The code of the most recent remembered message to `to`.
    pub(crate) fn last_code(&self, to: &str) -> Option<OneTimeCode> {
        self.0
            .lock()
            .iter()
            .rev()
            .find(|m| m.to == to)
            .map(|m| m.code.clone())
    }

    /// The remembered messages to `to`, oldest first.
    pub(crate) fn to(&self, to: &str) -> Vec<RecordedMessage> {
        self.0
            .lock()
            .iter()
            .filter(|m| m.to == to)
            .cloned()
            .collect()
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.0.lock().len()
    }
}
