//! [`BackupEngine`]: settings, and the backup pipeline.

use std::collections::HashSet;
use std::ops::Range;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use time::OffsetDateTime;

use super::block::{BlockCodec, EncryptionKey};
use super::format::{
    new_backup_id, BackupStats, Consistency, EncryptionInfo, Manifest, FORMAT_VERSION,
};
use super::keys;
use super::lock::HeldLock;
use super::progress::Progress;
use crate::config::BackupConfig;
use crate::error::{BackendError, Error, Result};
use crate::store::BlockRead;
use crate::target::BackupTarget;
use crate::types::{Owner, PoolName, VolumeName, MIB};

/// How the engine cuts, compresses, encrypts and uploads.
#[derive(Debug, Clone)]
pub struct BackupSettings {
    /// The block size in bytes.
    pub block_size: u64,
    /// The zstd level.
    pub compression_level: i32,
    /// Blocks in flight at once (reading, encoding or uploading): the
    /// engine's memory is about twice this many blocks.
    pub concurrency: usize,
    /// How old an unreferenced block must be before gc removes it.
    pub gc_grace: Duration,
    /// The encryption key, when backups are encrypted.
    pub key: Option<EncryptionKey>,
}

impl BackupSettings {
    /// The settings of a `backup:` section (reads the key file).
    pub fn from_config(config: &BackupConfig) -> Result<Self> {
        let key = config
            .encryption_key_file
            .as_deref()
            .map(EncryptionKey::from_file)
            .transpose()?;
        Ok(Self {
            block_size: u64::from(config.block_size_mib) * MIB,
            compression_level: config.compression_level,
            concurrency: config.concurrency.max(1),
            gc_grace: Duration::from_secs(config.gc_grace_secs),
            key,
        })
    }
}

/// What is being backed up, for the manifest and for error messages.
#[derive(Debug, Clone)]
pub struct BackupSource {
    /// The volume's name.
    pub volume: VolumeName,
    /// Its owner.
    pub owner: Owner,
    /// Its pool.
    pub pool: PoolName,
    /// That pool's driver.
    pub driver: String,
    /// How consistent the reads will be (the caller knows: detached,
    /// snapshot, or live).
    pub consistency: Consistency,
}

/// The backup engine over one target: backup, restore, listing, delete,
/// gc and verify. Cheap to share behind an `Arc`; operations run
/// concurrently.
pub struct BackupEngine {
    pub(crate) target: Arc<dyn BackupTarget>,
    pub(crate) settings: BackupSettings,
    pub(crate) codec: Arc<BlockCodec>,
}

/// What happened to one block during a backup.
enum Outcome {
    Hole,
    New { hash: String, stored: u64 },
    Reused { hash: String },
}

impl BackupEngine {
    /// An engine writing to `target` with `settings`.
    pub fn new(target: Arc<dyn BackupTarget>, settings: BackupSettings) -> Self {
        let codec = BlockCodec::new(
            settings.compression_level,
            settings.block_size as usize,
            settings.key.as_ref(),
        );
        Self {
            target,
            settings,
            codec: Arc::new(codec),
        }
    }

    /// The target.
    pub fn target(&self) -> &Arc<dyn BackupTarget> {
        &self.target
    }

    /// The settings.
    pub fn settings(&self) -> &BackupSettings {
        &self.settings
    }

    pub(crate) fn target_err(&self, operation: impl Into<String>, source: BackendError) -> Error {
        Error::Target {
            target: self.target.describe(),
            operation: operation.into(),
            source,
        }
    }

