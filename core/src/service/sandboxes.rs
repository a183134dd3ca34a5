//! Sandboxes: create, list, get, stop, start, destroy, and the
//! attachment rules they enforce.

use std::collections::BTreeSet;

use time::OffsetDateTime;
use tracing::{debug, error};

use super::{store_err, Actor, VolumeHold, VolumeService};
use crate::catalog::{SandboxRow, Tx};
use crate::error::{Error, Result};
use crate::model::{Sandbox, SandboxState, Volume, VolumeRequest, VolumeStatus};
use crate::types::SandboxName;

/// One volume a sandbox is about to attach.
struct Planned {
    volume: Volume,
    request: VolumeRequest,
    /// A read-only attach of a volume nobody uses: its filesystem is
    /// checked (and repaired) first, under this hold.
    check: Option<VolumeHold>,
}

/// Refuses a volume list naming one volume twice or two volumes at one
/// mount.
fn check_list(volumes: &[VolumeRequest]) -> Result<()> {
    let mut names = BTreeSet::new();
    let mut mounts = BTreeSet::new();
    for v in volumes {
        if !names.insert(&v.volume) {
            return Err(Error::invalid(
                "volumes",
                format!("volume {:?} is named twice", v.volume.as_str()),
            ));
        }
        if !mounts.insert(&v.mount) {
            return Err(Error::invalid(
                "volumes",
                format!("two volumes are mounted at {:?}", v.mount.as_str()),
            ));
        }
    }
    Ok(())
}

/// The error of a sandbox operation whose backend step failed, given how
/// undoing its catalog writes went.
fn undo_sandbox(operation: &str, cause: Error, undone: Result<()>) -> Error {
    match undone {
        Ok(()) => cause,
        Err(rollback) => {
            error!(operation, cause = %cause.chain(), rollback = %rollback.chain(),
                "cannot undo the attachments of a failed sandbox operation");
            Error::RollbackFailed {
                operation: operation.to_string(),
                cause: Box::new(cause),
                rollback: Box::new(rollback),
            }
        }
    }
}

impl VolumeService {
    /// Creates a running sandbox with its volumes attached: all of them,
    /// or none and an error naming the volume at fault.
    pub async fn create_sandbox(
        &self,
        a: &Actor,
        name: SandboxName,
        volumes: Vec<VolumeRequest>,
    ) -> Result<Sandbox> {
        debug!(sandbox = %name, owner = %a.owner, volumes = volumes.len(), "create sandbox");
        check_list(&volumes)?;
        let _order = self
            .sandbox_locks
            .lock((a.owner.clone(), name.clone()))
            .await;

        let (row_id, planned) = {
            let _policy = self.policy();
            let mut planned = Vec::new();
            let row_id = self.catalog.write(|tx| {
                if tx.sandbox(&a.owner, &name)?.is_some() {
                    return Err(Error::SandboxExists {
                        sandbox: name.to_string(),
                    });
                }
                planned = self.plan_attach(tx, a, &volumes)?;
                let id = tx.insert_sandbox(
                    &a.owner,
                    &name,
                    SandboxState::Running,
                    OffsetDateTime::now_utc(),
                    &volumes,
                )?;
                for p in &planned {
                    tx.attach(id, &p.volume.id, &p.request.mount, p.request.read_only)?;
                }
                Ok(id)
            })?;
            (row_id, planned)
        };

        if let Err(cause) = self.prepare_devices(row_id, planned).await {
            let _policy = self.policy();
            return Err(undo_sandbox(
                "create sandbox",
                cause,
                self.catalog.write(|tx| tx.delete_sandbox(row_id)),
            ));
        }
        let sandbox = self.find_sandbox(a, &name)?;
        debug!(sandbox = %name, owner = %a.owner, "sandbox created");
        Ok(sandbox)
    }

    /// Checks the attachment rules for `requests` (in order, failing on
    /// the first volume at fault) and takes the filesystem-check holds.
    fn plan_attach(
        &self,
        tx: &Tx<'_>,
        a: &Actor,
        requests: &[VolumeRequest],
    ) -> Result<Vec<Planned>> {
        let mut planned = Vec::with_capacity(requests.len());
        for request in requests {
            let volume = self.find_volume(tx, a, &request.volume)?;
            if let Some(h) = self.holds.holder(&volume.id) {
                if !h.allows_attach {
                    return Err(Error::Busy {
                        volume: volume.name.to_string(),
                        operation: h.operation.to_string(),
                    });
                }
            }
            let conflicting: Vec<String> = volume
                .attachments
                .iter()
                .filter(|at| !request.read_only || !at.read_only)
                .map(|at| at.sandbox.to_string())
                .collect();
            if !conflicting.is_empty() {
                return Err(Error::Attached {
                    volume: volume.name.to_string(),
                    sandboxes: conflicting,
                });
            }
            if volume.status != VolumeStatus::Ready {
                return Err(Error::NotReady {
                    volume: volume.name.to_string(),
                    status: volume.status.to_string(),
                    operation: "attach".to_string(),
                });
            }
            let check = if request.read_only && volume.attachments.is_empty() {
                Some(self.holds.take(&volume, "filesystem check", false)?)
            } else {
                None
            };
            planned.push(Planned {
                volume,
                request: request.clone(),
                check,
            });
        }
        Ok(planned)
    }

