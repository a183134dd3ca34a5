//! The backup engine: volumes to deduplicated, compressed, optionally
//! encrypted blocks in a [`BackupTarget`], and back.
//!
//! A backup cuts the volume into fixed-size blocks, reads only allocated
//! ranges, records all-zero blocks as holes, names every other block by
//! its (keyed, when encrypted) BLAKE3 hash, and uploads it only if the
//! target does not hold it yet, `concurrency` blocks in flight at most,
//! nothing staged on disk. A manifest written last makes the backup
//! visible; manifests are listed from the target alone. The format is
//! documented in `docs/backup-format.md`.
//!
//! This module knows nothing of the catalog, of attachments or of HTTP: the
//! volume service decides what to read (a snapshot, a detached volume) and
//! where to restore to, and hands the engine a [`BlockRead`] or
//! [`BlockWrite`].
//!
//! - [`format`]: the manifest and the API's backup object;
//! - [`keys`]: the object key layout;
//! - [`block`]: block naming, compression and encryption;
//! - [`engine`]: settings and the backup pipeline;
//! - [`restore`], [`verify`], [`gc`], [`listing`]: the other operations;
//! - [`progress`]: progress counters and cancellation.
//!
//! ```no_run
//! # async fn demo(target: std::sync::Arc<dyn kiln_core::BackupTarget>,
//! #     cfg: &kiln_core::config::BackupConfig,
//! #     volume: std::sync::Arc<dyn kiln_core::BlockRead>,
//! #     source: kiln_core::backup::BackupSource) -> kiln_core::Result<()> {
//! use kiln_core::backup::{BackupEngine, BackupSettings, Progress};
//! let engine = BackupEngine::new(target, BackupSettings::from_config(cfg)?);
//! let manifest = engine.backup(volume, source, &Progress::new()).await?;
//! println!("{} stored {} new bytes", manifest.id, manifest.stats.stored_bytes);
//! # Ok(()) }
//! ```
//!
//! [`BackupTarget`]: crate::BackupTarget
//! [`BlockRead`]: crate::BlockRead
//! [`BlockWrite`]: crate::BlockWrite

pub mod block;
pub mod engine;
pub mod format;
pub mod gc;
pub mod keys;
pub mod listing;
mod lock;
pub mod progress;
pub mod restore;
pub mod verify;

pub use block::EncryptionKey;
pub use engine::{BackupEngine, BackupSettings, BackupSource};
pub use format::{BackupInfo, BackupStats, Consistency, Manifest, FORMAT_VERSION};
pub use gc::GcReport;
pub use progress::Progress;
pub use restore::{RestoreDest, RestoreReport};
pub use verify::VerifyReport;
