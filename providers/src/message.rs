//! What the engine asks a provider to deliver, and what a provider answers.

use std::fmt;
use std::time::Duration;

use crate::Channel;

/// A one-time code in clear text. It exists only between generation and delivery (and while
/// a typed candidate is verified); `Debug` never shows the digits.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct OneTimeCode(String);

impl OneTimeCode {
    /// Wraps digits produced by the engine's generator (or typed by a user).
    pub fn new(digits: impl Into<String>) -> Self {
        OneTimeCode(digits.into())
    }

    /// The digits, for the few places that must see them: the message body and the hasher.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Number of digits.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// True for an empty code (never produced by the generator).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl Drop for OneTimeCode {
    /// The digits do not outlive the value in memory.
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.0);
    }
}

impl fmt::Debug for OneTimeCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("OneTimeCode(<redacted>)")
    }
}

/// One message to deliver: a code for one phone number on one channel.
#[derive(Clone, Debug)]
pub struct OutboundMessage {
    /// Destination in E.164 with the leading `+`.
    pub to: String,
    /// ISO 3166-1 alpha-2 region of the destination, when known (`ES`).
    pub country: Option<String>,
    pub channel: Channel,
    pub code: OneTimeCode,
    /// The brand the message names ("Your Acme code is ...").
    pub brand: String,
    /// BCP 47 language tag for the message text (`en`, `es`, `pt-BR`).
    pub locale: String,
    /// How long the code stays valid; providers that support it stop trying after this.
    pub validity: Duration,
    /// Our id for the verification; providers echo it in receipts where they can.
    pub reference: String,
    /// The host of the web page that asked for the code: an SMS then ends with the WebOTP
    /// line `@host #code`, so that page's browser can offer the code to the user.
    pub webotp_host: Option<String>,
}

impl OutboundMessage {
    /// The short text the console and SMS-like channels carry. Only the brand and the code.
    pub fn text(&self) -> String {
        let text = crate::text::render(&self.locale, &self.brand, self.code.expose());
        match &self.webotp_host {
            Some(host) if self.channel == Channel::Sms => {
                format!("{text}\n\n@{host} #{}", self.code.expose())
            }
            _ => text,
        }
    }
}

/// A provider accepted the message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Delivery {
    /// The provider's own id for the message (`SM...`, `wamid...`), for receipts.
    pub provider_message_id: String,
}

#[cfg(test)]
mod webotp_tests {
    use super::*;

    fn message(channel: Channel, host: Option<&str>) -> OutboundMessage {
        OutboundMessage {
            to: "+34600600600".into(),
            country: Some("ES".into()),
            channel,
            code: OneTimeCode::new("042917"),
            brand: "Acme".into(),
            locale: "es".into(),
            validity: Duration::from_secs(300),
            reference: "v".into(),
            webotp_host: host.map(str::to_owned),
        }
    }

    #[test]
    fn an_sms_for_a_web_page_ends_with_the_webotp_line_and_other_channels_do_not() {
        assert_eq!(
            message(Channel::Sms, Some("otp.example.com")).text(),
            "Tu código de Acme es 042917\n\n@otp.example.com #042917"
        );
        assert_eq!(
            message(Channel::Whatsapp, Some("otp.example.com")).text(),
            "Tu código de Acme es 042917"
        );
        assert_eq!(
            message(Channel::Sms, None).text(),
            "Tu código de Acme es 042917"
        );
    }
}
