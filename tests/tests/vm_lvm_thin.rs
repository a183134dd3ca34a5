//! The lvm-thin driver on real LVM thin provisioning. The host kernel has
//! no device-mapper, so these run in the VM tier's guest
//! (`scripts/test-vm`), which makes the volume group named by
//! `KILN_VM_VG` on a scratch disk. Each test makes its own thin pool in
//! it, named with a unique tag, and removes it (with everything in it) on
//! drop, passed or failed.

mod vm_common;

use std::process::Command;
use std::sync::Arc;

use async_trait::async_trait;
use kiln_core::config::PoolConfig;
use kiln_core::exec::Tool;
use kiln_core::{Contents, ErrorKind, PoolName, SizeMib, VolumeId, VolumeStore};
use kiln_lvm_thin::LvmThinStore;
use kiln_tests::conformance::{run, Access, ForeignObjects, Target};
use kiln_tests::daemon::unique_tag;

/// The volume group the guest made, or a loud failure.
fn volume_group() -> String {
    std::env::var("KILN_VM_VG").unwrap_or_else(|_| {
        panic!(
            "KILN_VM_VG is not set: this test needs device-mapper thin and runs in the VM tier \
             (scripts/test-vm), whose guest makes that volume group"
        )
    })
}

/// What LVM needs where udev does not run (the guest of the lvm-thin
/// tier): make device nodes itself rather than wait for udev.
const NO_UDEV: &str = "activation { udev_sync = 0 udev_rules = 0 }";

fn udev_running() -> bool {
    std::path::Path::new("/run/udev/control").exists()
}

async fn lvm(tool: &str, args: &[&str]) -> Result<String, String> {
    let tool = Tool::resolve(tool).map_err(|e| e.to_string())?;
    let config: &[&str] = if udev_running() {
        &[]
    } else {
        &["--config", NO_UDEV]
    };
    tool.command()
        .args(config)
        .args(args)
        .run()
        .await
        .map(|o| o.stdout)
        .map_err(|e| e.to_string())
}

/// A thin pool of its own for one test, removed on drop.
struct ThinPool {
    vg: String,
    name: String,
}

impl ThinPool {
    async fn make(what: &str, size_mib: u64) -> Self {
        let vg = volume_group();
        let name = unique_tag(what).replace('-', "_");
        let size = format!("{size_mib}m");
        lvm(
            "lvcreate",
            &[
                "--yes",
                "--type",
                "thin-pool",
                "-L",
                &size,
                "-n",
                &name,
                &vg,
            ],
        )
        .await
        .unwrap_or_else(|e| panic!("make the thin pool {vg}/{name}: {e}"));
        Self { vg, name }
    }

    fn config(&self, extra: serde_json::Value) -> PoolConfig {
        let mut options = serde_json::json!({
            "volume_group": self.vg,
            "thin_pool": self.name,
        });
        if let (Some(o), Some(e)) = (options.as_object_mut(), extra.as_object()) {
            o.extend(e.clone());
        }
        PoolConfig {
            name: PoolName::new("vmthin").expect("a valid pool name"),
            driver: "lvm-thin".to_string(),
            options,
        }
    }

    async fn open(&self, extra: serde_json::Value) -> LvmThinStore {
        kiln_lvm_thin::open(&self.config(extra))
            .await
            .unwrap_or_else(|e| panic!("open the lvm-thin pool: {}", e.chain()))
    }
}

impl Drop for ThinPool {
    fn drop(&mut self) {
        // Removing the pool removes every thin LV in it, and only those.
        let mut remove = Command::new("lvremove");
        if !udev_running() {
            remove.args(["--config", NO_UDEV]);
        }
        let status = remove
            .args(["--yes", "--force", &format!("{}/{}", self.vg, self.name)])
            .status();
        if !matches!(status, Ok(s) if s.success()) {
            eprintln!("could not remove the thin pool {}/{}", self.vg, self.name);
        }
    }
}

/// Thin LVs in the pool that are not kiln's: one named like a volume but
/// untagged, one tagged `kiln` but named like nothing kiln makes.
struct ForeignLvs {
    vg: String,
    pool: String,
}

const FOREIGN: [&str; 2] = ["kiln-vol-00000000000000000000000000000000", "notkiln"];

#[async_trait]
impl ForeignObjects for ForeignLvs {
    async fn plant(&self) -> Result<String, String> {
        for (name, tags) in FOREIGN.iter().zip([&[][..], &["--addtag", "kiln"][..]]) {
            let mut args = vec!["--yes", "--type", "thin", "--thinpool", &self.pool];
            args.extend(["-V", "8m", "-n", name]);
            args.extend(tags.iter().copied());
            args.push(&self.vg);
            lvm("lvcreate", &args).await?;
        }
        Ok(FOREIGN.join(" and "))
    }

