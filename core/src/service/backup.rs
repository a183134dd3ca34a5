//! Backups and restores of volumes: what to read, what to hold, and how a
//! restore replaces a volume atomically. The engine
//! ([`crate::backup::BackupEngine`]) does the block work.
//!
//! Each operation is split in two: `prepare_*` checks the rules and takes
//! the holds at once (so a conflict is answered right away, with 409), and
//! `run_*` does the long work (as a job).
//!
//! # Limitations
//!
//! - A backup is not journalled: a crash during a backup of a snapshot
//!   leaves the backend's snapshot behind (the backend lists it as its
//!   own; nothing in the bucket becomes visible, the manifest not being
//!   written).
//! - The consistency of a backup read live is judged from the attachments
//!   at its start and its end: a sandbox attached and detached entirely
//!   within the backup goes unseen.

use std::sync::Arc;

use time::OffsetDateTime;
use tracing::{debug, warn};

use super::{store_err, Actor, VolumeHold, VolumeService};
use crate::backup::{
    BackupEngine, BackupInfo, BackupSource, Consistency, Manifest, Progress, RestoreDest,
    VerifyReport,
};
use crate::catalog::{Operation, OperationState, Step};
use crate::error::{Error, Result};
use crate::model::{Volume, VolumeStatus};
use crate::store::Contents;
use crate::types::{BackupId, SizeMib, SnapshotId, VolumeId, VolumeName, MIB};

/// A backup ready to run: the volume is held.
#[derive(Debug)]
pub struct PreparedBackup {
    volume: Volume,
    _hold: VolumeHold,
}

impl PreparedBackup {
    /// The volume to be backed up.
    pub fn volume(&self) -> &Volume {
        &self.volume
    }
}

/// A restore ready to run: the manifest is found, the holds and the
/// journal entry of the new volume are in place.
#[derive(Debug)]
pub struct PreparedRestore {
    manifest: Manifest,
    /// The new volume (not yet in the backend).
    fresh: Volume,
    /// The volume replaced, for an in-place restore.
    replaced: Option<Volume>,
    op: Operation,
    _holds: Vec<VolumeHold>,
}

impl PreparedRestore {
    /// The name the restored volume will have.
    pub fn target(&self) -> &VolumeName {
        &self.fresh.name
    }

    /// The backup restored.
    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }
}

impl VolumeService {
    /// Holds the actor's volume `name` for a backup (allowed while
    /// attached).
    pub async fn prepare_backup(&self, a: &Actor, name: &VolumeName) -> Result<PreparedBackup> {
        let (volume, hold) = self.hold_volume(a, name, "backup").await?;
        Ok(PreparedBackup {
            volume,
            _hold: hold,
        })
    }

    /// Backs up a prepared volume: a snapshot when it is attached and its
    /// pool can snapshot (`crash_consistent`), else the volume itself
    /// (`clean` when detached, `inconsistent` when attached).
    pub async fn run_backup(
        &self,
        prepared: PreparedBackup,
        engine: &BackupEngine,
        progress: &Progress,
    ) -> Result<BackupInfo> {
        let volume = &prepared.volume;
        let store = self.store(&volume.pool)?;
        let attached = !volume.attachments.is_empty();
        let snapshot = (attached && store.capabilities().snapshots).then(SnapshotId::generate);
        debug!(volume = %volume.name, owner = %volume.owner, snapshot = snapshot.is_some(),
            "backup volume");

        if let Some(snap) = &snapshot {
            store
                .snapshot(&volume.id, snap)
                .await
                .map_err(|e| store_err(volume, "snapshot", e))?;
        }
        let result = async {
            let reader = store
                .open_read(&volume.id, snapshot.as_ref())
                .await
                .map_err(|e| store_err(volume, "open for reading", e))?;
            let mut source = BackupSource {
                volume: volume.name.clone(),
                owner: volume.owner.clone(),
                pool: volume.pool.clone(),
                driver: store.driver().driver,
                consistency: match (&snapshot, attached) {
                    (Some(_), _) => Consistency::CrashConsistent,
                    (None, true) => Consistency::Inconsistent,
                    (None, false) => Consistency::Clean,
                },
            };
            if source.consistency == Consistency::Clean && self.attached_now(&volume.id)? {
                source.consistency = Consistency::Inconsistent;
            }
            let manifest = engine.backup(Arc::from(reader), source, progress).await?;
            if manifest.consistency == Consistency::Clean && self.attached_now(&volume.id)? {
                // Attached during the read: the manifest is written and
                // claims more than it should; say so where operators look.
                warn!(volume = %volume.name, backup = %manifest.id,
                    "volume was attached during a clean backup; the backup may be torn");
            }
            Ok::<_, Error>(manifest.info())
        }
        .await;

        if let Some(snap) = &snapshot {
            if let Err(e) = store.drop_snapshot(&volume.id, snap).await {
                warn!(volume = %volume.name, snapshot = %snap, error = %e,
                    "cannot drop the backup's snapshot; left in the pool");
            }
        }
        let info = result?;
        debug!(volume = %volume.name, backup = %info.id, "volume backed up");
        Ok(info)
    }

