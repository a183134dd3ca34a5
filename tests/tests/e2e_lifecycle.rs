//! End to end: a real kilnd on a temporary data directory, driven by the
//! real kiln CLI, with the data checked through loop mounts of the
//! devices the API hands out.

use std::path::PathBuf;

use kiln_tests::daemon::{
    checksums, ext4_size_bytes, require_root, write_test_files, Daemon, DaemonOptions, LoopMount,
};

fn device_of(sandbox: &serde_json::Value, volume: &str) -> PathBuf {
    let entry = sandbox["volumes"]
        .as_array()
        .and_then(|vs| vs.iter().find(|v| v["volume"] == volume))
        .unwrap_or_else(|| panic!("sandbox has no volume {volume}: {sandbox}"));
    let device = entry["device"]
        .as_str()
        .unwrap_or_else(|| panic!("running sandbox shows no device for {volume}: {sandbox}"));
    PathBuf::from(device)
}

#[test]
fn root_volume_lifecycle_through_the_cli() {
    require_root("loop mounts of volume images");
    let d = Daemon::start(DaemonOptions::default());

    // Create.
    let v = d.kiln_json(&["volume", "create", "--name", "data", "--size", "256M"]);
    assert_eq!(v["name"], "data");
    assert_eq!(v["size_mib"], 256);
    assert_eq!(v["status"], "ready");
    assert_eq!(v["pool"], "default");

    // Attach it read-write to a sandbox; the device is a real ext4 image.
    let sb = d.kiln_json(&[
        "sandbox",
        "create",
        "--name",
        "sb1",
        "--volume",
        "data:/data",
    ]);
    assert_eq!(sb["state"], "running");
    assert_eq!(sb["volumes"][0]["read_only"], false);
    assert_eq!(sb["volumes"][0]["mount"], "/data");
    let device = device_of(&sb, "data");
    assert!(
        device.exists(),
        "device {} does not exist",
        device.display()
    );
    let v = d.kiln_json(&["volume", "get", "data"]);
    assert_eq!(v["attachments"][0]["sandbox"], "sb1");

    // Write files through a loop mount of the device, as a guest would.
    let m = LoopMount::new(&device, &d.scratch("data"), false);
    let written = write_test_files(m.path(), 8);
    assert_eq!(written.len(), 6, "{written:?}");
    m.unmount();

    // Destroy the sandbox: the volume is detached and kept.
    let out = d.kiln(&["sandbox", "destroy", "sb1", "--yes"]);
    assert_eq!(out.code(), 0, "{out:?}");
    let v = d.kiln_json(&["volume", "get", "data"]);
    assert_eq!(v["attachments"], serde_json::json!([]));

    // Clone: the copy holds the same files.
    let c = d.kiln_json(&["volume", "clone", "data", "--name", "copy"]);
    assert_eq!(c["name"], "copy");
    assert_eq!(c["size_mib"], 256);
    assert_ne!(c["id"], v["id"]);
    let sb = d.kiln_json(&[
        "sandbox",
        "create",
        "--name",
        "reader",
        "--volume",
        "copy:/copy:ro",
    ]);
    assert_eq!(sb["volumes"][0]["read_only"], true);
    let copy_device = device_of(&sb, "copy");
    assert_ne!(copy_device, device);
    let m = LoopMount::new(&copy_device, &d.scratch("copy"), true);
    assert_eq!(checksums(m.path()), written, "the clone's files differ");
    m.unmount();
    let out = d.kiln(&["sandbox", "destroy", "reader", "--yes"]);
    assert_eq!(out.code(), 0, "{out:?}");

    // Resize: the filesystem grew and the data is intact.
    let before = ext4_size_bytes(&device);
    let v = d.kiln_json(&["volume", "resize", "data", "--size", "1G"]);
    assert_eq!(v["size_mib"], 1024);
    let after = ext4_size_bytes(&device);
    assert!(
        after > before && after >= 1000 << 20,
        "filesystem did not grow: {before} -> {after} bytes"
    );
    let sb = d.kiln_json(&[
        "sandbox",
        "create",
        "--name",
        "sb2",
        "--volume",
        "data:/data:ro",
    ]);
    let m = LoopMount::new(&device_of(&sb, "data"), &d.scratch("grown"), true);
    assert_eq!(checksums(m.path()), written, "data changed by the resize");
    m.unmount();
    let out = d.kiln(&["sandbox", "destroy", "sb2", "--yes"]);
    assert_eq!(out.code(), 0, "{out:?}");

    // Shrink is refused and changes nothing.
    let out = d.kiln(&["volume", "resize", "data", "--size", "512"]);
    assert_eq!(out.code(), 1, "shrink accepted: {out:?}");
    assert_eq!(d.kiln_json(&["volume", "get", "data"])["size_mib"], 1024);
    assert_eq!(ext4_size_bytes(&device), after);

    // Delete: gone from the catalog and from the pool.
    let out = d.kiln(&["volume", "delete", "data", "--yes"]);
    assert_eq!(out.code(), 0, "{out:?}");
    let out = d.kiln(&["volume", "get", "data"]);
    assert_eq!(out.code(), 1, "deleted volume still found: {out:?}");
    assert!(!device.exists(), "image {} left behind", device.display());
    let list = d.kiln_json(&["volume", "list"]);
    let names: Vec<&str> = list
        .as_array()
        .or_else(|| list["volumes"].as_array())
        .expect("volume list is an array")
        .iter()
        .filter_map(|v| v["name"].as_str())
        .collect();
    assert_eq!(names, ["copy"]);
}

#[test]
fn root_stop_and_start_detach_and_reattach() {
    require_root("the daemon's pool on real ext4 images");
    let d = Daemon::start(DaemonOptions::default());
    d.kiln_json(&["volume", "create", "--name", "v", "--size", "64"]);
    d.kiln_json(&["sandbox", "create", "--name", "sb", "--volume", "v:/work"]);

    let sb = d.kiln_json(&["sandbox", "stop", "sb"]);
    assert_eq!(sb["state"], "stopped");
    assert!(sb["volumes"][0].get("device").is_none(), "{sb}");
    assert_eq!(
        d.kiln_json(&["volume", "get", "v"])["attachments"],
        serde_json::json!([])
    );
    // Detached, so another sandbox may take it read-write meanwhile...
    d.kiln_json(&["sandbox", "create", "--name", "other", "--volume", "v:/x"]);
    // ...and then the stopped one cannot start.
    let out = d.kiln(&["sandbox", "start", "sb"]);
    assert_eq!(out.code(), 1, "{out:?}");
    let out = d.kiln(&["sandbox", "destroy", "other", "--yes"]);
    assert_eq!(out.code(), 0, "{out:?}");

    let sb = d.kiln_json(&["sandbox", "start", "sb"]);
    assert_eq!(sb["state"], "running");
    assert!(sb["volumes"][0]["device"].is_string(), "{sb}");
    assert_eq!(
        d.kiln_json(&["volume", "get", "v"])["attachments"][0]["sandbox"],
        "sb"
    );
}
