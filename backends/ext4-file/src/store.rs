//! [`Ext4FileStore`]: the [`VolumeStore`] over a folder of image files.
//!
//! # Layout of the pool folder
//!
//! | file | what |
//! |---|---|
//! | `vol-<hex>.img` | a volume (`vol-<hex>` is its [`VolumeId`]) |
//! | `.vol-<hex>.img.partial` | a volume being made (create, clone) |
//! | `.vol-<hex>.img.deleting` | a volume being removed |
//! | `.snapshots/vol-<hex>/snap-<hex>.img` | a read-only snapshot (reflink) |
//!
//! A `.partial` or `.deleting` file found at open is left over from a
//! crash: it never was, or no longer is, a volume, and is removed.

use std::fs::{File, Metadata};
use std::io;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;
use kiln_core::config::PoolConfig;
use kiln_core::ext4::Ext4Tools;
use kiln_core::{
    BackendError, BlockRead, BlockWrite, Capabilities, Contents, DriverInfo, FsCheck, PoolCapacity,
    SizeMib, SnapshotId, StoredVolume, VolumeId, VolumeStore,
};

use crate::copy::{copy_image, probe_reflink};
use crate::error::Ext4FileError;
use crate::in_use;
use crate::io::{ImageReader, ImageWriter};
use crate::options::{Ext4FileOptions, PoolKeys, ReflinkMode};
use crate::sys;

/// The driver name in the config.
pub const DRIVER: &str = "ext4-file";

/// The extended attribute that marks an image as kiln's; its value is the
/// volume id.
const TAG_XATTR: &str = "user.kiln.volume";

/// The folder of snapshots, inside the pool folder.
const SNAPSHOTS: &str = ".snapshots";

/// Opens the ext4-file pool `pool`: parses its options, creates its folder
/// if missing (as [`Ext4FileOptions`] says), removes what a crash left
/// behind, and probes reflinks.
pub async fn open(pool: &PoolConfig) -> kiln_core::Result<Ext4FileStore> {
    let keys: PoolKeys = serde_path_to_error::deserialize(pool.options.clone()).map_err(|e| {
        let key = e.path().to_string();
        let reason = e.into_inner().to_string();
        if key == "." {
            pool.options_error(reason)
        } else {
            pool.option_error(&key, reason)
        }
    })?;
    let (options, create) = keys.split();
    match Ext4FileStore::open_folder(options, create).await {
        Ok(store) => {
            tracing::info!(
                pool = %pool.name,
                path = %store.root.display(),
                reflink = store.reflink,
                "ext4-file pool opened"
            );
            Ok(store)
        }
        Err(Ext4FileError::NoReflink { path, .. }) => Err(pool.option_error(
            "reflink",
            format!(
                "always needs reflinks, which the filesystem of {} does not have",
                path.display()
            ),
        )),
        Err(e) => Err(kiln_core::Error::Pool {
            pool: pool.name.to_string(),
            operation: "open",
            source: e.into(),
        }),
    }
}

/// Volumes as sparse ext4 image files in one folder.
///
/// # Limitations
///
/// - Images are sparse and never preallocated, so a pool overcommits: when
///   the host filesystem fills, writes inside volumes fail (the guest sees
///   I/O errors). [`VolumeStore::capacity`] shows the host filesystem's
///   real use.
/// - Snapshots exist only where the filesystem has reflinks; elsewhere
///   `snapshot` answers unsupported and backups of attached volumes are
///   not crash-consistent.
/// - On a filesystem without user xattrs, images are recognised by their
///   name alone.
#[derive(Debug)]
pub struct Ext4FileStore {
    root: PathBuf,
    reflink: bool,
    xattrs: bool,
    ext4: Ext4Tools,
}

impl Ext4FileStore {
    /// Opens a pool folder directly, making it if missing and its parent
    /// exists (what [`open`] does with `create: true`).
    pub async fn new(options: Ext4FileOptions) -> Result<Self, Ext4FileError> {
        Self::open_folder(options, true).await
    }

