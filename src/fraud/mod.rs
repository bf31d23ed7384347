//! Fraud defence: screens each send against the application's outcome counters before any
//! provider is called, and refuses traffic that does not convert (SMS pumping).
//!
//! Rules, each with its own figure (what was counted, over which window, against which budget):
//! - `PREFIX_VELOCITY`: sends to one prefix (a block of numbers) beyond a small budget, which
//!   every approval in that prefix raises ([`FraudPolicy::approval_credit`]);
//! - `COUNTRY_ANOMALY`: sends to one country beyond its floor plus what its approvals earned,
//!   so a country the application never converted in starts small and grows with real users;
//! - `IP_VELOCITY`: sends from one client IP, or one /24 (/48) network, per window;
//! - `DEVICE_VELOCITY`: sends from one device id per window;
//! - `SPEND_CAP`: the application's spend per hour or per day;
//! - `GEO_DENIED`: a country denied for a channel (geo permissions, applied to the plan).
//!
//! A key that trips a rule in `enforce` mode is blocked for a cool-off that doubles with each
//! block (bounded); an approval on that key, or an admin release, lifts it. `shadow` evaluates
//! and reports everything and refuses nothing; `off` skips the screen (no counters either).
//! A number on the safe list is never refused by a fraud rule (the store's limits still apply).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use switchboard_providers::Channel;

use crate::clock::Millis;
use crate::outcomes::{self, Count, CounterKey, Dimension, Field, Tally, Window};
use crate::store::{Store, StoreError};

/// Counters' buckets per window: a sliding window that moves in sixths.
const BUCKETS: u32 = 6;
const HOUR_MS: i64 = 3_600_000;
const DAY_MS: i64 = 86_400_000;
/// Money in counters: millionths of the route table's currency.
pub const MICROS: f64 = 1_000_000.0;

/// `enforce` refuses, `shadow` only reports, `off` skips.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FraudMode {
    Enforce,
    Shadow,
    Off,
}

/// What geo permissions say of a country on a channel.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum GeoAction {
    Allow,
    /// Sent, and counted as monitored (metrics, logs).
    Monitor,
    /// Refused with `GEO_DENIED`.
    Deny,
}

/// A workflow's fraud settings (`[workflow.fraud]`, per application under `[apps.NAME.fraud]`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FraudPolicy {
    pub mode: FraudMode,
    /// Length of the velocity windows.
    pub window_secs: u64,
    /// A prefix is the number without this many trailing digits.
    pub prefix_digits: u8,
    /// Unconverted sends a prefix gets per window.
    pub prefix_budget: u32,
    /// Unconverted sends a country gets per window (the floor of a country never converted in).
    pub country_budget: u32,
    /// Sends an approval earns back for its prefix and its country.
    pub approval_credit: u32,
    /// Sends per client IP, per /24 (/48) network and per device id, per window.
    pub ip_budget: u32,
    pub network_budget: u32,
    pub device_budget: u32,
    /// First block of a key that tripped a rule; each further block doubles it, up to the max.
    pub cooloff_secs: u64,
    pub max_cooloff_secs: u64,
    /// Spend caps in the route table's currency (0 = no cap).
    pub spend_cap_hour: f64,
    pub spend_cap_day: f64,
    /// E.164 numbers, or prefixes ending in `*`, that no fraud rule refuses.
    pub safe_list: Vec<String>,
    /// Per channel (`sms`, `whatsapp`, ... or `all`), per ISO country: allow, monitor, deny.
    pub geo: BTreeMap<String, BTreeMap<String, GeoAction>>,
}

impl FraudPolicy {
    pub fn is_safe(&self, e164: &str) -> bool {
        self.safe_list
            .iter()
            .any(|entry| match entry.strip_suffix('*') {
                Some(prefix) => e164.starts_with(prefix),
                None => e164 == entry,
            })
    }

