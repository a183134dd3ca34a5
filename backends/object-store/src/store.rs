//! [`ObjectStore`]: the [`BackupTarget`] over an opendal operator.

use std::ops::Range;
use std::path::Path;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use kiln_core::config::{S3Config, TargetConfig};
use kiln_core::{BackendError, BackupTarget, ObjectMeta};
use opendal::layers::{RetryLayer, TimeoutLayer};
use opendal::{services, Entry, Metadata, Operator};
use time::OffsetDateTime;

use crate::error::ObjectStoreError;

/// Attempts per operation before a transient failure is reported.
const RETRIES: usize = 3;
/// The longest a whole operation (one block at most) may take.
const OP_TIMEOUT: Duration = Duration::from_secs(120);
/// The longest a single read or write of the body may stall.
const IO_TIMEOUT: Duration = Duration::from_secs(30);

/// A [`BackupTarget`] over opendal: an S3-compatible bucket (with an
/// optional key prefix) or a local folder.
///
/// Every operation goes through a retry layer (a few attempts with jittered
/// backoff, for transient failures only) and a timeout layer, so an
/// unreachable endpoint fails in seconds with [`ErrorKind::Unavailable`]
/// instead of hanging.
///
/// [`ErrorKind::Unavailable`]: kiln_core::ErrorKind::Unavailable
#[derive(Clone)]
pub struct ObjectStore {
    op: Operator,
    describe: String,
}

impl std::fmt::Debug for ObjectStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ObjectStore")
            .field("target", &self.describe)
            .finish_non_exhaustive()
    }
}

impl ObjectStore {
    /// Builds the target the configuration names.
    pub fn from_config(config: &TargetConfig) -> Result<Self, BackendError> {
        match config {
            TargetConfig::S3(s3) => Self::s3(s3),
            TargetConfig::Fs { path } => Self::fs(path),
        }
    }

    /// An S3-compatible bucket. Credentials come from the configuration
    /// only: no environment, profile or instance metadata is consulted.
    pub fn s3(config: &S3Config) -> Result<Self, BackendError> {
        let prefix = config.prefix.trim_matches('/');
        let describe = format!(
            "s3://{}/{} at {}",
            config.bucket,
            if prefix.is_empty() {
                String::new()
            } else {
                format!("{prefix}/")
            },
            config.endpoint
        );
        let mut builder = services::S3::default()
            .endpoint(&config.endpoint)
            .region(&config.region)
            .bucket(&config.bucket)
            .root(&format!("/{prefix}"))
            .access_key_id(&config.access_key_id)
            .secret_access_key(&config.secret_access_key)
            .disable_config_load()
            .disable_ec2_metadata();
        if !config.path_style {
            builder = builder.enable_virtual_host_style();
        }
        Self::build(builder, describe)
    }

    /// A local folder (made if missing). Writes are atomic: opendal writes
    /// a temporary file and renames it.
    pub fn fs(path: &Path) -> Result<Self, BackendError> {
        let describe = path.display().to_string();
        let root = path.to_string_lossy();
        let builder = services::Fs::default()
            .root(&root)
            .atomic_write_dir(&format!("{root}/.tmp"));
        Self::build(builder, describe)
    }

    fn build(builder: impl opendal::Builder, describe: String) -> Result<Self, BackendError> {
        opendal::install_default();
        let op = Operator::new(builder)
            .map_err(|source| ObjectStoreError::Setup {
                target: describe.clone(),
                source,
            })?
            .layer(
                TimeoutLayer::new()
                    .with_timeout(OP_TIMEOUT)
                    .with_io_timeout(IO_TIMEOUT),
            )
            .layer(
                RetryLayer::new()
                    .with_max_times(RETRIES)
                    .with_min_delay(Duration::from_millis(200))
                    .with_max_delay(Duration::from_secs(2))
                    .with_jitter(),
            );
        tracing::debug!(target = %describe, "backup target opened");
        Ok(Self { op, describe })
    }

    fn fail(&self, operation: &'static str, key: &str, source: opendal::Error) -> BackendError {
        ObjectStoreError::Operation {
            target: self.describe.clone(),
            operation,
            key: key.to_string(),
            source,
        }
        .into()
    }

