//! [`Qcow2Store`]: the plugin's [`VolumeStore`].

use std::fs::File;
use std::ops::Range;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use async_trait::async_trait;
use kiln_core::ext4::Ext4Tools;
use kiln_core::{
    BackendError, BlockRead, BlockWrite, Capabilities, Contents, DriverInfo, FsCheck, PluginInfo,
    PoolCapacity, SizeMib, SnapshotId, StoredVolume, VolumeId, VolumeStore,
};
use serde::Deserialize;

use crate::error::Qcow2Error;
use crate::image::{allocated_bytes, virtual_size, QemuImg};
use crate::raw::{clean_stale, Access, RawView, StorageDaemon};

/// The options of a qcow2 pool (`options:` of a `driver: plugin` pool).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Options {
    /// The folder holding the images (made if missing).
    pub path: PathBuf,
}

/// Volumes as qcow2 images in one folder.
#[derive(Debug, Clone)]
pub struct Qcow2Store {
    dir: PathBuf,
    run_dir: PathBuf,
    qemu_img: QemuImg,
    daemon: StorageDaemon,
    ext4: Ext4Tools,
}

/// The results of the store's methods.
type Result<T, E = BackendError> = std::result::Result<T, E>;

impl Qcow2Store {
    /// Opens the pool described by `options` (`{"path": "/var/lib/..."}`),
    /// resolving the tools it needs and making the folder if missing.
    pub async fn open(options: serde_json::Value) -> Result<Self> {
        let options: Options =
            serde_json::from_value(options).map_err(|e| Qcow2Error::Options {
                reason: e.to_string(),
            })?;
        if !options.path.is_absolute() {
            return Err(Qcow2Error::Options {
                reason: format!("path {} must be absolute", options.path.display()),
            }
            .into());
        }
        let ext4 = Ext4Tools::resolve().map_err(|source| Qcow2Error::MissingTool {
            tool: "e2fsprogs",
            source,
        })?;
        let store = Self {
            run_dir: options.path.join(".views"),
            dir: options.path,
            qemu_img: QemuImg::resolve()?,
            daemon: StorageDaemon::resolve()?,
            ext4,
        };
        std::fs::create_dir_all(&store.run_dir)
            .map_err(Qcow2Error::io("create", &store.run_dir))?;
        clean_stale(&store.run_dir)?;
        tracing::info!(path = %store.dir.display(), "qcow2 pool opened");
        Ok(store)
    }

    fn image(&self, id: &VolumeId) -> PathBuf {
        self.dir.join(format!("{id}.qcow2"))
    }

    /// Where an image is made before it appears under its name, so a
    /// half-made one is never listed.
    fn partial(&self, id: &VolumeId) -> PathBuf {
        self.dir.join(format!(".{id}.qcow2.partial"))
    }

