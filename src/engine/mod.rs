//! The engine: send, check and lookup. Each method reads like the data flow of
//! ARCHITECTURE.md and delegates the work to `phone`, `risk`, `store`, `code` and `routing`.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use sha2::{Digest, Sha256};
use switchboard_providers::{
    Channel, ConsoleProvider, DeliveryReceipt, DynProvider, InboundRequest, OneTimeCode,
    ReceiptError, SandboxProvider,
};

use crate::clock::{Clock, Millis, SystemClock};
use crate::code::{self, CodeHasher, Pepper, Salt};
use crate::config::{Config, DEFAULT_APP, Mode, Workflow};
use crate::error::Error;
use crate::events::{Event, EventKind, EventSink};
use crate::phone::{self, PhoneInfo};
use crate::report::{
    CheckOutcome, CheckStatus, PhoneReport, SendOutcome, SendStatus, VerificationStatus,
};
use crate::risk::{self, Action, Facts, Risk, RiskData};
use crate::routing::{self, DispatchPolicy, PlanRequest, Route, RouteTable};
use crate::store::{
    CheckInput, CheckVerdict, DeclineReason, NumberKey, Store, VerificationState, VerificationView,
};

mod admin;
mod expiry;
pub use expiry::ExpirySweeper;
mod idempotency;
mod lookup;
mod receipts;
mod records;
mod routes;
pub use routes::{RouteStats, RoutesReport};
mod send;

pub use admin::GeoTable;
pub use idempotency::{IdempotentSend, SendKey};
pub use receipts::ReceiptEffect;
pub(crate) use records::check_metadata;
pub use records::{Verdict as ReviewVerdict, Verification};

/// Longest `vendor_data` accepted.
const MAX_VENDOR_DATA: usize = 256;

/// Options of a send.
#[derive(Clone, Debug, Default)]
pub struct SendOptions {
    /// Digits in the code (4-10); the workflow's length when omitted.
    pub code_size: Option<u8>,
    /// Message language (`en`, `es`, `pt-BR`); the workflow's when omitted.
    pub locale: Option<String>,
    /// Try this channel first, then the usual order.
    pub preferred_channel: Option<Channel>,
    /// The host of the page that asked for the code (the hosted page's): an SMS then ends
    /// with the WebOTP line `@host #code`, so the browser can offer the code.
    pub webotp_host: Option<String>,
}

/// Client context for fraud scoring: the IP (and its network) and the device id are counted by
/// the fraud screen; the rest is accepted for the record and for future rules.
#[derive(Clone, Debug, Default)]
pub struct Signals {
    /// The end user's IP address (IPv4 or IPv6), not the caller's server.
    pub ip: Option<String>,
    pub device_id: Option<String>,
    pub user_agent: Option<String>,
    pub device_platform: Option<String>,
    pub device_model: Option<String>,
    pub os_version: Option<String>,
    pub app_version: Option<String>,
}

/// A request to send a code.
#[derive(Clone, Debug, Default)]
pub struct SendRequest {
    pub phone_number: String,
    /// Region for national-format input (`ES`).
    pub region: Option<String>,
    /// Pins the channel: only its routes are tried.
    pub channel: Option<Channel>,
    /// The caller's user id, for duplicate detection.
    pub vendor_data: Option<String>,
    /// The caller's opaque JSON object (at most 2 KiB serialised), kept with the verification
    /// and echoed in its answers and events.
    pub metadata: Option<serde_json::Value>,
    /// Application (its workflow and its state); `default` when omitted.
    pub app: Option<String>,
    pub options: SendOptions,
    pub signals: Signals,
    /// Runs the send under this workflow instead of the application's configured one (the
    /// application's state and limits stay keyed by the application).
    pub workflow: Option<Arc<Workflow>>,
}

impl SendRequest {
    pub fn new(phone_number: impl Into<String>) -> Self {
        SendRequest {
            phone_number: phone_number.into(),
            ..Self::default()
        }
    }
}

/// A request to check a code.
#[derive(Clone, Debug, Default)]
pub struct CheckRequest {
    pub phone_number: String,
    pub region: Option<String>,
    /// The code the user typed. `Debug` of the request does not show it.
    pub code: OneTimeCode,
    pub vendor_data: Option<String>,
    pub app: Option<String>,
    /// As [`SendRequest::workflow`].
    pub workflow: Option<Arc<Workflow>>,
}

