//! The data scenarios put in volumes and check: files in a `conformance`
//! folder of the volume's ext4, written and read either through a mount of
//! the device ([`Access::Mount`]) or through block I/O ([`Access::Blocks`]),
//! and what the suite reads from the raw blocks (superblock, whole dumps).

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::Path;

use kiln_core::{BlockRead, SnapshotId, VolumeId};

use super::host::{temp_dir, MountOptions, Mounted};
use super::{Access, Ctx};

/// The folder of the volume's filesystem the suite writes to.
const DIR: &str = "conformance";

/// A set of file names; each file's bytes follow from its name.
pub(crate) type Files = BTreeSet<String>;

/// A file set from names.
pub(crate) fn files(names: &[&str]) -> Files {
    names.iter().map(|n| n.to_string()).collect()
}

/// The bytes of file `name` in a run tagged `tag`: pseudo-random, 4 KiB
/// to about 1.5 MiB long, different for every name and run.
pub(crate) fn content(tag: &str, name: &str) -> Vec<u8> {
    // FNV-1a seeds an xorshift generator.
    let mut seed: u64 = 0xcbf2_9ce4_8422_2325;
    for b in tag.bytes().chain([0]).chain(name.bytes()) {
        seed = (seed ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
    }
    let len = 4096 + (seed % (1536 * 1024)) as usize;
    let mut x = seed | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}

/// The chunk size of dumps and image writes.
const CHUNK: usize = 1 << 20;

/// Copies everything `reader` reports allocated into a new sparse file
/// `path` of the same size, leaving zero chunks as holes.
pub(crate) async fn dump(reader: Box<dyn BlockRead>, path: &Path) -> Result<(), String> {
    let path = path.to_path_buf();
    tokio::task::spawn_blocking(move || {
        let out = File::create(&path).map_err(|e| format!("create {}: {e}", path.display()))?;
        out.set_len(reader.len())
            .map_err(|e| format!("size {}: {e}", path.display()))?;
        let ranges = reader
            .allocated()
            .map_err(|e| format!("allocated ranges: {e}"))?;
        let mut buf = vec![0u8; CHUNK];
        for r in ranges {
            let mut off = r.start;
            while off < r.end {
                let n = (r.end - off).min(CHUNK as u64) as usize;
                reader
                    .read_at(off, &mut buf[..n])
                    .map_err(|e| format!("read at {off}: {e}"))?;
                if buf[..n].iter().any(|&b| b != 0) {
                    out.write_all_at(&buf[..n], off)
                        .map_err(|e| format!("write {}: {e}", path.display()))?;
                }
                off += n as u64;
            }
        }
        Ok(())
    })
    .await
    .map_err(|e| format!("dump task: {e}"))?
}

/// Whether two files have the same bytes.
pub(crate) async fn same_bytes(a: &Path, b: &Path) -> Result<bool, String> {
    let (a, b) = (a.to_path_buf(), b.to_path_buf());
    tokio::task::spawn_blocking(move || {
        let fa = File::open(&a).map_err(|e| format!("open {}: {e}", a.display()))?;
        let fb = File::open(&b).map_err(|e| format!("open {}: {e}", b.display()))?;
        let len = fa.metadata().map_err(|e| e.to_string())?.len();
        if fb.metadata().map_err(|e| e.to_string())?.len() != len {
            return Ok(false);
        }
        let (mut x, mut y) = (vec![0u8; CHUNK], vec![0u8; CHUNK]);
        let mut off = 0;
        while off < len {
            let n = (len - off).min(CHUNK as u64) as usize;
            fa.read_exact_at(&mut x[..n], off)
                .map_err(|e| e.to_string())?;
            fb.read_exact_at(&mut y[..n], off)
                .map_err(|e| e.to_string())?;
            if x[..n] != y[..n] {
                return Ok(false);
            }
            off += n as u64;
        }
        Ok(true)
    })
    .await
    .map_err(|e| format!("compare task: {e}"))?
}

/// What the suite reads from an ext4 superblock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Superblock {
    /// Block count times block size.
    pub(crate) fs_bytes: u64,
    /// The filesystem UUID.
    pub(crate) uuid: [u8; 16],
}

