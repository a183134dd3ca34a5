//! gc: remove blocks no manifest references, safely against concurrent
//! backups (the protocol is in `docs/backup-format.md` and [`super::lock`]).

use std::collections::HashSet;

use serde::Serialize;

use super::engine::BackupEngine;
use super::keys;
use super::lock::HeldLock;
use super::progress::Progress;
use crate::error::{Error, Result};

/// What gc did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct GcReport {
    /// Blocks removed.
    pub blocks_deleted: u64,
    /// Their stored size.
    pub bytes_deleted: u64,
    /// Unreferenced blocks kept because they are younger than the grace
    /// period (a backup that was interrupted may still reuse them).
    pub blocks_kept_young: u64,
    /// Blocks still referenced.
    pub blocks_live: u64,
}

impl BackupEngine {
    /// Removes every block that no manifest references and that is older
    /// than the grace period. Waits while backups run (they wait for it in
    /// turn once it holds its lock). Stops, having deleted nothing more,
    /// if a manifest cannot be read: its blocks cannot be told apart.
    pub async fn gc(&self, progress: &Progress) -> Result<GcReport> {
        tracing::debug!(target = %self.target.describe(), "gc started");
        let lock = HeldLock::gc(self.target.clone(), progress).await?;
        let result = self.collect(&lock, progress).await;
        lock.release().await;
        let report = result?;
        tracing::debug!(
            deleted = report.blocks_deleted,
            bytes = report.bytes_deleted,
            kept_young = report.blocks_kept_young,
            "gc finished"
        );
        Ok(report)
    }

    async fn collect(&self, lock: &HeldLock, progress: &Progress) -> Result<GcReport> {
        // With the lock held and no backup running, the set of referenced
        // blocks only grows by backups that start after this point, and
        // those wait for the lock to go before they look at any block.
        let mut live = HashSet::new();
        for m in self.load_manifests(keys::MANIFESTS).await? {
            live.extend(m?.blocks.into_iter().flatten());
        }
        let now = lock.store_now().await?;
        let blocks = self
            .target
            .list(keys::BLOCKS)
            .await
            .map_err(|e| self.target_err(format!("list {}", keys::BLOCKS), e))?;
        progress.start(blocks.len() as u64);

        let mut report = GcReport::default();
        for b in blocks {
            progress.add(1);
            let Some(hash) = keys::block_hash(&b.key) else {
                continue;
            };
            if live.contains(hash) {
                report.blocks_live += 1;
                continue;
            }
            let old_enough = b
                .last_modified
                .is_some_and(|t| now - t >= self.settings.gc_grace);
            if !old_enough {
                report.blocks_kept_young += 1;
                continue;
            }
            if progress.is_cancelled() {
                return Err(Error::Cancelled {
                    operation: "gc".into(),
                });
            }
            if !lock.still_held() {
                return Err(Error::Internal(
                    "gc: its lock could not be refreshed in time; stopped deleting".into(),
                ));
            }
            self.target
                .delete(&b.key)
                .await
                .map_err(|e| self.target_err(format!("delete {}", b.key), e))?;
            report.blocks_deleted += 1;
            report.bytes_deleted += b.size;
        }
        Ok(report)
    }
}
