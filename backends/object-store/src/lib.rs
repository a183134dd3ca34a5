//! kiln-object-store: the one [`BackupTarget`] implementation, over
//! [opendal](https://opendal.apache.org), for S3-compatible buckets and
//! local folders.
//!
//! It owns the mapping of the target contract (put, ranged get, head,
//! list by prefix, delete, check) onto an opendal operator with retry and
//! timeout layers, and the classification of every opendal failure into a
//! [`kiln_core::ErrorKind`] (in [`error`]). It must not know what the keys
//! mean: the backup format belongs to `kiln_core::backup`.
//!
//! ```no_run
//! # async fn demo(cfg: &kiln_core::config::BackupConfig) -> Result<(), kiln_core::BackendError> {
//! use kiln_core::BackupTarget;
//! let target = kiln_object_store::ObjectStore::from_config(&cfg.target)?;
//! target.check().await?;
//! # Ok(()) }
//! ```
//!
//! [`BackupTarget`]: kiln_core::BackupTarget

#![deny(missing_docs)]

pub mod error;
mod store;

pub use error::ObjectStoreError;
pub use store::ObjectStore;
