//! [`ZfsZvolStore`]: the [`VolumeStore`] over zvols under one dataset.

use std::path::PathBuf;
use std::time::Duration;

use async_trait::async_trait;
use kiln_core::blockdev::{BlockDevice, ZeroMode};
use kiln_core::config::PoolConfig;
use kiln_core::exec::Tool;
use kiln_core::ext4::Ext4Tools;
use kiln_core::store::{
    logged, BlockRead, BlockWrite, Capabilities, Contents, DriverInfo, FsCheck, PoolCapacity,
    StoredVolume, VolumeStore,
};
use kiln_core::types::{SizeMib, SnapshotId, VolumeId};
use kiln_core::BackendError;
use tracing::{debug, info, warn};

use crate::error::ZfsZvolError;
use crate::options::ZfsZvolOptions;
use crate::zfs::{Snapshot, Zfs, Zvol, PROPERTY};

/// How long udev may take to make a `/dev/zvol` link.
const DEVICE_WAIT: Duration = Duration::from_secs(30);

/// How many times a delete that raced with another is tried.
const DELETE_ATTEMPTS: u64 = 5;

/// The prefix of the snapshots clones are made from.
const CLONE_SNAPSHOT: &str = "kiln-clone-";

/// A volume store over the zvols under `dataset`.
///
/// # Deleting a volume that has clones
///
/// The newest snapshot of the volume that has clones is found, one of its
/// clones is promoted (so it, not the volume, owns the shared snapshots),
/// the volume is destroyed, and `kiln-clone-*` snapshots left without
/// clones are destroyed. Nothing is copied; the promoted clone keeps
/// sharing blocks with the other clones until they diverge.
#[derive(Debug)]
pub struct ZfsZvolStore {
    pool: String,
    dataset: String,
    volblocksize: u64,
    sparse: bool,
    zfs: Zfs,
    udevadm: Tool,
    ext4: Ext4Tools,
    /// Held by every delete. Deleting a volume promotes one of its clones,
    /// which makes the volume a clone of that one; two such deletes of a
    /// source and its clone at once can promote each other back and forth
    /// until one gives up. Deletes are short, so they take turns.
    deletes: tokio::sync::Mutex<()>,
}

/// Opens a `zfs-zvol` pool: parses its options, resolves the tools and
/// checks that the parent dataset exists.
pub async fn open(pool: &PoolConfig) -> kiln_core::Result<ZfsZvolStore> {
    let opts: ZfsZvolOptions = pool.parse_options()?;
    opts.validate().map_err(|r| pool.options_error(r))?;
    let open_err = |e: ZfsZvolError| kiln_core::Error::Pool {
        pool: pool.name.to_string(),
        operation: "open",
        source: e.into(),
    };
    let missing = |source| ZfsZvolError::ToolMissing {
        pool: pool.name.to_string(),
        source,
    };

    let zfs = Zfs::resolve().map_err(missing).map_err(open_err)?;
    let ext4 = Ext4Tools::resolve().map_err(missing).map_err(open_err)?;
    let udevadm = Tool::resolve("udevadm")
        .map_err(missing)
        .map_err(open_err)?;
    if !zfs.exists(&opts.dataset).await.map_err(open_err)? {
        return Err(open_err(ZfsZvolError::DatasetMissing {
            dataset: opts.dataset,
        }));
    }
    info!(
        pool = %pool.name,
        dataset = %opts.dataset,
        volblocksize = opts.volblocksize.0,
        sparse = opts.sparse,
        "zfs-zvol pool opened"
    );
    Ok(ZfsZvolStore {
        pool: pool.name.to_string(),
        dataset: opts.dataset,
        volblocksize: opts.volblocksize.0,
        sparse: opts.sparse,
        zfs,
        udevadm,
        ext4,
        deletes: tokio::sync::Mutex::new(()),
    })
}

fn tool_err(
    operation: &'static str,
    dev: &std::path::Path,
) -> impl FnOnce(kiln_core::exec::ExecError) -> ZfsZvolError {
    let target = dev.display().to_string();
    move |source| ZfsZvolError::Tool {
        operation,
        target,
        source,
    }
}

impl ZfsZvolStore {
    fn zvol_name(&self, id: &VolumeId) -> String {
        format!("{}/{id}", self.dataset)
    }

    fn device(&self, name: &str) -> PathBuf {
        PathBuf::from(format!("/dev/zvol/{name}"))
    }