    fn existing(&self, id: &VolumeId) -> Result<PathBuf, Qcow2Error> {
        let image = self.image(id);
        match std::fs::symlink_metadata(&image) {
            Ok(_) => Ok(image),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                Err(Qcow2Error::NotFound { id: id.to_string() })
            }
            Err(e) => Err(Qcow2Error::io("stat", image)(e)),
        }
    }

    fn refuse_existing(&self, id: &VolumeId) -> Result<(), Qcow2Error> {
        match self.existing(id) {
            Ok(_) => Err(Qcow2Error::Exists { id: id.to_string() }),
            Err(Qcow2Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(e),
        }
    }

    async fn view(&self, image: &Path, access: Access) -> Result<RawView, Qcow2Error> {
        let daemon = self.daemon.clone();
        let (image, path) = (image.to_path_buf(), image.to_path_buf());
        let run_dir = self.run_dir.clone();
        tokio::task::spawn_blocking(move || daemon.export(&image, &run_dir, access))
            .await
            .map_err(|e| Qcow2Error::Export {
                image: path,
                reason: e.to_string(),
            })?
    }

    /// Runs `step` on a writable raw view of `image`, then stops the view.
    async fn with_view<F, Fut, T>(&self, image: &Path, step: F) -> Result<T, Qcow2Error>
    where
        F: FnOnce(PathBuf) -> Fut,
        Fut: std::future::Future<Output = Result<T, Qcow2Error>>,
    {
        let view = self.view(image, Access::Write).await?;
        let result = step(view.path().to_path_buf()).await;
        let stopped = tokio::task::spawn_blocking(move || view.stop())
            .await
            .map_err(|e| Qcow2Error::Export {
                image: image.to_path_buf(),
                reason: e.to_string(),
            })
            .and_then(|r| r);
        let value = result?;
        stopped?;
        Ok(value)
    }

    /// Moves a finished image from its partial name to its own, refusing
    /// to replace one that appeared meanwhile.
    fn publish(&self, id: &VolumeId, partial: &Path) -> Result<StoredVolume, Qcow2Error> {
        let image = self.image(id);
        std::fs::hard_link(partial, &image).map_err(|e| {
            if e.kind() == std::io::ErrorKind::AlreadyExists {
                Qcow2Error::Exists { id: id.to_string() }
            } else {
                Qcow2Error::io("link", &image)(e)
            }
        })?;
        drop(std::fs::remove_file(partial));
        stored(id.clone(), &image)
    }

    /// Removes a partial image after a failed step.
    fn discard(&self, partial: &Path) {
        if let Err(e) = std::fs::remove_file(partial) {
            if e.kind() != std::io::ErrorKind::NotFound {
                tracing::warn!(path = %partial.display(), error = %e, "cannot remove a partial image");
            }
        }
    }

    async fn create_inner(
        &self,
        id: &VolumeId,
        size: SizeMib,
        contents: Contents,
    ) -> Result<StoredVolume, Qcow2Error> {
        self.refuse_existing(id)?;
        let partial = self.partial(id);
        self.discard(&partial);
        let made = async {
            self.qemu_img.create(&partial, size.bytes()).await?;
            if contents == Contents::Ext4 {
                let ext4 = &self.ext4;
                self.with_view(&partial, |raw| async move {
                    ext4.mkfs(&raw)
                        .await
                        .map_err(Qcow2Error::tool("mkfs.ext4", raw))
                })
                .await?;
            }
            self.publish(id, &partial)
        }
        .await;
        if made.is_err() {
            self.discard(&partial);
        }
        made
    }

    async fn grow_inner(&self, id: &VolumeId, new_size: SizeMib) -> Result<(), Qcow2Error> {
        let image = self.existing(id)?;
        let current = virtual_size(&image)?;
        if new_size.bytes() <= current {
            return Err(Qcow2Error::NotLarger {
                id: id.to_string(),
                current,
                requested: new_size.bytes(),
            });
        }
        self.qemu_img.grow(&image, new_size.bytes()).await?;
        // If the filesystem step fails, the volume stays usable: a larger
        // image holding the old, intact filesystem.
        let ext4 = &self.ext4;
        self.with_view(&image, |raw| async move {
            ext4.grow(&raw)
                .await
                .map_err(Qcow2Error::tool("resize2fs", raw))
        })
        .await
    }

    async fn clone_inner(
        &self,
        src: &VolumeId,
        dst: &VolumeId,
    ) -> Result<StoredVolume, Qcow2Error> {
        let source = self.existing(src)?;
        self.refuse_existing(dst)?;
        let partial = self.partial(dst);
        self.discard(&partial);
        let made = async {
            self.qemu_img.copy(&source, &partial).await?;
            let ext4 = &self.ext4;
            self.with_view(&partial, |raw| async move {
                ext4.new_uuid(&raw)
                    .await
                    .map_err(Qcow2Error::tool("tune2fs -U", raw))
            })
            .await?;
            self.publish(dst, &partial)
        }
        .await;
        if made.is_err() {
            self.discard(&partial);
        }
        made
    }

    async fn open_read_inner(
        &self,
        id: &VolumeId,
        snap: Option<&SnapshotId>,
    ) -> Result<Qcow2Reader, Qcow2Error> {
        if snap.is_some() {
            return Err(Qcow2Error::Unsupported {
                operation: "snapshots",
            });
        }
        let image = self.existing(id)?;
        let len = virtual_size(&image)?;
        let data = self.qemu_img.data_ranges(&image).await?;
        let view = self.view(&image, Access::Read).await?;
        let file = File::open(view.path()).map_err(Qcow2Error::io("open", view.path()))?;
        Ok(Qcow2Reader {
            file,
            len,
            data,
            _view: view,
        })
    }

    async fn open_write_inner(&self, id: &VolumeId) -> Result<Qcow2Writer, Qcow2Error> {
        let image = self.existing(id)?;
        let len = virtual_size(&image)?;
        let view = self.view(&image, Access::Write).await?;
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(view.path())
            .map_err(Qcow2Error::io("open", view.path()))?;
        Ok(Qcow2Writer {
            file,
            len,
            _view: view,
        })
    }

    fn list_inner(&self) -> Result<Vec<StoredVolume>, Qcow2Error> {
        let mut out = Vec::new();
        let entries = std::fs::read_dir(&self.dir).map_err(Qcow2Error::io("list", &self.dir))?;
        for entry in entries {
            let entry = entry.map_err(Qcow2Error::io("list", &self.dir))?;
            let name = entry.file_name();
            let Some(id) = name
                .to_str()
                .and_then(|n| n.strip_suffix(".qcow2"))
                .and_then(|n| VolumeId::parse(n).ok())
            else {
                continue;
            };
            out.push(stored(id, &entry.path())?);
        }
        out.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(out)
    }

    fn capacity_inner(&self) -> Result<PoolCapacity, Qcow2Error> {
        let path =
            std::ffi::CString::new(self.dir.as_os_str().as_encoded_bytes()).map_err(|_| {
                Qcow2Error::Options {
                    reason: "path contains a NUL byte".to_string(),
                }
            })?;
        // SAFETY: statvfs is plain old data; zeroed is a valid value.
        let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
        // SAFETY: `path` is NUL-terminated and `st` is a valid out-parameter.
        if unsafe { libc::statvfs(path.as_ptr(), &mut st) } != 0 {
            return Err(Qcow2Error::io("statvfs", &self.dir)(
                std::io::Error::last_os_error(),
            ));
        }
        let frag = st.f_frsize as u64;
        let size_bytes = st.f_blocks as u64 * frag;
        let free_bytes = st.f_bavail as u64 * frag;
        Ok(PoolCapacity {
            size_bytes,
            allocated_bytes: size_bytes.saturating_sub(st.f_bfree as u64 * frag),
            free_bytes,
            thin: None,
        })
    }
}

