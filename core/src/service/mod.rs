//! The volume service: the rules of volumes, sandboxes and attachments.
//!
//! Every request the daemon serves goes through [`VolumeService`], which
//! checks owners, quotas, attachment rules and holds, journals each
//! multi-step operation in the catalog, drives the pool's
//! [`VolumeStore`], and undoes earlier steps when a later one fails.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::Serialize;

use crate::config::Config;
use crate::error::{Error, Result};
use crate::model::{Sandbox, Volume, VolumeRequest};
use crate::store::{Capabilities, PluginInfo, PoolCapacity, VolumeStore};
use crate::types::{Owner, PoolName, SandboxName, SizeMib, VolumeId, VolumeName};

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
}

/// Holds a volume for one operation; the hold is released on drop.
pub struct VolumeHold {
    _private: (),
}

fn unimplemented() -> Error {
    Error::Internal("unimplemented".to_string())
}

impl VolumeService {
    /// Opens the catalog at `config.data_dir/catalog.db`, then recovers.
    pub async fn open(
        config: &Config,
        pools: BTreeMap<PoolName, Arc<dyn VolumeStore>>,
    ) -> Result<Arc<Self>> {
        Ok(Arc::new(Self {
            config: config.clone(),
            pools,
        }))
    }

    /// What recovery did at open.
    pub fn recovery_report(&self) -> RecoveryReport {
        RecoveryReport::default()
    }

    /// Creates a volume.
    pub async fn create_volume(&self, a: &Actor, req: CreateVolume) -> Result<Volume> {
        let _ = (a, req);
        Err(unimplemented())
    }

    /// Lists the actor's volumes (every owner's for an admin asking for
    /// `all_owners`).
    pub async fn list_volumes(&self, a: &Actor, all_owners: bool) -> Result<Vec<Volume>> {
        let _ = (a, all_owners);
        Err(unimplemented())
    }

    /// One of the actor's volumes.
    pub async fn get_volume(&self, a: &Actor, name: &VolumeName) -> Result<Volume> {
        let _ = (a, name);
        Err(unimplemented())
    }

    /// Deletes a detached volume.
    pub async fn delete_volume(&self, a: &Actor, name: &VolumeName) -> Result<()> {
        let _ = (a, name);
        Err(unimplemented())
    }

    /// Grows a detached volume.
    pub async fn resize_volume(
        &self,
        a: &Actor,
        name: &VolumeName,
        size: SizeMib,
    ) -> Result<Volume> {
        let _ = (a, name, size);
        Err(unimplemented())
    }

    /// Clones a detached volume into a new one of the same owner and pool.
    pub async fn clone_volume(
        &self,
        a: &Actor,
        src: &VolumeName,
        dst: VolumeName,
    ) -> Result<Volume> {
        let _ = (a, src, dst);
        Err(unimplemented())
    }

    /// Creates a running sandbox with its volumes attached (all or none).
    pub async fn create_sandbox(
        &self,
        a: &Actor,
        name: SandboxName,
        volumes: Vec<VolumeRequest>,
    ) -> Result<Sandbox> {
        let _ = (a, name, volumes);
        Err(unimplemented())
    }

    /// Lists the actor's sandboxes.
    pub async fn list_sandboxes(&self, a: &Actor, all_owners: bool) -> Result<Vec<Sandbox>> {
        let _ = (a, all_owners);
        Err(unimplemented())
    }

    /// One of the actor's sandboxes.
    pub async fn get_sandbox(&self, a: &Actor, name: &SandboxName) -> Result<Sandbox> {
        let _ = (a, name);
        Err(unimplemented())
    }

    /// Detaches a sandbox's volumes, keeping its list.
    pub async fn stop_sandbox(&self, a: &Actor, name: &SandboxName) -> Result<Sandbox> {
        let _ = (a, name);
        Err(unimplemented())
    }

    /// Attaches a stopped sandbox's volumes again.
    pub async fn start_sandbox(&self, a: &Actor, name: &SandboxName) -> Result<Sandbox> {
        let _ = (a, name);
        Err(unimplemented())
    }

    /// Detaches a sandbox's volumes and forgets it.
    pub async fn destroy_sandbox(&self, a: &Actor, name: &SandboxName) -> Result<()> {
        let _ = (a, name);
        Err(unimplemented())
    }

    /// Every configured pool with its capacity and use.
    pub async fn list_pools(&self) -> Result<Vec<PoolView>> {
        Err(unimplemented())
    }

    /// Holds the volume for `operation` (`Error::Busy` if held), allowed
    /// while attached; the hold is released when the guard drops.
    pub async fn hold_volume(
        &self,
        a: &Actor,
        name: &VolumeName,
        operation: &'static str,
    ) -> Result<(Volume, VolumeHold)> {
        let _ = (a, name, operation);
        Err(unimplemented())
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
}
