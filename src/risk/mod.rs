//! Risk screening: which risks a number carries, and what the workflow does about them.

mod catalogue;

use serde::{Deserialize, Serialize};

pub use catalogue::Risk;

use crate::phone::{DisposableList, PhoneInfo};

/// What a workflow does when a configurable risk matches.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Action {
    /// Approve anyway; the warning is informational.
    Approve,
    /// A right code ends `In Review` instead of `Approved`.
    Review,
    /// Refuse: no code is sent, and a check ends `Declined`.
    Decline,
}

/// `log_type` of a warning.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum LogType {
    Error,
    Warning,
    Information,
}

impl LogType {
    /// The wire spelling (the same as its JSON form).
    pub const fn as_str(self) -> &'static str {
        match self {
            LogType::Error => "error",
            LogType::Warning => "warning",
            LogType::Information => "information",
        }
    }
}

/// One risk in a report, with the severity the workflow gives it.
#[derive(Clone, Debug, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Warning {
    pub risk: Risk,
    pub log_type: LogType,
    pub short_description: &'static str,
    pub long_description: &'static str,
    /// The figure behind the risk, when a rule measured one (a fraud rule's count, window and
    /// budget).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub additional_data: Option<crate::fraud::Figure>,
}

/// A workflow's actions for the configurable risks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RiskPolicy {
    pub disposable: Action,
    pub voip: Action,
    pub duplicated: Action,
    /// A SIM swapped within `sim_swap_days` (a live lookup told it).
    #[serde(default = "default_sim_swap")]
    pub sim_swap: Action,
    /// How recent a SIM swap must be to count, in days.
    #[serde(default = "default_sim_swap_days")]
    pub sim_swap_days: u32,
}

fn default_sim_swap() -> Action {
    Action::Review
}

fn default_sim_swap_days() -> u32 {
    7
}

impl Default for RiskPolicy {
    fn default() -> Self {
        RiskPolicy {
            disposable: Action::Decline,
            voip: Action::Review,
            duplicated: Action::Review,
            sim_swap: default_sim_swap(),
            sim_swap_days: default_sim_swap_days(),
        }
    }
}

impl RiskPolicy {
    /// The action for `risk`; the risks that are not configurable always decline.
    pub fn action(&self, risk: Risk) -> Action {
        match risk {
            Risk::DisposableNumberDetected => self.disposable,
            Risk::VoipNumberDetected => self.voip,
            Risk::DuplicatedPhoneNumber => self.duplicated,
            Risk::SimSwapDetected => self.sim_swap,
            Risk::VerificationCodeAttemptsExceeded
            | Risk::HighRiskPhoneNumber
            | Risk::PhoneNumberInBlocklist => Action::Decline,
        }
    }

    /// The warning for `risk`, its `log_type` following the action.
    pub fn warning(&self, risk: Risk) -> Warning {
        let log_type = match self.action(risk) {
            Action::Decline => LogType::Error,
            Action::Review => LogType::Warning,
            Action::Approve => LogType::Information,
        };
        Warning {
            risk,
            log_type,
            short_description: risk.short_description(),
            long_description: risk.long_description(),
            additional_data: None,
        }
    }

    /// The strongest action among `risks` (`Approve` when none).
    pub fn decide(&self, risks: &[Risk]) -> Action {
        risks
            .iter()
            .map(|r| self.action(*r))
            .max()
            .unwrap_or(Action::Approve)
    }

    /// The first risk that declines, for a `Blocked` reason.
    pub fn declining(&self, risks: &[Risk]) -> Option<Risk> {
        risks
            .iter()
            .copied()
            .find(|r| self.action(*r) == Action::Decline)
    }
}

/// Offline risk data loaded from config: disposable numbers and pumping-prone prefixes.
#[derive(Clone, Debug, Default)]
pub struct RiskData {
    pub disposable: DisposableList,
    /// E.164 prefixes (`+88213`) of ranges known for traffic pumping.
    pub high_risk_prefixes: Vec<String>,
}

