//! Workflows over HTTP: the application's configured workflow (read-only) and the ones it
//! created, kept in the store.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::records::segment;
use super::types::ErrorBody;
use super::{AppState, Reply, authorize, body, run, split};
use crate::hosted::{WorkflowSettings, WorkflowView};

const WORKFLOWS: &str = "/v3/workflows/";

/// Body of `POST /v3/workflows/`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewWorkflowBody {
    /// A name for people (1-128 characters, no control characters).
    #[schema(
        min_length = 1,
        max_length = 128,
        pattern = "^[^\\u0000-\\u001f\\u007f-\\u009f]+$"
    )]
    pub workflow_label: String,
    /// What differs from the application's configured workflow (unset = the same).
    #[serde(default)]
    pub settings: WorkflowSettings,
}

/// Body of `PATCH /v3/workflows/{workflow_id}/`: what changes.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WorkflowPatchBody {
    #[schema(
        min_length = 1,
        max_length = 128,
        pattern = "^[^\\u0000-\\u001f\\u007f-\\u009f]+$"
    )]
    pub workflow_label: Option<String>,
    #[serde(default)]
    pub settings: WorkflowSettings,
}

/// `GET /v3/workflows/`.
#[derive(Debug, Serialize, ToSchema)]
pub struct Workflows {
    pub workflows: Vec<WorkflowView>,
}

/// The answer to a deletion.
#[derive(Debug, Serialize, ToSchema)]
pub struct Deleted {
    pub id: String,
    pub deleted: bool,
}

/// The application's workflows: its configured one (`source: "config"`, id = the
/// application's name) first, then those created through the API.
#[utoipa::path(
    get,
    operation_id = "list_workflows",
    path = "/v3/workflows/",
    tag = "workflows",
    security(("api_key" = [])),
    responses(
        (status = 200, description = "Every workflow of the application", body = Workflows),
        (status = 401, description = "UNAUTHENTICATED", body = ErrorBody),
        (status = 429, description = "RATE_LIMITED", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait"))),
        (status = 503, description = "UNAVAILABLE", body = ErrorBody),
    )
)]
pub(super) async fn list(State(state): State<Arc<AppState>>, request: Request) -> Response {
    run(&state, "list_workflows", async {
        let (incoming, _) = split(request);
        let principal = authorize(&state, &incoming)?;
        let workflows = state.engine.list_workflows(&principal.app).await?;
        Ok(Reply::json(StatusCode::OK, &Workflows { workflows }, None))
    })
    .await
}

/// Creates a workflow: the application's configured one with `settings` applied.
#[utoipa::path(
    post,
    operation_id = "create_workflow",
    path = "/v3/workflows/",
    tag = "workflows",
    request_body = NewWorkflowBody,
    security(("api_key" = [])),
    responses(
        (status = 201, description = "Created", body = WorkflowView),
        (status = 400, description = "INVALID_REQUEST (the message names the field)", body = ErrorBody),
        (status = 401, description = "UNAUTHENTICATED", body = ErrorBody),
        (status = 409, description = "LIMIT_REACHED: the application has 100 workflows", body = ErrorBody),
        (status = 429, description = "RATE_LIMITED", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait"))),
        (status = 503, description = "UNAVAILABLE", body = ErrorBody),
    )
)]
pub(super) async fn create(State(state): State<Arc<AppState>>, request: Request) -> Response {
    run(&state, "create_workflow", async {
        let (incoming, body) = split(request);
        let principal = authorize(&state, &incoming)?;
        let req: NewWorkflowBody = body::json(&incoming.headers, body).await?;
        let view = state
            .engine
            .create_workflow(&principal.app, &req.workflow_label, req.settings)
            .await?;
        Ok(Reply::json(StatusCode::CREATED, &view, None))
    })
    .await
}