    /// Opens a pool folder directly; a missing folder is made only if
    /// `create` and its parent exists (see [`Ext4FileOptions`]).
    pub async fn open_folder(
        options: Ext4FileOptions,
        create: bool,
    ) -> Result<Self, Ext4FileError> {
        let ext4 = Ext4Tools::resolve().map_err(Ext4FileError::MissingTools)?;
        let path = options.path.clone();
        let (root, reflink, xattrs) = blocking("open", &path, move || {
            let path = &options.path;
            prepare_folder(path, create)?;
            let root = path
                .canonicalize()
                .map_err(|e| Ext4FileError::io("resolve", path, e))?;
            remove_leftovers(&root)?;
            let reflink = match options.reflink {
                ReflinkMode::Never => false,
                ReflinkMode::Auto => probe_reflink(&root)?,
                ReflinkMode::Always => {
                    if !probe_reflink(&root)? {
                        return Err(Ext4FileError::NoReflink {
                            operation: "reflink: always",
                            path: root,
                        });
                    }
                    true
                }
            };
            let xattrs = probe_xattrs(&root)?;
            Ok((root, reflink, xattrs))
        })
        .await?;
        if !xattrs {
            tracing::warn!(
                path = %root.display(),
                "the pool filesystem has no user xattrs; images are recognised by name only"
            );
        }
        Ok(Self {
            root,
            reflink,
            xattrs,
            ext4,
        })
    }

    /// The pool folder (absolute).
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Whether clones and snapshots are reflinks.
    pub fn uses_reflink(&self) -> bool {
        self.reflink
    }

    fn image(&self, id: &VolumeId) -> PathBuf {
        self.root.join(format!("{id}.img"))
    }

    fn partial(&self, id: &VolumeId) -> PathBuf {
        self.root.join(format!(".{id}.img.partial"))
    }

    fn deleting(&self, id: &VolumeId) -> PathBuf {
        self.root.join(format!(".{id}.img.deleting"))
    }

    fn snapshot_dir(&self, id: &VolumeId) -> PathBuf {
        self.root.join(SNAPSHOTS).join(id.as_str())
    }

    fn snapshot_image(&self, id: &VolumeId, snap: &SnapshotId) -> PathBuf {
        self.snapshot_dir(id).join(format!("{snap}.img"))
    }

