//! Host resources the suite (and drivers' test set-ups) make and must
//! clean up: loop devices, mounts, temporary folders, each tagged.
//!
//! Every guard undoes exactly what it made, on drop too (so a failing or
//! panicking scenario still cleans up), and touches nothing else: a loop
//! device is detached only if this guard attached it, a folder removed
//! only if this guard made it.

use std::path::{Path, PathBuf};
use std::process::Stdio;

use kiln_core::exec::{ExecError, Tool};

/// The host tools the suite uses, resolved once.
#[derive(Debug, Clone)]
pub struct HostTools {
    losetup: Tool,
    mount: Tool,
    umount: Tool,
    /// `mkfs.ext4`, for filesystems written through block I/O.
    pub mkfs_ext4: Tool,
    /// `debugfs`, for reading files out of an image without mounting it.
    pub debugfs: Tool,
}

impl HostTools {
    /// Resolves the tools; fails naming the first missing one.
    pub fn resolve() -> Result<Self, ExecError> {
        Ok(Self {
            losetup: Tool::resolve("losetup")?,
            mount: Tool::resolve("mount")?,
            umount: Tool::resolve("umount")?,
            mkfs_ext4: Tool::resolve("mkfs.ext4")?,
            debugfs: Tool::resolve("debugfs")?,
        })
    }
}

/// Whether this process runs as root (loop devices and mounts need it).
pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// A temporary folder named `kiln-<tag>-<what>-XXXXXX`, removed on drop.
pub fn temp_dir(tag: &str, what: &str) -> std::io::Result<tempfile::TempDir> {
    tempfile::Builder::new()
        .prefix(&format!("kiln-{tag}-{what}-"))
        .tempdir()
}

/// Runs a cleanup command synchronously (from `Drop`), logging a failure.
fn cleanup_run(tool: &Tool, args: &[&std::ffi::OsStr]) -> bool {
    let out = std::process::Command::new(tool.path())
        .args(args)
        .env("LC_ALL", "C")
        .stdin(Stdio::null())
        .output();
    match out {
        Ok(o) if o.status.success() => true,
        Ok(o) => {
            tracing::warn!(
                tool = tool.name(),
                ?args,
                stderr = %String::from_utf8_lossy(&o.stderr).trim(),
                "cleanup command failed"
            );
            false
        }
        Err(e) => {
            tracing::warn!(tool = tool.name(), ?args, error = %e, "cleanup command did not run");
            false
        }
    }
}

/// A loop device this process attached to an image file; detached on
/// [`LoopDevice::detach`] or drop.
#[derive(Debug)]
pub struct LoopDevice {
    device: PathBuf,
    losetup: Tool,
    attached: bool,
}

impl LoopDevice {
    /// Attaches a free loop device to `file`.
    pub async fn attach(
        tools: &HostTools,
        file: &Path,
        read_only: bool,
    ) -> Result<Self, ExecError> {
        let mut cmd = tools.losetup.command().args(["--find", "--show"]);
        if read_only {
            cmd = cmd.arg("--read-only");
        }
        let out = cmd.arg(file).run().await?;
        Ok(Self {
            device: PathBuf::from(out.stdout.trim()),
            losetup: tools.losetup.clone(),
            attached: true,
        })
    }

    /// The device (`/dev/loopN`).
    pub fn path(&self) -> &Path {
        &self.device
    }

    /// Detaches the device, reporting a failure.
    pub async fn detach(mut self) -> Result<(), ExecError> {
        self.attached = false;
        self.losetup
            .command()
            .arg("-d")
            .arg(&self.device)
            .run()
            .await
            .map(drop)
    }
}

impl Drop for LoopDevice {
    fn drop(&mut self) {
        if self.attached {
            cleanup_run(&self.losetup, &["-d".as_ref(), self.device.as_os_str()]);
        }
    }
}

/// How often [`Mounted::unmount`] retries a busy mount, and how long it
/// waits between tries.
const UMOUNT_RETRIES: u32 = 20;
const UMOUNT_PAUSE: std::time::Duration = std::time::Duration::from_millis(100);

