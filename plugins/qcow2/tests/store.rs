//! The qcow2 store on its own, in-process (the same code the plugin runs
//! behind the ABI): real images, real FUSE raw views, real ext4.

use kiln_core::{Contents, ErrorKind, SizeMib, VolumeId, VolumeStore};
use kiln_qcow2::Qcow2Store;

fn require_root() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        panic!("this test needs root: raw views are FUSE mounts");
    }
}

async fn store(dir: &tempfile::TempDir) -> Qcow2Store {
    Qcow2Store::open(serde_json::json!({ "path": dir.path().join("pool") }))
        .await
        .expect("the qcow2 pool opens (qemu-img, qemu-storage-daemon, e2fsprogs installed)")
}

fn mib(n: u64) -> SizeMib {
    SizeMib::new(n).expect("a valid size")
}

#[tokio::test]
async fn root_lifecycle_of_a_qcow2_volume() {
    require_root();
    let dir = tempfile::Builder::new()
        .prefix("kiln-qcow2-")
        .tempdir()
        .expect("temp dir");
    let store = store(&dir).await;
    let id = VolumeId::generate();

    let made = store
        .create(&id, mib(64), Contents::Ext4)
        .await
        .expect("create");
    assert_eq!(made.size_bytes, 64 << 20);
    let err = store
        .create(&id, mib(64), Contents::Ext4)
        .await
        .expect_err("exists");
    assert_eq!(err.kind(), ErrorKind::AlreadyExists);

    let path = store.device_path(&id).await.expect("device path");
    assert_eq!(path.extension().and_then(|e| e.to_str()), Some("qcow2"));

    // The raw bytes hold ext4 (superblock magic 0xEF53 at 1080), and the
    // allocated ranges are far smaller than the volume.
    let r = store.open_read(&id, None).await.expect("open_read");
    assert_eq!(r.len(), 64 << 20);
    let mut magic = [0u8; 2];
    r.read_at(1080, &mut magic).expect("read the superblock");
    assert_eq!(magic, [0x53, 0xef]);
    let allocated: u64 = r
        .allocated()
        .expect("allocated")
        .iter()
        .map(|x| x.end - x.start)
        .sum();
    assert!(
        allocated > 0 && allocated < 32 << 20,
        "allocated {allocated}"
    );
    drop(r);

    let err = store.grow(&id, mib(64)).await.expect_err("not larger");
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    store.grow(&id, mib(96)).await.expect("grow");
    let listed = store.list().await.expect("list");
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].size_bytes, 96 << 20);

    let copy = VolumeId::generate();
    store.clone_volume(&id, &copy).await.expect("clone");
    assert_eq!(store.list().await.expect("list").len(), 2);

    // A write lands in the image and reads back through a new view.
    let w = store.open_write(&copy).await.expect("open_write");
    let at = 80 << 20;
    w.write_at(at, b"kiln").expect("write");
    w.zero_range(at + 4096, 1 << 20).expect("zero range");
    w.flush().expect("flush");
    drop(w);
    let r = store.open_read(&copy, None).await.expect("open_read");
    let mut back = [0u8; 4];
    r.read_at(at, &mut back).expect("read back");
    assert_eq!(&back, b"kiln");
    drop(r);

    store.check_filesystem(&id).await.expect("fsck after grow");
    store.delete(&id).await.expect("delete");
    store.delete(&copy).await.expect("delete the clone");
    let err = store.delete(&id).await.expect_err("gone");
    assert_eq!(err.kind(), ErrorKind::NotFound);
    assert!(store.list().await.expect("list").is_empty());
    let views = std::fs::read_dir(dir.path().join("pool/.views"))
        .expect("views dir")
        .count();
    assert_eq!(views, 0, "every raw view is stopped and removed");
}