    /// The image of `id` and its metadata; `NotFound` if there is none.
    fn existing(&self, id: &VolumeId) -> Result<(PathBuf, Metadata), Ext4FileError> {
        let path = self.image(id);
        match std::fs::metadata(&path) {
            Ok(m) => Ok((path, m)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Err(Ext4FileError::NotFound {
                volume: id.clone(),
                path,
            }),
            Err(e) => Err(Ext4FileError::io("stat", path, e)),
        }
    }

    /// `AlreadyExists` if `id` has an image.
    fn absent(&self, id: &VolumeId) -> Result<PathBuf, Ext4FileError> {
        let path = self.image(id);
        match path.try_exists() {
            Ok(false) => Ok(path),
            Ok(true) => Err(Ext4FileError::AlreadyExists {
                volume: id.clone(),
                path,
            }),
            Err(e) => Err(Ext4FileError::io("stat", path, e)),
        }
    }

    /// Marks a fresh image as kiln's.
    fn tag(&self, file: &File, path: &Path, id: &VolumeId) -> Result<(), Ext4FileError> {
        if !self.xattrs {
            return Ok(());
        }
        sys::set_xattr(file, TAG_XATTR, id.as_str().as_bytes())
            .map_err(|e| Ext4FileError::io("tag", path, e))
    }

    /// Makes a complete `.partial` image the volume `id`: syncs it, renames
    /// it into place without replacing anything, syncs the folder.
    async fn publish(&self, id: &VolumeId, partial: &Path) -> Result<(), Ext4FileError> {
        let image = self.image(id);
        let (from, to, root, volume) = (
            partial.to_path_buf(),
            image.clone(),
            self.root.clone(),
            id.clone(),
        );
        blocking("publish", partial, move || {
            File::open(&from)
                .and_then(|f| f.sync_all())
                .map_err(|e| Ext4FileError::io("fsync", &from, e))?;
            sys::rename_noreplace(&from, &to).map_err(|e| {
                if e.kind() == io::ErrorKind::AlreadyExists {
                    Ext4FileError::AlreadyExists {
                        volume,
                        path: to.clone(),
                    }
                } else {
                    Ext4FileError::io("rename into place", &from, e)
                }
            })?;
            if let Err(e) = sys::fsync_dir(&root) {
                // The volume would not survive a crash; undo it so the
                // failure leaves nothing behind.
                remove_quietly(&to);
                return Err(Ext4FileError::io("fsync", &root, e));
            }
            Ok(())
        })
        .await
    }

    fn stored(&self, id: &VolumeId, path: &Path) -> Result<StoredVolume, Ext4FileError> {
        let m = std::fs::metadata(path).map_err(|e| Ext4FileError::io("stat", path, e))?;
        Ok(StoredVolume {
            id: id.clone(),
            size_bytes: m.len(),
            allocated_bytes: Some(m.blocks() * 512),
        })
    }

    async fn create_image(
        &self,
        id: &VolumeId,
        size: SizeMib,
        contents: Contents,
        partial: &Path,
    ) -> Result<(), Ext4FileError> {
        let file = File::options()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(partial)
            .map_err(|e| Ext4FileError::io("create", partial, e))?;
        file.set_len(size.bytes())
            .map_err(|e| Ext4FileError::io("set the size of", partial, e))?;
        self.tag(&file, partial, id)?;
        drop(file);
        if contents == Contents::Ext4 {
            self.ext4
                .mkfs(partial)
                .await
                .map_err(|e| Ext4FileError::tool("mkfs", partial, e))?;
        }
        Ok(())
    }

    async fn clone_image(
        &self,
        src: &Path,
        dst: &VolumeId,
        partial: &Path,
    ) -> Result<(), Ext4FileError> {
        remove_quietly(partial);
        let (from, to, reflink) = (src.to_path_buf(), partial.to_path_buf(), self.reflink);
        let method = blocking("copy", src, move || copy_image(&from, &to, reflink)).await?;
        tracing::debug!(volume = %dst, ?method, "image copied");
        let file = File::options()
            .write(true)
            .open(partial)
            .map_err(|e| Ext4FileError::io("open", partial, e))?;
        self.tag(&file, partial, dst)?;
        drop(file);
        self.ext4
            .new_uuid(partial)
            .await
            .map_err(|e| Ext4FileError::tool("new uuid", partial, e))
    }

    async fn grow_image(
        &self,
        id: &VolumeId,
        path: &Path,
        current: u64,
        new: u64,
    ) -> Result<(), Ext4FileError> {
        let p = path.to_path_buf();
        blocking("grow", path, move || set_len_synced(&p, new)).await?;
        let Err(e) = self.ext4.grow(path).await else {
            return Ok(());
        };
        // The filesystem is still its old size if resize2fs did not start
        // writing; then the image can go back to its old size too.
        match self.ext4.fs_size_bytes(path).await {
            Ok(fs) if fs <= current => match set_len_synced(path, current) {
                Ok(()) => {
                    tracing::warn!(volume = %id, "grow failed; the image is back to its old size")
                }
                Err(undo) => {
                    tracing::warn!(
                        volume = %id,
                        error = %undo,
                        "grow failed and the image stays larger; its filesystem has the old size",
                    )
                }
            },
            _ => tracing::warn!(volume = %id, "grow failed part way; the image keeps its new size"),
        }
        Err(Ext4FileError::tool("grow", path, e))
    }
}

/// Makes sure the pool folder exists. A missing one is made only with
/// `create` and only if its parent exists: a folder on a disk that is not
/// mounted must not quietly appear on the root filesystem.
fn prepare_folder(path: &Path, create: bool) -> Result<(), Ext4FileError> {
    match std::fs::metadata(path) {
        Ok(_) => return Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(Ext4FileError::io("stat", path, e)),
    }
    if !create {
        return Err(Ext4FileError::FolderMissing {
            path: path.to_path_buf(),
            reason: "the pool has create: false (is its disk mounted?)",
        });
    }
    match std::fs::create_dir(path) {
        Ok(()) => {
            tracing::warn!(
                path = %path.display(),
                "the pool folder was missing and is created; \
                 if it belongs on a disk of its own, that disk is not mounted",
            );
            Ok(())
        }
        // Made by someone else meanwhile.
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Err(Ext4FileError::FolderMissing {
            path: path.to_path_buf(),
            reason: "neither does its parent, so it is not created (is its disk mounted?)",
        }),
        Err(e) => Err(Ext4FileError::io("create", path, e)),
    }
}

/// `InUse` if a loop device set up outside kiln is backed by the image.
fn refuse_if_in_use(id: &VolumeId, image: &Path) -> Result<(), Ext4FileError> {
    let users = in_use::loop_users(image)
        .map_err(|e| Ext4FileError::io("look for loop devices of", image, e))?;
    if users.is_empty() {
        return Ok(());
    }
    let users: Vec<String> = users.iter().map(ToString::to_string).collect();
    Err(Ext4FileError::InUse {
        volume: id.clone(),
        path: image.to_path_buf(),
        users: users.join("; "),
    })
}

/// Runs file work that may block (syncs, copies) off the async threads.
async fn blocking<T: Send + 'static>(
    operation: &'static str,
    path: &Path,
    f: impl FnOnce() -> Result<T, Ext4FileError> + Send + 'static,
) -> Result<T, Ext4FileError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Ext4FileError::Task {
            operation,
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?
}