    /// What geo permissions say for `country` on `channel` (a channel's own entry wins over
    /// `all`; no entry = allow).
    pub fn geo(&self, channel: Channel, country: Option<&str>) -> GeoAction {
        let Some(country) = country else {
            return GeoAction::Allow;
        };
        let lookup = |table: &str| {
            self.geo
                .get(table)
                .and_then(|t| t.get(&country.to_ascii_uppercase()))
                .copied()
        };
        lookup(channel.as_str())
            .or_else(|| lookup("all"))
            .unwrap_or(GeoAction::Allow)
    }

    fn window(&self) -> Window {
        Window {
            span_ms: i64::try_from(self.window_secs.saturating_mul(1000)).unwrap_or(HOUR_MS),
            buckets: BUCKETS,
        }
    }

    /// The cool-off of a key blocked for the `nth` time (1-based).
    fn cooloff_ms(&self, nth: u32) -> i64 {
        let base = self.cooloff_secs.saturating_mul(1000);
        let ms = base
            .saturating_mul(1u64 << nth.saturating_sub(1).min(20))
            .min(self.max_cooloff_secs.saturating_mul(1000));
        i64::try_from(ms).unwrap_or(i64::MAX)
    }

    /// Checks the values a configuration can get wrong; returns (key, message).
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        if self.window_secs == 0 {
            return Err(("fraud.window_secs", "must be greater than 0".into()));
        }
        if !(1..=8).contains(&self.prefix_digits) {
            return Err(("fraud.prefix_digits", "must be in 1..=8".into()));
        }
        if self.cooloff_secs > self.max_cooloff_secs {
            return Err((
                "fraud.cooloff_secs",
                "must not exceed fraud.max_cooloff_secs".into(),
            ));
        }
        for (key, cap) in [
            ("fraud.spend_cap_hour", self.spend_cap_hour),
            ("fraud.spend_cap_day", self.spend_cap_day),
        ] {
            if !cap.is_finite() || cap < 0.0 {
                return Err((key, "must be a non-negative amount".into()));
            }
        }
        for entry in &self.safe_list {
            let digits = entry.strip_suffix('*').unwrap_or(entry);
            if !digits.starts_with('+')
                || digits.len() < 2
                || !digits[1..].bytes().all(|b| b.is_ascii_digit())
            {
                return Err((
                    "fraud.safe_list",
                    "entries are E.164 numbers or prefixes ending in `*`".into(),
                ));
            }
        }
        for (channel, table) in &self.geo {
            if channel != "all" && channel.parse::<Channel>().is_err() {
                return Err((
                    "fraud.geo",
                    format!(
                        "{channel:?} is not a channel (sms, whatsapp, telegram, rcs, viber, call or all)"
                    ),
                ));
            }
            if let Some(bad) = table
                .keys()
                .find(|c| c.len() != 2 || !c.bytes().all(|b| b.is_ascii_uppercase()))
            {
                return Err((
                    "fraud.geo",
                    format!("{bad:?} is not an ISO 3166-1 alpha-2 country code"),
                ));
            }
        }
        Ok(())
    }
}

/// A fraud rule: the `reason` of a refused send.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Rule {
    PrefixVelocity,
    CountryAnomaly,
    IpVelocity,
    DeviceVelocity,
    GeoDenied,
    SpendCap,
}

impl Rule {
    pub const ALL: [Rule; 6] = [
        Rule::PrefixVelocity,
        Rule::CountryAnomaly,
        Rule::IpVelocity,
        Rule::DeviceVelocity,
        Rule::GeoDenied,
        Rule::SpendCap,
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            Rule::PrefixVelocity => "PREFIX_VELOCITY",
            Rule::CountryAnomaly => "COUNTRY_ANOMALY",
            Rule::IpVelocity => "IP_VELOCITY",
            Rule::DeviceVelocity => "DEVICE_VELOCITY",
            Rule::GeoDenied => "GEO_DENIED",
            Rule::SpendCap => "SPEND_CAP",
        }
    }

    /// The rule a blocked counter of `dim` stands for.
    pub const fn of(dim: Dimension) -> Rule {
        match dim {
            Dimension::Country => Rule::CountryAnomaly,
            Dimension::Ip | Dimension::Network => Rule::IpVelocity,
            Dimension::Device => Rule::DeviceVelocity,
            Dimension::Spend => Rule::SpendCap,
            Dimension::Prefix | Dimension::Carrier | Dimension::Route | Dimension::Breaker => {
                Rule::PrefixVelocity
            }
        }
    }
}

