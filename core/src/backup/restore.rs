//! Restore: a manifest's blocks, fetched, verified and written.

use std::sync::Arc;

use futures::StreamExt;
use serde::Serialize;

use super::engine::{is_zero, BackupEngine};
use super::format::Manifest;
use super::keys;
use super::progress::Progress;
use crate::error::{BackendError, Error, ErrorKind, Result};
use crate::store::BlockWrite;

/// What a restore wrote.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct RestoreReport {
    /// Bytes written from data blocks.
    pub bytes_written: u64,
    /// Bytes made holes with `zero_range` (hole blocks, and zero pages
    /// inside data blocks).
    pub bytes_zeroed: u64,
}

/// The granularity at which zeros inside a data block stay holes: the
/// page size of the filesystems and devices volumes live on.
const PAGE: usize = 4096;

/// Writes `data` at `offset`, turning runs of all-zero pages into
/// `zero_range` (holes) rather than written zeros, so a restored volume
/// is as sparse as its source even where a stored block was only partly
/// allocated. Returns the bytes written.
fn write_sparse(dest: &dyn BlockWrite, offset: u64, data: &[u8]) -> Result<u64, BackendError> {
    let page_is_zero = |at: usize| is_zero(&data[at..(at + PAGE).min(data.len())]);
    let mut written = 0;
    let mut at = 0;
    while at < data.len() {
        let zero = page_is_zero(at);
        let mut end = (at + PAGE).min(data.len());
        while end < data.len() && page_is_zero(end) == zero {
            end = (end + PAGE).min(data.len());
        }
        let start = offset + at as u64;
        if zero {
            dest.zero_range(start, (end - at) as u64)?;
        } else {
            dest.write_at(start, &data[at..end])?;
            written += (end - at) as u64;
        }
        at = end;
    }
    Ok(written)
}

/// Where a restore writes, for error messages.
#[derive(Debug, Clone)]
pub struct RestoreDest {
    /// The pool of the volume written into.
    pub pool: String,
    /// That volume (its name, or its id while it has none).
    pub volume: String,
}

impl BackupEngine {
    /// Writes the backup `manifest` describes into `dest`: every block is
    /// fetched, authenticated (when encrypted), decompressed and checked
    /// against its hash before it is written; holes become `zero_range`.
    ///
    /// A missing or damaged block fails the restore with the block named
    /// ([`Error::Corrupt`]). `dest` is then partly written: callers restore
    /// into a fresh volume and keep or drop it whole (the volume service
    /// does), which is what makes restores atomic.
    pub async fn restore(
        &self,
        manifest: &Manifest,
        dest: Arc<dyn BlockWrite>,
        at: &RestoreDest,
        progress: &Progress,
    ) -> Result<RestoreReport> {
        tracing::debug!(backup = %manifest.id, pool = %at.pool, volume = %at.volume, "restore started");
        self.check_key(manifest)?;
        let write_err = |operation: &'static str, source: BackendError| Error::Store {
            pool: at.pool.clone(),
            operation,
            volume: at.volume.clone(),
            source,
        };
        if dest.len() < manifest.size_bytes {
            return Err(Error::invalid(
                "to",
                format!(
                    "volume {} holds {} bytes, the backup {} needs {}",
                    at.volume,
                    dest.len(),
                    manifest.id,
                    manifest.size_bytes
                ),
            ));
        }
        let total = manifest.stats.logical_bytes;
        progress.start(total);

        // Holes first, coalesced: on a fresh volume they cost nothing.
        let mut report = RestoreReport::default();
        let mut holes: Vec<(u64, u64)> = Vec::new();
        for (i, b) in manifest.blocks.iter().enumerate() {
            if b.is_none() {
                let r = manifest.block_range(i);
                match holes.last_mut() {
                    Some((start, len)) if *start + *len == r.start => *len += r.end - r.start,
                    _ => holes.push((r.start, r.end - r.start)),
                }
            }
        }
        if dest.len() > manifest.size_bytes {
            holes.push((manifest.size_bytes, dest.len() - manifest.size_bytes));
        }
        report.bytes_zeroed = holes.iter().map(|h| h.1).sum();
        {
            let dest = dest.clone();
            tokio::task::spawn_blocking(move || {
                holes
                    .into_iter()
                    .try_for_each(|(off, len)| dest.zero_range(off, len))
            })
            .await
            .map_err(|e| Error::Internal(format!("zero range task failed: {e}")))?
            .map_err(|e| write_err("zero range", e))?;
        }

