//! Raw views of qcow2 images: a FUSE export by `qemu-storage-daemon`
//! presents an image's guest-visible bytes as a plain file, which
//! `mkfs.ext4`, `e2fsck`, `resize2fs` and block I/O use like a device.
//!
//! The daemon is the one long-running process of the plugin, so it is
//! started from its resolved [`Tool`] path directly (with `LC_ALL=C`, no
//! shell) rather than through the run-to-completion runner; a view lives
//! until it is stopped or dropped.

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use kiln_core::exec::Tool;

use crate::error::Qcow2Error;

/// How long an export may take to appear, and to go away.
const SETTLE: Duration = Duration::from_secs(15);

/// How often the mount point is looked at while waiting.
const POLL: Duration = Duration::from_millis(5);

/// `qemu-storage-daemon`, resolved once.
#[derive(Debug, Clone)]
pub(crate) struct StorageDaemon {
    tool: Tool,
}

/// Whether a view may be written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Access {
    /// Read-only, sharing the image with whoever else holds it.
    Read,
    /// Read-write; the image must not be in use elsewhere.
    Write,
}

/// A running raw view of one image.
#[derive(Debug)]
pub(crate) struct RawView {
    child: Option<Child>,
    image: PathBuf,
    mountpoint: PathBuf,
    log: PathBuf,
}

impl StorageDaemon {
    pub(crate) fn resolve() -> Result<Self, Qcow2Error> {
        let tool =
            Tool::resolve("qemu-storage-daemon").map_err(|source| Qcow2Error::MissingTool {
                tool: "qemu-storage-daemon (qemu-utils or qemu-system-common)",
                source,
            })?;
        Ok(Self { tool })
    }

    /// Exports `image` as a raw file under `run_dir` and waits until the
    /// file is the image's view. Blocking: call it off the async threads.
    pub(crate) fn export(
        &self,
        image: &Path,
        run_dir: &Path,
        access: Access,
    ) -> Result<RawView, Qcow2Error> {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let stem = image
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        let tag = format!(
            "{stem}-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let mountpoint = run_dir.join(format!("{tag}.raw"));
        let log = run_dir.join(format!("{tag}.log"));
        std::fs::File::create(&mountpoint)
            .map_err(Qcow2Error::io("create the mount point", &mountpoint))?;
        let log_file =
            std::fs::File::create(&log).map_err(Qcow2Error::io("create the log", &log))?;

        let read_only = access == Access::Read;
        let mut file = serde_json::json!({
            "driver": "file", "node-name": "file", "filename": image, "discard": "unmap",
        });
        // Zeros written (a restore writes whole blocks, holes included)
        // become unallocated clusters instead of data: copies stay sparse.
        let mut disk = serde_json::json!({
            "driver": "qcow2", "node-name": "disk", "file": "file", "discard": "unmap",
            "detect-zeroes": "unmap",
        });
        if read_only {
            // A reader shares the image with a writer (a VMM, or a write
            // handle): it takes no lock, and sees what the writer flushed.
            file["read-only"] = true.into();
            file["locking"] = "off".into();
            disk["read-only"] = true.into();
            disk["force-share"] = true.into();
        }
        let export = serde_json::json!({
            "type": "fuse", "id": "raw", "node-name": "disk",
            "mountpoint": mountpoint, "writable": !read_only,
        });
        let spawned = std::process::Command::new(self.tool.path())
            .arg("--blockdev")
            .arg(file.to_string())
            .arg("--blockdev")
            .arg(disk.to_string())
            .arg("--export")
            .arg(export.to_string())
            .env("LC_ALL", "C")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log_file)
            .spawn();
        let mut view = RawView {
            child: None,
            image: image.to_path_buf(),
            mountpoint,
            log,
        };
        let child = spawned.map_err(|e| view.failure(format!("cannot start: {e}")))?;
        view.child = Some(child);
        view.wait_until_mounted()?;
        tracing::debug!(image = %image.display(), view = %view.mountpoint.display(), "raw view up");
        Ok(view)
    }
}

impl RawView {
    /// The raw file.
    pub(crate) fn path(&self) -> &Path {
        &self.mountpoint
    }

    /// Stops the export and removes its files, reporting a failure to.
    pub(crate) fn stop(mut self) -> Result<(), Qcow2Error> {
        self.shut_down()
    }

