//! Outcome counters: what happened to the sends of an application, counted over sliding
//! windows per prefix, country, carrier range, client signal, spend and route. The one source
//! of evidence for `fraud` (is this traffic converting?) and `routing` (which route verifies
//! users?). Kept in the store, so every instance sharing Redis sees the same figures.
//!
//! A counter key is `APP:DIMENSION:VALUE` (`shop:prefix:+3460060`); the store gives each key
//! its own Redis Cluster slot, so counters spread over the cluster and never pile on one node.

mod recorder;

use std::net::IpAddr;

use sha2::{Digest, Sha256};

pub use crate::store::{Count, CounterKey, Field, Tally, Window};
pub use recorder::Recorder;

/// What a counter counts by.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Dimension {
    /// The E.164 number without its last digits: a block of numbers.
    Prefix,
    /// ISO region of the number.
    Country,
    /// The carrier the number's range was allocated to.
    Carrier,
    /// The client IP of the send (`signals.ip`).
    Ip,
    /// The client's network: its /24 (IPv4) or /48 (IPv6).
    Network,
    /// The client device (`signals.device_id`, hashed).
    Device,
    /// The application's spend, per hour (`hour`) and per day (`day`).
    Spend,
    /// A delivery route: `COUNTRY:channel:provider`.
    Route,
    /// A provider on a channel, for its circuit breaker (`channel:provider`, all applications).
    Breaker,
}

impl Dimension {
    pub const ALL: [Dimension; 9] = [
        Dimension::Prefix,
        Dimension::Country,
        Dimension::Carrier,
        Dimension::Ip,
        Dimension::Network,
        Dimension::Device,
        Dimension::Spend,
        Dimension::Route,
        Dimension::Breaker,
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            Dimension::Prefix => "prefix",
            Dimension::Country => "country",
            Dimension::Carrier => "carrier",
            Dimension::Ip => "ip",
            Dimension::Network => "net",
            Dimension::Device => "device",
            Dimension::Spend => "spend",
            Dimension::Route => "route",
            Dimension::Breaker => "breaker",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|d| d.as_str() == s)
    }
}

/// The counter of `value` along `dim` in application `app`. Braces (the store's hash-tag
/// delimiters) and control characters are replaced; values are bounded.
pub fn key(app: &str, dim: Dimension, value: &str) -> CounterKey {
    key_of(app, dim, &[value])
}

/// [`key`] of the value `parts` joined with `:`, built without an intermediate string.
pub fn key_of(app: &str, dim: Dimension, parts: &[&str]) -> CounterKey {
    let dim = dim.as_str();
    let len: usize = parts.iter().map(|p| p.len() + 1).sum();
    // Room for a short suffix (`:mem`) without a reallocation.
    let mut out = String::with_capacity(app.len() + dim.len() + len + 5);
    out.push_str(app);
    out.push(':');
    out.push_str(dim);
    // The value's characters left before the bound.
    let mut budget = MAX_VALUE_CHARS;
    for (i, part) in parts.iter().enumerate() {
        if i > 0 {
            if budget == 0 {
                break;
            }
            budget -= 1;
        }
        out.push(':');
        budget = push_sanitised(&mut out, part, budget);
    }
    CounterKey(out)
}

/// Longest value of a counter key, in characters.
const MAX_VALUE_CHARS: usize = 96;

/// Appends at most `budget` characters of `value` with braces and control characters replaced;
/// returns the budget left. Plain ASCII (every key the engine makes) is copied as it is.
fn push_sanitised(out: &mut String, value: &str, budget: usize) -> usize {
    let plain = |b: &u8| b.is_ascii() && !b.is_ascii_control() && *b != b'{' && *b != b'}';
    if value.len() <= budget && value.as_bytes().iter().all(plain) {
        out.push_str(value);
        return budget - value.len();
    }
    let mut left = budget;
    for c in value.chars().take(budget) {
        out.push(match c {
            '{' | '}' => '_',
            c if c.is_control() => '_',
            c => c,
        });
        left -= 1;
    }
    left
}

/// The namespace of `app`'s counter keys.
pub fn namespace(app: &str) -> String {
    format!("{app}:")
}

/// Splits a counter key into its application, dimension and value.
pub fn parse_key(key: &CounterKey) -> Option<(&str, Dimension, &str)> {
    let mut parts = key.0.splitn(3, ':');
    let app = parts.next()?;
    let dim = Dimension::parse(parts.next()?)?;
    Some((app, dim, parts.next()?))
}

/// The prefix of an E.164 number: without its last `strip` digits, never shorter than the
/// country code plus one digit.
pub fn prefix_of(e164: &str, calling_code: u16, strip: u8) -> String {
    let keep_min = 1 + calling_code.to_string().len() + 1;
    let keep = e164.len().saturating_sub(usize::from(strip)).max(keep_min);
    e164.chars().take(keep).collect()
}

/// The network of a client address: its /24 (IPv4) or /48 (IPv6).
pub fn network_of(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, c, _] = v4.octets();
            format!("{a}.{b}.{c}.0/24")
        }
        IpAddr::V6(v6) => {
            let s = v6.segments();
            format!("{:x}:{:x}:{:x}::/48", s[0], s[1], s[2])
        }
    }
}

/// A device id as counted: hashed, so the store holds no client identifier in clear and every
/// key has the same length whatever the client sent.
pub fn device_of(device_id: &str) -> String {
    hex::encode(&Sha256::digest(device_id.as_bytes())[..12])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_strips_the_last_digits_but_keeps_the_country_code() {
        assert_eq!(prefix_of("+34600600600", 34, 4), "+3460060");
        assert_eq!(prefix_of("+12025550107", 1, 4), "+1202555");
        assert_eq!(prefix_of("+3460", 34, 4), "+346");
    }

    #[test]
    fn networks_are_slash_24_and_slash_48() {
        assert_eq!(
            network_of("203.0.113.77".parse().unwrap()),
            "203.0.113.0/24"
        );
        assert_eq!(
            network_of("2001:db8:abcd:12::1".parse().unwrap()),
            "2001:db8:abcd::/48"
        );
    }

    #[test]
    fn keys_carry_no_hash_tag_delimiters_and_parse_back() {
        let k = key("shop", Dimension::Carrier, "Evil {Carrier}");
        assert_eq!(k.0, "shop:carrier:Evil _Carrier_");
        assert_eq!(
            parse_key(&k),
            Some(("shop", Dimension::Carrier, "Evil _Carrier_"))
        );
    }

    #[test]
    fn values_are_bounded_to_96_characters_and_parts_join_like_one_value() {
        let long = "é".repeat(200);
        let k = key("a", Dimension::Carrier, &long);
        assert_eq!(k.0, format!("a:carrier:{}", "é".repeat(96)));
        // Parts are the value joined with `:`, sanitised and bounded as one value.
        let provider = format!("p{{\u{7}}}{}", "x".repeat(120));
        let (x95, x96) = ("x".repeat(95), "x".repeat(96));
        for parts in [
            vec!["ES", "sms", "twilio"],
            vec!["ZZ", "whatsapp", provider.as_str()],
            vec![long.as_str(), "sms"],
            vec![x95.as_str(), "sms"],
            vec![x96.as_str(), "sms"],
        ] {
            assert_eq!(
                key_of("a", Dimension::Route, &parts),
                key("a", Dimension::Route, &parts.join(":")),
                "{parts:?}"
            );
        }
    }
}
