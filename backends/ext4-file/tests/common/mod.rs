//! What the root tests share: a loop mount of an image, undone on drop.

use std::path::{Path, PathBuf};

use kiln_core::exec::Tool;

/// An image attached to a loop device and mounted on a temporary folder;
/// both undone on drop (also when the test panics).
pub struct LoopMount {
    dir: tempfile::TempDir,
    device: PathBuf,
    mounted: bool,
}

impl LoopMount {
    /// Attaches `image` to a free loop device and mounts it on a fresh
    /// folder named with `tag`.
    pub async fn new(image: &Path, tag: &str) -> Self {
        let out = Tool::resolve("losetup")
            .expect("losetup")
            .command()
            .args(["--find", "--show"])
            .arg(image)
            .run()
            .await
            .expect("attach a loop device");
        let device = PathBuf::from(out.stdout.trim());
        let dir = tempfile::Builder::new()
            .prefix(tag)
            .tempdir()
            .expect("a mount folder");
        let mut m = Self {
            dir,
            device,
            mounted: false,
        };
        Tool::resolve("mount")
            .expect("mount")
            .command()
            .arg(&m.device)
            .arg(m.dir.path())
            .run()
            .await
            .expect("mount the volume");
        m.mounted = true;
        m
    }

    /// The mount folder.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The loop device.
    #[allow(dead_code)]
    pub fn device(&self) -> &Path {
        &self.device
    }

    /// Unmounts, keeping the loop device attached until drop.
    #[allow(dead_code)]
    pub async fn unmount(&mut self) {
        Tool::resolve("umount")
            .expect("umount")
            .command()
            .arg(self.dir.path())
            .run()
            .await
            .expect("unmount the volume");
        self.mounted = false;
    }
}

impl Drop for LoopMount {
    fn drop(&mut self) {
        let run = |prog: &str, args: &[&std::ffi::OsStr]| {
            let ok = std::process::Command::new(Tool::resolve(prog).expect(prog).path())
                .args(args)
                .env("LC_ALL", "C")
                .status()
                .is_ok_and(|s| s.success());
            if !ok {
                eprintln!("cleanup: {prog} {args:?} failed");
            }
        };
        if self.mounted {
            run("umount", &[self.dir.path().as_os_str()]);
        }
        run("losetup", &["-d".as_ref(), self.device.as_os_str()]);
    }
}