    fn wait_until_mounted(&mut self) -> Result<(), Qcow2Error> {
        let deadline = Instant::now() + SETTLE;
        loop {
            if is_mounted(&self.mountpoint) {
                return Ok(());
            }
            let exited = match self.child.as_mut().map(Child::try_wait) {
                Some(Ok(Some(status))) => Some(status.to_string()),
                Some(Ok(None)) => None,
                Some(Err(e)) => Some(e.to_string()),
                None => Some("not running".to_string()),
            };
            if let Some(status) = exited {
                self.child = None;
                let err = self.failure(format!("exited ({status})"));
                drop(self.shut_down());
                return Err(err);
            }
            if Instant::now() > deadline {
                let err = self.failure(format!("not mounted after {}s", SETTLE.as_secs()));
                drop(self.shut_down());
                return Err(err);
            }
            std::thread::sleep(POLL);
        }
    }

    /// The error for a view that did not come up, with the daemon's stderr.
    fn failure(&self, what: String) -> Qcow2Error {
        let stderr = std::fs::read_to_string(&self.log).unwrap_or_default();
        let stderr = stderr.trim().lines().collect::<Vec<_>>().join(" | ");
        Qcow2Error::Export {
            image: self.image.clone(),
            reason: if stderr.is_empty() {
                what
            } else {
                format!("{what}: {stderr}")
            },
        }
    }

    fn shut_down(&mut self) -> Result<(), Qcow2Error> {
        let mut result = Ok(());
        if let Some(mut child) = self.child.take() {
            if let Err(e) = stop_child(&mut child) {
                result = Err(self.failure(e));
            }
        }
        if is_mounted(&self.mountpoint) {
            detach(&self.mountpoint);
        }
        for f in [&self.mountpoint, &self.log] {
            if let Err(e) = std::fs::remove_file(f) {
                if e.kind() != std::io::ErrorKind::NotFound {
                    tracing::warn!(path = %f.display(), error = %e, "cannot remove a raw view's file");
                }
            }
        }
        result
    }
}

impl Drop for RawView {
    fn drop(&mut self) {
        if let Err(e) = self.shut_down() {
            tracing::warn!(error = %e, "raw view did not stop cleanly; it was killed");
        }
    }
}

/// Asks the daemon to stop (it unmounts the export and flushes the image),
/// and kills it if it does not in time.
fn stop_child(child: &mut Child) -> Result<(), String> {
    let pid = libc::pid_t::try_from(child.id()).map_err(|e| e.to_string())?;
    // SAFETY: `pid` is our own child, not yet reaped (so not reused).
    unsafe { libc::kill(pid, libc::SIGTERM) };
    let deadline = Instant::now() + SETTLE;
    loop {
        match child.try_wait() {
            Ok(Some(status)) if status.success() => return Ok(()),
            Ok(Some(status)) => return Err(format!("stopped with {status}")),
            Ok(None) if Instant::now() > deadline => {
                drop(child.kill());
                drop(child.wait());
                return Err(format!(
                    "did not stop within {}s and was killed",
                    SETTLE.as_secs()
                ));
            }
            Ok(None) => std::thread::sleep(POLL),
            Err(e) => return Err(e.to_string()),
        }
    }
}

/// Whether something is mounted on `path` (its device differs from its
/// folder's).
pub(crate) fn is_mounted(path: &Path) -> bool {
    let parent = path.parent().unwrap_or(Path::new("/"));
    match (std::fs::symlink_metadata(path), std::fs::metadata(parent)) {
        (Ok(p), Ok(d)) => p.dev() != d.dev(),
        // A FUSE mount whose daemon died answers ENOTCONN: still mounted.
        (Err(e), _) => e.raw_os_error() == Some(libc::ENOTCONN),
        _ => false,
    }
}

/// Lazily unmounts a dead or stuck export.
pub(crate) fn detach(path: &Path) {
    let Ok(c) = CString::new(path.as_os_str().as_bytes()) else {
        return;
    };
    // SAFETY: `c` is a valid NUL-terminated path for the duration of the call.
    let rc = unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) };
    if rc != 0 {
        tracing::warn!(
            path = %path.display(),
            error = %std::io::Error::last_os_error(),
            "cannot unmount a stale raw view"
        );
    }
}

/// Removes the raw views a previous process left in `run_dir`.
pub(crate) fn clean_stale(run_dir: &Path) -> Result<(), Qcow2Error> {
    let entries = std::fs::read_dir(run_dir).map_err(Qcow2Error::io("list", run_dir))?;
    for entry in entries.flatten() {
        let path = entry.path();
        if is_mounted(&path) {
            tracing::warn!(path = %path.display(), "unmounting a raw view left by an earlier run");
            detach(&path);
        }
        drop(std::fs::remove_file(&path));
    }
    Ok(())
}
