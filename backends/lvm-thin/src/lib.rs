//! The lvm-thin backend: each volume is a thin logical volume in one
//! configured thin pool, holding ext4.
//!
//! It owns the LVs it makes and nothing else: every LV it creates carries
//! the tag `kiln` and `kiln-<volume id>`, is named `kiln-<volume id>`, and
//! only tagged LVs of the configured pool are listed, changed or removed.
//! It knows nothing of owners, attachments or HTTP, and never creates or
//! changes the volume group or the thin pool (the operator prepares them;
//! see `docs/pools.md`).
//!
//! Clones are thin snapshots made independent (in LVM a thin snapshot
//! shares blocks with its origin but does not depend on it: either can be
//! removed). Backup snapshots are read-only thin snapshots tagged
//! `kiln-snapshot`, activated to be read.
//!
//! Before a create, clone or grow, admission control ([`admission`])
//! refuses with [`kiln_core::ErrorKind::InsufficientCapacity`] when the
//! pool's free data or metadata would fall under the configured reserve,
//! or the thin pool's overcommit would pass the configured ratio.
//!
//! ```no_run
//! # async fn demo(pool: &kiln_core::config::PoolConfig) -> kiln_core::Result<()> {
//! use kiln_core::VolumeStore;
//! let store = kiln_lvm_thin::open(pool).await?;
//! let cap = store.capacity().await.map_err(|e| kiln_core::Error::Internal(e.to_string()))?;
//! println!("{} of {} bytes used", cap.allocated_bytes, cap.size_bytes);
//! # Ok(()) }
//! ```
//!
//! # Limitations
//!
//! Block reads report the whole volume as data (a thin LV does not say
//! where its unmapped blocks are without reading the pool's metadata), so
//! backups find zero blocks by reading them.

#![deny(missing_docs)]

pub mod admission;
mod error;
mod lvm;
mod options;
mod store;

pub use error::LvmThinError;
pub use options::LvmThinOptions;
pub use store::{open, LvmThinStore};