    fn attached_now(&self, id: &VolumeId) -> Result<bool> {
        Ok(self
            .catalog
            .read(|tx| tx.volume_by_id(id))?
            .is_some_and(|v| !v.attachments.is_empty()))
    }

    /// The backups of the actor's volume `name`, newest first, from the
    /// backup target alone (the volume need not exist in the catalog).
    pub async fn list_backups(
        &self,
        a: &Actor,
        name: &VolumeName,
        engine: &BackupEngine,
    ) -> Result<Vec<BackupInfo>> {
        let manifests = engine.list(&a.owner, Some(name)).await?;
        Ok(manifests.iter().map(Manifest::info).collect())
    }

    /// The manifest of backup `id` of the actor's volume `name`.
    pub async fn find_backup(
        &self,
        a: &Actor,
        name: &VolumeName,
        id: &BackupId,
        engine: &BackupEngine,
    ) -> Result<Manifest> {
        let manifest = engine.find(&a.owner, id).await?;
        if &manifest.volume != name {
            return Err(Error::BackupNotFound {
                backup: id.to_string(),
            });
        }
        Ok(manifest)
    }

    /// Deletes backup `id` of the actor's volume `name` (its blocks go at
    /// the next gc).
    pub async fn delete_backup(
        &self,
        a: &Actor,
        name: &VolumeName,
        id: &BackupId,
        engine: &BackupEngine,
    ) -> Result<()> {
        self.find_backup(a, name, id, engine).await?;
        engine.delete(&a.owner, id).await.map(drop)
    }

    /// Checks every block of backup `id` of the actor.
    pub async fn verify_backup(
        &self,
        a: &Actor,
        id: &BackupId,
        engine: &BackupEngine,
        progress: &Progress,
    ) -> Result<VerifyReport> {
        let manifest = engine.find(&a.owner, id).await?;
        engine.verify(&manifest, progress).await
    }

    /// Checks a restore of backup `id` of the actor's volume `name`, into
    /// `name` itself (which must exist and be detached) or into a new
    /// volume `to` (also when `name` no longer exists), and takes its
    /// holds and journal entry.
    pub async fn prepare_restore(
        &self,
        a: &Actor,
        name: &VolumeName,
        id: &BackupId,
        to: Option<VolumeName>,
        engine: &BackupEngine,
    ) -> Result<PreparedRestore> {
        let manifest = self.find_backup(a, name, id, engine).await?;
        let size = SizeMib::new(manifest.size_bytes.div_ceil(MIB))?;
        let _policy = self.policy();
        let mut holds = Vec::new();

        let (replaced, target_name, pool) = match to {
            None => {
                let volume = self.catalog.read(|tx| self.find_volume(tx, a, name))?;
                holds.push(self.holds.take(&volume, "restore", false)?);
                if !volume.attachments.is_empty() {
                    return Err(Error::Attached {
                        volume: volume.name.to_string(),
                        sandboxes: volume
                            .attachments
                            .iter()
                            .map(|at| at.sandbox.to_string())
                            .collect(),
                    });
                }
                if volume.status != VolumeStatus::Ready {
                    return Err(Error::NotReady {
                        volume: volume.name.to_string(),
                        status: volume.status.to_string(),
                        operation: "restore".into(),
                    });
                }
                let pool = volume.pool.clone();
                (Some(volume), name.clone(), pool)
            }
            Some(to) => {
                // Into the source's pool when it still exists, else the
                // pool the backup was read from, else the default pool.
                let source = self.catalog.read(|tx| tx.volume(&a.owner, name))?;
                let pool = match source {
                    Some(v) => v.pool,
                    None if self.pools.contains_key(&manifest.pool) => manifest.pool.clone(),
                    None => self.config.default_pool.clone(),
                };
                (None, to, pool)
            }
        };
        self.store(&pool)?;

        let fresh = Volume {
            id: VolumeId::generate(),
            name: target_name,
            owner: a.owner.clone(),
            pool: pool.clone(),
            size_mib: size,
            status: VolumeStatus::Restoring,
            error: None,
            created_at: OffsetDateTime::now_utc(),
            attachments: Vec::new(),
        };
        // Undone at start-up like a create: the new backend volume (and a
        // catalog row, for a restore into a new name) is removed.
        let op = Operation::start(
            &fresh.id,
            Step::Create {
                owner: fresh.owner.clone(),
                name: fresh.name.clone(),
                pool: pool.clone(),
                size_mib: size,
            },
        );
        self.catalog.write(|tx| {
            match &replaced {
                None => {
                    if tx.volume(&fresh.owner, &fresh.name)?.is_some() {
                        return Err(Error::VolumeExists {
                            volume: fresh.name.to_string(),
                        });
                    }
                    self.check_quota(tx, &fresh.owner, size.get())?;
                    // The row reserves the name and counts for the quota.
                    tx.insert_volume(&fresh)?;
                }
                Some(old) => {
                    // The new volume replaces the old: only growth counts.
                    let growth = size.get().saturating_sub(old.size_mib.get());
                    self.check_quota(tx, &fresh.owner, growth)?;
                }
            }
            tx.insert_operation(&op)
        })?;
        if replaced.is_none() {
            holds.push(self.holds.take(&fresh, "restore", false)?);
        }
        Ok(PreparedRestore {
            manifest,
            fresh,
            replaced,
            op,
            _holds: holds,
        })
    }

