//! Listing, finding and deleting backups from the target alone: no
//! catalog is consulted, so a new host with an empty catalog sees every
//! backup of the bucket.

use futures::StreamExt;

use super::engine::BackupEngine;
use super::format::Manifest;
use super::keys;
use crate::error::{Error, Result};
use crate::types::{BackupId, Owner, VolumeName};

impl BackupEngine {
    /// The backups of `owner` (of one volume, or of all its volumes),
    /// newest first. A manifest that does not parse is skipped with a
    /// warning (verify and gc report it).
    ///
    /// # Limitations
    ///
    /// Each manifest is downloaded whole (block lists included) to show
    /// it: listing costs one GET per backup.
    pub async fn list(&self, owner: &Owner, volume: Option<&VolumeName>) -> Result<Vec<Manifest>> {
        let prefix = keys::manifests_of(owner, volume);
        let mut out = Vec::new();
        for r in self.load_manifests(&prefix).await? {
            match r {
                Ok(m) if &m.owner == owner => out.push(m),
                Ok(m) => {
                    tracing::warn!(backup = %m.id, "manifest filed under another owner; skipped")
                }
                Err(e) => tracing::warn!(error = %e.chain(), "unreadable manifest skipped"),
            }
        }
        out.sort_by(|a, b| (b.created_at, &b.id).cmp(&(a.created_at, &a.id)));
        Ok(out)
    }

    /// The manifest of backup `id` of `owner`.
    pub async fn find(&self, owner: &Owner, id: &BackupId) -> Result<Manifest> {
        let key = self.find_key(owner, id).await?;
        self.load_manifest(&key).await
    }

    /// Deletes backup `id` of `owner` (its manifest; its blocks go at the
    /// next gc) and returns what it was.
    pub async fn delete(&self, owner: &Owner, id: &BackupId) -> Result<Manifest> {
        let key = self.find_key(owner, id).await?;
        let manifest = self.load_manifest(&key).await?;
        self.target
            .delete(&key)
            .await
            .map_err(|e| self.target_err(format!("delete {key}"), e))?;
        tracing::debug!(backup = %id, owner = %owner, "backup deleted");
        Ok(manifest)
    }

    async fn find_key(&self, owner: &Owner, id: &BackupId) -> Result<String> {
        let prefix = keys::manifests_of(owner, None);
        let objects = self
            .target
            .list(&prefix)
            .await
            .map_err(|e| self.target_err(format!("list {prefix}"), e))?;
        objects
            .into_iter()
            .map(|o| o.key)
            .find(|k| keys::parse_manifest(k).is_some_and(|(_, _, i)| i == id.as_str()))
            .ok_or_else(|| Error::BackupNotFound {
                backup: id.to_string(),
            })
    }

    pub(crate) async fn load_manifest(&self, key: &str) -> Result<Manifest> {
        let bytes = self
            .target
            .get(key, None)
            .await
            .map_err(|e| self.target_err(format!("get {key}"), e))?;
        Manifest::from_bytes(key, &bytes)
    }

    /// Every manifest under `prefix`, loaded concurrently; the outer error
    /// is the listing's, each inner one a manifest's.
    pub(crate) async fn load_manifests(&self, prefix: &str) -> Result<Vec<Result<Manifest>>> {
        let objects = self
            .target
            .list(prefix)
            .await
            .map_err(|e| self.target_err(format!("list {prefix}"), e))?;
        let keys: Vec<String> = objects
            .into_iter()
            .map(|o| o.key)
            .filter(|k| keys::parse_manifest(k).is_some())
            .collect();
        Ok(futures::stream::iter(keys)
            .map(|k| async move { self.load_manifest(&k).await })
            .buffer_unordered(self.settings.concurrency)
            .collect()
            .await)
    }
}
