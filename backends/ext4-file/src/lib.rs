//! The ext4-file backend: each volume is a sparse image file holding ext4,
//! in one folder of the host (the pool's `path`).
//!
//! It owns the image files `vol-<hex>.img` of that folder (named by kiln's
//! [`VolumeId`](kiln_core::VolumeId) and tagged with the extended attribute
//! `user.kiln.volume` where the filesystem allows), its snapshots under
//! `.snapshots/`, and nothing else: files it did not make are never listed,
//! changed or removed. It knows nothing of names, owners or attachments.
//!
//! Clones are reflinks (`FICLONE`) where the pool's filesystem has them
//! (XFS made with `reflink=1`, btrfs), otherwise hole-preserving copies;
//! snapshots exist only with reflinks. Every new image is built under a
//! `.partial` name and renamed into place once complete and synced, so a
//! crash never leaves a half-made volume under a volume's name.
//!
//! A missing pool folder is made at open only if its parent exists (and
//! the pool does not say `create: false`), with a warning. The backend
//! cannot ask the catalog whether the pool already holds volumes, so the
//! rule is about the folder alone; it keeps a pool whose disk is not
//! mounted from starting empty on the root filesystem where it can tell.
//! A folder inside a mount point (`/srv/disk1/kiln`) has a parent even
//! while the disk is not mounted: such a pool says `create: false`, and
//! then a missing folder always refuses the pool.
//!
//! A grow is refused (a conflict) while a loop device someone set up
//! outside kiln is backed by the image, mounted or not.
//!
//! ```no_run
//! # async fn demo(pool: &kiln_core::config::PoolConfig) -> kiln_core::Result<()> {
//! use kiln_core::{Contents, SizeMib, VolumeId, VolumeStore};
//! let store = kiln_ext4_file::open(pool).await?;
//! let id = VolumeId::generate();
//! let volume = store
//!     .create(&id, SizeMib::new(1024)?, Contents::Ext4)
//!     .await
//!     .expect("a fresh id in an open pool");
//! let device = store.device_path(&id).await.expect("the volume exists");
//! assert_eq!(volume.size_bytes, 1 << 30);
//! # let _ = device;
//! # Ok(()) }
//! ```

#![deny(missing_docs)]

mod copy;
mod error;
mod in_use;
mod io;
mod options;
mod store;
mod sys;

pub use error::Ext4FileError;
pub use options::{Ext4FileOptions, ReflinkMode};
pub use store::{open, Ext4FileStore, DRIVER};