    /// Runs a prepared restore: makes the new blank volume, writes and
    /// verifies every block into it, then swaps it in (for an in-place
    /// restore, the old volume's catalog row is replaced in one
    /// transaction and its backend volume deleted). On any failure the new
    /// volume is removed and the old one is untouched.
    pub async fn run_restore(
        &self,
        prepared: PreparedRestore,
        engine: &BackupEngine,
        progress: &Progress,
    ) -> Result<Volume> {
        let PreparedRestore {
            manifest,
            mut fresh,
            replaced,
            op,
            _holds,
        } = prepared;
        let store = self.store(&fresh.pool)?;
        debug!(volume = %fresh.name, owner = %fresh.owner, backup = %manifest.id,
            in_place = replaced.is_some(), "restore volume");

        let written = async {
            store
                .create(&fresh.id, fresh.size_mib, Contents::Blank)
                .await
                .map_err(|e| store_err(&fresh, "create", e))?;
            let writer = store
                .open_write(&fresh.id)
                .await
                .map_err(|e| store_err(&fresh, "open for writing", e))?;
            let at = RestoreDest {
                pool: fresh.pool.to_string(),
                volume: fresh.name.to_string(),
            };
            engine
                .restore(&manifest, Arc::from(writer), &at, progress)
                .await
                .map(drop)
        }
        .await;
        if let Err(cause) = written {
            return Err(self
                .drop_fresh(&fresh, &op, replaced.is_none(), cause)
                .await);
        }

        fresh.status = VolumeStatus::Ready;
        let Some(old) = replaced else {
            self.catalog.write(|tx| {
                tx.set_volume_status(&fresh.id, VolumeStatus::Ready, None)?;
                tx.end_operation(&op.id, OperationState::Done)
            })?;
            debug!(volume = %fresh.name, backup = %manifest.id, "volume restored");
            return Ok(fresh);
        };

        // The swap: one transaction replaces the old row by the new one
        // and journals the removal of the old backend volume.
        fresh.created_at = old.created_at;
        let delete_old = Operation::start(
            &old.id,
            Step::Delete {
                owner: old.owner.clone(),
                name: old.name.clone(),
                pool: old.pool.clone(),
            },
        );
        let swapped = self.catalog.write(|tx| {
            tx.delete_volume(&old.id)?;
            tx.insert_volume(&fresh)?;
            tx.end_operation(&op.id, OperationState::Done)?;
            tx.insert_operation(&delete_old)
        });
        if let Err(cause) = swapped {
            return Err(self.drop_fresh(&fresh, &op, false, cause).await);
        }
        match self.store(&old.pool)?.delete(&old.id).await {
            Ok(()) => self
                .catalog
                .write(|tx| tx.end_operation(&delete_old.id, OperationState::Done))?,
            // The journal entry stays running: start-up removes it.
            Err(e) => warn!(volume = %old.name, volume_id = %old.id, error = %e,
                "cannot delete the volume a restore replaced; left for start-up"),
        }
        debug!(volume = %fresh.name, backup = %manifest.id, "volume restored in place");
        Ok(fresh)
    }

    /// Removes the new volume of a failed restore, and its catalog row
    /// when it has one.
    async fn drop_fresh(
        &self,
        fresh: &Volume,
        op: &Operation,
        has_row: bool,
        cause: Error,
    ) -> Error {
        let removed = match self.store(&fresh.pool) {
            Ok(store) => match store.delete(&fresh.id).await {
                Err(e) if e.kind() != crate::error::ErrorKind::NotFound => {
                    Err(store_err(fresh, "delete", e))
                }
                _ => Ok(()),
            },
            Err(e) => Err(e),
        };
        let undone = removed.and_then(|()| {
            self.undo(op, |tx| {
                if has_row {
                    tx.delete_volume(&fresh.id)?;
                }
                Ok(())
            })
        });
        match undone {
            Ok(()) => cause,
            Err(rollback) => self.rollback_failed(fresh, "restore", cause, rollback),
        }
    }
}