fn set_len_synced(path: &Path, len: u64) -> Result<(), Ext4FileError> {
    let f = File::options()
        .write(true)
        .open(path)
        .map_err(|e| Ext4FileError::io("open", path, e))?;
    f.set_len(len)
        .and_then(|()| f.sync_all())
        .map_err(|e| Ext4FileError::io("set the size of", path, e))
}

/// Removes a file of ours that may not exist, logging other failures.
fn remove_quietly(path: &Path) {
    if let Err(e) = std::fs::remove_file(path) {
        if e.kind() != io::ErrorKind::NotFound {
            tracing::warn!(
                path = %path.display(),
                error = %e,
                "cannot remove; it stays until the pool is opened again",
            );
        }
    }
}

/// Whether a pool-folder file name is ours but no volume: a half-made or
/// half-removed image, or a probe file.
fn is_leftover(name: &str) -> bool {
    name.starts_with('.')
        && (name.ends_with(".img.partial")
            || name.ends_with(".img.deleting")
            || name.starts_with(".reflink-probe-")
            || name.starts_with(".xattr-probe-"))
}

/// Removes what a crash left: `.partial` and `.deleting` images, in the
/// pool folder and among the snapshots, and the snapshots of volumes that
/// are gone.
fn remove_leftovers(root: &Path) -> Result<(), Ext4FileError> {
    let mut dirs = vec![root.to_path_buf()];
    let snapshots = root.join(SNAPSHOTS);
    if snapshots.is_dir() {
        for entry in
            std::fs::read_dir(&snapshots).map_err(|e| Ext4FileError::io("list", &snapshots, e))?
        {
            let entry = entry.map_err(|e| Ext4FileError::io("list", &snapshots, e))?;
            let path = entry.path();
            if !path.is_dir() {
                continue;
            }
            // The snapshots of a volume whose delete was interrupted.
            let volume = root.join(format!("{}.img", entry.file_name().to_string_lossy()));
            if !volume.exists() {
                tracing::warn!(
                    path = %path.display(),
                    "removing the snapshots of a deleted volume",
                );
                std::fs::remove_dir_all(&path)
                    .map_err(|e| Ext4FileError::io("remove", &path, e))?;
                continue;
            }
            dirs.push(path);
        }
    }
    for dir in dirs {
        for entry in std::fs::read_dir(&dir).map_err(|e| Ext4FileError::io("list", &dir, e))? {
            let entry = entry.map_err(|e| Ext4FileError::io("list", &dir, e))?;
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            if is_leftover(name) && entry.path().is_file() {
                tracing::warn!(
                    path = %entry.path().display(),
                    "removing an image a crash left unfinished",
                );
                std::fs::remove_file(entry.path())
                    .map_err(|e| Ext4FileError::io("remove", entry.path(), e))?;
            }
        }
    }
    Ok(())
}

