//! Shared test fixtures: engines on a manual clock, scripted providers, route tables.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use switchboard::clock::ManualClock;
use switchboard::providers::{
    Capabilities, Channel, Delivery, DeliveryError, FailureClass, OneTimeCode, OutboundMessage,
    Provider,
};
use switchboard::routing::RouteTable;
use switchboard::store::Store;
use switchboard::{Config, Engine, EngineBuilder};

/// What a scripted provider does on one call.
#[derive(Clone, Copy, Debug)]
pub enum Step {
    Deliver,
    /// Delivers after this long (a send in flight at the provider).
    DeliverAfter(Duration),
    Fail(FailureClass, &'static str),
    FailAfter(FailureClass, &'static str, Duration),
    /// Fails, but the provider may have accepted the message (`outcome_unknown`).
    FailUnknown(FailureClass, &'static str),
    /// Never answers (the dispatcher's timeout must cut it).
    Hang,
}

/// One call a provider received.
#[derive(Clone, Debug)]
pub struct Call {
    pub to: String,
    pub channel: Channel,
    pub code: OneTimeCode,
    pub text: String,
}

/// A provider that follows a script (then its default step) and records every call.
pub struct Scripted {
    name: &'static str,
    channels: Vec<Channel>,
    script: Mutex<VecDeque<Step>>,
    default: Step,
    calls: Mutex<Vec<Call>>,
}

impl Scripted {
    pub fn new(name: &'static str, default: Step) -> Arc<Self> {
        Arc::new(Scripted {
            name,
            channels: Channel::ALL.to_vec(),
            script: Mutex::new(VecDeque::new()),
            default,
            calls: Mutex::new(Vec::new()),
        })
    }

    /// A provider that always delivers.
    pub fn delivering(name: &'static str) -> Arc<Self> {
        Self::new(name, Step::Deliver)
    }

    /// Queues steps taken before the default one.
    pub fn then(self: &Arc<Self>, steps: impl IntoIterator<Item = Step>) -> Arc<Self> {
        self.script.lock().extend(steps);
        self.clone()
    }

    pub fn calls(&self) -> Vec<Call> {
        self.calls.lock().clone()
    }

    pub fn call_count(&self) -> usize {
        self.calls.lock().len()
    }

    /// The code of the last message this provider received.
    pub fn last_code(&self) -> String {
        self.calls
            .lock()
            .last()
            .expect("the provider received a message")
            .code
            .expose()
            .to_owned()
    }
}

impl Provider for Scripted {
    fn name(&self) -> &str {
        self.name
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities::channels(&self.channels)
    }

    async fn send(&self, message: &OutboundMessage) -> Result<Delivery, DeliveryError> {
        self.calls.lock().push(Call {
            to: message.to.clone(),
            channel: message.channel,
            code: message.code.clone(),
            text: message.text(),
        });
        let step = self.script.lock().pop_front().unwrap_or(self.default);
        match step {
            Step::Deliver => Ok(Delivery {
                provider_message_id: format!("{}-{}", self.name, self.call_count()),
            }),
            Step::DeliverAfter(after) => {
                tokio::time::sleep(after).await;
                Ok(Delivery {
                    provider_message_id: format!("{}-{}", self.name, self.call_count()),
                })
            }
            Step::Fail(class, code) => {
                Err(DeliveryError::new(class, self.name, "scripted failure").with_code(code))
            }
            Step::FailAfter(class, code, after) => {
                Err(DeliveryError::new(class, self.name, "scripted failure")
                    .with_code(code)
                    .with_retry_after(after))
            }
            Step::FailUnknown(class, code) => {
                Err(DeliveryError::new(class, self.name, "scripted failure")
                    .with_code(code)
                    .outcome_unknown())
            }
            Step::Hang => {
                std::future::pending::<()>().await;
                unreachable!()
            }
        }
    }
}

/// A small route table: SMS via `sms_a` (cheap) and `sms_b`, WhatsApp via `wa`, voice via `voice`.
pub const ROUTES: &str = r#"
currency = "USD"
[default]
preference = ["whatsapp", "sms", "call"]
routes = [
  { channel = "sms", provider = "sms_b", price = 0.05 },
  { channel = "sms", provider = "sms_a", price = 0.04 },
  { channel = "whatsapp", provider = "wa", price = 0.01 },
  { channel = "call", provider = "voice", price = 0.09 },
]
"#;

/// The providers of [`ROUTES`].
pub struct Providers {
    pub wa: Arc<Scripted>,
    pub sms_a: Arc<Scripted>,
    pub sms_b: Arc<Scripted>,
    pub voice: Arc<Scripted>,
}

impl Providers {
    pub fn delivering() -> Self {
        Providers {
            wa: Scripted::delivering("wa"),
            sms_a: Scripted::delivering("sms_a"),
            sms_b: Scripted::delivering("sms_b"),
            voice: Scripted::delivering("voice"),
        }
    }

    pub fn total_calls(&self) -> usize {
        [&self.wa, &self.sms_a, &self.sms_b, &self.voice]
            .iter()
            .map(|p| p.call_count())
            .sum()
    }

    /// The code of the most recent message any provider received.
    pub fn last_code_to(&self, e164: &str) -> String {
        [&self.wa, &self.sms_a, &self.sms_b, &self.voice]
            .iter()
            .flat_map(|p| p.calls())
            .rfind(|c| c.to == e164)
            .map(|c| c.code.expose().to_owned())
            .expect("a message was sent to the number")
    }
}

/// A test engine with its clock and providers.
pub struct TestEngine {
    pub engine: Engine,
    pub clock: ManualClock,
    pub providers: Providers,
}

/// An engine on [`ROUTES`] with fast HMAC hashing, no stand-in, a manual clock and the
/// given config overrides (TOML).
pub fn engine_with(overrides: &str, providers: Providers) -> TestEngine {
    let clock = ManualClock::default();
    let engine = build_engine(overrides, &providers, &clock, None);
    TestEngine {
        engine,
        clock,
        providers,
    }
}

/// An engine on [`ROUTES`] over the given providers, clock and store (in-memory when `None`).
/// Several engines built over one store and one clock behave as instances of one service.
pub fn build_engine(
    overrides: &str,
    providers: &Providers,
    clock: &ManualClock,
    store: Option<Store>,
) -> Engine {
    engine_builder(overrides, providers, clock, store)
        .build()
        .expect("test engine builds")
}

/// The builder of [`build_engine`], for tests that add to it (an event sink).
pub fn engine_builder(
    overrides: &str,
    providers: &Providers,
    clock: &ManualClock,
    store: Option<Store>,
) -> EngineBuilder {
    // Top-level keys of `overrides` (before its first table) go before the base's tables.
    let split = overrides
        .find("\n[")
        .map(|i| i + 1)
        .unwrap_or(if overrides.starts_with('[') {
            0
        } else {
            overrides.len()
        });
    let (top, tables) = overrides.split_at(split);
    let base = format!(
        "pepper = \"000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f\"\n{top}\n[code]\nhashing = {{ scheme = \"hmac-sha256\" }}\n[providers]\nstand_in = \"\"\n[routing]\nattempt_timeout_ms = 1000\n{tables}"
    );
    let config = Config::from_toml(&base).expect("test config is valid");
    let mut builder = EngineBuilder::new(config)
        .routes(RouteTable::from_toml(ROUTES).unwrap())
        .provider(providers.wa.clone())
        .provider(providers.sms_a.clone())
        .provider(providers.sms_b.clone())
        .provider(providers.voice.clone())
        .clock(Arc::new(clock.clone()));
    if let Some(store) = store {
        builder = builder.store(store);
    }
    builder
}

/// An engine with delivering providers and default limits.
pub fn engine() -> TestEngine {
    engine_with("", Providers::delivering())
}

/// Overrides that turn the fraud screen off: for tests of the store's limits, which send far
/// more unconverted codes to one range than the screen allows (the screen has its own tests).
pub const FRAUD_OFF: &str = "[workflow.fraud]\nmode = \"off\"\n";

/// A Spanish mobile number (Vodafone range).
pub const ES_MOBILE: &str = "+34600600600";
/// A second Spanish mobile number.
pub const ES_MOBILE_2: &str = "+34600600601";
/// A Spanish landline (Madrid).
pub const ES_LANDLINE: &str = "+34912345678";