/// The figure that tripped a rule: the warning's `additional_data`.
#[derive(Clone, Debug, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Figure {
    pub rule: Rule,
    /// What was counted (`prefix:+3460060`, `ip:203.0.113.7`, `country:UZ`, `spend:hour`).
    pub key: String,
    /// Sends counted in the window (spend: money spent, with this send).
    pub count: f64,
    /// The budget it exceeded (budget + what approvals earned back).
    pub budget: f64,
    pub window_secs: u64,
    /// Approvals counted in the window.
    pub approvals: i64,
    /// Set when the key is blocked: when the block ends (ISO 8601).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub blocked_until: Option<String>,
}

/// What the screen decided.
#[derive(Clone, Debug, PartialEq)]
pub enum Verdict {
    Allow,
    /// Refused (enforce mode).
    Block(Figure),
    /// Would have been refused (shadow mode): sent anyway, reported.
    WouldBlock(Figure),
}

/// What a send is counted under.
#[derive(Clone, Debug, Default)]
pub struct Subjects {
    pub prefix: String,
    pub country: Option<String>,
    pub carrier: Option<String>,
    pub ip: Option<std::net::IpAddr>,
    pub device: Option<String>,
}

impl Subjects {
    /// The counter keys of these subjects, with the dimension each stands for.
    pub fn keys(&self, app: &str) -> Vec<(Dimension, CounterKey)> {
        let mut keys = vec![(
            Dimension::Prefix,
            outcomes::key(app, Dimension::Prefix, &self.prefix),
        )];
        if let Some(c) = &self.country {
            keys.push((
                Dimension::Country,
                outcomes::key(app, Dimension::Country, c),
            ));
        }
        if let Some(c) = &self.carrier {
            keys.push((
                Dimension::Carrier,
                outcomes::key(app, Dimension::Carrier, c),
            ));
        }
        if let Some(ip) = self.ip {
            keys.push((
                Dimension::Ip,
                outcomes::key(app, Dimension::Ip, &ip.to_string()),
            ));
            keys.push((
                Dimension::Network,
                outcomes::key(app, Dimension::Network, &outcomes::network_of(ip)),
            ));
        }
        if let Some(d) = &self.device {
            keys.push((Dimension::Device, outcomes::key(app, Dimension::Device, d)));
        }
        keys
    }
}

fn spend_keys(app: &str) -> [(CounterKey, Window); 2] {
    [
        (
            outcomes::key(app, Dimension::Spend, "hour"),
            Window {
                span_ms: HOUR_MS,
                buckets: BUCKETS,
            },
        ),
        (
            outcomes::key(app, Dimension::Spend, "day"),
            Window {
                span_ms: DAY_MS,
                buckets: 24,
            },
        ),
    ]
}

/// What screening one send counts: each subject's key (with the dimension it stands for) and
/// the counts to add (a send under each subject; reads of the spend counters with a cap).
#[derive(Clone, Debug, Default)]
pub struct Screening {
    keys: Vec<(Dimension, CounterKey)>,
    pub counts: Vec<Count>,
    /// Counts no rule reads at send time (the carrier range): written through the outcome
    /// recorder, off the request path.
    pub deferred: Vec<Count>,
}

