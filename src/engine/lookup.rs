//! Stage 2 of send and check (and, where configured, the phone report): live line facts.
//!
//! When the application's `[workflow.lookup]` asks for it and the number is in scope, the
//! facts come from the store's cache or, once per TTL across every instance, from the lookup
//! provider: the instance that takes the in-flight claim asks, the others wait for its answer.
//! A failed lookup never blocks (static facts stay, a warning is logged, the failure is
//! counted) unless the application is `fail_closed`.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use switchboard_providers::{DynLineLookup, LineFacts, LookupRequest, SimSwap};

use super::Engine;
use crate::config::{LookupConfig, LookupMode, LookupReport, Workflow};
use crate::error::Error;
use crate::phone::{LineType, PhoneInfo};
use crate::store::{CachedLine, LineWrite};

/// How often a waiting instance reads the cache for another instance's answer.
const WAIT_POLL: Duration = Duration::from_millis(25);

/// The lookup provider and what it has done (for `/metrics`).
pub(super) struct Lookups {
    provider: Option<Arc<dyn DynLineLookup>>,
    /// Counts by (provider, outcome): `lookup`, `cached`, `shared`, `busy`, `failed_<class>`.
    counts: Mutex<BTreeMap<(String, String), u64>>,
}

impl Lookups {
    /// The configured provider (built through `switchboard_providers::lookup::build_lookup`),
    /// every configured table validated.
    pub(super) fn from_config(
        config: &LookupConfig,
        explicit: Option<Arc<dyn DynLineLookup>>,
    ) -> Result<Self, crate::config::ConfigError> {
        let context = switchboard_providers::ProviderContext::new().map_err(|e| {
            crate::config::ConfigError::Invalid {
                key: "lookup".into(),
                message: e.detail(),
            }
        })?;
        let mut chosen = None;
        for (name, table) in &config.tables {
            let built = switchboard_providers::lookup::build_lookup(name, table, &context)
                .map_err(|e| crate::config::ConfigError::Invalid {
                    key: [format!("lookup.{name}"), e.key]
                        .into_iter()
                        .filter(|k| !k.is_empty())
                        .collect::<Vec<_>>()
                        .join("."),
                    message: e.message,
                })?;
            if *name == config.provider {
                chosen = Some(built);
            }
        }
        Ok(Lookups {
            provider: explicit.or(chosen),
            counts: Mutex::default(),
        })
    }

    fn count(&self, provider: &str, outcome: &str) {
        *self
            .counts
            .lock()
            .entry((provider.to_owned(), outcome.to_owned()))
            .or_default() += 1;
    }

    /// `switchboard_line_lookups_total{provider, outcome}` in the Prometheus text format.
    pub(super) fn render(&self) -> String {
        let counts = self.counts.lock();
        if counts.is_empty() {
            return String::new();
        }
        let mut out = String::from(
            "# HELP switchboard_line_lookups_total Line facts asked for, by lookup provider and outcome (lookup: the provider answered; cached: the store had them; shared: another instance's answer was awaited; busy: none came in time; failed_<class>: the provider failed)\n# TYPE switchboard_line_lookups_total counter\n",
        );
        for ((provider, outcome), n) in counts.iter() {
            out.push_str(&format!(
                "switchboard_line_lookups_total{{provider=\"{provider}\",outcome=\"{outcome}\"}} {n}\n"
            ));
        }
        out
    }
}

/// Why line facts are wanted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Purpose {
    /// A send or a check: cache first, then the provider.
    Verify,
    /// A phone report: as `[workflow.lookup].report` says.
    Report,
}

/// What the stage found.
#[derive(Clone, Debug, Default)]
pub(super) struct LineLookup {
    /// The SIM was swapped within the workflow's `risk.sim_swap_days`.
    pub sim_swapped: bool,
    /// The price this call paid (a provider lookup was made), in the route table's currency.
    pub charged: Option<(String, f64)>,
}

impl Engine {
    /// Stage 2: the line's live facts, onto `info`, when the workflow asks for them: from the
    /// cache, else (when allowed) from the provider, once across instances.
    pub(super) async fn look_up_line(
        &self,
        wf: &Workflow,
        info: &mut PhoneInfo,
        purpose: Purpose,
    ) -> Result<LineLookup, Error> {
        let Some(provider) = self.lookup_provider_for(wf, info) else {
            return Ok(LineLookup::default());
        };
        let policy = &wf.lookup;
        let name = provider.name().to_owned();
        let want_sim = policy.sim_swap && provider.capabilities().sim_swap;
        let mut cached = self.inner.store.cached_line(&info.e164, self.now()).await?;
        let live_allowed = purpose == Purpose::Verify || policy.report == LookupReport::Live;
        let mut charged = None;
        match (cached.line.is_none(), want_sim && cached.sim.is_none()) {
            (false, false) => self.inner.lookups.count(&name, "cached"),
            _ if !live_allowed => {}
            (line, sim_swap) => {
                let request = LookupRequest {
                    e164: &info.e164,
                    line,
                    sim_swap,
                };
                charged = self
                    .fetch_missing(provider, &request, policy.fail_closed, &mut cached)
                    .await?;
            }
        }
        let window_ms = i64::from(wf.risk.sim_swap_days).saturating_mul(86_400_000);
        let (facts, swap) = decode(&cached);
        if let Some(facts) = facts {
            info.live = Some(Arc::new(facts));
        }
        Ok(LineLookup {
            sim_swapped: swap.is_some_and(|s| s.swapped_within(self.now(), window_ms)),
            charged,
        })
    }

