//! The ext4-file store on a temporary folder: crash leftovers, tagging,
//! options, and the error kinds of refused requests. No root needed.

use std::os::unix::fs::MetadataExt;
use std::path::Path;

use kiln_core::config::PoolConfig;
use kiln_core::{Contents, ErrorKind, PoolName, SizeMib, VolumeId, VolumeStore};
use kiln_ext4_file::{open, Ext4FileOptions, Ext4FileStore, ReflinkMode};

fn pool_config(path: &Path, extra: serde_json::Value) -> PoolConfig {
    let mut options = serde_json::json!({ "path": path });
    if let (Some(o), Some(e)) = (options.as_object_mut(), extra.as_object()) {
        o.extend(e.clone());
    }
    PoolConfig {
        name: PoolName::new("test").expect("a valid pool name"),
        driver: "ext4-file".to_string(),
        options,
    }
}

fn mib(n: u64) -> SizeMib {
    SizeMib::new(n).expect("a valid size")
}

#[tokio::test]
async fn open_creates_the_folder_and_refuses_bad_options() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let path = dir.path().join("a");
    let store = open(&pool_config(&path, serde_json::json!({})))
        .await
        .expect("open");
    assert!(path.is_dir());
    assert_eq!(store.driver().driver, "ext4-file");

    let err = open(&pool_config(&path, serde_json::json!({ "size": 1 })))
        .await
        .expect_err("an unknown key");
    assert!(err.to_string().contains("pools.test"), "{err}");
    let err = open(&pool_config(
        &path,
        serde_json::json!({ "reflink": "sometimes" }),
    ))
    .await
    .expect_err("a bad reflink mode");
    assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
    // Regression: the key was not named (`pools.test: unknown variant`).
    let text = err.to_string();
    assert!(
        text.starts_with("config: pools.test.reflink: unknown variant `sometimes`"),
        "{text}"
    );
    let err = open(&pool_config(&path, serde_json::json!({ "create": "yes" })))
        .await
        .expect_err("a bad create flag");
    assert!(err.to_string().contains("pools.test.create: "), "{err}");
}

#[tokio::test]
async fn a_missing_folder_is_made_only_where_its_parent_exists_and_create_allows() {
    let dir = tempfile::tempdir().expect("a temp dir");

    // Regression: a pool on a disk that is not mounted was made on the
    // root filesystem, parents and all.
    let unmounted = dir.path().join("disk1").join("kiln");
    let err = open(&pool_config(&unmounted, serde_json::json!({})))
        .await
        .expect_err("the parent is missing");
    assert_eq!(err.kind(), ErrorKind::NotFound, "{err}");
    let text = err.chain();
    assert!(text.contains(&unmounted.display().to_string()), "{text}");
    assert!(text.contains("parent"), "{text}");
    assert!(!dir.path().join("disk1").exists(), "the parent was created");

    let path = dir.path().join("pool");
    let err = open(&pool_config(&path, serde_json::json!({ "create": false })))
        .await
        .expect_err("create: false");
    assert_eq!(err.kind(), ErrorKind::NotFound, "{err}");
    assert!(err.chain().contains("create: false"), "{}", err.chain());
    assert!(
        !path.exists(),
        "the folder was created despite create: false"
    );

    std::fs::create_dir(&path).expect("make the folder");
    open(&pool_config(&path, serde_json::json!({ "create": false })))
        .await
        .expect("an existing folder opens with create: false");
}

#[tokio::test]
async fn reflink_always_is_refused_where_the_filesystem_has_none() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let probe = Ext4FileStore::new(Ext4FileOptions::new(dir.path()))
        .await
        .expect("open");
    if probe.uses_reflink() {
        // This folder's filesystem has reflinks: `always` must open.
        open(&pool_config(
            dir.path(),
            serde_json::json!({ "reflink": "always" }),
        ))
        .await
        .expect("reflink: always on a reflink filesystem");
        return;
    }
    let err = open(&pool_config(
        dir.path(),
        serde_json::json!({ "reflink": "always" }),
    ))
    .await
    .expect_err("no reflinks here");
    // Regression: `pools.test: reflink: reflink: always needs...`.
    let text = err.to_string();
    assert!(
        text.starts_with("config: pools.test.reflink: always needs reflinks"),
        "{text}"
    );
    assert_eq!(text.matches("reflink").count(), 2, "{text}");
}

