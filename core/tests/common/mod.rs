//! A volume service over an in-memory store, in a temporary data
//! directory of its own.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::sync::Arc;

use kiln_core::config::Config;
use kiln_core::memory::MemoryStore;
use kiln_core::model::{Sandbox, Volume, VolumeRequest};
use kiln_core::service::{Actor, CreateVolume, VolumeService};
use kiln_core::{MountPath, Owner, PoolName, SandboxName, SizeMib, VolumeName, VolumeStore};

/// The service under test with its store and data directory.
pub struct Harness {
    pub dir: tempfile::TempDir,
    pub config: Config,
    pub store: MemoryStore,
    pub service: Arc<VolumeService>,
}

/// Sizes of the default harness.
pub const POOL_MIB: u64 = 100_000;
pub const QUOTA_MIB: u64 = 10_000;

impl Harness {
    /// A service with one pool `default` of `POOL_MIB` and a quota of
    /// `QUOTA_MIB` per owner.
    pub async fn new() -> Self {
        Self::with(POOL_MIB, QUOTA_MIB).await
    }

    pub async fn with(pool_mib: u64, quota_mib: u64) -> Self {
        let dir = tempfile::Builder::new()
            .prefix("kiln-service-test-")
            .tempdir()
            .expect("temp dir");
        let mut config = Config::embedded(dir.path());
        config.quotas.default_mib = quota_mib;
        let store = MemoryStore::new(SizeMib::new(pool_mib).expect("pool size"));
        let service = open(&config, &store).await;
        Self {
            dir,
            config,
            store,
            service,
        }
    }

    /// Drops the service and opens it again over the same catalog and
    /// store (what a restart does).
    pub async fn reopen(&mut self) {
        self.service = open(&self.config, &self.store).await;
    }

    pub async fn create(&self, a: &Actor, name: &str, mib: u64) -> kiln_core::Result<Volume> {
        self.service
            .create_volume(
                a,
                CreateVolume {
                    name: vname(name),
                    size: SizeMib::new(mib).expect("size"),
                    pool: None,
                },
            )
            .await
    }

    pub async fn sandbox(
        &self,
        a: &Actor,
        name: &str,
        volumes: &[(&str, &str, bool)],
    ) -> kiln_core::Result<Sandbox> {
        let reqs = volumes.iter().map(|&(v, m, ro)| req(v, m, ro)).collect();
        self.service.create_sandbox(a, sname(name), reqs).await
    }
}

async fn open(config: &Config, store: &MemoryStore) -> Arc<VolumeService> {
    let mut pools: BTreeMap<PoolName, Arc<dyn VolumeStore>> = BTreeMap::new();
    pools.insert(config.default_pool.clone(), Arc::new(store.clone()));
    VolumeService::open(config, pools)
        .await
        .expect("service opens")
}

pub fn actor(owner: &str) -> Actor {
    Actor {
        owner: Owner::new(owner).expect("owner"),
        admin: false,
    }
}

pub fn admin(owner: &str) -> Actor {
    Actor {
        owner: Owner::new(owner).expect("owner"),
        admin: true,
    }
}

pub fn vname(s: &str) -> VolumeName {
    VolumeName::new(s).expect("volume name")
}

pub fn sname(s: &str) -> SandboxName {
    SandboxName::new(s).expect("sandbox name")
}

pub fn mib(n: u64) -> SizeMib {
    SizeMib::new(n).expect("size")
}

pub fn req(volume: &str, mount: &str, read_only: bool) -> VolumeRequest {
    VolumeRequest {
        volume: vname(volume),
        mount: MountPath::new(mount).expect("mount"),
        read_only,
    }
}
