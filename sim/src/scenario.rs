//! Scenario files: the countries, their users and their routes, with the true delivery
//! parameters of each route and how they change over simulated time. Every table refuses
//! unknown keys; [`Scenario::from_toml`] validates what serde cannot.

use std::collections::{BTreeMap, HashMap};
use std::str::FromStr;

use anyhow::{Context, ensure};
use serde::Deserialize;
use switchboard::providers::Channel;

use crate::numbers;

/// A scenario as written in its TOML file.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScenarioFile {
    pub name: String,
    pub seed: u64,
    pub duration_secs: f64,
    pub verifications: usize,
    pub currency: String,
    /// Resends a user may ask for after the first send (engine default: 2).
    #[serde(default)]
    pub max_resends: Option<u32>,
    /// Validity of a verification's codes (engine default: 300 s).
    #[serde(default)]
    pub validity_secs: Option<u64>,
    /// The user's typing delay between a code's arrival and its check: uniform in
    /// [min, max] seconds. Default [5, 15].
    #[serde(default)]
    pub typing_secs: Option<[f64; 2]>,
    /// Optional: settings of the engine's `[workflow.routing]` for every run (breakers,
    /// exploration, windows...); `strategy` is the run's and cannot be set here.
    #[serde(default)]
    pub routing: Option<toml::Table>,
    pub countries: BTreeMap<String, CountryFile>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CountryFile {
    pub share: f64,
    pub convert: f64,
    pub patience_secs: f64,
    #[serde(default)]
    pub preference: Option<Vec<String>>,
    pub routes: Vec<RouteFile>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteFile {
    pub channel: String,
    pub provider: String,
    pub price: f64,
    pub deliver: f64,
    pub latency_secs: [f64; 2],
    pub receipt: f64,
    pub accept: f64,
    /// P(the user enters a code that came this way | it arrived within patience); default:
    /// the country's `convert` (a voice call or a spam-filtered sender converts worse).
    #[serde(default)]
    pub convert: Option<f64>,
    /// P(an accepted request times out at the engine).
    #[serde(default)]
    pub timeout: f64,
    /// P(a request that timed out was nevertheless taken by the provider: charged, and
    /// delivered with `deliver`). Default 0.5.
    #[serde(default = "half")]
    pub timeout_accepted: f64,
    /// P(a delivered message produces a `delivered` receipt). Default: `receipt`.
    #[serde(default)]
    pub delivered_receipt: Option<f64>,
    #[serde(default)]
    pub changes: Vec<ChangeFile>,
}

fn half() -> f64 {
    0.5
}

/// From `at_secs` on, the fields given take these values (the price does not change: it is
/// what the route table says).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChangeFile {
    pub at_secs: f64,
    #[serde(default)]
    pub deliver: Option<f64>,
    #[serde(default)]
    pub convert: Option<f64>,
    #[serde(default)]
    pub latency_secs: Option<[f64; 2]>,
    #[serde(default)]
    pub receipt: Option<f64>,
    #[serde(default)]
    pub accept: Option<f64>,
    #[serde(default)]
    pub timeout: Option<f64>,
    #[serde(default)]
    pub timeout_accepted: Option<f64>,
    #[serde(default)]
    pub delivered_receipt: Option<f64>,
}

/// The true behaviour of a route at some moment.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Params {
    pub deliver: f64,
    /// Lognormal median (seconds) and sigma of the send-to-arrival latency.
    pub latency_median: f64,
    pub latency_sigma: f64,
    pub receipt: f64,
    pub accept: f64,
    pub timeout: f64,
    pub timeout_accepted: f64,
    pub delivered_receipt: f64,
    /// P(the user enters a code that came this way | it arrived within patience).
    pub convert: f64,
}

/// One route of the simulation, with its parameters over time.
#[derive(Clone, Debug)]
pub struct SimRoute {
    pub channel: Channel,
    pub provider: String,
    pub price: f64,
    /// (from ms since the start, parameters), ascending; the first starts at 0.
    pub phases: Vec<(i64, Params)>,
}

impl SimRoute {
    /// The parameters in force `at_ms` after the start.
    pub fn at(&self, at_ms: i64) -> &Params {
        let i = self.phases.partition_point(|(from, _)| *from <= at_ms);
        &self.phases[i.saturating_sub(1)].1
    }
}

#[derive(Clone, Debug)]
pub struct SimCountry {
    pub code: String,
    pub share: f64,
    pub convert: f64,
    pub patience_secs: f64,
    /// The channel order the route table gets.
    pub preference: Vec<Channel>,
    pub routes: Vec<SimRoute>,
}

