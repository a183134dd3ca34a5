//! The volume service: the rules of volumes, sandboxes and attachments.
//!
//! Every request the daemon serves goes through [`VolumeService`], which
//! checks owners, quotas, attachment rules and holds, journals each
//! multi-step operation in the catalog, drives the pool's
//! [`VolumeStore`], and undoes earlier steps when a later one fails.
//!
//! # How a request is decided
//!
//! Each operation first decides, under one short policy lock and without
//! awaiting anything: it reads the catalog, checks the rules, writes its
//! intent (a status, a journal entry, attachments) and takes its holds.
//! Only then does it call the backend, outside the lock; a hold keeps
//! every conflicting operation out meanwhile. Checks that need the
//! backend (the pool's size) run before the decision.
//!
//! The order of the checks is part of the contract (the model test relies
//! on it): not found, then busy, then attached, then not ready, then the
//! operation's own rules (sizes, names), then the quota.
//!
//! # Limitations
//!
//! - Holds live in this process's memory: one daemon per data directory.
//!   A second daemon on the same catalog would not see the first one's
//!   holds.
//! - While a volume is resizing, its new size already counts against the
//!   quota (and shows in its `size_mib`), so a concurrent create cannot
//!   take the room; a failed grow puts the old size back.
//! - Catalog calls are synchronous and run on the async thread that makes
//!   them; each is one short transaction.
//!
//! # Example
//!
//! ```no_run
//! # async fn demo(config: &kiln_core::config::Config,
//! #     pools: std::collections::BTreeMap<kiln_core::PoolName,
//! #         std::sync::Arc<dyn kiln_core::VolumeStore>>) -> kiln_core::Result<()> {
//! use kiln_core::service::{Actor, CreateVolume, VolumeService};
//! use kiln_core::{Owner, SizeMib, VolumeName};
//!
//! let service = VolumeService::open(config, pools).await?;
//! let me = Actor { owner: Owner::new("team-a")?, admin: false };
//! let req = CreateVolume { name: VolumeName::new("data")?, size: SizeMib::new(1024)?, pool: None };
//! let volume = service.create_volume(&me, req).await?;
//! assert_eq!(volume.size_mib.get(), 1024);
//! # Ok(()) }
//! ```

mod backup;
mod holds;
mod pools;
mod recovery;
mod sandboxes;
mod volumes;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

use serde::Serialize;
use tracing::error;

use crate::catalog::{Catalog, Operation, OperationState, Tx};
use crate::config::Config;
use crate::error::{BackendError, Error, Result};
use crate::model::{Volume, VolumeStatus};
use crate::store::{Capabilities, PluginInfo, PoolCapacity, VolumeStore};
use crate::types::{Owner, PoolName, SandboxName, SizeMib, VolumeId, VolumeName};

pub use backup::{PreparedBackup, PreparedRestore};
pub use holds::VolumeHold;
use holds::{Holds, KeyedLocks};

/// The principal a request acts as.
///
/// `owner` is the namespace addressed: for an admin acting on
/// `?owner=X`, the server sets `owner = X`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor {
    /// The owner whose volumes and sandboxes the request addresses.
    pub owner: Owner,
    /// Whether the principal is an admin.
    pub admin: bool,
}

/// A request to create a volume.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreateVolume {
    /// The new volume's name.
    pub name: VolumeName,
    /// Its provisioned size.
    pub size: SizeMib,
    /// The pool, or the default pool.
    pub pool: Option<PoolName>,
}

/// A pool as `GET /v1/pools` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct PoolView {
    /// The pool's name.
    pub name: PoolName,
    /// The driver.
    pub driver: String,
    /// For plugins, the plugin's name and version.
    pub plugin: Option<PluginInfo>,
    /// What the driver can do.
    pub capabilities: Capabilities,
    /// Space in the pool, if the backend could tell.
    pub capacity: Option<PoolCapacity>,
    /// Why `capacity` is missing, if it is.
    pub capacity_error: Option<String>,
    /// The sum of the provisioned sizes of the pool's volumes.
    pub provisioned_mib: u64,
    /// How many catalog volumes live in the pool.
    pub volumes: usize,
    /// Backend volumes without a catalog entry (never deleted by kiln).
    pub unmanaged: Vec<VolumeId>,
}

/// What recovery did when the service opened.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RecoveryReport {
    /// Interrupted operations that were finished.
    pub finished: Vec<String>,
    /// Interrupted operations that were undone.
    pub undone: Vec<String>,
    /// Backend volumes without a catalog entry.
    pub unmanaged: Vec<(PoolName, VolumeId)>,
    /// Catalog volumes whose backend volume is gone (now status `error`).
    pub missing: Vec<(Owner, VolumeName)>,
}

/// The volume service; see the module docs.
pub struct VolumeService {
    config: Config,
    pools: BTreeMap<PoolName, Arc<dyn VolumeStore>>,
    catalog: Catalog,
    /// Serialises the decision steps (check, then write intent).
    policy: Mutex<()>,
    holds: Arc<Holds>,
    sandbox_locks: KeyedLocks<(Owner, SandboxName)>,
    report: RecoveryReport,
}

