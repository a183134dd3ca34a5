//! The backup and job routes of docs/api.md.
//!
//! Backup, restore, gc and verify start jobs ([`crate::jobs`]) and answer
//! 202 with the job; their rules (busy, attached, quota, not found) are
//! checked before the job starts, so a refusal is an immediate 4xx. On a
//! daemon without a `backup:` section every route here answers 501 with
//! [`Error::BackupNotConfigured`].

use std::sync::Arc;

use axum::extract::{Path, Request, State};
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::{delete, get, post};
use axum::Router;
use kiln_core::backup::{BackupEngine, BackupInfo};
use kiln_core::{BackupId, Error, JobId, VolumeName};
use serde::{Deserialize, Serialize};

use crate::app::AppState;
use crate::auth::Caller;
use crate::error::ApiError;
use crate::extract::{Json, NameParam};
use crate::jobs::{JobKind, JobView};

/// The body of `POST /v1/volumes/{name}/restore`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RestoreBody {
    backup_id: BackupId,
    #[serde(default)]
    to: Option<VolumeName>,
}

/// The answer of `GET /v1/volumes/{name}/backups`.
#[derive(Debug, Serialize)]
struct BackupList {
    backups: Vec<BackupInfo>,
}

/// The backup and job routes; on a daemon without a `backup:` section
/// each answers 501 once its caller is known, before its path or body is
/// read (a bad body must not hide that backups are not configured).
pub fn routes(state: &AppState) -> Router<AppState> {
    Router::new()
        .route("/v1/volumes/{name}/backups", post(backup).get(list))
        .route("/v1/volumes/{name}/backups/{id}", delete(remove))
        .route("/v1/volumes/{name}/restore", post(restore))
        .route("/v1/backups/gc", post(gc))
        .route("/v1/backups/schedules", get(schedules))
        .route("/v1/backups/{id}/verify", post(verify))
        .route("/v1/jobs/{id}", get(job))
        .route("/v1/jobs/{id}/cancel", post(cancel))
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            require_backup,
        ))
}

async fn require_backup(
    State(state): State<AppState>,
    _caller: Caller,
    request: Request,
    next: Next,
) -> Result<Response, ApiError> {
    engine(&state)?;
    Ok(next.run(request).await)
}

fn engine(state: &AppState) -> Result<Arc<BackupEngine>, ApiError> {
    state
        .backup
        .clone()
        .ok_or_else(|| Error::BackupNotConfigured.into())
}

fn parse_id<T>(
    field: &str,
    raw: &str,
    parse: impl Fn(&str) -> kiln_core::Result<T>,
) -> Result<T, ApiError> {
    parse(raw).map_err(|e| Error::invalid(field, e.to_string()).into())
}

type Accepted = (StatusCode, axum::Json<JobView>);

async fn backup(
    State(state): State<AppState>,
    caller: Caller,
    NameParam(name): NameParam<VolumeName>,
) -> Result<Accepted, ApiError> {
    // The body is `{}` (or empty): nothing in it to read.
    let engine = engine(&state)?;
    let prepared = state.service.prepare_backup(&caller.actor, &name).await?;
    let service = state.service.clone();
    let job = state.jobs.spawn(
        JobKind::Backup,
        &caller.actor.owner,
        Some(name),
        move |progress| async move { service.run_backup(prepared, &engine, &progress).await },
    );
    Ok((StatusCode::ACCEPTED, axum::Json(job)))
}

async fn list(
    State(state): State<AppState>,
    caller: Caller,
    NameParam(name): NameParam<VolumeName>,
) -> Result<axum::Json<BackupList>, ApiError> {
    let engine = engine(&state)?;
    let backups = state
        .service
        .list_backups(&caller.actor, &name, &engine)
        .await?;
    Ok(axum::Json(BackupList { backups }))
}

async fn remove(
    State(state): State<AppState>,
    caller: Caller,
    Path((name, id)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let engine = engine(&state)?;
    let name = parse_id("name", &name, |s| s.parse::<VolumeName>())?;
    let id = parse_id("id", &id, BackupId::parse)?;
    state
        .service
        .delete_backup(&caller.actor, &name, &id, &engine)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn restore(
    State(state): State<AppState>,
    caller: Caller,
    NameParam(name): NameParam<VolumeName>,
    Json(body): Json<RestoreBody>,
) -> Result<Accepted, ApiError> {
    let engine = engine(&state)?;
    let prepared = state
        .service
        .prepare_restore(&caller.actor, &name, &body.backup_id, body.to, &engine)
        .await?;
    let service = state.service.clone();
    let target = prepared.target().clone();
    let job = state.jobs.spawn(
        JobKind::Restore,
        &caller.actor.owner,
        Some(target),
        move |progress| async move { service.run_restore(prepared, &engine, &progress).await },
    );
    Ok((StatusCode::ACCEPTED, axum::Json(job)))
}

async fn gc(State(state): State<AppState>, caller: Caller) -> Result<Accepted, ApiError> {
    // Any caller may start it: gc removes only blocks no backup of any
    // owner references, and shows nothing of other owners.
    let engine = engine(&state)?;
    let job = state.jobs.spawn(
        JobKind::Gc,
        &caller.actor.owner,
        None,
        move |progress| async move { engine.gc(&progress).await },
    );
    Ok((StatusCode::ACCEPTED, axum::Json(job)))
}

async fn verify(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Accepted, ApiError> {
    let engine = engine(&state)?;
    let id = parse_id("id", &id, BackupId::parse)?;
    // Not found is answered now, not as a failed job.
    let manifest = engine.find(&caller.actor.owner, &id).await?;
    let job = state.jobs.spawn(
        JobKind::Verify,
        &caller.actor.owner,
        Some(manifest.volume.clone()),
        move |progress| async move { engine.verify(&manifest, &progress).await },
    );
    Ok((StatusCode::ACCEPTED, axum::Json(job)))
}

async fn job(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<axum::Json<JobView>, ApiError> {
    engine(&state)?;
    let id = parse_id("id", &id, JobId::parse)?;
    Ok(axum::Json(state.jobs.get(&caller.actor, &id)?))
}

async fn cancel(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<axum::Json<JobView>, ApiError> {
    engine(&state)?;
    let id = parse_id("id", &id, JobId::parse)?;
    Ok(axum::Json(state.jobs.cancel(&caller.actor, &id)?))
}

/// The answer of `GET /v1/backups/schedules`.
#[derive(Debug, Serialize)]
struct ScheduleList {
    schedules: Vec<crate::scheduler::ScheduleView>,
}

async fn schedules(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<axum::Json<ScheduleList>, ApiError> {
    engine(&state)?;
    Ok(axum::Json(ScheduleList {
        schedules: state.schedules.list(&caller.actor),
    }))
}
