//! Webhook destinations over HTTP: the configured ones (read-only) and those the application
//! created; a created destination's signing secret is in the create answer only.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::records::segment;
use super::types::ErrorBody;
use super::workflows::Deleted;
use super::{AppState, Reply, authorize, body, run, split};
use crate::server::destinations::{CreatedDestination, DestinationView};

const DESTINATIONS: &str = "/v3/webhook/destinations/";

/// Body of `POST /v3/webhook/destinations/`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewDestinationBody {
    /// Where events are POSTed: an http:// or https:// URL of visible ASCII.
    #[schema(max_length = 2048, pattern = "^https?://[!-~]+$")]
    pub url: String,
    /// Event names to receive (`session.approved`, `verification.expired`, ...); empty or
    /// omitted = every event.
    #[serde(default)]
    #[schema(schema_with = events_input)]
    pub subscribed_events: Vec<String>,
}

fn events_input() -> utoipa::openapi::schema::Array {
    utoipa::openapi::schema::ArrayBuilder::new()
        .items(super::types::string_enum(
            crate::events::EventKind::ALL.map(crate::events::EventKind::as_str),
            false,
        ))
        .build()
}

/// `GET /v3/webhook/destinations/`.
#[derive(Debug, Serialize, ToSchema)]
pub struct DestinationList {
    pub destinations: Vec<DestinationView>,
}

/// The application's webhook destinations: the configured ones that receive its events
/// (`source: "config"`), then those it created. Secrets are never listed.
#[utoipa::path(
    get,
    operation_id = "list_webhook_destinations",
    path = "/v3/webhook/destinations/",
    tag = "webhooks",
    security(("api_key" = [])),
    responses(
        (status = 200, description = "The destinations", body = DestinationList),
        (status = 401, description = "UNAUTHENTICATED", body = ErrorBody),
        (status = 429, description = "RATE_LIMITED", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait"))),
        (status = 503, description = "UNAVAILABLE", body = ErrorBody),
    )
)]
pub(super) async fn list(State(state): State<Arc<AppState>>, request: Request) -> Response {
    run(&state, "list_webhook_destinations", async {
        let (incoming, _) = split(request);
        let principal = authorize(&state, &incoming)?;
        let destinations = state.destinations.list(&principal.app).await?;
        Ok(Reply::json(
            StatusCode::OK,
            &DestinationList { destinations },
            None,
        ))
    })
    .await
}

/// Creates a destination for the application's events. The answer carries
/// `secret_shared_key`, which signs every delivery: it is not shown again.
#[utoipa::path(
    post,
    operation_id = "create_webhook_destination",
    path = "/v3/webhook/destinations/",
    tag = "webhooks",
    request_body = NewDestinationBody,
    security(("api_key" = [])),
    responses(
        (status = 201, description = "Created, with its secret (shown once)", body = CreatedDestination),
        (status = 400, description = "INVALID_REQUEST (the message names the field)", body = ErrorBody),
        (status = 401, description = "UNAUTHENTICATED", body = ErrorBody),
        (status = 409, description = "LIMIT_REACHED: the application has 20 destinations", body = ErrorBody),
        (status = 429, description = "RATE_LIMITED", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait"))),
        (status = 503, description = "UNAVAILABLE", body = ErrorBody),
    )
)]
pub(super) async fn create(State(state): State<Arc<AppState>>, request: Request) -> Response {
    run(&state, "create_webhook_destination", async {
        let (incoming, body) = split(request);
        let principal = authorize(&state, &incoming)?;
        let req: NewDestinationBody = body::json(&incoming.headers, body).await?;
        let created = state
            .destinations
            .create(
                &principal.app,
                &req.url,
                req.subscribed_events,
                state.engine.now(),
            )
            .await?;
        Ok(Reply::json(StatusCode::CREATED, &created, None))
    })
    .await
}

/// Deletes a destination the application created (configured ones are read-only).
#[utoipa::path(
    delete,
    operation_id = "delete_webhook_destination",
    path = "/v3/webhook/destinations/{destination_id}/",
    tag = "webhooks",
    params(("destination_id" = String, Path, description = "As created (a UUID)")),
    security(("api_key" = [])),
    responses(
        (status = 200, description = "Deleted", body = Deleted),
        (status = 400, description = "INVALID_REQUEST", body = ErrorBody),
        (status = 401, description = "UNAUTHENTICATED", body = ErrorBody),
        (status = 404, description = "NOT_FOUND", body = ErrorBody),
        (status = 409, description = "CONFIG_READ_ONLY: a configured destination", body = ErrorBody),
        (status = 429, description = "RATE_LIMITED", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait"))),
        (status = 503, description = "UNAVAILABLE", body = ErrorBody),
    )
)]
pub(super) async fn delete(State(state): State<Arc<AppState>>, request: Request) -> Response {
    run(&state, "delete_webhook_destination", async {
        let (incoming, _) = split(request);
        let principal = authorize(&state, &incoming)?;
        let id = segment(incoming.uri.path(), DESTINATIONS, "destination id")?;
        state.destinations.delete(&principal.app, &id).await?;
        Ok(Reply::json(
            StatusCode::OK,
            &Deleted { id, deleted: true },
            None,
        ))
    })
    .await
}
