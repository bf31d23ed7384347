//! The second capability beside sending: live line intelligence. A [`LineLookup`] asks a
//! provider what a number is *now* — its line type, its current carrier (after porting), its
//! mobile country and network codes, and when its SIM was last swapped — where the static
//! numbering-plan data cannot tell (every US and Canadian number is "fixed line or mobile").
//!
//! Failures use the same classes as delivery ([`DeliveryError`], read through
//! [`FailureClass`]): `Transient` (rate limit, 5xx, timeout), `Config` (credentials, a package
//! not enabled on the account), `Permanent` (the provider says the number does not exist). The
//! engine never lets a failed lookup block a send unless the application asks it to.

use std::future::Future;

use serde::{Deserialize, Serialize};

use crate::{BoxFuture, DeliveryError};

/// A lookup failure: the same classified error as a delivery failure.
pub type LookupError = DeliveryError;

/// What kind of line a number is, as a lookup provider reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LineKind {
    Mobile,
    Landline,
    /// VoIP tied to a subscriber's address (a cable operator's home phone): not a throw-away
    /// number, but no SIM.
    FixedVoip,
    /// VoIP obtainable online without an address (Google Voice, app numbers): virtual.
    NonFixedVoip,
    TollFree,
    Premium,
    SharedCost,
    Personal,
    Pager,
    Voicemail,
    Uan,
    Unknown,
}

impl LineKind {
    /// Twilio Lookup v2 `line_type_intelligence.type`.
    pub fn from_twilio(s: &str) -> LineKind {
        match s {
            "mobile" => LineKind::Mobile,
            "landline" => LineKind::Landline,
            "fixedVoip" => LineKind::FixedVoip,
            "nonFixedVoip" => LineKind::NonFixedVoip,
            "tollFree" => LineKind::TollFree,
            "premium" => LineKind::Premium,
            "sharedCost" => LineKind::SharedCost,
            "personal" => LineKind::Personal,
            "pager" => LineKind::Pager,
            "voicemail" => LineKind::Voicemail,
            "uan" => LineKind::Uan,
            _ => LineKind::Unknown,
        }
    }

    /// Vonage Number Insight `current_carrier.network_type`.
    pub fn from_vonage(s: &str) -> LineKind {
        match s {
            "mobile" => LineKind::Mobile,
            "landline" => LineKind::Landline,
            "landline_premium" => LineKind::Premium,
            "landline_tollfree" => LineKind::TollFree,
            // Vonage's "virtual" is a number not bound to a line: non-fixed VoIP.
            "virtual" => LineKind::NonFixedVoip,
            "pager" => LineKind::Pager,
            _ => LineKind::Unknown,
        }
    }
}

/// When the number's SIM was last swapped, as far as the provider knows.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SimSwap {
    /// The date of the last swap (Unix milliseconds), where the operator discloses it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_swap_ms: Option<i64>,
    /// The period the provider answered for, in seconds (Twilio's `swapped_period`, `PT48H`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub period_secs: Option<u64>,
    /// Whether a swap happened within `period_secs`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub swapped_in_period: Option<bool>,
}

impl SimSwap {
    /// Whether the SIM was swapped within `window_ms` before `now_ms`. A known date decides;
    /// without one, a swap reported within a period no longer than the window counts (a swap
    /// "within 48 hours" is within 7 days). Unknown is not a swap.
    pub fn swapped_within(&self, now_ms: i64, window_ms: i64) -> bool {
        if let Some(at) = self.last_swap_ms {
            return now_ms.saturating_sub(at) <= window_ms;
        }
        match (self.swapped_in_period, self.period_secs) {
            (Some(true), Some(p)) => {
                i64::try_from(p.saturating_mul(1000)).unwrap_or(i64::MAX) <= window_ms
            }
            _ => false,
        }
    }
}

/// What a lookup learned about one number. Every field is optional: providers answer what
/// their coverage allows.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LineFacts {
    /// The provider that answered (`twilio`, `vonage`).
    pub provider: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub line: Option<LineKind>,
    /// The carrier serving the number now (after any porting).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub carrier: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mobile_country_code: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mobile_network_code: Option<String>,
    /// The carrier the number was first allocated to, when the provider tells.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub original_carrier: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ported: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub roaming: Option<bool>,
    /// Whether the handset is reachable now (Vonage `reachable`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reachable: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sim_swap: Option<SimSwap>,
}

/// What to ask for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LookupRequest<'a> {
    /// The number, E.164.
    pub e164: &'a str,
    /// Line type and carrier.
    pub line: bool,
    /// SIM-swap status.
    pub sim_swap: bool,
}

/// What a lookup provider can answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LookupCapabilities {
    pub line: bool,
    pub sim_swap: bool,
}

/// A line-intelligence backend: one required async primitive, [`LineLookup::lookup`].
pub trait LineLookup: Send + Sync + 'static {
    /// The name config uses (`twilio`, `vonage`).
    fn name(&self) -> &str;

    fn capabilities(&self) -> LookupCapabilities;

    /// Looks one number up. Only what `request` asks for (and the provider can answer) is
    /// requested, so nothing is paid twice.
    fn lookup(
        &self,
        request: &LookupRequest<'_>,
    ) -> impl Future<Output = Result<LineFacts, LookupError>> + Send;
}

