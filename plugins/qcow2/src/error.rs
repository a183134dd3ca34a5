//! The qcow2 plugin's errors and the one place their kinds are chosen.

use std::path::PathBuf;

use kiln_core::exec::ExecError;
use kiln_core::{BackendError, ErrorKind};

/// What can go wrong in the qcow2 plugin.
#[derive(Debug, thiserror::Error)]
pub enum Qcow2Error {
    /// The pool's options are wrong.
    #[error("invalid qcow2 options: {reason}")]
    Options {
        /// Why they are refused.
        reason: String,
    },

    /// A tool the plugin needs is not installed.
    #[error("the qcow2 plugin needs {tool}")]
    MissingTool {
        /// The tool (and its package).
        tool: &'static str,
        /// The lookup's error.
        #[source]
        source: ExecError,
    },

    /// No such volume.
    #[error("volume {id} not found")]
    NotFound {
        /// The volume id.
        id: String,
    },

    /// The volume id is taken.
    #[error("volume {id} already exists")]
    Exists {
        /// The volume id.
        id: String,
    },

    /// A grow that does not grow.
    #[error("volume {id} is {current} bytes: it can only grow, not become {requested} bytes")]
    NotLarger {
        /// The volume id.
        id: String,
        /// Its size now.
        current: u64,
        /// The size asked for.
        requested: u64,
    },

    /// Something the plugin does not do.
    #[error("the qcow2 plugin does not support {operation}")]
    Unsupported {
        /// The operation.
        operation: &'static str,
    },

    /// A tool failed.
    #[error("{operation} of {} failed", path.display())]
    Tool {
        /// What was being done.
        operation: &'static str,
        /// The image or raw view.
        path: PathBuf,
        /// The tool's error (argv, status, stderr).
        #[source]
        source: ExecError,
    },

    /// File I/O failed.
    #[error("{operation} {}", path.display())]
    Io {
        /// What was being done.
        operation: &'static str,
        /// The path.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },

    /// A file that should be a qcow2 image is not one.
    #[error("{} is not a qcow2 image: {reason}", path.display())]
    NotQcow2 {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },

    /// `qemu-img` printed JSON the plugin cannot read.
    #[error("cannot read the output of qemu-img for {}", path.display())]
    Parse {
        /// The image.
        path: PathBuf,
        /// The parse error.
        #[source]
        source: serde_json::Error,
    },

    /// The raw view (FUSE export) of an image did not come up.
    #[error("qemu-storage-daemon could not export {} as a raw view: {reason}", image.display())]
    Export {
        /// The image.
        image: PathBuf,
        /// What happened, with the daemon's stderr.
        reason: String,
    },
}

impl Qcow2Error {
    pub(crate) fn io(
        operation: &'static str,
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.into();
        move |source| Qcow2Error::Io {
            operation,
            path,
            source,
        }
    }

    pub(crate) fn tool(
        operation: &'static str,
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(ExecError) -> Self {
        let path = path.into();
        move |source| Qcow2Error::Tool {
            operation,
            path,
            source,
        }
    }
}

impl From<Qcow2Error> for BackendError {
    fn from(e: Qcow2Error) -> Self {
        let kind = match &e {
            Qcow2Error::NotFound { .. } => ErrorKind::NotFound,
            Qcow2Error::Exists { .. } => ErrorKind::AlreadyExists,
            Qcow2Error::Options { .. } | Qcow2Error::NotLarger { .. } => ErrorKind::InvalidInput,
            Qcow2Error::Unsupported { .. } => ErrorKind::Unsupported,
            Qcow2Error::Io { source, .. } if source.raw_os_error() == Some(libc::ENOSPC) => {
                ErrorKind::InsufficientCapacity
            }
            Qcow2Error::MissingTool { .. }
            | Qcow2Error::Tool { .. }
            | Qcow2Error::Io { .. }
            | Qcow2Error::NotQcow2 { .. }
            | Qcow2Error::Parse { .. }
            | Qcow2Error::Export { .. } => ErrorKind::Internal,
        };
        BackendError::new(kind, e)
    }
}