/// A filesystem this process mounted on a tagged temporary folder (through
/// a loop device of its own when the source is a file); unmounted, the
/// loop device detached and the folder removed on [`Mounted::unmount`] or
/// drop.
#[derive(Debug)]
pub struct Mounted {
    dir: Option<tempfile::TempDir>,
    loop_device: Option<LoopDevice>,
    umount: Tool,
    mounted: bool,
}

/// How to mount.
#[derive(Debug, Clone, Default)]
pub struct MountOptions {
    /// `-t`, when not left to `mount` to find.
    pub fs_type: Option<String>,
    /// Read-only (a loop device is attached read-only too).
    pub read_only: bool,
    /// Extra `-o` options (`noload`).
    pub options: Vec<String>,
}

impl Mounted {
    /// Mounts `source`, a block device or an image file, on a new folder
    /// tagged `tag`.
    pub async fn mount(
        tools: &HostTools,
        source: &Path,
        tag: &str,
        opts: &MountOptions,
    ) -> Result<Self, String> {
        let meta =
            std::fs::metadata(source).map_err(|e| format!("stat {}: {e}", source.display()))?;
        let loop_device = if meta.is_file() {
            Some(
                LoopDevice::attach(tools, source, opts.read_only)
                    .await
                    .map_err(|e| format!("attach a loop device to {}: {e}", source.display()))?,
            )
        } else {
            None
        };
        let device = loop_device
            .as_ref()
            .map_or(source.to_path_buf(), |l| l.path().to_path_buf());
        let dir = temp_dir(tag, "mnt").map_err(|e| format!("make a mount folder: {e}"))?;

        let mut o = opts.options.clone();
        if opts.read_only {
            o.push("ro".to_string());
        }
        let mut cmd = tools.mount.command();
        if let Some(t) = &opts.fs_type {
            cmd = cmd.args(["-t", t]);
        }
        if !o.is_empty() {
            cmd = cmd.args(["-o", &o.join(",")]);
        }
        // A failed mount drops `loop_device` and `dir`, which undo
        // themselves.
        cmd.arg(&device)
            .arg(dir.path())
            .run()
            .await
            .map_err(|e| format!("mount {}: {e}", source.display()))?;
        Ok(Self {
            dir: Some(dir),
            loop_device,
            umount: tools.umount.clone(),
            mounted: true,
        })
    }

    /// Where it is mounted.
    pub fn path(&self) -> &Path {
        self.dir
            .as_ref()
            .expect("the folder is kept until unmount or drop")
            .path()
    }

    /// Unmounts, detaches and removes the folder, reporting a failure.
    pub async fn unmount(mut self) -> Result<(), String> {
        let dir = self.path().to_path_buf();
        // A process forked elsewhere in this process may hold an inherited
        // descriptor of this mount until it execs: retry "busy" for a moment.
        // On failure `self` drops still mounted, and drop tries again.
        let mut attempt = 0;
        loop {
            match self.umount.command().arg(&dir).run().await {
                Ok(_) => break,
                Err(e) if attempt < UMOUNT_RETRIES && e.stderr().contains("busy") => {
                    attempt += 1;
                    tokio::time::sleep(UMOUNT_PAUSE).await;
                }
                Err(e) => return Err(format!("unmount {}: {e}", dir.display())),
            }
        }
        self.mounted = false;
        if let Some(l) = self.loop_device.take() {
            l.detach().await.map_err(|e| format!("detach: {e}"))?;
        }
        self.dir
            .take()
            .expect("the folder is kept until unmount or drop")
            .close()
            .map_err(|e| format!("remove the mount folder: {e}"))
    }
}

impl Drop for Mounted {
    fn drop(&mut self) {
        if !self.mounted {
            return;
        }
        let Some(dir) = self.dir.take() else { return };
        let p = dir.path().as_os_str();
        let unmounted = cleanup_run(&self.umount, &[p])
            // Busy: detach it lazily so the loop device and folder can go.
            || cleanup_run(&self.umount, &["-l".as_ref(), p]);
        if !unmounted {
            // Removing the folder now would delete the mounted files.
            let kept = dir.keep();
            tracing::warn!(path = %kept.display(), "cannot unmount; the mount and its folder stay");
            if let Some(l) = &mut self.loop_device {
                l.attached = false;
            }
        }
        // The loop device, if any, detaches as the fields drop.
    }
}
