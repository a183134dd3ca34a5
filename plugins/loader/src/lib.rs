//! Loads backend plugins into `kilnd` and presents each as a
//! [`VolumeStore`](kiln_core::VolumeStore).
//!
//! A pool with `driver: plugin` names a shared library and the options
//! handed to it:
//!
//! ```yaml
//! pools:
//!   images:
//!     driver: plugin
//!     library: /usr/lib/kiln/plugins/libkiln_qcow2.so
//!     options: { path: /var/lib/kiln/qcow2 }
//! ```
//!
//! [`open`] loads the library, finds its entry symbol, refuses it unless
//! its ABI version and age serve this host's version, opens an instance
//! with the options and returns a [`PluginStore`]. Calls into the plugin
//! run on blocking threads (the plugin runs its own runtime and blocks
//! the calling thread); its errors keep the [`ErrorKind`] the plugin gave
//! them, so they map to the same statuses as built-in backends'.
//!
//! This crate must not depend on any plugin: it only speaks the ABI of
//! `kiln-plugin-abi`.
//!
//! # Limitations
//!
//! A loaded library stays mapped until the process exits, even after its
//! pool is dropped: unmapping code a plugin's runtime threads may still
//! run is not safe.

#![deny(missing_docs)]

mod blocks;
mod error;
mod instance;
mod library;
mod store;

pub use error::PluginError;
pub use library::{load, Plugin};
pub use store::{open, PluginStore};
