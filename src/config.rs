//! Configuration: embedded defaults (`config/default.toml`) -> an optional file ->
//! `SWITCHBOARD_*` environment variables, validated once at load with messages that name the key.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::{Deserialize, Serialize};
use switchboard_providers::{Channel, SandboxNumbers};

use crate::code::{HashScheme, MAX_LENGTH, MIN_LENGTH, Pepper};
use crate::risk::RiskPolicy;

/// The embedded defaults.
pub const DEFAULT_CONFIG: &str = include_str!("../config/default.toml");

/// Prefix of the environment variables that override config keys.
pub const ENV_PREFIX: &str = "SWITCHBOARD_";

/// A configuration error; the message names the key.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("configuration: {0}")]
    Load(String),
    #[error("configuration: `{key}` {message}")]
    Invalid { key: String, message: String },
}

fn invalid(key: impl Into<String>, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key: key.into(),
        message: message.into(),
    }
}

/// A secret string: never printed by `Debug`.
#[derive(Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Self {
        Secret(s.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.0.is_empty() {
            "<empty>"
        } else {
            "<redacted>"
        })
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    Development,
    Production,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CodeConfig {
    pub hashing: HashScheme,
    /// 0 = number of CPUs.
    pub hash_concurrency: usize,
}

/// Limits of a workflow.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    pub validity_secs: u64,
    pub max_attempts: u32,
    pub max_resends: u32,
    pub resend_window_secs: u64,
    pub resend_cooldown_secs: u64,
    pub verified_ttl_secs: u64,
    /// How long a verification's record (status, `vendor_data`, `metadata`, lifecycle) is
    /// kept after its first send: the time a reviewer has to resolve an `In Review` one.
    #[serde(default = "default_record_ttl_secs")]
    pub record_ttl_secs: u64,
}

fn default_record_ttl_secs() -> u64 {
    86_400
}

/// What an application does: limits, risk actions, channel order, message brand.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Workflow {
    pub brand: String,
    pub code_length: u8,
    pub locale: String,
    pub channel_preference: Vec<Channel>,
    pub limits: Limits,
    pub risk: RiskPolicy,
    /// Fraud defence: mode, budgets, caps, safe list, geo permissions.
    pub fraud: crate::fraud::FraudPolicy,
    /// Route ordering: strategy (static or adaptive), exploration, circuit breaker.
    pub routing: crate::routing::RoutePolicy,
    /// When live line facts are looked up (the provider is `[lookup]`).
    #[serde(default)]
    pub lookup: LookupPolicy,
    /// Whether the sandbox's test numbers are handled by the sandbox for this application.
    /// Unset: yes in development, no in production (where only an explicit `true` opts in).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sandbox: Option<bool>,
    /// Hosted sessions: how long a session URL works, and where its page may send the user.
    #[serde(default)]
    pub hosted: HostedPolicy,
}

/// `[workflow.hosted]`: hosted verification sessions of an application.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HostedPolicy {
    /// How long a session URL works after the session is created.
    pub session_ttl_secs: u64,
    /// URL prefixes a session's `callback` must start with. Empty: no callback in
    /// production, any http(s) URL in development.
    pub callback_urls: Vec<String>,
}

impl Default for HostedPolicy {
    fn default() -> Self {
        HostedPolicy {
            session_ttl_secs: 1800,
            callback_urls: Vec::new(),
        }
    }
}

/// `[workflow.lookup].mode`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LookupMode {
    /// Static facts only.
    #[default]
    Off,
    /// Only numbers whose static line type is unknown (NANPA: every US and Canadian number).
    WhenUnknown,
    /// Every number in scope.
    Always,
}

/// `[workflow.lookup].report`: what the phone lookup endpoint does.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LookupReport {
    /// Cached facts only: a report never pays for a lookup.
    #[default]
    Cached,
    /// Looks up like a send (cache first).
    Live,
}

/// `[workflow.lookup]`: when an application asks for live line facts.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LookupPolicy {
    pub mode: LookupMode,
    /// ISO 3166-1 alpha-2 regions in scope; empty = all.
    pub countries: Vec<String>,
    pub sim_swap: bool,
    pub fail_closed: bool,
    pub report: LookupReport,
}

