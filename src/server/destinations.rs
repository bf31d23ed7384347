//! Webhook destinations: the configured ones (`[webhooks] destinations`, read-only through the
//! API) and those created through the API, kept in the store (collection
//! `webhook-destinations`, every application's in one place) so every sidecar delivers to
//! them. Each sidecar reads the stored ones at most once a second while delivering.

use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

use crate::config::{Secret, WebhookDestination};
use crate::error::Error;
use crate::events::EventKind;
use crate::store::Store;

const COLLECTION: &str = "webhook-destinations";
/// How long a sidecar delivers with its copy of the stored destinations.
const REFRESH: Duration = Duration::from_secs(1);
/// Most API destinations per application.
const MAX_PER_APP: usize = 20;

/// A destination created through the API, as stored (the secret included).
#[derive(Clone, Serialize, Deserialize)]
struct Stored {
    app: String,
    url: String,
    subscribed_events: Vec<String>,
    secret: String,
    created_at: String,
}

/// A destination as the API lists it (never its secret).
#[derive(Clone, Debug, PartialEq, Serialize, utoipa::ToSchema)]
pub struct DestinationView {
    /// `config-N` for the N-th configured destination.
    pub destination_id: String,
    pub url: String,
    /// Event names it receives; empty = every event.
    pub subscribed_events: Vec<String>,
    /// `config` (read-only) or `api`.
    pub source: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub created_at: Option<String>,
}

/// The answer to a create: the destination and its signing secret, shown this once.
#[derive(Clone, Serialize, utoipa::ToSchema)]
pub struct CreatedDestination {
    #[serde(flatten)]
    pub destination: DestinationView,
    /// Verifies `X-Signature-V2` / `X-Signature-V3` of every delivery; not shown again.
    pub secret_shared_key: String,
}

/// Every destination a sidecar delivers to.
pub struct Destinations {
    configured: Vec<WebhookDestination>,
    /// The engine's store, once the engine is built (the sink that delivers exists before it).
    store: std::sync::OnceLock<Store>,
    cache: Mutex<Option<(Instant, Arc<Vec<WebhookDestination>>)>>,
}

impl std::fmt::Debug for Destinations {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Destinations").finish_non_exhaustive()
    }
}

fn invalid(field: &'static str, message: &str) -> Error {
    Error::InvalidRequest {
        field,
        message: message.to_owned(),
    }
}

impl Destinations {
    pub fn new(configured: Vec<WebhookDestination>) -> Self {
        Destinations {
            configured,
            store: std::sync::OnceLock::new(),
            cache: Mutex::new(None),
        }
    }

    /// Keeps the API destinations in `store` (the engine's); only the first call counts.
    pub fn bind(&self, store: Store) {
        let _ = self.store.set(store);
    }

    fn store(&self) -> Result<&Store, Error> {
        self.store.get().ok_or(Error::Internal)
    }

    /// The configured destinations followed by the stored ones (refreshed at most once a
    /// second; while the store cannot be read, the last copy).
    pub async fn current(&self) -> Arc<Vec<WebhookDestination>> {
        let cached = self.cache.lock().clone();
        if let Some((at, list)) = &cached
            && at.elapsed() < REFRESH
        {
            return list.clone();
        }
        let Some(store) = self.store.get() else {
            return Arc::new(self.configured.clone());
        };
        let stored = match store.documents(COLLECTION).await {
            Ok(stored) => stored,
            Err(e) => {
                tracing::warn!(error = %e, "webhook destinations not refreshed");
                return cached.map_or_else(|| Arc::new(self.configured.clone()), |(_, l)| l);
            }
        };
        let mut list = self.configured.clone();
        list.extend(stored.into_iter().filter_map(|(id, json)| {
            let s: Stored = serde_json::from_str(&json).ok()?;
            Some(WebhookDestination {
                url: s.url,
                secret: Secret::new(s.secret),
                events: s.subscribed_events,
                app: Some(s.app),
                id: Some(id),
            })
        }));
        let list = Arc::new(list);
        *self.cache.lock() = Some((Instant::now(), list.clone()));
        list
    }