    /// The properties every zvol kiln makes (or clones) gets.
    fn props(&self, id: &VolumeId) -> Vec<String> {
        let mut p = vec![
            format!("{PROPERTY}={id}"),
            "volmode=dev".to_string(),
            "snapdev=visible".to_string(),
        ];
        if !self.sparse {
            // A clone starts with no reservation; give it a full one.
            p.push("refreservation=auto".to_string());
        }
        p
    }

    /// The zvol of volume `id`, which must carry kiln's property.
    async fn volume(&self, id: &VolumeId) -> Result<Zvol, ZfsZvolError> {
        let name = self.zvol_name(id);
        match self.zfs.zvol(&name).await? {
            Some(z) if z.kiln_volume.as_deref() == Some(id.as_str()) => Ok(z),
            _ => Err(ZfsZvolError::NotFound { dataset: name }),
        }
    }

    async fn refuse_existing(&self, name: &str) -> Result<(), ZfsZvolError> {
        if self.zfs.exists(name).await? {
            Err(ZfsZvolError::Exists {
                dataset: name.to_string(),
            })
        } else {
            Ok(())
        }
    }

    /// The device of an existing zvol or snapshot, waiting for udev to
    /// make its link if it is not there yet.
    async fn wait_device(&self, name: &str) -> Result<PathBuf, ZfsZvolError> {
        let path = self.device(name);
        if std::fs::File::open(&path).is_ok() {
            return Ok(path);
        }
        self.wait_new_device(name).await
    }

