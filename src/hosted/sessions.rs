//! Sessions: one end user's hosted verification. An integrator creates a session (workflow,
//! `vendor_data`, optional locked number and callback) and sends the user to its
//! `session_url`; the hosted page drives the same send and check as the API through the
//! session. A session owns at most one verification: its status follows that verification's
//! record (`Not Started` before the first code, `In Progress` while the verification is
//! pending, then the verification's end), and a session that ends without one is `Expired`.
//!
//! Store (values with a TTL, module `store::documents`):
//! - `session:ID` the session (kept `record_ttl_secs` past its end, for its decision);
//! - `session-token:SHA256(token)` → ID, until the session expires (the URL's token is never
//!   stored in clear);
//! - `session-v:ID` its verification (written once: set-if-absent);
//! - `session-of:APP:VERIFICATION_ID` → ID, so the verification's events reach the session;
//! - `matches:APP:E164` (a collection) the `vendor_data` each number was approved for through a
//!   session, for cross-session matches;
//! - the due index `sessions`, swept with the verifications' expiry.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};
use switchboard_providers::Channel;

use super::workflows::Resolved;
use crate::clock::Millis;
use crate::error::Error;
use crate::events::{Event, EventKind};
use crate::report::{CheckOutcome, PhoneReport, SendOutcome, SendStatus, VerificationStatus};
use crate::{CheckRequest, Engine, SendOptions, SendRequest, Signals};

/// Sessions taken from the due index per store call.
const SWEEP_BATCH: usize = 256;
/// Longest callback URL.
const MAX_CALLBACK: usize = 2048;

/// A session's status.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub enum SessionStatus {
    #[serde(rename = "Not Started")]
    NotStarted,
    #[serde(rename = "In Progress")]
    InProgress,
    Approved,
    Declined,
    #[serde(rename = "In Review")]
    InReview,
    Abandoned,
    Expired,
}

impl SessionStatus {
    pub const fn as_str(self) -> &'static str {
        match self {
            SessionStatus::NotStarted => "Not Started",
            SessionStatus::InProgress => "In Progress",
            SessionStatus::Approved => "Approved",
            SessionStatus::Declined => "Declined",
            SessionStatus::InReview => "In Review",
            SessionStatus::Abandoned => "Abandoned",
            SessionStatus::Expired => "Expired",
        }
    }

    /// The session's status while its verification has `status`.
    fn following(status: &str) -> Self {
        match status {
            "Approved" => SessionStatus::Approved,
            "Declined" => SessionStatus::Declined,
            "In Review" => SessionStatus::InReview,
            "Abandoned" => SessionStatus::Abandoned,
            "Expired" => SessionStatus::Expired,
            _ => SessionStatus::InProgress,
        }
    }

    /// True once nothing more can happen on the page.
    pub fn is_final(self) -> bool {
        !matches!(self, SessionStatus::NotStarted | SessionStatus::InProgress)
    }

    fn event(self) -> EventKind {
        match self {
            SessionStatus::NotStarted => EventKind::SessionCreated,
            SessionStatus::InProgress => EventKind::SessionInProgress,
            SessionStatus::Approved => EventKind::SessionApproved,
            SessionStatus::Declined => EventKind::SessionDeclined,
            SessionStatus::InReview => EventKind::SessionInReview,
            SessionStatus::Abandoned => EventKind::SessionAbandoned,
            SessionStatus::Expired => EventKind::SessionExpired,
        }
    }
}

/// What a session is created with.
#[derive(Clone, Debug, Default)]
pub struct NewSession {
    pub app: String,
    pub workflow_id: Option<String>,
    pub vendor_data: Option<String>,
    pub metadata: Option<Value>,
    /// Pre-fills and locks the number (E.164).
    pub phone: Option<String>,
    /// Where the page sends the user at the end (`?session_id=..&status=..` appended).
    pub callback: Option<String>,
    /// The page's language; the workflow's or the browser's when unset.
    pub locale: Option<String>,
}

