//! The zfs-zvol driver on real ZFS. The host kernel has no ZFS module, so
//! these run in the VM tier's guest (`scripts/test-vm`), which makes the
//! pool named by `KILN_VM_ZPOOL` on a scratch disk. Each test makes its
//! own parent dataset in it, named with a unique tag, and destroys it
//! (with everything in it) on drop, passed or failed.

mod vm_common;

use std::process::Command;
use std::sync::Arc;

use async_trait::async_trait;
use kiln_core::config::PoolConfig;
use kiln_core::exec::Tool;
use kiln_core::{BlockRead, Contents, PoolName, SizeMib, SnapshotId, VolumeId, VolumeStore};
use kiln_tests::conformance::{run, Access, ForeignObjects, Target};
use kiln_tests::daemon::unique_tag;
use kiln_zfs_zvol::ZfsZvolStore;

/// The ZFS pool the guest made, or a loud failure.
fn zpool() -> String {
    std::env::var("KILN_VM_ZPOOL").unwrap_or_else(|_| {
        panic!(
            "KILN_VM_ZPOOL is not set: this test needs ZFS and runs in the VM tier \
             (scripts/test-vm), whose guest makes that pool"
        )
    })
}

async fn zfs(args: &[&str]) -> Result<String, String> {
    let tool = Tool::resolve("zfs").map_err(|e| e.to_string())?;
    tool.command()
        .args(args)
        .run()
        .await
        .map(|o| o.stdout)
        .map_err(|e| e.to_string())
}

/// A parent dataset of its own for one test, destroyed on drop.
struct Dataset {
    name: String,
}

impl Dataset {
    async fn make(what: &str) -> Self {
        let name = format!("{}/{}", zpool(), unique_tag(what));
        zfs(&["create", "-o", "mountpoint=none", &name])
            .await
            .unwrap_or_else(|e| panic!("make the dataset {name}: {e}"));
        Self { name }
    }

    async fn open(&self) -> ZfsZvolStore {
        let pool = PoolConfig {
            name: PoolName::new("vmzfs").expect("a valid pool name"),
            driver: "zfs-zvol".to_string(),
            options: serde_json::json!({ "dataset": self.name }),
        };
        kiln_zfs_zvol::open(&pool)
            .await
            .unwrap_or_else(|e| panic!("open the zfs-zvol pool: {}", e.chain()))
    }

    /// Every snapshot and zvol under the dataset, by name.
    async fn contents(&self) -> Vec<String> {
        let out = zfs(&[
            "list",
            "-Hp",
            "-r",
            "-t",
            "volume,snapshot",
            "-o",
            "name",
            &self.name,
        ])
        .await
        .unwrap_or_else(|e| panic!("zfs list {}: {e}", self.name));
        out.lines().map(str::to_string).collect()
    }
}

impl Drop for Dataset {
    fn drop(&mut self) {
        let status = Command::new("zfs")
            .args(["destroy", "-r", &self.name])
            .status();
        if !matches!(status, Ok(s) if s.success()) {
            eprintln!("could not destroy the dataset {}", self.name);
        }
    }
}

/// Zvols under the dataset that are not kiln's: one named like a volume
/// without the property, one with the property but another name.
struct ForeignZvols {
    dataset: String,
}

impl ForeignZvols {
    fn names(&self) -> [String; 2] {
        [
            format!("{}/vol-00000000000000000000000000000000", self.dataset),
            format!("{}/notkiln", self.dataset),
        ]
    }
}

#[async_trait]
impl ForeignObjects for ForeignZvols {
    async fn plant(&self) -> Result<String, String> {
        let [plain, marked] = self.names();
        zfs(&["create", "-s", "-V", "8M", &plain]).await?;
        let prop = "kiln:volume=vol-11111111111111111111111111111111";
        zfs(&["create", "-s", "-V", "8M", "-o", prop, &marked]).await?;
        Ok(format!("{plain} and {marked}"))
    }