    async fn meta_of(&self, entry: Entry) -> Result<Option<ObjectMeta>, BackendError> {
        let (path, meta) = entry.into_parts();
        if meta.is_dir() || path.ends_with('/') {
            return Ok(None);
        }
        // Listings of some services (a local folder) carry only the mode.
        let meta = if meta.last_modified().is_some() {
            meta
        } else {
            match self.op.stat(&path).await {
                Ok(m) => m,
                // Removed between the listing and the stat.
                Err(e) if e.kind() == opendal::ErrorKind::NotFound => return Ok(None),
                Err(e) => return Err(self.fail("stat", &path, e)),
            }
        };
        Ok(Some(object_meta(path, &meta)))
    }
}

fn object_meta(key: String, meta: &Metadata) -> ObjectMeta {
    ObjectMeta {
        key,
        size: meta.content_length(),
        last_modified: meta
            .last_modified()
            .map(|t| OffsetDateTime::from(std::time::SystemTime::from(t))),
    }
}

#[async_trait]
impl BackupTarget for ObjectStore {
    fn describe(&self) -> String {
        self.describe.clone()
    }

    async fn put(&self, key: &str, data: Bytes) -> Result<(), BackendError> {
        self.op
            .write(key, data)
            .await
            .map(|_| ())
            .map_err(|e| self.fail("put", key, e))
    }

    async fn get(&self, key: &str, range: Option<Range<u64>>) -> Result<Bytes, BackendError> {
        let read = match range {
            Some(r) => self.op.read_with(key).range(r).await,
            None => self.op.read(key).await,
        };
        read.map(|b| b.to_bytes())
            .map_err(|e| self.fail("get", key, e))
    }

    async fn head(&self, key: &str) -> Result<Option<ObjectMeta>, BackendError> {
        match self.op.stat(key).await {
            Ok(meta) => Ok(Some(object_meta(key.to_string(), &meta))),
            Err(e) if e.kind() == opendal::ErrorKind::NotFound && !is_missing_bucket(&e) => {
                Ok(None)
            }
            Err(e) => Err(self.fail("head", key, e)),
        }
    }

    async fn list(&self, prefix: &str) -> Result<Vec<ObjectMeta>, BackendError> {
        // opendal lists directories; a prefix that is not one is listed
        // through its parent and filtered.
        let dir = match prefix.rfind('/') {
            Some(i) => &prefix[..=i],
            None => "",
        };
        let entries = match self.op.list_with(dir).recursive(true).await {
            Ok(entries) => entries,
            Err(e) if e.kind() == opendal::ErrorKind::NotFound && !is_missing_bucket(&e) => {
                Vec::new()
            }
            Err(e) => return Err(self.fail("list", prefix, e)),
        };
        let mut out = Vec::new();
        for entry in entries {
            if !entry.path().starts_with(prefix) || entry.path().starts_with(".tmp/") {
                continue;
            }
            if let Some(meta) = self.meta_of(entry).await? {
                out.push(meta);
            }
        }
        Ok(out)
    }

    async fn delete(&self, key: &str) -> Result<(), BackendError> {
        self.op
            .delete(key)
            .await
            .map_err(|e| self.fail("delete", key, e))
    }

    async fn check(&self) -> Result<(), BackendError> {
        let key = format!("check/{}", uuid::Uuid::new_v4().simple());
        self.op
            .write(&key, Bytes::from_static(b"kiln"))
            .await
            .map_err(|e| unavailable(self.fail("put", &key, e)))?;
        self.op
            .delete(&key)
            .await
            .map_err(|e| unavailable(self.fail("delete", &key, e)))
    }
}

/// A failed check means the target is not usable, whatever the status
/// (S3 reports a missing bucket as not found).
fn unavailable(err: BackendError) -> BackendError {
    if err.kind() == kiln_core::ErrorKind::Internal || err.kind() == kiln_core::ErrorKind::NotFound
    {
        BackendError::new(kiln_core::ErrorKind::Unavailable, err)
    } else {
        err
    }
}

fn is_missing_bucket(err: &opendal::Error) -> bool {
    format!("{err:?}").contains("NoSuchBucket")
}
