//! Builds each configured pool's backend from its `driver`.
//!
//! This is the one place that knows which drivers exist; core and the
//! service see only `Arc<dyn VolumeStore>`.

use std::collections::BTreeMap;
use std::sync::Arc;

use kiln_core::config::{Config, PoolConfig};
use kiln_core::{Error, PoolName, Result, VolumeStore};

/// The drivers this daemon can build.
pub const DRIVERS: &[&str] = &["ext4-file", "lvm-thin", "zfs-zvol", "plugin"];

/// Opens every pool of `config`, in name order; the first failure stops
/// start-up with the pool named.
pub async fn open_pools(config: &Config) -> Result<BTreeMap<PoolName, Arc<dyn VolumeStore>>> {
    let mut pools = BTreeMap::new();
    for (name, pool) in &config.pools {
        let store = open_pool(pool).await?;
        let driver = store.driver();
        tracing::info!(pool = %name, driver = %driver.driver, "pool opened");
        pools.insert(name.clone(), store);
    }
    Ok(pools)
}

async fn open_pool(pool: &PoolConfig) -> Result<Arc<dyn VolumeStore>> {
    match pool.driver.as_str() {
        "ext4-file" => Ok(Arc::new(kiln_ext4_file::open(pool).await?)),
        "lvm-thin" => Ok(Arc::new(kiln_lvm_thin::open(pool).await?)),
        "zfs-zvol" => Ok(Arc::new(kiln_zfs_zvol::open(pool).await?)),
        "plugin" => Ok(Arc::new(kiln_plugin_loader::open(pool).await?)),
        other => Err(Error::Config {
            key: format!("pools.{}.driver", pool.name),
            reason: format!(
                "unknown driver {other:?} (this daemon has: {})",
                DRIVERS.join(", ")
            ),
        }),
    }
}
