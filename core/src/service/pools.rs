//! Pools: what `GET /v1/pools` shows, and the pool-size check.

use std::collections::BTreeSet;

use tracing::warn;

use super::{PoolView, VolumeService};
use crate::catalog::Tx;
use crate::error::{Error, Result};
use crate::store::VolumeStore;
use crate::types::{PoolName, SizeMib, VolumeId, MIB};

impl VolumeService {
    /// Every configured pool with its capacity, use and unmanaged volumes.
    ///
    /// A pool whose capacity cannot be read is still listed, with
    /// `capacity_error` saying why.
    pub async fn list_pools(&self) -> Result<Vec<PoolView>> {
        let usage = self.catalog.read(|tx| tx.pool_usage())?;
        let mut out = Vec::with_capacity(self.pools.len());
        for (name, store) in &self.pools {
            let info = store.driver();
            // The reason is shown inside the pool's own entry (`kiln pool
            // list` prints `pool "NAME": capacity unknown: REASON`), so it
            // is the backend's message and causes, without the pool's name.
            let (capacity, capacity_error) = match store.capacity().await {
                Ok(c) => (Some(c), None),
                Err(source) => (None, Some(causes(&source))),
            };
            let (provisioned_mib, volumes) = usage.get(name.as_str()).copied().unwrap_or((0, 0));
            out.push(PoolView {
                name: name.clone(),
                driver: info.driver,
                plugin: info.plugin,
                capabilities: store.capabilities(),
                capacity,
                capacity_error,
                provisioned_mib,
                volumes,
                unmanaged: self.unmanaged(name, store.as_ref()).await?,
            });
        }
        Ok(out)
    }

    /// Backend volumes of `pool` the catalog does not know, as found now
    /// (or at start-up, if the backend cannot list now).
    async fn unmanaged(&self, pool: &PoolName, store: &dyn VolumeStore) -> Result<Vec<VolumeId>> {
        let stored = match store.list().await {
            Ok(list) => list,
            Err(source) => {
                let e = Error::Pool {
                    pool: pool.to_string(),
                    operation: "list",
                    source,
                };
                warn!(pool = %pool, error = %e.chain(), "cannot list pool; showing start-up findings");
                return Ok(self
                    .report
                    .unmanaged
                    .iter()
                    .filter(|(p, _)| p == pool)
                    .map(|(_, id)| id.clone())
                    .collect());
            }
        };
        let known = self.catalog.read(|tx| known_ids(tx, pool))?;
        Ok(stored
            .into_iter()
            .map(|v| v.id)
            .filter(|id| !known.contains(id))
            .collect())
    }

    /// Refuses a size larger than the whole pool.
    pub(super) async fn check_fits_pool(
        &self,
        pool: &PoolName,
        store: &dyn VolumeStore,
        size: SizeMib,
    ) -> Result<()> {
        let capacity = store.capacity().await.map_err(|source| Error::Pool {
            pool: pool.to_string(),
            operation: "capacity",
            source,
        })?;
        if size.bytes() > capacity.size_bytes {
            return Err(Error::invalid(
                "size_mib",
                format!(
                    "{size} is larger than pool {pool:?} ({} MiB in all)",
                    capacity.size_bytes / MIB
                ),
            ));
        }
        Ok(())
    }
}

/// The ids kiln accounts for in `pool`: its catalog volumes and the
/// volumes of journal entries still running (a volume in the middle of a
/// create, clone or restore is not unmanaged).
pub(super) fn known_ids(tx: &Tx<'_>, pool: &PoolName) -> Result<BTreeSet<VolumeId>> {
    let mut known: BTreeSet<VolumeId> = tx
        .volumes_in_pool(pool)?
        .into_iter()
        .map(|v| v.id)
        .collect();
    known.extend(
        tx.running_operations()?
            .into_iter()
            .filter(|op| op.step.pool() == pool)
            .map(|op| op.volume),
    );
    Ok(known)
}

/// `e`'s message with each cause not already in it appended, `: `-separated
/// (as [`Error::chain`] does).
fn causes(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut cur = e.source();
    while let Some(cause) = cur {
        let text = cause.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        cur = cause.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::sync::Arc;

    use super::*;
    use crate::config::Config;
    use crate::error::ErrorKind;
    use crate::memory::MemoryStore;

    #[tokio::test]
    async fn a_capacity_error_is_the_backends_reason_without_the_pool_name() {
        let dir = tempfile::Builder::new()
            .prefix("kiln-pools-test-")
            .tempdir()
            .expect("temp dir");
        let config = Config::embedded(dir.path());
        let store = MemoryStore::new(SizeMib::new(1000).expect("pool size"));
        let mut pools: BTreeMap<PoolName, Arc<dyn VolumeStore>> = BTreeMap::new();
        pools.insert(config.default_pool.clone(), Arc::new(store.clone()));
        let service = VolumeService::open(&config, pools)
            .await
            .expect("service opens");

        store.fail_next("capacity", ErrorKind::Internal);
        let listed = service.list_pools().await.expect("pools");
        assert!(listed[0].capacity.is_none());
        assert_eq!(
            listed[0].capacity_error.as_deref(),
            Some("injected failure of capacity")
        );
    }
}
