//! Provider configuration shared by the registry and every adapter: the config table as loaded
//! ([`ProviderTable`]), the error naming a bad key ([`FieldError`]), what every constructor gets
//! besides its table ([`ProviderContext`]) and the registry's own error ([`RegistryError`]).
//!
//! This module sits below the adapters and the registry: it imports neither.

use std::fmt;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer};

/// One provider's config table (`[providers.twilio]`), as loaded. `Debug` shows its keys only:
/// the values hold credentials.
#[derive(Clone, Default, PartialEq)]
pub struct ProviderTable(serde_json::Value);

impl ProviderTable {
    pub fn new(value: serde_json::Value) -> Self {
        ProviderTable(value)
    }

    /// The table as loaded.
    pub fn value(&self) -> &serde_json::Value {
        &self.0
    }

    /// Deserializes the table into an adapter's typed config. Errors name the key and never
    /// echo a value.
    pub fn parse<T: DeserializeOwned>(&self) -> Result<T, FieldError> {
        let value = match &self.0 {
            serde_json::Value::Null => serde_json::Value::Object(Default::default()),
            v => v.clone(),
        };
        serde_path_to_error::deserialize(value).map_err(|e| {
            let path = e.path().to_string();
            let inner = e.into_inner().to_string();
            field_error_from_serde(&path, &inner)
        })
    }
}

impl<'de> Deserialize<'de> for ProviderTable {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        serde_json::Value::deserialize(deserializer).map(ProviderTable)
    }
}

impl fmt::Debug for ProviderTable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            serde_json::Value::Object(map) => f
                .debug_set()
                .entries(map.keys().map(|k| k.as_str()))
                .finish(),
            _ => f.write_str("ProviderTable(<not a table>)"),
        }
    }
}

/// A problem with one key of a provider table; `key` is relative to the table (`auth_token`),
/// empty for the table as a whole.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldError {
    pub key: String,
    pub message: String,
}

impl FieldError {
    pub fn new(key: impl Into<String>, message: impl Into<String>) -> Self {
        FieldError {
            key: key.into(),
            message: message.into(),
        }
    }
}

/// serde's message rewritten so it names the key and never echoes the offending value
/// (which may be a credential typed into the wrong key).
fn field_error_from_serde(path: &str, message: &str) -> FieldError {
    let path = if path == "." { "" } else { path };
    let join = |leaf: &str| {
        if path.is_empty() {
            leaf.to_owned()
        } else if path == leaf || path.ends_with(&format!(".{leaf}")) {
            // serde_path_to_error already put an unknown key in the path.
            path.to_owned()
        } else {
            format!("{path}.{leaf}")
        }
    };
    let backticked = |m: &str| m.split('`').nth(1).map(str::to_owned);
    if let Some(rest) = message.strip_prefix("missing field ") {
        let key = backticked(rest).unwrap_or_default();
        return FieldError::new(join(&key), "missing");
    }
    if let Some(rest) = message.strip_prefix("unknown field ") {
        let key = backticked(rest).unwrap_or_default();
        let expected = rest
            .split_once("expected ")
            .map(|(_, e)| format!(" (expected {e})"))
            .unwrap_or_default();
        return FieldError::new(join(&key), format!("unknown key{expected}"));
    }
    if message.starts_with("invalid type")
        || message.starts_with("invalid value")
        || message.starts_with("unknown variant")
    {
        let expected = message
            .rsplit_once(", expected ")
            .map(|(_, e)| e)
            .unwrap_or("another type");
        return FieldError::new(path, format!("invalid value, expected {expected}"));
    }
    FieldError::new(path, message.chars().take(160).collect::<String>())
}

/// What every constructor gets besides its table: the shared HTTP client.
#[derive(Clone, Debug)]
pub struct ProviderContext {
    #[cfg(feature = "http")]
    http: crate::http::HttpClient,
}

impl ProviderContext {
    /// A context with a new shared HTTP client (one per process is enough).
    pub fn new() -> Result<Self, RegistryError> {
        Ok(ProviderContext {
            #[cfg(feature = "http")]
            http: crate::http::HttpClient::new().map_err(|e| RegistryError::Http(e.to_string()))?,
        })
    }

    /// A context around an existing client.
    #[cfg(feature = "http")]
    pub fn with_http(http: crate::http::HttpClient) -> Self {
        ProviderContext { http }
    }

    #[cfg(feature = "http")]
    pub fn http(&self) -> &crate::http::HttpClient {
        &self.http
    }
}

/// Building a provider from config failed. The message starts with the config key.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RegistryError {
    #[error("providers.{name}: unknown provider (known: {known})")]
    Unknown { name: String, known: String },
    #[error("providers.{name}: this build has no {name} adapter (cargo feature `{feature}`)")]
    NotCompiled { name: String, feature: String },
    #[error("{}: {message}", key_of(name, key))]
    Invalid {
        name: String,
        key: String,
        message: String,
    },
    #[error("providers: {0}")]
    Http(String),
}

fn key_of(name: &str, key: &str) -> String {
    if key.is_empty() {
        format!("providers.{name}")
    } else {
        format!("providers.{name}.{key}")
    }
}

impl RegistryError {
    /// The config key the error is about (`providers.twilio.auth_token`).
    pub fn key(&self) -> String {
        match self {
            RegistryError::Unknown { name, .. } | RegistryError::NotCompiled { name, .. } => {
                key_of(name, "")
            }
            RegistryError::Invalid { name, key, .. } => key_of(name, key),
            RegistryError::Http(_) => "providers".to_owned(),
        }
    }

    /// The error without its key.
    pub fn detail(&self) -> String {
        let full = self.to_string();
        let key = self.key();
        full.strip_prefix(&key)
            .map(|rest| rest.trim_start_matches(':').trim().to_owned())
            .unwrap_or(full)
    }
}

/// `timeout_ms` of every adapter unless configured (serde default). Below the engine's default
/// attempt timeout (5 s), which a provider timeout must not exceed: the provider's own timeout
/// then fires first and the failure is classified at the boundary.
#[cfg(feature = "http")]
pub(crate) fn default_timeout_ms() -> u64 {
    4_000
}

/// Checks and normalises the keys every adapter's endpoint has: `base_url` (see
/// [`crate::http::normalize_base_url`]) and `timeout_ms` (not 0).
#[cfg(feature = "http")]
pub(crate) fn validate_endpoint_keys(
    base_url: &mut String,
    timeout_ms: u64,
) -> Result<(), FieldError> {
    *base_url =
        crate::http::normalize_base_url(base_url).map_err(|m| FieldError::new("base_url", m))?;
    if timeout_ms == 0 {
        return Err(FieldError::new("timeout_ms", "must be greater than 0"));
    }
    Ok(())
}
