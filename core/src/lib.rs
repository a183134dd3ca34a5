//! kiln-core: the domain of kiln, free of any concrete backend or of HTTP.
//!
//! It owns the words of the design as types ([`VolumeName`], [`SizeMib`],
//! [`MountPath`], ids), the error kinds every failure maps to, the
//! configuration, the two traits backends implement ([`VolumeStore`] for
//! volumes, [`BackupTarget`] for backups), the catalog, the volume service
//! that enforces the rules, and the backup engine.
//!
//! It must not know which backends exist (the server builds them from the
//! configuration) and must not speak HTTP.
//!
//! # Layout
//!
//! - [`types`]: validated names, sizes, mount paths and ids;
//! - [`error`]: [`Error`], [`ErrorKind`] and [`BackendError`];
//! - [`config`]: `config.yaml`, the only place YAML is parsed;
//! - [`model`]: volumes, sandboxes and attachments as kept and shown;
//! - [`store`]: the [`VolumeStore`] trait and block I/O;
//! - [`blockdev`]: block I/O on block devices, for device backends;
//! - [`target`]: the [`BackupTarget`] trait;
//! - [`exec`]: the one runner of external tools;
//! - [`ext4`]: filesystem maintenance every backend shares;
//! - [`catalog`]: the SQLite catalog and operations journal;
//! - [`service`]: the volume service, where the rules are enforced;
//! - `memory` (kiln-core's tests and the `memory-store` feature only): an
//!   in-memory `VolumeStore` for testing policy in isolation;
//! - [`backup`]: the backup engine.

#![deny(missing_docs)]

pub mod backup;
pub mod blockdev;
pub mod catalog;
pub mod config;
pub mod error;
pub mod exec;
pub mod ext4;
#[cfg(any(test, feature = "memory-store"))]
pub mod memory;
pub mod model;
pub mod service;
pub mod store;
pub mod target;
pub mod types;

pub use service::{Actor, CreateVolume, PoolView, RecoveryReport, VolumeHold, VolumeService};

pub use error::{BackendError, Error, ErrorKind, Result};
pub use store::{
    BlockRead, BlockWrite, Capabilities, Contents, DriverInfo, FsCheck, PluginInfo, PoolCapacity,
    StoredVolume, ThinUsage, VolumeStore,
};
pub use target::{BackupTarget, ObjectMeta};
pub use types::{
    BackupId, JobId, MountPath, OperationId, Owner, PoolName, SandboxName, SizeMib, SnapshotId,
    VolumeId, VolumeName,
};
