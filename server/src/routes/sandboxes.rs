//! `/v1/sandboxes`: create (attaching all volumes or none), list, get,
//! stop, start, destroy.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::Router;
use kiln_core::model::{Sandbox, VolumeRequest};
use kiln_core::SandboxName;
use serde::{Deserialize, Serialize};

use crate::app::AppState;
use crate::auth::Caller;
use crate::error::ApiError;
use crate::extract::{Json, NameParam};

/// The body of `POST /v1/sandboxes`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateBody {
    name: SandboxName,
    volumes: Vec<VolumeRequest>,
}

/// The answer of `GET /v1/sandboxes`.
#[derive(Debug, Serialize)]
struct SandboxList {
    sandboxes: Vec<Sandbox>,
}

/// The sandbox routes.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/sandboxes", post(create).get(list))
        .route("/v1/sandboxes/{name}", get(show).delete(destroy))
        .route("/v1/sandboxes/{name}/stop", post(stop))
        .route("/v1/sandboxes/{name}/start", post(start))
}

async fn create(
    State(state): State<AppState>,
    caller: Caller,
    Json(body): Json<CreateBody>,
) -> Result<(StatusCode, axum::Json<Sandbox>), ApiError> {
    let sandbox = state
        .service
        .create_sandbox(&caller.actor, body.name, body.volumes)
        .await?;
    Ok((StatusCode::CREATED, axum::Json(sandbox)))
}

async fn list(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<axum::Json<SandboxList>, ApiError> {
    let sandboxes = state
        .service
        .list_sandboxes(&caller.actor, caller.all_owners)
        .await?;
    Ok(axum::Json(SandboxList { sandboxes }))
}

async fn show(
    State(state): State<AppState>,
    caller: Caller,
    NameParam(name): NameParam<SandboxName>,
) -> Result<axum::Json<Sandbox>, ApiError> {
    Ok(axum::Json(
        state.service.get_sandbox(&caller.actor, &name).await?,
    ))
}

async fn stop(
    State(state): State<AppState>,
    caller: Caller,
    NameParam(name): NameParam<SandboxName>,
) -> Result<axum::Json<Sandbox>, ApiError> {
    Ok(axum::Json(
        state.service.stop_sandbox(&caller.actor, &name).await?,
    ))
}

async fn start(
    State(state): State<AppState>,
    caller: Caller,
    NameParam(name): NameParam<SandboxName>,
) -> Result<axum::Json<Sandbox>, ApiError> {
    Ok(axum::Json(
        state.service.start_sandbox(&caller.actor, &name).await?,
    ))
}

async fn destroy(
    State(state): State<AppState>,
    caller: Caller,
    NameParam(name): NameParam<SandboxName>,
) -> Result<StatusCode, ApiError> {
    state.service.destroy_sandbox(&caller.actor, &name).await?;
    Ok(StatusCode::NO_CONTENT)
}