    /// Backs up everything `source` reads and returns the manifest, which
    /// is written last: until then the backup is invisible. Honours
    /// `progress`' cancellation between blocks; a failed or cancelled
    /// backup leaves only blocks behind, which a rerun reuses and gc
    /// collects after the grace period.
    pub async fn backup(
        &self,
        source: Arc<dyn BlockRead>,
        origin: BackupSource,
        progress: &Progress,
    ) -> Result<Manifest> {
        let created_at = OffsetDateTime::now_utc();
        let id = new_backup_id(created_at);
        tracing::debug!(backup = %id, volume = %origin.volume, owner = %origin.owner, "backup started");

        self.target
            .check()
            .await
            .map_err(|e| self.target_err("check", e))?;

        let store_err =
            |operation: &'static str, source: BackendError| read_error(&origin, operation, source);
        let len = source.len();
        let allocated = {
            let source = source.clone();
            tokio::task::spawn_blocking(move || source.allocated())
                .await
                .map_err(|e| Error::Internal(format!("allocation map task failed: {e}")))?
                .map_err(|e| store_err("read allocation map", e))?
        };
        let plan = plan_blocks(len, self.settings.block_size, &allocated);
        let total: u64 = plan.iter().map(|p| p.len).sum();
        progress.start(total);

        let lock = HeldLock::backup(self.target.clone(), &id, progress).await?;
        let outcomes = self.upload_all(&source, &origin, &plan, progress).await;
        let outcomes = match outcomes {
            Ok(o) => o,
            Err(e) => {
                lock.release().await;
                return Err(e);
            }
        };

        let n = len.div_ceil(self.settings.block_size) as usize;
        let mut blocks = vec![None; n];
        let mut stats = BackupStats {
            holes: n as u64,
            ..BackupStats::default()
        };
        for (p, outcome) in plan.iter().zip(outcomes) {
            match outcome {
                Outcome::Hole => {}
                Outcome::New { hash, stored } => {
                    stats.holes -= 1;
                    stats.logical_bytes += p.len;
                    stats.stored_bytes += stored;
                    stats.blocks_new += 1;
                    blocks[p.index] = Some(hash);
                }
                Outcome::Reused { hash } => {
                    stats.holes -= 1;
                    stats.logical_bytes += p.len;
                    stats.reused_bytes += p.len;
                    stats.blocks_reused += 1;
                    blocks[p.index] = Some(hash);
                }
            }
        }
        let manifest = Manifest {
            format_version: FORMAT_VERSION,
            id: id.clone(),
            volume: origin.volume.clone(),
            owner: origin.owner.clone(),
            pool: origin.pool.clone(),
            driver: origin.driver.clone(),
            size_bytes: len,
            created_at,
            consistency: origin.consistency,
            block_size: self.settings.block_size,
            hash: self.codec.hash_name().into(),
            compression: "zstd".into(),
            encryption: self.codec.key_id().map(|k| EncryptionInfo {
                algorithm: "xchacha20poly1305".into(),
                key_id: k.into(),
            }),
            stats,
            blocks,
        };

        // A lock that may have looked abandoned to a gc no longer protects
        // the blocks this backup reused: better fail than publish.
        if !lock.still_held() {
            lock.release().await;
            return Err(Error::Internal(format!(
                "backup {id}: its lock could not be refreshed in time; not publishing"
            )));
        }
        let key = keys::manifest(&origin.owner, &origin.volume, &id);
        let put = self.target.put(&key, manifest.to_bytes().into()).await;
        lock.release().await;
        put.map_err(|e| self.target_err(format!("put {key}"), e))?;

        tracing::debug!(backup = %id, volume = %origin.volume,
            logical = stats.logical_bytes, stored = stats.stored_bytes,
            reused = stats.reused_bytes, "backup finished");
        Ok(manifest)
    }

    async fn upload_all(
        &self,
        source: &Arc<dyn BlockRead>,
        origin: &BackupSource,
        plan: &[PlannedBlock],
        progress: &Progress,
    ) -> Result<Vec<Outcome>> {
        let claimed = Mutex::new(HashSet::new());
        let claimed = &claimed;
        let mut results: Vec<Option<Outcome>> = (0..plan.len()).map(|_| None).collect();
        // Owned items: closures over borrowed ones make the future lose
        // `Send` to a higher-ranked lifetime.
        let mut stream = futures::stream::iter(plan.iter().cloned().enumerate())
            .map(move |(slot, p)| async move {
                let outcome = self
                    .upload_one(source, origin, &p, progress, claimed)
                    .await?;
                progress.add(p.len);
                Ok::<_, Error>((slot, outcome))
            })
            .buffer_unordered(self.settings.concurrency);
        while let Some(r) = stream.next().await {
            let (slot, outcome) = r?;
            results[slot] = Some(outcome);
        }
        Ok(results
            .into_iter()
            .map(|o| o.expect("every planned block yielded an outcome above"))
            .collect())
    }

