//! The Linux calls the backend needs that `std` does not wrap: reflinks,
//! holes, hole punching, extended attributes, no-replace renames, statvfs.
//!
//! Each returns a plain [`io::Result`]; callers add the path and the
//! operation when they turn it into an [`Ext4FileError`](crate::Ext4FileError).

use std::ffi::CString;
use std::fs::File;
use std::io;
use std::ops::Range;
use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

fn cstring(p: &Path) -> io::Result<CString> {
    CString::new(p.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path holds a NUL byte"))
}

fn check(ret: libc::c_int) -> io::Result<()> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// Makes `dst` share all of `src`'s blocks (`FICLONE`).
pub(crate) fn ficlone(dst: &File, src: &File) -> io::Result<()> {
    // SAFETY: both descriptors are open for the duration of the call, and
    // FICLONE takes the source descriptor by value.
    check(unsafe { libc::ioctl(dst.as_raw_fd(), libc::FICLONE, src.as_raw_fd()) })
}

/// Whether an error from [`ficlone`] means "this filesystem has no
/// reflinks" (as opposed to a real failure).
pub(crate) fn is_no_reflink(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EOPNOTSUPP | libc::EINVAL | libc::EXDEV | libc::ENOTTY | libc::ENOSYS)
    )
}

/// `lseek` with `SEEK_DATA` or `SEEK_HOLE`; `None` past the last data.
fn seek(file: &File, offset: u64, whence: libc::c_int) -> io::Result<Option<u64>> {
    let off = libc::off_t::try_from(offset)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "offset too large"))?;
    // SAFETY: lseek on an open descriptor has no memory effects; it only
    // moves the file offset, which kiln never uses (all I/O is positioned).
    let r = unsafe { libc::lseek(file.as_raw_fd(), off, whence) };
    if r < 0 {
        let e = io::Error::last_os_error();
        if e.raw_os_error() == Some(libc::ENXIO) {
            return Ok(None);
        }
        return Err(e);
    }
    Ok(Some(r as u64))
}

/// The sorted, disjoint ranges of `file` (of size `len`) that hold data,
/// found with `SEEK_DATA`/`SEEK_HOLE`.
///
/// A filesystem without hole support reports the whole file as data, which
/// is correct, only not sparse.
pub(crate) fn data_ranges(file: &File, len: u64) -> io::Result<Vec<Range<u64>>> {
    let mut out: Vec<Range<u64>> = Vec::new();
    let mut pos = 0;
    while pos < len {
        let Some(start) = seek(file, pos, libc::SEEK_DATA)? else {
            break;
        };
        if start >= len {
            break;
        }
        let end = seek(file, start, libc::SEEK_HOLE)?.unwrap_or(len).min(len);
        if end <= start {
            break;
        }
        match out.last_mut() {
            Some(last) if last.end == start => last.end = end,
            _ => out.push(start..end),
        }
        pos = end;
    }
    Ok(out)
}

/// Copies `len` bytes at `offset` from `src` to the same offset of `dst`
/// inside the kernel.
pub(crate) fn copy_range(src: &File, dst: &File, offset: u64, len: u64) -> io::Result<()> {
    let mut done = 0u64;
    while done < len {
        let mut off_in = (offset + done) as libc::loff_t;
        let mut off_out = off_in;
        let chunk = (len - done).min(1 << 30) as usize;
        // SAFETY: both descriptors are open, and the offsets are local
        // variables the kernel updates; no buffer of ours is involved.
        let n = unsafe {
            libc::copy_file_range(
                src.as_raw_fd(),
                &mut off_in,
                dst.as_raw_fd(),
                &mut off_out,
                chunk,
                0,
            )
        };
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "copy_file_range stopped before the end of the data",
            ));
        }
        done += n as u64;
    }
    Ok(())
}

/// Deallocates `offset..offset+len` of `file`, keeping its size.
pub(crate) fn punch_hole(file: &File, offset: u64, len: u64) -> io::Result<()> {
    // SAFETY: fallocate on an open descriptor has no memory effects.
    check(unsafe {
        libc::fallocate(
            file.as_raw_fd(),
            libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE,
            offset as libc::off_t,
            len as libc::off_t,
        )
    })
}

/// Sets the extended attribute `name` of `file` to `value`.
pub(crate) fn set_xattr(file: &File, name: &str, value: &[u8]) -> io::Result<()> {
    let name = CString::new(name).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    // SAFETY: `name` is NUL-terminated and `value` is valid for its length
    // for the duration of the call.
    check(unsafe {
        libc::fsetxattr(
            file.as_raw_fd(),
            name.as_ptr(),
            value.as_ptr().cast(),
            value.len(),
            0,
        )
    })
}

/// The extended attribute `name` of `path`, `None` if it is not set.
pub(crate) fn get_xattr(path: &Path, name: &str) -> io::Result<Option<Vec<u8>>> {
    let p = cstring(path)?;
    let name = CString::new(name).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    let mut buf = vec![0u8; 256];
    // SAFETY: both strings are NUL-terminated and `buf` is writable for
    // its length for the duration of the call.
    let n = unsafe {
        libc::getxattr(
            p.as_ptr(),
            name.as_ptr(),
            buf.as_mut_ptr().cast(),
            buf.len(),
        )
    };
    if n < 0 {
        let e = io::Error::last_os_error();
        return match e.raw_os_error() {
            Some(libc::ENODATA) => Ok(None),
            _ => Err(e),
        };
    }
    buf.truncate(n as usize);
    Ok(Some(buf))
}

/// Whether an xattr error means "this filesystem has no user xattrs".
pub(crate) fn is_no_xattr(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::ENOTSUP | libc::EPERM))
}

/// Renames `from` to `to`, failing with `AlreadyExists` instead of
/// replacing `to`.
pub(crate) fn rename_noreplace(from: &Path, to: &Path) -> io::Result<()> {
    let f = cstring(from)?;
    let t = cstring(to)?;
    // SAFETY: both paths are NUL-terminated strings alive for the call.
    let r = unsafe {
        libc::renameat2(
            libc::AT_FDCWD,
            f.as_ptr(),
            libc::AT_FDCWD,
            t.as_ptr(),
            libc::RENAME_NOREPLACE,
        )
    };
    if r == 0 {
        return Ok(());
    }
    let e = io::Error::last_os_error();
    if e.raw_os_error() != Some(libc::EINVAL) {
        return Err(e);
    }
    // A filesystem without RENAME_NOREPLACE: a hard link fails on an
    // existing name just the same, and the unlink then only drops the
    // temporary name.
    std::fs::hard_link(from, to)?;
    std::fs::remove_file(from)
}

/// Syncs a folder, making renames and unlinks in it durable.
pub(crate) fn fsync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// The space of the filesystem holding `path`: (size, free for
/// unprivileged use, used), in bytes.
pub(crate) fn statvfs(path: &Path) -> io::Result<(u64, u64, u64)> {
    let p = cstring(path)?;
    // SAFETY: statvfs is plain old data; all-zero is a valid value.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: `p` is NUL-terminated and `st` is a valid out-pointer.
    check(unsafe { libc::statvfs(p.as_ptr(), &mut st) })?;
    let frsize = st.f_frsize as u64;
    let size = st.f_blocks as u64 * frsize;
    let free = st.f_bavail as u64 * frsize;
    let used = (st.f_blocks as u64).saturating_sub(st.f_bfree as u64) * frsize;
    Ok((size, free, used))
}
