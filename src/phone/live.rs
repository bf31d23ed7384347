//! Live line facts on top of the static ones: what a lookup provider said about a number, and
//! what that changes in the report (carrier name and type, `is_virtual`, `carrier.source`) and
//! in routing (the line type the planner gates on). The engine decides when to look up
//! (`engine::lookup`); this module only reads the answer.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use switchboard_providers::{LineFacts, LineKind};

use super::{LineType, NumberType, PhoneInfo};

/// Where the report's `carrier` comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum CarrierSource {
    /// A live lookup answered (cached within its TTL).
    Lookup,
    /// libphonenumber's ranges: the carrier the range was allocated to.
    Static,
}

impl CarrierSource {
    pub const fn as_str(self) -> &'static str {
        match self {
            CarrierSource::Lookup => "lookup",
            CarrierSource::Static => "static",
        }
    }
}

/// The number type a live line kind stands for (`None`: the lookup could not tell).
fn number_type_of(kind: LineKind) -> Option<NumberType> {
    Some(match kind {
        LineKind::Mobile => NumberType::Mobile,
        LineKind::Landline => NumberType::FixedLine,
        LineKind::FixedVoip | LineKind::NonFixedVoip => NumberType::Voip,
        LineKind::TollFree => NumberType::TollFree,
        LineKind::Premium => NumberType::PremiumRate,
        LineKind::SharedCost => NumberType::SharedCost,
        LineKind::Personal => NumberType::PersonalNumber,
        LineKind::Pager => NumberType::Pager,
        LineKind::Voicemail => NumberType::Voicemail,
        LineKind::Uan => NumberType::Uan,
        LineKind::Unknown => return None,
    })
}

impl PhoneInfo {
    /// The same number with what a lookup said about its line.
    pub fn with_live(mut self, facts: LineFacts) -> Self {
        self.live = Some(Arc::new(facts));
        self
    }

    /// The live facts, when a lookup answered.
    pub fn live(&self) -> Option<&LineFacts> {
        self.live.as_deref()
    }

    fn live_kind(&self) -> Option<LineKind> {
        self.live().and_then(|f| f.line)
    }

    /// The line type routing gates on and risks read: the live one when a lookup told it,
    /// libphonenumber's otherwise.
    pub fn effective_type(&self) -> NumberType {
        self.live_kind()
            .and_then(number_type_of)
            .unwrap_or(self.number_type)
    }

    /// The report's `carrier.type`.
    pub fn line_type(&self) -> LineType {
        self.effective_type().line_type()
    }

    /// Whether the number is a VoIP or personal (follow-me) number rather than a line tied to
    /// a SIM or a place. A lookup decides when it answered: non-fixed VoIP is virtual, fixed
    /// VoIP (tied to a subscriber's address) is not. See [`NumberType::is_virtual`].
    pub fn is_virtual(&self) -> bool {
        match self.live_kind() {
            Some(LineKind::NonFixedVoip | LineKind::Personal) => true,
            Some(LineKind::Unknown) | None => self.number_type.is_virtual(),
            Some(_) => false,
        }
    }

    /// The carrier serving the number: the lookup's current carrier (after porting) when it
    /// named one, the range's original carrier otherwise.
    pub fn carrier(&self) -> Option<&str> {
        self.live()
            .and_then(|f| f.carrier.as_deref())
            .or(self.carrier_name)
    }

    /// Where `carrier` comes from: `Lookup` when a lookup told the line type or the carrier.
    pub fn carrier_source(&self) -> CarrierSource {
        match self.live() {
            Some(f) if f.line.is_some_and(|k| k != LineKind::Unknown) || f.carrier.is_some() => {
                CarrierSource::Lookup
            }
            _ => CarrierSource::Static,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn us() -> PhoneInfo {
        super::super::parse("+14155552671", None).unwrap()
    }

    fn facts(kind: LineKind, carrier: Option<&str>) -> LineFacts {
        LineFacts {
            provider: "twilio".into(),
            line: Some(kind),
            carrier: carrier.map(str::to_owned),
            ..LineFacts::default()
        }
    }

    #[test]
    fn static_facts_stay_when_no_lookup_answered() {
        let info = us();
        assert_eq!(info.line_type(), LineType::Unknown);
        assert_eq!(info.carrier_source(), CarrierSource::Static);
        assert_eq!(info.effective_type(), NumberType::FixedLineOrMobile);
    }

    #[test]
    fn live_line_kinds_decide_type_virtual_and_routing() {
        let cases = [
            (
                LineKind::NonFixedVoip,
                LineType::Voip,
                true,
                NumberType::Voip,
            ),
            (LineKind::FixedVoip, LineType::Voip, false, NumberType::Voip),
            (
                LineKind::Landline,
                LineType::Landline,
                false,
                NumberType::FixedLine,
            ),
            (
                LineKind::Mobile,
                LineType::Mobile,
                false,
                NumberType::Mobile,
            ),
            (
                LineKind::Unknown,
                LineType::Unknown,
                false,
                NumberType::FixedLineOrMobile,
            ),
        ];
        for (kind, line, virt, routing) in cases {
            let info = us().with_live(facts(kind, Some("Carrier X")));
            assert_eq!(info.line_type(), line, "{kind:?}");
            assert_eq!(info.is_virtual(), virt, "{kind:?}");
            assert_eq!(info.effective_type(), routing, "{kind:?}");
            assert_eq!(info.carrier(), Some("Carrier X"));
            assert_eq!(info.carrier_source(), CarrierSource::Lookup);
        }
    }

    #[test]
    fn a_ported_number_reports_its_current_carrier() {
        let es = super::super::parse("+34600600600", None).unwrap();
        assert_eq!(es.carrier(), Some("Vodafone"));
        let ported = es.with_live(facts(LineKind::Mobile, Some("Orange")));
        assert_eq!(ported.carrier(), Some("Orange"));
    }
}