    async fn remove(&self) -> Result<(), String> {
        for name in FOREIGN {
            lvm("lvremove", &["--yes", &format!("{}/{name}", self.vg)]).await?;
        }
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a kernel with device-mapper thin / zfs: runs in the VM tier, scripts/test-vm"]
async fn root_vm_conformance_lvm_thin() {
    let pool = ThinPool::make("conf", 1024).await;
    let store = Arc::new(
        pool.open(serde_json::json!({"max_overcommit_ratio": 16.0}))
            .await,
    );
    let caps = store.capabilities();
    assert!(caps.cow_clone && caps.snapshots, "{caps:?}");
    let foreign = ForeignLvs {
        vg: pool.vg.clone(),
        pool: pool.name.clone(),
    };
    let report =
        run(Target::new("lvm-thin", store, Access::Mount).with_foreign(Arc::new(foreign))).await;
    report.assert_all_passed();
}

/// The LV tags of `vg/lv`.
async fn tags(vg: &str, lv: &str) -> Vec<String> {
    let out = lvm(
        "lvs",
        &["--noheadings", "-o", "lv_tags", &format!("{vg}/{lv}")],
    )
    .await
    .unwrap_or_else(|e| panic!("lvs {vg}/{lv}: {e}"));
    out.trim().split(',').map(str::to_string).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a kernel with device-mapper thin / zfs: runs in the VM tier, scripts/test-vm"]
async fn root_vm_lvm_thin_tags_and_admission_control() {
    let pool = ThinPool::make("admit", 256).await;
    let store = pool
        .open(serde_json::json!({"max_overcommit_ratio": 2.0}))
        .await;
    let mib = |n| SizeMib::new(n).expect("a valid size");

    // Two volumes as large as the pool: a ratio of exactly 2.
    let a = VolumeId::generate();
    let b = VolumeId::generate();
    store
        .create(&a, mib(256), Contents::Ext4)
        .await
        .expect("create a");
    store
        .create(&b, mib(256), Contents::Blank)
        .await
        .expect("create b");
    assert_eq!(
        tags(&pool.vg, &format!("kiln-{a}")).await,
        vec!["kiln".to_string(), format!("kiln-{a}")]
    );

    // Anything more passes the ratio: create, clone and grow are refused.
    let c = VolumeId::generate();
    let refused = [
        store.create(&c, mib(4), Contents::Ext4).await.err(),
        store.clone_volume(&a, &c).await.err(),
        store.grow(&a, mib(260)).await.err(),
    ];
    for (what, err) in ["create", "clone", "grow"].iter().zip(refused) {
        let err = err.unwrap_or_else(|| panic!("{what} past the overcommit ratio was allowed"));
        assert_eq!(err.kind(), ErrorKind::InsufficientCapacity, "{what}: {err}");
        assert!(
            err.to_string().contains("max_overcommit_ratio"),
            "{what}: {err}"
        );
    }
    let listed = store.list().await.expect("list");
    assert_eq!(
        listed.len(),
        2,
        "a refused request left something: {listed:?}"
    );

    let cap = store.capacity().await.expect("capacity");
    assert_eq!(cap.size_bytes, 256 << 20);
    let thin = cap.thin.expect("a thin pool reports data and metadata use");
    assert!(
        thin.data_percent > 0.0 && thin.metadata_percent > 0.0,
        "{thin:?}"
    );

    // With room again, a clone is tagged as itself only and is writable
    // and active (the activation-skip flag of thin snapshots is cleared).
    store.delete(&b).await.expect("delete b");
    store.clone_volume(&a, &c).await.expect("clone a to c");
    assert_eq!(
        tags(&pool.vg, &format!("kiln-{c}")).await,
        vec!["kiln".to_string(), format!("kiln-{c}")]
    );
    let attr = lvm(
        "lvs",
        &[
            "--noheadings",
            "-o",
            "lv_attr",
            &format!("{}/kiln-{c}", pool.vg),
        ],
    )
    .await
    .expect("lvs lv_attr");
    let attr = attr.trim();
    assert!(
        attr.starts_with("Vwi-a"),
        "the clone is not a writable active thin LV: {attr}"
    );
    assert!(store.device_path(&c).await.expect("device").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a kernel with device-mapper thin / zfs: runs in the VM tier, scripts/test-vm"]
async fn root_vm_e2e_lvm_thin_through_kilnd_and_kiln() {
    let pool = ThinPool::make("e2e", 1024).await;
    let yaml = format!(
        "driver: lvm-thin\nvolume_group: {}\nthin_pool: {}\nmax_overcommit_ratio: 16\n",
        pool.vg, pool.name
    );
    tokio::task::spawn_blocking(move || vm_common::scenario(&yaml))
        .await
        .expect("the scenario");
}