impl LookupPolicy {
    /// Whether a number of `region` is in scope.
    pub fn covers(&self, region: Option<&str>) -> bool {
        self.countries.is_empty()
            || region.is_some_and(|r| self.countries.iter().any(|c| c.eq_ignore_ascii_case(r)))
    }
}

/// `[lookup]`: the lookup provider (one table per configured provider, `[lookup.twilio]`),
/// cache TTLs, price and the wait for another instance's answer. `Debug` shows each table's
/// keys, never its values.
#[derive(Clone, Debug, Deserialize)]
pub struct LookupConfig {
    pub provider: String,
    pub line_ttl_secs: u64,
    pub sim_swap_ttl_secs: u64,
    pub price: f64,
    pub wait_ms: u64,
    #[serde(flatten)]
    pub tables: BTreeMap<String, switchboard_providers::ProviderTable>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RiskLists {
    pub disposable_builtin: bool,
    pub disposable_numbers: Vec<String>,
    pub disposable_files: Vec<String>,
    pub high_risk_prefixes: Vec<String>,
}

impl RiskLists {
    /// The disposable-number list this configuration asks for: the shipped one (unless
    /// `disposable_builtin = false`), `disposable_numbers` and every `disposable_files` file.
    /// Errors name the key and the bad entry.
    pub fn disposable_list(&self) -> Result<crate::phone::DisposableList, ConfigError> {
        use crate::phone::DisposableList;
        let mut entries = self.disposable_numbers.clone();
        DisposableList::new(&entries).map_err(|e| invalid("risk.disposable_numbers", e))?;
        for (i, path) in self.disposable_files.iter().enumerate() {
            let key = format!("risk.disposable_files[{i}]");
            let text = std::fs::read_to_string(path)
                .map_err(|e| invalid(&key, format!("cannot read {path}: {e}")))?;
            let lines = DisposableList::entries_of(&text);
            DisposableList::new(&lines).map_err(|e| invalid(&key, e))?;
            entries.extend(lines.into_iter().map(str::to_owned));
        }
        let list = DisposableList::new(&entries).map_err(|e| invalid("risk", e))?;
        Ok(list.with_builtin(self.disposable_builtin))
    }
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoutingConfig {
    pub routes_file: String,
    pub attempt_timeout_ms: u64,
    pub retry_backoff_ms: u64,
    pub max_retry_wait_ms: u64,
    /// Move a verification to the next route when a provider later reports that the message
    /// failed (delivery receipt), not only when it refuses the send.
    pub receipt_fallback: bool,
}

/// `[providers]`: the development stand-in, and one table per configured provider
/// (`[providers.twilio]`), keyed by its registry name. Unknown names are refused when the engine
/// is built, listing the known ones. `Debug` shows each table's keys, never its values.
#[derive(Clone, Debug, Deserialize)]
pub struct ProvidersConfig {
    pub stand_in: String,
    #[serde(flatten)]
    pub tables: BTreeMap<String, switchboard_providers::ProviderTable>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SandboxConfig {
    pub enabled: bool,
    #[serde(flatten)]
    pub numbers: SandboxNumbers,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StoreBackend {
    Memory,
    Redis,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreConfig {
    pub backend: StoreBackend,
    /// `redis://host:port[/db]` or `redis+cluster://host1:port,host2:port,...`.
    pub url: String,
    pub key_prefix: String,
    pub command_timeout_ms: u64,
    /// How long an instance keeps an application's runtime fraud settings (safe list, geo
    /// permissions set through the admin API) before reading them from the store again.
    pub fraud_admin_cache_ms: u64,
    /// How often an instance writes the outcome evidence it buffers (approvals, spend, the
    /// route ledger) to a shared store.
    pub outcome_flush_ms: u64,
    /// How often the sidecar sweeps for verifications whose validity ended (and announces them).
    pub expiry_sweep_ms: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

/// One API key: the SHA-256 of the key (hex), and the application it belongs to.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiKeyConfig {
    pub app: String,
    pub sha256: String,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    pub grpc_addr: String,
    pub http_addr: String,
    pub log_format: LogFormat,
    pub shutdown_grace_secs: u64,
    pub public_url: String,
    pub rate_per_key: u32,
    pub burst_per_key: u32,
    pub rate_per_ip: u32,
    pub burst_per_ip: u32,
    /// Peers whose `X-Forwarded-For` is believed (load balancers, ingress).
    pub trusted_proxies: Vec<String>,
    pub api_keys: Vec<ApiKeyConfig>,
    /// Open connections per listener; more are closed at accept.
    pub max_connections: usize,
    /// HTTP: a request's headers must arrive this long after it starts (also the longest idle
    /// time of a keep-alive connection).
    pub header_read_timeout_secs: u64,
    /// gRPC: a call's deadline when the client sets none shorter.
    pub grpc_request_timeout_secs: u64,
    /// gRPC: concurrent calls (HTTP/2 streams) per connection.
    pub grpc_max_concurrent_streams: u32,
    /// gRPC: HTTP/2 PING interval, and how long an unanswered PING keeps the connection.
    pub grpc_keepalive_interval_secs: u64,
    pub grpc_keepalive_timeout_secs: u64,
    /// gRPC: TCP keep-alive probes after this much silence.
    pub tcp_keepalive_secs: u64,
    /// Threads of `switchboard serve`'s async runtime; 0 = half the cores, at least one
    /// ([`ServerConfig::runtime_threads`]).
    pub worker_threads: usize,
}

/// Most runtime threads `server.worker_threads` may ask for.
pub const MAX_WORKER_THREADS: usize = 256;

impl ServerConfig {
    /// The runtime threads `switchboard serve` runs: `worker_threads`, or for 0 half of
    /// `cores` (at least one). A sidecar shares its host with the application it serves and
    /// with Redis; on the 2-core load test one thread did 8-10% more pairs per second than two
    /// for 22% less CPU per pair (fewer cross-thread wake-ups), see docs/performance.md.
    pub fn runtime_threads(&self, cores: usize) -> usize {
        match self.worker_threads {
            0 => (cores / 2).max(1),
            n => n,
        }
    }
}

/// One webhook destination.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookDestination {
    pub url: String,
    pub secret: Secret,
    /// Event names to send (`verification.approved`); empty = all.
    #[serde(default)]
    pub events: Vec<String>,
    /// The one application whose events this destination receives; unset = every application.
    #[serde(default)]
    pub app: Option<String>,
    /// Set for a destination created through the API (its id); configured ones have none.
    #[serde(skip)]
    pub id: Option<String>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhooksConfig {
    pub destinations: Vec<WebhookDestination>,
    pub max_attempts: u32,
    pub initial_backoff_ms: u64,
    pub max_backoff_ms: u64,
    pub timeout_ms: u64,
    pub queue_capacity: usize,
    /// Deliveries in progress at once (each with its retries), over every destination.
    pub max_in_flight: usize,
    /// Redis store: the outbox stream's name (under `store.key_prefix`).
    pub stream: String,
    /// Redis store: where deliveries that spent every attempt go (under `store.key_prefix`).
    pub dead_letter_stream: String,
    /// Redis store: the consumer group every sidecar joins.
    pub consumer_group: String,
    /// Redis store: a delivery whose sidecar has not touched it for this long is taken over.
    pub reclaim_idle_ms: u64,
    /// Redis store: the outbox and dead-letter streams are trimmed (approximately) to this length.
    pub max_len: usize,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    mode: Mode,
    pepper: Secret,
    code: CodeConfig,
    workflow: Workflow,
    #[serde(default)]
    apps: BTreeMap<String, toml::Table>,
    risk: RiskLists,
    lookup: LookupConfig,
    routing: RoutingConfig,
    providers: ProvidersConfig,
    sandbox: SandboxConfig,
    store: StoreConfig,
    server: ServerConfig,
    webhooks: WebhooksConfig,
}

/// The whole configuration, validated.
#[derive(Clone, Debug)]
pub struct Config {
    pub mode: Mode,
    pub pepper: Secret,
    pub code: CodeConfig,
    /// The default workflow (application `default`).
    pub workflow: Workflow,
    /// Applications with their resolved workflows (each inherits from `workflow`).
    pub apps: BTreeMap<String, Workflow>,
    pub risk: RiskLists,
    pub lookup: LookupConfig,
    pub routing: RoutingConfig,
    pub providers: ProvidersConfig,
    pub sandbox: SandboxConfig,
    pub store: StoreConfig,
    pub server: ServerConfig,
    pub webhooks: WebhooksConfig,
}

impl Default for Config {
    /// The embedded defaults alone (no file, no environment).
    fn default() -> Self {
        Self::from_figment(embedded_defaults())
            .expect("the embedded default configuration is valid")
    }
}

/// The embedded defaults as a figment, parsed once per process: the TOML is ~19 KB and every
/// `Config::from_toml` (tests, embedding, the config fuzz target) would otherwise parse it again.
fn embedded_defaults() -> Figment {
    static DEFAULTS: std::sync::LazyLock<Figment> =
        std::sync::LazyLock::new(|| Figment::from(Toml::string(DEFAULT_CONFIG)));
    DEFAULTS.clone()
}

/// The application every request without one belongs to.
pub const DEFAULT_APP: &str = "default";

impl Config {
    /// Embedded defaults -> `file` (when given) -> `SWITCHBOARD_*` environment.
    pub fn load(file: Option<&Path>) -> Result<Self, ConfigError> {
        let mut fig = embedded_defaults();
        if let Some(path) = file {
            if !path.is_file() {
                return Err(ConfigError::Load(format!(
                    "config file {} does not exist",
                    path.display()
                )));
            }
            fig = fig.merge(Toml::file(path));
        }
        fig = fig.merge(Env::prefixed(ENV_PREFIX).split("__"));
        Self::from_figment(fig)
    }

    /// Embedded defaults -> the TOML in `overrides` (no environment). For tests and embedding.
    pub fn from_toml(overrides: &str) -> Result<Self, ConfigError> {
        Self::from_figment(embedded_defaults().merge(Toml::string(overrides)))
    }

    fn from_figment(fig: Figment) -> Result<Self, ConfigError> {
        let raw: RawConfig = fig
            .extract()
            .map_err(|e| ConfigError::Load(figment_message(e)))?;
        let mut apps = BTreeMap::new();
        apps.insert(DEFAULT_APP.to_owned(), raw.workflow.clone());
        for (name, table) in &raw.apps {
            if name.is_empty()
                || name.len() > 64
                || !name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            {
                return Err(invalid(
                    format!("apps.{name}"),
                    "app names are 1-64 characters of letters, digits, `-` and `_`",
                ));
            }
            let workflow: Workflow = Figment::from(Serialized::defaults(&raw.workflow))
                .merge(Serialized::defaults(table))
                .extract()
                .map_err(|e| {
                    ConfigError::Load(format!("in [apps.{name}]: {}", figment_message(e)))
                })?;
            apps.insert(name.clone(), workflow);
        }
        let config = Config {
            mode: raw.mode,
            pepper: raw.pepper,
            code: raw.code,
            workflow: raw.workflow,
            apps,
            risk: raw.risk,
            lookup: raw.lookup,
            routing: raw.routing,
            providers: raw.providers,
            sandbox: raw.sandbox,
            store: raw.store,
            server: raw.server,
            webhooks: raw.webhooks,
        };
        config.validate()?;
        Ok(config)
    }

    /// The workflow of `app`.
    pub fn app(&self, app: &str) -> Option<&Workflow> {
        self.apps.get(app)
    }

    /// True when the sandbox handles its test numbers for application workflow `wf`: the
    /// sandbox is enabled and, in production, the application opted in.
    pub fn sandbox_for(&self, wf: &Workflow) -> bool {
        self.sandbox.enabled && wf.sandbox.unwrap_or(self.mode == Mode::Development)
    }

    /// The route table file, when one is configured.
    pub fn routes_file(&self) -> Option<PathBuf> {
        let f = self.routing.routes_file.trim();
        (!f.is_empty()).then(|| PathBuf::from(f))
    }

    fn validate(&self) -> Result<(), ConfigError> {
        if !self.pepper.is_empty() {
            Pepper::parse(self.pepper.expose()).map_err(|e| invalid("pepper", e.to_string()))?;
        }
        if self.mode == Mode::Production {
            if self.pepper.is_empty() {
                return Err(invalid(
                    "pepper",
                    "must be set in production (SWITCHBOARD_PEPPER)",
                ));
            }
            if self.store.backend != StoreBackend::Redis {
                return Err(invalid(
                    "store.backend",
                    "must be \"redis\" in production: in-memory state is not shared and not kept",
                ));
            }
            if self.server.api_keys.is_empty() {
                return Err(invalid(
                    "server.api_keys",
                    "must hold at least one key in production",
                ));
            }
            if !self.providers.stand_in.is_empty() {
                return Err(invalid(
                    "providers.stand_in",
                    "must be empty in production: real providers only",
                ));
            }
        }
        if self.store.backend == StoreBackend::Redis {
            let url = self.store.url.trim();
            if !(url.starts_with("redis://") || url.starts_with("redis+cluster://")) {
                return Err(invalid(
                    "store.url",
                    "must start with redis:// (one node) or redis+cluster:// (a cluster)",
                ));
            }
        }
        if self.store.key_prefix.is_empty()
            || self.store.key_prefix.len() > 64
            || self.store.key_prefix.contains(['{', '}'])
        {
            return Err(invalid(
                "store.key_prefix",
                "must be 1-64 characters without `{` or `}`",
            ));
        }
        if self.store.command_timeout_ms == 0 {
            return Err(invalid(
                "store.command_timeout_ms",
                "must be greater than 0",
            ));
        }
        self.validate_lookup()?;
        if !matches!(self.providers.stand_in.as_str(), "" | "console" | "sandbox") {
            return Err(invalid(
                "providers.stand_in",
                format!(
                    "must be \"console\", \"sandbox\" or empty, got {:?}",
                    self.providers.stand_in
                ),
            ));
        }
        for (name, wf) in &self.apps {
            let at = if name == DEFAULT_APP {
                "workflow".to_owned()
            } else {
                format!("apps.{name}")
            };
            validate_workflow(&at, wf)?;
            wf.fraud
                .validate()
                .map_err(|(key, message)| invalid(format!("{at}.{key}"), message))?;
            wf.routing
                .validate()
                .map_err(|(key, message)| invalid(format!("{at}.{key}"), message))?;
            for (i, c) in wf.lookup.countries.iter().enumerate() {
                crate::phone::check_region(c).map_err(|_| {
                    invalid(
                        format!("{at}.lookup.countries[{i}]"),
                        "must be an ISO 3166-1 alpha-2 region such as US",
                    )
                })?;
            }
            if wf.risk.sim_swap_days == 0 {
                return Err(invalid(
                    format!("{at}.risk.sim_swap_days"),
                    "must be greater than 0",
                ));
            }
            if wf.sandbox == Some(true) && !self.sandbox.enabled {
                return Err(invalid(
                    format!("{at}.sandbox"),
                    "opts in to the sandbox, but sandbox.enabled is false",
                ));
            }
        }
        for (i, key) in self.server.api_keys.iter().enumerate() {
            if key.sha256.len() != 64 || !key.sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(invalid(
                    format!("server.api_keys[{i}].sha256"),
                    "must be 64 hex characters (switchboard hash-key <key> prints it)",
                ));
            }
            if !self.apps.contains_key(&key.app) {
                return Err(invalid(
                    format!("server.api_keys[{i}].app"),
                    format!(
                        "names no application (known: {})",
                        self.apps.keys().cloned().collect::<Vec<_>>().join(", ")
                    ),
                ));
            }
        }
        for (i, ip) in self.server.trusted_proxies.iter().enumerate() {
            if ip.parse::<std::net::IpAddr>().is_err() {
                return Err(invalid(
                    format!("server.trusted_proxies[{i}]"),
                    "must be an IP address",
                ));
            }
        }
        for (key, v) in [
            ("server.rate_per_key", self.server.rate_per_key),
            ("server.burst_per_key", self.server.burst_per_key),
            ("server.rate_per_ip", self.server.rate_per_ip),
            ("server.burst_per_ip", self.server.burst_per_ip),
        ] {
            if v == 0 {
                return Err(invalid(key, "must be greater than 0"));
            }
        }
        for (key, v) in [
            ("server.max_connections", self.server.max_connections as u64),
            (
                "server.header_read_timeout_secs",
                self.server.header_read_timeout_secs,
            ),
            (
                "server.grpc_request_timeout_secs",
                self.server.grpc_request_timeout_secs,
            ),
            (
                "server.grpc_max_concurrent_streams",
                u64::from(self.server.grpc_max_concurrent_streams),
            ),
            (
                "server.grpc_keepalive_interval_secs",
                self.server.grpc_keepalive_interval_secs,
            ),
            (
                "server.grpc_keepalive_timeout_secs",
                self.server.grpc_keepalive_timeout_secs,
            ),
            ("server.tcp_keepalive_secs", self.server.tcp_keepalive_secs),
        ] {
            if v == 0 {
                return Err(invalid(key, "must be greater than 0"));
            }
        }
        if self.server.worker_threads > MAX_WORKER_THREADS {
            return Err(invalid(
                "server.worker_threads",
                format!("must be at most {MAX_WORKER_THREADS} (0 = half the cores)"),
            ));
        }
        for (i, d) in self.webhooks.destinations.iter().enumerate() {
            if !(d.url.starts_with("http://") || d.url.starts_with("https://")) {
                return Err(invalid(
                    format!("webhooks.destinations[{i}].url"),
                    "must be an http:// or https:// URL",
                ));
            }
            if let Some(app) = &d.app
                && !self.apps.contains_key(app)
            {
                return Err(invalid(
                    format!("webhooks.destinations[{i}].app"),
                    "names no application",
                ));
            }
            if d.secret.expose().len() < 16 {
                return Err(invalid(
                    format!("webhooks.destinations[{i}].secret"),
                    "must be at least 16 characters",
                ));
            }
        }
        if self.webhooks.max_attempts == 0
            || self.webhooks.queue_capacity == 0
            || self.webhooks.max_in_flight == 0
            || self.webhooks.max_len == 0
        {
            return Err(invalid(
                "webhooks",
                "max_attempts, queue_capacity, max_in_flight and max_len must be greater than 0",
            ));
        }
        if self.webhooks.reclaim_idle_ms < 1000 {
            return Err(invalid(
                "webhooks.reclaim_idle_ms",
                "must be at least 1000 (a live sidecar renews its deliveries every third of it)",
            ));
        }
        for (key, name) in [
            ("webhooks.stream", &self.webhooks.stream),
            (
                "webhooks.dead_letter_stream",
                &self.webhooks.dead_letter_stream,
            ),
            ("webhooks.consumer_group", &self.webhooks.consumer_group),
        ] {
            if name.is_empty() || name.len() > 64 || name.contains(['{', '}']) {
                return Err(invalid(key, "must be 1-64 characters without braces"));
            }
        }
        if self.webhooks.stream == self.webhooks.dead_letter_stream {
            return Err(invalid(
                "webhooks.dead_letter_stream",
                "must differ from webhooks.stream",
            ));
        }
        if self.store.expiry_sweep_ms == 0 {
            return Err(invalid("store.expiry_sweep_ms", "must be greater than 0"));
        }
        if self.routing.attempt_timeout_ms == 0 {
            return Err(invalid(
                "routing.attempt_timeout_ms",
                "must be greater than 0",
            ));
        }
        for (i, p) in self.risk.high_risk_prefixes.iter().enumerate() {
            if !is_e164_prefix(p) {
                return Err(invalid(
                    format!("risk.high_risk_prefixes[{i}]"),
                    format!("must be `+` followed by 1-15 digits, got {p:?}"),
                ));
            }
        }
        self.risk.disposable_list()?;
        let sb = &self.sandbox.numbers;
        for (key, v) in [
            ("sandbox.approve_prefix", &sb.approve_prefix),
            ("sandbox.high_risk", &sb.high_risk),
            ("sandbox.undeliverable", &sb.undeliverable),
        ] {
            if !is_e164_prefix(v) {
                return Err(invalid(
                    key,
                    format!("must be `+` followed by digits, got {v:?}"),
                ));
            }
        }
        Ok(())
    }
}

impl Config {
    /// `[lookup]`: a named provider has its table, TTLs are positive, the price is a price.
    fn validate_lookup(&self) -> Result<(), ConfigError> {
        let l = &self.lookup;
        if !l.provider.is_empty() && !l.tables.contains_key(&l.provider) {
            return Err(invalid(
                format!("lookup.{}", l.provider.chars().take(32).collect::<String>()),
                "is missing: lookup.provider names it",
            ));
        }
        for (key, v) in [
            ("lookup.line_ttl_secs", l.line_ttl_secs),
            ("lookup.sim_swap_ttl_secs", l.sim_swap_ttl_secs),
        ] {
            if v == 0 {
                return Err(invalid(key, "must be greater than 0"));
            }
        }
        if !(l.price.is_finite() && l.price >= 0.0) {
            return Err(invalid("lookup.price", "must be a price of 0 or more"));
        }
        if l.wait_ms > 60_000 {
            return Err(invalid("lookup.wait_ms", "must be at most 60000"));
        }
        Ok(())
    }
}

fn validate_workflow(at: &str, wf: &Workflow) -> Result<(), ConfigError> {
    if !(MIN_LENGTH..=MAX_LENGTH).contains(&wf.code_length) {
        return Err(invalid(
            format!("{at}.code_length"),
            format!(
                "must be in {MIN_LENGTH}..={MAX_LENGTH}, got {}",
                wf.code_length
            ),
        ));
    }
    if wf.brand.trim().is_empty() || wf.brand.len() > 32 {
        return Err(invalid(format!("{at}.brand"), "must be 1-32 characters"));
    }
    if !(60..=86_400).contains(&wf.hosted.session_ttl_secs) {
        return Err(invalid(
            format!("{at}.hosted.session_ttl_secs"),
            "must be between 60 and 86400",
        ));
    }
    if let Some(bad) = wf
        .hosted
        .callback_urls
        .iter()
        .find(|u| !(u.starts_with("https://") || u.starts_with("http://")))
    {
        return Err(invalid(
            format!("{at}.hosted.callback_urls"),
            format!("{bad:?} is not an http:// or https:// URL prefix"),
        ));
    }
    let l = &wf.limits;
    for (key, v) in [
        ("validity_secs", l.validity_secs),
        ("max_attempts", u64::from(l.max_attempts)),
        ("resend_window_secs", l.resend_window_secs),
        ("verified_ttl_secs", l.verified_ttl_secs),
        ("record_ttl_secs", l.record_ttl_secs),
    ] {
        if v == 0 {
            return Err(invalid(
                format!("{at}.limits.{key}"),
                "must be greater than 0",
            ));
        }
    }
    if l.validity_secs > 86_400 {
        return Err(invalid(
            format!("{at}.limits.validity_secs"),
            "must be at most 86400 (one day)",
        ));
    }
    let mut seen = wf.channel_preference.clone();
    seen.sort();
    if seen.windows(2).any(|w| w[0] == w[1]) {
        return Err(invalid(
            format!("{at}.channel_preference"),
            "lists a channel twice",
        ));
    }
    Ok(())
}

fn is_e164_prefix(s: &str) -> bool {
    s.strip_prefix('+')
        .is_some_and(|d| (1..=15).contains(&d.len()) && d.bytes().all(|b| b.is_ascii_digit()))
}

/// figment's message with the key path it names.
fn figment_message(e: figment::Error) -> String {
    e.into_iter()
        .map(|e| {
            let path = e.path.join(".");
            if path.is_empty() {
                e.kind.to_string()
            } else {
                format!("`{path}`: {}", e.kind)
            }
        })
        .collect::<Vec<_>>()
        .join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_defaults_load_and_match_the_product_limits() {
        let c = Config::default();
        assert_eq!(c.mode, Mode::Development);
        let l = c.workflow.limits;
        assert_eq!(
            (l.validity_secs, l.max_attempts, l.max_resends),
            (300, 2, 2)
        );
        assert_eq!(l.resend_window_secs, 86_400);
        assert_eq!(c.workflow.code_length, 6);
    }

    #[test]
    fn apps_inherit_the_default_workflow_and_override_parts() {
        let c = Config::from_toml(
            "[apps.strict.limits]\nmax_attempts = 1\n[apps.strict.risk]\nvoip = \"DECLINE\"\n",
        )
        .unwrap();
        let strict = c.app("strict").unwrap();
        assert_eq!(strict.limits.max_attempts, 1);
        assert_eq!(strict.limits.validity_secs, 300);
        assert_eq!(strict.risk.voip, crate::risk::Action::Decline);
        assert_eq!(strict.brand, "switchboard");
    }

    #[test]
    fn the_serving_runtime_takes_half_the_cores_unless_told() {
        let c = Config::default();
        assert_eq!(c.server.worker_threads, 0);
        assert_eq!(c.server.runtime_threads(1), 1);
        assert_eq!(c.server.runtime_threads(2), 1);
        assert_eq!(c.server.runtime_threads(8), 4);
        let c = Config::from_toml("[server]\nworker_threads = 3\n").unwrap();
        assert_eq!(c.server.runtime_threads(2), 3);
        let e = Config::from_toml("[server]\nworker_threads = 257\n").unwrap_err();
        assert!(e.to_string().contains("server.worker_threads"), "{e}");
    }

    #[test]
    fn invalid_values_name_their_key() {
        let e = Config::from_toml("[workflow]\ncode_length = 3\n").unwrap_err();
        assert!(e.to_string().contains("workflow.code_length"), "{e}");
        let e = Config::from_toml("[workflow.limits]\nmax_attempts = \"two\"\n").unwrap_err();
        assert!(e.to_string().contains("max_attempts"), "{e}");
        let e = Config::from_toml("[workflow.limits]\nmax_attemps = 2\n").unwrap_err();
        assert!(e.to_string().contains("max_attemps"), "{e}");
        let e = Config::from_toml("pepper = \"short\"\n").unwrap_err();
        assert!(
            e.to_string().contains("`pepper`") && !e.to_string().contains("short\""),
            "{e}"
        );
        let e = Config::from_toml("[risk]\nhigh_risk_prefixes = [\"882\"]\n").unwrap_err();
        assert!(e.to_string().contains("risk.high_risk_prefixes[0]"), "{e}");
    }

    #[test]
    fn production_refuses_the_development_shortcuts() {
        let e = Config::from_toml("mode = \"production\"\n").unwrap_err();
        assert!(e.to_string().contains("pepper"), "{e}");
        let e = Config::from_toml("mode = \"production\"\npepper = \"000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f\"\n")
            .unwrap_err();
        assert!(e.to_string().contains("store.backend"), "{e}");
        let e = Config::from_toml(
            "mode = \"production\"\npepper = \"000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f\"\n[store]\nbackend = \"redis\"\n",
        )
        .unwrap_err();
        assert!(e.to_string().contains("server.api_keys"), "{e}");
        let e = Config::from_toml(&format!(
            "mode = \"production\"\npepper = \"000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f\"\n[store]\nbackend = \"redis\"\n[server]\napi_keys = [{{ app = \"default\", sha256 = \"{}\" }}]\n",
            "ab".repeat(32)
        ))
        .unwrap_err();
        assert!(e.to_string().contains("providers.stand_in"), "{e}");
    }

    #[test]
    fn debug_never_shows_the_pepper() {
        let c = Config::from_toml("pepper = \"q8x3Vb1mZ0pW7yK2nR5tL9cD4fG6hJ0aS8eU1iO3wQ4=\"\n")
            .unwrap();
        assert!(!format!("{c:?}").contains("q8x3Vb1m"));
    }

    #[test]
    fn pepper_needs_32_bytes_of_hex_or_base64_and_refuses_low_entropy_values() {
        for good in [
            "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f",
            "q8x3Vb1mZ0pW7yK2nR5tL9cD4fG6hJ0aS8eU1iO3wQ4=",
            "q8x3Vb1mZ0pW7yK2nR5tL9cD4fG6hJ0aS8eU1iO3wQ4",
            "q8x3Vb1mZ0pW7yK2nR5tL9cD4fG6hJ0aS8eU1iO3wQ4-_w",
        ] {
            Config::from_toml(&format!("pepper = \"{good}\"\n")).unwrap();
        }
        for (bad, why) in [
            // 32 characters of text, but 24 bytes of base64 key material.
            ("0123456789abcdefghijklmnopqrstuv", "at least 32 bytes"),
            ("000102030405060708090a0b0c0d0e0f", "at least 32 bytes"),
            (&"a".repeat(64), "low-entropy"),
            (&"ab".repeat(32), "low-entropy"),
            (&"QUFB".repeat(11), "low-entropy"),
            ("a-very-secret-pepper-value!!", "hex or base64"),
        ] {
            let e = Config::from_toml(&format!("pepper = \"{bad}\"\n")).unwrap_err();
            let text = e.to_string();
            assert!(
                text.contains("`pepper`") && text.contains(why),
                "{bad}: {text}"
            );
            assert!(!text.contains(bad), "the error echoes the pepper: {text}");
        }
    }
}
