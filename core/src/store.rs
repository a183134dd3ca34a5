//! The [`VolumeStore`] trait: the whole contract of a storage backend.
//!
//! # The contract
//!
//! A backend stores volumes addressed by kiln's [`VolumeId`]; it never sees
//! a user-facing name, an owner or an attachment. Every method is required
//! except [`VolumeStore::snapshot`] and [`VolumeStore::drop_snapshot`],
//! which a backend implements only when it sets
//! [`Capabilities::snapshots`]. Each failure is a [`BackendError`] whose
//! kind says what happened:
//!
//! | situation | kind |
//! |---|---|
//! | the volume or snapshot does not exist | [`ErrorKind::NotFound`] |
//! | `create`/`clone_volume` onto an id that exists | [`ErrorKind::AlreadyExists`] |
//! | `grow` to a size not larger than the current one | [`ErrorKind::InvalidInput`] |
//! | the pool has no room, or admission control refuses | [`ErrorKind::InsufficientCapacity`] |
//! | an optional method the backend does not have | [`ErrorKind::Unsupported`] |
//! | a tool or the kernel failed | [`ErrorKind::Internal`] |
//!
//! A method that fails leaves nothing behind: a failed `create` or
//! `clone_volume` removes what it made, a failed `grow` leaves the volume
//! usable at its old or its new size. kiln calls at most one mutating
//! method per volume at a time; calls on different volumes run
//! concurrently.
//!
//! Block access ([`BlockRead`], [`BlockWrite`]) is synchronous, positioned
//! I/O: kiln calls it from blocking threads, several at once on the same
//! handle.

use std::ops::Range;
use std::path::PathBuf;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::error::{BackendError, ErrorKind};
use crate::types::{SizeMib, SnapshotId, VolumeId};

/// What a backend can do beyond the required operations.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Capabilities {
    /// `clone_volume` is copy-on-write: its cost does not grow with the data.
    pub cow_clone: bool,
    /// `snapshot` and `drop_snapshot` work; backups of attached volumes read
    /// a snapshot and are crash-consistent.
    pub snapshots: bool,
    /// `BlockRead::allocated` reports real holes (otherwise it reports the
    /// whole volume as data and kiln finds zero blocks by reading).
    pub sparse_reads: bool,
}

/// Who implements a pool: a built-in driver or a plugin.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DriverInfo {
    /// The driver name as in the config (`ext4-file`, `lvm-thin`, `plugin`).
    pub driver: String,
    /// For plugins, the plugin's own name and version.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub plugin: Option<PluginInfo>,
}

/// A plugin's self-description.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PluginInfo {
    /// The plugin's name (`qcow2`).
    pub name: String,
    /// The plugin's version (`0.1.0`).
    pub version: String,
}

/// What a new volume holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Contents {
    /// A fresh ext4 filesystem filling the volume.
    Ext4,
    /// Nothing: all zeros (restore writes into it).
    Blank,
}

/// A volume as the backend sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredVolume {
    /// kiln's id.
    pub id: VolumeId,
    /// Provisioned size in bytes.
    pub size_bytes: u64,
    /// Bytes actually allocated in the pool, where the backend can tell.
    pub allocated_bytes: Option<u64>,
}

/// Space in a pool.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PoolCapacity {
    /// The pool's total data space in bytes.
    pub size_bytes: u64,
    /// Bytes in use in the pool (by anything).
    pub allocated_bytes: u64,
    /// Bytes still free for data.
    pub free_bytes: u64,
    /// For thin pools: data and metadata use.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub thin: Option<ThinUsage>,
}

/// The use of a thin pool (LVM thin, or any backend that overcommits).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ThinUsage {
    /// Percent of the data space in use.
    pub data_percent: f64,
    /// Percent of the metadata space in use.
    pub metadata_percent: f64,
}

/// The result of checking a volume's filesystem.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FsCheck {
    /// It was clean; nothing was done.
    Clean,
    /// It was not cleanly unmounted and has been repaired.
    Repaired,
}

/// Positioned reads of a volume or snapshot that know where the holes are.
pub trait BlockRead: Send + Sync {
    /// The size in bytes.
    fn len(&self) -> u64;

    /// Whether the volume is empty (never true for a real volume).
    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Sorted, disjoint byte ranges that may hold data. Everything outside
    /// them reads as zeros. A backend that cannot tell returns `0..len`.
    fn allocated(&self) -> Result<Vec<Range<u64>>, BackendError>;

    /// Fills `buf` from `offset`; `offset + buf.len()` is at most `len()`.
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<(), BackendError>;
}

