//! Volumes: create, list, get, delete, resize, clone, and holds for the
//! backup engine.

use time::OffsetDateTime;
use tracing::{debug, warn};

use super::{store_err, Actor, CreateVolume, VolumeHold, VolumeService};
use crate::catalog::{Operation, OperationState, Step};
use crate::error::{Error, ErrorKind, Result};
use crate::model::{Volume, VolumeStatus};
use crate::store::Contents;
use crate::types::{SizeMib, VolumeId, VolumeName};

impl VolumeService {
    /// Creates a volume with a fresh ext4 filesystem in the requested
    /// pool (or the default pool).
    pub async fn create_volume(&self, a: &Actor, req: CreateVolume) -> Result<Volume> {
        let pool = req
            .pool
            .clone()
            .unwrap_or_else(|| self.config.default_pool.clone());
        let store = self.store(&pool)?;
        debug!(volume = %req.name, owner = %a.owner, pool = %pool, size_mib = req.size.get(),
            "create volume");
        self.check_fits_pool(&pool, store.as_ref(), req.size)
            .await?;

        let mut volume = Volume {
            id: VolumeId::generate(),
            name: req.name,
            owner: a.owner.clone(),
            pool: pool.clone(),
            size_mib: req.size,
            status: VolumeStatus::Creating,
            error: None,
            created_at: OffsetDateTime::now_utc(),
            attachments: Vec::new(),
        };
        let op = Operation::start(
            &volume.id,
            Step::Create {
                owner: volume.owner.clone(),
                name: volume.name.clone(),
                pool: pool.clone(),
                size_mib: volume.size_mib,
            },
        );
        let _hold = {
            let _policy = self.policy();
            self.catalog.write(|tx| {
                if tx.volume(&volume.owner, &volume.name)?.is_some() {
                    return Err(Error::VolumeExists {
                        volume: volume.name.to_string(),
                    });
                }
                self.check_quota(tx, &volume.owner, volume.size_mib.get())?;
                tx.insert_volume(&volume)?;
                tx.insert_operation(&op)
            })?;
            self.holds.take(&volume, "create", false)?
        };

        if let Err(source) = store
            .create(&volume.id, volume.size_mib, Contents::Ext4)
            .await
        {
            // A failed create leaves nothing in the backend (the trait's
            // contract); only the catalog row is left to undo.
            let cause = store_err(&volume, "create", source);
            return Err(
                match self.undo(&op, |tx| tx.delete_volume(&volume.id).map(drop)) {
                    Ok(()) => cause,
                    Err(rollback) => self.rollback_failed(&volume, "create", cause, rollback),
                },
            );
        }

        volume.status = VolumeStatus::Ready;
        self.finish_new_volume(&volume, &op, "create").await?;
        debug!(volume = %volume.name, owner = %volume.owner, pool = %pool, "volume created");
        Ok(volume)
    }

    /// Marks a volume the backend has just made ready; if the catalog
    /// cannot record it, the backend volume is removed again.
    async fn finish_new_volume(
        &self,
        volume: &Volume,
        op: &Operation,
        operation: &'static str,
    ) -> Result<()> {
        let Err(cause) = self.catalog.write(|tx| {
            tx.set_volume_status(&volume.id, VolumeStatus::Ready, None)?;
            tx.end_operation(&op.id, OperationState::Done)
        }) else {
            return Ok(());
        };
        let store = self.store(&volume.pool)?;
        if let Err(source) = store.delete(&volume.id).await {
            let rollback = store_err(volume, "delete", source);
            return Err(self.rollback_failed(volume, operation, cause, rollback));
        }
        Err(
            match self.undo(op, |tx| tx.delete_volume(&volume.id).map(drop)) {
                Ok(()) => cause,
                Err(rollback) => self.rollback_failed(volume, operation, cause, rollback),
            },
        )
    }

    /// The actor's volumes, by name; every owner's (by owner, then name)
    /// for an admin asking for `all_owners`.
    pub async fn list_volumes(&self, a: &Actor, all_owners: bool) -> Result<Vec<Volume>> {
        let owner = (!(all_owners && a.admin)).then_some(&a.owner);
        self.catalog.read(|tx| tx.volumes(owner))
    }

    /// One of the actor's volumes.
    pub async fn get_volume(&self, a: &Actor, name: &VolumeName) -> Result<Volume> {
        self.catalog.read(|tx| self.find_volume(tx, a, name))
    }

