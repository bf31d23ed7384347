//! The provider boundary of switchboard: the [`Provider`] trait, [`Channel`], [`Capabilities`],
//! the classified [`DeliveryError`], delivery receipts, the provider [`registry`], the built-in
//! `console` and `sandbox` providers and, one cargo feature each, the real provider adapters.
//!
//! A user who writes their own provider depends only on this crate (with no default features).
#![forbid(unsafe_code)]

mod channel;
mod config;
pub mod console;
mod error;
pub mod lookup;
mod message;
mod provider;
mod receipt;
pub mod recent;
pub mod registry;
pub mod sandbox;
mod secret;
pub mod text;

#[cfg(feature = "http")]
pub mod http;
#[cfg(feature = "infobip")]
pub mod infobip;
#[cfg(feature = "meta_whatsapp")]
pub mod meta_whatsapp;
#[cfg(feature = "telegram")]
pub mod telegram;
#[cfg(any(
    feature = "twilio",
    feature = "telegram",
    feature = "vonage",
    feature = "infobip"
))]
mod timestamp;
#[cfg(feature = "twilio")]
pub mod twilio;
#[cfg(feature = "twilio")]
pub mod twilio_lookup;
#[cfg(feature = "vonage")]
pub mod vonage;
#[cfg(feature = "vonage")]
pub mod vonage_app;
#[cfg(feature = "vonage")]
pub mod vonage_insight;
#[cfg(any(feature = "meta_whatsapp", feature = "vonage"))]
mod whatsapp;

pub use channel::{Channel, UnknownChannel};
pub use config::{ProviderContext, ProviderTable, RegistryError};
pub use console::ConsoleProvider;
pub use error::{DeliveryError, FailureClass};
pub use lookup::{
    DynLineLookup, LineFacts, LineKind, LineLookup, LookupCapabilities, LookupError, LookupRequest,
    SimSwap,
};
pub use message::{Delivery, OneTimeCode, OutboundMessage};
pub use provider::{BoxFuture, Capabilities, Countries, DynProvider, Provider};
pub use receipt::{DeliveryReceipt, InboundRequest, ReceiptError, ReceiptFailure, ReceiptStatus};
pub use recent::RecordedMessage;
pub use registry::Registry;
pub use sandbox::{SandboxNumbers, SandboxProvider};
pub use secret::{
    MAX_MESSAGE_CHARS, Redactor, Secret, lenient_e164_option, lenient_option, lenient_string,
};