impl CheckRequest {
    pub fn new(phone_number: impl Into<String>, code: impl Into<String>) -> Self {
        CheckRequest {
            phone_number: phone_number.into(),
            code: OneTimeCode::new(code),
            ..Self::default()
        }
    }
}

/// An error while building an engine; names what is wrong.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    #[error(transparent)]
    Routes(#[from] routing::RouteTableError),
    #[error("route table: cannot read {path}: {message}")]
    RoutesFile { path: String, message: String },
    #[error(
        "route table names provider {name:?}, which is not registered (known: {known}); register it or set providers.stand_in"
    )]
    UnknownProvider { name: String, known: String },
    #[error("code hashing: {0}")]
    Code(#[from] code::CodeError),
    #[error("store: {0}")]
    Store(crate::store::StoreError),
}

/// Builds an [`Engine`] from a [`Config`], with optional providers, store and clock.
pub struct EngineBuilder {
    config: Config,
    routes: Option<RouteTable>,
    providers: HashMap<String, Arc<dyn DynProvider>>,
    store: Option<Store>,
    clock: Option<Arc<dyn Clock>>,
    events: Option<EventSink>,
    oracle: Option<Arc<dyn routing::RouteOracle>>,
    seed: Option<u64>,
    lookup: Option<Arc<dyn switchboard_providers::DynLineLookup>>,
}

impl EngineBuilder {
    pub fn new(config: Config) -> Self {
        EngineBuilder {
            config,
            routes: None,
            providers: HashMap::new(),
            store: None,
            clock: None,
            events: None,
            oracle: None,
            seed: None,
            lookup: None,
        }
    }

    /// Uses this line-lookup provider instead of the one `[lookup].provider` names; the
    /// workflows' `[workflow.lookup]` still decide when it is asked.
    pub fn lookup_provider(
        mut self,
        lookup: Arc<dyn switchboard_providers::DynLineLookup>,
    ) -> Self {
        self.lookup = Some(lookup);
        self
    }