/// Parses the ext4 superblock at byte 1024 of a volume.
pub(crate) fn superblock(reader: &dyn BlockRead) -> Result<Superblock, String> {
    let mut sb = [0u8; 1024];
    reader
        .read_at(1024, &mut sb)
        .map_err(|e| format!("read the superblock: {e}"))?;
    let u16_at = |o: usize| u16::from_le_bytes([sb[o], sb[o + 1]]);
    let u32_at = |o: usize| u32::from_le_bytes([sb[o], sb[o + 1], sb[o + 2], sb[o + 3]]);
    if u16_at(0x38) != 0xEF53 {
        return Err("no ext4 superblock at byte 1024".to_string());
    }
    let mut blocks = u64::from(u32_at(0x04));
    if u32_at(0x60) & 0x80 != 0 {
        // INCOMPAT_64BIT: the high half of the block count.
        blocks |= u64::from(u32_at(0x150)) << 32;
    }
    let block_size = 1024u64 << u32_at(0x18);
    let mut uuid = [0u8; 16];
    uuid.copy_from_slice(&sb[0x68..0x78]);
    Ok(Superblock {
        fs_bytes: blocks * block_size,
        uuid,
    })
}

/// Reads the files of `DIR` under `root` (an empty set if it is missing)
/// and checks each one's bytes.
fn read_dir_files(tag: &str, root: &Path) -> Result<Files, String> {
    let dir = root.join(DIR);
    let mut found = BTreeMap::new();
    let entries = match std::fs::read_dir(&dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Files::new()),
        Err(e) => return Err(format!("list {}: {e}", dir.display())),
    };
    for entry in entries {
        let entry = entry.map_err(|e| format!("list {}: {e}", dir.display()))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let bytes = std::fs::read(entry.path()).map_err(|e| format!("read {name}: {e}"))?;
        found.insert(name, bytes);
    }
    for (name, bytes) in &found {
        if *bytes != content(tag, name) {
            return Err(format!("file {name} has other bytes than were written"));
        }
    }
    Ok(found.into_keys().collect())
}

fn describe(files: &Files) -> String {
    if files.is_empty() {
        "no files".to_string()
    } else {
        files.iter().cloned().collect::<Vec<_>>().join(", ")
    }
}

/// Fails unless `got` is exactly `want`.
pub(crate) fn compare(what: &str, got: &Files, want: &Files) -> Result<(), String> {
    if got == want {
        Ok(())
    } else {
        Err(format!(
            "{what} holds {} where {} were expected",
            describe(got),
            describe(want)
        ))
    }
}

impl Ctx {
    /// Makes the `conformance` folder of volume `id` hold `files` (which
    /// include every file already there).
    pub(crate) async fn put_files(&self, id: &VolumeId, files: &Files) -> Result<(), String> {
        match self.access {
            Access::Mount => self.put_files_mounted(id, files).await,
            Access::Blocks => self.put_files_blocks(id, files).await,
        }
    }

    /// Fails unless volume `id` holds exactly `want`, with their bytes.
    pub(crate) async fn expect_files(&self, id: &VolumeId, want: &Files) -> Result<(), String> {
        let got = match self.access {
            Access::Mount => {
                let dev = self.device(id).await?;
                self.read_mounted(&dev, true).await?
            }
            Access::Blocks => {
                let dir = temp_dir(&self.tag, "dump").map_err(|e| e.to_string())?;
                let image = dir.path().join("volume.img");
                dump(self.reader(id, None).await?, &image).await?;
                self.read_debugfs(&image).await?
            }
        };
        compare(&format!("volume {id}"), &got, want)
    }

    /// Fails unless snapshot `snap` of `id` holds exactly `want`.
    pub(crate) async fn expect_snapshot_files(
        &self,
        id: &VolumeId,
        snap: &SnapshotId,
        want: &Files,
    ) -> Result<(), String> {
        let dir = temp_dir(&self.tag, "snap").map_err(|e| e.to_string())?;
        let image = dir.path().join("snapshot.img");
        dump(self.reader(id, Some(snap)).await?, &image).await?;
        let got = match self.access {
            Access::Mount => self.read_mounted(&image, false).await?,
            Access::Blocks => self.read_debugfs(&image).await?,
        };
        compare(&format!("snapshot {snap}"), &got, want)
    }

    async fn put_files_mounted(&self, id: &VolumeId, files: &Files) -> Result<(), String> {
        let dev = self.device(id).await?;
        let tools = self.tools()?;
        let m = Mounted::mount(tools, &dev, &self.tag, &ext4_mount(false)).await?;
        let dir = m.path().join(DIR);
        let tag = self.tag.clone();
        let names = files.clone();
        let written = tokio::task::spawn_blocking(move || -> Result<(), String> {
            std::fs::create_dir_all(&dir).map_err(|e| format!("mkdir {DIR}: {e}"))?;
            for name in &names {
                let path = dir.join(name);
                let f = File::create(&path).map_err(|e| format!("create {name}: {e}"))?;
                f.write_all_at(&content(&tag, name), 0)
                    .and_then(|()| f.sync_all())
                    .map_err(|e| format!("write {name}: {e}"))?;
            }
            Ok(())
        })
        .await
        .map_err(|e| format!("write task: {e}"));
        // Unmount even when writing failed; report the first failure.
        let unmounted = m.unmount().await;
        written??;
        unmounted
    }

