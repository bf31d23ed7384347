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
    /// Stage 2: the line's live facts, onto `info`, when the workflow asks for them.
    pub(super) async fn look_up_line(
        &self,
        wf: &Workflow,
        info: &mut PhoneInfo,
        purpose: Purpose,
    ) -> Result<LineLookup, Error> {
        let lookups = &self.inner.lookups;
        let Some(provider) = lookups.provider.as_ref() else {
            return Ok(LineLookup::default());
        };
        let policy = &wf.lookup;
        let wanted = match policy.mode {
            LookupMode::Off => false,
            LookupMode::WhenUnknown => info.line_type() == LineType::Unknown,
            LookupMode::Always => true,
        } && policy.covers(info.region.as_deref())
            && self.sandbox_for(wf, &info.e164).is_none();
        if !wanted {
            return Ok(LineLookup::default());
        }
        let name = provider.name().to_owned();
        let want_sim = policy.sim_swap && provider.capabilities().sim_swap;
        let now = self.now();
        let mut cached = self.inner.store.cached_line(&info.e164, now).await?;
        let missing = |c: &CachedLine| (c.line.is_none(), want_sim && c.sim.is_none());
        let live_allowed = purpose == Purpose::Verify || policy.report == LookupReport::Live;
        let mut charged = None;
        match missing(&cached) {
            (false, false) => lookups.count(&name, "cached"),
            _ if !live_allowed => {}
            (line, sim) => {
                let config = &self.inner.config.lookup;
                let wait = Duration::from_millis(config.wait_ms);
                let hold = i64::try_from(config.wait_ms).unwrap_or(i64::MAX).max(1);
                if self.inner.store.claim_lookup(&info.e164, now, hold).await? {
                    let request = LookupRequest {
                        e164: &info.e164,
                        line,
                        sim_swap: sim,
                    };
                    match provider.lookup_boxed(&request).await {
                        Ok(facts) => {
                            lookups.count(&name, "lookup");
                            charged = Some((name.clone(), config.price));
                            self.save_facts(&info.e164, &request, facts, &mut cached)
                                .await?;
                        }
                        Err(e) => {
                            lookups.count(&name, &format!("failed_{}", e.class));
                            self.inner
                                .store
                                .save_line(&info.e164, now, LineWrite::default())
                                .await?;
                            tracing::warn!(provider = %name, class = %e.class, code = ?e.code, "line lookup failed: {}", e.message);
                            if policy.fail_closed {
                                return Err(Error::ProviderUnavailable);
                            }
                        }
                    }
                } else {
                    let outcome = self.await_answer(&info.e164, wait, &mut cached).await?;
                    lookups.count(&name, outcome);
                    if outcome == "busy" && policy.fail_closed {
                        return Err(Error::ProviderUnavailable);
                    }
                }
            }
        }
        let window_ms = i64::from(wf.risk.sim_swap_days).saturating_mul(86_400_000);
        let (facts, swap) = decode(&cached);
        let sim_swapped = swap.is_some_and(|s| s.swapped_within(self.now(), window_ms));
        if let Some(facts) = facts {
            info.live = Some(Arc::new(facts));
        }
        Ok(LineLookup {
            sim_swapped,
            charged,
        })
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
