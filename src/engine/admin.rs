//! Operating the fraud screen at runtime, per application: list and release its blocks, keep a
//! safe list and geo permissions in the store beside the configured ones.
//!
//! The runtime safe list and geo permissions are explicit admin data (no TTL, like the
//! blocklist). The send path does not read them from the store on every send: each instance
//! keeps the application's *effective* policy (the configured `[workflow.fraud]` with the
//! runtime entries merged in) in an in-process cache and fetches it again at most once per
//! `store.fraud_admin_cache_ms`. A change made through one instance is seen by that instance at
//! once and by the others within that delay.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use parking_lot::RwLock;

use super::Engine;
use crate::clock::Millis;
use crate::config::Workflow;
use crate::error::Error;
use crate::fraud::{self, FraudPolicy, GeoAction};
use crate::store::StoreError;

/// Geo permissions: channel (`sms`, ..., `all`) -> ISO country -> action.
pub type GeoTable = BTreeMap<String, BTreeMap<String, GeoAction>>;

/// Longest safe-list entry: `+`, 15 digits (E.164's maximum) and `*`.
const MAX_SAFE_ENTRY: usize = 17;

/// An application's runtime fraud data, as last fetched.
struct Cached {
    fetched_at: Millis,
    /// The configured policy with the runtime entries merged in.
    effective: Arc<FraudPolicy>,
    safe_list: Vec<String>,
    geo: GeoTable,
}

/// Per application, its runtime fraud data (module docs).
#[derive(Default)]
pub(super) struct FraudAdminCache {
    apps: RwLock<HashMap<String, Arc<Cached>>>,
}

/// The configured policy with the runtime safe list added and the runtime geo permissions
/// overriding the configured ones, entry by entry (channel and country).
fn merge(configured: &FraudPolicy, safe_list: &[String], geo: &GeoTable) -> FraudPolicy {
    let mut policy = configured.clone();
    policy.safe_list.extend(safe_list.iter().cloned());
    for (channel, table) in geo {
        policy
            .geo
            .entry(channel.clone())
            .or_default()
            .extend(table.iter().map(|(c, a)| (c.clone(), *a)));
    }
    policy
}

impl Engine {
    /// The runtime fraud data of `app`, from the cache while it is fresh, else from the store.
    /// A store failure with an earlier copy at hand keeps using that copy.
    async fn fraud_admin_data(&self, app: &str, wf: &Workflow) -> Result<Arc<Cached>, Error> {
        let now = self.now();
        let ttl = i64::try_from(self.inner.config.store.fraud_admin_cache_ms).unwrap_or(i64::MAX);
        let cached = self.inner.fraud_admin.apps.read().get(app).cloned();
        if let Some(c) = &cached
            && now.saturating_sub(c.fetched_at) < ttl
        {
            return Ok(c.clone());
        }
        let fetched = match self.inner.store.fraud_admin(app).await {
            Ok(data) => data,
            Err(e) => {
                if let Some(c) = cached {
                    tracing::warn!(%app, "runtime fraud settings not refreshed, using the last copy: {e}");
                    return Ok(c);
                }
                return Err(e.into());
            }
        };
        let (safe_list, geo) = fetched;
        let geo: GeoTable = match geo {
            None => GeoTable::new(),
            Some(json) => serde_json::from_str(&json).map_err(|_| {
                Error::from(StoreError::Corrupt(
                    "runtime geo permissions are not a geo table".into(),
                ))
            })?,
        };
        let entry = Arc::new(Cached {
            fetched_at: now,
            effective: Arc::new(merge(&wf.fraud, &safe_list, &geo)),
            safe_list,
            geo,
        });
        self.inner
            .fraud_admin
            .apps
            .write()
            .insert(app.to_owned(), entry.clone());
        Ok(entry)
    }

    /// Forgets the cached runtime fraud data of `app`: this instance sees its own writes at once.
    fn forget_fraud_admin(&self, app: &str) {
        self.inner.fraud_admin.apps.write().remove(app);
    }

    /// The fraud policy the send path applies for `app`: the configured one with the runtime
    /// safe list and geo permissions merged in (at most `store.fraud_admin_cache_ms` old).
    pub(super) async fn fraud_policy(
        &self,
        app: &str,
        wf: &Workflow,
    ) -> Result<Arc<FraudPolicy>, Error> {
        let effective = self.fraud_admin_data(app, wf).await?.effective.clone();
        // A workflow of the API may run the application's screen in another mode.
        if effective.mode == wf.fraud.mode {
            return Ok(effective);
        }
        Ok(Arc::new(FraudPolicy {
            mode: wf.fraud.mode,
            ..(*effective).clone()
        }))
    }

