//! Keeping secrets out of logs: [`Secret`] holds a credential, [`Redactor`] cleans text that came
//! back from a provider before it reaches an error, a report or a log line.

use std::fmt;

use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize, Serializer};

/// A credential (auth token, access token, app secret). `Debug` prints `<redacted>`; the value
/// is read only through [`Secret::expose`], at the one place that puts it on the wire.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The value, for the request header or the HMAC key that needs it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.0.is_empty() {
            "<empty>"
        } else {
            "<redacted>"
        })
    }
}

impl<'de> Deserialize<'de> for Secret {
    /// Accepts a string, or a number: layered config parses an all-digit environment value
    /// (`SWITCHBOARD_PROVIDERS__X__TOKEN=1234`) as a number.
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        lenient_string(deserializer).map(Secret)
    }
}

impl Serialize for Secret {
    /// Serializes as `<redacted>`: a config dump never carries the value.
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str("<redacted>")
    }
}

/// Deserializes a string, accepting a number or a boolean in its place (see [`Secret`]).
/// Use with `#[serde(deserialize_with = "...")]` on string fields of adapter configs, such as
/// sender numbers, that an environment variable may set.
pub fn lenient_string<'de, D: Deserializer<'de>>(deserializer: D) -> Result<String, D::Error> {
    struct Lenient;
    impl Visitor<'_> for Lenient {
        type Value = String;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a string")
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<String, E> {
            Ok(v.to_owned())
        }
        fn visit_string<E: de::Error>(self, v: String) -> Result<String, E> {
            Ok(v)
        }
        fn visit_u64<E: de::Error>(self, v: u64) -> Result<String, E> {
            Ok(v.to_string())
        }
        fn visit_i64<E: de::Error>(self, v: i64) -> Result<String, E> {
            Ok(v.to_string())
        }
        fn visit_bool<E: de::Error>(self, v: bool) -> Result<String, E> {
            Ok(v.to_string())
        }
    }
    deserializer.deserialize_any(Lenient)
}

/// [`lenient_string`] for an optional field.
pub fn lenient_option<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<String>, D::Error> {
    struct Lenient(String);
    impl<'de> Deserialize<'de> for Lenient {
        fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
            lenient_string(deserializer).map(Lenient)
        }
    }
    Ok(Option::<Lenient>::deserialize(deserializer)?.map(|l| l.0))
}

/// [`lenient_option`] for an optional phone number: a bare number (what layered config makes
/// of `SWITCHBOARD_..._FROM=+15005550006`) gets its leading `+` back.
pub fn lenient_e164_option<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<String>, D::Error> {
    struct Number(String);
    impl<'de> Deserialize<'de> for Number {
        fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
            struct V;
            impl Visitor<'_> for V {
                type Value = String;
                fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                    f.write_str("a phone number or sender id")
                }
                fn visit_str<E: de::Error>(self, v: &str) -> Result<String, E> {
                    Ok(v.to_owned())
                }
                fn visit_u64<E: de::Error>(self, v: u64) -> Result<String, E> {
                    Ok(format!("+{v}"))
                }
                fn visit_i64<E: de::Error>(self, v: i64) -> Result<String, E> {
                    Ok(format!("+{}", v.unsigned_abs()))
                }
            }
            deserializer.deserialize_any(V).map(Number)
        }
    }
    Ok(Option::<Number>::deserialize(deserializer)?.map(|n| n.0))
}

/// Longest message a [`Redactor`] lets through.
pub const MAX_MESSAGE_CHARS: usize = 200;

/// Digit runs at least this long are treated as phone numbers and masked. Provider error codes
/// (`21211`, `131026`) are shorter and survive.
const NUMBER_MIN_DIGITS: usize = 7;

/// Cleans provider text: hides the given secrets (the code, tokens, the destination), masks any
/// run of 7 or more digits down to its last two (`***00`), drops control characters and caps
/// the length. Over-redaction is the safe failure.
#[derive(Default)]
pub struct Redactor<'a> {
    secrets: Vec<&'a str>,
}

impl<'a> Redactor<'a> {
    pub fn new() -> Self {
        Redactor::default()
    }

    /// Hides every occurrence of `secret` (ignored when empty).
    pub fn hide(mut self, secret: &'a str) -> Self {
        if !secret.is_empty() {
            self.secrets.push(secret);
            // Longest first, so a secret containing another is hidden whole.
            self.secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
        }
        self
    }

    pub fn redact(&self, text: &str) -> String {
        let mut out = text.to_owned();
        for secret in &self.secrets {
            if out.contains(secret) {
                out = out.replace(secret, "<redacted>");
            }
        }
        let masked = mask_numbers(&out);
        let mut clean: String = masked
            .chars()
            .map(|c| if c.is_control() { ' ' } else { c })
            .take(MAX_MESSAGE_CHARS + 1)
            .collect();
        if clean.chars().count() > MAX_MESSAGE_CHARS {
            clean = clean.chars().take(MAX_MESSAGE_CHARS - 1).collect();
            clean.push('…');
        }
        clean.trim().to_owned()
    }
}

