//! The errors of the ext4-file backend, and the one place they become
//! [`BackendError`]s with a kind.

use std::io;
use std::path::PathBuf;

use kiln_core::exec::ExecError;
use kiln_core::{BackendError, ErrorKind, SnapshotId, VolumeId};

/// Everything that can go wrong in the ext4-file backend.
#[derive(Debug, thiserror::Error)]
pub enum Ext4FileError {
    /// There is no image for the volume.
    #[error("volume {volume} not found: no image {path}")]
    NotFound {
        /// The volume.
        volume: VolumeId,
        /// Where its image would be.
        path: PathBuf,
    },

    /// An image for the volume exists already.
    #[error("volume {volume} already exists: {path}")]
    AlreadyExists {
        /// The volume.
        volume: VolumeId,
        /// Its image.
        path: PathBuf,
    },

    /// There is no such snapshot of the volume.
    #[error("snapshot {snapshot} of volume {volume} not found: no image {path}")]
    SnapshotNotFound {
        /// The volume.
        volume: VolumeId,
        /// The snapshot.
        snapshot: SnapshotId,
        /// Where its image would be.
        path: PathBuf,
    },

    /// The snapshot exists already.
    #[error("snapshot {snapshot} of volume {volume} already exists: {path}")]
    SnapshotExists {
        /// The volume.
        volume: VolumeId,
        /// The snapshot.
        snapshot: SnapshotId,
        /// Its image.
        path: PathBuf,
    },

    /// A grow to a size that is not larger than the current one.
    #[error("cannot grow volume {volume} to {new_bytes} bytes: it already has {current_bytes}")]
    NotLarger {
        /// The volume.
        volume: VolumeId,
        /// Its size now.
        current_bytes: u64,
        /// The size asked for.
        new_bytes: u64,
    },

    /// A block access past the end of the volume.
    #[error("{operation} of {len} bytes at {offset} is past the end of {path} ({size} bytes)")]
    OutOfRange {
        /// `read` or `write`.
        operation: &'static str,
        /// The image.
        path: PathBuf,
        /// Where the access starts.
        offset: u64,
        /// How long it is.
        len: u64,
        /// The image's size.
        size: u64,
    },

    /// The image is attached to a loop device someone set up outside
    /// kiln (and maybe mounted), so it cannot be changed under it.
    #[error("image {path} of volume {volume} is in use outside kiln: {users}")]
    InUse {
        /// The volume.
        volume: VolumeId,
        /// Its image.
        path: PathBuf,
        /// The loop devices and their mount points.
        users: String,
    },

    /// The pool folder is missing and was not created (see
    /// [`Ext4FileOptions`](crate::Ext4FileOptions) for when it is).
    #[error("pool folder {path} does not exist: {reason}")]
    FolderMissing {
        /// The folder.
        path: PathBuf,
        /// Why it was not created.
        reason: &'static str,
    },

    /// The pool's filesystem has no reflinks, and something needs them.
    #[error("{operation} needs reflinks, which the filesystem of {path} does not have")]
    NoReflink {
        /// What needed them (`snapshot`, `reflink: always`).
        operation: &'static str,
        /// The pool folder.
        path: PathBuf,
    },

    /// A file system call failed.
    #[error("cannot {operation} {path}")]
    Io {
        /// What was being done (`create`, `rename`, `fsync`, ...).
        operation: &'static str,
        /// The file or folder.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },

    /// An e2fsprogs tool failed.
    #[error("{operation} of {path} failed")]
    Tool {
        /// What was being done (`mkfs`, `grow`, `check`, `new uuid`).
        operation: &'static str,
        /// The image.
        path: PathBuf,
        /// The tool's failure, with argv and stderr.
        #[source]
        source: ExecError,
    },

    /// An e2fsprogs tool is not installed.
    #[error("e2fsprogs are missing")]
    MissingTools(#[source] ExecError),

    /// A blocking task died (a panic in a file operation).
    #[error("{operation} of {path} did not finish: {reason}")]
    Task {
        /// What was being done.
        operation: &'static str,
        /// The file.
        path: PathBuf,
        /// Why the task ended.
        reason: String,
    },
}

impl Ext4FileError {
    /// Shorthand for [`Ext4FileError::Io`].
    pub(crate) fn io(operation: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        Ext4FileError::Io {
            operation,
            path: path.into(),
            source,
        }
    }

    /// Shorthand for [`Ext4FileError::Tool`].
    pub(crate) fn tool(operation: &'static str, path: impl Into<PathBuf>, e: ExecError) -> Self {
        Ext4FileError::Tool {
            operation,
            path: path.into(),
            source: e,
        }
    }

    /// The kind kiln acts on.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Ext4FileError::NotFound { .. }
            | Ext4FileError::SnapshotNotFound { .. }
            | Ext4FileError::FolderMissing { .. } => ErrorKind::NotFound,
            Ext4FileError::InUse { .. } => ErrorKind::Conflict,
            Ext4FileError::AlreadyExists { .. } | Ext4FileError::SnapshotExists { .. } => {
                ErrorKind::AlreadyExists
            }
            Ext4FileError::NotLarger { .. } | Ext4FileError::OutOfRange { .. } => {
                ErrorKind::InvalidInput
            }
            Ext4FileError::NoReflink { .. } => ErrorKind::Unsupported,
            Ext4FileError::Io { source, .. } if is_no_space(source) => {
                ErrorKind::InsufficientCapacity
            }
            Ext4FileError::Tool { source, .. } if tool_ran_out_of_space(source) => {
                ErrorKind::InsufficientCapacity
            }
            Ext4FileError::Io { .. }
            | Ext4FileError::Tool { .. }
            | Ext4FileError::MissingTools(_)
            | Ext4FileError::Task { .. } => ErrorKind::Internal,
        }
    }
}

fn is_no_space(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::ENOSPC | libc::EDQUOT))
}

/// e2fsprogs report a full host filesystem only in their messages.
fn tool_ran_out_of_space(e: &ExecError) -> bool {
    e.stderr().contains("No space left on device")
}

impl From<Ext4FileError> for BackendError {
    fn from(e: Ext4FileError) -> Self {
        BackendError::new(e.kind(), e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enospc_is_insufficient_capacity() {
        let e = Ext4FileError::io("write", "/x", io::Error::from_raw_os_error(libc::ENOSPC));
        assert_eq!(
            BackendError::from(e).kind(),
            ErrorKind::InsufficientCapacity
        );
        let e = Ext4FileError::io("write", "/x", io::Error::from_raw_os_error(libc::EIO));
        assert_eq!(BackendError::from(e).kind(), ErrorKind::Internal);
    }

    #[test]
    fn messages_name_the_volume() {
        let volume = VolumeId::parse("vol-abc").expect("a valid id");
        let e = Ext4FileError::NotLarger {
            volume,
            current_bytes: 2,
            new_bytes: 1,
        };
        assert_eq!(
            e.to_string(),
            "cannot grow volume vol-abc to 1 bytes: it already has 2"
        );
        assert_eq!(BackendError::from(e).kind(), ErrorKind::InvalidInput);
    }
}
