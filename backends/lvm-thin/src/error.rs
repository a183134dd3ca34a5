//! The lvm-thin backend's errors, and the one place they get their kind.

use kiln_core::exec::ExecError;
use kiln_core::{BackendError, ErrorKind};

/// What can go wrong in the lvm-thin backend.
#[derive(Debug, thiserror::Error)]
pub enum LvmThinError {
    /// An LVM or e2fsprogs tool is missing.
    #[error("pool {pool:?}: a required tool is missing")]
    ToolMissing {
        /// The pool.
        pool: String,
        /// Which tool.
        #[source]
        source: ExecError,
    },

    /// The configured volume group or thin pool does not exist.
    #[error("thin pool {vg}/{thin_pool} not found (prepare it as docs/pools.md says)")]
    PoolMissing {
        /// The volume group.
        vg: String,
        /// The thin pool.
        thin_pool: String,
    },

    /// The configured thin pool is not a thin pool.
    #[error("{vg}/{lv} is not a thin pool (its attributes are {attr:?})")]
    NotAThinPool {
        /// The volume group.
        vg: String,
        /// The LV.
        lv: String,
        /// Its `lv_attr`.
        attr: String,
    },

    /// An LV kiln looked for is not there (or not kiln's).
    #[error("logical volume {vg}/{lv} not found")]
    NotFound {
        /// The volume group.
        vg: String,
        /// The LV.
        lv: String,
    },

    /// An LV with the name kiln wants exists already.
    #[error("logical volume {vg}/{lv} already exists")]
    Exists {
        /// The volume group.
        vg: String,
        /// The LV.
        lv: String,
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

    /// Admission control refused the operation.
    #[error("thin pool {vg}/{thin_pool}: {reason}")]
    Capacity {
        /// The volume group.
        vg: String,
        /// The thin pool.
        thin_pool: String,
        /// What is short.
        reason: String,
    },

    /// A tool failed.
    #[error("{operation} of {target} failed")]
    Tool {
        /// What was being done (`lvcreate`, `mkfs`).
        operation: &'static str,
        /// The LV or device.
        target: String,
        /// The failed run.
        #[source]
        source: ExecError,
    },

    /// A step failed, and so did undoing the steps before it.
    #[error("{operation} of {target} failed and removing {target} failed too: {rollback}")]
    RollbackFailed {
        /// The operation.
        operation: &'static str,
        /// The LV left behind.
        target: String,
        /// Why undoing failed.
        rollback: String,
        /// Why the operation failed.
        #[source]
        source: Box<LvmThinError>,
    },

    /// `lvs` printed something that is not the report kiln asked for.
    #[error("cannot read the output of {command}: {reason}")]
    Report {
        /// The command.
        command: String,
        /// What was wrong with it.
        reason: String,
    },

    /// The LV's device did not appear.
    #[error("device {path} of {vg}/{lv} did not appear")]
    NoDevice {
        /// The volume group.
        vg: String,
        /// The LV.
        lv: String,
        /// The expected device path.
        path: String,
    },
}

impl From<LvmThinError> for BackendError {
    fn from(e: LvmThinError) -> Self {
        let kind = match &e {
            LvmThinError::NotFound { .. } => ErrorKind::NotFound,
            LvmThinError::Exists { .. } => ErrorKind::AlreadyExists,
            LvmThinError::NotLarger { .. } => ErrorKind::InvalidInput,
            LvmThinError::Capacity { .. } => ErrorKind::InsufficientCapacity,
            LvmThinError::PoolMissing { .. } | LvmThinError::NotAThinPool { .. } => {
                ErrorKind::NotConfigured
            }
            LvmThinError::ToolMissing { .. }
            | LvmThinError::Tool { .. }
            | LvmThinError::RollbackFailed { .. }
            | LvmThinError::Report { .. }
            | LvmThinError::NoDevice { .. } => ErrorKind::Internal,
        };
        BackendError::new(kind, e)
    }
}
