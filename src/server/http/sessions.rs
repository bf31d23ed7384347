//! Hosted sessions over HTTP: create one (its `session_url` is the hosted page) and read its
//! decision.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use super::records::segment;
use super::types::ErrorBody;
use super::{AppState, Reply, authorize, body, run, split};
use crate::hosted::{Decision, NewSession, SessionStatus};

const SESSIONS: &str = "/v3/session/";

/// Body of `POST /v3/session/`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewSessionBody {
    /// A workflow of the application (`GET /v3/workflows/`); omitted = its configured one.
    pub workflow_id: Option<String>,
    /// Your user id (at most 256 bytes): duplicate detection and cross-session matches.
    #[schema(max_length = 256)]
    pub vendor_data: Option<String>,
    /// Where the page sends the user at the end, with `?session_id=...&status=...` appended:
    /// an http(s) URL of visible ASCII (percent-encode the rest) that starts with one of the
    /// application's `workflow.hosted.callback_urls`.
    #[schema(max_length = 2048, pattern = "^https?://[!-~]+$")]
    pub callback: Option<String>,
    /// Your own JSON object (at most 2 KiB), echoed in the decision and every event.
    #[schema(value_type = Option<Object>)]
    pub metadata: Option<Value>,
    pub contact_details: Option<ContactDetails>,
    /// The page's language (`en`, `es`, `pt`, `fr`, `de`, `ar`); omitted = the workflow's
    /// when it sets one, else the browser's.
    #[schema(schema_with = language_input)]
    pub language: Option<String>,
}

fn language_input() -> utoipa::openapi::schema::Object {
    super::types::string_enum(crate::hosted::LOCALES, true)
}

/// What is known of the user.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ContactDetails {
    /// E.164: pre-fills the page and locks the number.
    #[schema(example = "+12025550101")]
    pub phone: Option<String>,
}

/// The answer to `POST /v3/session/`.
#[derive(Debug, Serialize, ToSchema)]
pub struct SessionCreated {
    pub session_id: String,
    /// The hosted page: send the user there. It carries a 256-bit token and works until
    /// `expires_at`.
    pub session_url: String,
    /// The same as `session_url` (the reference API's name).
    pub url: String,
    pub status: SessionStatus,
    pub workflow_id: String,
    pub vendor_data: Option<String>,
    #[schema(value_type = Option<Object>)]
    pub metadata: Option<Value>,
    pub callback: Option<String>,
    /// ISO 8601.
    pub expires_at: String,
}

/// Creates a hosted verification session; send the user to its `session_url`.
#[utoipa::path(
    post,
    operation_id = "create_session",
    path = "/v3/session/",
    tag = "sessions",
    request_body = NewSessionBody,
    security(("api_key" = [])),
    responses(
        (status = 201, description = "Created (`Not Started`); `session.created` goes out", body = SessionCreated),
        (status = 400, description = "INVALID_PHONE_NUMBER or INVALID_REQUEST (the message names the field: an unknown `workflow_id`, a `callback` outside the allow-list, ...)", body = ErrorBody),
        (status = 401, description = "UNAUTHENTICATED", body = ErrorBody),
        (status = 404, description = "NOT_FOUND: `workflow_id` names no workflow of this application", body = ErrorBody),
        (status = 429, description = "RATE_LIMITED", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait"))),
        (status = 503, description = "UNAVAILABLE", body = ErrorBody),
    )
)]
pub(super) async fn create(State(state): State<Arc<AppState>>, request: Request) -> Response {
    run(&state, "create_session", async {
        let (incoming, body) = split(request);
        let principal = authorize(&state, &incoming)?;
        let req: NewSessionBody = body::json(&incoming.headers, body).await?;
        let created = state
            .engine
            .create_session(NewSession {
                app: principal.app,
                workflow_id: req.workflow_id,
                vendor_data: req.vendor_data,
                metadata: req.metadata,
                phone: req.contact_details.and_then(|c| c.phone),
                callback: req.callback,
                locale: req.language,
            })
            .await?;
        let url = crate::server::hosted::session_url(
            &crate::server::hosted::origin(&state, &incoming.headers),
            &created.token,
        );
        let s = created.session;
        let answer = SessionCreated {
            session_id: s.session_id,
            session_url: url.clone(),
            url,
            status: SessionStatus::NotStarted,
            workflow_id: s.workflow_id,
            vendor_data: s.vendor_data,
            metadata: s.metadata,
            callback: s.callback,
            expires_at: crate::clock::iso8601(s.expires_at),
        };
        Ok(Reply::json(StatusCode::CREATED, &answer, None))
    })
    .await
}

/// A session's status, its verification's phone report, and `matches`: other users
/// (`vendor_data`) this number was approved for through the application's sessions.
#[utoipa::path(
    get,
    operation_id = "session_decision",
    path = "/v3/session/{session_id}/decision/",
    tag = "sessions",
    params(("session_id" = String, Path, description = "As created (a UUID)")),
    security(("api_key" = [])),
    responses(
        (status = 200, description = "The decision", body = Decision),
        (status = 400, description = "INVALID_REQUEST: the id is not a UUID", body = ErrorBody),
        (status = 401, description = "UNAUTHENTICATED", body = ErrorBody),
        (status = 404, description = "NOT_FOUND: no such session for this application (or it is gone)", body = ErrorBody),
        (status = 429, description = "RATE_LIMITED", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait"))),
        (status = 503, description = "UNAVAILABLE", body = ErrorBody),
    )
)]
pub(super) async fn decision(State(state): State<Arc<AppState>>, request: Request) -> Response {
    run(&state, "session_decision", async {
        let (incoming, _) = split(request);
        let principal = authorize(&state, &incoming)?;
        let path = incoming.uri.path().to_owned();
        let id = segment(
            path.strip_suffix("/decision/").unwrap_or(&path),
            SESSIONS,
            "session id",
        )?;
        let decision = state.engine.session_decision(&principal.app, &id).await?;
        Ok(Reply::json(StatusCode::OK, &decision, None))
    })
    .await
}