    /// Waits for udev to make the device link of a new zvol and to finish
    /// with it: right after a create or clone, udev may still replace the
    /// link while it processes the zvol's events.
    async fn wait_new_device(&self, name: &str) -> Result<PathBuf, ZfsZvolError> {
        let path = self.device(name);
        let deadline = tokio::time::Instant::now() + DEVICE_WAIT;
        loop {
            if path.exists() {
                let settled = self
                    .udevadm
                    .command()
                    .args(["settle", "--timeout=30"])
                    .run()
                    .await;
                if let Err(e) = settled {
                    warn!(pool = %self.pool, error = %e, "udevadm settle failed; going on");
                }
                if std::fs::File::open(&path).is_ok() {
                    return Ok(path);
                }
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(ZfsZvolError::NoDevice {
                    path: path.display().to_string(),
                });
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Destroys `names` (newest first) after `cause` failed `operation`.
    async fn undo(
        &self,
        operation: &'static str,
        names: &[&str],
        cause: ZfsZvolError,
    ) -> ZfsZvolError {
        for name in names {
            if let Err(rollback) = self.zfs.destroy(name).await {
                tracing::error!(pool = %self.pool, dataset = name, %rollback, "rollback failed");
                return ZfsZvolError::RollbackFailed {
                    operation,
                    target: name.to_string(),
                    rollback: rollback.to_string(),
                    source: Box::new(cause),
                };
            }
        }
        cause
    }

    fn stored(id: &VolumeId, z: &Zvol) -> StoredVolume {
        StoredVolume {
            id: id.clone(),
            size_bytes: z.volsize,
            allocated_bytes: Some(z.referenced),
        }
    }

    async fn create_inner(
        &self,
        id: &VolumeId,
        size: SizeMib,
        contents: Contents,
    ) -> Result<StoredVolume, ZfsZvolError> {
        let name = self.zvol_name(id);
        self.refuse_existing(&name).await?;
        let mut props = self.props(id);
        props.retain(|p| !p.starts_with("refreservation"));
        props.push(format!("volblocksize={}", self.volblocksize));
        self.zfs
            .create_zvol(&name, size.bytes(), self.sparse, &props)
            .await?;

        let made = async {
            let dev = self.wait_new_device(&name).await?;
            if contents == Contents::Ext4 {
                self.ext4
                    .mkfs(&dev)
                    .await
                    .map_err(tool_err("mkfs.ext4", &dev))?;
            }
            self.volume(id).await
        }
        .await;
        match made {
            Ok(z) => Ok(Self::stored(id, &z)),
            Err(cause) => Err(self.undo("create", &[&name], cause).await),
        }
    }

    async fn grow_inner(&self, id: &VolumeId, new_size: SizeMib) -> Result<(), ZfsZvolError> {
        let z = self.volume(id).await?;
        if new_size.bytes() <= z.volsize {
            return Err(ZfsZvolError::NotLarger {
                volume: id.to_string(),
                current: z.volsize,
                requested: new_size.bytes(),
            });
        }
        let dev = self.wait_device(&z.name).await?;
        self.zfs
            .set(&z.name, &format!("volsize={}", new_size.bytes()))
            .await?;
        // The zvol is larger now; if the filesystem grow fails the volume
        // is still usable at its old filesystem size.
        self.ext4
            .grow(&dev)
            .await
            .map_err(tool_err("resize2fs", &dev))
    }

    async fn clone_inner(
        &self,
        src: &VolumeId,
        dst: &VolumeId,
    ) -> Result<StoredVolume, ZfsZvolError> {
        let source = self.volume(src).await?;
        let name = self.zvol_name(dst);
        self.refuse_existing(&name).await?;
        let origin = format!("{}@{CLONE_SNAPSHOT}{dst}", source.name);
        self.zfs.snapshot(&origin).await?;
        if let Err(cause) = self.zfs.clone(&origin, &name, &self.props(dst)).await {
            return Err(self.undo("clone", &[&origin], cause).await);
        }

        let made = async {
            let dev = self.wait_new_device(&name).await?;
            self.ext4
                .new_uuid(&dev)
                .await
                .map_err(tool_err("tune2fs -U", &dev))?;
            self.volume(dst).await
        }
        .await;
        match made {
            Ok(z) => Ok(Self::stored(dst, &z)),
            Err(cause) => Err(self.undo("clone", &[&name, &origin], cause).await),
        }
    }

    /// Destroys the `kiln-clone-*` snapshots of `dataset` that no clone
    /// depends on any more. A dataset or snapshot that is gone already
    /// (another volume's delete got there first) is not an error.
    async fn prune_clone_snapshots(&self, dataset: &str) -> Result<(), ZfsZvolError> {
        let snaps = match self.zfs.snapshots(dataset).await {
            Err(ZfsZvolError::NotFound { .. }) => return Ok(()),
            r => r?,
        };
        for s in snaps {
            if s.clones.is_empty() && s.short_name().starts_with(CLONE_SNAPSHOT) {
                debug!(pool = %self.pool, snapshot = %s.name, "pruning an unused clone snapshot");
                match self.zfs.destroy(&s.name).await {
                    Ok(()) | Err(ZfsZvolError::NotFound { .. }) => {}
                    // A clone of it appeared meanwhile: it stays.
                    Err(ZfsZvolError::Tool { .. }) if self.zfs.exists(&s.name).await? => {}
                    Err(e) => return Err(e),
                }
            }
        }
        Ok(())
    }

    async fn delete_inner(&self, id: &VolumeId) -> Result<(), ZfsZvolError> {
        let _turn = self.deletes.lock().await;
        let z = self.volume(id).await?;
        let origin = self.zfs.get(&z.name, "origin").await?;

        // Clones of this volume are other volumes, deleted concurrently
        // perhaps: a promote or destroy that loses such a race is retried
        // on a fresh listing.
        let mut attempt = 0;
        let heir = loop {
            attempt += 1;
            match self.destroy_once(id, &z.name).await {
                Ok(heir) => break heir,
                Err(e) if attempt < DELETE_ATTEMPTS && self.zfs.exists(&z.name).await? => {
                    debug!(pool = %self.pool, volume = %id, error = %e, "delete raced; again");
                    tokio::time::sleep(Duration::from_millis(200 * attempt)).await;
                }
                Err(e) => return Err(e),
            }
        };

        if let Some(heir) = &heir {
            self.prune_clone_snapshots(heir).await?;
        }
        if let Some((parent, _)) = origin.split_once('@') {
            if parent.starts_with(&format!("{}/", self.dataset)) {
                self.prune_clone_snapshots(parent).await?;
            }
        }
        Ok(())
    }

    /// One attempt at destroying zvol `name`; returns the clone promoted
    /// in its place, if any.
    async fn destroy_once(
        &self,
        id: &VolumeId,
        name: &str,
    ) -> Result<Option<String>, ZfsZvolError> {
        // Snapshots no clone depends on go first (backup snapshots, and
        // clone snapshots whose clones are gone).
        let snaps = self.zfs.snapshots(name).await?;
        let (shared, unused): (Vec<Snapshot>, Vec<Snapshot>) =
            snaps.into_iter().partition(|s| !s.clones.is_empty());
        for s in &unused {
            if !s.short_name().starts_with(CLONE_SNAPSHOT) {
                warn!(pool = %self.pool, volume = %id, snapshot = %s.name,
                    "destroying a backup snapshot left on a deleted volume");
            }
            match self.zfs.destroy(&s.name).await {
                Ok(()) | Err(ZfsZvolError::NotFound { .. }) => {}
                Err(e) => return Err(e),
            }
        }

        // A clone of the newest shared snapshot takes over every shared
        // snapshot, so the volume no longer has dependents.
        let heir = shared.last().and_then(|s| s.clones.first().cloned());
        if let Some(heir) = &heir {
            debug!(pool = %self.pool, volume = %id, %heir, "promoting a clone");
            self.zfs.promote(heir).await?;
        }
        self.zfs.destroy(name).await?;
        Ok(heir)
    }

    fn snapshot_name(&self, id: &VolumeId, snap: &SnapshotId) -> String {
        format!("{}@{snap}", self.zvol_name(id))
    }
}

/// One trait method: its inner body, logged and converted.
macro_rules! op {
    ($self:ident, $op:literal, $id:expr, $body:expr) => {
        logged(&$self.pool, $op, $id, $body).await
    };
}

#[async_trait]
impl VolumeStore for ZfsZvolStore {
    fn driver(&self) -> DriverInfo {
        DriverInfo {
            driver: "zfs-zvol".to_string(),
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
        op!(self, "snapshot", id, async {
            self.volume(id).await?;
            self.zfs.snapshot(&self.snapshot_name(id, snap)).await
        })
    }

    async fn drop_snapshot(&self, id: &VolumeId, snap: &SnapshotId) -> Result<(), BackendError> {
        op!(self, "drop_snapshot", id, async {
            self.volume(id).await?;
            let name = self.snapshot_name(id, snap);
            // zfs destroy of a missing snapshot does not say "does not exist".
            if !self.zfs.exists(&name).await? {
                return Err(ZfsZvolError::NotFound { dataset: name });
            }
            self.zfs.destroy(&name).await
        })
    }

    async fn open_read(
        &self,
        id: &VolumeId,
        snap: Option<&SnapshotId>,
    ) -> Result<Box<dyn BlockRead>, BackendError> {
        let dev = op!(self, "open_read", id, async {
            let z = self.volume(id).await?;
            match snap {
                // snapdev=visible gives each snapshot its own device.
                Some(snap) => {
                    let name = self.snapshot_name(id, snap);
                    if !self.zfs.exists(&name).await? {
                        return Err(ZfsZvolError::NotFound { dataset: name });
                    }
                    self.wait_new_device(&name).await
                }
                None => self.wait_device(&z.name).await,
            }
        })?;
        Ok(Box::new(BlockDevice::open_read(&dev)?))
    }

    async fn open_write(&self, id: &VolumeId) -> Result<Box<dyn BlockWrite>, BackendError> {
        let dev = op!(self, "open_write", id, async {
            let z = self.volume(id).await?;
            self.wait_device(&z.name).await
        })?;
        // A zvol frees whole discarded blocks, which then read as zeros.
        Ok(Box::new(BlockDevice::open_write(
            &dev,
            ZeroMode::DiscardZeroes,
        )?))
    }

    async fn device_path(&self, id: &VolumeId) -> Result<PathBuf, BackendError> {
        op!(self, "device_path", id, async {
            let z = self.volume(id).await?;
            self.wait_device(&z.name).await
        })
    }

    async fn check_filesystem(&self, id: &VolumeId) -> Result<FsCheck, BackendError> {
        op!(self, "check_filesystem", id, async {
            let z = self.volume(id).await?;
            let dev = self.wait_device(&z.name).await?;
            self.ext4
                .check(&dev)
                .await
                .map_err(tool_err("e2fsck", &dev))
        })
    }

    async fn list(&self) -> Result<Vec<StoredVolume>, BackendError> {
        let zvols = self.zfs.zvols(&self.dataset).await?;
        Ok(zvols
            .iter()
            .filter_map(|z| {
                let id = VolumeId::parse(z.kiln_volume.as_deref()?).ok()?;
                (z.name == self.zvol_name(&id)).then(|| Self::stored(&id, z))
            })
            .collect())
    }

    async fn capacity(&self) -> Result<PoolCapacity, BackendError> {
        let (avail, used) = self.zfs.space(&self.dataset).await?;
        Ok(PoolCapacity {
            size_bytes: avail + used,
            allocated_bytes: used,
            free_bytes: avail,
            thin: None,
        })
    }
}
