//! The loader in-process: `kiln_plugin_loader::open` on a pool config, the
//! plugin's self-description, errors keeping the kinds the plugin gave
//! them (the kinds built-in backends use for the same failures), and the
//! conformance suite on the qcow2 plugin with foreign files planted.

mod plugin_support;

use std::sync::Arc;

use kiln_core::config::PoolConfig;
use kiln_core::{Contents, ErrorKind, PoolName, SizeMib, VolumeId, VolumeStore};
use kiln_tests::conformance::{run, Access, ForeignObjects, Outcome, Target};
use plugin_support::{libraries, require_root, temp_dir};

fn pool(options: serde_json::Value) -> PoolConfig {
    PoolConfig {
        name: PoolName::new("images").expect("a valid pool name"),
        driver: "plugin".to_string(),
        options,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn root_plugin_errors_keep_their_kinds() {
    require_root("the qcow2 plugin's raw views are FUSE mounts");
    let libs = libraries();
    let dir = temp_dir("kiln-loader");
    let store = kiln_plugin_loader::open(&pool(serde_json::json!({
        "library": libs.qcow2,
        "options": { "path": dir.path().join("pool") },
    })))
    .await
    .expect("the qcow2 plugin loads");

    let driver = store.driver();
    assert_eq!(driver.driver, "plugin");
    let info = driver.plugin.expect("plugin info");
    assert_eq!(
        (info.name.as_str(), info.version.as_str()),
        ("qcow2", "0.1.0")
    );
    assert!(store.capabilities().sparse_reads && !store.capabilities().snapshots);

    let missing = VolumeId::generate();
    let err = store.delete(&missing).await.expect_err("no such volume");
    assert_eq!(err.kind(), ErrorKind::NotFound, "{err}");
    assert!(
        err.to_string().contains("plugin qcow2: delete failed"),
        "{err}"
    );

    let id = VolumeId::generate();
    let size = SizeMib::new(32).expect("a valid size");
    store
        .create(&id, size, Contents::Ext4)
        .await
        .expect("create");
    let err = store
        .create(&id, size, Contents::Ext4)
        .await
        .expect_err("exists");
    assert_eq!(err.kind(), ErrorKind::AlreadyExists, "{err}");
    let err = store.grow(&id, size).await.expect_err("not larger");
    assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
    let err = store
        .snapshot(&id, &kiln_core::SnapshotId::generate())
        .await
        .expect_err("no snapshots");
    assert_eq!(err.kind(), ErrorKind::Unsupported, "{err}");
    store.delete(&id).await.expect("delete");
}

#[tokio::test]
async fn bad_plugin_options_are_refused_naming_the_pool() {
    let libs = libraries();
    let err = kiln_plugin_loader::open(&pool(serde_json::json!({ "librar": libs.qcow2 })))
        .await
        .expect_err("unknown key");
    assert!(err.to_string().contains("pools.images"), "{err}");
    assert!(err.to_string().contains("librar"), "{err}");

    // The plugin itself refuses options it does not know.
    let err = kiln_plugin_loader::open(&pool(serde_json::json!({
        "library": libs.qcow2,
        "options": { "colour": "blue" },
    })))
    .await
    .expect_err("the plugin refuses");
    assert_eq!(err.kind(), ErrorKind::InvalidInput, "{}", err.chain());
    assert!(err.chain().contains("colour"), "{}", err.chain());
}

#[tokio::test]
async fn a_missing_library_is_named() {
    let err = kiln_plugin_loader::open(&pool(serde_json::json!({
        "library": "/nonexistent/libkiln_nothing.so",
    })))
    .await
    .expect_err("no such file");
    assert!(
        err.chain()
            .contains("cannot load plugin library /nonexistent/libkiln_nothing.so"),
        "{}",
        err.chain()
    );
}

/// Files in a qcow2 pool folder that are not volumes: a note, a raw image
/// named like a volume, and a partial image left by an interrupted create.
struct ForeignFiles {
    pool: std::path::PathBuf,
}

impl ForeignFiles {
    fn paths(&self) -> [std::path::PathBuf; 3] {
        [
            self.pool.join("notes.txt"),
            self.pool.join("vol-notkilns0000.img"),
            self.pool.join(".vol-notkilns0001.qcow2.partial"),
        ]
    }
}

#[async_trait::async_trait]
impl ForeignObjects for ForeignFiles {
    async fn plant(&self) -> Result<String, String> {
        for p in self.paths() {
            std::fs::write(&p, b"not a volume").map_err(|e| format!("{}: {e}", p.display()))?;
        }
        Ok("notes.txt, vol-notkilns0000.img, a .partial image".to_string())
    }

    async fn remove(&self) -> Result<(), String> {
        for p in self.paths() {
            std::fs::remove_file(&p).map_err(|e| format!("{}: {e}", p.display()))?;
        }
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn root_conformance_of_the_qcow2_plugin_through_the_loader() {
    require_root("the qcow2 plugin's raw views are FUSE mounts");
    let libs = libraries();
    let dir = temp_dir("kiln-loader-conf");
    let pool_dir = dir.path().join("pool");
    let store = kiln_plugin_loader::open(&pool(serde_json::json!({
        "library": libs.qcow2,
        "options": { "path": pool_dir },
    })))
    .await
    .expect("the qcow2 plugin loads");
    let target = Target::new("plugin-qcow2", Arc::new(store), Access::Blocks)
        .with_foreign(Arc::new(ForeignFiles { pool: pool_dir }));
    let report = run(target).await;
    report.assert_all_passed();
    assert_eq!(
        report.outcome("list_ignores_foreign"),
        Some(&Outcome::Passed)
    );
    assert_eq!(report.outcome("sparse_reads"), Some(&Outcome::Passed));
}