/// A validated scenario.
#[derive(Clone, Debug)]
pub struct Scenario {
    pub name: String,
    pub seed: u64,
    pub duration_secs: f64,
    pub verifications: usize,
    pub currency: String,
    pub max_resends: Option<u32>,
    pub validity_secs: Option<u64>,
    pub typing_secs: [f64; 2],
    /// `[workflow.routing]` lines added to every run's engine configuration.
    pub routing: String,
    /// In country-code order.
    pub countries: Vec<SimCountry>,
    index: HashMap<(String, Channel, String), (usize, usize)>,
}

fn prob(at: &str, v: f64) -> anyhow::Result<f64> {
    ensure!(
        (0.0..=1.0).contains(&v),
        "`{at}` must be a probability in [0, 1], got {v}"
    );
    Ok(v)
}

fn latency(at: &str, l: [f64; 2]) -> anyhow::Result<(f64, f64)> {
    ensure!(
        l[0].is_finite() && l[0] > 0.0,
        "`{at}` median must be a positive number of seconds, got {}",
        l[0]
    );
    ensure!(
        l[1].is_finite() && l[1] >= 0.0,
        "`{at}` sigma must be a non-negative number, got {}",
        l[1]
    );
    Ok((l[0], l[1]))
}

impl Scenario {
    /// Parses and validates a scenario file's text.
    pub fn from_toml(text: &str) -> anyhow::Result<Self> {
        let file: ScenarioFile = toml::from_str(text).map_err(|e| anyhow::anyhow!("{e}"))?;
        Self::validate(file)
    }

    /// Reads, parses and validates a scenario file.
    pub fn load(path: &std::path::Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        Self::from_toml(&text)
    }

