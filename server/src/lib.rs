//! kilnd: the kiln daemon, as a library the binary and the tests share.
//!
//! It owns the HTTP surface of docs/api.md (routes, authentication, the
//! mapping of errors to statuses, body limits), the listeners (a unix
//! socket and an optional TCP address), and the construction of each
//! configured pool's backend. It must not hold policy: every rule about
//! volumes, owners, quotas and attachments is
//! [`kiln_core::service::VolumeService`]'s, which the handlers call.
//!
//! The router is built by a function, so tests drive it without a socket:
//!
//! ```no_run
//! # async fn demo(service: std::sync::Arc<kiln_core::service::VolumeService>) {
//! use tower::ServiceExt;
//! let app = kilnd::router(kilnd::AppState::new(service));
//! let request = axum::http::Request::get("/healthz")
//!     .body(axum::body::Body::empty())
//!     .expect("a valid request");
//! let response = app.oneshot(request).await.expect("infallible");
//! assert_eq!(response.status(), 200);
//! # }
//! ```
//!
//! # Layout
//!
//! - [`app`]: the shared state and the router;
//! - [`routes`]: one module per resource;
//! - [`auth`]: tokens, transports, `?owner=`;
//! - [`extract`]: the checked JSON body and path extractors;
//! - [`error`]: the one place an error becomes a status;
//! - [`request_id`]: ids for requests, their logs and error bodies;
//! - [`listen`]: the unix socket and TCP listeners, graceful shutdown;
//! - [`pools`]: the backend of each configured pool;
//! - [`jobs`]: long operations (backup, restore, gc, verify) and their progress;
//! - [`scheduler`]: scheduled backups with retention.

#![deny(missing_docs)]

pub mod app;
pub mod auth;
pub mod error;
pub mod extract;
pub mod jobs;
pub mod listen;
pub mod pools;
pub mod request_id;
pub mod routes;
pub mod scheduler;

pub use app::{router, AppState};
pub use auth::Transport;
pub use error::ApiError;
pub use listen::Listeners;
pub use pools::open_pools;