    /// Holds the actor's volume `name` for `operation`, checking in
    /// order: it exists, is not held, is not attached (unless
    /// `allow_attached`) and is in one of `statuses`. Called under the
    /// policy lock, so that nothing attaches it between the check and
    /// the caller's catalog write.
    fn hold_for(
        &self,
        a: &Actor,
        name: &VolumeName,
        operation: &'static str,
        allow_attached: bool,
        statuses: &[VolumeStatus],
    ) -> Result<(Volume, VolumeHold)> {
        let volume = self.catalog.read(|tx| self.find_volume(tx, a, name))?;
        let hold = self.holds.take(&volume, operation, allow_attached)?;
        if !allow_attached && !volume.attachments.is_empty() {
            return Err(Error::Attached {
                volume: volume.name.to_string(),
                sandboxes: volume
                    .attachments
                    .iter()
                    .map(|at| at.sandbox.to_string())
                    .collect(),
            });
        }
        if !statuses.contains(&volume.status) {
            return Err(Error::NotReady {
                volume: volume.name.to_string(),
                status: volume.status.to_string(),
                operation: operation.to_string(),
            });
        }
        Ok((volume, hold))
    }

    /// Deletes a detached volume (also one in status `error`).
    pub async fn delete_volume(&self, a: &Actor, name: &VolumeName) -> Result<()> {
        debug!(volume = %name, owner = %a.owner, "delete volume");
        let (volume, op, _hold) = {
            let _policy = self.policy();
            let (volume, hold) = self.hold_for(
                a,
                name,
                "delete",
                false,
                &[VolumeStatus::Ready, VolumeStatus::Error],
            )?;
            let op = Operation::start(
                &volume.id,
                Step::Delete {
                    owner: volume.owner.clone(),
                    name: volume.name.clone(),
                    pool: volume.pool.clone(),
                },
            );
            self.catalog.write(|tx| {
                tx.insert_operation(&op)?;
                tx.set_volume_status(&volume.id, VolumeStatus::Deleting, None)
            })?;
            (volume, op, hold)
        };

        let store = match self.store(&volume.pool) {
            Ok(store) => store,
            Err(cause) => return Err(self.undo_status(&volume, &op, "delete", cause)),
        };
        match store.delete(&volume.id).await {
            // Already gone (a volume found missing at start-up): nothing
            // left to remove in the backend.
            Err(source) if source.kind() == ErrorKind::NotFound => {}
            Err(source) => {
                let cause = store_err(&volume, "delete", source);
                return Err(self.undo_status(&volume, &op, "delete", cause));
            }
            Ok(()) => {}
        }

        // The backend volume is gone; if this write fails, the journal
        // entry stays running and start-up finishes the delete.
        self.catalog.write(|tx| {
            tx.delete_volume(&volume.id)?;
            tx.end_operation(&op.id, OperationState::Done)
        })?;
        debug!(volume = %volume.name, owner = %volume.owner, pool = %volume.pool, "volume deleted");
        Ok(())
    }

    /// Puts a volume's status and size back as they were before `op`.
    fn undo_status(
        &self,
        volume: &Volume,
        op: &Operation,
        operation: &'static str,
        cause: Error,
    ) -> Error {
        let undone = self.undo(op, |tx| {
            tx.set_volume_size(&volume.id, volume.size_mib)?;
            tx.set_volume_status(&volume.id, volume.status, volume.error.as_deref())
        });
        match undone {
            Ok(()) => cause,
            Err(rollback) => self.rollback_failed(volume, operation, cause, rollback),
        }
    }

    /// Grows a detached volume to `size` (volumes only grow).
    pub async fn resize_volume(
        &self,
        a: &Actor,
        name: &VolumeName,
        size: SizeMib,
    ) -> Result<Volume> {
        debug!(volume = %name, owner = %a.owner, size_mib = size.get(), "resize volume");
        let pool = self.catalog.read(|tx| self.find_volume(tx, a, name))?.pool;
        let store = self.store(&pool)?;
        self.check_fits_pool(&pool, store.as_ref(), size).await?;

        let (mut volume, op, _hold) = {
            let _policy = self.policy();
            let (volume, hold) = self.hold_for(a, name, "resize", false, &[VolumeStatus::Ready])?;
            if size <= volume.size_mib {
                return Err(Error::invalid(
                    "size_mib",
                    format!(
                        "volumes only grow: {size} is not larger than the current {}",
                        volume.size_mib
                    ),
                ));
            }
            let op = Operation::start(
                &volume.id,
                Step::Resize {
                    owner: volume.owner.clone(),
                    name: volume.name.clone(),
                    pool: volume.pool.clone(),
                    old_size_mib: volume.size_mib,
                    new_size_mib: size,
                },
            );
            self.catalog.write(|tx| {
                self.check_quota(tx, &volume.owner, size.get() - volume.size_mib.get())?;
                tx.insert_operation(&op)?;
                // The new size counts against the quota from now on, so
                // a concurrent create cannot take the room meanwhile.
                tx.set_volume_size(&volume.id, size)?;
                tx.set_volume_status(&volume.id, VolumeStatus::Resizing, None)
            })?;
            (volume, op, hold)
        };

        if let Err(source) = store.grow(&volume.id, size).await {
            let cause = store_err(&volume, "grow", source);
            if self.backend_size(store.as_ref(), &volume.id).await == Some(size.bytes()) {
                // The contract lets a failed grow leave the new size: then
                // the catalog records what the backend has.
                warn!(volume = %volume.name, pool = %volume.pool, error = %cause.chain(),
                    "grow failed after the volume reached its new size; keeping it");
                let mut grown = volume.clone();
                grown.size_mib = size;
                return Err(self.undo_status(&grown, &op, "resize", cause));
            }
            return Err(self.undo_status(&volume, &op, "resize", cause));
        }

        // The backend has the new size; if this write fails, start-up
        // finds the journal entry and finishes it.
        self.catalog.write(|tx| {
            tx.set_volume_status(&volume.id, VolumeStatus::Ready, None)?;
            tx.end_operation(&op.id, OperationState::Done)
        })?;
        volume.size_mib = size;
        debug!(volume = %volume.name, owner = %volume.owner, pool = %volume.pool,
            size_mib = size.get(), "volume resized");
        Ok(volume)
    }

