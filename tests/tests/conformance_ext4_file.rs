//! The conformance suite on ext4-file, twice: on a folder of the host's
//! filesystem (no reflinks: hole-preserving copies, no snapshots) and on a
//! loop-mounted XFS made with `reflink=1` (reflink clones and snapshots).

use std::path::PathBuf;
use std::sync::Arc;

use async_trait::async_trait;
use kiln_core::exec::Tool;
use kiln_core::VolumeStore;
use kiln_ext4_file::{Ext4FileOptions, Ext4FileStore, ReflinkMode};
use kiln_tests::conformance::host::{is_root, temp_dir, HostTools, MountOptions, Mounted};
use kiln_tests::conformance::{run, Access, ForeignObjects, Outcome, Target};

fn require_root() {
    assert!(
        is_root(),
        "these tests need root (loop devices and mounts); run them through ./scripts/test"
    );
}

/// Files in the pool folder that are not kiln's: one named like an image
/// but without kiln's tag, one named like nothing kiln makes.
struct ForeignFiles {
    pool: PathBuf,
}

impl ForeignFiles {
    fn paths(&self) -> [PathBuf; 2] {
        [
            self.pool.join("vol-notkilns0000.img"),
            self.pool.join("notes.txt"),
        ]
    }
}

#[async_trait]
impl ForeignObjects for ForeignFiles {
    async fn plant(&self) -> Result<String, String> {
        for p in self.paths() {
            let f = std::fs::File::create(&p).map_err(|e| format!("{}: {e}", p.display()))?;
            f.set_len(1 << 20).map_err(|e| e.to_string())?;
        }
        Ok("vol-notkilns0000.img and notes.txt".to_string())
    }

    async fn remove(&self) -> Result<(), String> {
        for p in self.paths() {
            std::fs::remove_file(&p).map_err(|e| format!("{}: {e}", p.display()))?;
        }
        Ok(())
    }
}

async fn open(pool: PathBuf, reflink: ReflinkMode) -> Arc<Ext4FileStore> {
    let store = Ext4FileStore::new(Ext4FileOptions {
        path: pool,
        reflink,
    })
    .await
    .expect("open the ext4-file pool");
    Arc::new(store)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn root_conformance_ext4_file_copy() {
    require_root();
    let dir = temp_dir("conf-copy", "pool").expect("a temp folder");
    let pool = dir.path().join("pool");
    let store = open(pool.clone(), ReflinkMode::Never).await;
    let caps = store.capabilities();
    assert!(
        !caps.cow_clone && !caps.snapshots && caps.sparse_reads,
        "{caps:?}"
    );

    let target = Target::new("ext4-file-copy", store, Access::Mount)
        .with_foreign(Arc::new(ForeignFiles { pool }));
    let report = run(target).await;
    report.assert_all_passed();
    assert!(
        matches!(
            report.outcome("snapshot_stays_fixed"),
            Some(Outcome::Skipped(_))
        ),
        "snapshots must be skipped on the copy path"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn root_conformance_ext4_file_reflink_xfs() {
    require_root();
    let tools = HostTools::resolve().expect("host tools (scripts/setup/host.sh installs them)");
    let mkfs_xfs =
        Tool::resolve("mkfs.xfs").expect("mkfs.xfs (scripts/setup/host.sh installs xfsprogs)");
    let dir = temp_dir("conf-xfs", "fs").expect("a temp folder");
    let image = dir.path().join("xfs.img");
    std::fs::File::create(&image)
        .and_then(|f| f.set_len(2 << 30))
        .expect("the XFS image");
    mkfs_xfs
        .command()
        .args(["-q", "-m", "reflink=1"])
        .arg(&image)
        .run()
        .await
        .expect("mkfs.xfs -m reflink=1");
    let opts = MountOptions {
        fs_type: Some("xfs".to_string()),
        ..MountOptions::default()
    };
    let mounted = Mounted::mount(&tools, &image, "conf-xfs", &opts)
        .await
        .expect("mount the XFS image");

    let pool = mounted.path().join("pool");
    let store = open(pool.clone(), ReflinkMode::Always).await;
    let caps = store.capabilities();
    assert!(
        caps.cow_clone && caps.snapshots && caps.sparse_reads,
        "{caps:?}"
    );
    let target = Target::new("ext4-file-reflink", store, Access::Mount)
        .with_foreign(Arc::new(ForeignFiles { pool }));
    let report = run(target).await;

    // Unmount before asserting, so a failure reports the suite's findings
    // rather than a busy mount.
    let unmounted = mounted.unmount().await;
    report.assert_all_passed();
    unmounted.expect("unmount the XFS pool");
    assert_eq!(
        report.outcome("snapshot_stays_fixed"),
        Some(&Outcome::Passed)
    );
}

/// Block I/O only, as for a driver whose device path is not raw ext4: the
/// same scenarios, files written as whole filesystems through
/// `open_write` and read back from `open_read` with debugfs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_ext4_file_blocks() {
    let dir = temp_dir("conf-blocks", "pool").expect("a temp folder");
    let pool = dir.path().join("pool");
    let store = open(pool.clone(), ReflinkMode::Never).await;
    let target = Target::new("ext4-file-blocks", store, Access::Blocks)
        .with_foreign(Arc::new(ForeignFiles { pool }));
    run(target).await.assert_all_passed();
}
