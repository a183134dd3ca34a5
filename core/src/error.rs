//! kiln's error type and the small set of kinds every failure maps to.
//!
//! Backends and backup targets report [`BackendError`]s, each already
//! carrying its [`ErrorKind`]; the service wraps them in [`Error`] with the
//! pool or target named. The server turns an [`ErrorKind`] into an HTTP
//! status in exactly one place.

use std::fmt;

/// What went wrong, coarsely: the part of an error a caller can act on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// The named thing does not exist (for this owner).
    NotFound,
    /// A thing with that name already exists.
    AlreadyExists,
    /// The thing is attached or busy with another operation.
    Conflict,
    /// The request is malformed or breaks a rule; nothing was changed.
    InvalidInput,
    /// The owner's quota would be exceeded.
    QuotaExceeded,
    /// The pool or target has no room for the request.
    InsufficientCapacity,
    /// The driver or target cannot do this.
    Unsupported,
    /// The feature is not configured on this daemon.
    NotConfigured,
    /// A remote service (the backup target) cannot be reached or refused
    /// our credentials.
    Unavailable,
    /// Stored data failed verification.
    Corrupt,
    /// The operation was cancelled.
    Cancelled,
    /// Anything else: a bug, or the host failing under us.
    Internal,
}

impl ErrorKind {
    /// A stable machine-readable code (the `code` of API error bodies).
    pub fn code(self) -> &'static str {
        match self {
            ErrorKind::NotFound => "not_found",
            ErrorKind::AlreadyExists => "already_exists",
            ErrorKind::Conflict => "conflict",
            ErrorKind::InvalidInput => "invalid_input",
            ErrorKind::QuotaExceeded => "quota_exceeded",
            ErrorKind::InsufficientCapacity => "insufficient_capacity",
            ErrorKind::Unsupported => "unsupported",
            ErrorKind::NotConfigured => "not_configured",
            ErrorKind::Unavailable => "unavailable",
            ErrorKind::Corrupt => "corrupt",
            ErrorKind::Cancelled => "cancelled",
            ErrorKind::Internal => "internal",
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

/// A failure reported by a backend (`VolumeStore`) or a backup target
/// (`BackupTarget`), already classified.
///
/// Each backend keeps its own error enum and converts it into a
/// `BackendError` in one `From` impl, which is where its kinds are chosen.
/// Display and `source()` are those of the wrapped error, so the chain of
/// causes stays intact.
pub struct BackendError {
    kind: ErrorKind,
    inner: Box<dyn std::error::Error + Send + Sync + 'static>,
}

impl BackendError {
    /// Wraps `inner` with its kind.
    pub fn new(
        kind: ErrorKind,
        inner: impl Into<Box<dyn std::error::Error + Send + Sync + 'static>>,
    ) -> Self {
        Self {
            kind,
            inner: inner.into(),
        }
    }

    /// The kind chosen by the backend.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The wrapped error.
    pub fn inner(&self) -> &(dyn std::error::Error + Send + Sync + 'static) {
        &*self.inner
    }
}

impl fmt::Display for BackendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.inner, f)
    }
}

impl fmt::Debug for BackendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BackendError")
            .field("kind", &self.kind)
            .field("inner", &self.inner)
            .finish()
    }
}

impl std::error::Error for BackendError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.inner.source()
    }
}

