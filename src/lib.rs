//! switchboard: a multi-channel one-time-code engine.
//!
//! [`Engine`] validates a phone number, learns its line, screens its risks, picks the channel
//! and provider by country and cost, falls back when delivery fails, and checks codes against
//! strict attempt, resend and validity limits, returning a [`PhoneReport`].
#![forbid(unsafe_code)]

pub mod bulk;
pub mod clock;
pub mod code;
pub mod config;
mod engine;
mod error;
pub mod events;
pub mod fraud;
pub mod hosted;
pub mod outcomes;
pub mod phone;
pub mod report;
pub mod risk;
pub mod routing;
pub mod server;
pub mod store;

pub use config::Config;
pub use engine::{
    BuildError, CheckRequest, Engine, EngineBuilder, ExpirySweeper, GeoTable, IdempotentSend,
    ReceiptEffect, ReviewVerdict, RouteStats, RoutesReport, SendKey, SendOptions, SendRequest,
    Signals, Verification,
};
pub use error::Error;
pub use report::{
    CheckOutcome, CheckStatus, PhoneReport, SendOutcome, SendStatus, VerificationStatus,
};
pub use switchboard_providers as providers;
