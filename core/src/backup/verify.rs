//! Verify: read every block of a backup and name the damaged ones.

use std::collections::BTreeSet;

use futures::StreamExt;
use serde::Serialize;

use super::engine::BackupEngine;
use super::format::Manifest;
use super::progress::Progress;
use crate::error::{Error, ErrorKind, Result};

/// What `verify` found.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct VerifyReport {
    /// Distinct blocks read and checked.
    pub blocks_checked: u64,
    /// The hashes of blocks missing or failing their checks, sorted.
    pub damaged: Vec<String>,
}

impl BackupEngine {
    /// Fetches and checks every distinct block of the backup. Damage is
    /// reported, not raised; failures to reach the target are raised.
    pub async fn verify(&self, manifest: &Manifest, progress: &Progress) -> Result<VerifyReport> {
        self.check_key(manifest)?;
        let hashes: BTreeSet<String> = manifest.blocks.iter().flatten().cloned().collect();
        progress.start(hashes.len() as u64 * manifest.block_size);

        let mut report = VerifyReport::default();
        let mut stream = futures::stream::iter(hashes)
            .map(|hash: String| async move {
                if progress.is_cancelled() {
                    return Err(Error::Cancelled {
                        operation: format!("verify of {}", manifest.id),
                    });
                }
                let result = self.fetch_block(&hash).await;
                progress.add(manifest.block_size);
                match result {
                    Ok(_) => Ok((hash, None)),
                    Err(e) if e.kind() == ErrorKind::Corrupt => Ok((hash, Some(e))),
                    Err(e) => Err(e),
                }
            })
            .buffer_unordered(self.settings.concurrency);
        while let Some(r) = stream.next().await {
            let (hash, damage) = r?;
            report.blocks_checked += 1;
            if let Some(e) = damage {
                tracing::warn!(backup = %manifest.id, block = hash, error = %e, "damaged block");
                report.damaged.push(hash);
            }
        }
        report.damaged.sort();
        Ok(report)
    }
}