    /// Seeds the random source of adaptive routing's exploration (simulations and tests that
    /// must repeat exactly); by default it is seeded from the operating system.
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = Some(seed);
        self
    }

    /// Orders every send's candidate routes with `oracle` instead of the workflows' routing
    /// strategies (simulations, custom policies). Gating still applies first.
    pub fn route_oracle(mut self, oracle: Arc<dyn routing::RouteOracle>) -> Self {
        self.oracle = Some(oracle);
        self
    }

    /// Registers a provider under its own name; routes naming it use it.
    pub fn provider(mut self, provider: Arc<dyn DynProvider>) -> Self {
        self.providers.insert(provider.name().to_owned(), provider);
        self
    }

    /// Uses this route table instead of the configured one.
    pub fn routes(mut self, routes: RouteTable) -> Self {
        self.routes = Some(routes);
        self
    }

    pub fn store(mut self, store: Store) -> Self {
        self.store = Some(store);
        self
    }

    /// Receives every [`Event`]: status changes and delivery reports. The sink must not block.
    pub fn on_event(mut self, sink: EventSink) -> Self {
        self.events = Some(sink);
        self
    }

    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = Some(clock);
        self
    }

    pub fn build(self) -> Result<Engine, BuildError> {
        let config = self.config;
        let routes = match self.routes {
            Some(r) => r,
            None => match config.routes_file() {
                Some(path) => {
                    let text =
                        std::fs::read_to_string(&path).map_err(|e| BuildError::RoutesFile {
                            path: path.display().to_string(),
                            message: e.to_string(),
                        })?;
                    RouteTable::from_toml(&text)?
                }
                None => RouteTable::embedded(),
            },
        };

        let sandbox = Arc::new(SandboxProvider::new(config.sandbox.numbers.clone()));
        let mut providers = self.providers;
        // Every configured provider, through the registry; one that was registered explicitly
        // keeps its place.
        if !config.providers.tables.is_empty() {
            let invalid =
                |e: switchboard_providers::RegistryError| crate::config::ConfigError::Invalid {
                    key: e.key(),
                    message: e.detail(),
                };
            let registry = switchboard_providers::Registry::builtin();
            let context = switchboard_providers::ProviderContext::new().map_err(invalid)?;
            for (name, table) in &config.providers.tables {
                if !providers.contains_key(name) {
                    let provider = registry.build(name, table, &context).map_err(invalid)?;
                    providers.insert(name.clone(), provider);
                }
            }
        }
        providers
            .entry("console".to_owned())
            .or_insert_with(|| Arc::new(ConsoleProvider::new()));
        providers
            .entry("sandbox".to_owned())
            .or_insert_with(|| sandbox.clone());
        // A provider whose own HTTP timeout outlasts the attempt timeout would be cut by the
        // dispatcher before it could classify its failure.
        let attempt_timeout = Duration::from_millis(config.routing.attempt_timeout_ms);
        let mut names: Vec<_> = providers.keys().cloned().collect();
        names.sort();
        for name in names {
            if let Some(t) = providers[&name]
                .request_timeout()
                .filter(|t| *t > attempt_timeout)
            {
                return Err(crate::config::ConfigError::Invalid {
                    key: format!("providers.{name}.timeout_ms"),
                    message: format!(
                        "is {} ms, more than routing.attempt_timeout_ms ({} ms); lower it or raise the attempt timeout",
                        t.as_millis(),
                        attempt_timeout.as_millis()
                    ),
                }
                .into());
            }
        }
        let stand_in = match config.providers.stand_in.as_str() {
            "" => None,
            name => providers.get(name).cloned(),
        };
        let mut stood_in = Vec::new();
        for name in routes.providers() {
            if providers.contains_key(&*name) {
                continue;
            }
            match &stand_in {
                Some(p) => {
                    providers.insert(name.to_string(), p.clone());
                    stood_in.push(name.to_string());
                }
                None => {
                    let mut known: Vec<_> = providers.keys().cloned().collect();
                    known.sort();
                    return Err(BuildError::UnknownProvider {
                        name: name.to_string(),
                        known: known.join(", "),
                    });
                }
            }
        }

        if let (Some(p), false) = (&stand_in, stood_in.is_empty()) {
            tracing::warn!(
                "development: {} stands in for providers without configuration: {}",
                p.name(),
                stood_in.join(", ")
            );
        }
        let pepper = if config.pepper.is_empty() {
            tracing::warn!(
                "no pepper configured: using a random per-process pepper (development only)"
            );
            Pepper::random()?
        } else {
            Pepper::parse(config.pepper.expose())?
        };
        let concurrency = match config.code.hash_concurrency {
            0 => std::thread::available_parallelism().map_or(2, |n| n.get()),
            n => n,
        };
        let hasher = CodeHasher::new(pepper, config.code.hashing, concurrency)?;

        let risk_data = RiskData {
            disposable: config.risk.disposable_list()?,
            high_risk_prefixes: config.risk.high_risk_prefixes.clone(),
        };
        let lookups = lookup::Lookups::from_config(&config.lookup, self.lookup)?;
        let dispatch = DispatchPolicy {
            attempt_timeout,
            retry_backoff: Duration::from_millis(config.routing.retry_backoff_ms),
            max_retry_wait: Duration::from_millis(config.routing.max_retry_wait_ms),
        };
        if config.mode == Mode::Development {
            tracing::debug!("engine in development mode");
        }
        let store = match self.store {
            Some(store) => store,
            None => Store::from_config(&config.store).map_err(BuildError::Store)?,
        };
        Ok(Engine {
            inner: Arc::new(Inner {
                recorder: crate::outcomes::Recorder::new(
                    store.clone(),
                    config.store.outcome_flush_ms,
                ),
                store,
                clock: self.clock.unwrap_or_else(|| Arc::new(SystemClock)),
                sandbox: config.sandbox.enabled.then_some(sandbox),
                config,
                routes,
                providers,
                hasher,
                risk_data,
                dispatch,
                events: self.events,
                fraud_admin: Default::default(),
                oracle: self.oracle,
                routing: routes::RoutingState::new(self.seed),
                lookups,
            }),
        })
    }
}

