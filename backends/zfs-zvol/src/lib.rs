//! The zfs-zvol backend: each volume is a zvol under one configured parent
//! dataset, holding ext4.
//!
//! It owns the zvols it makes and nothing else: each is named
//! `<dataset>/<volume id>` and carries the user property
//! `kiln:volume=<volume id>`, and only zvols carrying it are listed,
//! changed or destroyed. It never creates the pool or the parent dataset
//! (the operator prepares them; see `docs/pools.md`) and knows nothing of
//! owners, attachments or HTTP.
//!
//! Zvols are sparse by default (`zfs create -s`), with a configurable
//! `volblocksize`, `volmode=dev` (no partition scanning) and
//! `snapdev=visible`, so a backup reads a snapshot through its own device,
//! `/dev/zvol/<dataset>/<id>@<snapshot>`.
//!
//! # Clones and deleting their sources
//!
//! A clone is `zfs snapshot <src>@kiln-clone-<dst>` and `zfs clone` of that
//! snapshot: instant, and sharing every block with the source. ZFS ties a
//! clone to its origin snapshot, so deleting a source that has clones
//! promotes one of them first (`zfs promote`, which moves the shared
//! snapshots onto the clone), then destroys the source and prunes the
//! `kiln-clone-*` snapshots nothing depends on any more. The clone's data
//! never moves and no copy is made; see [`ZfsZvolStore`].
//!
//! ```no_run
//! # async fn demo(pool: &kiln_core::config::PoolConfig) -> kiln_core::Result<()> {
//! use kiln_core::VolumeStore;
//! let store = kiln_zfs_zvol::open(pool).await?;
//! let cap = store.capacity().await.map_err(|e| kiln_core::Error::Internal(e.to_string()))?;
//! println!("{} bytes free", cap.free_bytes);
//! # Ok(()) }
//! ```
//!
//! # Limitations
//!
//! Block reads report the whole zvol as data (a zvol's device does not say
//! where its holes are), so backups find zero blocks by reading them. The
//! `/dev/zvol` links are made by udev: hosts without udev cannot use this
//! driver.

#![deny(missing_docs)]

mod error;
mod options;
mod store;
mod zfs;

pub use error::ZfsZvolError;
pub use options::ZfsZvolOptions;
pub use store::{open, ZfsZvolStore};