/// The counts of one send (nothing with fraud off). The store adds them in the same call that
/// reserves the send ([`Store::reserve_counted`]): the screen costs no round trip of its own.
pub fn send_counts(app: &str, policy: &FraudPolicy, subjects: &Subjects) -> Screening {
    if policy.mode == FraudMode::Off {
        return Screening::default();
    }
    let window = policy.window();
    let (keys, others): (Vec<_>, Vec<_>) = subjects
        .keys(app)
        .into_iter()
        .partition(|(d, _)| *d != Dimension::Carrier);
    let sends = |key: &CounterKey| Count {
        key: key.clone(),
        window,
        add: vec![(Field::Sends, 1)],
    };
    let mut counts: Vec<Count> = keys.iter().map(|(_, key)| sends(key)).collect();
    let deferred = others.iter().map(|(_, key)| sends(key)).collect();
    let caps = [policy.spend_cap_hour, policy.spend_cap_day];
    if caps.iter().any(|c| *c > 0.0) {
        for ((key, w), cap) in spend_keys(app).into_iter().zip(caps) {
            if cap > 0.0 {
                counts.push(Count {
                    key,
                    window: w,
                    add: Vec::new(),
                });
            }
        }
    }
    Screening {
        keys,
        counts,
        deferred,
    }
}

/// Judges one send from the tallies its counts produced: every rule, then (enforce mode) the
/// escalating block of the key that tripped. `price` is what the first planned route costs
/// (for the spend caps).
pub async fn judge(
    store: &Store,
    now: Millis,
    app: &str,
    policy: &FraudPolicy,
    screening: &Screening,
    tallies: &[Tally],
    price: f64,
) -> Result<Verdict, StoreError> {
    if policy.mode == FraudMode::Off || screening.counts.is_empty() {
        return Ok(Verdict::Allow);
    }
    let figure = evaluate(
        now,
        policy,
        &screening.keys,
        &screening.counts,
        tallies,
        price,
    );
    let Some((figure, blockable)) = figure else {
        return Ok(Verdict::Allow);
    };
    if policy.mode == FraudMode::Shadow {
        return Ok(Verdict::WouldBlock(figure));
    }
    let mut figure = figure;
    if let Some((key, tally)) = blockable {
        // Escalate: a key that trips stays blocked for a cool-off doubling on repeat.
        let until = if tally.is_blocked(now) {
            tally.blocked_until
        } else {
            let until = now + policy.cooloff_ms(tally.blocks + 1);
            store.block_counter(app, &key, until, now).await?;
            until
        };
        figure.blocked_until = Some(crate::clock::iso8601(until));
    }
    Ok(Verdict::Block(figure))
}

/// The first rule the tallies break, with the counter key to block (spend is not blocked: it
/// frees itself as the window moves).
fn evaluate(
    now: Millis,
    policy: &FraudPolicy,
    keys: &[(Dimension, CounterKey)],
    counts: &[Count],
    tallies: &[Tally],
    price: f64,
) -> Option<(Figure, Option<(CounterKey, Tally)>)> {
    let window_secs = policy.window_secs;
    let credit = i64::from(policy.approval_credit);
    for ((dim, key), tally) in keys.iter().zip(tallies) {
        let sends = tally.get(Field::Sends);
        let approvals = tally.get(Field::Approvals);
        let budget = match dim {
            Dimension::Prefix => Some(i64::from(policy.prefix_budget) + credit * approvals),
            Dimension::Country => Some(i64::from(policy.country_budget) + credit * approvals),
            Dimension::Ip => Some(i64::from(policy.ip_budget)),
            Dimension::Network => Some(i64::from(policy.network_budget)),
            Dimension::Device => Some(i64::from(policy.device_budget)),
            _ => None,
        };
        let Some(budget) = budget else { continue };
        if tally.is_blocked(now) || sends > budget {
            let figure = Figure {
                rule: Rule::of(*dim),
                key: key
                    .0
                    .split_once(':')
                    .map(|x| x.1)
                    .unwrap_or_default()
                    .to_owned(),
                count: sends as f64,
                budget: budget as f64,
                window_secs,
                approvals,
                blocked_until: None,
            };
            return Some((figure, Some((key.clone(), *tally))));
        }
    }
    let caps = [policy.spend_cap_hour, policy.spend_cap_day];
    let mut spend = counts.iter().zip(tallies).skip(keys.len());
    for (cap, (span, name)) in caps.into_iter().zip([(3_600u64, "hour"), (86_400, "day")]) {
        if cap <= 0.0 {
            continue;
        }
        let (_, tally) = spend.next()?;
        let spent = tally.get(Field::Spend) as f64 / MICROS;
        if spent + price > cap {
            return Some((
                Figure {
                    rule: Rule::SpendCap,
                    key: format!("spend:{name}"),
                    count: spent + price,
                    budget: cap,
                    window_secs: span,
                    approvals: 0,
                    blocked_until: None,
                },
                None,
            ));
        }
    }
    None
}

