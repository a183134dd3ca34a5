//! Block I/O on a block device, for backends whose volumes are devices
//! (an LVM thin LV, a zvol) rather than image files.
//!
//! [`BlockDevice`] implements [`BlockRead`] and [`BlockWrite`] with
//! positioned reads and writes (`pread`/`pwrite`). Zeroing a range
//! deallocates it where the backend says a discard reads back as zeros
//! ([`ZeroMode::DiscardZeroes`]): the part aligned to the device's discard
//! granularity is discarded (`BLKDISCARD`), the unaligned edges are zeroed
//! (`BLKZEROOUT`, or plain zero writes for sub-sector pieces).
//!
//! # Limitations
//!
//! [`BlockRead::allocated`] reports the whole device as data: a block
//! device does not tell where its holes are, so kiln finds zero blocks by
//! reading them.

use std::fs::{File, OpenOptions};
use std::io::{Seek, SeekFrom};
use std::ops::Range;
use std::os::unix::fs::{FileExt, FileTypeExt, MetadataExt};
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};

use crate::error::{BackendError, Error, ErrorKind};
use crate::store::{BlockRead, BlockWrite};

/// `_IO(0x12, 119)`: discard a byte range (`[start, len]`, 512-aligned).
const BLKDISCARD: libc::c_ulong = 0x1277;
/// `_IO(0x12, 127)`: zero a byte range (`[start, len]`, 512-aligned).
const BLKZEROOUT: libc::c_ulong = 0x127f;
/// The sector size the range ioctls count in.
const SECTOR: u64 = 512;
/// The largest zero buffer written at once.
const ZERO_CHUNK: usize = 1 << 20;

/// What a discard means on this device.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ZeroMode {
    /// A discard of whole discard-granularity units makes them read as
    /// zeros and frees their space (dm-thin, zvols).
    DiscardZeroes,
    /// Discards promise nothing: zero by `BLKZEROOUT` only.
    WriteZeroes,
}

/// An open block device (or anything `pread`/`pwrite` work on).
#[derive(Debug)]
pub struct BlockDevice {
    file: File,
    path: PathBuf,
    len: u64,
    mode: ZeroMode,
    discard_granularity: u64,
}

fn io_err(operation: &'static str, path: &Path, source: std::io::Error) -> BackendError {
    let kind = if source.kind() == std::io::ErrorKind::NotFound {
        ErrorKind::NotFound
    } else {
        ErrorKind::Internal
    };
    BackendError::new(
        kind,
        Error::Io {
            operation,
            path: path.display().to_string(),
            source,
        },
    )
}

impl BlockDevice {
    /// Opens `path` for reading.
    pub fn open_read(path: &Path) -> Result<Self, BackendError> {
        Self::open(path, false, ZeroMode::WriteZeroes)
    }

    /// Opens `path` for reading and writing; `mode` says how to zero.
    pub fn open_write(path: &Path, mode: ZeroMode) -> Result<Self, BackendError> {
        Self::open(path, true, mode)
    }

    fn open(path: &Path, write: bool, mode: ZeroMode) -> Result<Self, BackendError> {
        let mut file = OpenOptions::new()
            .read(true)
            .write(write)
            .open(path)
            .map_err(|e| io_err("open", path, e))?;
        let len = file
            .seek(SeekFrom::End(0))
            .map_err(|e| io_err("size", path, e))?;
        let meta = file.metadata().map_err(|e| io_err("stat", path, e))?;
        let discard_granularity = if meta.file_type().is_block_device() {
            discard_granularity(meta.rdev())
        } else {
            0
        };
        Ok(Self {
            file,
            path: path.to_path_buf(),
            len,
            mode,
            discard_granularity,
        })
    }

