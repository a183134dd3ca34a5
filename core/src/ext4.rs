//! ext4 maintenance shared by every backend: make, check, grow and
//! re-identify a filesystem on a device or image file.
//!
//! Every function takes the path of an unmounted device or image; kiln
//! only calls them on detached volumes.

use std::path::Path;

use crate::exec::{ExecError, Tool};
use crate::store::FsCheck;

/// The e2fsprogs binaries, resolved once.
#[derive(Debug, Clone)]
pub struct Ext4Tools {
    mkfs: Tool,
    e2fsck: Tool,
    resize2fs: Tool,
    tune2fs: Tool,
    dumpe2fs: Tool,
}

impl Ext4Tools {
    /// Resolves the e2fsprogs binaries; fails naming the first missing one.
    pub fn resolve() -> Result<Self, ExecError> {
        Ok(Self {
            mkfs: Tool::resolve("mkfs.ext4")?,
            e2fsck: Tool::resolve("e2fsck")?,
            resize2fs: Tool::resolve("resize2fs")?,
            tune2fs: Tool::resolve("tune2fs")?,
            dumpe2fs: Tool::resolve("dumpe2fs")?,
        })
    }

    /// Makes a fresh ext4 filesystem filling `dev`.
    ///
    /// Lazy inode-table and journal initialisation keep a large sparse
    /// volume sparse; `nodiscard` avoids a slow discard of a fresh device.
    pub async fn mkfs(&self, dev: &Path) -> Result<(), ExecError> {
        self.mkfs
            .command()
            .args([
                "-q",
                "-F",
                "-E",
                "lazy_itable_init=1,lazy_journal_init=1,nodiscard",
            ])
            .arg(dev)
            .run()
            .await
            .map(drop)
    }

    /// Whether the superblock says the filesystem was cleanly unmounted.
    pub async fn is_clean(&self, dev: &Path) -> Result<bool, ExecError> {
        let out = self.dumpe2fs.command().arg("-h").arg(dev).run().await?;
        let state = out
            .stdout
            .lines()
            .find_map(|l| l.strip_prefix("Filesystem state:"))
            .map(str::trim)
            .unwrap_or("");
        Ok(state == "clean")
    }

    /// Checks `dev` and repairs it if it was not cleanly unmounted.
    pub async fn check(&self, dev: &Path) -> Result<FsCheck, ExecError> {
        if self.is_clean(dev).await? {
            return Ok(FsCheck::Clean);
        }
        self.force_check(dev).await?;
        Ok(FsCheck::Repaired)
    }

    /// A full `e2fsck -f -y`; exit codes 1 and 2 mean "errors corrected".
    pub async fn force_check(&self, dev: &Path) -> Result<(), ExecError> {
        match self
            .e2fsck
            .command()
            .args(["-f", "-y"])
            .arg(dev)
            .run()
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if matches!(e.exit_code(), Some(1 | 2)) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Grows the filesystem on `dev` to fill it (after the device grew).
    pub async fn grow(&self, dev: &Path) -> Result<(), ExecError> {
        self.force_check(dev).await?;
        self.resize2fs.command().arg(dev).run().await.map(drop)
    }

    /// Gives the filesystem on `dev` a new random UUID, so a clone can be
    /// mounted beside its source.
    pub async fn new_uuid(&self, dev: &Path) -> Result<(), ExecError> {
        // tune2fs refuses to change the UUID of a filesystem that needs a
        // check (a clone of a volume that was attached when copied).
        self.force_check(dev).await?;
        self.tune2fs
            .command()
            .args(["-f", "-U", "random"])
            .arg(dev)
            .run()
            .await
            .map(drop)
    }

    /// The filesystem UUID of `dev`.
    pub async fn uuid(&self, dev: &Path) -> Result<String, ExecError> {
        let out = self.dumpe2fs.command().arg("-h").arg(dev).run().await?;
        Ok(out
            .stdout
            .lines()
            .find_map(|l| l.strip_prefix("Filesystem UUID:"))
            .map(|s| s.trim().to_string())
            .unwrap_or_default())
    }

    /// The filesystem's size in bytes (block count times block size).
    pub async fn fs_size_bytes(&self, dev: &Path) -> Result<u64, ExecError> {
        let out = self.dumpe2fs.command().arg("-h").arg(dev).run().await?;
        let field = |name: &str| -> u64 {
            out.stdout
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|s| s.trim().parse().ok())
                .unwrap_or(0)
        };
        Ok(field("Block count:") * field("Block size:"))
    }
}
