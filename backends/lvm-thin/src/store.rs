//! [`LvmThinStore`]: the [`VolumeStore`] over one thin pool.

use std::path::PathBuf;

use async_trait::async_trait;
use kiln_core::blockdev::{BlockDevice, ZeroMode};
use kiln_core::config::PoolConfig;
use kiln_core::ext4::Ext4Tools;
use kiln_core::store::{
    logged, BlockRead, BlockWrite, Capabilities, Contents, DriverInfo, FsCheck, PoolCapacity,
    StoredVolume, ThinUsage, VolumeStore,
};
use kiln_core::types::{SizeMib, SnapshotId, VolumeId, MIB};
use kiln_core::BackendError;
use tracing::{debug, info, warn};

use crate::admission::{self, Limits, PoolState, Request};
use crate::error::LvmThinError;
use crate::lvm::{Lv, Lvm};
use crate::options::LvmThinOptions;

/// The tag on every LV kiln made for a volume.
const TAG: &str = "kiln";
/// The tag on every LV kiln made as a backup snapshot.
const SNAPSHOT_TAG: &str = "kiln-snapshot";

/// The LV of volume `id`; also its second tag.
fn volume_lv(id: &VolumeId) -> String {
    format!("kiln-{id}")
}

/// The LV of snapshot `snap`.
fn snapshot_lv(snap: &SnapshotId) -> String {
    format!("kiln-{snap}")
}

/// The tag that ties a snapshot LV to its volume.
fn snapshot_of_tag(id: &VolumeId) -> String {
    format!("kiln-of-{id}")
}

fn volume_tags(id: &VolumeId) -> Vec<String> {
    vec![TAG.to_string(), volume_lv(id)]
}

/// A volume store over the thin pool `volume_group/thin_pool`.
#[derive(Debug)]
pub struct LvmThinStore {
    pool: String,
    thin_pool: String,
    lvm: Lvm,
    ext4: Ext4Tools,
    limits: Limits,
}

/// Opens an `lvm-thin` pool: parses its options, resolves the tools and
/// checks that the thin pool exists.
pub async fn open(pool: &PoolConfig) -> kiln_core::Result<LvmThinStore> {
    let opts: LvmThinOptions = pool.parse_options()?;
    opts.validate().map_err(|r| pool.options_error(r))?;
    let open_err = |e: LvmThinError| kiln_core::Error::Pool {
        pool: pool.name.to_string(),
        operation: "open",
        source: e.into(),
    };
    let missing = |source| LvmThinError::ToolMissing {
        pool: pool.name.to_string(),
        source,
    };

    let udev = Lvm::udev_running();
    let lvm = Lvm::resolve(&opts.volume_group, udev)
        .map_err(missing)
        .map_err(open_err)?;
    let ext4 = Ext4Tools::resolve().map_err(missing).map_err(open_err)?;
    let store = LvmThinStore {
        pool: pool.name.to_string(),
        thin_pool: opts.thin_pool.clone(),
        lvm,
        ext4,
        limits: Limits {
            reserve_data_percent: opts.reserve_data_percent,
            reserve_metadata_percent: opts.reserve_metadata_percent,
            max_overcommit_ratio: opts.max_overcommit_ratio,
        },
    };

    store.thin_pool_lv().await.map_err(open_err)?;
    info!(
        pool = %pool.name,
        volume_group = %opts.volume_group,
        thin_pool = %opts.thin_pool,
        udev,
        "lvm-thin pool opened"
    );
    Ok(store)
}

impl LvmThinStore {
    fn not_found(&self, lv: String) -> LvmThinError {
        LvmThinError::NotFound {
            vg: self.lvm.vg.clone(),
            lv,
        }
    }

    /// The thin pool's own LV, checked to be a thin pool.
    async fn thin_pool_lv(&self) -> Result<Lv, LvmThinError> {
        let missing = || LvmThinError::PoolMissing {
            vg: self.lvm.vg.clone(),
            thin_pool: self.thin_pool.clone(),
        };
        // lvs fails when the volume group itself is missing.
        let lv = match self.lvm.find(&self.thin_pool).await {
            Ok(Some(lv)) => lv,
            Ok(None) => return Err(missing()),
            Err(LvmThinError::Tool { source, .. }) if source.exit_code() == Some(5) => {
                return Err(missing())
            }
            Err(e) => return Err(e),
        };
        if !lv.is_thin_pool() {
            return Err(LvmThinError::NotAThinPool {
                vg: self.lvm.vg.clone(),
                lv: lv.name,
                attr: lv.attr,
            });
        }
        Ok(lv)
    }

    /// The LV of volume `id`: it must be in the pool and tagged as kiln's.
    async fn volume(&self, id: &VolumeId) -> Result<Lv, LvmThinError> {
        self.volume_in(&self.lvm.list().await?, id)
    }