/// One workflow of the application.
#[utoipa::path(
    get,
    operation_id = "get_workflow",
    path = "/v3/workflows/{workflow_id}/",
    tag = "workflows",
    params(("workflow_id" = String, Path, description = "A UUID, or the application's name for its configured workflow")),
    security(("api_key" = [])),
    responses(
        (status = 200, description = "The workflow", body = WorkflowView),
        (status = 400, description = "INVALID_REQUEST", body = ErrorBody),
        (status = 401, description = "UNAUTHENTICATED", body = ErrorBody),
        (status = 404, description = "NOT_FOUND", body = ErrorBody),
        (status = 429, description = "RATE_LIMITED", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait"))),
        (status = 503, description = "UNAVAILABLE", body = ErrorBody),
    )
)]
pub(super) async fn get(State(state): State<Arc<AppState>>, request: Request) -> Response {
    run(&state, "get_workflow", async {
        let (incoming, _) = split(request);
        let principal = authorize(&state, &incoming)?;
        let id = segment(incoming.uri.path(), WORKFLOWS, "workflow id")?;
        let view = state.engine.get_workflow(&principal.app, &id).await?;
        Ok(Reply::json(StatusCode::OK, &view, None))
    })
    .await
}

/// Changes a workflow created through the API: its label and the settings given.
#[utoipa::path(
    patch,
    operation_id = "update_workflow",
    path = "/v3/workflows/{workflow_id}/",
    tag = "workflows",
    request_body = WorkflowPatchBody,
    params(("workflow_id" = String, Path, description = "A UUID")),
    security(("api_key" = [])),
    responses(
        (status = 200, description = "The workflow as it now stands", body = WorkflowView),
        (status = 400, description = "INVALID_REQUEST", body = ErrorBody),
        (status = 401, description = "UNAUTHENTICATED", body = ErrorBody),
        (status = 404, description = "NOT_FOUND", body = ErrorBody),
        (status = 409, description = "CONFIG_READ_ONLY: the configured workflow cannot be changed through the API", body = ErrorBody),
        (status = 429, description = "RATE_LIMITED", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait"))),
        (status = 503, description = "UNAVAILABLE", body = ErrorBody),
    )
)]
pub(super) async fn update(State(state): State<Arc<AppState>>, request: Request) -> Response {
    run(&state, "update_workflow", async {
        let (incoming, body) = split(request);
        let principal = authorize(&state, &incoming)?;
        let id = segment(incoming.uri.path(), WORKFLOWS, "workflow id")?;
        let req: WorkflowPatchBody = body::json(&incoming.headers, body).await?;
        let view = state
            .engine
            .update_workflow(
                &principal.app,
                &id,
                req.workflow_label.as_deref(),
                req.settings,
            )
            .await?;
        Ok(Reply::json(StatusCode::OK, &view, None))
    })
    .await
}

/// Deletes a workflow created through the API (sessions made with it keep its settings).
#[utoipa::path(
    delete,
    operation_id = "delete_workflow",
    path = "/v3/workflows/{workflow_id}/",
    tag = "workflows",
    params(("workflow_id" = String, Path, description = "A UUID")),
    security(("api_key" = [])),
    responses(
        (status = 200, description = "Deleted", body = Deleted),
        (status = 400, description = "INVALID_REQUEST", body = ErrorBody),
        (status = 401, description = "UNAUTHENTICATED", body = ErrorBody),
        (status = 404, description = "NOT_FOUND", body = ErrorBody),
        (status = 409, description = "CONFIG_READ_ONLY", body = ErrorBody),
        (status = 429, description = "RATE_LIMITED", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait"))),
        (status = 503, description = "UNAVAILABLE", body = ErrorBody),
    )
)]
pub(super) async fn delete(State(state): State<Arc<AppState>>, request: Request) -> Response {
    run(&state, "delete_workflow", async {
        let (incoming, _) = split(request);
        let principal = authorize(&state, &incoming)?;
        let id = segment(incoming.uri.path(), WORKFLOWS, "workflow id")?;
        state.engine.delete_workflow(&principal.app, &id).await?;
        Ok(Reply::json(
            StatusCode::OK,
            &Deleted { id, deleted: true },
            None,
        ))
    })
    .await
}
