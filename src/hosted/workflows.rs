//! Workflows: named sets of what a verification does (channels, code validity, attempts,
//! resends, risk actions, fraud mode, locale, brand). The configuration's `[workflow]` and
//! `[apps.NAME]` blocks are workflows (id = the application's name, read-only through the API);
//! more are created through the API, per application, and kept in the store so every instance
//! sees them. An API workflow stores only what it sets: the rest is its application's.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use switchboard_providers::Channel;

use crate::Engine;
use crate::config::Workflow;
use crate::error::Error;
use crate::fraud::FraudMode;
use crate::risk::Action;

/// Languages of the hosted page (messages have the same ones).
pub const LOCALES: [&str; 6] = ["en", "es", "pt", "fr", "de", "ar"];
/// Most API workflows per application.
const MAX_WORKFLOWS: usize = 100;

/// What a workflow sets; on input every field is optional (unset = the application's).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WorkflowSettings {
    /// Brand named in messages and on the hosted page (1-32 characters, no control
    /// characters).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(
        min_length = 1,
        max_length = 32,
        pattern = "^[^\\u0000-\\u001f\\u007f-\\u009f]+$"
    )]
    pub brand: Option<String>,
    /// The hosted page's accent colour, `#rrggbb`.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(pattern = "^#[0-9a-fA-F]{6}$")]
    pub brand_color: Option<String>,
    /// Language of messages and of the hosted page: `en`, `es`, `pt`, `fr`, `de` or `ar`.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(schema_with = locale_input)]
    pub locale: Option<String>,
    /// The channel tried first (`SMS`, `WHATSAPP`, ...; lowercase in answers).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(schema_with = channel_any)]
    pub preferred_channel: Option<Channel>,
    /// Channels the hosted page offers the user; empty = the engine routes (no choice).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(schema_with = channels_input)]
    pub allowed_channels: Option<Vec<Channel>>,
    /// How long a verification's codes are valid (60-3600 s).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "crate::server::http::types::integral"
    )]
    #[schema(minimum = 60, maximum = 3600)]
    pub code_validity_secs: Option<u64>,
    /// Code-entry attempts per verification (1-10).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "crate::server::http::types::integral"
    )]
    #[schema(minimum = 1, maximum = 10)]
    pub max_attempts: Option<u32>,
    /// Resends per number per rolling 24 h (0-10).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "crate::server::http::types::integral"
    )]
    #[schema(minimum = 0, maximum = 10)]
    pub max_resends: Option<u32>,
    /// Shortest pause between two sends to a number (0-600 s).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "crate::server::http::types::integral"
    )]
    #[schema(minimum = 0, maximum = 600)]
    pub resend_cooldown_secs: Option<u64>,
    /// Actions of the configurable risks.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub risk: Option<RiskActions>,
    /// `enforce`, `shadow` or `off`.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(schema_with = fraud_mode_input)]
    pub fraud_mode: Option<FraudMode>,
}

/// `DECLINE`, `REVIEW` or `APPROVE` per configurable risk.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RiskActions {
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(schema_with = action_input)]
    pub disposable: Option<Action>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(schema_with = action_input)]
    pub voip: Option<Action>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(schema_with = action_input)]
    pub duplicated: Option<Action>,
}

fn locale_input() -> utoipa::openapi::schema::Object {
    crate::server::http::types::string_enum(LOCALES, true)
}

fn fraud_mode_input() -> utoipa::openapi::schema::Object {
    crate::server::http::types::string_enum(["enforce", "shadow", "off"], true)
}

fn action_input() -> utoipa::openapi::schema::Object {
    crate::server::http::types::string_enum(["DECLINE", "REVIEW", "APPROVE"], true)
}

/// A channel as requests name it (`SMS`) or as answers do (`sms`), or null: this object is
/// both a request's and an answer's.
fn channel_any() -> utoipa::openapi::schema::Object {
    channel_names(true)
}

fn channel_names(nullable: bool) -> utoipa::openapi::schema::Object {
    crate::server::http::types::string_enum(
        Channel::ALL
            .into_iter()
            .flat_map(|c| [c.as_input(), c.as_str()])
            .chain(["VOICE"]),
        nullable,
    )
}

/// A list of channels (either spelling), or null.
fn channels_input() -> utoipa::openapi::schema::Array {
    utoipa::openapi::schema::ArrayBuilder::new()
        .schema_type(utoipa::openapi::schema::SchemaType::from_iter([
            utoipa::openapi::schema::Type::Array,
            utoipa::openapi::schema::Type::Null,
        ]))
        .items(channel_names(false))
        .build()
}