    /// The LV of volume `id` in a listing.
    fn volume_in(&self, lvs: &[Lv], id: &VolumeId) -> Result<Lv, LvmThinError> {
        let name = volume_lv(id);
        lvs.iter()
            .find(|lv| lv.name == name && lv.has_tag(TAG) && lv.pool_lv == self.thin_pool)
            .cloned()
            .ok_or_else(|| self.not_found(name))
    }

    /// Fails if a listing has an LV named `lv` (kiln's or not).
    fn refuse_existing(&self, lvs: &[Lv], lv: &str) -> Result<(), LvmThinError> {
        if lvs.iter().any(|l| l.name == lv) {
            Err(LvmThinError::Exists {
                vg: self.lvm.vg.clone(),
                lv: lv.to_string(),
            })
        } else {
            Ok(())
        }
    }

    /// Runs admission control for `req` against the pool as `lvs` (a
    /// listing taken just before) shows it.
    fn admit(&self, lvs: &[Lv], req: Request) -> Result<(), LvmThinError> {
        let pool = lvs
            .iter()
            .find(|l| l.name == self.thin_pool)
            .ok_or_else(|| LvmThinError::PoolMissing {
                vg: self.lvm.vg.clone(),
                thin_pool: self.thin_pool.clone(),
            })?;
        let state = PoolState {
            data_bytes: pool.size_bytes,
            data_percent: pool.data_percent.unwrap_or(0.0),
            metadata_percent: pool.metadata_percent.unwrap_or(0.0),
            provisioned_bytes: lvs
                .iter()
                .filter(|l| l.pool_lv == self.thin_pool)
                .map(|l| l.size_bytes)
                .sum(),
        };
        admission::admit(&self.limits, &state, &req).map_err(|reason| {
            debug!(pool = %self.pool, %reason, "admission refused");
            LvmThinError::Capacity {
                vg: self.lvm.vg.clone(),
                thin_pool: self.thin_pool.clone(),
                reason,
            }
        })
    }

    /// Makes sure the LV is active and returns its device.
    async fn active_device(&self, lv: &Lv) -> Result<PathBuf, LvmThinError> {
        if lv.active {
            self.lvm.wait_device(&lv.name).await
        } else {
            self.lvm.activate(&lv.name).await
        }
    }

    /// Removes `lv` after `cause` failed a step of `operation`.
    async fn undo(&self, operation: &'static str, lv: &str, cause: LvmThinError) -> LvmThinError {
        match self.lvm.remove(lv).await {
            Ok(()) => cause,
            Err(rollback) => {
                tracing::error!(pool = %self.pool, lv, %rollback, "rollback failed");
                LvmThinError::RollbackFailed {
                    operation,
                    target: format!("{}/{lv}", self.lvm.vg),
                    rollback: rollback.to_string(),
                    source: Box::new(cause),
                }
            }
        }
    }

    /// Removes the kiln tags an LV has but should not (a snapshot may
    /// inherit its origin's); returns the LV as it was found.
    async fn fix_tags(&self, lv: &str, wanted: &[String]) -> Result<Lv, LvmThinError> {
        let Some(found) = self.lvm.find(lv).await? else {
            return Err(self.not_found(lv.to_string()));
        };
        let extra: Vec<String> = found
            .tags
            .iter()
            .filter(|t| t.starts_with("kiln") && !wanted.contains(t))
            .cloned()
            .collect();
        if !extra.is_empty() {
            self.lvm.del_tags(lv, &extra).await?;
        }
        Ok(found)
    }

    fn stored(id: &VolumeId, lv: &Lv) -> StoredVolume {
        StoredVolume {
            id: id.clone(),
            size_bytes: lv.size_bytes,
            allocated_bytes: lv
                .data_percent
                .map(|p| (lv.size_bytes as f64 * p / 100.0) as u64),
        }
    }

    async fn create_inner(
        &self,
        id: &VolumeId,
        size: SizeMib,
        contents: Contents,
    ) -> Result<StoredVolume, LvmThinError> {
        let name = volume_lv(id);
        let lvs = self.lvm.list().await?;
        self.refuse_existing(&lvs, &name)?;
        let writes_bytes = match contents {
            Contents::Ext4 => admission::mkfs_estimate(size.bytes()),
            Contents::Blank => 0,
        };
        self.admit(
            &lvs,
            Request {
                adds_provisioned_bytes: size.bytes(),
                writes_bytes,
            },
        )?;

        self.lvm
            .create_thin(&self.thin_pool, &name, size.get(), &volume_tags(id))
            .await?;

        let made = async {
            let dev = self.lvm.wait_device(&name).await?;
            if contents == Contents::Ext4 {
                self.ext4
                    .mkfs(&dev)
                    .await
                    .map_err(|source| LvmThinError::Tool {
                        operation: "mkfs.ext4",
                        target: dev.display().to_string(),
                        source,
                    })?;
            }
            self.volume(id).await
        }
        .await;
        match made {
            Ok(lv) => Ok(Self::stored(id, &lv)),
            Err(cause) => Err(self.undo("create", &name, cause).await),
        }
    }

