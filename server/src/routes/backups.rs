//! The backup and job routes of docs/api.md.
//!
//! # Limitations
//!
//! The backup engine is not wired to the daemon yet: every route here
//! answers 501 `not_configured` (`Error::BackupNotConfigured`) after
//! authenticating the caller. The backup work replaces these handlers
//! with real ones; the paths and their authentication stay.

use axum::routing::{delete, get, post};
use axum::Router;
use kiln_core::Error;

use crate::app::AppState;
use crate::auth::Caller;
use crate::error::ApiError;

/// The backup and job routes.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route(
            "/v1/volumes/{name}/backups",
            post(not_configured).get(not_configured),
        )
        .route("/v1/volumes/{name}/backups/{id}", delete(not_configured))
        .route("/v1/volumes/{name}/restore", post(not_configured))
        .route("/v1/backups/gc", post(not_configured))
        .route("/v1/backups/{id}/verify", post(not_configured))
        .route("/v1/jobs/{id}", get(not_configured))
        .route("/v1/jobs/{id}/cancel", post(not_configured))
}

async fn not_configured(_caller: Caller) -> ApiError {
    Error::BackupNotConfigured.into()
}