/// A workflow as the API answers it: its own settings resolved against its application's.
#[derive(Clone, Debug, PartialEq, Serialize, utoipa::ToSchema)]
pub struct WorkflowView {
    pub workflow_id: String,
    pub workflow_label: String,
    /// `config` (read-only) or `api`.
    pub source: &'static str,
    /// Every setting in force (lowercase channels).
    pub settings: WorkflowSettings,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub created_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub updated_at: Option<String>,
}

/// An API workflow as stored.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct Stored {
    label: String,
    settings: WorkflowSettings,
    created_at: String,
    updated_at: String,
}

/// A workflow resolved for use: the engine's [`Workflow`] plus what only the hosted page uses.
#[derive(Clone, Debug)]
pub struct Resolved {
    pub id: String,
    pub workflow: Arc<Workflow>,
    pub brand_color: String,
    pub allowed_channels: Vec<Channel>,
    pub preferred_channel: Option<Channel>,
}

/// The accent colour when a workflow names none.
pub const DEFAULT_BRAND_COLOR: &str = "#1d4ed8";

fn collection(app: &str) -> String {
    format!("workflows:{app}")
}

fn invalid(field: &'static str, message: &str) -> Error {
    Error::InvalidRequest {
        field,
        message: message.to_owned(),
    }
}

impl WorkflowSettings {
    /// Refuses values out of range, naming the field.
    pub fn validate(&self) -> Result<(), Error> {
        if let Some(b) = &self.brand
            && (b.is_empty() || b.chars().count() > 32 || b.chars().any(char::is_control))
        {
            return Err(invalid(
                "brand",
                "must be 1-32 characters without control characters",
            ));
        }
        if let Some(c) = &self.brand_color
            && !(c.len() == 7
                && c.starts_with('#')
                && c[1..].bytes().all(|b| b.is_ascii_hexdigit()))
        {
            return Err(invalid("brand_color", "must be a colour like #1d4ed8"));
        }
        if let Some(l) = &self.locale
            && !LOCALES.contains(&l.as_str())
        {
            return Err(invalid("locale", "must be one of en, es, pt, fr, de, ar"));
        }
        let ranges: [(&'static str, Option<u64>, u64, u64); 4] = [
            ("code_validity_secs", self.code_validity_secs, 60, 3600),
            ("max_attempts", self.max_attempts.map(u64::from), 1, 10),
            ("max_resends", self.max_resends.map(u64::from), 0, 10),
            ("resend_cooldown_secs", self.resend_cooldown_secs, 0, 600),
        ];
        for (field, value, lo, hi) in ranges {
            if let Some(v) = value
                && !(lo..=hi).contains(&v)
            {
                return Err(invalid(field, &format!("must be between {lo} and {hi}")));
            }
        }
        Ok(())
    }

    /// `self` with every field `patch` sets replaced.
    fn patched(mut self, patch: WorkflowSettings) -> Self {
        macro_rules! take {
            ($($f:ident),*) => { $( if patch.$f.is_some() { self.$f = patch.$f; } )* };
        }
        take!(
            brand,
            brand_color,
            locale,
            preferred_channel,
            allowed_channels,
            code_validity_secs,
            max_attempts,
            max_resends,
            resend_cooldown_secs,
            risk,
            fraud_mode
        );
        self
    }

    /// The engine workflow: `base` with these settings applied.
    fn apply(&self, base: &Workflow) -> Workflow {
        let mut wf = base.clone();
        if let Some(b) = &self.brand {
            wf.brand.clone_from(b);
        }
        if let Some(l) = &self.locale {
            wf.locale.clone_from(l);
        }
        if let Some(v) = self.code_validity_secs {
            wf.limits.validity_secs = v;
        }
        if let Some(v) = self.max_attempts {
            wf.limits.max_attempts = v;
        }
        if let Some(v) = self.max_resends {
            wf.limits.max_resends = v;
        }
        if let Some(v) = self.resend_cooldown_secs {
            wf.limits.resend_cooldown_secs = v;
        }
        if let Some(r) = &self.risk {
            wf.risk.disposable = r.disposable.unwrap_or(wf.risk.disposable);
            wf.risk.voip = r.voip.unwrap_or(wf.risk.voip);
            wf.risk.duplicated = r.duplicated.unwrap_or(wf.risk.duplicated);
        }
        if let Some(m) = self.fraud_mode {
            wf.fraud.mode = m;
        }
        wf
    }

    /// Every setting of `wf` as the API shows it, with these settings' page-only fields.
    fn effective(&self, wf: &Workflow) -> WorkflowSettings {
        WorkflowSettings {
            brand: Some(wf.brand.clone()),
            brand_color: Some(
                self.brand_color
                    .clone()
                    .unwrap_or_else(|| DEFAULT_BRAND_COLOR.to_owned()),
            ),
            locale: Some(wf.locale.clone()),
            preferred_channel: self.preferred_channel,
            allowed_channels: Some(self.allowed_channels.clone().unwrap_or_default()),
            code_validity_secs: Some(wf.limits.validity_secs),
            max_attempts: Some(wf.limits.max_attempts),
            max_resends: Some(wf.limits.max_resends),
            resend_cooldown_secs: Some(wf.limits.resend_cooldown_secs),
            risk: Some(RiskActions {
                disposable: Some(wf.risk.disposable),
                voip: Some(wf.risk.voip),
                duplicated: Some(wf.risk.duplicated),
            }),
            fraud_mode: Some(wf.fraud.mode),
        }
    }
}

/// Deduplicates channels, keeping the first mention.
fn dedup(channels: &mut Option<Vec<Channel>>) {
    if let Some(list) = channels {
        let mut seen = Vec::new();
        list.retain(|c| {
            let new = !seen.contains(c);
            seen.push(*c);
            new
        });
    }
}

fn check_label(label: &str) -> Result<(), Error> {
    if label.trim().is_empty() || label.chars().count() > 128 || label.chars().any(char::is_control)
    {
        return Err(invalid(
            "workflow_label",
            "must be 1-128 printable characters",
        ));
    }
    Ok(())
}

/// Ids are UUIDs (or the application's name): anything longer cannot name a workflow.
fn check_workflow_id(id: &str) -> Result<(), Error> {
    if id.is_empty() || id.len() > 64 {
        return Err(not_found());
    }
    Ok(())
}

fn not_found() -> Error {
    Error::NotFound("no workflow with this id for this application")
}

fn unknown_for_session() -> Error {
    Error::NotFound("`workflow_id` names no workflow of this application")
}

impl Engine {
    fn base_workflow(&self, app: &str) -> Result<&Workflow, Error> {
        self.config()
            .app(app)
            .ok_or_else(|| Error::UnknownApp(app.chars().take(64).collect()))
    }