/// What an approval adds under the subjects of the approved number (prefix, country, carrier):
/// it earns budget back and lifts their blocks. Written through the outcome recorder.
pub fn approval_counts(app: &str, policy: &FraudPolicy, subjects: &Subjects) -> Vec<Count> {
    if policy.mode == FraudMode::Off {
        return Vec::new();
    }
    let window = policy.window();
    subjects
        .keys(app)
        .into_iter()
        .filter(|(d, _)| {
            matches!(
                d,
                Dimension::Prefix | Dimension::Country | Dimension::Carrier
            )
        })
        .map(|(_, key)| Count {
            key,
            window,
            add: vec![(Field::Approvals, 1)],
        })
        .collect()
}

/// What money spent on a delivered send adds to the spend caps' counters (nothing when the
/// application has no cap).
pub fn spend_counts(app: &str, policy: &FraudPolicy, price: f64) -> Vec<Count> {
    if policy.mode == FraudMode::Off
        || (policy.spend_cap_hour <= 0.0 && policy.spend_cap_day <= 0.0)
        || price <= 0.0
    {
        return Vec::new();
    }
    let micros = (price * MICROS).round() as i64;
    spend_keys(app)
        .into_iter()
        .map(|(key, window)| Count {
            key,
            window,
            add: vec![(Field::Spend, micros)],
        })
        .collect()
}

/// Blocks the prefix of a number a provider's own fraud protection refused.
pub async fn record_provider_block(
    store: &Store,
    now: Millis,
    app: &str,
    policy: &FraudPolicy,
    subjects: &Subjects,
) -> Result<(), StoreError> {
    if policy.mode != FraudMode::Enforce || policy.is_safe(&subjects.prefix) {
        return Ok(());
    }
    let key = outcomes::key(app, Dimension::Prefix, &subjects.prefix);
    let tally = store
        .count(
            now,
            &[Count {
                key: key.clone(),
                window: policy.window(),
                add: Vec::new(),
            }],
        )
        .await?;
    let blocks = tally.first().map_or(0, |t| t.blocks);
    store
        .block_counter(app, &key, now + policy.cooloff_ms(blocks + 1), now)
        .await
        .map(|_| ())
}

/// A current block, for the admin listing.
#[derive(Clone, Debug, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Block {
    pub rule: Rule,
    /// `prefix:+3460060`, `ip:203.0.113.7`, ...
    pub key: String,
    /// ISO 8601.
    pub blocked_until: String,
    /// How many times this key was blocked.
    pub blocks: u32,
}

/// The application's current blocks.
pub async fn blocks(store: &Store, app: &str, now: Millis) -> Result<Vec<Block>, StoreError> {
    Ok(store
        .blocked_counters(app, &outcomes::namespace(app), now)
        .await?
        .into_iter()
        .filter_map(|(key, until, blocks)| {
            let (_, dim, value) = outcomes::parse_key(&key)?;
            Some(Block {
                rule: Rule::of(dim),
                key: format!("{}:{value}", dim.as_str()),
                blocked_until: crate::clock::iso8601(until),
                blocks,
            })
        })
        .collect())
}

/// Lifts a block named as [`Block::key`] shows it (`prefix:+3460060`).
pub async fn release(store: &Store, app: &str, key: &str) -> Result<bool, StoreError> {
    let Some((dim, value)) = key
        .split_once(':')
        .and_then(|(d, v)| Some((Dimension::parse(d)?, v)))
    else {
        return Ok(false);
    };
    store
        .release_counter(app, &outcomes::key(app, dim, value))
        .await
}
