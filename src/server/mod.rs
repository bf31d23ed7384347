//! The sidecar: gRPC (tonic) and HTTP/JSON (axum) over one [`Engine`], with API-key auth,
//! per-key and per-IP rate limits, Prometheus metrics, provider callbacks and signed outbound
//! webhooks. [`start`] runs both servers in-process (tests use it on `127.0.0.1:0`);
//! [`serve`] is `switchboard serve`.

pub mod auth;
pub mod conn;
pub mod destinations;
pub mod errors;
pub mod grpc;
pub mod hosted;
pub mod http;
pub mod lookup_batch;
pub mod metrics;
mod outbox;
pub mod ratelimit;
pub mod webhooks;

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::config::{Config, Mode, ServerConfig};
use crate::{Engine, EngineBuilder};
use auth::{Auth, Principal};
use errors::ApiError;
use metrics::Metrics;
use ratelimit::RateLimits;
use webhooks::Webhooks;

/// Everything a request handler needs; shared by both APIs.
pub struct AppState {
    pub engine: Engine,
    pub auth: Auth,
    pub limits: RateLimits,
    pub metrics: Arc<Metrics>,
    pub config: ServerConfig,
    /// Webhook destinations: configured and created through the API.
    pub destinations: Arc<destinations::Destinations>,
    /// Signs the hosted page's CSRF tokens (random per process unless `pepper` is set).
    pub page_key: hosted::PageKey,
    trusted_proxies: Vec<IpAddr>,
    _webhooks: Webhooks,
    _expiry: crate::ExpirySweeper,
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState").finish_non_exhaustive()
    }
}

impl AppState {
    /// The client's address: the socket peer, or — when the peer is one of
    /// `server.trusted_proxies` — the nearest address in `X-Forwarded-For` that is not a
    /// trusted proxy. A forwarded header from anyone else is ignored (it is trivially forged).
    pub fn client_ip(&self, peer: Option<IpAddr>, forwarded_for: Option<&str>) -> Option<IpAddr> {
        let trusted = |ip: &IpAddr| self.trusted_proxies.contains(ip);
        let peer = peer?;
        if !trusted(&peer) {
            return Some(peer);
        }
        forwarded_for
            .into_iter()
            .flat_map(|h| h.split(','))
            .rev()
            .filter_map(|s| s.trim().parse::<IpAddr>().ok())
            .find(|ip| !trusted(ip))
            .or(Some(peer))
    }

    /// The per-IP rate limit: the first gate of both APIs, before authentication and before any
    /// body or signature is looked at. `ip` is the client address from [`AppState::client_ip`].
    pub fn limit_ip(&self, ip: Option<IpAddr>) -> Result<(), ApiError> {
        match ip {
            Some(ip) => self.limits.check_ip(ip).map_err(ApiError::rate_limited),
            None => Ok(()),
        }
    }

    /// Authenticates the `x-api-key` and applies the per-key rate limit (after
    /// [`AppState::limit_ip`]).
    pub fn authorize(&self, api_key: Option<&str>) -> Result<Principal, ApiError> {
        let principal = self
            .auth
            .authenticate(api_key)
            .ok_or_else(ApiError::unauthenticated)?;
        self.limits
            .check_key(&principal.key_id)
            .map_err(ApiError::rate_limited)?;
        Ok(principal)
    }

    /// Times `f` into the latency histogram of `api`/`method`.
    pub async fn timed<T>(&self, api: &str, method: &str, f: impl Future<Output = T>) -> T {
        let started = Instant::now();
        let out = f.await;
        self.metrics
            .observe(api, method, started.elapsed().as_secs_f64());
        out
    }
}

/// Why the sidecar could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Build(#[from] crate::BuildError),
    #[error(transparent)]
    ApiKey(#[from] auth::BadKeyHash),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: String,
        source: std::io::Error,
    },
}

/// A running sidecar.
pub struct Running {
    pub grpc_addr: SocketAddr,
    pub http_addr: SocketAddr,
    pub state: Arc<AppState>,
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
    grace: Duration,
}