/// An optional credential of an adapter config (`key`): absent is fine, set but empty is not.
#[cfg_attr(
    not(any(feature = "meta_whatsapp", feature = "vonage", feature = "infobip")),
    allow(dead_code)
)]
pub(crate) fn check_optional_secret(
    key: &str,
    secret: Option<&Secret>,
) -> Result<(), crate::config::FieldError> {
    if secret.is_some_and(Secret::is_empty) {
        return Err(crate::config::FieldError::new(
            key,
            "must not be empty when set",
        ));
    }
    Ok(())
}

/// `err` as an adapter's `send` returns it: its message cleaned of the one-time code, the
/// destination (as `+E164` and as bare digits) and the adapter's `credentials` (empty ones are
/// ignored), on top of what [`Redactor::redact`] always does.
#[cfg(feature = "http")]
pub(crate) fn redact_send_error(
    err: crate::DeliveryError,
    message: &crate::OutboundMessage,
    credentials: &[&str],
) -> crate::DeliveryError {
    let hidden = [
        message.code.expose(),
        message.to.as_str(),
        message.to.trim_start_matches('+'),
    ];
    redact_send_error_with(err, &[&hidden[..], credentials].concat())
}

/// `err` with each of `credentials` hidden from its message (numbers are masked anyway).
#[cfg(feature = "http")]
pub(crate) fn redact_send_error_with(
    mut err: crate::DeliveryError,
    credentials: &[&str],
) -> crate::DeliveryError {
    let mut redactor = Redactor::new();
    for credential in credentials {
        redactor = redactor.hide(credential);
    }
    err.message = redactor.redact(&err.message);
    err
}

impl fmt::Debug for Redactor<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Redactor({} secrets)", self.secrets.len())
    }
}

/// Masks every run of [`NUMBER_MIN_DIGITS`] or more ASCII digits to `***` + its last two.
fn mask_numbers(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut run = String::new();
    let flush = |run: &mut String, out: &mut String| {
        if run.len() >= NUMBER_MIN_DIGITS {
            out.push_str("***");
            out.push_str(&run[run.len() - 2..]);
        } else {
            out.push_str(run);
        }
        run.clear();
    };
    for c in text.chars() {
        if c.is_ascii_digit() {
            run.push(c);
        } else {
            flush(&mut run, &mut out);
            out.push(c);
        }
    }
    flush(&mut run, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_debug_and_serialize_never_show_the_value() {
        let s = Secret::new("tok-123");
        assert_eq!(format!("{s:?}"), "<redacted>");
        assert_eq!(serde_json::to_string(&s).unwrap(), "\"<redacted>\"");
        assert_eq!(format!("{:?}", Secret::default()), "<empty>");
    }

    #[test]
    fn secret_accepts_numbers_from_layered_env_config() {
        let s: Secret = serde_json::from_str("1234567890").unwrap();
        assert_eq!(s.expose(), "1234567890");
    }

    #[test]
    fn phone_numbers_parsed_as_numbers_by_layered_config_get_their_plus_back() {
        #[derive(Deserialize)]
        struct T {
            #[serde(default, deserialize_with = "lenient_e164_option")]
            from: Option<String>,
        }
        let t: T = serde_json::from_str(r#"{"from": 15005550006}"#).unwrap();
        assert_eq!(t.from.as_deref(), Some("+15005550006"));
        let t: T = serde_json::from_str(r#"{"from": "Acme"}"#).unwrap();
        assert_eq!(t.from.as_deref(), Some("Acme"));
        let t: T = serde_json::from_str("{}").unwrap();
        assert_eq!(t.from, None);
    }

    #[test]
    fn redactor_hides_secrets_numbers_and_keeps_error_codes() {
        let r = Redactor::new().hide("0429").hide("AUTHTOKEN42");
        let text = "(#131026) code 0429 to +34600600600 with AUTHTOKEN42\n";
        let out = r.redact(text);
        assert_eq!(out, "(#131026) code <redacted> to +***00 with <redacted>");
    }

    #[cfg(feature = "http")]
    #[test]
    fn send_errors_lose_the_code_the_destination_and_the_credentials() {
        let message = crate::OutboundMessage {
            to: "+34600600600".into(),
            country: None,
            channel: crate::Channel::Sms,
            code: crate::OneTimeCode::new("4829"),
            brand: "Acme".into(),
            locale: "en".into(),
            validity: std::time::Duration::from_secs(300),
            reference: "r".into(),
            webotp_host: None,
        };
        let err = crate::DeliveryError::fallback("p", "4829 to +34600600600 (34600600600) by tok");
        let err = redact_send_error(err, &message, &["tok", ""]);
        assert_eq!(
            err.message,
            "<redacted> to <redacted> (<redacted>) by <redacted>"
        );
    }

    #[test]
    fn redactor_caps_length_on_char_boundaries() {
        let long = "é".repeat(1000);
        let out = Redactor::new().redact(&long);
        assert_eq!(out.chars().count(), MAX_MESSAGE_CHARS);
    }
}