    async fn remove(&self) -> Result<(), String> {
        for name in self.names() {
            zfs(&["destroy", &name]).await?;
        }
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a kernel with device-mapper thin / zfs: runs in the VM tier, scripts/test-vm"]
async fn root_vm_conformance_zfs_zvol() {
    let ds = Dataset::make("conf").await;
    let store = Arc::new(ds.open().await);
    let caps = store.capabilities();
    assert!(caps.cow_clone && caps.snapshots, "{caps:?}");
    let foreign = ForeignZvols {
        dataset: ds.name.clone(),
    };
    let report =
        run(Target::new("zfs-zvol", store, Access::Mount).with_foreign(Arc::new(foreign))).await;
    report.assert_all_passed();
}

const MARK_LEN: usize = 4096;

/// The last 4 KiB of a volume: free space of its ext4, so a marker there
/// leaves the filesystem valid.
async fn read_mark(store: &ZfsZvolStore, id: &VolumeId) -> Vec<u8> {
    let r = store.open_read(id, None).await.expect("open_read");
    let mut buf = vec![0u8; MARK_LEN];
    r.read_at(BlockRead::len(&*r) - MARK_LEN as u64, &mut buf)
        .expect("read the mark");
    buf
}

async fn write_mark(store: &ZfsZvolStore, id: &VolumeId, byte: u8) {
    let w = store.open_write(id).await.expect("open_write");
    w.write_at(w.len() - MARK_LEN as u64, &[byte; MARK_LEN])
        .expect("write the mark");
    w.flush().expect("flush");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a kernel with device-mapper thin / zfs: runs in the VM tier, scripts/test-vm"]
async fn root_vm_zfs_deleting_a_source_keeps_its_clones() {
    let ds = Dataset::make("promote").await;
    let store = ds.open().await;
    let size = SizeMib::new(64).expect("a valid size");

    let a = VolumeId::generate();
    store
        .create(&a, size, Contents::Ext4)
        .await
        .expect("create a");
    write_mark(&store, &a, 1).await;
    let backup = SnapshotId::generate();
    store.snapshot(&a, &backup).await.expect("snapshot a");
    let b = VolumeId::generate();
    let c = VolumeId::generate();
    store.clone_volume(&a, &b).await.expect("clone a to b");
    store.clone_volume(&a, &c).await.expect("clone a to c");
    write_mark(&store, &a, 2).await;

    // a has two clones and a backup snapshot: delete promotes a clone.
    store.delete(&a).await.expect("delete a, which has clones");
    let mut listed: Vec<VolumeId> = store
        .list()
        .await
        .expect("list")
        .into_iter()
        .map(|v| v.id)
        .collect();
    listed.sort();
    let mut want = vec![b.clone(), c.clone()];
    want.sort();
    assert_eq!(listed, want);
    for id in [&b, &c] {
        assert_eq!(
            read_mark(&store, id).await,
            vec![1u8; MARK_LEN],
            "{id} changed"
        );
        store
            .check_filesystem(id)
            .await
            .expect("the clone's filesystem is intact");
    }

    // Deleting the clones, in turn, leaves nothing: no zvol, no snapshot.
    store
        .delete(&c)
        .await
        .expect("delete c, which now holds b's origin");
    assert_eq!(read_mark(&store, &b).await, vec![1u8; MARK_LEN]);
    store.delete(&b).await.expect("delete b");
    assert_eq!(ds.contents().await, Vec::<String>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a kernel with device-mapper thin / zfs: runs in the VM tier, scripts/test-vm"]
async fn root_vm_e2e_zfs_zvol_through_kilnd_and_kiln() {
    let ds = Dataset::make("e2e").await;
    let yaml = format!("driver: zfs-zvol\ndataset: {}\n", ds.name);
    tokio::task::spawn_blocking(move || vm_common::scenario(&yaml))
        .await
        .expect("the scenario");
}