/// A stored session.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Session {
    pub session_id: String,
    pub app: String,
    pub workflow_id: String,
    /// The workflow's settings as they were when the session was made.
    pub settings: super::WorkflowSettings,
    pub vendor_data: Option<String>,
    pub metadata: Option<Value>,
    pub phone: Option<String>,
    pub callback: Option<String>,
    pub locale: Option<String>,
    pub created_at: Millis,
    pub expires_at: Millis,
}

/// The verification a session started.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Progress {
    pub verification_id: String,
    /// E.164.
    pub phone_number: String,
}

/// A new session and the URL token that opens it (shown once; only its digest is stored).
#[derive(Clone, Debug)]
pub struct Created {
    pub session: Session,
    pub token: String,
}

/// Another session's user this number was approved for.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SessionMatch {
    pub session_id: String,
    pub vendor_data: String,
    /// ISO 8601.
    pub approved_at: String,
}

/// `GET /v3/session/{id}/decision/`.
#[derive(Clone, Debug, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Decision {
    pub session_id: String,
    pub status: SessionStatus,
    pub workflow_id: String,
    pub vendor_data: Option<String>,
    #[schema(value_type = Option<Object>)]
    pub metadata: Option<Value>,
    pub callback: Option<String>,
    /// ISO 8601.
    pub created_at: String,
    /// ISO 8601: the session URL works until then.
    pub expires_at: String,
    /// The session's verification, once a code was sent.
    pub verification_id: Option<String>,
    /// The phone report of the verification (line, risks, channel, attempts).
    pub phone: Option<PhoneReport>,
    /// Other `vendor_data` this number was approved for through sessions of this application
    /// (ring fraud: one number verifying many accounts).
    pub matches: Vec<SessionMatch>,
}

fn session_key(id: &str) -> String {
    format!("session:{id}")
}

fn token_key(token: &str) -> String {
    format!(
        "session-token:{}",
        hex::encode(Sha256::digest(token.as_bytes()))
    )
}

fn progress_key(id: &str) -> String {
    format!("session-v:{id}")
}

fn owner_key(app: &str, verification_id: &str) -> String {
    format!("session-of:{app}:{verification_id}")
}

fn matches_collection(app: &str, e164: &str) -> String {
    format!("matches:{app}:{e164}")
}

fn secs_ms(secs: u64) -> i64 {
    i64::try_from(secs.saturating_mul(1000)).unwrap_or(i64::MAX)
}

fn corrupt(what: &str) -> Error {
    crate::store::StoreError::Corrupt(what.to_owned()).into()
}