    /// Mounts `source` (a device, or an image dumped from a snapshot: then
    /// without journal replay) read-only and reads its files.
    async fn read_mounted(&self, source: &Path, device: bool) -> Result<Files, String> {
        let tools = self.tools()?;
        let mut opts = ext4_mount(true);
        if !device {
            opts.options.push("noload".to_string());
        }
        let m = Mounted::mount(tools, source, &self.tag, &opts).await?;
        let root = m.path().to_path_buf();
        let tag = self.tag.clone();
        let read = tokio::task::spawn_blocking(move || read_dir_files(&tag, &root))
            .await
            .map_err(|e| format!("read task: {e}"));
        let unmounted = m.unmount().await;
        let files = read??;
        unmounted?;
        Ok(files)
    }

    /// Replaces the volume's filesystem with a fresh one (`mkfs.ext4 -d`)
    /// holding `files`, written through `open_write`.
    async fn put_files_blocks(&self, id: &VolumeId, files: &Files) -> Result<(), String> {
        let tools = self.tools()?;
        let writer = self
            .store
            .open_write(id)
            .await
            .map_err(|e| format!("open_write: {e}"))?;
        let len = writer.len();
        let stage = temp_dir(&self.tag, "stage").map_err(|e| e.to_string())?;
        let tree = stage.path().join("tree");
        std::fs::create_dir_all(tree.join(DIR)).map_err(|e| e.to_string())?;
        for name in files {
            std::fs::write(tree.join(DIR).join(name), content(&self.tag, name))
                .map_err(|e| format!("stage {name}: {e}"))?;
        }
        let image = stage.path().join("fs.img");
        File::create(&image)
            .and_then(|f| f.set_len(len))
            .map_err(|e| format!("create the staging image: {e}"))?;
        tools
            .mkfs_ext4
            .command()
            .args(["-q", "-F", "-d"])
            .arg(&tree)
            .arg(&image)
            .run()
            .await
            .map_err(|e| e.to_string())?;

        tokio::task::spawn_blocking(move || -> Result<(), String> {
            let src = File::open(&image).map_err(|e| e.to_string())?;
            writer
                .zero_range(0, len)
                .map_err(|e| format!("zero_range: {e}"))?;
            let mut buf = vec![0u8; CHUNK];
            let mut off = 0;
            while off < len {
                let n = (len - off).min(CHUNK as u64) as usize;
                src.read_exact_at(&mut buf[..n], off)
                    .map_err(|e| e.to_string())?;
                if buf[..n].iter().any(|&b| b != 0) {
                    writer
                        .write_at(off, &buf[..n])
                        .map_err(|e| format!("write_at {off}: {e}"))?;
                }
                off += n as u64;
            }
            writer.flush().map_err(|e| format!("flush: {e}"))
        })
        .await
        .map_err(|e| format!("write task: {e}"))?
    }

    /// Reads the files out of an image with `debugfs rdump`.
    async fn read_debugfs(&self, image: &Path) -> Result<Files, String> {
        let tools = self.tools()?;
        let out = temp_dir(&self.tag, "rdump").map_err(|e| e.to_string())?;
        let listing = tools
            .debugfs
            .command()
            .args(["-R", "ls -l /"])
            .arg(image)
            .run()
            .await
            .map_err(|e| e.to_string())?;
        if !listing.stdout.contains(DIR) {
            return Ok(Files::new());
        }
        tools
            .debugfs
            .command()
            .arg("-R")
            .arg(format!("rdump /{DIR} {}", out.path().display()))
            .arg(image)
            .run()
            .await
            .map_err(|e| e.to_string())?;
        let root = out.path().to_path_buf();
        let tag = self.tag.clone();
        tokio::task::spawn_blocking(move || read_dir_files(&tag, &root))
            .await
            .map_err(|e| format!("read task: {e}"))?
    }
}

fn ext4_mount(read_only: bool) -> MountOptions {
    MountOptions {
        fs_type: Some("ext4".to_string()),
        read_only,
        options: Vec::new(),
    }
}
