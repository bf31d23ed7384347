//! API keys: `x-api-key`, stored as SHA-256 in config, compared in constant time. Each key
//! belongs to an application. With no keys configured (development only) every request is the
//! `default` application.

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::config::{DEFAULT_APP, ServerConfig};

/// Who is calling.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Principal {
    /// The application the key belongs to.
    pub app: String,
    /// A short, non-secret id of the key (first 8 hex characters of its hash), for rate
    /// limits and logs.
    pub key_id: String,
}

struct ApiKey {
    hash: [u8; 32],
    app: String,
    key_id: String,
}

/// The configured keys.
pub struct Auth {
    keys: Vec<ApiKey>,
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Auth")
            .field("keys", &self.keys.len())
            .finish()
    }
}

/// The hash stored in config for `key`.
pub fn hash_key(key: &str) -> String {
    hex::encode(Sha256::digest(key.as_bytes()))
}

/// A configured key hash that cannot be used. Names the key by its position and application,
/// never by its value.
#[derive(Debug, thiserror::Error)]
#[error(
    "`server.api_keys[{index}]` (application `{app}`): sha256 must be 64 hex characters \
     (switchboard hash-key <key> prints it)"
)]
pub struct BadKeyHash {
    pub index: usize,
    pub app: String,
}

impl Auth {
    /// The configured keys. A hash that does not decode is an error, never skipped: skipping
    /// it would lock its application out, and skipping every key would leave the API open.
    /// (Config loading validates the hashes too; this guards configs changed after loading.)
    pub fn new(config: &ServerConfig) -> Result<Self, BadKeyHash> {
        let keys = config
            .api_keys
            .iter()
            .enumerate()
            .map(|(index, k)| {
                let mut hash = [0u8; 32];
                hex::decode_to_slice(&k.sha256, &mut hash).map_err(|_| BadKeyHash {
                    index,
                    app: k.app.clone(),
                })?;
                Ok(ApiKey {
                    hash,
                    app: k.app.clone(),
                    key_id: k.sha256[..8].to_ascii_lowercase(),
                })
            })
            .collect::<Result<_, _>>()?;
        Ok(Auth { keys })
    }

    /// True when no key is configured: every caller is the default application.
    pub fn is_open(&self) -> bool {
        self.keys.is_empty()
    }

    /// The principal for the presented key. Every configured key is compared, in constant
    /// time, whatever matches, so timing tells nothing about which keys exist.
    pub fn authenticate(&self, presented: Option<&str>) -> Option<Principal> {
        if self.is_open() {
            return Some(Principal {
                app: DEFAULT_APP.to_owned(),
                key_id: "open".to_owned(),
            });
        }
        let presented = presented?;
        if presented.is_empty() || presented.len() > 512 {
            return None;
        }
        let hash: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
        let mut found: Option<&ApiKey> = None;
        for key in &self.keys {
            if bool::from(key.hash.ct_eq(&hash)) {
                found = Some(key);
            }
        }
        found.map(|k| Principal {
            app: k.app.clone(),
            key_id: k.key_id.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    fn auth(keys: &[(&str, &str)]) -> Auth {
        let list: Vec<String> = keys
            .iter()
            .map(|(app, key)| format!("{{ app = \"{app}\", sha256 = \"{}\" }}", hash_key(key)))
            .collect();
        let config = Config::from_toml(&format!(
            "[apps.shop]\nbrand = \"Shop\"\n[server]\napi_keys = [{}]\n",
            list.join(", ")
        ))
        .unwrap();
        Auth::new(&config.server).unwrap()
    }

    #[test]
    fn a_configured_key_authenticates_as_its_application() {
        let a = auth(&[
            ("default", "key-one-0123456789"),
            ("shop", "key-two-0123456789"),
        ]);
        assert_eq!(
            a.authenticate(Some("key-two-0123456789")).unwrap().app,
            "shop"
        );
        assert_eq!(
            a.authenticate(Some("key-one-0123456789")).unwrap().app,
            "default"
        );
    }

    #[test]
    fn missing_wrong_or_oversized_keys_are_refused() {
        let a = auth(&[("default", "key-one-0123456789")]);
        assert!(a.authenticate(None).is_none());
        assert!(a.authenticate(Some("")).is_none());
        assert!(a.authenticate(Some("key-one-0123456780")).is_none());
        assert!(a.authenticate(Some(&"k".repeat(10_000))).is_none());
    }

    #[test]
    fn an_undecodable_hash_refuses_to_build_and_names_the_key_not_its_value() {
        let mut config = Config::from_toml("[apps.shop]\nbrand = \"Shop\"\n").unwrap();
        let good = hash_key("key-one-0123456789");
        let bad = format!("zz{}", &good[2..]);
        config.server.api_keys = vec![
            crate::config::ApiKeyConfig {
                app: "default".into(),
                sha256: good,
            },
            crate::config::ApiKeyConfig {
                app: "shop".into(),
                sha256: bad.clone(),
            },
        ];
        let err = Auth::new(&config.server).unwrap_err();
        assert_eq!((err.index, err.app.as_str()), (1, "shop"));
        let text = err.to_string();
        assert!(
            text.contains("server.api_keys[1]") && text.contains("shop"),
            "{text}"
        );
        assert!(!text.contains(&bad[..16]), "the hash leaked: {text}");
    }

    #[test]
    fn no_keys_means_open_development_access() {
        let a = auth(&[]);
        assert!(a.is_open());
        assert_eq!(a.authenticate(None).unwrap().app, "default");
    }
}