/// The result type of kiln-core.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in kiln's core, with what it concerns.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A request field breaks a rule.
    #[error("invalid {field}: {reason}")]
    InvalidInput {
        /// The request field (or config key) at fault.
        field: String,
        /// Why it is refused.
        reason: String,
    },

    /// No volume of that name for this owner.
    #[error("volume {volume:?} not found")]
    VolumeNotFound {
        /// The name asked for.
        volume: String,
    },

    /// No sandbox of that name for this owner.
    #[error("sandbox {sandbox:?} not found")]
    SandboxNotFound {
        /// The name asked for.
        sandbox: String,
    },

    /// No pool of that name is configured.
    #[error("pool {pool:?} not found")]
    PoolNotFound {
        /// The name asked for.
        pool: String,
    },

    /// No backup with that id.
    #[error("backup {backup:?} not found")]
    BackupNotFound {
        /// The id asked for.
        backup: String,
    },

    /// No job with that id.
    #[error("job {job:?} not found")]
    JobNotFound {
        /// The id asked for.
        job: String,
    },

    /// The owner already has a volume of that name.
    #[error("volume {volume:?} already exists")]
    VolumeExists {
        /// The name asked for.
        volume: String,
    },

    /// The owner already has a sandbox of that name.
    #[error("sandbox {sandbox:?} already exists")]
    SandboxExists {
        /// The name asked for.
        sandbox: String,
    },

    /// The operation needs a detached volume (or a free read-write slot).
    #[error("volume {volume:?} is attached to {}", sandboxes.join(", "))]
    Attached {
        /// The volume.
        volume: String,
        /// The sandboxes holding it.
        sandboxes: Vec<String>,
    },

    /// Another operation holds the volume.
    #[error("volume {volume:?} is busy: {operation} in progress")]
    Busy {
        /// The volume.
        volume: String,
        /// What holds it (`clone`, `resize`, `backup`, ...).
        operation: String,
    },

    /// The volume is in a state that forbids the operation.
    #[error("volume {volume:?} is {status}; {operation} needs a ready volume")]
    NotReady {
        /// The volume.
        volume: String,
        /// Its current status.
        status: String,
        /// The operation refused.
        operation: String,
    },

    /// The owner's provisioned total would pass its quota.
    #[error(
        "quota exceeded for owner {owner:?}: {requested_mib} MiB requested, \
         {used_mib} of {limit_mib} MiB in use"
    )]
    QuotaExceeded {
        /// The owner.
        owner: String,
        /// What the operation adds.
        requested_mib: u64,
        /// Provisioned now.
        used_mib: u64,
        /// The quota.
        limit_mib: u64,
    },

    /// The pool cannot hold the request.
    #[error("pool {pool:?} has no room: {reason}")]
    InsufficientCapacity {
        /// The pool.
        pool: String,
        /// What is short.
        reason: String,
    },

    /// The pool's driver cannot do this.
    #[error("pool {pool:?} does not support {operation}")]
    Unsupported {
        /// The pool.
        pool: String,
        /// The operation asked for.
        operation: String,
    },

    /// Backup routes on a daemon without a `backup:` section.
    #[error("backup not configured — add backup section to config.yaml")]
    BackupNotConfigured,

    /// A backend failed an operation on a volume.
    #[error("pool {pool:?}: {operation} of volume {volume:?} failed")]
    Store {
        /// The pool.
        pool: String,
        /// The operation.
        operation: &'static str,
        /// The volume (its name where known, else its id).
        volume: String,
        /// The backend's error.
        #[source]
        source: BackendError,
    },

    /// A backend failed an operation on the pool as a whole.
    #[error("pool {pool:?}: {operation} failed")]
    Pool {
        /// The pool.
        pool: String,
        /// The operation.
        operation: &'static str,
        /// The backend's error.
        #[source]
        source: BackendError,
    },

    /// The backup target failed.
    #[error("backup target {target}: {operation} failed")]
    Target {
        /// The target, as `s3://bucket/prefix at endpoint` or a folder.
        target: String,
        /// The operation.
        operation: String,
        /// The target's error.
        #[source]
        source: BackendError,
    },

    /// Stored data failed verification.
    #[error("{what} is corrupt: {reason}")]
    Corrupt {
        /// What was checked (`block 3f2a...`, `manifest bk-...`).
        what: String,
        /// How it failed.
        reason: String,
    },

    /// The operation was cancelled before it finished.
    #[error("{operation} cancelled")]
    Cancelled {
        /// The operation.
        operation: String,
    },

    /// An operation failed and undoing it failed too; the volume is marked.
    #[error("{operation} failed ({cause}) and its rollback failed too ({rollback})")]
    RollbackFailed {
        /// The operation.
        operation: String,
        /// Why it failed.
        cause: Box<Error>,
        /// Why undoing it failed.
        rollback: Box<Error>,
    },

    /// The catalog (SQLite) failed.
    #[error("catalog: {operation} failed")]
    Catalog {
        /// What the catalog was doing.
        operation: &'static str,
        /// SQLite's error.
        #[source]
        source: rusqlite::Error,
    },

    /// The configuration is wrong.
    #[error("config: {key}: {reason}")]
    Config {
        /// The key path (`pools.fast.driver`).
        key: String,
        /// Why it is refused.
        reason: String,
    },

    /// Host I/O outside any backend failed.
    #[error("{operation} {path}: {source}")]
    Io {
        /// What was being done.
        operation: &'static str,
        /// The path.
        path: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },

    /// A bug: an invariant the code relies on did not hold.
    #[error("internal error: {0}")]
    Internal(String),
}

impl Error {
    /// The kind of this error (which the server maps to a status).
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::InvalidInput { .. } => ErrorKind::InvalidInput,
            Error::VolumeNotFound { .. }
            | Error::SandboxNotFound { .. }
            | Error::PoolNotFound { .. }
            | Error::BackupNotFound { .. }
            | Error::JobNotFound { .. } => ErrorKind::NotFound,
            Error::VolumeExists { .. } | Error::SandboxExists { .. } => ErrorKind::AlreadyExists,
            Error::Attached { .. } | Error::Busy { .. } | Error::NotReady { .. } => {
                ErrorKind::Conflict
            }
            Error::QuotaExceeded { .. } => ErrorKind::QuotaExceeded,
            Error::InsufficientCapacity { .. } => ErrorKind::InsufficientCapacity,
            Error::Unsupported { .. } => ErrorKind::Unsupported,
            Error::BackupNotConfigured => ErrorKind::NotConfigured,
            Error::Store { source, .. } | Error::Pool { source, .. } => source.kind(),
            Error::Target { source, .. } => source.kind(),
            Error::Corrupt { .. } => ErrorKind::Corrupt,
            Error::Cancelled { .. } => ErrorKind::Cancelled,
            Error::RollbackFailed { .. } => ErrorKind::Internal,
            Error::Config { .. } => ErrorKind::InvalidInput,
            Error::Catalog { .. } | Error::Io { .. } | Error::Internal(_) => ErrorKind::Internal,
        }
    }

    /// A shorthand for [`Error::InvalidInput`].
    pub fn invalid(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Error::InvalidInput {
            field: field.into(),
            reason: reason.into(),
        }
    }

    /// The message with every cause appended, `: `-separated, for logs and
    /// for clients of errors that are safe to show.
    pub fn chain(&self) -> String {
        let mut out = self.to_string();
        let mut cur = std::error::Error::source(self);
        while let Some(e) = cur {
            let s = e.to_string();
            if !out.contains(&s) {
                out.push_str(": ");
                out.push_str(&s);
            }
            cur = e.source();
        }
        out
    }
}