    fn config_view(&self, app: &str) -> Result<WorkflowView, Error> {
        let wf = self.base_workflow(app)?;
        Ok(WorkflowView {
            workflow_id: app.to_owned(),
            workflow_label: app.to_owned(),
            source: "config",
            settings: WorkflowSettings::default().effective(wf),
            created_at: None,
            updated_at: None,
        })
    }

    fn api_view(&self, app: &str, id: String, stored: Stored) -> Result<WorkflowView, Error> {
        let base = self.base_workflow(app)?;
        Ok(WorkflowView {
            workflow_id: id,
            workflow_label: stored.label,
            source: "api",
            settings: stored.settings.effective(&stored.settings.apply(base)),
            created_at: Some(stored.created_at),
            updated_at: Some(stored.updated_at),
        })
    }

    async fn stored_workflow(&self, app: &str, id: &str) -> Result<Option<Stored>, Error> {
        let Some(json) = self.store().document(&collection(app), id).await? else {
            return Ok(None);
        };
        serde_json::from_str(&json)
            .map(Some)
            .map_err(|_| crate::store::StoreError::Corrupt("workflow".into()).into())
    }

    async fn put_workflow(&self, app: &str, id: &str, stored: &Stored) -> Result<(), Error> {
        let json = serde_json::to_string(stored).map_err(|_| Error::Internal)?;
        Ok(self
            .store()
            .put_document(&collection(app), id, &json)
            .await?)
    }

    /// The application's workflows: its configured one first, then its API ones by id.
    pub async fn list_workflows(&self, app: &str) -> Result<Vec<WorkflowView>, Error> {
        let mut out = vec![self.config_view(app)?];
        for (id, json) in self.store().documents(&collection(app)).await? {
            if let Ok(stored) = serde_json::from_str::<Stored>(&json) {
                out.push(self.api_view(app, id, stored)?);
            }
        }
        Ok(out)
    }

    /// One workflow of the application (its own name is its configured workflow).
    pub async fn get_workflow(&self, app: &str, id: &str) -> Result<WorkflowView, Error> {
        check_workflow_id(id)?;
        if id == app {
            return self.config_view(app);
        }
        let stored = self.stored_workflow(app, id).await?.ok_or_else(not_found)?;
        self.api_view(app, id.to_owned(), stored)
    }

    /// Creates an API workflow of the application.
    pub async fn create_workflow(
        &self,
        app: &str,
        label: &str,
        mut settings: WorkflowSettings,
    ) -> Result<WorkflowView, Error> {
        check_label(label)?;
        dedup(&mut settings.allowed_channels);
        settings.validate()?;
        if self.store().documents(&collection(app)).await?.len() >= MAX_WORKFLOWS {
            return Err(Error::LimitReached(
                "this application already has 100 workflows; delete one first",
            ));
        }
        let now = crate::clock::iso8601(self.now());
        let id = uuid::Uuid::new_v4().to_string();
        let stored = Stored {
            label: label.to_owned(),
            settings,
            created_at: now.clone(),
            updated_at: now,
        };
        self.put_workflow(app, &id, &stored).await?;
        self.api_view(app, id, stored)
    }

