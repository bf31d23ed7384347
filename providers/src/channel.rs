//! Delivery channels. UPPERCASE on the way in (`SMS`, `WHATSAPP`, `CALL`), lowercase on the
//! way out (`sms`, `whatsapp`, `call`).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A way to carry a one-time code to a phone.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Channel {
    Sms,
    Whatsapp,
    Telegram,
    Rcs,
    Viber,
    /// A voice call that reads the code aloud.
    Call,
}

impl Channel {
    /// Every channel, in the order of the product table.
    pub const ALL: [Channel; 6] = [
        Channel::Sms,
        Channel::Whatsapp,
        Channel::Telegram,
        Channel::Rcs,
        Channel::Viber,
        Channel::Call,
    ];

    /// The lowercase wire output form (`sms`, `whatsapp`, ..., `call`).
    pub const fn as_str(self) -> &'static str {
        match self {
            Channel::Sms => "sms",
            Channel::Whatsapp => "whatsapp",
            Channel::Telegram => "telegram",
            Channel::Rcs => "rcs",
            Channel::Viber => "viber",
            Channel::Call => "call",
        }
    }

    /// The UPPERCASE wire input form (`SMS`, `WHATSAPP`, ..., `CALL`).
    pub const fn as_input(self) -> &'static str {
        match self {
            Channel::Sms => "SMS",
            Channel::Whatsapp => "WHATSAPP",
            Channel::Telegram => "TELEGRAM",
            Channel::Rcs => "RCS",
            Channel::Viber => "VIBER",
            Channel::Call => "CALL",
        }
    }

    /// Channels delivered inside an app the subscriber must have installed
    /// (they need a mobile line).
    pub const fn needs_app(self) -> bool {
        matches!(self, Channel::Whatsapp | Channel::Telegram | Channel::Viber)
    }

    /// Channels that need a handset able to receive messages (not a landline).
    pub const fn needs_messaging(self) -> bool {
        !matches!(self, Channel::Call)
    }
}

impl fmt::Display for Channel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An unknown channel name; names the accepted ones.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown channel {0:?}: expected one of SMS, WHATSAPP, TELEGRAM, RCS, VIBER, CALL (or VOICE)"
)]
pub struct UnknownChannel(pub String);

impl FromStr for Channel {
    type Err = UnknownChannel;

    /// Accepts the UPPERCASE wire form and, for config files, the lowercase output form;
    /// `VOICE` (the reference API's name) is `CALL`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s == "VOICE" || s == "voice" {
            return Ok(Channel::Call);
        }
        Channel::ALL
            .into_iter()
            .find(|c| c.as_input() == s || c.as_str() == s)
            .ok_or_else(|| UnknownChannel(s.chars().take(32).collect()))
    }
}

impl Serialize for Channel {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Channel {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uppercase_in_lowercase_out() {
        for c in Channel::ALL {
            assert_eq!(c.as_input().parse::<Channel>().unwrap(), c);
            let json = serde_json::to_string(&c).unwrap();
            assert_eq!(json, format!("\"{}\"", c.as_str()));
            let back: Channel = serde_json::from_str(&format!("\"{}\"", c.as_input())).unwrap();
            assert_eq!(back, c);
        }
    }

    #[test]
    fn unknown_channel_names_the_accepted_ones() {
        let err = "SMOKE_SIGNAL".parse::<Channel>().unwrap_err();
        assert!(err.to_string().contains("WHATSAPP"));
        assert!("Sms".parse::<Channel>().is_err());
    }
}
