//! Adapter tests, one binary: wiremock emulations of each real API at the wire level, one
//! conformance suite every adapter runs, and per-adapter tests for each documented error.

mod conformance;
mod lookup;
mod spec_conformance;
mod support;

#[cfg(feature = "infobip")]
mod infobip;
#[cfg(feature = "meta_whatsapp")]
mod meta_whatsapp;
#[cfg(feature = "telegram")]
mod telegram;
#[cfg(feature = "twilio")]
mod twilio;
#[cfg(feature = "twilio")]
mod twilio_official;
#[cfg(feature = "vonage")]
mod vonage;
