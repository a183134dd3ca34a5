//! Shared by the backup tests: block I/O over real sparse image files,
//! engines over the real targets, and content helpers.

#![allow(dead_code)]

use std::fs::{File, OpenOptions};
use std::ops::Range;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use kiln_core::backup::{BackupEngine, BackupSettings, BackupSource, Consistency};
use kiln_core::config::TargetConfig;
use kiln_core::{BackendError, BlockRead, BlockWrite, ErrorKind, Owner, PoolName, VolumeName};
use kiln_object_store::ObjectStore;

pub const MIB: u64 = 1 << 20;

/// A sparse image file read and written with positioned I/O; holes found
/// with `SEEK_DATA`/`SEEK_HOLE`, punched with `FALLOC_FL_PUNCH_HOLE`.
#[derive(Debug)]
pub struct Image {
    pub path: PathBuf,
    file: File,
}

fn io_err(e: std::io::Error) -> BackendError {
    BackendError::new(ErrorKind::Internal, e)
}

impl Image {
    /// A new all-hole image of `size` bytes.
    pub fn create(path: &Path, size: u64) -> Self {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(path)
            .unwrap_or_else(|e| panic!("create {}: {e}", path.display()));
        file.set_len(size).expect("size the image");
        Self {
            path: path.to_path_buf(),
            file,
        }
    }

    /// Opens an existing image.
    pub fn open(path: &Path) -> Self {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
            .unwrap_or_else(|e| panic!("open {}: {e}", path.display()));
        Self {
            path: path.to_path_buf(),
            file,
        }
    }

    /// Bytes allocated on disk.
    pub fn allocated_bytes(&self) -> u64 {
        self.file.metadata().expect("stat the image").blocks() * 512
    }

    /// The whole content.
    pub fn contents(&self) -> Vec<u8> {
        std::fs::read(&self.path).expect("read the image")
    }

    fn seek(&self, offset: u64, whence: libc::c_int) -> Option<u64> {
        // SAFETY: lseek on a file descriptor this struct owns; no memory
        // is passed.
        let r = unsafe { libc::lseek(self.file.as_raw_fd(), offset as libc::off_t, whence) };
        (r >= 0).then_some(r as u64)
    }
}

impl BlockRead for Image {
    fn len(&self) -> u64 {
        self.file.metadata().map(|m| m.len()).unwrap_or(0)
    }

    fn allocated(&self) -> Result<Vec<Range<u64>>, BackendError> {
        let len = BlockRead::len(self);
        let mut out = Vec::new();
        let mut at = 0;
        while at < len {
            let Some(start) = self.seek(at, libc::SEEK_DATA) else {
                break;
            };
            let end = self.seek(start, libc::SEEK_HOLE).unwrap_or(len);
            out.push(start..end);
            at = end;
        }
        Ok(out)
    }

    fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<(), BackendError> {
        self.file.read_exact_at(buf, offset).map_err(io_err)
    }
}

impl BlockWrite for Image {
    fn len(&self) -> u64 {
        BlockRead::len(self)
    }

    fn write_at(&self, offset: u64, data: &[u8]) -> Result<(), BackendError> {
        self.file.write_all_at(data, offset).map_err(io_err)
    }

    fn zero_range(&self, offset: u64, len: u64) -> Result<(), BackendError> {
        // SAFETY: fallocate on a file descriptor this struct owns.
        let r = unsafe {
            libc::fallocate(
                self.file.as_raw_fd(),
                libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE,
                offset as libc::off_t,
                len as libc::off_t,
            )
        };
        if r == 0 {
            Ok(())
        } else {
            Err(io_err(std::io::Error::last_os_error()))
        }
    }

    fn flush(&self) -> Result<(), BackendError> {
        self.file.sync_data().map_err(io_err)
    }
}

/// Settings for tests: small blocks, no gc grace.
pub fn settings(block_mib: u64, concurrency: usize) -> BackupSettings {
    BackupSettings {
        block_size: block_mib * MIB,
        compression_level: 3,
        concurrency,
        gc_grace: std::time::Duration::ZERO,
        key: None,
    }
}

pub fn engine(target: &TargetConfig, settings: BackupSettings) -> BackupEngine {
    let store = ObjectStore::from_config(target).expect("open the backup target");
    BackupEngine::new(Arc::new(store), settings)
}

pub fn source(owner: &str, volume: &str) -> BackupSource {
    BackupSource {
        volume: VolumeName::new(volume).expect("valid volume name"),
        owner: Owner::new(owner).expect("valid owner"),
        pool: PoolName::new("default").expect("valid pool name"),
        driver: "ext4-file".into(),
        consistency: Consistency::Clean,
    }
}

/// Deterministic incompressible bytes.
pub fn noise(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
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

/// A unique tag for resources of one test.
pub fn tag() -> String {
    format!(
        "{}-{}",
        std::process::id(),
        noise(nanos(), 4)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    )
}

fn nanos() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(1)
}

pub fn tempdir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix(&format!("kiln-backup-{}-", tag()))
        .tempdir()
        .expect("make a temporary folder")
}

/// Whether the process runs as root (the `root_` tests need it).
pub fn require_root() {
    // SAFETY: geteuid has no preconditions.
    let uid = unsafe { libc::geteuid() };
    assert_eq!(uid, 0, "this test needs root (loop-mounting ext4 images)");
}
