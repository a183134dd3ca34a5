//! The crate's error type and the one place its failures get an
//! [`ErrorKind`].

use kiln_core::{BackendError, ErrorKind};

/// A failure of the object store, naming the target and the key.
#[derive(Debug, thiserror::Error)]
pub enum ObjectStoreError {
    /// The operator could not be built from the configuration.
    #[error("cannot set up {target}")]
    Setup {
        /// The target (`s3://bucket/prefix at endpoint`, or a folder).
        target: String,
        /// opendal's error.
        #[source]
        source: opendal::Error,
    },

    /// An operation on one key (or prefix) failed.
    #[error("{operation} {key:?} at {target}")]
    Operation {
        /// The target (`s3://bucket/prefix at endpoint`, or a folder).
        target: String,
        /// What was being done (`put`, `get`, `head`, `list`, `delete`).
        operation: &'static str,
        /// The key or prefix.
        key: String,
        /// opendal's error.
        #[source]
        source: opendal::Error,
    },
}

impl ObjectStoreError {
    fn opendal(&self) -> &opendal::Error {
        match self {
            ObjectStoreError::Setup { source, .. } | ObjectStoreError::Operation { source, .. } => {
                source
            }
        }
    }

    /// The kind of this failure; see [`classify`].
    pub fn kind(&self) -> ErrorKind {
        match self {
            ObjectStoreError::Setup { .. } => ErrorKind::InvalidInput,
            ObjectStoreError::Operation { source, .. } => classify(source),
        }
    }
}

/// Chooses the kind of an opendal failure:
///
/// - a missing bucket is [`ErrorKind::Unavailable`] (S3 answers it with a
///   404 that opendal reports as not found, so the body is checked first);
/// - a missing key is [`ErrorKind::NotFound`];
/// - refused credentials or signatures (403), rate limiting, and anything
///   the retry layer gave up on as temporary (connection refused, reset,
///   timeouts) are [`ErrorKind::Unavailable`];
/// - everything else is [`ErrorKind::Internal`].
pub fn classify(err: &opendal::Error) -> ErrorKind {
    let text = format!("{err:?}");
    if text.contains("NoSuchBucket") {
        return ErrorKind::Unavailable;
    }
    match err.kind() {
        opendal::ErrorKind::NotFound => ErrorKind::NotFound,
        opendal::ErrorKind::PermissionDenied | opendal::ErrorKind::RateLimited => {
            ErrorKind::Unavailable
        }
        _ if err.is_temporary() || looks_unreachable(&text) => ErrorKind::Unavailable,
        _ => ErrorKind::Internal,
    }
}

/// Whether the error chain says the endpoint could not be reached (after
/// the retry layer gave up, the error is no longer marked temporary).
fn looks_unreachable(text: &str) -> bool {
    const SIGNS: &[&str] = &[
        "error sending request",
        "send http request",
        "Connection refused",
        "connection reset",
        "connection closed",
        "dns error",
        "timeout",
        "timed out",
        "SignatureDoesNotMatch",
        "InvalidAccessKeyId",
        "AccessDenied",
    ];
    SIGNS.iter().any(|s| text.contains(s))
}

impl From<ObjectStoreError> for BackendError {
    fn from(err: ObjectStoreError) -> Self {
        let kind = err.kind();
        if kind == ErrorKind::Internal {
            tracing::debug!(error = ?err.opendal(), "object store failure classified as internal");
        }
        BackendError::new(kind, err)
    }
}