/// Whether files in `root` take user xattrs.
fn probe_xattrs(root: &Path) -> Result<bool, Ext4FileError> {
    static N: AtomicU64 = AtomicU64::new(0);
    let path = root.join(format!(
        ".xattr-probe-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    let file = File::create(&path).map_err(|e| Ext4FileError::io("create", &path, e))?;
    let result = match sys::set_xattr(&file, TAG_XATTR, b"probe") {
        Ok(()) => Ok(true),
        Err(e) if sys::is_no_xattr(&e) => Ok(false),
        Err(e) => Err(Ext4FileError::io("tag", &path, e)),
    };
    drop(file);
    remove_quietly(&path);
    result
}

#[async_trait]
impl VolumeStore for Ext4FileStore {
    fn driver(&self) -> DriverInfo {
        DriverInfo {
            driver: DRIVER.to_string(),
            plugin: None,
        }
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            cow_clone: self.reflink,
            snapshots: self.reflink,
            sparse_reads: true,
        }
    }

    async fn create(
        &self,
        id: &VolumeId,
        size: SizeMib,
        contents: Contents,
    ) -> Result<StoredVolume, BackendError> {
        tracing::debug!(volume = %id, %size, ?contents, "create");
        let image = self.absent(id)?;
        let partial = self.partial(id);
        let made = match self.create_image(id, size, contents, &partial).await {
            Ok(()) => self.publish(id, &partial).await,
            Err(e) => Err(e),
        };
        if let Err(e) = made {
            remove_quietly(&partial);
            return Err(e.into());
        }
        tracing::debug!(volume = %id, "created");
        Ok(self.stored(id, &image)?)
    }

    async fn delete(&self, id: &VolumeId) -> Result<(), BackendError> {
        tracing::debug!(volume = %id, "delete");
        let (image, _) = self.existing(id)?;
        let (deleting, snapshots, root, volume) = (
            self.deleting(id),
            self.snapshot_dir(id),
            self.root.clone(),
            id.clone(),
        );
        blocking("delete", &image.clone(), move || {
            std::fs::rename(&image, &deleting)
                .map_err(|e| Ext4FileError::io("rename", &image, e))?;
            sys::fsync_dir(&root).map_err(|e| Ext4FileError::io("fsync", &root, e))?;

            // From here the volume is gone; what remains is removed now, or
            // at the next open if that fails.
            if let Err(e) = std::fs::remove_dir_all(&snapshots) {
                if e.kind() != io::ErrorKind::NotFound {
                    tracing::warn!(
                        volume = %volume,
                        path = %snapshots.display(),
                        error = %e,
                        "cannot remove the volume's snapshots",
                    );
                }
            }
            remove_quietly(&deleting);
            Ok(())
        })
        .await?;
        tracing::debug!(volume = %id, "deleted");
        Ok(())
    }

    async fn grow(&self, id: &VolumeId, new_size: SizeMib) -> Result<(), BackendError> {
        tracing::debug!(volume = %id, %new_size, "grow");
        let (image, meta) = self.existing(id)?;
        let (current, new) = (meta.len(), new_size.bytes());
        if new <= current {
            return Err(Ext4FileError::NotLarger {
                volume: id.clone(),
                current_bytes: current,
                new_bytes: new,
            }
            .into());
        }
        // Before anything changes: e2fsck and resize2fs would refuse a
        // mounted image only after the image had grown.
        refuse_if_in_use(id, &image)?;
        self.grow_image(id, &image, current, new).await?;
        tracing::debug!(volume = %id, "grown");
        Ok(())
    }

    async fn clone_volume(
        &self,
        src: &VolumeId,
        dst: &VolumeId,
    ) -> Result<StoredVolume, BackendError> {
        tracing::debug!(volume = %src, clone = %dst, reflink = self.reflink, "clone");
        let (source, _) = self.existing(src)?;
        let image = self.absent(dst)?;
        let partial = self.partial(dst);
        let made = match self.clone_image(&source, dst, &partial).await {
            Ok(()) => self.publish(dst, &partial).await,
            Err(e) => Err(e),
        };
        if let Err(e) = made {
            remove_quietly(&partial);
            return Err(e.into());
        }
        tracing::debug!(volume = %src, clone = %dst, "cloned");
        Ok(self.stored(dst, &image)?)
    }

    async fn snapshot(&self, id: &VolumeId, snap: &SnapshotId) -> Result<(), BackendError> {
        tracing::debug!(volume = %id, snapshot = %snap, "snapshot");
        if !self.reflink {
            return Err(Ext4FileError::NoReflink {
                operation: "snapshot",
                path: self.root.clone(),
            }
            .into());
        }
        let (source, _) = self.existing(id)?;
        let dir = self.snapshot_dir(id);
        let path = self.snapshot_image(id, snap);
        if path.exists() {
            return Err(Ext4FileError::SnapshotExists {
                volume: id.clone(),
                snapshot: snap.clone(),
                path,
            }
            .into());
        }
        let partial = dir.join(format!(".{snap}.img.partial"));
        let (volume, snapshot) = (id.clone(), snap.clone());
        let tmp = partial.clone();
        let made = blocking("snapshot", &source.clone(), move || {
            std::fs::create_dir_all(&dir).map_err(|e| Ext4FileError::io("create", &dir, e))?;
            remove_quietly(&tmp);
            copy_image(&source, &tmp, true)?;
            let f = File::open(&tmp).map_err(|e| Ext4FileError::io("open", &tmp, e))?;
            f.set_permissions(std::fs::Permissions::from_mode(0o444))
                .and_then(|()| f.sync_all())
                .map_err(|e| Ext4FileError::io("seal", &tmp, e))?;
            sys::rename_noreplace(&tmp, &path).map_err(|e| {
                if e.kind() == io::ErrorKind::AlreadyExists {
                    Ext4FileError::SnapshotExists {
                        volume,
                        snapshot,
                        path: path.clone(),
                    }
                } else {
                    Ext4FileError::io("rename into place", &tmp, e)
                }
            })?;
            sys::fsync_dir(&dir).map_err(|e| Ext4FileError::io("fsync", &dir, e))
        })
        .await;
        if let Err(e) = made {
            remove_quietly(&partial);
            return Err(e.into());
        }
        tracing::debug!(volume = %id, snapshot = %snap, "snapshot taken");
        Ok(())
    }

    async fn drop_snapshot(&self, id: &VolumeId, snap: &SnapshotId) -> Result<(), BackendError> {
        tracing::debug!(volume = %id, snapshot = %snap, "drop snapshot");
        let path = self.snapshot_image(id, snap);
        match std::fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(Ext4FileError::SnapshotNotFound {
                    volume: id.clone(),
                    snapshot: snap.clone(),
                    path,
                }
                .into())
            }
            Err(e) => return Err(Ext4FileError::io("remove", path, e).into()),
        }
        // The folder goes with its last snapshot; one still in it stays.
        let _ = std::fs::remove_dir(self.snapshot_dir(id));
        Ok(())
    }

    async fn open_read(
        &self,
        id: &VolumeId,
        snap: Option<&SnapshotId>,
    ) -> Result<Box<dyn BlockRead>, BackendError> {
        let path = match snap {
            None => self.existing(id)?.0,
            Some(snap) => {
                let path = self.snapshot_image(id, snap);
                if !path.is_file() {
                    return Err(Ext4FileError::SnapshotNotFound {
                        volume: id.clone(),
                        snapshot: snap.clone(),
                        path,
                    }
                    .into());
                }
                path
            }
        };
        Ok(Box::new(ImageReader::open(path)?))
    }

    async fn open_write(&self, id: &VolumeId) -> Result<Box<dyn BlockWrite>, BackendError> {
        let (path, _) = self.existing(id)?;
        Ok(Box::new(ImageWriter::open(path)?))
    }

    async fn device_path(&self, id: &VolumeId) -> Result<PathBuf, BackendError> {
        Ok(self.existing(id)?.0)
    }

    async fn check_filesystem(&self, id: &VolumeId) -> Result<FsCheck, BackendError> {
        let (path, _) = self.existing(id)?;
        let checked = self
            .ext4
            .check(&path)
            .await
            .map_err(|e| Ext4FileError::tool("check", &path, e))?;
        tracing::debug!(volume = %id, ?checked, "filesystem checked");
        Ok(checked)
    }

    async fn list(&self) -> Result<Vec<StoredVolume>, BackendError> {
        let root = self.root.clone();
        let xattrs = self.xattrs;
        let volumes = blocking("list", &self.root, move || list_images(&root, xattrs)).await?;
        Ok(volumes)
    }

    async fn capacity(&self) -> Result<PoolCapacity, BackendError> {
        let (size, free, used) =
            sys::statvfs(&self.root).map_err(|e| Ext4FileError::io("statvfs", &self.root, e))?;
        Ok(PoolCapacity {
            size_bytes: size,
            allocated_bytes: used,
            free_bytes: free,
            thin: None,
        })
    }
}

