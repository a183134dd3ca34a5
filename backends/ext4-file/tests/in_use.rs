//! A grow of an image someone loop-mounted outside kiln is refused as a
//! conflict naming the loop device, and changes nothing; once the loop
//! device is gone the grow goes through.

mod common;

use common::LoopMount;
use kiln_core::{Contents, ErrorKind, SizeMib, VolumeId, VolumeStore};
use kiln_ext4_file::{Ext4FileOptions, Ext4FileStore};

fn mib(n: u64) -> SizeMib {
    SizeMib::new(n).expect("a valid size")
}

#[tokio::test]
async fn root_grow_of_a_loop_mounted_image_is_a_conflict() {
    // SAFETY: geteuid has no preconditions.
    assert!(
        unsafe { libc::geteuid() } == 0,
        "needs root for a loop mount"
    );
    let dir = tempfile::Builder::new()
        .prefix("kiln-in-use-")
        .tempdir()
        .expect("a temp dir");
    let store = Ext4FileStore::new(Ext4FileOptions::new(dir.path().join("pool")))
        .await
        .expect("open");
    let id = VolumeId::generate();
    store
        .create(&id, mib(64), Contents::Ext4)
        .await
        .expect("create");
    let image = store.device_path(&id).await.expect("device path");

    // Regression: this was a 500 (e2fsck exit 8) after the image grew.
    let mut m = LoopMount::new(&image, "kiln-in-use-mnt-").await;
    let err = store
        .grow(&id, mib(128))
        .await
        .expect_err("the image is mounted");
    assert_eq!(err.kind(), ErrorKind::Conflict, "{err}");
    let text = err.to_string();
    assert!(text.contains("in use outside kiln"), "{text}");
    assert!(
        text.contains(&m.device().display().to_string()),
        "{text} does not name the loop device"
    );
    assert!(
        text.contains(&m.dir().display().to_string()),
        "{text} does not name the mount point"
    );
    assert_eq!(std::fs::metadata(&image).expect("stat").len(), 64 << 20);

    // Attached but not mounted is in use too: growing under the device
    // would leave it at its old size with a filesystem claiming the new.
    m.unmount().await;
    let err = store
        .grow(&id, mib(128))
        .await
        .expect_err("the image is attached");
    assert_eq!(err.kind(), ErrorKind::Conflict, "{err}");
    assert!(err.to_string().contains("not mounted"), "{err}");
    drop(m);

    store.grow(&id, mib(128)).await.expect("grow once detached");
    assert_eq!(std::fs::metadata(&image).expect("stat").len(), 128 << 20);
}