/// The file name of the catalog inside the data directory.
pub const CATALOG_FILE: &str = "catalog.db";

impl VolumeService {
    /// Opens the catalog at `config.data_dir/catalog.db`, then recovers:
    /// interrupted operations are finished or undone and every pool is
    /// reconciled with the catalog (see [`RecoveryReport`]).
    pub async fn open(
        config: &Config,
        pools: BTreeMap<PoolName, Arc<dyn VolumeStore>>,
    ) -> Result<Arc<Self>> {
        std::fs::create_dir_all(&config.data_dir).map_err(|source| Error::Io {
            operation: "create data directory",
            path: config.data_dir.display().to_string(),
            source,
        })?;
        let catalog = Catalog::open(&config.data_dir.join(CATALOG_FILE))?;
        Self::with_catalog(config, pools, catalog).await
    }

    /// Like [`VolumeService::open`], over an already opened catalog.
    pub async fn with_catalog(
        config: &Config,
        pools: BTreeMap<PoolName, Arc<dyn VolumeStore>>,
        catalog: Catalog,
    ) -> Result<Arc<Self>> {
        let mut service = Self {
            config: config.clone(),
            pools,
            catalog,
            policy: Mutex::new(()),
            holds: Arc::default(),
            sandbox_locks: KeyedLocks::default(),
            report: RecoveryReport::default(),
        };
        service.report = service.recover().await?;
        Ok(Arc::new(service))
    }

    /// What recovery did at open.
    pub fn recovery_report(&self) -> RecoveryReport {
        self.report.clone()
    }

    /// The catalog (for the backup engine and for tests).
    pub fn catalog(&self) -> &Catalog {
        &self.catalog
    }

    /// The backend of `pool`.
    pub fn store(&self, pool: &PoolName) -> Result<Arc<dyn VolumeStore>> {
        self.pools
            .get(pool)
            .cloned()
            .ok_or_else(|| Error::PoolNotFound {
                pool: pool.to_string(),
            })
    }

    /// The daemon's configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Takes the policy lock. Never held across an await: the guard is
    /// not `Send`, so the compiler refuses that in the daemon's futures.
    fn policy(&self) -> MutexGuard<'_, ()> {
        // The lock guards no data of its own; the catalog rolls back a
        // write interrupted by a panic.
        self.policy.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The volume `name` of the actor's owner, or `VolumeNotFound`.
    fn find_volume(&self, tx: &Tx<'_>, a: &Actor, name: &VolumeName) -> Result<Volume> {
        tx.volume(&a.owner, name)?
            .ok_or_else(|| Error::VolumeNotFound {
                volume: name.to_string(),
            })
    }

    /// Checks that `size` more MiB fit `owner`'s quota.
    fn check_quota(&self, tx: &Tx<'_>, owner: &Owner, added: u64) -> Result<()> {
        let used = tx.provisioned_mib(owner)?;
        let limit = self.config.quotas.limit_mib(owner);
        if used.saturating_add(added) > limit {
            return Err(Error::QuotaExceeded {
                owner: owner.to_string(),
                requested_mib: added,
                used_mib: used,
                limit_mib: limit,
            });
        }
        Ok(())
    }

    /// Marks a volume `error` after an undo failed, and builds the error
    /// that says both what failed and why the undo did.
    fn rollback_failed(
        &self,
        volume: &Volume,
        operation: &'static str,
        cause: Error,
        rollback: Error,
    ) -> Error {
        let reason = format!(
            "{operation} failed ({}) and its rollback failed too ({})",
            cause.chain(),
            rollback.chain()
        );
        error!(
            volume = %volume.name, owner = %volume.owner, pool = %volume.pool,
            reason = %reason, "rollback failed; volume marked error"
        );
        if let Err(e) = self
            .catalog
            .write(|tx| tx.set_volume_status(&volume.id, VolumeStatus::Error, Some(&reason)))
        {
            error!(volume = %volume.name, error = %e.chain(), "cannot mark volume error");
        }
        Error::RollbackFailed {
            operation: operation.to_string(),
            cause: Box::new(cause),
            rollback: Box::new(rollback),
        }
    }

    /// Ends a journal entry after its undo, in the same write as `undo`.
    fn undo(&self, op: &Operation, undo: impl FnOnce(&Tx<'_>) -> Result<()>) -> Result<()> {
        self.catalog.write(|tx| {
            undo(tx)?;
            tx.end_operation(&op.id, OperationState::Undone)
        })
    }
}

/// A backend failure on a volume, with the pool and volume named.
fn store_err(volume: &Volume, operation: &'static str, source: BackendError) -> Error {
    Error::Store {
        pool: volume.pool.to_string(),
        operation,
        volume: volume.name.to_string(),
        source,
    }
}