    /// The lookup provider, when the workflow's mode and scope want live facts for this
    /// number (never for the sandbox's numbers).
    fn lookup_provider_for(
        &self,
        wf: &Workflow,
        info: &PhoneInfo,
    ) -> Option<&Arc<dyn DynLineLookup>> {
        let policy = &wf.lookup;
        let wanted = match policy.mode {
            LookupMode::Off => false,
            LookupMode::WhenUnknown => info.line_type() == LineType::Unknown,
            LookupMode::Always => true,
        };
        (wanted
            && policy.covers(info.region.as_deref())
            && self.sandbox_for(wf, &info.e164).is_none())
        .then_some(self.inner.lookups.provider.as_ref())
        .flatten()
    }

    /// Asks the provider for what `request` lists, when this instance takes the claim, or
    /// waits for the instance that holds it. The price paid, when this call paid.
    async fn fetch_missing(
        &self,
        provider: &Arc<dyn DynLineLookup>,
        request: &LookupRequest<'_>,
        fail_closed: bool,
        cached: &mut CachedLine,
    ) -> Result<Option<(String, f64)>, Error> {
        let lookups = &self.inner.lookups;
        let config = &self.inner.config.lookup;
        let name = provider.name();
        let e164 = request.e164;
        let hold = i64::try_from(config.wait_ms).unwrap_or(i64::MAX).max(1);
        if !self
            .inner
            .store
            .claim_lookup(e164, self.now(), hold)
            .await?
        {
            let wait = Duration::from_millis(config.wait_ms);
            let outcome = self.await_answer(e164, wait, cached).await?;
            lookups.count(name, outcome);
            if outcome == "busy" && fail_closed {
                return Err(Error::ProviderUnavailable);
            }
            return Ok(None);
        }
        match provider.lookup_boxed(request).await {
            Ok(facts) => {
                lookups.count(name, "lookup");
                self.save_facts(e164, request, facts, cached).await?;
                Ok(Some((name.to_owned(), config.price)))
            }
            Err(e) => {
                lookups.count(name, &format!("failed_{}", e.class));
                // Give the claim back: the next send may try again.
                self.inner
                    .store
                    .save_line(e164, self.now(), LineWrite::default())
                    .await?;
                tracing::warn!(provider = %name, class = %e.class, code = ?e.code, "line lookup failed: {}", e.message);
                if fail_closed {
                    return Err(Error::ProviderUnavailable);
                }
                Ok(None)
            }
        }
    }

    /// Writes what the provider answered (a "no answer" too, so it is not paid for again
    /// within the TTL) and gives the claim back.
    async fn save_facts(
        &self,
        e164: &str,
        request: &LookupRequest<'_>,
        mut facts: LineFacts,
        cached: &mut CachedLine,
    ) -> Result<(), Error> {
        let config = &self.inner.config.lookup;
        let ttl = |secs: u64| i64::try_from(secs.saturating_mul(1000)).unwrap_or(i64::MAX);
        let swap = facts.sim_swap.take();
        let line = request
            .line
            .then(|| serde_json::to_string(&facts).map_err(|_| Error::Internal))
            .transpose()?;
        let sim = request
            .sim_swap
            .then(|| serde_json::to_string(&swap).map_err(|_| Error::Internal))
            .transpose()?;
        self.inner
            .store
            .save_line(
                e164,
                self.now(),
                LineWrite {
                    line: line.as_deref().map(|v| (v, ttl(config.line_ttl_secs))),
                    sim: sim.as_deref().map(|v| (v, ttl(config.sim_swap_ttl_secs))),
                },
            )
            .await?;
        cached.line = line.or(cached.line.take());
        cached.sim = sim.or(cached.sim.take());
        Ok(())
    }

    /// Another instance holds the claim: read the cache until its answer is there or `wait`
    /// is over. `shared` when the answer came, `busy` otherwise.
    async fn await_answer(
        &self,
        e164: &str,
        wait: Duration,
        cached: &mut CachedLine,
    ) -> Result<&'static str, Error> {
        let before = cached.clone();
        let mut waited = Duration::ZERO;
        while waited < wait {
            tokio::time::sleep(WAIT_POLL).await;
            waited += WAIT_POLL;
            let now = self.inner.store.cached_line(e164, self.now()).await?;
            if now != before {
                *cached = now;
                return Ok("shared");
            }
        }
        Ok("busy")
    }

    /// The lookup counters in the Prometheus text format, for `/metrics`.
    pub fn lookup_metrics(&self) -> String {
        self.inner.lookups.render()
    }
}

/// The cached entries as facts: the line entry with the SIM-swap entry folded in. An entry
/// that does not decode is ignored (static facts are used) and overwritten at its next lookup.
fn decode(cached: &CachedLine) -> (Option<LineFacts>, Option<SimSwap>) {
    let swap: Option<SimSwap> = cached
        .sim
        .as_deref()
        .and_then(|s| serde_json::from_str::<Option<SimSwap>>(s).ok())
        .flatten();
    let line: Option<LineFacts> = cached
        .line
        .as_deref()
        .and_then(|s| serde_json::from_str(s).ok());
    let facts = line.map(|mut f| {
        f.sim_swap = swap.clone();
        f
    });
    (facts, swap)
}