impl Running {
    /// Stops accepting, lets in-flight requests finish (up to the grace period), then returns.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        let all = futures::future::join_all(self.tasks);
        if tokio::time::timeout(self.grace, all).await.is_err() {
            tracing::warn!("shutdown grace period over: in-flight requests dropped");
        }
        // The outcome evidence still buffered (approvals, spend, route ledger).
        let _ = tokio::time::timeout(self.grace, self.state.engine.flush_outcomes()).await;
    }
}

/// Builds the engine (with `customize` applied to its builder), binds both listeners from
/// `config.server`, and serves until [`Running::shutdown`].
pub async fn start(
    config: Config,
    customize: impl FnOnce(EngineBuilder) -> EngineBuilder,
) -> Result<Running, StartError> {
    let server = config.server.clone();
    // Before anything is spawned: a key that cannot be used stops the start.
    let auth = Auth::new(&server)?;
    let metrics = Arc::new(Metrics::new());
    // With the Redis store, webhooks go through the durable outbox (on its own connection).
    let outbox = match config.store.backend {
        crate::config::StoreBackend::Redis => match crate::store::Store::from_config(&config.store)
        {
            Ok(crate::store::Store::Redis(r)) => Some(r),
            _ => None,
        },
        crate::config::StoreBackend::Memory => None,
    };
    // API destinations live in the engine's store, bound once the engine is built.
    let destinations = Arc::new(destinations::Destinations::new(
        config.webhooks.destinations.clone(),
    ));
    let webhooks = Webhooks::start(
        &config.webhooks,
        destinations.clone(),
        outbox,
        metrics.clone(),
    );
    let mut builder = EngineBuilder::new(config.clone());
    if let Some(sink) = webhooks.sink(metrics.clone()) {
        builder = builder.on_event(sink);
    }
    let engine = customize(builder).build()?;
    destinations.bind(engine.store().clone());
    let expiry = engine.spawn_expiry_sweeper(Duration::from_millis(config.store.expiry_sweep_ms));
    let bind = |addr: String| async move {
        TcpListener::bind(&addr)
            .await
            .map_err(|source| StartError::Bind { addr, source })
    };
    let grpc_listener = bind(server.grpc_addr.clone()).await?;
    let http_listener = bind(server.http_addr.clone()).await?;
    let grpc_addr = grpc_listener
        .local_addr()
        .map_err(|source| StartError::Bind {
            addr: server.grpc_addr.clone(),
            source,
        })?;
    let http_addr = http_listener
        .local_addr()
        .map_err(|source| StartError::Bind {
            addr: server.http_addr.clone(),
            source,
        })?;

    let state = Arc::new(AppState {
        engine,
        auth,
        limits: RateLimits::new(&server),
        metrics,
        trusted_proxies: server
            .trusted_proxies
            .iter()
            .filter_map(|ip| ip.parse().ok())
            .collect(),
        config: server.clone(),
        destinations,
        page_key: hosted::PageKey::new(&config.pepper),
        _webhooks: webhooks,
        _expiry: expiry,
    });
    if config.mode == Mode::Development {
        tracing::warn!(
            open = state.auth.is_open(),
            "development mode: console provider stands in for unconfigured providers and logs codes"
        );
    }

    let (stop, stopped) = watch::channel(false);
    let signal = move || {
        let mut rx = stopped.clone();
        async move {
            let _ = rx.wait_for(|s| *s).await;
        }
    };
    let grpc_task = tokio::spawn(grpc::serve(state.clone(), grpc_listener, signal()));
    let http_task = tokio::spawn(http::serve(state.clone(), http_listener, signal()));
    // Bounded memory of the rate limiters.
    let limits_state = state.clone();
    let mut tick_stop = stop.subscribe();
    let sweeper = tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(60));
        loop {
            tokio::select! {
                _ = tick.tick() => limits_state.limits.shrink(),
                _ = tick_stop.wait_for(|s| *s) => break,
            }
        }
    });
    tracing::info!(%grpc_addr, %http_addr, "switchboard serving");
    Ok(Running {
        grpc_addr,
        http_addr,
        state,
        stop,
        tasks: vec![grpc_task, http_task, sweeper],
        grace: Duration::from_secs(server.shutdown_grace_secs),
    })
}