struct Inner {
    config: Config,
    routes: RouteTable,
    providers: HashMap<String, Arc<dyn DynProvider>>,
    sandbox: Option<Arc<SandboxProvider>>,
    store: Store,
    clock: Arc<dyn Clock>,
    hasher: CodeHasher,
    risk_data: RiskData,
    dispatch: DispatchPolicy,
    events: Option<EventSink>,
    fraud_admin: admin::FraudAdminCache,
    oracle: Option<Arc<dyn routing::RouteOracle>>,
    /// Buffered outcome writes (approvals, spend, the route ledger).
    recorder: crate::outcomes::Recorder,
    routing: routes::RoutingState,
    /// The line-lookup provider and its counters.
    lookups: lookup::Lookups,
}

/// The verification engine. Cheap to clone; share one per process.
#[derive(Clone)]
pub struct Engine {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("mode", &self.inner.config.mode)
            .field("store", &self.inner.store)
            .finish_non_exhaustive()
    }
}

impl Engine {
    /// An engine on the embedded defaults (in-memory store, console stand-in, sandbox).
    pub fn from_defaults() -> Result<Self, BuildError> {
        EngineBuilder::new(Config::default()).build()
    }

    pub fn config(&self) -> &Config {
        &self.inner.config
    }

    /// The sandbox provider, whose recorded codes tests can read.
    pub fn sandbox(&self) -> Option<&SandboxProvider> {
        self.inner.sandbox.as_deref()
    }

    pub fn store(&self) -> &Store {
        &self.inner.store
    }