fn stored(id: VolumeId, image: &Path) -> Result<StoredVolume, Qcow2Error> {
    Ok(StoredVolume {
        id,
        size_bytes: virtual_size(image)?,
        allocated_bytes: Some(allocated_bytes(image)?),
    })
}

#[async_trait]
impl VolumeStore for Qcow2Store {
    fn driver(&self) -> DriverInfo {
        DriverInfo {
            driver: "plugin".to_string(),
            plugin: Some(PluginInfo {
                name: "qcow2".to_string(),
                version: env!("CARGO_PKG_VERSION").to_string(),
            }),
        }
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            cow_clone: false,
            snapshots: false,
            sparse_reads: true,
        }
    }

    async fn create(
        &self,
        id: &VolumeId,
        size: SizeMib,
        contents: Contents,
    ) -> Result<StoredVolume> {
        tracing::debug!(volume = %id, %size, "create");
        Ok(self.create_inner(id, size, contents).await?)
    }

    async fn delete(&self, id: &VolumeId) -> Result<()> {
        tracing::debug!(volume = %id, "delete");
        let image = self.existing(id)?;
        std::fs::remove_file(&image).map_err(Qcow2Error::io("remove", image))?;
        Ok(())
    }

    async fn grow(&self, id: &VolumeId, new_size: SizeMib) -> Result<()> {
        tracing::debug!(volume = %id, %new_size, "grow");
        Ok(self.grow_inner(id, new_size).await?)
    }

    async fn clone_volume(&self, src: &VolumeId, dst: &VolumeId) -> Result<StoredVolume> {
        tracing::debug!(volume = %src, clone = %dst, "clone");
        Ok(self.clone_inner(src, dst).await?)
    }

    async fn open_read(
        &self,
        id: &VolumeId,
        snap: Option<&SnapshotId>,
    ) -> Result<Box<dyn BlockRead>> {
        Ok(Box::new(self.open_read_inner(id, snap).await?))
    }

    async fn open_write(&self, id: &VolumeId) -> Result<Box<dyn BlockWrite>> {
        Ok(Box::new(self.open_write_inner(id).await?))
    }

    async fn device_path(&self, id: &VolumeId) -> Result<PathBuf> {
        Ok(self.existing(id)?)
    }

    async fn check_filesystem(&self, id: &VolumeId) -> Result<FsCheck> {
        let image = self.existing(id)?;
        let ext4 = &self.ext4;
        Ok(self
            .with_view(&image, |raw| async move {
                ext4.check(&raw)
                    .await
                    .map_err(Qcow2Error::tool("e2fsck", raw))
            })
            .await?)
    }

    async fn list(&self) -> Result<Vec<StoredVolume>> {
        Ok(self.list_inner()?)
    }

    async fn capacity(&self) -> Result<PoolCapacity> {
        Ok(self.capacity_inner()?)
    }
}