    /// Forgets the copy: the next delivery reads the store (this sidecar sees its own change).
    fn forget(&self) {
        *self.cache.lock() = None;
    }

    /// The application's destinations: the configured ones that take its events, then its own.
    pub async fn list(&self, app: &str) -> Result<Vec<DestinationView>, Error> {
        let mut out: Vec<DestinationView> = self
            .configured
            .iter()
            .enumerate()
            .filter(|(_, d)| d.app.as_deref().is_none_or(|a| a == app))
            .map(|(i, d)| DestinationView {
                destination_id: format!("config-{i}"),
                url: d.url.clone(),
                subscribed_events: d.events.clone(),
                source: "config",
                created_at: None,
            })
            .collect();
        for (id, json) in self.store()?.documents(COLLECTION).await? {
            if let Ok(s) = serde_json::from_str::<Stored>(&json)
                && s.app == app
            {
                out.push(view(id, s));
            }
        }
        Ok(out)
    }

    /// Creates a destination of `app`; its secret is in the answer only.
    pub async fn create(
        &self,
        app: &str,
        url: &str,
        subscribed_events: Vec<String>,
        now: crate::clock::Millis,
    ) -> Result<CreatedDestination, Error> {
        if !crate::hosted::is_http_url(url) {
            return Err(invalid(
                "url",
                "must be an http:// or https:// URL of at most 2048 visible ASCII characters",
            ));
        }
        if let Some(bad) = subscribed_events
            .iter()
            .find(|e| !EventKind::ALL.iter().any(|k| k.as_str() == e.as_str()))
        {
            return Err(invalid(
                "subscribed_events",
                &format!(
                    "{:?} is not an event (known: {})",
                    bad.chars().take(64).collect::<String>(),
                    EventKind::ALL.map(EventKind::as_str).join(", ")
                ),
            ));
        }
        let mine = self.list(app).await?;
        if mine.iter().filter(|d| d.source == "api").count() >= MAX_PER_APP {
            return Err(Error::LimitReached(
                "this application already has 20 webhook destinations; delete one first",
            ));
        }
        let secret = {
            let bytes: [u8; 32] = rand::random();
            format!("whsec_{}", hex::encode(bytes))
        };
        let stored = Stored {
            app: app.to_owned(),
            url: url.to_owned(),
            subscribed_events,
            secret: secret.clone(),
            created_at: crate::clock::iso8601(now),
        };
        let id = uuid::Uuid::new_v4().to_string();
        let json = serde_json::to_string(&stored).map_err(|_| Error::Internal)?;
        self.store()?.put_document(COLLECTION, &id, &json).await?;
        self.forget();
        Ok(CreatedDestination {
            destination: view(id, stored),
            secret_shared_key: secret,
        })
    }

    /// Deletes a destination of `app`; a configured one is read-only.
    pub async fn delete(&self, app: &str, id: &str) -> Result<(), Error> {
        if id.starts_with("config-") {
            return Err(Error::ConfigReadOnly(format!("webhook destination {id:?}")));
        }
        let not_found =
            || Error::NotFound("no webhook destination with this id for this application");
        let Some(json) = self.store()?.document(COLLECTION, id).await? else {
            return Err(not_found());
        };
        match serde_json::from_str::<Stored>(&json) {
            Ok(s) if s.app == app => {}
            _ => return Err(not_found()),
        }
        self.store()?.delete_document(COLLECTION, id).await?;
        self.forget();
        Ok(())
    }
}

fn view(id: String, s: Stored) -> DestinationView {
    DestinationView {
        destination_id: id,
        url: s.url,
        subscribed_events: s.subscribed_events,
        source: "api",
        created_at: Some(s.created_at),
    }
}
