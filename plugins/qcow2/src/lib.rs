//! kiln-qcow2: an example kiln plugin keeping volumes as qcow2 images, the
//! format several VMMs take directly.
//!
//! Each volume is `<path>/<volume id>.qcow2`. Images are made, grown and
//! copied with `qemu-img`; the ext4 filesystem inside is made, checked and
//! grown through a raw view of the image, a FUSE export served by
//! `qemu-storage-daemon` for as long as the view is needed. Block reads
//! know where the holes are from `qemu-img map`. The device path is the
//! `.qcow2` file itself: what a VMM opens, not raw ext4.
//!
//! Built as a `cdylib` (`libkiln_qcow2.so`) for `kilnd`:
//!
//! ```yaml
//! pools:
//!   images:
//!     driver: plugin
//!     library: /usr/lib/kiln/plugins/libkiln_qcow2.so
//!     options: { path: /var/lib/kiln/qcow2 }
//! ```
//!
//! It must not be linked into `kilnd`: it is a plugin, loaded through the
//! ABI like any third party's.
//!
//! # Limitations
//!
//! - Clones are full copies of the allocated data (`qemu-img convert`),
//!   not copy-on-write: a backing-file clone would not be independent.
//! - No snapshots: backups of attached volumes read the live image.
//! - Raw views need `/dev/fuse` and root (or FUSE permissions), and a pool
//!   folder is owned by one process: opening it removes raw views a
//!   previous process left behind.

#![deny(missing_docs)]

mod error;
mod image;
mod raw;
mod store;

pub use error::Qcow2Error;
pub use store::{Options, Qcow2Store};

kiln_plugin_sdk::export_plugin! {
    name: "qcow2",
    version: env!("CARGO_PKG_VERSION"),
    store: Qcow2Store,
    capabilities: kiln_core::Capabilities {
        cow_clone: false,
        snapshots: false,
        sparse_reads: true,
    },
    open: Qcow2Store::open,
}