    async fn upload_one(
        &self,
        source: &Arc<dyn BlockRead>,
        origin: &BackupSource,
        p: &PlannedBlock,
        progress: &Progress,
        claimed: &Mutex<HashSet<String>>,
    ) -> Result<Outcome> {
        if progress.is_cancelled() {
            return Err(Error::Cancelled {
                operation: "backup".into(),
            });
        }
        let encoded = {
            let (source, codec, p) = (source.clone(), self.codec.clone(), p.clone());
            let origin = origin.clone();
            tokio::task::spawn_blocking(move || {
                let mut buf = vec![0u8; p.len as usize];
                for r in &p.reads {
                    let at = (r.start - p.start) as usize..(r.end - p.start) as usize;
                    source
                        .read_at(r.start, &mut buf[at])
                        .map_err(|e| read_error(&origin, "read", e))?;
                }
                if is_zero(&buf) {
                    return Ok(None);
                }
                codec.encode(&buf).map(Some)
            })
            .await
            .map_err(|e| Error::Internal(format!("block read task failed: {e}")))??
        };
        let Some(block) = encoded else {
            return Ok(Outcome::Hole);
        };

        let first = claimed
            .lock()
            .map(|mut set| set.insert(block.hash.clone()))
            .unwrap_or(true);
        if !first {
            return Ok(Outcome::Reused { hash: block.hash });
        }
        let key = keys::block(&block.hash);
        let held = self
            .target
            .head(&key)
            .await
            .map_err(|e| self.target_err(format!("head {key}"), e))?;
        if held.is_some() {
            return Ok(Outcome::Reused { hash: block.hash });
        }
        let stored = block.data.len() as u64;
        self.target
            .put(&key, block.data)
            .await
            .map_err(|e| self.target_err(format!("put {key}"), e))?;
        Ok(Outcome::New {
            hash: block.hash,
            stored,
        })
    }
}

fn read_error(origin: &BackupSource, operation: &'static str, source: BackendError) -> Error {
    Error::Store {
        pool: origin.pool.to_string(),
        operation,
        volume: origin.volume.to_string(),
        source,
    }
}

/// One block worth reading: its index, where it is, and the allocated
/// ranges inside it (everything else in it reads as zeros).
#[derive(Debug, Clone, PartialEq, Eq)]
struct PlannedBlock {
    index: usize,
    start: u64,
    len: u64,
    reads: Vec<Range<u64>>,
}

/// The blocks that hold any allocated byte; the others are holes.
fn plan_blocks(len: u64, block_size: u64, allocated: &[Range<u64>]) -> Vec<PlannedBlock> {
    let mut plan: Vec<PlannedBlock> = Vec::new();
    for r in allocated {
        let r = r.start.min(len)..r.end.min(len);
        let mut at = r.start;
        while at < r.end {
            let index = (at / block_size) as usize;
            let start = index as u64 * block_size;
            let end = (start + block_size).min(len);
            let piece = at..r.end.min(end);
            match plan.last_mut() {
                Some(last) if last.index == index => last.reads.push(piece.clone()),
                _ => plan.push(PlannedBlock {
                    index,
                    start,
                    len: end - start,
                    reads: vec![piece.clone()],
                }),
            }
            at = piece.end;
        }
    }
    plan
}

/// Whether every byte is zero (written so the compiler vectorizes it).
pub(crate) fn is_zero(buf: &[u8]) -> bool {
    buf.chunks(4096)
        .all(|c| c.iter().fold(0u8, |acc, &b| acc | b) == 0)
}

#[cfg(test)]
// Lists of one range are what the allocation map holds here.
#[allow(clippy::single_range_in_vec_init)]
mod tests {
    use super::*;

    #[test]
    fn plan_covers_allocated_ranges_only() {
        let plan = plan_blocks(10, 4, &[0..1, 2..3, 9..10]);
        assert_eq!(
            plan,
            vec![
                PlannedBlock {
                    index: 0,
                    start: 0,
                    len: 4,
                    reads: vec![0..1, 2..3]
                },
                PlannedBlock {
                    index: 2,
                    start: 8,
                    len: 2,
                    reads: vec![9..10]
                },
            ]
        );
        let whole = plan_blocks(9, 4, &[0..9]);
        assert_eq!(whole.len(), 3);
        assert_eq!(whole[2].reads, vec![8..9]);
        assert!(is_zero(&[0; 10000]));
        assert!(!is_zero(&[0, 0, 1]));
    }
}
