//! End to end: `kill -9` of kilnd in the middle of a clone and of a
//! create; after a restart the catalog and the pool agree and the source
//! is intact.

use std::collections::BTreeSet;
use std::path::Path;
use std::time::{Duration, Instant};

use kiln_tests::daemon::{
    checksums, require_root, write_test_files, Daemon, DaemonOptions, LoopMount, Via,
};

/// The `vol-...` ids in the names of the pool folder's files.
fn ids_in_pool(d: &Daemon) -> BTreeSet<String> {
    let mut ids = BTreeSet::new();
    for entry in std::fs::read_dir(d.pool_dir()).expect("read the pool folder") {
        let name = entry.expect("read a pool entry").file_name();
        let name = name.to_string_lossy();
        if let Some(at) = name.find("vol-") {
            let id: String = name[at..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '-')
                .collect();
            ids.insert(id);
        }
    }
    ids
}

/// Checks that the catalog and the pool agree after recovery: no
/// operation left half-way, every catalog volume that is not `error` has
/// its image, and every image is a catalog volume or shown as unmanaged.
fn assert_catalog_and_pool_agree(d: &Daemon) {
    let volumes = d
        .request(Via::Unix, "GET", "/v1/volumes", None, None)
        .json();
    let pools = d.request(Via::Unix, "GET", "/v1/pools", None, None).json();
    let in_pool = ids_in_pool(d);
    let mut known = BTreeSet::new();
    for v in volumes["volumes"].as_array().expect("a volume list") {
        let id = v["id"].as_str().expect("a volume id").to_string();
        let status = v["status"].as_str().expect("a status");
        assert!(
            status == "ready" || status == "error",
            "volume {} left {status} after recovery: {v}",
            v["name"]
        );
        if status == "ready" {
            assert!(
                in_pool.contains(&id),
                "ready volume {} has no image: {v}",
                v["name"]
            );
        }
        known.insert(id);
    }
    for p in pools["pools"].as_array().expect("a pool list") {
        for id in p["unmanaged"].as_array().expect("an unmanaged list") {
            known.insert(id.as_str().expect("an id").to_string());
        }
    }
    let unseen: Vec<_> = in_pool.difference(&known).collect();
    assert!(
        unseen.is_empty(),
        "images neither in the catalog nor shown as unmanaged: {unseen:?}\n{volumes}\n{pools}"
    );
}

/// Mounts `volume` read-only through a sandbox and returns its checksums.
fn checksums_of(
    d: &Daemon,
    volume: &str,
    mount_name: &str,
) -> std::collections::BTreeMap<String, String> {
    let body = format!(
        r#"{{"name":"check-{mount_name}","volumes":[{{"volume":"{volume}","mount":"/c","read_only":true}}]}}"#
    );
    let sb = d.request(Via::Unix, "POST", "/v1/sandboxes", Some(&body), None);
    assert_eq!(sb.status, 201, "{}", sb.body);
    let device = sb.json()["volumes"][0]["device"]
        .as_str()
        .expect("a device")
        .to_string();
    let m = LoopMount::new(Path::new(&device), &d.scratch(mount_name), true);
    let sums = checksums(m.path());
    m.unmount();
    let path = format!("/v1/sandboxes/check-{mount_name}");
    assert_eq!(
        d.request(Via::Unix, "DELETE", &path, None, None).status,
        204
    );
    sums
}