/// Every image in `root` named `vol-*.img` (and, where the filesystem has
/// xattrs, tagged with its own id), sorted by id.
fn list_images(root: &Path, xattrs: bool) -> Result<Vec<StoredVolume>, Ext4FileError> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(root).map_err(|e| Ext4FileError::io("list", root, e))? {
        let entry = entry.map_err(|e| Ext4FileError::io("list", root, e))?;
        let name = entry.file_name();
        let Some(id) = name
            .to_str()
            .and_then(|n| n.strip_suffix(".img"))
            .filter(|stem| stem.starts_with("vol-"))
            .and_then(|stem| VolumeId::parse(stem).ok())
        else {
            continue;
        };
        let path = entry.path();
        let meta = match std::fs::symlink_metadata(&path) {
            Ok(m) if m.is_file() => m,
            Ok(_) => continue,
            // Deleted since the folder was read.
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(Ext4FileError::io("stat", path, e)),
        };
        if xattrs {
            match sys::get_xattr(&path, TAG_XATTR) {
                Ok(Some(v)) if v == id.as_str().as_bytes() => {}
                Ok(_) => {
                    tracing::debug!(path = %path.display(), "not tagged as kiln's; not listed");
                    continue;
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(Ext4FileError::io("read the tag of", path, e)),
            }
        }
        out.push(StoredVolume {
            id,
            size_bytes: meta.len(),
            allocated_bytes: Some(meta.blocks() * 512),
        });
    }
    out.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(out)
}
