//! The zfs-zvol backend's errors, and the one place they get their kind.

use kiln_core::exec::ExecError;
use kiln_core::{BackendError, ErrorKind};

/// What can go wrong in the zfs-zvol backend.
#[derive(Debug, thiserror::Error)]
pub enum ZfsZvolError {
    /// `zfs`, `udevadm` or an e2fsprogs tool is missing.
    #[error("pool {pool:?}: a required tool is missing")]
    ToolMissing {
        /// The pool.
        pool: String,
        /// Which tool.
        #[source]
        source: ExecError,
    },

    /// The parent dataset does not exist.
    #[error("dataset {dataset} not found (prepare it as docs/pools.md says)")]
    DatasetMissing {
        /// The dataset.
        dataset: String,
    },

    /// A zvol or snapshot kiln looked for is not there (or not kiln's).
    #[error("{dataset} not found")]
    NotFound {
        /// The zvol or snapshot.
        dataset: String,
    },

    /// A zvol with the name kiln wants exists already.
    #[error("{dataset} already exists")]
    Exists {
        /// The zvol.
        dataset: String,
    },

    /// A grow to a size that is not larger.
    #[error("volume {volume}: new size {requested} bytes is not larger than {current} bytes")]
    NotLarger {
        /// The volume id.
        volume: String,
        /// Its size now.
        current: u64,
        /// The size asked for.
        requested: u64,
    },

    /// ZFS ran out of space.
    #[error("{operation} of {dataset}: the pool is out of space")]
    NoSpace {
        /// The operation.
        operation: &'static str,
        /// The dataset.
        dataset: String,
        /// The failed run.
        #[source]
        source: ExecError,
    },

    /// A tool failed.
    #[error("{operation} of {target} failed")]
    Tool {
        /// What was being done (`zfs create`, `mkfs`).
        operation: &'static str,
        /// The dataset or device.
        target: String,
        /// The failed run.
        #[source]
        source: ExecError,
    },

    /// A step failed, and so did undoing the steps before it.
    #[error("{operation} of {target} failed and destroying {target} failed too: {rollback}")]
    RollbackFailed {
        /// The operation.
        operation: &'static str,
        /// The dataset left behind.
        target: String,
        /// Why undoing failed.
        rollback: String,
        /// Why the operation failed.
        #[source]
        source: Box<ZfsZvolError>,
    },

    /// `zfs list -Hp` printed something kiln cannot read.
    #[error("cannot read the output of {command}: {reason}")]
    Report {
        /// The command.
        command: String,
        /// What was wrong with it.
        reason: String,
    },

    /// The zvol's device link did not appear.
    #[error("device {path} did not appear (is udev running?)")]
    NoDevice {
        /// The expected device path.
        path: String,
    },
}

impl From<ZfsZvolError> for BackendError {
    fn from(e: ZfsZvolError) -> Self {
        let kind = match &e {
            ZfsZvolError::NotFound { .. } => ErrorKind::NotFound,
            ZfsZvolError::Exists { .. } => ErrorKind::AlreadyExists,
            ZfsZvolError::NotLarger { .. } => ErrorKind::InvalidInput,
            ZfsZvolError::NoSpace { .. } => ErrorKind::InsufficientCapacity,
            ZfsZvolError::DatasetMissing { .. } => ErrorKind::NotConfigured,
            ZfsZvolError::ToolMissing { .. }
            | ZfsZvolError::Tool { .. }
            | ZfsZvolError::RollbackFailed { .. }
            | ZfsZvolError::Report { .. }
            | ZfsZvolError::NoDevice { .. } => ErrorKind::Internal,
        };
        BackendError::new(kind, e)
    }
}
