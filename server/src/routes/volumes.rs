//! `/v1/volumes`: create, list, get, delete, resize, clone.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::Router;
use kiln_core::model::Volume;
use kiln_core::service::CreateVolume;
use kiln_core::{PoolName, SizeMib, VolumeName};
use serde::{Deserialize, Serialize};

use crate::app::AppState;
use crate::auth::Caller;
use crate::error::ApiError;
use crate::extract::{Json, NameParam};

/// The body of `POST /v1/volumes`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateBody {
    name: VolumeName,
    size_mib: SizeMib,
    #[serde(default)]
    pool: Option<PoolName>,
}

/// The body of `POST /v1/volumes/{name}/resize`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ResizeBody {
    size_mib: SizeMib,
}

/// The body of `POST /v1/volumes/{name}/clone`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CloneBody {
    name: VolumeName,
}

/// The answer of `GET /v1/volumes`.
#[derive(Debug, Serialize)]
struct VolumeList {
    volumes: Vec<Volume>,
}

/// The volume routes.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/volumes", post(create).get(list))
        .route("/v1/volumes/{name}", get(show).delete(delete))
        .route("/v1/volumes/{name}/resize", post(resize))
        .route("/v1/volumes/{name}/clone", post(clone))
}

async fn create(
    State(state): State<AppState>,
    caller: Caller,
    Json(body): Json<CreateBody>,
) -> Result<(StatusCode, axum::Json<Volume>), ApiError> {
    let req = CreateVolume {
        name: body.name,
        size: body.size_mib,
        pool: body.pool,
    };
    let volume = state.service.create_volume(&caller.actor, req).await?;
    Ok((StatusCode::CREATED, axum::Json(volume)))
}

async fn list(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<axum::Json<VolumeList>, ApiError> {
    let volumes = state
        .service
        .list_volumes(&caller.actor, caller.all_owners)
        .await?;
    Ok(axum::Json(VolumeList { volumes }))
}

async fn show(
    State(state): State<AppState>,
    caller: Caller,
    NameParam(name): NameParam<VolumeName>,
) -> Result<axum::Json<Volume>, ApiError> {
    Ok(axum::Json(
        state.service.get_volume(&caller.actor, &name).await?,
    ))
}

async fn delete(
    State(state): State<AppState>,
    caller: Caller,
    NameParam(name): NameParam<VolumeName>,
) -> Result<StatusCode, ApiError> {
    state.service.delete_volume(&caller.actor, &name).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn resize(
    State(state): State<AppState>,
    caller: Caller,
    NameParam(name): NameParam<VolumeName>,
    Json(body): Json<ResizeBody>,
) -> Result<axum::Json<Volume>, ApiError> {
    let volume = state
        .service
        .resize_volume(&caller.actor, &name, body.size_mib)
        .await?;
    Ok(axum::Json(volume))
}

async fn clone(
    State(state): State<AppState>,
    caller: Caller,
    NameParam(src): NameParam<VolumeName>,
    Json(body): Json<CloneBody>,
) -> Result<(StatusCode, axum::Json<Volume>), ApiError> {
    let volume = state
        .service
        .clone_volume(&caller.actor, &src, body.name)
        .await?;
    Ok((StatusCode::CREATED, axum::Json(volume)))
}
