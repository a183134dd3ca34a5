//! A 4 GiB volume holding 100 MiB clones and grows, on the copy path,
//! without the clone's allocation passing about 100 MiB plus metadata.

mod common;

use std::os::unix::fs::MetadataExt;
use std::path::Path;

use common::LoopMount;
use kiln_core::{Contents, SizeMib, VolumeId, VolumeStore};
use kiln_ext4_file::{Ext4FileOptions, Ext4FileStore, ReflinkMode};

/// What is written into the source volume.
const DATA: u64 = 100 << 20;

/// What ext4's own metadata may add on top (journal blocks touched,
/// bitmaps, inode tables of used groups).
const METADATA: u64 = 16 << 20;

fn allocated(path: &Path) -> u64 {
    std::fs::metadata(path).expect("stat").blocks() * 512
}

#[tokio::test]
async fn root_clone_of_a_4g_volume_with_100m_stays_sparse() {
    // SAFETY: geteuid has no preconditions.
    assert!(
        unsafe { libc::geteuid() } == 0,
        "needs root for a loop mount"
    );
    let dir = tempfile::Builder::new()
        .prefix("kiln-sparse-clone-")
        .tempdir()
        .expect("a temp dir");
    let store = Ext4FileStore::new(Ext4FileOptions {
        path: dir.path().join("pool"),
        reflink: ReflinkMode::Never,
    })
    .await
    .expect("open");
    let src = VolumeId::generate();
    store
        .create(&src, SizeMib::new(4096).expect("size"), Contents::Ext4)
        .await
        .expect("create");
    let src_path = store.device_path(&src).await.expect("device path");

    let m = LoopMount::new(&src_path, "kiln-sparse-clone-mnt-").await;
    let data: Vec<u8> = (0..DATA).map(|i| (i % 251) as u8 + 1).collect();
    std::fs::write(m.dir().join("data"), &data).expect("write 100 MiB");
    drop(m);
    let src_alloc = allocated(&src_path);
    assert!(src_alloc >= DATA, "the source holds {src_alloc} bytes");

    let dst = VolumeId::generate();
    let v = store.clone_volume(&src, &dst).await.expect("clone");
    let dst_path = store.device_path(&dst).await.expect("device path");
    let dst_alloc = allocated(&dst_path);
    assert_eq!(v.allocated_bytes, Some(dst_alloc));
    assert!(
        dst_alloc <= DATA + METADATA,
        "the clone allocates {dst_alloc} bytes for {DATA} of data (source: {src_alloc})"
    );

    store
        .grow(&dst, SizeMib::new(8192).expect("size"))
        .await
        .expect("grow the clone");
    let grown = allocated(&dst_path);
    assert!(
        grown <= DATA + METADATA,
        "the grown clone allocates {grown} bytes for {DATA} of data"
    );

    eprintln!("allocated: source {src_alloc}, clone {dst_alloc}, grown clone {grown}");
    let m = LoopMount::new(&dst_path, "kiln-sparse-clone-mnt-").await;
    let back = std::fs::read(m.dir().join("data")).expect("read the clone's file");
    assert!(back == data, "the clone's file differs");
}