/// Positioned writes into a volume (used by restore, which writes into a
/// fresh [`Contents::Blank`] volume).
pub trait BlockWrite: Send + Sync {
    /// The size in bytes.
    fn len(&self) -> u64;

    /// Whether the volume is empty (never true for a real volume).
    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Writes all of `data` at `offset`; the end is at most `len()`.
    fn write_at(&self, offset: u64, data: &[u8]) -> Result<(), BackendError>;

    /// Makes `offset..offset+len` read as zeros, deallocating it where the
    /// medium allows (hole punch, discard) rather than writing zeros.
    fn zero_range(&self, offset: u64, len: u64) -> Result<(), BackendError>;

    /// Flushes everything written to stable storage.
    fn flush(&self) -> Result<(), BackendError>;
}

/// A storage backend; see the module docs for the contract.
#[async_trait]
pub trait VolumeStore: Send + Sync + 'static {
    /// Which driver this is.
    fn driver(&self) -> DriverInfo;

    /// What it can do beyond the required operations.
    fn capabilities(&self) -> Capabilities;

    /// Makes volume `id` of `size` holding `contents`.
    async fn create(
        &self,
        id: &VolumeId,
        size: SizeMib,
        contents: Contents,
    ) -> Result<StoredVolume, BackendError>;

    /// Removes volume `id` and everything that belongs to it.
    async fn delete(&self, id: &VolumeId) -> Result<(), BackendError>;

    /// Grows the volume and its ext4 filesystem to `new_size` (offline:
    /// kiln calls it only on detached volumes).
    async fn grow(&self, id: &VolumeId, new_size: SizeMib) -> Result<(), BackendError>;

    /// Makes `dst` an independent copy of `src` as it is now, with a new
    /// filesystem UUID; copy-on-write where [`Capabilities::cow_clone`].
    async fn clone_volume(
        &self,
        src: &VolumeId,
        dst: &VolumeId,
    ) -> Result<StoredVolume, BackendError>;

    /// Takes a read-only point-in-time snapshot of `id`.
    async fn snapshot(&self, id: &VolumeId, snap: &SnapshotId) -> Result<(), BackendError> {
        let _ = (id, snap);
        Err(unsupported("snapshot"))
    }

    /// Drops a snapshot taken by [`VolumeStore::snapshot`].
    async fn drop_snapshot(&self, id: &VolumeId, snap: &SnapshotId) -> Result<(), BackendError> {
        let _ = (id, snap);
        Err(unsupported("drop_snapshot"))
    }

    /// Opens the volume, or one of its snapshots, for block reads.
    async fn open_read(
        &self,
        id: &VolumeId,
        snap: Option<&SnapshotId>,
    ) -> Result<Box<dyn BlockRead>, BackendError>;

    /// Opens the volume for block writes.
    async fn open_write(&self, id: &VolumeId) -> Result<Box<dyn BlockWrite>, BackendError>;

    /// The path a VMM or `mount` uses (an image file or a block device).
    async fn device_path(&self, id: &VolumeId) -> Result<PathBuf, BackendError>;

    /// Checks the filesystem of a detached volume and repairs it if it was
    /// not cleanly unmounted.
    async fn check_filesystem(&self, id: &VolumeId) -> Result<FsCheck, BackendError>;

    /// Every volume this backend holds that is tagged as kiln's.
    async fn list(&self) -> Result<Vec<StoredVolume>, BackendError>;

    /// Space in the pool.
    async fn capacity(&self) -> Result<PoolCapacity, BackendError>;
}

/// Runs one backend operation between the debug lines every backend logs
/// (started; done, or failed with the error) and turns its error into a
/// [`BackendError`] through the backend's one `From` impl.
///
/// ```ignore
/// logged(&self.pool, "grow", id, self.grow_inner(id, size)).await
/// ```
pub async fn logged<T, E>(
    pool: &str,
    operation: &'static str,
    volume: &VolumeId,
    op: impl std::future::Future<Output = Result<T, E>>,
) -> Result<T, BackendError>
where
    E: std::fmt::Display + Into<BackendError>,
{
    tracing::debug!(pool, volume = %volume, operation, "started");
    let r = op.await;
    match &r {
        Ok(_) => tracing::debug!(pool, volume = %volume, operation, "done"),
        Err(e) => tracing::debug!(pool, volume = %volume, operation, error = %e, "failed"),
    }
    r.map_err(Into::into)
}

/// The error an optional method returns when the backend lacks it.
pub fn unsupported(operation: &str) -> BackendError {
    BackendError::new(
        ErrorKind::Unsupported,
        format!("{operation} is not supported by this driver"),
    )
}