/// 256 random bits, URL-safe.
fn new_token() -> String {
    use base64::Engine as _;
    let bytes: [u8; 32] = rand::random();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// An `http://` or `https://` URL of at most 2048 visible ASCII characters (the form a
/// `Location` header carries; other characters are percent-encoded by the caller).
pub fn is_http_url(url: &str) -> bool {
    url.len() <= MAX_CALLBACK
        && (url.starts_with("https://") || url.starts_with("http://"))
        && url.len() > "http://".len()
        && url.bytes().all(|b| b.is_ascii_graphic())
}

/// Refuses a callback that is not an absolute http(s) URL, or (with a list) one outside the
/// application's allowed prefixes.
fn check_callback(callback: &str, allowed: &[String], development: bool) -> Result<(), Error> {
    let invalid = |message: &str| Error::InvalidRequest {
        field: "callback",
        message: message.to_owned(),
    };
    if callback.len() > MAX_CALLBACK
        || !(callback.starts_with("https://") || callback.starts_with("http://"))
        || callback
            .chars()
            .any(|c| c.is_whitespace() || c.is_control())
    {
        return Err(invalid(
            "must be an absolute http:// or https:// URL of at most 2048 characters",
        ));
    }
    if allowed.is_empty() {
        if development {
            return Ok(());
        }
        return Err(invalid(
            "this application allows no callback (workflow.hosted.callback_urls is empty)",
        ));
    }
    if allowed.iter().any(|prefix| callback.starts_with(prefix)) {
        Ok(())
    } else {
        Err(invalid(
            "is not under one of the application's workflow.hosted.callback_urls",
        ))
    }
}

impl Engine {
    /// Creates a session of `new.app` with its workflow; the token goes in the session URL.
    pub async fn create_session(&self, new: NewSession) -> Result<Created, Error> {
        let resolved = self
            .resolve_workflow(&new.app, new.workflow_id.as_deref())
            .await?;
        crate::engine::check_vendor_data(new.vendor_data.as_deref())?;
        crate::engine::check_metadata(new.metadata.as_ref())?;
        let phone = match &new.phone {
            Some(p) => Some(crate::phone::parse(p, None)?.e164),
            None => None,
        };
        let policy = &resolved.workflow.hosted;
        if let Some(cb) = &new.callback {
            check_callback(
                cb,
                &policy.callback_urls,
                self.config().mode == crate::config::Mode::Development,
            )?;
        }
        if let Some(l) = &new.locale
            && !super::LOCALES.contains(&l.as_str())
        {
            return Err(Error::InvalidRequest {
                field: "locale",
                message: "must be one of en, es, pt, fr, de, ar".into(),
            });
        }
        let now = self.now();
        let ttl = secs_ms(policy.session_ttl_secs);
        let session = Session {
            session_id: uuid::Uuid::new_v4().to_string(),
            app: new.app.clone(),
            workflow_id: resolved.id.clone(),
            settings: self.session_settings(&new.app, &resolved).await?,
            vendor_data: new.vendor_data,
            metadata: new.metadata,
            phone,
            callback: new.callback,
            locale: new.locale,
            created_at: now,
            expires_at: now + ttl,
        };
        let token = new_token();
        let keep = ttl + secs_ms(resolved.workflow.limits.record_ttl_secs);
        let json = serde_json::to_string(&session).map_err(|_| Error::Internal)?;
        let store = self.store();
        store
            .put_value(&session_key(&session.session_id), &json, keep, now, false)
            .await?;
        store
            .put_value(&token_key(&token), &session.session_id, ttl, now, false)
            .await?;
        store
            .add_due("sessions", &session.session_id, session.expires_at)
            .await?;
        self.publish_session(&session, SessionStatus::NotStarted, None, None);
        Ok(Created { session, token })
    }

    /// The settings a session keeps: its API workflow's own (a configured workflow has none).
    async fn session_settings(
        &self,
        app: &str,
        resolved: &Resolved,
    ) -> Result<super::WorkflowSettings, Error> {
        if resolved.id == app {
            return Ok(super::WorkflowSettings::default());
        }
        self.workflow_settings(app, &resolved.id).await
    }

    /// The session of application `app` with id `id`.
    pub async fn session(&self, app: &str, id: &str) -> Result<Session, Error> {
        let not_found = || Error::NotFound("no session with this id for this application");
        if uuid::Uuid::try_parse(id).is_err() {
            return Err(Error::InvalidRequest {
                field: "session_id",
                message: "must be a UUID".into(),
            });
        }
        let session = self.load_session(id).await?.ok_or_else(not_found)?;
        if session.app != app {
            return Err(not_found());
        }
        Ok(session)
    }

    async fn load_session(&self, id: &str) -> Result<Option<Session>, Error> {
        match self.store().value(&session_key(id), self.now()).await? {
            None => Ok(None),
            Some(json) => serde_json::from_str(&json)
                .map(Some)
                .map_err(|_| corrupt("session")),
        }
    }

    /// The live session a URL token opens: `None` when unknown or expired.
    pub async fn session_by_token(&self, token: &str) -> Result<Option<Session>, Error> {
        if token.len() != 43 {
            return Ok(None);
        }
        let Some(id) = self.store().value(&token_key(token), self.now()).await? else {
            return Ok(None);
        };
        Ok(self
            .load_session(&id)
            .await?
            .filter(|s| s.expires_at > self.now()))
    }

    /// The verification the session started, if any.
    pub async fn session_progress(&self, session: &Session) -> Result<Option<Progress>, Error> {
        match self
            .store()
            .value(&progress_key(&session.session_id), self.now())
            .await?
        {
            None => Ok(None),
            Some(json) => serde_json::from_str(&json)
                .map(Some)
                .map_err(|_| corrupt("session progress")),
        }
    }

    /// The workflow a session runs with, resolved against its application's configuration.
    pub fn session_workflow(&self, session: &Session) -> Result<Resolved, Error> {
        super::workflows::resolve_settings(
            self,
            &session.app,
            &session.workflow_id,
            &session.settings,
        )
    }

    /// The session's status and, once started, its verification.
    pub async fn session_status(
        &self,
        session: &Session,
    ) -> Result<(SessionStatus, Option<crate::Verification>), Error> {
        let Some(progress) = self.session_progress(session).await? else {
            let status = if session.expires_at <= self.now() {
                SessionStatus::Expired
            } else {
                SessionStatus::NotStarted
            };
            return Ok((status, None));
        };
        match self
            .verification(&progress.verification_id, Some(&session.app))
            .await
        {
            Ok(v) => Ok((SessionStatus::following(&v.status), Some(v))),
            Err(Error::NotFound(_)) => Ok((SessionStatus::Expired, None)),
            Err(e) => Err(e),
        }
    }

    /// `GET /v3/session/{id}/decision/`.
    pub async fn session_decision(&self, app: &str, id: &str) -> Result<Decision, Error> {
        let session = self.session(app, id).await?;
        let (status, verification) = self.session_status(&session).await?;
        let mut matches = Vec::new();
        if let Some(v) = &verification {
            if status == SessionStatus::Approved {
                self.remember_match(&session, &v.phone_number).await?;
            }
            for (vendor, json) in self
                .store()
                .documents(&matches_collection(app, &v.phone_number))
                .await?
            {
                if Some(&vendor) == session.vendor_data.as_ref() {
                    continue;
                }
                if let Ok(m) = serde_json::from_str::<SessionMatch>(&json)
                    && m.session_id != session.session_id
                {
                    matches.push(m);
                }
            }
        }
        Ok(Decision {
            session_id: session.session_id,
            status,
            workflow_id: session.workflow_id,
            vendor_data: session.vendor_data,
            metadata: session.metadata,
            callback: session.callback,
            created_at: crate::clock::iso8601(session.created_at),
            expires_at: crate::clock::iso8601(session.expires_at),
            verification_id: verification.as_ref().map(|v| v.verification_id.clone()),
            phone: verification.map(|v| v.phone),
            matches,
        })
    }

    /// Records that the session's number was approved for its `vendor_data`.
    async fn remember_match(&self, session: &Session, e164: &str) -> Result<(), Error> {
        let Some(vendor) = &session.vendor_data else {
            return Ok(());
        };
        let entry = SessionMatch {
            session_id: session.session_id.clone(),
            vendor_data: vendor.clone(),
            approved_at: crate::clock::iso8601(self.now()),
        };
        let collection = matches_collection(&session.app, e164);
        if self.store().document(&collection, vendor).await?.is_some() {
            return Ok(());
        }
        let json = serde_json::to_string(&entry).map_err(|_| Error::Internal)?;
        Ok(self
            .store()
            .put_document(&collection, vendor, &json)
            .await?)
    }

    /// Forgets the users `e164` was approved for through sessions (a number's deletion).
    pub(crate) async fn forget_session_matches(&self, app: &str, e164: &str) -> Result<(), Error> {
        let collection = matches_collection(app, e164);
        for (vendor, _) in self.store().documents(&collection).await? {
            self.store().delete_document(&collection, &vendor).await?;
        }
        Ok(())
    }

    /// Sends (or re-sends) the session's code to `phone` through the engine's send, with the
    /// session's workflow, `vendor_data`, `metadata` and the user's client context. The first
    /// verification it opens becomes the session's; a session with one only re-sends to it.
    pub async fn session_send(
        &self,
        session: &Session,
        phone: &str,
        channel: Option<Channel>,
        signals: Signals,
        webotp_host: Option<String>,
    ) -> Result<SendOutcome, Error> {
        let resolved = self.session_workflow(session)?;
        let progress = self.session_progress(session).await?;
        let phone = match (&progress, &session.phone) {
            (Some(p), _) => p.phone_number.clone(),
            (None, Some(locked)) => locked.clone(),
            (None, None) => phone.to_owned(),
        };
        if let Some(c) = channel
            && !resolved.allowed_channels.is_empty()
            && !resolved.allowed_channels.contains(&c)
        {
            return Err(Error::ChannelUnavailable { channel: c });
        }
        let locale = session
            .locale
            .clone()
            .unwrap_or_else(|| resolved.workflow.locale.clone());
        let outcome = self
            .send(SendRequest {
                phone_number: phone,
                channel,
                vendor_data: session.vendor_data.clone(),
                metadata: session.metadata.clone(),
                app: Some(session.app.clone()),
                options: SendOptions {
                    locale: Some(locale),
                    preferred_channel: resolved.preferred_channel,
                    webotp_host,
                    ..SendOptions::default()
                },
                signals,
                workflow: Some(resolved.workflow.clone()),
                ..SendRequest::default()
            })
            .await?;
        if progress.is_none()
            && matches!(outcome.status, SendStatus::Success | SendStatus::Retry)
            && let Some(id) = &outcome.verification_id
        {
            self.attach(session, id, &outcome.phone.full_number).await?;
        }
        Ok(outcome)
    }

    /// Makes `verification_id` the session's (once) and announces `In Progress`.
    async fn attach(
        &self,
        session: &Session,
        verification_id: &str,
        e164: &str,
    ) -> Result<(), Error> {
        let progress = Progress {
            verification_id: verification_id.to_owned(),
            phone_number: e164.to_owned(),
        };
        let json = serde_json::to_string(&progress).map_err(|_| Error::Internal)?;
        let now = self.now();
        let keep = (session.expires_at - now)
            + secs_ms(
                self.session_workflow(session)?
                    .workflow
                    .limits
                    .record_ttl_secs,
            );
        let store = self.store();
        if store
            .put_value(&progress_key(&session.session_id), &json, keep, now, true)
            .await?
        {
            store
                .put_value(
                    &owner_key(&session.app, verification_id),
                    &session.session_id,
                    keep,
                    now,
                    false,
                )
                .await?;
            self.publish_session(
                session,
                SessionStatus::InProgress,
                Some(verification_id),
                Some(e164),
            );
        }
        Ok(())
    }

    /// Checks a code typed on the session's page against its verification.
    pub async fn session_check(
        &self,
        session: &Session,
        code: &str,
    ) -> Result<Option<CheckOutcome>, Error> {
        let Some(progress) = self.session_progress(session).await? else {
            return Ok(None);
        };
        let resolved = self.session_workflow(session)?;
        let mut req = CheckRequest::new(progress.phone_number, code);
        req.app = Some(session.app.clone());
        req.vendor_data = session.vendor_data.clone();
        req.workflow = Some(resolved.workflow);
        self.check(req).await.map(Some)
    }

    /// A verification event of a session's verification: the session's own event follows.
    /// Runs off the request path (a store read to find the session).
    pub(crate) fn follow_verification(&self, event: &Event) {
        let status = match event.event {
            EventKind::Approved => SessionStatus::Approved,
            EventKind::Declined => SessionStatus::Declined,
            EventKind::ReviewStarted => SessionStatus::InReview,
            EventKind::Expired => SessionStatus::Expired,
            EventKind::Abandoned => SessionStatus::Abandoned,
            _ => return,
        };
        let Some(verification_id) = event.verification_id.clone() else {
            return;
        };
        let engine = self.clone();
        let app = event.app.clone();
        let e164 = event.phone_number.clone();
        tokio::spawn(async move {
            let found = async {
                let Some(id) = engine
                    .store()
                    .value(&owner_key(&app, &verification_id), engine.now())
                    .await?
                else {
                    return Ok::<_, Error>(None);
                };
                engine.load_session(&id).await
            };
            match found.await {
                Ok(Some(session)) => {
                    if status == SessionStatus::Approved
                        && let Err(e) = engine.remember_match(&session, &e164).await
                    {
                        tracing::warn!(error = %e, "session match not recorded");
                    }
                    engine.publish_session(&session, status, Some(&verification_id), Some(&e164));
                }
                Ok(None) => {}
                Err(e) => tracing::warn!(error = %e, "session of a verification not found"),
            }
        });
    }

    /// Ends every session whose URL expired before it started a verification (a started one
    /// ends with its verification). Each is announced once, however many instances sweep.
    pub(crate) async fn sweep_sessions(&self) -> Result<usize, Error> {
        let mut ended = 0;
        loop {
            let due = self
                .store()
                .take_due("sessions", self.now(), SWEEP_BATCH)
                .await?;
            for id in &due {
                let Some(session) = self.load_session(id).await? else {
                    continue;
                };
                if self.session_progress(&session).await?.is_none() {
                    self.publish_session(&session, SessionStatus::Expired, None, None);
                    ended += 1;
                }
            }
            if due.len() < SWEEP_BATCH {
                return Ok(ended);
            }
        }
    }

    fn publish_session(
        &self,
        session: &Session,
        status: SessionStatus,
        verification_id: Option<&str>,
        e164: Option<&str>,
    ) {
        let verification_status = match status {
            SessionStatus::Approved => Some(VerificationStatus::Approved),
            SessionStatus::Declined => Some(VerificationStatus::Declined),
            SessionStatus::InReview => Some(VerificationStatus::InReview),
            SessionStatus::Abandoned => Some(VerificationStatus::Abandoned),
            SessionStatus::Expired if verification_id.is_some() => {
                Some(VerificationStatus::Expired)
            }
            SessionStatus::InProgress => Some(VerificationStatus::NotFinished),
            _ => None,
        };
        self.publish(Event {
            event: status.event(),
            event_id: uuid::Uuid::new_v4().to_string(),
            created_at: crate::clock::iso8601(self.now()),
            app: session.app.clone(),
            request_id: String::new(),
            verification_id: verification_id.map(str::to_owned),
            vendor_data: session.vendor_data.clone(),
            metadata: session.metadata.clone(),
            phone_number: e164
                .map(str::to_owned)
                .or_else(|| session.phone.clone())
                .unwrap_or_default(),
            status: verification_status,
            channel: None,
            provider: None,
            provider_message_id: None,
            delivery_status: None,
            reason: None,
            fraud: None,
            routing: None,
            session_id: Some(session.session_id.clone()),
            session_status: Some(status),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn callbacks_outside_the_allow_list_are_refused() {
        let allowed = vec!["https://shop.example.com/done".to_owned()];
        assert!(check_callback("https://shop.example.com/done?x=1", &allowed, false).is_ok());
        assert!(check_callback("https://evil.example.com/done", &allowed, false).is_err());
        assert!(check_callback("javascript:alert(1)", &allowed, true).is_err());
        assert!(check_callback("https://any.example.com/", &[], false).is_err());
        assert!(check_callback("https://any.example.com/", &[], true).is_ok());
    }

    #[test]
    fn tokens_carry_256_bits_and_are_not_stored_in_clear() {
        let a = new_token();
        assert_eq!(a.len(), 43);
        assert_ne!(a, new_token());
        assert!(!token_key(&a).contains(&a));
    }
}