/// Block reads through a read-only raw view.
#[derive(Debug)]
struct Qcow2Reader {
    file: File,
    len: u64,
    data: Vec<Range<u64>>,
    // Dropped after `file` (fields drop in order): the view outlives reads.
    _view: RawView,
}

impl BlockRead for Qcow2Reader {
    fn len(&self) -> u64 {
        self.len
    }

    fn allocated(&self) -> Result<Vec<Range<u64>>> {
        Ok(self.data.clone())
    }

    fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<()> {
        self.file
            .read_exact_at(buf, offset)
            .map_err(|e| Qcow2Error::io("read", self._view.path())(e).into())
    }
}

/// Block writes through a writable raw view.
#[derive(Debug)]
struct Qcow2Writer {
    file: File,
    len: u64,
    _view: RawView,
}

impl BlockWrite for Qcow2Writer {
    fn len(&self) -> u64 {
        self.len
    }

    fn write_at(&self, offset: u64, data: &[u8]) -> Result<()> {
        self.file
            .write_all_at(data, offset)
            .map_err(|e| Qcow2Error::io("write", self._view.path())(e).into())
    }

    fn zero_range(&self, offset: u64, len: u64) -> Result<()> {
        use std::os::fd::AsRawFd;
        let (Ok(off), Ok(n)) = (libc::off_t::try_from(offset), libc::off_t::try_from(len)) else {
            return Err(Qcow2Error::Io {
                operation: "zero",
                path: self._view.path().to_path_buf(),
                source: std::io::Error::from(std::io::ErrorKind::InvalidInput),
            }
            .into());
        };
        // The export turns a punched hole into a discard of the clusters,
        // which then read as zeros and cost nothing.
        let mode = libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE;
        // SAFETY: the descriptor is open for writing for the life of `self`.
        if unsafe { libc::fallocate(self.file.as_raw_fd(), mode, off, n) } == 0 {
            return Ok(());
        }
        let err = std::io::Error::last_os_error();
        if err.raw_os_error() != Some(libc::EOPNOTSUPP) {
            return Err(Qcow2Error::io("punch a hole in", self._view.path())(err).into());
        }
        self.write_zeros(offset, len)
    }

    fn flush(&self) -> Result<()> {
        self.file
            .sync_all()
            .map_err(|e| Qcow2Error::io("flush", self._view.path())(e).into())
    }
}

impl Qcow2Writer {
    fn write_zeros(&self, mut offset: u64, len: u64) -> Result<()> {
        const CHUNK: u64 = 1 << 20;
        let zeros = vec![0u8; CHUNK as usize];
        let end = offset + len;
        while offset < end {
            let n = CHUNK.min(end - offset) as usize;
            self.write_at(offset, &zeros[..n])?;
            offset += n as u64;
        }
        Ok(())
    }
}
