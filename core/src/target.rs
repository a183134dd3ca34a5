//! The [`BackupTarget`] trait: the object store backups live in.
//!
//! A target is a flat key space of immutable objects: put, ranged get,
//! head, list by prefix, delete. The backup format (blocks, manifests,
//! what keys mean) belongs to the backup engine in this crate, not to the
//! target, so one implementation serves every store.
//!
//! # Contract
//!
//! - `put` replaces an object whole and is atomic: a reader sees the old
//!   object, the new one, or (for a new key) nothing; never a part.
//! - `get` of a missing key fails with not found; `delete` of a missing
//!   key succeeds.
//! - `list` returns every object under the prefix, in any order, and may
//!   take several round trips.
//! - Errors carry a kind: [`ErrorKind::NotFound`] for a missing key,
//!   [`ErrorKind::Unavailable`] for an unreachable endpoint, refused
//!   credentials or a missing bucket, [`ErrorKind::Internal`] otherwise.
//!
//! [`ErrorKind::NotFound`]: crate::ErrorKind::NotFound
//! [`ErrorKind::Unavailable`]: crate::ErrorKind::Unavailable
//! [`ErrorKind::Internal`]: crate::ErrorKind::Internal

use std::ops::Range;

use async_trait::async_trait;
use bytes::Bytes;
use time::OffsetDateTime;

use crate::error::BackendError;

/// One object's metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectMeta {
    /// The key, relative to the target's root (prefix stripped).
    pub key: String,
    /// The size in bytes.
    pub size: u64,
    /// When it was last written, where the store says.
    pub last_modified: Option<OffsetDateTime>,
}

/// An object store holding backups; see the module docs.
#[async_trait]
pub trait BackupTarget: Send + Sync + 'static {
    /// Names the target for messages: `s3://bucket/prefix at endpoint`, or
    /// a folder.
    fn describe(&self) -> String;

    /// Stores `data` under `key`.
    async fn put(&self, key: &str, data: Bytes) -> Result<(), BackendError>;

    /// Reads the object, or a byte range of it.
    async fn get(&self, key: &str, range: Option<Range<u64>>) -> Result<Bytes, BackendError>;

    /// The object's metadata, or `None` if it does not exist.
    async fn head(&self, key: &str) -> Result<Option<ObjectMeta>, BackendError>;

    /// Every object whose key starts with `prefix`.
    async fn list(&self, prefix: &str) -> Result<Vec<ObjectMeta>, BackendError>;

    /// Removes the object (a missing one is not an error).
    async fn delete(&self, key: &str) -> Result<(), BackendError>;

    /// Checks that the target is reachable and writable with the configured
    /// credentials; used at start-up and before a backup starts.
    async fn check(&self) -> Result<(), BackendError>;
}