impl RiskData {
    pub fn is_disposable(&self, info: &PhoneInfo) -> bool {
        self.disposable.contains(&info.e164)
    }

    pub fn is_high_risk(&self, info: &PhoneInfo) -> bool {
        info.effective_type().is_premium_or_shared_cost()
            || self
                .high_risk_prefixes
                .iter()
                .any(|p| info.e164.starts_with(p.as_str()))
    }
}

/// Facts about a number beyond its own digits, gathered from the store.
#[derive(Clone, Copy, Debug, Default)]
pub struct Facts {
    /// Judged high risk by something other than the number's range (the sandbox's high-risk
    /// number, a provider's fraud block).
    pub high_risk: bool,
    pub blocked: bool,
    pub duplicated: bool,
    pub attempts_exceeded: bool,
    /// A live lookup saw a SIM swap within the workflow's period.
    pub sim_swapped: bool,
}

/// The risks `info` carries, in catalogue order.
pub fn screen(info: &PhoneInfo, data: &RiskData, facts: Facts) -> Vec<Risk> {
    let mut risks = Vec::new();
    if facts.attempts_exceeded {
        risks.push(Risk::VerificationCodeAttemptsExceeded);
    }
    if facts.high_risk || data.is_high_risk(info) {
        risks.push(Risk::HighRiskPhoneNumber);
    }
    if facts.blocked {
        risks.push(Risk::PhoneNumberInBlocklist);
    }
    if data.is_disposable(info) {
        risks.push(Risk::DisposableNumberDetected);
    }
    if info.is_virtual() {
        risks.push(Risk::VoipNumberDetected);
    }
    if facts.duplicated {
        risks.push(Risk::DuplicatedPhoneNumber);
    }
    if facts.sim_swapped {
        risks.push(Risk::SimSwapDetected);
    }
    risks
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn risks_serialise_in_screaming_snake_case() {
        for risk in Risk::ALL {
            let json = serde_json::to_string(&risk).unwrap();
            assert_eq!(json, format!("\"{}\"", risk.as_str()));
        }
    }

    #[test]
    fn only_disposable_voip_duplicated_and_sim_swap_are_configurable() {
        let lenient = RiskPolicy {
            disposable: Action::Approve,
            voip: Action::Approve,
            duplicated: Action::Approve,
            sim_swap: Action::Approve,
            sim_swap_days: 7,
        };
        for risk in Risk::ALL {
            let expected = if risk.is_configurable() {
                Action::Approve
            } else {
                Action::Decline
            };
            assert_eq!(lenient.action(risk), expected, "{risk}");
        }
    }

    #[test]
    fn log_type_follows_the_workflow_action() {
        let policy = RiskPolicy::default();
        assert_eq!(
            policy.warning(Risk::VoipNumberDetected).log_type,
            LogType::Warning
        );
        assert_eq!(
            policy.warning(Risk::PhoneNumberInBlocklist).log_type,
            LogType::Error
        );
        let lenient = RiskPolicy {
            voip: Action::Approve,
            ..policy
        };
        assert_eq!(
            lenient.warning(Risk::VoipNumberDetected).log_type,
            LogType::Information
        );
    }

    #[test]
    fn decide_takes_the_strongest_action() {
        let policy = RiskPolicy::default();
        assert_eq!(policy.decide(&[]), Action::Approve);
        assert_eq!(policy.decide(&[Risk::VoipNumberDetected]), Action::Review);
        assert_eq!(
            policy.decide(&[Risk::VoipNumberDetected, Risk::HighRiskPhoneNumber]),
            Action::Decline
        );
        assert_eq!(
            policy.declining(&[Risk::VoipNumberDetected, Risk::HighRiskPhoneNumber]),
            Some(Risk::HighRiskPhoneNumber)
        );
    }
}