/// Object-safe twin of [`LineLookup`], for the provider chosen from config at runtime.
pub trait DynLineLookup: Send + Sync + 'static {
    fn name(&self) -> &str;
    fn capabilities(&self) -> LookupCapabilities;
    fn lookup_boxed<'a>(
        &'a self,
        request: &'a LookupRequest<'a>,
    ) -> BoxFuture<'a, Result<LineFacts, LookupError>>;
}

impl<L: LineLookup> DynLineLookup for L {
    fn name(&self) -> &str {
        LineLookup::name(self)
    }

    fn capabilities(&self) -> LookupCapabilities {
        LineLookup::capabilities(self)
    }

    fn lookup_boxed<'a>(
        &'a self,
        request: &'a LookupRequest<'a>,
    ) -> BoxFuture<'a, Result<LineFacts, LookupError>> {
        Box::pin(LineLookup::lookup(self, request))
    }
}

/// Lookup adapters compiled into this build, by config name.
pub fn lookup_names() -> Vec<&'static str> {
    [
        ("twilio", cfg!(feature = "twilio")),
        ("vonage", cfg!(feature = "vonage")),
    ]
    .into_iter()
    .filter_map(|(name, built)| built.then_some(name))
    .collect()
}

/// Builds the lookup adapter `name` from its table (`[lookup.twilio]`). The error names the
/// key relative to the table (empty for the name itself).
pub fn build_lookup(
    name: &str,
    table: &crate::ProviderTable,
    context: &crate::ProviderContext,
) -> Result<std::sync::Arc<dyn DynLineLookup>, crate::config::FieldError> {
    let _ = (table, context);
    match name {
        #[cfg(feature = "twilio")]
        "twilio" => crate::twilio_lookup::TwilioLookup::from_table(table, context),
        #[cfg(feature = "vonage")]
        "vonage" => crate::vonage_insight::VonageInsight::from_table(table, context),
        _ => Err(crate::config::FieldError::new(
            "",
            format!(
                "unknown lookup provider {:?} (known in this build: {})",
                name.chars().take(32).collect::<String>(),
                lookup_names().join(", ")
            ),
        )),
    }
}

/// An ISO 8601 duration of hours, days or weeks as Twilio writes `swapped_period` (`PT48H`,
/// `P7D`), in seconds. Anything else is `None`.
pub fn iso8601_period_secs(s: &str) -> Option<u64> {
    let rest = s.strip_prefix('P')?;
    let (date, time) = rest.split_once('T').unwrap_or((rest, ""));
    let mut secs: u64 = 0;
    let mut take = |part: &str, units: &[(char, u64)]| -> Option<()> {
        let mut digits = String::new();
        for c in part.chars() {
            if c.is_ascii_digit() {
                digits.push(c);
                continue;
            }
            let (_, mult) = units.iter().find(|(u, _)| *u == c)?;
            let n: u64 = digits.parse().ok()?;
            secs = secs.checked_add(n.checked_mul(*mult)?)?;
            digits.clear();
        }
        digits.is_empty().then_some(())
    };
    take(date, &[('W', 604_800), ('D', 86_400)])?;
    take(time, &[('H', 3_600), ('M', 60), ('S', 1)])?;
    (rest != "T" && !rest.is_empty()).then_some(secs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn twilio_periods_parse_to_seconds_and_garbage_does_not() {
        assert_eq!(iso8601_period_secs("PT48H"), Some(172_800));
        assert_eq!(iso8601_period_secs("PT15M"), Some(900));
        assert_eq!(iso8601_period_secs("P7D"), Some(604_800));
        assert_eq!(iso8601_period_secs("P1W"), Some(604_800));
        assert_eq!(iso8601_period_secs("P1DT12H"), Some(129_600));
        for bad in [
            "",
            "P",
            "PT",
            "48H",
            "PTH",
            "PT48",
            "PT48X",
            "P99999999999999999999D",
        ] {
            assert_eq!(iso8601_period_secs(bad), None, "{bad}");
        }
    }

    #[test]
    fn a_swap_counts_within_the_window_by_date_or_by_a_shorter_period() {
        let day = 86_400_000;
        let now = 100 * day;
        let dated = SimSwap {
            last_swap_ms: Some(now - 2 * day),
            ..SimSwap::default()
        };
        assert!(dated.swapped_within(now, 7 * day));
        assert!(!dated.swapped_within(now, day));
        let period = SimSwap {
            last_swap_ms: None,
            period_secs: Some(172_800),
            swapped_in_period: Some(true),
        };
        assert!(period.swapped_within(now, 7 * day));
        assert!(!period.swapped_within(now, day));
        let not = SimSwap {
            swapped_in_period: Some(false),
            ..period
        };
        assert!(!not.swapped_within(now, 7 * day));
        assert!(!SimSwap::default().swapped_within(now, 7 * day));
    }
}