    async fn grow_inner(&self, id: &VolumeId, new_size: SizeMib) -> Result<(), LvmThinError> {
        let lvs = self.lvm.list().await?;
        let lv = self.volume_in(&lvs, id)?;
        if new_size.bytes() <= lv.size_bytes {
            return Err(LvmThinError::NotLarger {
                volume: id.to_string(),
                current: lv.size_bytes,
                requested: new_size.bytes(),
            });
        }
        self.admit(
            &lvs,
            Request {
                adds_provisioned_bytes: new_size.bytes() - lv.size_bytes,
                writes_bytes: 0,
            },
        )?;

        let dev = self.active_device(&lv).await?;
        self.lvm.extend(&lv.name, new_size.get()).await?;
        // The LV is larger now; if the filesystem grow fails the volume is
        // still usable at its old filesystem size.
        self.ext4
            .grow(&dev)
            .await
            .map_err(|source| LvmThinError::Tool {
                operation: "resize2fs",
                target: dev.display().to_string(),
                source,
            })
    }

    async fn clone_inner(
        &self,
        src: &VolumeId,
        dst: &VolumeId,
    ) -> Result<StoredVolume, LvmThinError> {
        let lvs = self.lvm.list().await?;
        let source = self.volume_in(&lvs, src)?;
        let name = volume_lv(dst);
        self.refuse_existing(&lvs, &name)?;
        self.admit(
            &lvs,
            Request {
                adds_provisioned_bytes: source.size_bytes,
                writes_bytes: 0,
            },
        )?;

        let tags = volume_tags(dst);
        self.lvm.snapshot(&source.name, &name, &tags, false).await?;

        let made = async {
            let lv = self.fix_tags(&name, &tags).await?;
            let dev = self.active_device(&lv).await?;
            self.ext4
                .new_uuid(&dev)
                .await
                .map_err(|source| LvmThinError::Tool {
                    operation: "tune2fs -U",
                    target: dev.display().to_string(),
                    source,
                })?;
            self.volume(dst).await
        }
        .await;
        match made {
            Ok(lv) => Ok(Self::stored(dst, &lv)),
            Err(cause) => Err(self.undo("clone", &name, cause).await),
        }
    }

    async fn delete_inner(&self, id: &VolumeId) -> Result<(), LvmThinError> {
        let lvs = self.lvm.list().await?;
        let lv = self.volume_in(&lvs, id)?;
        let of = snapshot_of_tag(id);
        for snap in lvs.iter().filter(|l| l.has_tag(&of)) {
            warn!(pool = %self.pool, volume = %id, snapshot = %snap.name,
                "removing a backup snapshot left on a deleted volume");
            self.lvm.remove(&snap.name).await?;
        }
        self.lvm.remove(&lv.name).await
    }

    async fn snapshot_inner(&self, id: &VolumeId, snap: &SnapshotId) -> Result<(), LvmThinError> {
        let lvs = self.lvm.list().await?;
        let lv = self.volume_in(&lvs, id)?;
        let name = snapshot_lv(snap);
        self.refuse_existing(&lvs, &name)?;
        let tags = vec![SNAPSHOT_TAG.to_string(), snapshot_of_tag(id)];
        self.lvm.snapshot(&lv.name, &name, &tags, true).await?;
        match self.fix_tags(&name, &tags).await {
            Ok(_) => Ok(()),
            Err(cause) => Err(self.undo("snapshot", &name, cause).await),
        }
    }

    /// The LV of snapshot `snap` of volume `id`.
    async fn snapshot_of(&self, id: &VolumeId, snap: &SnapshotId) -> Result<Lv, LvmThinError> {
        let name = snapshot_lv(snap);
        match self.lvm.find(&name).await? {
            Some(lv) if lv.has_tag(&snapshot_of_tag(id)) => Ok(lv),
            _ => Err(self.not_found(name)),
        }
    }
}

/// One trait method: its inner body, logged and converted.
macro_rules! op {
    ($self:ident, $op:literal, $id:expr, $body:expr) => {
        logged(&$self.pool, $op, $id, $body).await
    };
}

