//! The one place an error becomes an HTTP status and an error body.
//!
//! Every handler returns [`ApiError`]. Its response is
//! `{"error": {"code", "message", "request_id"}}`. A 500 shows the client
//! only a generic message and is logged once, at error, with the request
//! id and the whole chain of causes; the other 5xx (not configured,
//! unavailable, no room) show their message and are logged at warn; a
//! client error (4xx) is logged at debug only.

use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use kiln_core::{Error, ErrorKind};

use crate::request_id::RequestId;

/// Everything a request can fail with.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The service (or a value check) refused or failed.
    #[error(transparent)]
    Core(#[from] Error),

    /// A missing or unknown token.
    #[error("{reason}")]
    Unauthorized {
        /// Why the request is not authenticated.
        reason: &'static str,
    },

    /// The caller is known but may not do this (a non-admin naming
    /// another owner, or an admin-only route).
    #[error("{reason}")]
    Forbidden {
        /// What is refused, and why.
        reason: String,
    },

    /// The body is larger than `limits.max_body_bytes`.
    #[error("request body is larger than {limit} bytes")]
    PayloadTooLarge {
        /// The limit.
        limit: usize,
    },

    /// The body is not declared as JSON.
    #[error("expected content-type application/json, got {}", content_type.as_deref().unwrap_or("no content-type"))]
    UnsupportedMediaType {
        /// The `Content-Type` received, if any.
        content_type: Option<String>,
    },

    /// No route has this path.
    #[error("no route for {path}")]
    NoRoute {
        /// The path asked for.
        path: String,
    },

    /// The route exists but not with this method.
    #[error("method {method} not allowed here")]
    MethodNotAllowed {
        /// The method used.
        method: String,
    },

    /// A handler panicked (caught by the panic layer).
    #[error("handler panicked: {detail}")]
    Panic {
        /// The panic message, for the log only.
        detail: String,
    },
}

impl ApiError {
    /// The status and the stable machine code of this error.
    pub fn status_and_code(&self) -> (StatusCode, &'static str) {
        match self {
            ApiError::Core(e) => kind_status(e.kind()),
            ApiError::Unauthorized { .. } => (StatusCode::UNAUTHORIZED, "unauthorized"),
            ApiError::Forbidden { .. } => (StatusCode::FORBIDDEN, "forbidden"),
            ApiError::PayloadTooLarge { .. } => {
                (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large")
            }
            ApiError::UnsupportedMediaType { .. } => {
                (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type")
            }
            ApiError::NoRoute { .. } => (StatusCode::NOT_FOUND, "not_found"),
            ApiError::MethodNotAllowed { .. } => {
                (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed")
            }
            ApiError::Panic { .. } => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        }
    }

    /// The message for logs: the error with every cause.
    fn log_message(&self) -> String {
        match self {
            ApiError::Core(e) => e.chain(),
            other => other.to_string(),
        }
    }
}

/// The status of each error kind.
fn kind_status(kind: ErrorKind) -> (StatusCode, &'static str) {
    let status = match kind {
        ErrorKind::NotFound => StatusCode::NOT_FOUND,
        ErrorKind::AlreadyExists | ErrorKind::Conflict => StatusCode::CONFLICT,
        ErrorKind::InvalidInput => StatusCode::BAD_REQUEST,
        ErrorKind::QuotaExceeded => StatusCode::TOO_MANY_REQUESTS,
        ErrorKind::InsufficientCapacity => StatusCode::INSUFFICIENT_STORAGE,
        ErrorKind::Unsupported | ErrorKind::NotConfigured => StatusCode::NOT_IMPLEMENTED,
        ErrorKind::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        ErrorKind::Cancelled => StatusCode::CONFLICT,
        ErrorKind::Corrupt | ErrorKind::Internal => StatusCode::INTERNAL_SERVER_ERROR,
    };
    (status, kind.code())
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code) = self.status_and_code();
        let request_id = RequestId::current();
        // Only a 500 hides its message: 501, 503 and 507 say what the
        // client can act on (not configured, unreachable, full).
        let message = if status == StatusCode::INTERNAL_SERVER_ERROR {
            tracing::error!(
                request_id = %request_id,
                status = status.as_u16(),
                error = %self.log_message(),
                "request failed"
            );
            "internal error; the daemon log has the details under this request id".to_string()
        } else {
            if status.is_server_error() {
                tracing::warn!(
                    request_id = %request_id,
                    status = status.as_u16(),
                    error = %self.log_message(),
                    "request failed"
                );
            } else {
                tracing::debug!(
                    request_id = %request_id,
                    status = status.as_u16(),
                    error = %self.log_message(),
                    "request refused"
                );
            }
            self.to_string()
        };
        let body = serde_json::json!({
            "error": { "code": code, "message": message, "request_id": request_id.as_str() }
        });
        let mut response = (status, axum::Json(body)).into_response();
        if let ApiError::Unauthorized { .. } = self {
            response
                .headers_mut()
                .insert("www-authenticate", HeaderValue::from_static("Bearer"));
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_map_to_the_documented_statuses() {
        let cases = [
            (ErrorKind::NotFound, 404),
            (ErrorKind::AlreadyExists, 409),
            (ErrorKind::Conflict, 409),
            (ErrorKind::InvalidInput, 400),
            (ErrorKind::QuotaExceeded, 429),
            (ErrorKind::InsufficientCapacity, 507),
            (ErrorKind::Unsupported, 501),
            (ErrorKind::NotConfigured, 501),
            (ErrorKind::Unavailable, 503),
            (ErrorKind::Internal, 500),
        ];
        for (kind, status) in cases {
            assert_eq!(kind_status(kind).0.as_u16(), status, "{kind:?}");
            assert_eq!(kind_status(kind).1, kind.code());
        }
    }
}
