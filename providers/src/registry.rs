//! The provider registry: maps the names routes and config use (`twilio`, `meta_whatsapp`,
//! `telegram`, `vonage`, `infobip`, `console`, `sandbox`) to constructors that take the provider's config table and the shared
//! [`ProviderContext`]. An unknown name fails listing the known ones; a bad table fails naming
//! the key (`providers.twilio.auth_token: missing`).

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use serde::Deserialize;

pub use crate::config::{FieldError, ProviderContext, ProviderTable, RegistryError};
use crate::{ConsoleProvider, DynProvider, SandboxNumbers, SandboxProvider};

/// Every adapter this crate has, with the cargo feature that compiles it in. A name listed here
/// but compiled out fails with a message naming the feature.
const ADAPTERS: &[(&str, &str)] = &[
    ("infobip", "infobip"),
    ("meta_whatsapp", "meta_whatsapp"),
    ("telegram", "telegram"),
    ("twilio", "twilio"),
    ("vonage", "vonage"),
];

/// Builds one provider from its table.
pub type Constructor =
    fn(&ProviderTable, &ProviderContext) -> Result<Arc<dyn DynProvider>, FieldError>;

/// Provider names and their constructors.
#[derive(Clone)]
pub struct Registry {
    constructors: BTreeMap<String, Constructor>,
}

impl Registry {
    /// An empty registry.
    pub fn empty() -> Self {
        Registry {
            constructors: BTreeMap::new(),
        }
    }

    /// `console`, `sandbox` and every adapter compiled in.
    pub fn builtin() -> Self {
        let mut r = Registry::empty();
        r.register("console", build_console);
        r.register("sandbox", build_sandbox);
        #[cfg(feature = "twilio")]
        r.register("twilio", crate::twilio::TwilioProvider::from_table);
        #[cfg(feature = "meta_whatsapp")]
        r.register(
            "meta_whatsapp",
            crate::meta_whatsapp::MetaWhatsappProvider::from_table,
        );
        #[cfg(feature = "telegram")]
        r.register("telegram", crate::telegram::TelegramProvider::from_table);
        #[cfg(feature = "vonage")]
        r.register("vonage", crate::vonage::VonageProvider::from_table);
        #[cfg(feature = "infobip")]
        r.register("infobip", crate::infobip::InfobipProvider::from_table);
        r
    }

    /// Adds (or replaces) a constructor.
    pub fn register(&mut self, name: impl Into<String>, constructor: Constructor) -> &mut Self {
        self.constructors.insert(name.into(), constructor);
        self
    }

    /// Known names, sorted.
    pub fn names(&self) -> Vec<&str> {
        self.constructors.keys().map(String::as_str).collect()
    }

    /// Builds the provider `name` from its `table`.
    pub fn build(
        &self,
        name: &str,
        table: &ProviderTable,
        context: &ProviderContext,
    ) -> Result<Arc<dyn DynProvider>, RegistryError> {
        let Some(constructor) = self.constructors.get(name) else {
            if let Some((_, feature)) = ADAPTERS.iter().find(|(n, _)| *n == name) {
                return Err(RegistryError::NotCompiled {
                    name: name.to_owned(),
                    feature: (*feature).to_owned(),
                });
            }
            return Err(RegistryError::Unknown {
                name: name.chars().take(64).collect(),
                known: self.names().join(", "),
            });
        };
        if !matches!(
            table.value(),
            serde_json::Value::Object(_) | serde_json::Value::Null
        ) {
            return Err(RegistryError::Invalid {
                name: name.to_owned(),
                key: String::new(),
                message: "must be a table".to_owned(),
            });
        }
        constructor(table, context).map_err(|e| RegistryError::Invalid {
            name: name.to_owned(),
            key: e.key,
            message: e.message,
        })
    }
}

impl Default for Registry {
    fn default() -> Self {
        Registry::builtin()
    }
}

impl fmt::Debug for Registry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.constructors.keys()).finish()
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NoKeys {}

fn build_console(
    table: &ProviderTable,
    _: &ProviderContext,
) -> Result<Arc<dyn DynProvider>, FieldError> {
    table.parse::<NoKeys>()?;
    Ok(Arc::new(ConsoleProvider::new()))
}

fn build_sandbox(
    table: &ProviderTable,
    _: &ProviderContext,
) -> Result<Arc<dyn DynProvider>, FieldError> {
    let numbers = match table.value() {
        serde_json::Value::Object(map) if map.is_empty() => SandboxNumbers::default(),
        serde_json::Value::Null => SandboxNumbers::default(),
        _ => table.parse::<SandboxNumbers>()?,
    };
    Ok(Arc::new(SandboxProvider::new(numbers)))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn context() -> ProviderContext {
        ProviderContext::new().unwrap()
    }

    fn build_err(r: &Registry, name: &str, table: ProviderTable) -> RegistryError {
        match r.build(name, &table, &context()) {
            Err(e) => e,
            Ok(_) => panic!("{name} built from an invalid table"),
        }
    }

    #[test]
    fn unknown_name_lists_the_known_ones() {
        let err = build_err(
            &Registry::builtin(),
            "carrier_pigeon",
            ProviderTable::default(),
        );
        let text = err.to_string();
        assert!(
            text.starts_with("providers.carrier_pigeon: unknown provider"),
            "{text}"
        );
        assert!(
            text.contains("console") && text.contains("sandbox"),
            "{text}"
        );
        #[cfg(feature = "twilio")]
        assert!(text.contains("twilio"), "{text}");
    }

    #[test]
    fn console_and_sandbox_build_from_empty_tables() {
        let r = Registry::builtin();
        let c = r
            .build("console", &ProviderTable::new(json!({})), &context())
            .unwrap();
        assert_eq!(c.name(), "console");
        let s = r
            .build("sandbox", &ProviderTable::default(), &context())
            .unwrap();
        assert_eq!(s.name(), "sandbox");
    }

    #[test]
    fn unknown_keys_and_wrong_types_name_the_key_without_echoing_the_value() {
        let r = Registry::builtin();
        let err = build_err(&r, "console", ProviderTable::new(json!({"colour": "x"})));
        assert_eq!(err.key(), "providers.console.colour");
        let err = build_err(
            &r,
            "sandbox",
            ProviderTable::new(
                json!({"approve_prefix": ["hunter2"], "high_risk": "+1", "undeliverable": "+2"}),
            ),
        );
        assert_eq!(err.key(), "providers.sandbox.approve_prefix");
        assert!(!err.to_string().contains("hunter2"), "{err}");
    }

    #[test]
    fn table_debug_shows_keys_only() {
        let t = ProviderTable::new(json!({"auth_token": "s3cr3t", "account_sid": "AC1"}));
        let d = format!("{t:?}");
        assert!(d.contains("auth_token") && !d.contains("s3cr3t"), "{d}");
    }
}