    /// Checks the filesystems that need it and records each attachment's
    /// device path.
    async fn prepare_devices(&self, row_id: i64, planned: Vec<Planned>) -> Result<()> {
        for p in planned {
            let store = self.store(&p.volume.pool)?;
            if let Some(_hold) = p.check {
                let result = store
                    .check_filesystem(&p.volume.id)
                    .await
                    .map_err(|e| store_err(&p.volume, "check filesystem", e))?;
                debug!(volume = %p.volume.name, owner = %p.volume.owner, pool = %p.volume.pool,
                    result = ?result, "filesystem checked before read-only attach");
            }
            let device = store
                .device_path(&p.volume.id)
                .await
                .map_err(|e| store_err(&p.volume, "device path", e))?;
            let device = device.to_string_lossy();
            self.catalog
                .write(|tx| tx.set_attachment_device(row_id, &p.volume.id, &device))?;
        }
        Ok(())
    }

    fn find_row(&self, tx: &Tx<'_>, a: &Actor, name: &SandboxName) -> Result<SandboxRow> {
        tx.sandbox(&a.owner, name)?
            .ok_or_else(|| Error::SandboxNotFound {
                sandbox: name.to_string(),
            })
    }

    fn find_sandbox(&self, a: &Actor, name: &SandboxName) -> Result<Sandbox> {
        self.catalog
            .read(|tx| self.find_row(tx, a, name))
            .map(|r| r.sandbox)
    }

    /// The actor's sandboxes; every owner's for an admin asking for
    /// `all_owners`.
    pub async fn list_sandboxes(&self, a: &Actor, all_owners: bool) -> Result<Vec<Sandbox>> {
        let owner = (!(all_owners && a.admin)).then_some(&a.owner);
        self.catalog.read(|tx| tx.sandboxes(owner))
    }

    /// One of the actor's sandboxes.
    pub async fn get_sandbox(&self, a: &Actor, name: &SandboxName) -> Result<Sandbox> {
        self.find_sandbox(a, name)
    }

    /// Detaches a sandbox's volumes, keeping its list (a stopped sandbox
    /// stays stopped).
    pub async fn stop_sandbox(&self, a: &Actor, name: &SandboxName) -> Result<Sandbox> {
        debug!(sandbox = %name, owner = %a.owner, "stop sandbox");
        let _order = self
            .sandbox_locks
            .lock((a.owner.clone(), name.clone()))
            .await;
        {
            let _policy = self.policy();
            self.catalog.write(|tx| {
                let row = self.find_row(tx, a, name)?;
                tx.detach_all(row.id)?;
                tx.set_sandbox_state(row.id, SandboxState::Stopped)
            })?;
        }
        self.find_sandbox(a, name)
    }

    /// Attaches a stopped sandbox's volumes again, by the same rules as
    /// create (a running sandbox is returned as it is).
    ///
    /// A volume of its list that was deleted meanwhile fails the start
    /// with [`Error::VolumeNotFound`] naming it.
    pub async fn start_sandbox(&self, a: &Actor, name: &SandboxName) -> Result<Sandbox> {
        debug!(sandbox = %name, owner = %a.owner, "start sandbox");
        let _order = self
            .sandbox_locks
            .lock((a.owner.clone(), name.clone()))
            .await;

        let (row_id, planned) = {
            let _policy = self.policy();
            let mut planned = Vec::new();
            let row_id = self.catalog.write(|tx| {
                let row = self.find_row(tx, a, name)?;
                if row.sandbox.state == SandboxState::Running {
                    return Ok(None);
                }
                let requests: Vec<VolumeRequest> = row
                    .sandbox
                    .volumes
                    .iter()
                    .map(|v| VolumeRequest {
                        volume: v.volume.clone(),
                        mount: v.mount.clone(),
                        read_only: v.read_only,
                    })
                    .collect();
                planned = self.plan_attach(tx, a, &requests)?;
                for p in &planned {
                    tx.attach(row.id, &p.volume.id, &p.request.mount, p.request.read_only)?;
                }
                tx.set_sandbox_state(row.id, SandboxState::Running)?;
                Ok(Some(row.id))
            })?;
            (row_id, planned)
        };

        if let Some(row_id) = row_id {
            if let Err(cause) = self.prepare_devices(row_id, planned).await {
                let _policy = self.policy();
                let undone = self.catalog.write(|tx| {
                    tx.detach_all(row_id)?;
                    tx.set_sandbox_state(row_id, SandboxState::Stopped)
                });
                return Err(undo_sandbox("start sandbox", cause, undone));
            }
        }
        debug!(sandbox = %name, owner = %a.owner, "sandbox started");
        self.find_sandbox(a, name)
    }

    /// Detaches a sandbox's volumes and forgets it.
    pub async fn destroy_sandbox(&self, a: &Actor, name: &SandboxName) -> Result<()> {
        debug!(sandbox = %name, owner = %a.owner, "destroy sandbox");
        let _order = self
            .sandbox_locks
            .lock((a.owner.clone(), name.clone()))
            .await;
        let _policy = self.policy();
        self.catalog.write(|tx| {
            let row = self.find_row(tx, a, name)?;
            tx.delete_sandbox(row.id)
        })
    }
}
