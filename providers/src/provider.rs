//! The one boundary every delivery backend implements.

use std::future::Future;
use std::pin::Pin;

use crate::{
    Channel, Delivery, DeliveryError, DeliveryReceipt, InboundRequest, OutboundMessage,
    ReceiptError,
};

/// Which destinations a provider serves.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Countries {
    /// Every destination.
    All,
    /// Only these ISO 3166-1 alpha-2 regions.
    Only(Vec<String>),
}

/// What a provider declares it can do. The router and the conformance tests read only this.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Capabilities {
    pub channels: Vec<Channel>,
    pub countries: Countries,
    /// Whether the provider reports delivery later (status callbacks / receipts).
    pub delivery_receipts: bool,
}

impl Capabilities {
    /// All destinations on the given channels, without receipts.
    pub fn channels(channels: &[Channel]) -> Self {
        Capabilities {
            channels: channels.to_vec(),
            countries: Countries::All,
            delivery_receipts: false,
        }
    }

    /// True when this provider can carry `channel` to `country` (unknown country: any
    /// provider that serves all destinations).
    pub fn serves(&self, channel: Channel, country: Option<&str>) -> bool {
        self.channels.contains(&channel)
            && match (&self.countries, country) {
                (Countries::All, _) => true,
                (Countries::Only(list), Some(c)) => list.iter().any(|x| x.eq_ignore_ascii_case(c)),
                (Countries::Only(_), None) => false,
            }
    }
}

/// A delivery backend: one required async primitive, [`Provider::send`].
///
/// `send` either hands the message to the provider (`Ok`, with the provider's message id) or
/// fails with a [`DeliveryError`] whose class was decided here, at the boundary.
pub trait Provider: Send + Sync + 'static {
    /// The name routes use for this provider (`twilio`, `console`).
    fn name(&self) -> &str;

    /// What this provider can do.
    fn capabilities(&self) -> Capabilities;

    /// Delivers one message.
    fn send(
        &self,
        message: &OutboundMessage,
    ) -> impl Future<Output = Result<Delivery, DeliveryError>> + Send;

    /// True when this provider can carry `channel` to `country`.
    fn serves(&self, channel: Channel, country: Option<&str>) -> bool {
        self.capabilities().serves(channel, country)
    }

    /// Verifies and parses a delivery-status callback. The signature is checked before
    /// anything else is read; a refused callback records nothing.
    fn parse_receipts(
        &self,
        request: &InboundRequest,
    ) -> Result<Vec<DeliveryReceipt>, ReceiptError> {
        let _ = request;
        Err(ReceiptError::Unsupported)
    }

    /// Answers a provider's webhook subscription handshake (Meta's GET `hub.challenge`): the
    /// text to reply with, once the request proved it knows our verify token.
    fn verify_subscription(&self, request: &InboundRequest) -> Result<String, ReceiptError> {
        let _ = request;
        Err(ReceiptError::Unsupported)
    }

    /// The longest one HTTP request to this provider may take (`None`: not an HTTP provider).
    /// The engine refuses a provider whose timeout exceeds the attempt timeout.
    fn request_timeout(&self) -> Option<std::time::Duration> {
        None
    }

    /// Whether [`Provider::confirm_approval`] does anything: the engine then remembers which
    /// message carried each code (one more store write per send through this provider).
    fn confirms_approvals(&self) -> bool {
        false
    }

    /// Told after the code of message `provider_message_id` was approved, for providers that
    /// account conversions (Telegram's `checkVerificationStatus`). Best effort: the engine
    /// runs it off the request path and ignores its failure.
    fn confirm_approval(&self, provider_message_id: &str) -> impl Future<Output = ()> + Send {
        let _ = provider_message_id;
        async {}
    }
}

/// A boxed future, for the object-safe twin.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Object-safe twin of [`Provider`], for providers chosen from config at runtime.
/// Implemented for every `Provider`; use `Arc<dyn DynProvider>`.
pub trait DynProvider: Send + Sync + 'static {
    fn name(&self) -> &str;
    fn capabilities(&self) -> Capabilities;
    fn send_boxed<'a>(
        &'a self,
        message: &'a OutboundMessage,
    ) -> BoxFuture<'a, Result<Delivery, DeliveryError>>;
    fn parse_receipts(
        &self,
        request: &InboundRequest,
    ) -> Result<Vec<DeliveryReceipt>, ReceiptError>;
    fn verify_subscription(&self, request: &InboundRequest) -> Result<String, ReceiptError>;
    fn request_timeout(&self) -> Option<std::time::Duration>;
    fn confirms_approvals(&self) -> bool;
    fn confirm_approval_boxed<'a>(&'a self, provider_message_id: &'a str) -> BoxFuture<'a, ()>;
}

impl<P: Provider> DynProvider for P {
    fn name(&self) -> &str {
        Provider::name(self)
    }

    fn capabilities(&self) -> Capabilities {
        Provider::capabilities(self)
    }

    fn send_boxed<'a>(
        &'a self,
        message: &'a OutboundMessage,
    ) -> BoxFuture<'a, Result<Delivery, DeliveryError>> {
        Box::pin(Provider::send(self, message))
    }

    fn parse_receipts(
        &self,
        request: &InboundRequest,
    ) -> Result<Vec<DeliveryReceipt>, ReceiptError> {
        Provider::parse_receipts(self, request)
    }

    fn verify_subscription(&self, request: &InboundRequest) -> Result<String, ReceiptError> {
        Provider::verify_subscription(self, request)
    }

    fn request_timeout(&self) -> Option<std::time::Duration> {
        Provider::request_timeout(self)
    }

    fn confirms_approvals(&self) -> bool {
        Provider::confirms_approvals(self)
    }

    fn confirm_approval_boxed<'a>(&'a self, provider_message_id: &'a str) -> BoxFuture<'a, ()> {
        Box::pin(Provider::confirm_approval(self, provider_message_id))
    }
}