        // Collected: an iterator holding a closure over borrowed items
        // would make the restore future lose `Send` (a higher-ranked
        // lifetime), and restores run as spawned jobs.
        let data: Vec<(usize, String)> = manifest
            .blocks
            .iter()
            .enumerate()
            .filter_map(|(i, b)| b.clone().map(|h| (i, h)))
            .collect();
        let mut stream = futures::stream::iter(data)
            .map(|(i, hash): (usize, String)| {
                let dest = dest.clone();
                let write_err = &write_err;
                async move {
                    let hash = hash.as_str();
                    if progress.is_cancelled() {
                        return Err(Error::Cancelled {
                            operation: format!("restore of {}", manifest.id),
                        });
                    }
                    let plain = self.fetch_block(hash).await?;
                    let range = manifest.block_range(i);
                    if plain.len() as u64 != range.end - range.start {
                        return Err(Error::Corrupt {
                            what: format!("block {hash}"),
                            reason: format!(
                                "holds {} bytes, block {i} of {} is {} bytes",
                                plain.len(),
                                manifest.id,
                                range.end - range.start
                            ),
                        });
                    }
                    let len = plain.len() as u64;
                    let written = tokio::task::spawn_blocking(move || {
                        write_sparse(&*dest, range.start, &plain)
                    })
                    .await
                    .map_err(|e| Error::Internal(format!("block write task failed: {e}")))?
                    .map_err(|e| write_err("write", e))?;
                    progress.add(len);
                    Ok((written, len - written))
                }
            })
            .buffer_unordered(self.settings.concurrency);
        while let Some(r) = stream.next().await {
            let (written, zeroed) = r?;
            report.bytes_written += written;
            report.bytes_zeroed += zeroed;
        }
        drop(stream);

        tokio::task::spawn_blocking(move || dest.flush())
            .await
            .map_err(|e| Error::Internal(format!("flush task failed: {e}")))?
            .map_err(|e| write_err("flush", e))?;
        tracing::debug!(backup = %manifest.id, volume = %at.volume,
            written = report.bytes_written, "restore finished");
        Ok(report)
    }

    /// Fetches and checks one block; a missing block is corrupt data, not
    /// a "not found" of the request.
    pub(crate) async fn fetch_block(&self, hash: &str) -> Result<Vec<u8>> {
        let key = keys::block(hash);
        let stored = match self.target.get(&key, None).await {
            Ok(b) => b,
            Err(e) if e.kind() == ErrorKind::NotFound => {
                return Err(Error::Corrupt {
                    what: format!("block {hash}"),
                    reason: "missing from the backup target".into(),
                })
            }
            Err(e) => return Err(self.target_err(format!("get {key}"), e)),
        };
        let codec = self.codec.clone();
        let hash = hash.to_string();
        tokio::task::spawn_blocking(move || codec.decode(&hash, &stored))
            .await
            .map_err(|e| Error::Internal(format!("block decode task failed: {e}")))?
    }

    /// Refuses a backup sealed with another key (or with none) up front.
    pub(crate) fn check_key(&self, manifest: &Manifest) -> Result<()> {
        let want = manifest.encryption.as_ref().map(|e| e.key_id.as_str());
        let have = self.codec.key_id();
        if want == have {
            return Ok(());
        }
        let reason = match (want, have) {
            (Some(w), None) => format!(
                "backup {} is encrypted (key {w}); no key is configured",
                manifest.id
            ),
            (None, Some(_)) => format!(
                "backup {} is not encrypted; this daemon is configured with an encryption key",
                manifest.id
            ),
            (w, h) => format!(
                "backup {} was encrypted with key {}, the configured key is {}",
                manifest.id,
                w.unwrap_or("-"),
                h.unwrap_or("-")
            ),
        };
        Err(Error::invalid("backup.encryption_key_file", reason))
    }
}
