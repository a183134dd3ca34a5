//! End to end: clones and grows keep volumes sparse.

use std::path::{Path, PathBuf};

use kiln_tests::daemon::{
    allocated_bytes, require_root, write_test_files, Daemon, DaemonOptions, LoopMount, Via,
};

const MIB: u64 = 1 << 20;

fn device(d: &Daemon, volume: &str) -> PathBuf {
    let body =
        format!(r#"{{"name":"dev-{volume}","volumes":[{{"volume":"{volume}","mount":"/d"}}]}}"#);
    let sb = d.request(Via::Unix, "POST", "/v1/sandboxes", Some(&body), None);
    assert_eq!(sb.status, 201, "{}", sb.body);
    let dev = sb.json()["volumes"][0]["device"]
        .as_str()
        .expect("a device")
        .to_string();
    let path = format!("/v1/sandboxes/dev-{volume}");
    assert_eq!(
        d.request(Via::Unix, "DELETE", &path, None, None).status,
        204
    );
    PathBuf::from(dev)
}

#[test]
fn root_clone_and_grow_keep_a_sparse_volume_sparse() {
    require_root("loop mounts of volume images");
    let d = Daemon::start(DaemonOptions {
        quota_mib: Some(1 << 20),
        ..DaemonOptions::default()
    });
    let create = |name: &str| {
        let body = format!(r#"{{"name":"{name}","size_mib":4096}}"#);
        let r = d.request(Via::Unix, "POST", "/v1/volumes", Some(&body), None);
        assert_eq!(r.status, 201, "{}", r.body);
    };

    // What an empty 4 GiB filesystem costs: the metadata baseline.
    create("empty");
    let metadata = allocated_bytes(&device(&d, "empty"));

    create("src");
    let src = device(&d, "src");
    let m = LoopMount::new(&src, &d.scratch("src"), false);
    write_test_files(m.path(), 100);
    m.unmount();
    let limit = metadata + 100 * MIB + 32 * MIB;
    let src_alloc = allocated_bytes(&src);
    assert!(
        src_alloc <= limit,
        "source allocates {} MiB",
        src_alloc / MIB
    );

    let r = d.request(
        Via::Unix,
        "POST",
        "/v1/volumes/src/clone",
        Some(r#"{"name":"copy"}"#),
        None,
    );
    assert_eq!(r.status, 201, "{}", r.body);
    let copy = device(&d, "copy");
    let copy_alloc = allocated_bytes(&copy);
    assert!(
        copy_alloc <= limit,
        "clone allocates {} MiB (source {} MiB, empty fs {} MiB)",
        copy_alloc / MIB,
        src_alloc / MIB,
        metadata / MIB
    );

    let r = d.request(
        Via::Unix,
        "POST",
        "/v1/volumes/copy/resize",
        Some(r#"{"size_mib":8192}"#),
        None,
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let grown = allocated_bytes(&copy);
    assert_eq!(
        std::fs::metadata(&copy).map(|m| m.len()).ok(),
        Some(8192 * MIB)
    );
    assert!(
        grown <= limit + 64 * MIB,
        "grown clone allocates {} MiB (before the grow {} MiB)",
        grown / MIB,
        copy_alloc / MIB
    );
    let _ = Path::new("");
}
