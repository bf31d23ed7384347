//! Hosted verification: workflows (stored, per application), sessions (one end user's
//! verification through the hosted page) and what the page needs from the engine. The page
//! itself is served by the sidecar (`server::hosted`); everything here goes through the
//! engine's own send and check, so limits, fraud screen and records are the API's.

pub mod sessions;
pub mod workflows;

pub use sessions::{
    Created, Decision, NewSession, Progress, Session, SessionMatch, SessionStatus, is_http_url,
};
pub use workflows::{
    DEFAULT_BRAND_COLOR, LOCALES, Resolved, RiskActions, WorkflowSettings, WorkflowView,
};