#[tokio::test]
async fn leftovers_of_a_crash_are_removed_at_open_and_never_listed() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let store = Ext4FileStore::new(Ext4FileOptions::new(dir.path()))
        .await
        .expect("open");
    let id = VolumeId::generate();
    store
        .create(&id, mib(8), Contents::Blank)
        .await
        .expect("create");

    let partial = dir
        .path()
        .join(format!(".{}.img.partial", VolumeId::generate()));
    let deleting = dir
        .path()
        .join(format!(".{}.img.deleting", VolumeId::generate()));
    let foreign = dir.path().join("vol-notkilns0000.img");
    for p in [&partial, &deleting, &foreign] {
        std::fs::write(p, b"x").expect("plant");
    }
    let listed: Vec<_> = store
        .list()
        .await
        .expect("list")
        .into_iter()
        .map(|v| v.id)
        .collect();
    assert_eq!(listed, vec![id.clone()]);

    drop(store);
    let store = Ext4FileStore::new(Ext4FileOptions::new(dir.path()))
        .await
        .expect("reopen");
    assert!(!partial.exists() && !deleting.exists(), "leftovers stay");
    assert!(foreign.exists(), "a file that is not kiln's was removed");
    let listed: Vec<_> = store
        .list()
        .await
        .expect("list")
        .into_iter()
        .map(|v| v.id)
        .collect();
    assert_eq!(listed, vec![id]);
}

#[tokio::test]
async fn create_is_sparse_and_refusals_have_their_kinds() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let store = Ext4FileStore::new(Ext4FileOptions {
        path: dir.path().to_path_buf(),
        reflink: ReflinkMode::Never,
    })
    .await
    .expect("open");
    let id = VolumeId::generate();
    let v = store
        .create(&id, mib(1024), Contents::Ext4)
        .await
        .expect("create");
    assert_eq!(v.size_bytes, 1 << 30);
    let allocated = v.allocated_bytes.expect("ext4-file knows its allocation");
    assert!(
        allocated < 64 << 20,
        "a fresh 1 GiB volume allocates {allocated} bytes"
    );
    let path = store.device_path(&id).await.expect("device path");
    assert_eq!(path, store.root().join(format!("{id}.img")));

    fn kind<T>(r: Result<T, kiln_core::BackendError>) -> ErrorKind {
        r.map(drop).expect_err("refused").kind()
    }
    assert_eq!(
        kind(store.create(&id, mib(8), Contents::Blank).await),
        ErrorKind::AlreadyExists
    );
    assert_eq!(
        kind(store.grow(&id, mib(1024)).await),
        ErrorKind::InvalidInput
    );
    assert_eq!(
        kind(store.grow(&id, mib(512)).await),
        ErrorKind::InvalidInput
    );
    let missing = VolumeId::generate();
    assert_eq!(kind(store.delete(&missing).await), ErrorKind::NotFound);
    assert_eq!(
        kind(
            store
                .snapshot(&id, &kiln_core::SnapshotId::generate())
                .await
        ),
        ErrorKind::Unsupported
    );
    assert_eq!(std::fs::metadata(&path).expect("stat").len(), 1 << 30);

    store.delete(&id).await.expect("delete");
    assert!(!path.exists());
    assert!(
        std::fs::read_dir(dir.path())
            .expect("list")
            .next()
            .is_none(),
        "delete left files"
    );
}

#[tokio::test]
async fn grow_extends_the_image_and_the_filesystem() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let store = Ext4FileStore::new(Ext4FileOptions::new(dir.path()))
        .await
        .expect("open");
    let id = VolumeId::generate();
    store
        .create(&id, mib(64), Contents::Ext4)
        .await
        .expect("create");
    store.grow(&id, mib(256)).await.expect("grow");
    let path = store.device_path(&id).await.expect("device path");
    let meta = std::fs::metadata(&path).expect("stat");
    assert_eq!(meta.len(), 256 << 20);
    assert!(meta.blocks() * 512 < 64 << 20, "grow filled holes");
    let fs = kiln_core::ext4::Ext4Tools::resolve()
        .expect("e2fsprogs")
        .fs_size_bytes(&path)
        .await
        .expect("dumpe2fs");
    assert_eq!(fs, 256 << 20);
}
