//! The application: its shared state and the router.
//!
//! [`router`] builds the whole HTTP surface from an [`AppState`], so tests
//! drive it with `tower::ServiceExt::oneshot` without any socket; the
//! listeners ([`crate::listen`]) serve the same router and record the
//! transport of each request.

use std::any::Any;
use std::sync::Arc;

use axum::extract::Request;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{middleware, Json, Router};
use kiln_core::backup::{BackupEngine, BackupSettings};
use kiln_core::service::VolumeService;
use tower_http::catch_panic::CatchPanicLayer;

use crate::auth::Authenticator;
use crate::error::ApiError;
use crate::jobs::Jobs;
use crate::{request_id, routes};

/// What every handler shares.
#[derive(Clone)]
pub struct AppState {
    /// The volume service (the policy).
    pub service: Arc<VolumeService>,
    /// The configured tokens.
    pub auth: Arc<Authenticator>,
    /// The largest request body accepted, in bytes.
    pub max_body_bytes: usize,
    /// The backup engine, when the config has a `backup:` section.
    pub backup: Option<Arc<BackupEngine>>,
    /// Running and recent jobs.
    pub jobs: Arc<Jobs>,
    /// Scheduled backups and how they ran.
    pub schedules: Arc<crate::scheduler::Schedules>,
}

impl AppState {
    /// The state for `service`, with the tokens and limits of its config.
    pub fn new(service: Arc<VolumeService>) -> Self {
        let config = service.config();
        Self {
            auth: Arc::new(Authenticator::new(config.tokens.clone())),
            max_body_bytes: config.limits.max_body_bytes,
            backup: None,
            jobs: Arc::default(),
            schedules: Arc::default(),
            service,
        }
    }

    /// Opens the backup target of the config's `backup:` section, if it
    /// has one (the target is not contacted: a backup checks it first).
    pub fn open_backups(mut self) -> kiln_core::Result<Self> {
        let Some(config) = self.service.config().backup.clone() else {
            return Ok(self);
        };
        let target = kiln_object_store::ObjectStore::from_config(&config.target).map_err(|e| {
            let mut reason = e.to_string();
            let mut cause = std::error::Error::source(&e);
            while let Some(c) = cause {
                reason.push_str(&format!(": {c}"));
                cause = c.source();
            }
            kiln_core::Error::Config {
                key: "backup".into(),
                reason,
            }
        })?;
        let describe = kiln_core::BackupTarget::describe(&target);
        let engine = BackupEngine::new(Arc::new(target), BackupSettings::from_config(&config)?);
        tracing::info!(target = %describe, "backup target configured");
        self.backup = Some(Arc::new(engine));
        Ok(self)
    }
}

/// The whole API of docs/api.md over `state`.
pub fn router(state: AppState) -> Router {
    let routes = Router::new()
        .route("/healthz", get(healthz))
        .merge(routes::volumes::routes())
        .merge(routes::sandboxes::routes())
        .merge(routes::pools::routes())
        .merge(routes::backups::routes(&state))
        .fallback(no_route)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(state);
    with_layers(routes)
}

/// The layers every route runs under: a request id (outermost, so even a
/// panic's answer carries it) and the panic catcher. Public so tests can
/// put them around routes of their own.
pub fn with_layers(routes: Router) -> Router {
    routes
        .layer(CatchPanicLayer::custom(on_panic))
        .layer(middleware::from_fn(request_id::assign))
}

async fn healthz() -> Json<serde_json::Value> {
    Json(serde_json::json!({ "status": "ok" }))
}

async fn no_route(request: Request) -> ApiError {
    ApiError::NoRoute {
        path: request.uri().path().to_string(),
    }
}

async fn method_not_allowed(request: Request) -> ApiError {
    ApiError::MethodNotAllowed {
        method: request.method().to_string(),
    }
}

/// A panicking handler answers 500 with the generic body (the panic is
/// logged with the request id by [`ApiError`]'s response); the daemon
/// keeps serving.
fn on_panic(payload: Box<dyn Any + Send + 'static>) -> Response {
    let detail = payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "non-string panic payload".to_string());
    let mut response = ApiError::Panic { detail }.into_response();
    *response.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
    response
}