    fn workflow<'a>(&'a self, app: Option<&'a str>) -> Result<(&'a str, &'a Workflow), Error> {
        let app = app.unwrap_or(DEFAULT_APP);
        self.inner
            .config
            .app(app)
            .map(|w| (app, w))
            .ok_or_else(|| Error::UnknownApp(app.chars().take(64).collect()))
    }

    /// The sandbox when it handles `e164` for an application with workflow `wf`: a test
    /// number, the sandbox enabled, and (in production) the application opted in. Otherwise the
    /// number is like any other and goes through the normal route.
    fn sandbox_for(&self, wf: &Workflow, e164: &str) -> Option<&Arc<SandboxProvider>> {
        self.inner
            .sandbox
            .as_ref()
            .filter(|s| s.numbers().contains(e164) && self.inner.config.sandbox_for(wf))
    }

    /// Facts of the number that the sandbox decides: its high-risk test number.
    fn sandbox_facts(&self, wf: &Workflow, e164: &str) -> Facts {
        Facts {
            high_risk: self
                .sandbox_for(wf, e164)
                .is_some_and(|s| s.numbers().high_risk == e164),
            ..Facts::default()
        }
    }

    pub(crate) fn now(&self) -> Millis {
        self.inner.clock.now_ms()
    }

    /// Sends a code to a phone number.
    pub async fn send(&self, req: SendRequest) -> Result<SendOutcome, Error> {
        let app = req.app.clone();
        let app = app.as_deref().unwrap_or(DEFAULT_APP);
        let given = records::Given {
            vendor_data: req.vendor_data.clone(),
            metadata: req.metadata.clone(),
        };
        let mut outcome = self.send_unobserved(req).await?;
        let linked = self.record_send(app, given, &mut outcome).await;
        let kind = match outcome.status {
            SendStatus::Success => EventKind::Started,
            SendStatus::Retry => EventKind::Resent,
            SendStatus::Undeliverable => EventKind::Undeliverable,
            SendStatus::Blocked => EventKind::Declined,
        };
        self.emit_with(
            kind,
            app,
            &outcome.request_id,
            &outcome.phone,
            outcome.reason.clone(),
            EventExtra {
                routing: outcome.routing.clone(),
                verification: linked.clone(),
                ..EventExtra::default()
            },
        );
        if let Some(verdict) = &outcome.fraud {
            self.emit_fraud(app, &outcome, verdict, linked);
        }
        Ok(outcome)
    }

    /// `fraud.blocked` / `fraud.would_block`, with the rule, key and figure.
    fn emit_fraud(
        &self,
        app: &str,
        outcome: &SendOutcome,
        verdict: &crate::fraud::Verdict,
        verification: Option<records::Linked>,
    ) {
        let (kind, figure) = match verdict {
            crate::fraud::Verdict::Block(f) => (EventKind::FraudBlocked, f),
            crate::fraud::Verdict::WouldBlock(f) => (EventKind::FraudWouldBlock, f),
            crate::fraud::Verdict::Allow => return,
        };
        self.emit_with(
            kind,
            app,
            &outcome.request_id,
            &outcome.phone,
            Some(figure.rule.as_str().to_owned()),
            EventExtra {
                fraud: Some(figure.clone()),
                verification,
                ..EventExtra::default()
            },
        );
    }

    /// Verifies and parses a delivery callback of provider `provider`. A callback that fails
    /// verification yields an error and records nothing. Hand the receipts to
    /// [`Engine::apply_receipts`] (the sidecar does it after answering the provider).
    pub fn receipt(
        &self,
        provider: &str,
        request: &InboundRequest,
    ) -> Result<Vec<DeliveryReceipt>, ReceiptError> {
        self.inner
            .providers
            .get(provider)
            .ok_or(ReceiptError::Unsupported)?
            .parse_receipts(request)
    }

    /// Answers a provider's webhook subscription handshake (Meta's `hub.challenge`).
    pub fn verify_subscription(
        &self,
        provider: &str,
        request: &InboundRequest,
    ) -> Result<String, ReceiptError> {
        self.inner
            .providers
            .get(provider)
            .ok_or(ReceiptError::Unsupported)?
            .verify_subscription(request)
    }

    fn emit_with(
        &self,
        kind: EventKind,
        app: &str,
        request_id: &str,
        phone: &PhoneReport,
        reason: Option<String>,
        extra: EventExtra,
    ) {
        if self.inner.events.is_none() {
            return;
        }
        let EventExtra {
            fraud,
            routing,
            verification,
        } = extra;
        let (verification_id, vendor_data, metadata) = match verification {
            Some(v) => (v.id, v.vendor_data, v.metadata),
            None => (None, None, None),
        };
        self.publish(Event {
            event: kind,
            event_id: new_request_id(),
            created_at: crate::clock::iso8601(self.now()),
            app: app.to_owned(),
            request_id: request_id.to_owned(),
            verification_id,
            vendor_data,
            metadata,
            phone_number: phone.full_number.clone(),
            status: Some(phone.status),
            channel: phone.verification_method,
            provider: None,
            provider_message_id: None,
            delivery_status: None,
            reason,
            fraud,
            routing,
            session_id: None,
            session_status: None,
        });
    }

    pub(crate) fn publish(&self, event: Event) {
        if let Some(sink) = &self.inner.events {
            self.follow_verification(&event);
            sink(event);
        }
    }

    /// Checks a code typed by the user against the number's pending verification.
    pub async fn check(&self, req: CheckRequest) -> Result<CheckOutcome, Error> {
        let request_id = new_request_id();
        let (app, wf) = self.workflow(req.app.as_deref())?;
        let wf = req.workflow.as_deref().unwrap_or(wf);
        check_vendor_data(req.vendor_data.as_deref())?;
        let mut info = phone::parse(&req.phone_number, req.region.as_deref())?;
        let line = self
            .look_up_line(wf, &mut info, lookup::Purpose::Verify)
            .await?;
        let key = NumberKey::new(app, info.e164.clone());

        // A candidate that cannot be a code is not hashed, but still costs an attempt.
        let candidate = if code::is_well_formed(&req.code) {
            Some(
                self.inner
                    .hasher
                    .digest(&req.code, &salt_for(&key))
                    .await
                    .map_err(|_| Error::Internal)?,
            )
        } else {
            None
        };
        let result = self
            .inner
            .store
            .check(
                &key,
                CheckInput {
                    now: self.now(),
                    candidate,
                    max_attempts: wf.limits.max_attempts,
                    vendor_data: req.vendor_data.as_deref(),
                    refuse_duplicate: wf.risk.duplicated == Action::Decline,
                    verified_ttl_ms: secs_ms(wf.limits.verified_ttl_secs),
                },
            )
            .await?;

        // 4. Outcomes: an approval earns its prefix and country budget back.
        if result.verdict == CheckVerdict::Approved {
            self.record_approval(app, wf, &info, result.route.as_deref(), result.superseded)
                .await;
            if let Some((provider, message_id)) = &result.confirm {
                self.confirm_approval(provider, message_id);
            }
        }

        // Why the verification is declined, whether by this check or an earlier one.
        let declined = match result.verdict {
            CheckVerdict::Exhausted => Some(DeclineReason::AttemptsExceeded),
            CheckVerdict::Blocked => Some(DeclineReason::Blocked),
            CheckVerdict::Duplicate => Some(DeclineReason::Duplicate),
            CheckVerdict::AlreadyDeclined => Some(
                result
                    .verification
                    .as_ref()
                    .and_then(|v| v.declined)
                    .unwrap_or(DeclineReason::AttemptsExceeded),
            ),
            _ => None,
        };
        let facts = Facts {
            blocked: declined == Some(DeclineReason::Blocked),
            duplicated: is_duplicate(
                result.verified_for.as_deref(),
                req.vendor_data.as_deref().or(result
                    .verification
                    .as_ref()
                    .and_then(|v| v.vendor_data.as_deref())),
            ),
            attempts_exceeded: declined == Some(DeclineReason::AttemptsExceeded),
            sim_swapped: line.sim_swapped,
            ..self.sandbox_facts(wf, &info.e164)
        };
        let risks = risk::screen(&info, &self.inner.risk_data, facts);
        let (status, reason, attempts_left) = match result.verdict {
            CheckVerdict::Approved => match wf.risk.decide(&risks) {
                Action::Approve => (CheckStatus::Approved, None, None),
                Action::Review => (CheckStatus::InReview, None, None),
                Action::Decline => (CheckStatus::Declined, wf.risk.declining(&risks), None),
            },
            CheckVerdict::Duplicate
            | CheckVerdict::Exhausted
            | CheckVerdict::Blocked
            | CheckVerdict::AlreadyDeclined => {
                let reason = match declined {
                    Some(DeclineReason::Blocked) => Risk::PhoneNumberInBlocklist,
                    Some(DeclineReason::Duplicate) => Risk::DuplicatedPhoneNumber,
                    _ => Risk::VerificationCodeAttemptsExceeded,
                };
                let left = (reason == Risk::VerificationCodeAttemptsExceeded).then_some(0);
                (CheckStatus::Declined, Some(reason), left)
            }
            CheckVerdict::Wrong { attempts_left } => {
                (CheckStatus::Failed, None, Some(attempts_left))
            }
            CheckVerdict::NotFound => (CheckStatus::ExpiredOrNotFound, None, None),
        };
        tracing::info!(%request_id, status = ?status, "code checked");
        let mut phone = self.report(&info, &risks, wf);
        phone.status = match status {
            CheckStatus::Approved => VerificationStatus::Approved,
            CheckStatus::InReview => VerificationStatus::InReview,
            CheckStatus::Declined => VerificationStatus::Declined,
            CheckStatus::Failed | CheckStatus::ExpiredOrNotFound => VerificationStatus::NotFinished,
        };
        if let Some(v) = result
            .verification
            .as_ref()
            .filter(|_| status != CheckStatus::ExpiredOrNotFound)
        {
            fill_verification(&mut phone, v);
        }
        let mut outcome = CheckOutcome {
            request_id,
            verification_id: None,
            vendor_data: None,
            metadata: None,
            status,
            reason: reason.map(|r| r.as_str().to_owned()),
            attempts_left,
            phone,
        };
        let linked = self.record_check(app, &result, &mut outcome).await;
        // Only a check that changed the verification's status is an event.
        let changed = !matches!(
            result.verdict,
            CheckVerdict::AlreadyDeclined | CheckVerdict::NotFound | CheckVerdict::Wrong { .. }
        );
        if changed {
            let kind = match status {
                CheckStatus::Approved => Some(EventKind::Approved),
                CheckStatus::InReview => Some(EventKind::ReviewStarted),
                CheckStatus::Declined => Some(EventKind::Declined),
                _ => None,
            };
            if let Some(kind) = kind {
                self.emit_with(
                    kind,
                    app,
                    &outcome.request_id,
                    &outcome.phone,
                    outcome.reason.clone(),
                    EventExtra {
                        verification: linked,
                        ..EventExtra::default()
                    },
                );
            }
        }
        Ok(outcome)
    }

    /// Tells the provider that carried an approved code (Telegram's conversion accounting).
    /// Off the request path and best effort: the adapter logs its own failure.
    fn confirm_approval(&self, provider: &str, message_id: &str) {
        if let Some(p) = self.inner.providers.get(provider).cloned() {
            let message_id = message_id.to_owned();
            tokio::spawn(async move { p.confirm_approval_boxed(&message_id).await });
        }
    }

    /// Counts an approval for the fraud screen (and, through the same counters, routing),
    /// through the recorder: off the request path.
    async fn record_approval(
        &self,
        app: &str,
        wf: &Workflow,
        info: &PhoneInfo,
        route: Option<&str>,
        superseded: bool,
    ) {
        if self.sandbox_for(wf, &info.e164).is_some() {
            return;
        }
        let mut counts = self.route_approval(app, wf, info.region.as_deref(), route, superseded);
        if let Ok(Some(subjects)) = self.subjects(wf, info, &Signals::default()) {
            counts.extend(crate::fraud::approval_counts(app, &wf.fraud, &subjects));
        }
        self.inner.recorder.record(self.now(), counts).await;
    }

    /// Writes the outcome evidence this instance still buffers (call on graceful shutdown).
    pub async fn flush_outcomes(&self) {
        self.inner.recorder.flush(self.now()).await;
    }

    /// The phone report of a number without sending anything: the line, its risks, and the
    /// state of its current verification.
    pub async fn lookup(
        &self,
        phone_number: &str,
        region: Option<&str>,
        vendor_data: Option<&str>,
        app: Option<&str>,
    ) -> Result<PhoneReport, Error> {
        let (app, wf) = self.workflow(app)?;
        check_vendor_data(vendor_data)?;
        let mut info = phone::parse(phone_number, region)?;
        let line = self
            .look_up_line(wf, &mut info, lookup::Purpose::Report)
            .await?;
        let key = NumberKey::new(app, info.e164.clone());
        let now = self.now();
        let crate::store::Inspection {
            blocked,
            verified_for,
            verification,
        } = self.inner.store.inspect(&key, now).await?;
        let facts = Facts {
            blocked,
            duplicated: is_duplicate(verified_for.as_deref(), vendor_data),
            sim_swapped: line.sim_swapped,
            ..self.sandbox_facts(wf, &info.e164)
        };
        let risks = risk::screen(&info, &self.inner.risk_data, facts);
        let mut report = self.report(&info, &risks, wf);
        if let Some(v) = &verification {
            fill_verification(&mut report, v);
            report.status = match v.state {
                VerificationState::Pending => VerificationStatus::NotFinished,
                VerificationState::Declined => VerificationStatus::Declined,
                // The verification's own outcome: a duplicate of the asking vendor is
                // reported as a warning but did not decide it.
                VerificationState::Approved => match wf.risk.decide(
                    &risks
                        .iter()
                        .copied()
                        .filter(|r| *r != Risk::DuplicatedPhoneNumber)
                        .collect::<Vec<_>>(),
                ) {
                    Action::Approve => VerificationStatus::Approved,
                    Action::Review => VerificationStatus::InReview,
                    Action::Decline => VerificationStatus::Declined,
                },
            };
        }
        Ok(report)
    }

    /// The line report (no store) for offline bulk lookups: parse, carrier, line risks.
    pub fn lookup_offline(
        &self,
        phone_number: &str,
        region: Option<&str>,
    ) -> Result<PhoneReport, Error> {
        let info = phone::parse(phone_number, region)?;
        let risks = risk::screen(&info, &self.inner.risk_data, Facts::default());
        Ok(self.report(&info, &risks, &self.inner.config.workflow))
    }

    /// Adds a number to an application's blocklist.
    pub async fn block(&self, phone_number: &str, app: Option<&str>) -> Result<bool, Error> {
        let (app, _) = self.workflow(app)?;
        let info = phone::parse(phone_number, None)?;
        Ok(self
            .inner
            .store
            .block(&NumberKey::new(app, info.e164))
            .await?)
    }

    /// Removes a number from an application's blocklist.
    pub async fn unblock(&self, phone_number: &str, app: Option<&str>) -> Result<bool, Error> {
        let (app, _) = self.workflow(app)?;
        let info = phone::parse(phone_number, None)?;
        Ok(self
            .inner
            .store
            .unblock(&NumberKey::new(app, info.e164))
            .await?)
    }

    /// An application's blocklist.
    pub async fn blocklist(&self, app: Option<&str>) -> Result<Vec<String>, Error> {
        let (app, _) = self.workflow(app)?;
        Ok(self.inner.store.blocked(app).await?)
    }

    /// The routes to try for a number, in order. Deterministic for the same inputs, so a late
    /// fallback can make the plan of the original send again.
    /// `fraud` is the application's effective policy (configured plus runtime settings).
    fn plan(
        &self,
        info: &PhoneInfo,
        wf: &Workflow,
        fraud: &crate::fraud::FraudPolicy,
        pinned: Option<Channel>,
        preferred: Option<Channel>,
    ) -> Vec<Route> {
        let mut plan = routing::plan(
            &self.inner.routes,
            &plan_request(info, wf, pinned, preferred),
        );
        // Geo permissions: a channel denied for the country is not planned (enforce mode).
        if fraud.mode == crate::fraud::FraudMode::Enforce {
            plan.retain(|r| {
                fraud.geo(r.channel, info.region.as_deref()) != crate::fraud::GeoAction::Deny
            });
        }
        plan
    }

    fn report(&self, info: &PhoneInfo, risks: &[Risk], wf: &Workflow) -> PhoneReport {
        let warnings = risks.iter().map(|r| wf.risk.warning(*r)).collect();
        PhoneReport::for_line(info, self.inner.risk_data.is_disposable(info), warnings)
    }
}