    /// Changes an API workflow: a new label and/or the settings given (others stay).
    pub async fn update_workflow(
        &self,
        app: &str,
        id: &str,
        label: Option<&str>,
        mut patch: WorkflowSettings,
    ) -> Result<WorkflowView, Error> {
        check_workflow_id(id)?;
        if id == app {
            return Err(Error::ConfigReadOnly(format!("workflow {id:?}")));
        }
        let mut stored = self.stored_workflow(app, id).await?.ok_or_else(not_found)?;
        if let Some(label) = label {
            check_label(label)?;
            label.clone_into(&mut stored.label);
        }
        dedup(&mut patch.allowed_channels);
        patch.validate()?;
        stored.settings = stored.settings.patched(patch);
        stored.updated_at = crate::clock::iso8601(self.now());
        self.put_workflow(app, id, &stored).await?;
        self.api_view(app, id.to_owned(), stored)
    }

    /// Deletes an API workflow. Sessions already made with it keep what they resolved.
    pub async fn delete_workflow(&self, app: &str, id: &str) -> Result<(), Error> {
        check_workflow_id(id)?;
        if id == app {
            return Err(Error::ConfigReadOnly(format!("workflow {id:?}")));
        }
        if self.store().delete_document(&collection(app), id).await? {
            Ok(())
        } else {
            Err(not_found())
        }
    }

    /// The workflow `id` of `app` (its configured one when `id` is `None` or the app's name),
    /// resolved for a session.
    pub async fn resolve_workflow(&self, app: &str, id: Option<&str>) -> Result<Resolved, Error> {
        let base = self.base_workflow(app)?;
        let (id, settings) = match id {
            None => (app.to_owned(), WorkflowSettings::default()),
            Some(id) if id == app => (app.to_owned(), WorkflowSettings::default()),
            Some(id) => {
                check_workflow_id(id).map_err(|_| unknown_for_session())?;
                let stored = self.stored_workflow(app, id).await?.ok_or(Error::NotFound(
                    "`workflow_id` names no workflow of this application",
                ))?;
                (id.to_owned(), stored.settings)
            }
        };
        Ok(resolved(id, &settings, base))
    }

    /// The stored settings of API workflow `id` of `app`.
    pub(crate) async fn workflow_settings(
        &self,
        app: &str,
        id: &str,
    ) -> Result<WorkflowSettings, Error> {
        Ok(self
            .stored_workflow(app, id)
            .await?
            .ok_or_else(not_found)?
            .settings)
    }
}

fn resolved(id: String, settings: &WorkflowSettings, base: &Workflow) -> Resolved {
    Resolved {
        id,
        workflow: Arc::new(settings.apply(base)),
        brand_color: settings
            .brand_color
            .clone()
            .unwrap_or_else(|| DEFAULT_BRAND_COLOR.to_owned()),
        allowed_channels: settings.allowed_channels.clone().unwrap_or_default(),
        preferred_channel: settings.preferred_channel,
    }
}

/// A session's workflow: `settings` (kept by the session) over its application's.
pub(crate) fn resolve_settings(
    engine: &Engine,
    app: &str,
    id: &str,
    settings: &WorkflowSettings,
) -> Result<Resolved, Error> {
    Ok(resolved(
        id.to_owned(),
        settings,
        engine.base_workflow(app)?,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_out_of_range_are_refused_naming_the_field() {
        let cases = [
            (
                WorkflowSettings {
                    max_attempts: Some(0),
                    ..Default::default()
                },
                "max_attempts",
            ),
            (
                WorkflowSettings {
                    brand_color: Some("red".into()),
                    ..Default::default()
                },
                "brand_color",
            ),
            (
                WorkflowSettings {
                    locale: Some("it".into()),
                    ..Default::default()
                },
                "locale",
            ),
            (
                WorkflowSettings {
                    code_validity_secs: Some(10),
                    ..Default::default()
                },
                "code_validity_secs",
            ),
        ];
        for (settings, field) in cases {
            match settings.validate() {
                Err(Error::InvalidRequest { field: f, .. }) => assert_eq!(f, field),
                other => panic!("{field}: {other:?}"),
            }
        }
    }

    #[test]
    fn a_patch_replaces_only_what_it_sets() {
        let old = WorkflowSettings {
            brand: Some("Shop".into()),
            max_attempts: Some(3),
            ..Default::default()
        };
        let new = old.patched(WorkflowSettings {
            max_attempts: Some(5),
            ..Default::default()
        });
        assert_eq!(new.brand.as_deref(), Some("Shop"));
        assert_eq!(new.max_attempts, Some(5));
    }
}
