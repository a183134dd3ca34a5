//! Copying images without filling holes: a reflink where the filesystem
//! has them, else only the data ranges, copied inside the kernel.
//!
//! Never `std::fs::copy` (it would write every hole out as zeros).

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::Path;

use crate::error::Ext4FileError;
use crate::sys;

/// How a copy was made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CopyMethod {
    /// `FICLONE`: shared blocks, constant time.
    Reflink,
    /// The data ranges copied, the holes left holes.
    Sparse,
}

/// Creates `dst` (which must not exist) as a copy of `src`, by reflink if
/// `reflink`, else by a hole-preserving copy. `dst` is left for the caller
/// to sync and remove on failure.
pub(crate) fn copy_image(
    src: &Path,
    dst: &Path,
    reflink: bool,
) -> Result<CopyMethod, Ext4FileError> {
    let from = File::open(src).map_err(|e| Ext4FileError::io("open", src, e))?;
    let to = File::options()
        .read(true)
        .write(true)
        .create_new(true)
        .open(dst)
        .map_err(|e| Ext4FileError::io("create", dst, e))?;
    if reflink {
        sys::ficlone(&to, &from).map_err(|e| Ext4FileError::io("reflink into", dst, e))?;
        return Ok(CopyMethod::Reflink);
    }
    sparse_copy(&from, &to, src, dst)?;
    Ok(CopyMethod::Sparse)
}

/// Copies the data ranges of `from` into `to`, which becomes as long as
/// `from` with holes where `from` has them.
fn sparse_copy(from: &File, to: &File, src: &Path, dst: &Path) -> Result<(), Ext4FileError> {
    let len = from
        .metadata()
        .map_err(|e| Ext4FileError::io("stat", src, e))?
        .len();
    to.set_len(len)
        .map_err(|e| Ext4FileError::io("set the size of", dst, e))?;
    let ranges =
        sys::data_ranges(from, len).map_err(|e| Ext4FileError::io("find the data of", src, e))?;
    let mut in_kernel = true;
    for r in ranges {
        if in_kernel {
            match sys::copy_range(from, to, r.start, r.end - r.start) {
                Ok(()) => continue,
                Err(e) if cannot_copy_in_kernel(&e) => {
                    tracing::debug!(
                        src = %src.display(),
                        error = %e,
                        "copy_file_range unavailable; copying through memory",
                    );
                    in_kernel = false;
                }
                Err(e) => return Err(Ext4FileError::io("copy into", dst, e)),
            }
        }
        copy_through_memory(from, to, r.start, r.end - r.start, src, dst)?;
    }
    Ok(())
}

fn cannot_copy_in_kernel(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EXDEV | libc::EOPNOTSUPP | libc::ENOSYS | libc::EINVAL)
    )
}

/// The buffer of [`copy_through_memory`].
const CHUNK: usize = 1 << 20;

/// Copies a data range by reads and writes, skipping all-zero chunks so
/// they stay holes in `to`.
fn copy_through_memory(
    from: &File,
    to: &File,
    offset: u64,
    len: u64,
    src: &Path,
    dst: &Path,
) -> Result<(), Ext4FileError> {
    let mut buf = vec![0u8; CHUNK];
    let mut done = 0;
    while done < len {
        let n = (len - done).min(CHUNK as u64) as usize;
        let chunk = &mut buf[..n];
        from.read_exact_at(chunk, offset + done)
            .map_err(|e| Ext4FileError::io("read", src, e))?;
        if chunk.iter().any(|&b| b != 0) {
            to.write_all_at(chunk, offset + done)
                .map_err(|e| Ext4FileError::io("write", dst, e))?;
        }
        done += n as u64;
    }
    Ok(())
}

/// Whether the filesystem of `dir` has reflinks: clones one small temp
/// file onto another and removes both.
pub(crate) fn probe_reflink(dir: &Path) -> Result<bool, Ext4FileError> {
    let stem = format!(".reflink-probe-{}", std::process::id());
    let a = dir.join(format!("{stem}.a"));
    let b = dir.join(format!("{stem}.b"));
    let result = (|| {
        // FICLONE reads the source: it must be open for reading too.
        let fa = File::options()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&a)
            .map_err(|e| Ext4FileError::io("create", &a, e))?;
        fa.write_all_at(&[0x6b; 4096], 0)
            .map_err(|e| Ext4FileError::io("write", &a, e))?;
        let fb = File::create(&b).map_err(|e| Ext4FileError::io("create", &b, e))?;
        match sys::ficlone(&fb, &fa) {
            Ok(()) => Ok(true),
            Err(e) if sys::is_no_reflink(&e) => Ok(false),
            Err(e) => Err(Ext4FileError::io("reflink into", &b, e)),
        }
    })();
    for p in [&a, &b] {
        if let Err(e) = std::fs::remove_file(p) {
            if e.kind() != io::ErrorKind::NotFound {
                tracing::warn!(
                    path = %p.display(),
                    error = %e,
                    "cannot remove the reflink probe file",
                );
            }
        }
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sparse_copy_keeps_holes_and_data() {
        let dir = tempfile::tempdir().expect("a temp dir");
        let src = dir.path().join("src");
        let dst = dir.path().join("dst");
        let f = File::create(&src).expect("create");
        f.set_len(64 << 20).expect("set_len");
        f.write_all_at(&[3u8; 1 << 20], 8 << 20).expect("write");
        f.write_all_at(&[5u8; 4096], (64 << 20) - 4096)
            .expect("write");
        f.sync_all().expect("sync");

        assert_eq!(
            copy_image(&src, &dst, false).expect("copy"),
            CopyMethod::Sparse
        );
        let a = std::fs::read(&src).expect("read src");
        let b = std::fs::read(&dst).expect("read dst");
        assert!(a == b, "the copy differs from its source");
        use std::os::unix::fs::MetadataExt;
        let blocks = std::fs::metadata(&dst).expect("stat").blocks() * 512;
        assert!(blocks < 4 << 20, "the copy allocated {blocks} bytes");
        copy_image(&src, &dst, false).expect_err("dst exists");
    }
}