/// What some events carry besides the verification's state.
#[derive(Default)]
struct EventExtra {
    fraud: Option<crate::fraud::Figure>,
    routing: Option<crate::routing::ledger::RouteChoice>,
    /// The verification the event belongs to.
    verification: Option<records::Linked>,
}

fn plan_request<'a>(
    info: &'a PhoneInfo,
    wf: &'a Workflow,
    pinned: Option<Channel>,
    preferred: Option<Channel>,
) -> PlanRequest<'a> {
    PlanRequest {
        country: info.region.as_deref(),
        number_type: info.effective_type(),
        pinned,
        preferred,
        workflow_preference: (!wf.channel_preference.is_empty())
            .then_some(wf.channel_preference.as_slice()),
    }
}

fn fill_verification(report: &mut PhoneReport, v: &VerificationView) {
    report.verification_method = Some(v.channel);
    report.verification_attempts = v.attempts;
    report.verified_at = v.verified_at;
}

fn secs_ms(secs: u64) -> i64 {
    i64::try_from(secs.saturating_mul(1000)).unwrap_or(i64::MAX)
}

fn secs_ceil(ms: i64) -> u64 {
    (ms.max(0) as u64).div_ceil(1000)
}

fn with(risks: &[Risk], extra: Risk) -> Vec<Risk> {
    let mut all = risks.to_vec();
    if !all.contains(&extra) {
        all.push(extra);
        all.sort_by_key(|r| Risk::ALL.iter().position(|x| x == r));
    }
    all
}

