//! The route table: per country (with a default), the candidate routes — channel, provider,
//! price — and the channel preference. Loaded from `config/routes.toml`.

use std::collections::HashMap;
use std::sync::Arc;

use serde::Deserialize;
use switchboard_providers::Channel;

/// The default route table, embedded.
pub const DEFAULT_ROUTES: &str = include_str!("../../config/routes.toml");

/// One way to reach a number: a channel through a provider, at a price.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Route {
    pub channel: Channel,
    pub provider: Arc<str>,
    /// Price per message (per call for voice) in the table's currency.
    pub price: f64,
}

/// The routes of one country.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CountryRoutes {
    /// Channels in order of preference; channels not listed come after, by price.
    #[serde(default)]
    pub preference: Vec<Channel>,
    pub routes: Vec<Route>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTable {
    currency: String,
    default: CountryRoutes,
    #[serde(default)]
    countries: HashMap<String, CountryRoutes>,
}

/// A route table error, naming the place in the file.
#[derive(Debug, thiserror::Error)]
pub enum RouteTableError {
    #[error("route table: {0}")]
    Parse(String),
    #[error("route table: {0}")]
    Invalid(String),
}

/// The loaded, validated route table.
#[derive(Clone, Debug)]
pub struct RouteTable {
    currency: String,
    default: CountryRoutes,
    countries: HashMap<String, CountryRoutes>,
}

impl RouteTable {
    /// Parses and validates a route table in the `config/routes.toml` format.
    pub fn from_toml(text: &str) -> Result<Self, RouteTableError> {
        let raw: RawTable =
            toml::from_str(text).map_err(|e| RouteTableError::Parse(e.to_string()))?;
        let currency = raw.currency.trim().to_ascii_uppercase();
        if currency.len() != 3 || !currency.bytes().all(|b| b.is_ascii_uppercase()) {
            return Err(RouteTableError::Invalid(format!(
                "`currency` must be an ISO 4217 code, got {:?}",
                raw.currency
            )));
        }
        validate("default", &raw.default)?;
        let mut countries = HashMap::with_capacity(raw.countries.len());
        for (cc, routes) in raw.countries {
            if cc.len() != 2 || !cc.bytes().all(|b| b.is_ascii_uppercase()) {
                return Err(RouteTableError::Invalid(format!(
                    "`countries.{cc}`: country keys are ISO 3166-1 alpha-2 codes in uppercase"
                )));
            }
            validate(&format!("countries.{cc}"), &routes)?;
            countries.insert(cc, routes);
        }
        Ok(RouteTable {
            currency,
            default: raw.default,
            countries,
        })
    }

    /// The embedded default table.
    pub fn embedded() -> Self {
        Self::from_toml(DEFAULT_ROUTES).expect("the embedded route table is valid")
    }

    pub fn currency(&self) -> &str {
        &self.currency
    }

    /// The routes for `country` (the default routes when it has none of its own).
    pub fn for_country(&self, country: Option<&str>) -> &CountryRoutes {
        country
            .and_then(|c| self.countries.get(c))
            .unwrap_or(&self.default)
    }

    /// Countries with their own routes.
    pub fn countries(&self) -> impl Iterator<Item = &str> {
        self.countries.keys().map(String::as_str)
    }

    /// Every provider name any route uses.
    pub fn providers(&self) -> Vec<Arc<str>> {
        let mut names: Vec<Arc<str>> = std::iter::once(&self.default)
            .chain(self.countries.values())
            .flat_map(|c| c.routes.iter().map(|r| r.provider.clone()))
            .collect();
        names.sort();
        names.dedup();
        names
    }
}

fn validate(at: &str, routes: &CountryRoutes) -> Result<(), RouteTableError> {
    if routes.routes.is_empty() {
        return Err(RouteTableError::Invalid(format!("`{at}.routes` is empty")));
    }
    for (i, r) in routes.routes.iter().enumerate() {
        if !(r.price.is_finite() && r.price >= 0.0) {
            return Err(RouteTableError::Invalid(format!(
                "`{at}.routes[{i}].price` must be a non-negative number, got {}",
                r.price
            )));
        }
        if r.provider.trim().is_empty() {
            return Err(RouteTableError::Invalid(format!(
                "`{at}.routes[{i}].provider` is empty"
            )));
        }
    }
    let mut seen = routes.preference.clone();
    seen.sort();
    if seen.windows(2).any(|w| w[0] == w[1]) {
        return Err(RouteTableError::Invalid(format!(
            "`{at}.preference` lists a channel twice"
        )));
    }
    Ok(())
}
