//! The risks switchboard reports, their wire names and descriptions.

use serde::{Deserialize, Serialize};

/// A risk a phone report can carry. Wire form: SCREAMING_SNAKE.
#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    Hash,
    Serialize,
    Deserialize,
    PartialOrd,
    Ord,
    utoipa::ToSchema,
)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Risk {
    VerificationCodeAttemptsExceeded,
    HighRiskPhoneNumber,
    PhoneNumberInBlocklist,
    DisposableNumberDetected,
    VoipNumberDetected,
    DuplicatedPhoneNumber,
    /// A live lookup saw the number's SIM swapped recently: the SMS may reach someone else.
    SimSwapDetected,
}

impl Risk {
    pub const ALL: [Risk; 7] = [
        Risk::VerificationCodeAttemptsExceeded,
        Risk::HighRiskPhoneNumber,
        Risk::PhoneNumberInBlocklist,
        Risk::DisposableNumberDetected,
        Risk::VoipNumberDetected,
        Risk::DuplicatedPhoneNumber,
        Risk::SimSwapDetected,
    ];

    /// The wire name (`HIGH_RISK_PHONE_NUMBER`).
    pub const fn as_str(self) -> &'static str {
        match self {
            Risk::VerificationCodeAttemptsExceeded => "VERIFICATION_CODE_ATTEMPTS_EXCEEDED",
            Risk::HighRiskPhoneNumber => "HIGH_RISK_PHONE_NUMBER",
            Risk::PhoneNumberInBlocklist => "PHONE_NUMBER_IN_BLOCKLIST",
            Risk::DisposableNumberDetected => "DISPOSABLE_NUMBER_DETECTED",
            Risk::VoipNumberDetected => "VOIP_NUMBER_DETECTED",
            Risk::DuplicatedPhoneNumber => "DUPLICATED_PHONE_NUMBER",
            Risk::SimSwapDetected => "SIM_SWAP_DETECTED",
        }
    }

    /// Whether a workflow may choose the action; the others always decline.
    pub const fn is_configurable(self) -> bool {
        matches!(
            self,
            Risk::DisposableNumberDetected
                | Risk::VoipNumberDetected
                | Risk::DuplicatedPhoneNumber
                | Risk::SimSwapDetected
        )
    }

    pub const fn short_description(self) -> &'static str {
        match self {
            Risk::VerificationCodeAttemptsExceeded => "Verification code attempts exceeded",
            Risk::HighRiskPhoneNumber => "High-risk phone number",
            Risk::PhoneNumberInBlocklist => "Phone number in blocklist",
            Risk::DisposableNumberDetected => "Disposable phone number detected",
            Risk::VoipNumberDetected => "VoIP phone number detected",
            Risk::DuplicatedPhoneNumber => "Duplicated phone number",
            Risk::SimSwapDetected => "Recent SIM swap detected",
        }
    }

    pub const fn long_description(self) -> &'static str {
        match self {
            Risk::VerificationCodeAttemptsExceeded => {
                "The user entered a wrong verification code more times than the workflow allows; \
                 the verification is declined and cannot be completed with this code."
            }
            Risk::HighRiskPhoneNumber => {
                "The phone number is judged high risk: it is a premium-rate or shared-cost number, \
                 or it falls in a range known for traffic pumping, so no code is sent to it."
            }
            Risk::PhoneNumberInBlocklist => {
                "The phone number is on this application's blocklist, so it cannot be verified."
            }
            Risk::DisposableNumberDetected => {
                "The phone number belongs to a temporary or throw-away number service, which \
                 anyone can use to receive codes."
            }
            Risk::VoipNumberDetected => {
                "The phone number is a VoIP or virtual number, not tied to a SIM card and easy \
                 to obtain in bulk."
            }
            Risk::DuplicatedPhoneNumber => {
                "The phone number was already verified for another user (a different vendor_data) \
                 of this application."
            }
            Risk::SimSwapDetected => {
                "The number's SIM card was swapped recently, as reported by a live carrier \
                 lookup: the code may reach whoever took over the number. NIST SP 800-63B-4 asks \
                 verifiers to consider SIM swap and porting before trusting a code sent by SMS."
            }
        }
    }
}

impl std::fmt::Display for Risk {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}
