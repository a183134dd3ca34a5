//! The SDK a plugin author depends on: it turns a
//! [`VolumeStore`](kiln_core::VolumeStore) into a shared library `kilnd`
//! loads, with one macro, [`export_plugin!`].
//!
//! The macro writes the library's only exported symbol
//! (`kiln_plugin_entry`) and the `extern "C"` functions of the ABI
//! (`kiln-plugin-abi`) around the store. The author writes Rust and
//! async code as for a built-in backend; the SDK:
//!
//! - runs the store on its own tokio runtime inside the library (the
//!   host's runtime never crosses the boundary);
//! - turns each JSON request into a call of the store, and its result or
//!   [`BackendError`](kiln_core::BackendError) into JSON, keeping the
//!   error's [`ErrorKind`](kiln_core::ErrorKind);
//! - keeps the block handles the store opens, so the host can read into
//!   its own buffers;
//! - catches every panic at the boundary and answers it as an
//!   [`ErrorKind::Internal`](kiln_core::ErrorKind::Internal) error, so a
//!   bug fails one request instead of the daemon.
//!
//! It must not be used for anything but building a plugin: a library
//! exports one plugin.
//!
//! # Example
//!
//! A complete plugin (its `Cargo.toml` sets `crate-type = ["cdylib"]` and
//! depends on `kiln-core`, `kiln-plugin-sdk`, `async-trait`, `serde` and
//! `serde_json`):
//!
//! ```
//! use std::path::PathBuf;
//!
//! use async_trait::async_trait;
//! use kiln_core::store::unsupported;
//! use kiln_core::{
//!     BackendError, BlockRead, BlockWrite, Capabilities, Contents, DriverInfo, FsCheck,
//!     PoolCapacity, SizeMib, StoredVolume, VolumeId, VolumeStore,
//! };
//!
//! /// The options of a pool using this plugin (`options:` in config.yaml).
//! #[derive(serde::Deserialize)]
//! struct Options {
//!     path: PathBuf,
//! }
//!
//! struct NullStore {
//!     path: PathBuf,
//! }
//!
//! impl NullStore {
//!     async fn open(options: serde_json::Value) -> Result<Self, BackendError> {
//!         let o: Options = serde_json::from_value(options).map_err(|e| {
//!             BackendError::new(kiln_core::ErrorKind::InvalidInput, e)
//!         })?;
//!         Ok(Self { path: o.path })
//!     }
//! }
//!
//! #[async_trait]
//! impl VolumeStore for NullStore {
//!     fn driver(&self) -> DriverInfo {
//!         // The host reports plugins as `plugin` with the name and
//!         // version given to `export_plugin!`; this is not sent.
//!         DriverInfo { driver: "null".into(), plugin: None }
//!     }
//!     fn capabilities(&self) -> Capabilities {
//!         Capabilities::default()
//!     }
//!     async fn create(&self, _: &VolumeId, _: SizeMib, _: Contents)
//!         -> Result<StoredVolume, BackendError> { Err(unsupported("create")) }
//!     async fn delete(&self, _: &VolumeId) -> Result<(), BackendError> {
//!         Err(unsupported("delete"))
//!     }
//!     async fn grow(&self, _: &VolumeId, _: SizeMib) -> Result<(), BackendError> {
//!         Err(unsupported("grow"))
//!     }
//!     async fn clone_volume(&self, _: &VolumeId, _: &VolumeId)
//!         -> Result<StoredVolume, BackendError> { Err(unsupported("clone")) }
//!     async fn open_read(&self, _: &VolumeId, _: Option<&kiln_core::SnapshotId>)
//!         -> Result<Box<dyn BlockRead>, BackendError> { Err(unsupported("open_read")) }
//!     async fn open_write(&self, _: &VolumeId) -> Result<Box<dyn BlockWrite>, BackendError> {
//!         Err(unsupported("open_write"))
//!     }
//!     async fn device_path(&self, id: &VolumeId) -> Result<PathBuf, BackendError> {
//!         Ok(self.path.join(id.as_str()))
//!     }
//!     async fn check_filesystem(&self, _: &VolumeId) -> Result<FsCheck, BackendError> {
//!         Ok(FsCheck::Clean)
//!     }
//!     async fn list(&self) -> Result<Vec<StoredVolume>, BackendError> {
//!         Ok(Vec::new())
//!     }
//!     async fn capacity(&self) -> Result<PoolCapacity, BackendError> {
//!         Ok(PoolCapacity { size_bytes: 0, allocated_bytes: 0, free_bytes: 0, thin: None })
//!     }
//! }
//!
//! kiln_plugin_sdk::export_plugin! {
//!     name: "null",
//!     version: env!("CARGO_PKG_VERSION"),
//!     store: NullStore,
//!     capabilities: Capabilities { cow_clone: false, snapshots: false, sparse_reads: false },
//!     open: NullStore::open,
//! }
//! # fn main() {}
//! ```
//!
//! Build it with `cargo build --release`, and check it with
//! `kiln-conformance --library target/release/libnull.so --options
//! '{"path":"/srv/null"}'` (see `docs/plugins.md`).

#![deny(missing_docs)]

mod boundary;
mod export;
mod handles;

pub use kiln_core;
pub use kiln_plugin_abi as abi;
pub use serde_json;

#[doc(hidden)]
pub mod __private {
    pub use crate::export::{table, Export, OpenFuture};
}
