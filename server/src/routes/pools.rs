//! `/v1/pools`: every pool with its capacity and use.

use axum::extract::State;
use axum::routing::get;
use axum::Router;
use kiln_core::service::PoolView;
use serde::Serialize;

use crate::app::AppState;
use crate::auth::Caller;
use crate::error::ApiError;

/// The answer of `GET /v1/pools`.
#[derive(Debug, Serialize)]
struct PoolList {
    pools: Vec<PoolView>,
}

/// The pool routes.
pub fn routes() -> Router<AppState> {
    Router::new().route("/v1/pools", get(list))
}

/// Any authenticated caller may see the pools: they are the host's, not
/// an owner's.
async fn list(
    State(state): State<AppState>,
    _caller: Caller,
) -> Result<axum::Json<PoolList>, ApiError> {
    let pools = state.service.list_pools().await?;
    Ok(axum::Json(PoolList { pools }))
}