#[async_trait]
impl VolumeStore for LvmThinStore {
    fn driver(&self) -> DriverInfo {
        DriverInfo {
            driver: "lvm-thin".to_string(),
            plugin: None,
        }
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            cow_clone: true,
            snapshots: true,
            sparse_reads: false,
        }
    }

    async fn create(
        &self,
        id: &VolumeId,
        size: SizeMib,
        contents: Contents,
    ) -> Result<StoredVolume, BackendError> {
        op!(self, "create", id, self.create_inner(id, size, contents))
    }

    async fn delete(&self, id: &VolumeId) -> Result<(), BackendError> {
        op!(self, "delete", id, self.delete_inner(id))
    }

    async fn grow(&self, id: &VolumeId, new_size: SizeMib) -> Result<(), BackendError> {
        op!(self, "grow", id, self.grow_inner(id, new_size))
    }

    async fn clone_volume(
        &self,
        src: &VolumeId,
        dst: &VolumeId,
    ) -> Result<StoredVolume, BackendError> {
        op!(self, "clone", dst, self.clone_inner(src, dst))
    }

    async fn snapshot(&self, id: &VolumeId, snap: &SnapshotId) -> Result<(), BackendError> {
        op!(self, "snapshot", id, self.snapshot_inner(id, snap))
    }

    async fn drop_snapshot(&self, id: &VolumeId, snap: &SnapshotId) -> Result<(), BackendError> {
        op!(self, "drop_snapshot", id, async {
            let lv = self.snapshot_of(id, snap).await?;
            self.lvm.remove(&lv.name).await
        })
    }

    async fn open_read(
        &self,
        id: &VolumeId,
        snap: Option<&SnapshotId>,
    ) -> Result<Box<dyn BlockRead>, BackendError> {
        let dev = op!(self, "open_read", id, async {
            match snap {
                // Backup snapshots skip activation until they are read.
                Some(snap) => {
                    let lv = self.snapshot_of(id, snap).await?;
                    self.active_device(&lv).await
                }
                None => self.active_device(&self.volume(id).await?).await,
            }
        })?;
        Ok(Box::new(BlockDevice::open_read(&dev)?))
    }

    async fn open_write(&self, id: &VolumeId) -> Result<Box<dyn BlockWrite>, BackendError> {
        let dev = op!(self, "open_write", id, async {
            self.active_device(&self.volume(id).await?).await
        })?;
        // dm-thin unmaps whole discarded blocks, which then read as zeros.
        Ok(Box::new(BlockDevice::open_write(
            &dev,
            ZeroMode::DiscardZeroes,
        )?))
    }

    async fn device_path(&self, id: &VolumeId) -> Result<PathBuf, BackendError> {
        op!(self, "device_path", id, async {
            self.active_device(&self.volume(id).await?).await
        })
    }

    async fn check_filesystem(&self, id: &VolumeId) -> Result<FsCheck, BackendError> {
        op!(self, "check_filesystem", id, async {
            let dev = self.active_device(&self.volume(id).await?).await?;
            self.ext4
                .check(&dev)
                .await
                .map_err(|source| LvmThinError::Tool {
                    operation: "e2fsck",
                    target: dev.display().to_string(),
                    source,
                })
        })
    }

    async fn list(&self) -> Result<Vec<StoredVolume>, BackendError> {
        let lvs = self.lvm.list().await?;
        Ok(lvs
            .iter()
            .filter(|lv| lv.has_tag(TAG) && lv.pool_lv == self.thin_pool)
            .filter_map(|lv| {
                let id = VolumeId::parse(lv.name.strip_prefix("kiln-")?).ok()?;
                Some(Self::stored(&id, lv))
            })
            .collect())
    }

    async fn capacity(&self) -> Result<PoolCapacity, BackendError> {
        let pool = self.thin_pool_lv().await?;
        let data_percent = pool.data_percent.unwrap_or(0.0);
        let allocated = ((pool.size_bytes as f64 * data_percent / 100.0) as u64)
            .min(pool.size_bytes)
            // LVM reports percentages to two decimals; keep whole MiB.
            / MIB
            * MIB;
        Ok(PoolCapacity {
            size_bytes: pool.size_bytes,
            allocated_bytes: allocated,
            free_bytes: pool.size_bytes - allocated,
            thin: Some(ThinUsage {
                data_percent,
                metadata_percent: pool.metadata_percent.unwrap_or(0.0),
            }),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_tags_derive_from_the_ids_and_fit_lvm() {
        let id = VolumeId::generate();
        let lv = volume_lv(&id);
        assert!(lv.starts_with("kiln-vol-") && lv.len() <= 127, "{lv}");
        assert_eq!(
            VolumeId::parse(lv.strip_prefix("kiln-").expect("prefix")).ok(),
            Some(id.clone())
        );
        assert_eq!(volume_tags(&id), vec!["kiln".to_string(), lv]);
        let snap = SnapshotId::generate();
        assert!(snapshot_lv(&snap).starts_with("kiln-snap-"));
        assert_ne!(snapshot_of_tag(&id), volume_lv(&id));
    }
}