    fn validate(f: ScenarioFile) -> anyhow::Result<Self> {
        ensure!(!f.name.trim().is_empty(), "`name` is empty");
        ensure!(
            f.duration_secs.is_finite() && f.duration_secs > 0.0,
            "`duration_secs` must be positive"
        );
        ensure!(f.verifications > 0, "`verifications` must be at least 1");
        let currency = f.currency.trim().to_ascii_uppercase();
        ensure!(
            currency.len() == 3 && currency.bytes().all(|b| b.is_ascii_uppercase()),
            "`currency` must be an ISO 4217 code, got {:?}",
            f.currency
        );
        if let Some(v) = f.validity_secs {
            ensure!(v > 0, "`validity_secs` must be positive");
        }
        let typing = f.typing_secs.unwrap_or([5.0, 15.0]);
        ensure!(
            typing[0].is_finite() && typing[0] >= 0.0 && typing[1] >= typing[0],
            "`typing_secs` must be [min, max] with 0 <= min <= max"
        );
        let routing = match &f.routing {
            Some(t) => {
                ensure!(
                    !t.contains_key("strategy"),
                    "`routing.strategy` is set by each run (static, adaptive, oracle)"
                );
                toml::to_string(t).context("`routing`")?
            }
            None => String::new(),
        };
        ensure!(!f.countries.is_empty(), "`countries` is empty");
        let total: f64 = f.countries.values().map(|c| c.share).sum();
        ensure!(
            (total - 1.0).abs() <= 1e-6,
            "country shares must sum to 1, they sum to {total}"
        );
        let mut countries = Vec::with_capacity(f.countries.len());
        let mut index = HashMap::new();
        for (code, c) in f.countries {
            let at = format!("countries.{code}");
            ensure!(
                numbers::drawable(&code),
                "`{at}`: unknown country {code:?}: not an ISO region with mobile numbers"
            );
            prob(&format!("{at}.share"), c.share)?;
            prob(&format!("{at}.convert"), c.convert)?;
            ensure!(
                c.patience_secs.is_finite() && c.patience_secs > 0.0,
                "`{at}.patience_secs` must be positive"
            );
            ensure!(!c.routes.is_empty(), "`{at}.routes`: at least one route");
            let mut routes = Vec::with_capacity(c.routes.len());
            for (i, r) in c.routes.iter().enumerate() {
                let at = format!("{at}.routes[{i}]");
                let channel = Channel::from_str(&r.channel).map_err(|_| {
                    anyhow::anyhow!(
                        "`{at}.channel`: unknown channel {:?} (sms, whatsapp, telegram, rcs, viber, call)",
                        r.channel
                    )
                })?;
                let provider = r.provider.trim().to_owned();
                ensure!(
                    !provider.is_empty()
                        && provider
                            .bytes()
                            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-'),
                    "`{at}.provider` must be a name of letters, digits, `_` and `-`"
                );
                ensure!(
                    !["console", "sandbox"].contains(&provider.as_str()),
                    "`{at}.provider`: {provider:?} is a built-in provider name"
                );
                ensure!(
                    r.price.is_finite() && r.price >= 0.0,
                    "`{at}.price` must be a non-negative number, got {}",
                    r.price
                );
                let (latency_median, latency_sigma) =
                    latency(&format!("{at}.latency_secs"), r.latency_secs)?;
                let receipt = prob(&format!("{at}.receipt"), r.receipt)?;
                let base = Params {
                    deliver: prob(&format!("{at}.deliver"), r.deliver)?,
                    latency_median,
                    latency_sigma,
                    receipt,
                    accept: prob(&format!("{at}.accept"), r.accept)?,
                    timeout: prob(&format!("{at}.timeout"), r.timeout)?,
                    timeout_accepted: prob(&format!("{at}.timeout_accepted"), r.timeout_accepted)?,
                    delivered_receipt: prob(
                        &format!("{at}.delivered_receipt"),
                        r.delivered_receipt.unwrap_or(receipt),
                    )?,
                    convert: prob(&format!("{at}.convert"), r.convert.unwrap_or(c.convert))?,
                };
                let mut changes = r.changes.clone();
                changes.sort_by(|a, b| a.at_secs.total_cmp(&b.at_secs));
                let mut phases = vec![(0i64, base)];
                let mut cur = base;
                for (j, ch) in changes.iter().enumerate() {
                    let at = format!("{at}.changes[{j}]");
                    ensure!(
                        ch.at_secs.is_finite() && ch.at_secs >= 0.0,
                        "`{at}.at_secs` must be a non-negative number"
                    );
                    let p = |k: &str, v: Option<f64>, old: f64| match v {
                        Some(v) => prob(&format!("{at}.{k}"), v),
                        None => Ok(old),
                    };
                    cur.deliver = p("deliver", ch.deliver, cur.deliver)?;
                    cur.convert = p("convert", ch.convert, cur.convert)?;
                    cur.receipt = p("receipt", ch.receipt, cur.receipt)?;
                    cur.accept = p("accept", ch.accept, cur.accept)?;
                    cur.timeout = p("timeout", ch.timeout, cur.timeout)?;
                    cur.timeout_accepted = p(
                        "timeout_accepted",
                        ch.timeout_accepted,
                        cur.timeout_accepted,
                    )?;
                    cur.delivered_receipt = p(
                        "delivered_receipt",
                        // A change of `receipt` alone moves `delivered_receipt` with it when the
                        // route never set the latter.
                        ch.delivered_receipt
                            .or(ch.receipt.filter(|_| r.delivered_receipt.is_none())),
                        cur.delivered_receipt,
                    )?;
                    if let Some(l) = ch.latency_secs {
                        (cur.latency_median, cur.latency_sigma) =
                            latency(&format!("{at}.latency_secs"), l)?;
                    }
                    phases.push(((ch.at_secs * 1000.0).round() as i64, cur));
                }
                let key = (code.clone(), channel, provider.clone());
                ensure!(
                    !index.contains_key(&key),
                    "`{at}`: {code} lists {} through {provider} twice",
                    channel.as_str()
                );
                index.insert(key, (countries.len(), routes.len()));
                routes.push(SimRoute {
                    channel,
                    provider,
                    price: r.price,
                    phases,
                });
            }
            let preference = match &c.preference {
                Some(list) => {
                    let mut out = Vec::with_capacity(list.len());
                    for name in list {
                        let ch = Channel::from_str(name).map_err(|_| {
                            anyhow::anyhow!("`{at}.preference`: unknown channel {name:?}")
                        })?;
                        ensure!(!out.contains(&ch), "`{at}.preference` lists {name} twice");
                        out.push(ch);
                    }
                    out
                }
                None => {
                    let mut out: Vec<Channel> = Vec::new();
                    for r in &routes {
                        if !out.contains(&r.channel) {
                            out.push(r.channel);
                        }
                    }
                    out
                }
            };
            countries.push(SimCountry {
                code,
                share: c.share,
                convert: c.convert,
                patience_secs: c.patience_secs,
                preference,
                routes,
            });
        }
        Ok(Scenario {
            name: f.name,
            seed: f.seed,
            duration_secs: f.duration_secs,
            verifications: f.verifications,
            currency,
            max_resends: f.max_resends,
            validity_secs: f.validity_secs,
            typing_secs: typing,
            routing,
            countries,
            index,
        })
    }

    /// The route of `country` on `channel` through `provider`.
    pub fn route(&self, country: &str, channel: Channel, provider: &str) -> Option<&SimRoute> {
        // The key is owned; a lookup per message is cheap next to an engine send.
        let (c, r) = self
            .index
            .get(&(country.to_owned(), channel, provider.to_owned()))?;
        Some(&self.countries[*c].routes[*r])
    }