    /// The path this device was opened at.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn check_range(&self, offset: u64, len: u64) -> Result<(), BackendError> {
        match offset.checked_add(len) {
            Some(end) if end <= self.len => Ok(()),
            _ => Err(BackendError::new(
                ErrorKind::InvalidInput,
                format!(
                    "range {offset}+{len} passes the end of {} ({} bytes)",
                    self.path.display(),
                    self.len
                ),
            )),
        }
    }

    fn range_ioctl(&self, request: libc::c_ulong, start: u64, len: u64) -> std::io::Result<()> {
        let range: [u64; 2] = [start, len];
        // SAFETY: the fd is open for as long as `self`, and both ioctls read
        // exactly two u64s from the pointer, which points at `range`.
        let rc = unsafe { libc::ioctl(self.file.as_raw_fd(), request as _, range.as_ptr()) };
        if rc == 0 {
            Ok(())
        } else {
            Err(std::io::Error::last_os_error())
        }
    }

    fn write_zeros(&self, mut offset: u64, end: u64) -> Result<(), BackendError> {
        let zeros = vec![0u8; ZERO_CHUNK.min((end - offset) as usize)];
        while offset < end {
            let n = zeros.len().min((end - offset) as usize);
            self.file
                .write_all_at(&zeros[..n], offset)
                .map_err(|e| io_err("write zeros to", &self.path, e))?;
            offset += n as u64;
        }
        Ok(())
    }

    /// Zeroes `start..end` by `BLKZEROOUT` where sector-aligned, by writes
    /// elsewhere.
    fn zero_out(&self, start: u64, end: u64) -> Result<(), BackendError> {
        let a = start.next_multiple_of(SECTOR).min(end);
        let b = (end / SECTOR * SECTOR).max(a);
        self.write_zeros(start, a)?;
        if b > a && self.range_ioctl(BLKZEROOUT, a, b - a).is_err() {
            // Not a block device (or an old kernel): zeros by hand.
            self.write_zeros(a, b)?;
        }
        self.write_zeros(b, end)
    }
}

/// The discard granularity of device `rdev` from sysfs; 0 when it has none.
fn discard_granularity(rdev: u64) -> u64 {
    let major = ((rdev >> 8) & 0xfff) | ((rdev >> 32) & !0xfff);
    let minor = (rdev & 0xff) | ((rdev >> 12) & !0xff);
    let queue = format!("/sys/dev/block/{major}:{minor}/queue");
    let read = |name: &str| -> u64 {
        std::fs::read_to_string(format!("{queue}/{name}"))
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(0)
    };
    if read("discard_max_bytes") == 0 {
        0
    } else {
        read("discard_granularity")
    }
}

impl BlockRead for BlockDevice {
    fn len(&self) -> u64 {
        self.len
    }

    fn allocated(&self) -> Result<Vec<Range<u64>>, BackendError> {
        let whole = 0..self.len;
        Ok(vec![whole])
    }

    fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<(), BackendError> {
        self.check_range(offset, buf.len() as u64)?;
        self.file
            .read_exact_at(buf, offset)
            .map_err(|e| io_err("read", &self.path, e))
    }
}

impl BlockWrite for BlockDevice {
    fn len(&self) -> u64 {
        self.len
    }

    fn write_at(&self, offset: u64, data: &[u8]) -> Result<(), BackendError> {
        self.check_range(offset, data.len() as u64)?;
        self.file
            .write_all_at(data, offset)
            .map_err(|e| io_err("write", &self.path, e))
    }

    fn zero_range(&self, offset: u64, len: u64) -> Result<(), BackendError> {
        self.check_range(offset, len)?;
        let end = offset + len;
        let g = self.discard_granularity;
        if self.mode == ZeroMode::WriteZeroes || g == 0 || g % SECTOR != 0 {
            return self.zero_out(offset, end);
        }
        let a = offset.next_multiple_of(g).min(end);
        let b = (end / g * g).max(a);
        self.zero_out(offset, a)?;
        if b > a && self.range_ioctl(BLKDISCARD, a, b - a).is_err() {
            self.zero_out(a, b)?;
        }
        self.zero_out(b, end)
    }

    fn flush(&self) -> Result<(), BackendError> {
        self.file
            .sync_all()
            .map_err(|e| io_err("flush", &self.path, e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_range_zeroes_unaligned_ranges_of_a_file() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("dev");
        std::fs::write(&path, vec![0xabu8; 8192]).expect("write image");
        let dev = BlockDevice::open_write(&path, ZeroMode::DiscardZeroes).expect("open");
        assert_eq!(BlockWrite::len(&dev), 8192);

        dev.zero_range(100, 5000).expect("zero");
        let mut buf = vec![0u8; 8192];
        dev.read_at(0, &mut buf).expect("read");
        assert!(buf[..100].iter().all(|&b| b == 0xab));
        assert!(buf[100..5100].iter().all(|&b| b == 0));
        assert!(buf[5100..].iter().all(|&b| b == 0xab));
    }

    #[test]
    fn ranges_past_the_end_are_refused() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("dev");
        std::fs::write(&path, vec![0u8; 4096]).expect("write image");
        let dev = BlockDevice::open_write(&path, ZeroMode::WriteZeroes).expect("open");
        let err = dev.write_at(4000, &[1; 200]).expect_err("past the end");
        assert_eq!(err.kind(), ErrorKind::InvalidInput);
        let mut buf = [0u8; 10];
        assert!(dev.read_at(4090, &mut buf).is_err());
    }
}