/// Polls `GET /v1/volumes/NAME` until its status is `status`; false if
/// the volume got past it (or never appeared) before the deadline.
fn wait_for_status(d: &Daemon, name: &str, status: &str, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    let path = format!("/v1/volumes/{name}");
    while Instant::now() < deadline {
        if let Ok(r) = d.try_request(Via::Unix, "GET", &path, None, None) {
            if r.status == 200 {
                let now = r.json()["status"].as_str().unwrap_or("").to_string();
                if now == status {
                    return true;
                }
                if now == "ready" {
                    return false;
                }
            }
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    false
}

#[test]
fn root_kill_9_during_a_clone_leaves_catalog_and_pool_agreeing() {
    require_root("loop mounts of volume images");
    let mut d = Daemon::start(DaemonOptions {
        quota_mib: Some(1 << 20),
        reflink: Some("never".to_string()),
        ..DaemonOptions::default()
    });
    let r = d.request(
        Via::Unix,
        "POST",
        "/v1/volumes",
        Some(r#"{"name":"src","size_mib":8192}"#),
        None,
    );
    assert_eq!(r.status, 201, "{}", r.body);
    let body = r#"{"name":"w","volumes":[{"volume":"src","mount":"/s"}]}"#;
    let sb = d.request(Via::Unix, "POST", "/v1/sandboxes", Some(body), None);
    let device = sb.json()["volumes"][0]["device"]
        .as_str()
        .expect("a device")
        .to_string();
    let m = LoopMount::new(Path::new(&device), &d.scratch("src"), false);
    let written = write_test_files(m.path(), 1024);
    m.unmount();
    assert_eq!(
        d.request(Via::Unix, "DELETE", "/v1/sandboxes/w", None, None)
            .status,
        204
    );

    let mut clone = d.kiln_command();
    clone
        .arg("--socket")
        .arg(d.socket())
        .args(["volume", "clone", "src", "--name", "dst"]);
    let mut clone = clone.spawn().expect("start the clone");
    let caught = wait_for_status(&d, "dst", "cloning", Duration::from_secs(60));
    d.kill9();
    let _ = clone.wait();
    assert!(caught, "the clone finished before it could be interrupted");

    d.restart();
    assert_catalog_and_pool_agree(&d);
    let src = d
        .request(Via::Unix, "GET", "/v1/volumes/src", None, None)
        .json();
    assert_eq!(src["status"], "ready", "{src}");
    assert_eq!(
        checksums_of(&d, "src", "after"),
        written,
        "the source changed"
    );

    // Whatever recovery did with the copy, cloning again works.
    let dst = d.request(Via::Unix, "GET", "/v1/volumes/dst", None, None);
    if dst.status == 200 {
        let r = d.request(Via::Unix, "DELETE", "/v1/volumes/dst", None, None);
        assert_eq!(r.status, 204, "{}", r.body);
    } else {
        assert_eq!(dst.status, 404, "{}", dst.body);
    }
    let r = d.request(
        Via::Unix,
        "POST",
        "/v1/volumes/src/clone",
        Some(r#"{"name":"dst"}"#),
        None,
    );
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(
        checksums_of(&d, "dst", "copy"),
        written,
        "the new copy differs"
    );
    assert_catalog_and_pool_agree(&d);
}

#[test]
fn root_kill_9_during_a_create_leaves_catalog_and_pool_agreeing() {
    require_root("the daemon's pool on real ext4 images");
    let mut d = Daemon::start(DaemonOptions {
        quota_mib: Some(1 << 30),
        reflink: Some("never".to_string()),
        ..DaemonOptions::default()
    });
    // Large, so mkfs takes long enough to be caught, but within the pool
    // (whose size is the host filesystem's).
    let pools = d.request(Via::Unix, "GET", "/v1/pools", None, None).json();
    let pool_mib = pools["pools"][0]["capacity"]["size_bytes"]
        .as_u64()
        .expect("the pool reports its size")
        >> 20;
    let size = (pool_mib / 2).min(128 * 1024).to_string();
    let mut interrupted = 0;
    for attempt in 0..8 {
        let name = format!("v{attempt}");
        let mut create = d.kiln_command();
        create
            .arg("--socket")
            .arg(d.socket())
            .args(["volume", "create", "--name", &name, "--size", &size]);
        let mut create = create.spawn().expect("start the create");
        if wait_for_status(&d, &name, "creating", Duration::from_secs(30)) {
            interrupted += 1;
        }
        d.kill9();
        let _ = create.wait();
        d.restart();
        assert_catalog_and_pool_agree(&d);
        if interrupted >= 2 {
            break;
        }
    }
    assert!(
        interrupted > 0,
        "no create was caught in progress in 8 attempts"
    );

    // The daemon still works normally after the crashes.
    let r = d.request(
        Via::Unix,
        "POST",
        "/v1/volumes",
        Some(r#"{"name":"after","size_mib":64}"#),
        None,
    );
    assert_eq!(r.status, 201, "{}", r.body);
    assert_catalog_and_pool_agree(&d);
}
