//! Request ids: each request gets one, echoed in the `x-request-id`
//! response header and in error bodies, and named in the log lines of the
//! request.
//!
//! The id lives in a task-local for the duration of the request, so the
//! error response (built far from the request) and the panic handler can
//! read it without threading it through every handler.

use std::fmt;

use axum::extract::Request;
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::Response;

tokio::task_local! {
    static CURRENT: RequestId;
}

/// The id of one request (`req-` and 32 hex digits).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestId(String);

impl RequestId {
    fn generate() -> Self {
        Self(format!("req-{}", uuid::Uuid::new_v4().simple()))
    }

    /// The id of the request being served, or `req-unknown` outside one.
    pub fn current() -> Self {
        CURRENT
            .try_with(Clone::clone)
            .unwrap_or_else(|_| Self("req-unknown".to_string()))
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Middleware: gives the request an id, serves it inside the id's scope,
/// and logs its start and end at debug.
pub async fn assign(mut request: Request, next: Next) -> Response {
    let id = RequestId::generate();
    request.extensions_mut().insert(id.clone());
    let method = request.method().clone();
    let path = request.uri().path().to_string();
    CURRENT
        .scope(id.clone(), async move {
            tracing::debug!(request_id = %id, %method, %path, "request started");
            let mut response = next.run(request).await;
            tracing::debug!(
                request_id = %id,
                %method,
                %path,
                status = response.status().as_u16(),
                "request finished"
            );
            if let Ok(value) = HeaderValue::from_str(id.as_str()) {
                response.headers_mut().insert("x-request-id", value);
            }
            response
        })
        .await
}
