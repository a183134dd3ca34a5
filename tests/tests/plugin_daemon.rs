//! Plugins in a real `kilnd`, driven through the real `kiln`: the qcow2
//! plugin's whole lifecycle (backup and restore included), libraries refused at start-up, and a panic in
//! a plugin failing one request while the daemon keeps serving.

mod plugin_support;

use plugin_support::{libraries, require_root, system_library, PluginDaemon};

fn plugin_pool(library: &std::path::Path, options: serde_json::Value) -> String {
    format!(
        "    driver: plugin\n    library: {}\n    options: {options}\n",
        library.display()
    )
}

#[test]
fn root_qcow2_pool_lifecycle_through_kiln() {
    require_root("the qcow2 plugin's raw views are FUSE mounts");
    let libs = libraries();
    let d = PluginDaemon::configure_with_backups(|dir| {
        plugin_pool(
            &libs.qcow2,
            serde_json::json!({ "path": dir.join("images") }),
        )
    })
    .start();
    let images = d.path("images");

    // `kiln pool list` shows the driver and the plugin's name and version.
    let pools = d.kiln_json(&["pool", "list"]);
    let pool = &pools[0];
    assert_eq!(pool["driver"], "plugin", "{pools}");
    assert_eq!(pool["plugin"]["name"], "qcow2", "{pools}");
    assert_eq!(pool["plugin"]["version"], "0.1.0", "{pools}");
    assert_eq!(pool["capabilities"]["sparse_reads"], true, "{pools}");
    let (code, table, _) = d.kiln(&["pool", "list"]);
    assert_eq!(code, 0);
    assert!(
        table.contains("qcow2"),
        "the table names the plugin: {table}"
    );

    let v = d.kiln_json(&["volume", "create", "--name", "data", "--size", "64"]);
    assert_eq!(v["size_mib"], 64);
    let id = v["id"].as_str().expect("an id").to_string();
    let image = images.join(format!("{id}.qcow2"));
    assert!(
        image.is_file(),
        "the volume is a qcow2 image: {}",
        image.display()
    );

    let v = d.kiln_json(&["volume", "resize", "data", "--size", "128"]);
    assert_eq!(v["size_mib"], 128);
    let copy = d.kiln_json(&["volume", "clone", "data", "--name", "copy"]);
    assert_eq!(copy["size_mib"], 128);

    // An attached volume's device is the qcow2 image, what a VMM opens.
    let sb = d.kiln_json(&[
        "sandbox",
        "create",
        "--name",
        "sb1",
        "--volume",
        "data:/data",
    ]);
    let device = sb["volumes"][0]["device"].as_str().expect("a device path");
    assert_eq!(device, image.to_str().expect("UTF-8"), "{sb}");
    let (code, _, stderr) = d.kiln(&["volume", "delete", "data", "--yes"]);
    assert_ne!(code, 0, "an attached volume cannot be deleted: {stderr}");
    let (code, _, stderr) = d.kiln(&["sandbox", "destroy", "sb1", "--yes"]);
    assert_eq!(code, 0, "{stderr}");

    // A backup reads the image through the plugin's block reads, and a
    // restore writes a new volume through its block writes.
    let backup = d.kiln_json(&["volume", "backup", "data"]);
    assert_eq!(backup["driver"], "plugin", "{backup}");
    let backup_id = backup["id"].as_str().expect("a backup id").to_string();
    let backups = d.kiln_json(&["volume", "backup-list", "data"]);
    assert_eq!(backups[0]["id"], backup_id.as_str(), "{backups}");
    let restored = d.kiln_json(&[
        "volume",
        "restore",
        "data",
        "--backup-id",
        &backup_id,
        "--to",
        "restored",
    ]);
    assert_eq!(restored["size_mib"], 128, "{restored}");
    let restored_image = images.join(format!("{}.qcow2", restored["id"].as_str().expect("an id")));
    assert!(restored_image.is_file(), "{}", restored_image.display());

    let listed = d.kiln_json(&["volume", "list"]);
    assert_eq!(listed.as_array().map(Vec::len), Some(3), "{listed}");
    for name in ["copy", "data", "restored"] {
        let (code, _, stderr) = d.kiln(&["volume", "delete", name, "--yes"]);
        assert_eq!(code, 0, "delete {name}: {stderr}");
    }
    assert!(!image.exists(), "delete removes the image");
    let pools = d.kiln_json(&["pool", "list"]);
    assert_eq!(pools[0]["volumes"], 0, "{pools}");
}

#[test]
fn a_library_of_another_abi_version_is_refused_at_start_up() {
    let libs = libraries();
    let d = PluginDaemon::configure(|_| plugin_pool(&libs.wrong_abi, serde_json::json!({})));
    let (status, log) = d.start_refused();
    assert!(!status.success(), "kilnd must not start: {log}");
    let library = libs.wrong_abi.display().to_string();
    assert!(log.contains(&library), "the error names the library: {log}");
    assert!(
        log.contains("ABI version 99") && log.contains("kilnd speaks version 1"),
        "the error names both versions: {log}"
    );
}

#[test]
fn a_library_that_is_not_a_plugin_is_refused_at_start_up() {
    let libm = system_library();
    let d = PluginDaemon::configure(|_| plugin_pool(&libm, serde_json::json!({})));
    let (status, log) = d.start_refused();
    assert!(!status.success(), "kilnd must not start: {log}");
    assert!(
        log.contains(&format!("{} is not a kiln plugin", libm.display()))
            && log.contains("kiln_plugin_entry"),
        "{log}"
    );
}

#[test]
fn a_panic_in_a_plugin_fails_that_request_and_the_daemon_keeps_serving() {
    let libs = libraries();
    let mut d = PluginDaemon::configure(|dir| {
        plugin_pool(
            &libs.panicky,
            serde_json::json!({ "path": dir.join("volumes") }),
        )
    })
    .start();

    let r = d.request("POST", "/v1/volumes", Some(r#"{"name":"a","size_mib":16}"#));
    assert_eq!(r.status, 201, "{}", r.body);

    // The plugin's grow panics: that request gets a 500 ...
    let r = d.request("POST", "/v1/volumes/a/resize", Some(r#"{"size_mib":32}"#));
    assert_eq!(r.status, 500, "{}", r.body);
    assert_eq!(r.json()["error"]["code"], "internal", "{}", r.body);

    // ... and everything else keeps working.
    assert!(d.is_running(), "kilnd survived the panic");
    let r = d.request("GET", "/v1/volumes", None);
    assert_eq!(r.status, 200, "{}", r.body);
    let r = d.request("POST", "/v1/volumes", Some(r#"{"name":"b","size_mib":16}"#));
    assert_eq!(r.status, 201, "{}", r.body);
    let r = d.request("GET", "/v1/pools", None);
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(
        d.log_text().contains("plugin panicked in grow"),
        "the panic is logged with its operation:\n{}",
        d.log_text()
    );
}