    /// The effective fraud policy of an application (configured plus runtime settings).
    pub async fn effective_fraud_policy(
        &self,
        app: Option<&str>,
    ) -> Result<Arc<FraudPolicy>, Error> {
        let (app, wf) = self.workflow(app)?;
        self.fraud_policy(app, wf).await
    }

    /// The application's current fraud blocks.
    pub async fn fraud_blocks(&self, app: Option<&str>) -> Result<Vec<fraud::Block>, Error> {
        let (app, _) = self.workflow(app)?;
        Ok(fraud::blocks(&self.inner.store, app, self.now()).await?)
    }

    /// Lifts one fraud block, named as the listing shows it (`prefix:+3460060`). False when
    /// that key was not blocked (or is not a key at all).
    pub async fn release_fraud_block(&self, key: &str, app: Option<&str>) -> Result<bool, Error> {
        let (app, _) = self.workflow(app)?;
        if key.is_empty() || key.len() > 256 {
            return Ok(false);
        }
        Ok(fraud::release(&self.inner.store, app, key).await?)
    }

    /// The application's runtime safe list (sorted), without the configured entries.
    pub async fn fraud_safe_list(&self, app: Option<&str>) -> Result<Vec<String>, Error> {
        let (app, wf) = self.workflow(app)?;
        self.forget_fraud_admin(app);
        Ok(self.fraud_admin_data(app, wf).await?.safe_list.clone())
    }

    /// Adds an E.164 number or a prefix ending in `*` to the application's runtime safe list.
    /// False when it was already there.
    pub async fn add_to_fraud_safe_list(
        &self,
        entry: &str,
        app: Option<&str>,
    ) -> Result<bool, Error> {
        self.change_safe_list(entry, app, true).await
    }

    /// Removes an entry from the application's runtime safe list. False when it was not there.
    pub async fn remove_from_fraud_safe_list(
        &self,
        entry: &str,
        app: Option<&str>,
    ) -> Result<bool, Error> {
        self.change_safe_list(entry, app, false).await
    }

    async fn change_safe_list(
        &self,
        entry: &str,
        app: Option<&str>,
        listed: bool,
    ) -> Result<bool, Error> {
        let (app, wf) = self.workflow(app)?;
        let probe = FraudPolicy {
            safe_list: vec![entry.to_owned()],
            ..wf.fraud.clone()
        };
        if entry.len() > MAX_SAFE_ENTRY || probe.validate().is_err() {
            return Err(Error::InvalidRequest {
                field: "entry",
                message: "must be an E.164 number (`+34600600600`) or a prefix ending in `*` \
                          (`+3460060*`)"
                    .into(),
            });
        }
        let changed = self.inner.store.set_safe_listed(app, entry, listed).await?;
        self.forget_fraud_admin(app);
        Ok(changed)
    }

    /// The application's runtime geo permissions, without the configured ones.
    pub async fn fraud_geo(&self, app: Option<&str>) -> Result<GeoTable, Error> {
        let (app, wf) = self.workflow(app)?;
        self.forget_fraud_admin(app);
        Ok(self.fraud_admin_data(app, wf).await?.geo.clone())
    }

    /// Replaces the application's runtime geo permissions; each entry overrides the configured
    /// one of its channel and country. Validated like `[workflow.fraud.geo]`.
    pub async fn set_fraud_geo(&self, geo: &GeoTable, app: Option<&str>) -> Result<(), Error> {
        let (app, wf) = self.workflow(app)?;
        let probe = FraudPolicy {
            geo: geo.clone(),
            ..wf.fraud.clone()
        };
        if let Err((_, message)) = probe.validate() {
            return Err(Error::InvalidRequest {
                field: "geo",
                message,
            });
        }
        let json = serde_json::to_string(geo).map_err(|_| Error::Internal)?;
        self.inner.store.set_fraud_geo(app, &json).await?;
        self.forget_fraud_admin(app);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runtime_geo_overrides_the_configured_entry_of_its_channel_and_country() {
        let mut configured = crate::Config::default().workflow.fraud;
        configured.geo = GeoTable::from([(
            "sms".to_owned(),
            BTreeMap::from([
                ("UZ".to_owned(), GeoAction::Deny),
                ("NG".to_owned(), GeoAction::Monitor),
            ]),
        )]);
        let runtime = GeoTable::from([(
            "sms".to_owned(),
            BTreeMap::from([("UZ".to_owned(), GeoAction::Allow)]),
        )]);
        let merged = merge(&configured, &["+3460060*".to_owned()], &runtime);
        use switchboard_providers::Channel;
        assert_eq!(merged.geo(Channel::Sms, Some("UZ")), GeoAction::Allow);
        assert_eq!(merged.geo(Channel::Sms, Some("NG")), GeoAction::Monitor);
        assert!(merged.is_safe("+34600600600"));
    }
}
