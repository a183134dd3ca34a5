//! Block access to an image file: positioned reads and writes, holes
//! found with `SEEK_DATA`/`SEEK_HOLE`, zeroing by hole punching.

use std::fs::File;
use std::ops::Range;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;

use kiln_core::{BackendError, BlockRead, BlockWrite};

use crate::error::Ext4FileError;
use crate::sys;

/// Reads of a volume or snapshot image.
#[derive(Debug)]
pub(crate) struct ImageReader {
    file: File,
    path: PathBuf,
    len: u64,
}

impl ImageReader {
    /// Opens `path` read-only.
    pub(crate) fn open(path: PathBuf) -> Result<Self, Ext4FileError> {
        let file = File::open(&path).map_err(|e| Ext4FileError::io("open", &path, e))?;
        let len = file
            .metadata()
            .map_err(|e| Ext4FileError::io("stat", &path, e))?
            .len();
        Ok(Self { file, path, len })
    }
}

fn check_range(
    operation: &'static str,
    path: &std::path::Path,
    offset: u64,
    len: u64,
    size: u64,
) -> Result<(), Ext4FileError> {
    match offset.checked_add(len) {
        Some(end) if end <= size => Ok(()),
        _ => Err(Ext4FileError::OutOfRange {
            operation,
            path: path.to_path_buf(),
            offset,
            len,
            size,
        }),
    }
}

impl BlockRead for ImageReader {
    fn len(&self) -> u64 {
        self.len
    }

    fn allocated(&self) -> Result<Vec<Range<u64>>, BackendError> {
        sys::data_ranges(&self.file, self.len)
            .map_err(|e| Ext4FileError::io("find the data of", &self.path, e).into())
    }

    fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<(), BackendError> {
        check_range("read", &self.path, offset, buf.len() as u64, self.len)?;
        self.file
            .read_exact_at(buf, offset)
            .map_err(|e| Ext4FileError::io("read", &self.path, e).into())
    }
}

/// Writes into a volume image.
#[derive(Debug)]
pub(crate) struct ImageWriter {
    file: File,
    path: PathBuf,
    len: u64,
}

impl ImageWriter {
    /// Opens `path` for writing (never creating it).
    pub(crate) fn open(path: PathBuf) -> Result<Self, Ext4FileError> {
        let file = File::options()
            .read(true)
            .write(true)
            .open(&path)
            .map_err(|e| Ext4FileError::io("open", &path, e))?;
        let len = file
            .metadata()
            .map_err(|e| Ext4FileError::io("stat", &path, e))?
            .len();
        Ok(Self { file, path, len })
    }
}

/// The largest run of zeros written at once where hole punching is missing.
const ZERO_CHUNK: u64 = 1 << 20;

impl BlockWrite for ImageWriter {
    fn len(&self) -> u64 {
        self.len
    }

    fn write_at(&self, offset: u64, data: &[u8]) -> Result<(), BackendError> {
        check_range("write", &self.path, offset, data.len() as u64, self.len)?;
        self.file
            .write_all_at(data, offset)
            .map_err(|e| Ext4FileError::io("write", &self.path, e).into())
    }

    fn zero_range(&self, offset: u64, len: u64) -> Result<(), BackendError> {
        check_range("write", &self.path, offset, len, self.len)?;
        if len == 0 {
            return Ok(());
        }
        match sys::punch_hole(&self.file, offset, len) {
            Ok(()) => return Ok(()),
            Err(e) if e.raw_os_error() == Some(libc::EOPNOTSUPP) => {
                tracing::debug!(path = %self.path.display(), "no hole punching; writing zeros");
            }
            Err(e) => return Err(Ext4FileError::io("punch a hole in", &self.path, e).into()),
        }
        let zeros = vec![0u8; ZERO_CHUNK.min(len) as usize];
        let mut done = 0;
        while done < len {
            let n = (len - done).min(ZERO_CHUNK) as usize;
            self.file
                .write_all_at(&zeros[..n], offset + done)
                .map_err(|e| Ext4FileError::io("write", &self.path, e))?;
            done += n as u64;
        }
        Ok(())
    }

    fn flush(&self) -> Result<(), BackendError> {
        self.file
            .sync_all()
            .map_err(|e| Ext4FileError::io("fsync", &self.path, e).into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holes_punched_and_written_ranges_are_reported() {
        let dir = tempfile::tempdir().expect("a temp dir");
        let path = dir.path().join("img");
        let f = File::create(&path).expect("create");
        f.set_len(16 << 20).expect("set_len");
        drop(f);

        let w = ImageWriter::open(path.clone()).expect("open for writing");
        w.write_at(4 << 20, &[7u8; 1 << 20]).expect("write");
        w.write_at(10 << 20, &[9u8; 1 << 20]).expect("write");
        w.flush().expect("flush");
        w.zero_range(10 << 20, 1 << 20).expect("punch");
        w.write_at(16 << 20, &[1]).expect_err("past the end");

        let r = ImageReader::open(path).expect("open for reading");
        let ranges = r.allocated().expect("ranges");
        let total: u64 = ranges.iter().map(|r| r.end - r.start).sum();
        assert!(
            ranges
                .iter()
                .any(|r| r.start <= 4 << 20 && r.end >= 5 << 20),
            "{ranges:?}"
        );
        assert!(total < 4 << 20, "{ranges:?}");
        let mut buf = vec![1u8; 4096];
        r.read_at(10 << 20, &mut buf).expect("read");
        assert!(buf.iter().all(|&b| b == 0));
        r.read_at(4 << 20, &mut buf).expect("read");
        assert!(buf.iter().all(|&b| b == 7));
    }
}