    /// The size in bytes the backend reports for `id`, if it can tell.
    pub(super) async fn backend_size(
        &self,
        store: &dyn crate::store::VolumeStore,
        id: &VolumeId,
    ) -> Option<u64> {
        store
            .list()
            .await
            .ok()?
            .into_iter()
            .find(|v| &v.id == id)
            .map(|v| v.size_bytes)
    }

    /// Copies a detached volume into a new volume `dst` of the same owner
    /// and pool.
    pub async fn clone_volume(
        &self,
        a: &Actor,
        src: &VolumeName,
        dst: VolumeName,
    ) -> Result<Volume> {
        debug!(volume = %src, owner = %a.owner, clone = %dst, "clone volume");
        let (source, mut copy, op, _holds) = {
            let _policy = self.policy();
            let (source, src_hold) =
                self.hold_for(a, src, "clone", false, &[VolumeStatus::Ready])?;
            let copy = Volume {
                id: VolumeId::generate(),
                name: dst,
                owner: source.owner.clone(),
                pool: source.pool.clone(),
                size_mib: source.size_mib,
                status: VolumeStatus::Cloning,
                error: None,
                created_at: OffsetDateTime::now_utc(),
                attachments: Vec::new(),
            };
            let op = Operation::start(
                &copy.id,
                Step::Clone {
                    owner: copy.owner.clone(),
                    name: copy.name.clone(),
                    pool: copy.pool.clone(),
                    source: source.id.clone(),
                },
            );
            self.catalog.write(|tx| {
                if tx.volume(&copy.owner, &copy.name)?.is_some() {
                    return Err(Error::VolumeExists {
                        volume: copy.name.to_string(),
                    });
                }
                self.check_quota(tx, &copy.owner, copy.size_mib.get())?;
                tx.insert_volume(&copy)?;
                tx.insert_operation(&op)
            })?;
            let dst_hold = self.holds.take(&copy, "clone", false)?;
            (source, copy, op, (src_hold, dst_hold))
        };

        let store = self.store(&copy.pool)?;
        if let Err(source_err) = store.clone_volume(&source.id, &copy.id).await {
            let cause = Error::Store {
                pool: copy.pool.to_string(),
                operation: "clone",
                volume: source.name.to_string(),
                source: source_err,
            };
            return Err(
                match self.undo(&op, |tx| tx.delete_volume(&copy.id).map(drop)) {
                    Ok(()) => cause,
                    Err(rollback) => self.rollback_failed(&copy, "clone", cause, rollback),
                },
            );
        }

        copy.status = VolumeStatus::Ready;
        self.finish_new_volume(&copy, &op, "clone").await?;
        debug!(volume = %source.name, owner = %copy.owner, pool = %copy.pool, clone = %copy.name,
            "volume cloned");
        Ok(copy)
    }

    /// Holds the volume for `operation` ([`Error::Busy`] if held), allowed
    /// while attached; the hold is released when the guard drops.
    ///
    /// The volume must be ready. Sandboxes may attach it meanwhile; every
    /// other operation on it gets [`Error::Busy`].
    pub async fn hold_volume(
        &self,
        a: &Actor,
        name: &VolumeName,
        operation: &'static str,
    ) -> Result<(Volume, VolumeHold)> {
        let _policy = self.policy();
        self.hold_for(a, name, operation, true, &[VolumeStatus::Ready])
    }
}
