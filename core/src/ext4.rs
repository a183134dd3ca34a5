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
    /// volume sparse; `nodiscard` avoids a slow discard of a fresh device;
    /// `metadata_csum_seed` lets a clone get a new UUID by rewriting the
    /// superblock alone (see [`Ext4Tools::new_uuid`]).
    pub async fn mkfs(&self, dev: &Path) -> Result<(), ExecError> {
        self.mkfs
            .command()
            .args([
                "-q",
                "-F",
                "-O",
                "metadata_csum_seed",
                "-E",
                "lazy_itable_init=1,lazy_journal_init=1,nodiscard",
            ])
            .arg(dev)
            .run()
            .await
            .map(drop)
    }

    /// The superblock fields kiln decides by.
    async fn superblock(&self, dev: &Path) -> Result<Superblock, ExecError> {
        let out = self.dumpe2fs.command().arg("-h").arg(dev).run().await?;
        let field = |name: &str| {
            out.stdout
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .map(str::trim)
                .unwrap_or("")
                .to_string()
        };
        Ok(Superblock {
            clean: field("Filesystem state:") == "clean",
            csum_seed: field("Filesystem features:")
                .split_whitespace()
                .any(|f| f == "metadata_csum_seed"),
        })
    }

    /// Whether the superblock says the filesystem was cleanly unmounted.
    pub async fn is_clean(&self, dev: &Path) -> Result<bool, ExecError> {
        Ok(self.superblock(dev).await?.clean)
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
    ///
    /// On a clean filesystem made with `metadata_csum_seed` (every volume
    /// kiln made) only the superblock changes. Otherwise tune2fs rewrites
    /// every metadata checksum and insists on a freshly checked
    /// filesystem, so a full check runs first.
    pub async fn new_uuid(&self, dev: &Path) -> Result<(), ExecError> {
        let sb = self.superblock(dev).await?;
        if !(sb.clean && sb.csum_seed) {
            self.force_check(dev).await?;
        }
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

/// What [`Ext4Tools::superblock`] reads.
struct Superblock {
    /// Cleanly unmounted.
    clean: bool,
    /// The checksum seed is stored apart from the UUID.
    csum_seed: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A sparse image file in a fresh temp dir (mkfs works on files
    /// without root).
    fn image(mib: u64) -> (tempfile::TempDir, std::path::PathBuf) {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("fs.img");
        let f = std::fs::File::create(&path).expect("create image");
        f.set_len(mib << 20).expect("size image");
        (dir, path)
    }

    #[tokio::test]
    async fn new_uuid_of_a_clean_kiln_filesystem_touches_only_the_superblock() {
        let tools = Ext4Tools::resolve().expect("e2fsprogs must be installed");
        let (_dir, img) = image(64);
        tools.mkfs(&img).await.expect("mkfs");
        let sb = tools.superblock(&img).await.expect("superblock");
        assert!(
            sb.clean && sb.csum_seed,
            "mkfs must give a clean fs with a csum seed"
        );

        let before = tools.uuid(&img).await.expect("uuid");
        tools.new_uuid(&img).await.expect("new uuid");
        let after = tools.uuid(&img).await.expect("uuid");
        assert_ne!(before, after);

        // The filesystem must still check clean without repairs.
        let e2fsck = Tool::resolve("e2fsck").expect("e2fsck");
        e2fsck
            .command()
            .args(["-f", "-n"])
            .arg(&img)
            .run()
            .await
            .expect("e2fsck -fn finds nothing to fix after the UUID change");
    }
}
