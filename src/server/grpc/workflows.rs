//! Workflows over gRPC, as over HTTP (`/v3/workflows/`); settings travel as JSON object text.

use super::pb;
use crate::Engine;
use crate::hosted::{WorkflowSettings, WorkflowView};
use crate::server::errors::ApiError;

fn settings_in(json: &str) -> Result<WorkflowSettings, ApiError> {
    if json.trim().is_empty() {
        return Ok(WorkflowSettings::default());
    }
    serde_json::from_str(json)
        .map_err(|e| ApiError::invalid(format!("invalid `settings_json`: {e}")))
}

fn workflow_out(view: WorkflowView) -> pb::Workflow {
    pb::Workflow {
        workflow_id: view.workflow_id,
        workflow_label: view.workflow_label,
        source: view.source.to_owned(),
        settings_json: serde_json::to_string(&view.settings).unwrap_or_default(),
        created_at: view.created_at.unwrap_or_default(),
        updated_at: view.updated_at.unwrap_or_default(),
    }
}

pub async fn list(engine: &Engine, app: &str) -> Result<pb::ListWorkflowsResponse, ApiError> {
    Ok(pb::ListWorkflowsResponse {
        workflows: engine
            .list_workflows(app)
            .await?
            .into_iter()
            .map(workflow_out)
            .collect(),
    })
}

pub async fn get(
    engine: &Engine,
    app: &str,
    req: pb::GetWorkflowRequest,
) -> Result<pb::Workflow, ApiError> {
    Ok(workflow_out(
        engine.get_workflow(app, &req.workflow_id).await?,
    ))
}

pub async fn create(
    engine: &Engine,
    app: &str,
    req: pb::CreateWorkflowRequest,
) -> Result<pb::Workflow, ApiError> {
    let settings = settings_in(&req.settings_json)?;
    Ok(workflow_out(
        engine
            .create_workflow(app, &req.workflow_label, settings)
            .await?,
    ))
}

pub async fn update(
    engine: &Engine,
    app: &str,
    req: pb::UpdateWorkflowRequest,
) -> Result<pb::Workflow, ApiError> {
    let settings = settings_in(&req.settings_json)?;
    Ok(workflow_out(
        engine
            .update_workflow(
                app,
                &req.workflow_id,
                req.workflow_label.as_deref(),
                settings,
            )
            .await?,
    ))
}

pub async fn delete(
    engine: &Engine,
    app: &str,
    req: pb::DeleteWorkflowRequest,
) -> Result<pb::DeleteWorkflowResponse, ApiError> {
    engine.delete_workflow(app, &req.workflow_id).await?;
    Ok(pb::DeleteWorkflowResponse { deleted: true })
}