fn is_duplicate(verified_for: Option<&str>, vendor_data: Option<&str>) -> bool {
    matches!((verified_for, vendor_data), (Some(prev), Some(cur)) if prev != cur)
}

pub(crate) fn check_vendor_data(v: Option<&str>) -> Result<(), Error> {
    match v {
        Some(v) if v.len() > MAX_VENDOR_DATA => Err(Error::InvalidRequest {
            field: "vendor_data",
            message: format!("must be at most {MAX_VENDOR_DATA} bytes"),
        }),
        _ => Ok(()),
    }
}

/// The salt of a number's codes: public and deterministic, so a code's digest can be computed
/// before any store round trip (a check is one atomic store call). The pepper, as argon2's
/// secret / the HMAC key, is what makes the digest unforgeable; the salt separates numbers and
/// applications so no digest can be precomputed once for all of them.
fn salt_for(key: &NumberKey) -> Salt {
    let mut h = Sha256::new();
    h.update(b"switchboard/code-salt/v1\0");
    h.update(key.app.as_bytes());
    h.update([0]);
    h.update(key.e164.as_bytes());
    let full = h.finalize();
    let mut salt = [0u8; code::SALT_LEN];
    salt.copy_from_slice(&full[..code::SALT_LEN]);
    Salt::from_bytes(salt)
}

fn new_request_id() -> String {
    uuid::Uuid::new_v4().to_string()
}