/// `switchboard serve`: runs until SIGINT or SIGTERM, then drains.
pub async fn serve(config: Config) -> Result<(), StartError> {
    if config.mode == Mode::Development {
        eprintln!(
            "\n  ========================================================================\n  \
             switchboard DEVELOPMENT MODE\n  \
             state: {store} | providers without config: {stand_in} (codes in the log)\n  \
             API keys: {auth} | pepper: {pepper}\n  \
             Never expose this to the internet; set mode = \"production\" for real use.\n  \
             ========================================================================\n",
            store = match config.store.backend {
                crate::config::StoreBackend::Memory => "in-memory",
                crate::config::StoreBackend::Redis => "redis",
            },
            stand_in = if config.providers.stand_in.is_empty() {
                "refused"
            } else {
                config.providers.stand_in.as_str()
            },
            auth = if config.server.api_keys.is_empty() {
                "none required"
            } else {
                "required"
            },
            pepper = if config.pepper.is_empty() {
                "random per process"
            } else {
                "configured"
            },
        );
    }
    let running = start(config, |b| b).await?;
    // Every region's phone patterns compiled now, off the request path, so the first number of
    // a region costs what any other does (docs/performance.md, "Phone patterns"). On a runtime
    // worker, not a thread of its own: each compiled pattern keeps a fast search cache for the
    // first thread that used it, and a worker goes on to use it (~10 MiB less than a thread that
    // exits). It holds that one worker for the ~0.2 s it takes, once, at startup.
    tokio::spawn(async {
        let started = Instant::now();
        let parsed = crate::phone::warm_up();
        tracing::debug!(
            parsed,
            ms = started.elapsed().as_millis() as u64,
            "phone patterns compiled"
        );
    });
    shutdown_signal().await;
    tracing::info!("shutting down: draining in-flight requests");
    running.shutdown().await;
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("SIGTERM handler");
        tokio::select! {
            _ = ctrl_c => {},
            _ = term.recv() => {},
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn state(trusted: &str) -> Arc<AppState> {
        let config = Config::from_toml(&format!(
            "[server]\ngrpc_addr = \"127.0.0.1:0\"\nhttp_addr = \"127.0.0.1:0\"\ntrusted_proxies = [{trusted}]\n"
        ))
        .unwrap();
        let running = start(config, |b| b).await.unwrap();
        let state = running.state.clone();
        running.shutdown().await;
        state
    }

    #[tokio::test]
    async fn start_refuses_an_api_key_hash_that_does_not_decode_rather_than_open_the_api() {
        let mut config = Config::from_toml(
            "[server]\ngrpc_addr = \"127.0.0.1:0\"\nhttp_addr = \"127.0.0.1:0\"\n",
        )
        .unwrap();
        // Changed after loading (library users can): load-time validation never saw it.
        config.server.api_keys = vec![crate::config::ApiKeyConfig {
            app: "default".into(),
            sha256: "not-hex-".repeat(8),
        }];
        let err = match start(config, |b| b).await {
            Ok(running) => {
                let open = running.state.auth.is_open();
                running.shutdown().await;
                panic!("started anyway (API open: {open})");
            }
            Err(e) => e.to_string(),
        };
        assert!(
            err.contains("server.api_keys[0]") && err.contains("default"),
            "{err}"
        );
        assert!(
            !err.contains("not-hex-"),
            "the configured value leaked: {err}"
        );
    }

    #[tokio::test]
    async fn forwarded_for_is_believed_only_from_a_trusted_proxy() {
        let s = state("\"10.0.0.1\"").await;
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        // From the proxy: the nearest untrusted hop.
        assert_eq!(
            s.client_ip(Some(ip("10.0.0.1")), Some("203.0.113.7, 198.51.100.2")),
            Some(ip("198.51.100.2"))
        );
        // From anyone else the header is ignored.
        assert_eq!(
            s.client_ip(Some(ip("192.0.2.9")), Some("203.0.113.7")),
            Some(ip("192.0.2.9"))
        );
        // A proxy with no usable header stays the client.
        assert_eq!(
            s.client_ip(Some(ip("10.0.0.1")), Some("garbage")),
            Some(ip("10.0.0.1"))
        );
    }
}