    pub fn country(&self, code: &str) -> Option<&SimCountry> {
        self.countries.iter().find(|c| c.code == code)
    }

    /// The engine's route table for this scenario, in the `config/routes.toml` format:
    /// `[default]` is the first country's (in code order), every country has its own.
    pub fn route_table_toml(&self) -> String {
        let mut out = format!("currency = \"{}\"\n", self.currency);
        let section = |out: &mut String, header: &str, c: &SimCountry| {
            out.push_str(&format!("\n[{header}]\npreference = ["));
            let prefs: Vec<String> = c
                .preference
                .iter()
                .map(|ch| format!("\"{}\"", ch.as_str()))
                .collect();
            out.push_str(&prefs.join(", "));
            out.push_str("]\nroutes = [\n");
            for r in &c.routes {
                out.push_str(&format!(
                    "  {{ channel = \"{}\", provider = \"{}\", price = {:?} }},\n",
                    r.channel.as_str(),
                    r.provider,
                    r.price
                ));
            }
            out.push_str("]\n");
        };
        section(&mut out, "default", &self.countries[0]);
        for c in &self.countries {
            section(&mut out, &format!("countries.{}", c.code), c);
        }
        out
    }

    /// Every provider name with the channels it serves, in name order.
    pub fn providers(&self) -> BTreeMap<String, Vec<Channel>> {
        let mut out: BTreeMap<String, Vec<Channel>> = BTreeMap::new();
        for c in &self.countries {
            for r in &c.routes {
                let chans = out.entry(r.provider.clone()).or_default();
                if !chans.contains(&r.channel) {
                    chans.push(r.channel);
                }
            }
        }
        for chans in out.values_mut() {
            chans.sort();
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OK: &str = r#"
name = "t"
seed = 1
duration_secs = 600
verifications = 10
currency = "USD"
[countries.BR]
share = 1.0
convert = 0.9
patience_secs = 45
[[countries.BR.routes]]
channel = "whatsapp"
provider = "meta_whatsapp"
price = 0.0068
deliver = 0.9
latency_secs = [2.0, 0.5]
receipt = 0.9
accept = 1.0
[[countries.BR.routes.changes]]
at_secs = 100
deliver = 0.1
"#;

    #[test]
    fn parses_and_applies_changes() {
        let s = Scenario::from_toml(OK).unwrap();
        let r = &s.countries[0].routes[0];
        assert_eq!(r.at(0).deliver, 0.9);
        assert_eq!(r.at(99_999).deliver, 0.9);
        assert_eq!(r.at(100_000).deliver, 0.1);
        assert_eq!(r.at(100_000).receipt, 0.9);
        assert!(s.route_table_toml().contains("[countries.BR]"));
        switchboard::routing::RouteTable::from_toml(&s.route_table_toml()).unwrap();
    }

    #[test]
    fn any_region_with_mobile_numbers_is_a_country_and_routing_settings_reach_the_engine() {
        let text = OK.replace("countries.BR", "countries.KE").replace(
            "[countries.KE]",
            "routing = { explore = 0.02 }\n[countries.KE]",
        );
        let s = Scenario::from_toml(&text).unwrap();
        assert!(s.routing.contains("explore = 0.02"));
        let config = crate::sim::engine_config(&s, crate::Strategy::Adaptive);
        let config = switchboard::Config::from_toml(&config).unwrap();
        assert_eq!(config.workflow.routing.explore, 0.02);
        let mut seen = std::collections::HashSet::new();
        let mut rng = <rand::rngs::SmallRng as rand::SeedableRng>::seed_from_u64(3);
        let n = crate::numbers::draw(&mut rng, "KE", &mut seen).unwrap();
        assert!(n.starts_with("+254"), "{n}");
    }

    #[test]
    fn refuses_bad_values() {
        for (from, to, needle) in [
            ("share = 1.0", "share = 0.5", "sum to 1"),
            ("deliver = 0.9", "deliver = 1.5", "probability"),
            ("\"whatsapp\"", "\"pigeon\"", "unknown channel"),
            ("countries.BR", "countries.ZZ", "unknown country"),
            ("price = 0.0068", "price = -1", "non-negative"),
            ("accept = 1.0", "accept = 1.0\nbogus = 1", "unknown field"),
            (
                "[countries.BR]",
                "routing = { strategy = \"adaptive\" }\n[countries.BR]",
                "set by each run",
            ),
        ] {
            let text = OK.replace(from, to);
            let err = Scenario::from_toml(&text).unwrap_err().to_string();
            assert!(err.contains(needle), "{from} -> {to}: {err}");
        }
    }
}
