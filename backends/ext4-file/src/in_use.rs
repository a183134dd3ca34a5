//! Whether an image is in use outside kiln: the loop devices backed by it
//! (`losetup -j`), and where those are mounted.
//!
//! Read from the kernel's own tables, `/sys/block/loop*/loop/backing_file`
//! and `/proc/self/mountinfo`, so no tool is run. kiln itself never
//! attaches images to loop devices: one that is attached was set up by
//! someone else, and growing the image under it would leave the device at
//! its old size with a filesystem that claims the new one.
//!
//! # Limitations
//!
//! Only loop devices are seen. A process that has the image file open
//! directly (a VMM started outside kiln) is not detected; kiln's own
//! attachments are what protect an image from that.

use std::fmt;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// One loop device backed by an image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct LoopUser {
    /// The device (`/dev/loop3`).
    pub device: PathBuf,
    /// Where it is mounted (none if only attached).
    pub mounts: Vec<String>,
}

impl fmt::Display for LoopUser {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.device.display())?;
        if self.mounts.is_empty() {
            f.write_str(" (attached, not mounted)")
        } else {
            write!(f, " mounted at {}", self.mounts.join(", "))
        }
    }
}

/// The loop devices whose backing file is `image` (the same file, by
/// device and inode), each with its mount points.
pub(crate) fn loop_users(image: &Path) -> io::Result<Vec<LoopUser>> {
    let meta = std::fs::metadata(image)?;
    let wanted = (meta.dev(), meta.ino());
    let mut users = Vec::new();
    let blocks = match std::fs::read_dir("/sys/block") {
        Ok(rd) => rd,
        // No sysfs (a minimal container): no loop device can be seen.
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(users),
        Err(e) => return Err(e),
    };
    for entry in blocks {
        let entry = entry?;
        let name = entry.file_name();
        let Some(name) = name.to_str().filter(|n| n.starts_with("loop")) else {
            continue;
        };
        let dir = entry.path();
        // Present only while a file is attached.
        let Ok(backing) = std::fs::read_to_string(dir.join("loop/backing_file")) else {
            continue;
        };
        // A backing file removed since shows as "PATH (deleted)" and
        // fails to stat: it is not this image.
        let same = std::fs::metadata(backing.trim_end_matches('\n'))
            .is_ok_and(|m| (m.dev(), m.ino()) == wanted);
        if !same {
            continue;
        }
        let dev_number = std::fs::read_to_string(dir.join("dev"))?;
        users.push(LoopUser {
            device: Path::new("/dev").join(name),
            mounts: mounts_of(dev_number.trim())?,
        });
    }
    users.sort_by(|a, b| a.device.cmp(&b.device));
    Ok(users)
}

/// The mount points of the filesystem on device `major:minor`.
fn mounts_of(dev_number: &str) -> io::Result<Vec<String>> {
    let table = std::fs::read_to_string("/proc/self/mountinfo")?;
    Ok(table
        .lines()
        .filter_map(|line| {
            // ID PARENT MAJOR:MINOR ROOT MOUNT_POINT ...
            let mut fields = line.split(' ');
            let number = fields.nth(2)?;
            let point = fields.nth(1)?;
            (number == dev_number).then(|| unescape(point))
        })
        .collect())
}

/// A mountinfo field with its octal escapes (`\040` for a space) undone.
fn unescape(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let octal = bytes
            .get(i + 1..i + 4)
            .filter(|d| bytes[i] == b'\\' && d.iter().all(|c| (b'0'..=b'7').contains(c)));
        match octal {
            Some(d) => {
                let value = d.iter().fold(0u32, |v, c| v * 8 + u32::from(c - b'0'));
                out.push(u8::try_from(value).unwrap_or(b'?'));
                i += 4;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mountinfo_escapes_are_undone() {
        assert_eq!(unescape(r"/mnt/a\040b"), "/mnt/a b");
        assert_eq!(unescape(r"/mnt/back\134slash"), r"/mnt/back\slash");
        assert_eq!(unescape(r"/plain"), "/plain");
        assert_eq!(unescape(r"/odd\09"), r"/odd\09");
    }

    #[test]
    fn a_file_no_loop_device_uses_has_no_users() {
        let dir = tempfile::tempdir().expect("a temp dir");
        let file = dir.path().join("image");
        std::fs::write(&file, b"x").expect("write");
        assert_eq!(loop_users(&file).expect("read the tables"), Vec::new());
    }
}
