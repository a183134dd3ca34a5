//! End to end: the daemon's own behaviour: clean shutdown, the socket's
//! mode, stale and live sockets, and config errors at start-up.

use std::os::unix::fs::PermissionsExt;
use std::process::Command;

use kiln_tests::daemon::{binary, require_root, unique_tag, Daemon, DaemonOptions, Via};

#[test]
fn root_sigterm_stops_cleanly_and_removes_the_socket() {
    require_root("the daemon's pool on real ext4 images");
    let mut d = Daemon::start(DaemonOptions::default());
    let mode = std::fs::metadata(d.socket())
        .expect("stat the socket")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "socket mode {mode:o}");
    let status = d.stop();
    assert!(
        status.success(),
        "kilnd exited with {status}:\n{}",
        d.log_text()
    );
    assert!(!d.socket().exists(), "socket left behind");
    assert!(d.log_text().contains("listening"), "{}", d.log_text());

    // A stale socket file from a crash is replaced.
    d.restart();
    d.kill9();
    assert!(d.socket().exists(), "kill -9 should leave the socket file");
    d.restart();
    assert_eq!(
        d.request(Via::Unix, "GET", "/healthz", None, None).status,
        200
    );
}

#[test]
fn root_data_dir_mode_serves_the_embedded_default() {
    require_root("the daemon's pool on real ext4 images");
    let d = Daemon::start(DaemonOptions {
        embedded: true,
        ..DaemonOptions::default()
    });
    assert_eq!(d.socket(), d.data_dir().join("kiln.sock"));
    let v = d.kiln_json(&["volume", "create", "--name", "v", "--size", "64"]);
    assert_eq!(v["pool"], "default");
    let pools = d.request(Via::Unix, "GET", "/v1/pools", None, None).json();
    assert_eq!(pools["pools"][0]["name"], "default");
    assert_eq!(pools["pools"][0]["driver"], "ext4-file");
    let images = std::fs::read_dir(d.pool_dir())
        .expect("the pool folder exists")
        .count();
    assert!(images >= 1, "no image under {}", d.pool_dir().display());
}

#[test]
fn root_a_second_daemon_on_the_same_socket_is_refused() {
    require_root("the daemon's pool on real ext4 images");
    let d = Daemon::start(DaemonOptions::default());
    let other = tempfile::Builder::new()
        .prefix(&format!("{}-", unique_tag("kiln-e2e-second")))
        .tempdir()
        .expect("temporary folder");
    let config = other.path().join("config.yaml");
    std::fs::write(
        &config,
        format!(
            "data_dir: {}\nlisten:\n  socket: {}\npools:\n  p:\n    driver: ext4-file\n    path: {}\n",
            other.path().join("data").display(),
            d.socket().display(),
            other.path().join("volumes").display()
        ),
    )
    .expect("write the config");
    let out = Command::new(binary("kilnd"))
        .arg("--config")
        .arg(&config)
        .output()
        .expect("run kilnd");
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("another kilnd"), "{stderr}");
    assert_eq!(
        d.request(Via::Unix, "GET", "/healthz", None, None).status,
        200
    );
}

#[test]
fn config_errors_name_the_key_and_exit_2() {
    let dir = tempfile::Builder::new()
        .prefix(&format!("{}-", unique_tag("kiln-e2e-config")))
        .tempdir()
        .expect("temporary folder");
    let cases = [
        ("colour: blue\n", "colour"),
        ("listen:\n  tcp: nowhere\n", "listen.tcp"),
        ("default_pool: fast\n", "default_pool"),
    ];
    for (i, (extra, key)) in cases.into_iter().enumerate() {
        let config = dir.path().join(format!("config-{i}.yaml"));
        std::fs::write(
            &config,
            format!(
                "data_dir: {}\npools:\n  default:\n    driver: ext4-file\n    path: {}\n{extra}",
                dir.path().join("data").display(),
                dir.path().join("volumes").display()
            ),
        )
        .expect("write the config");
        let out = Command::new(binary("kilnd"))
            .arg("--config")
            .arg(&config)
            .output()
            .expect("run kilnd");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{extra:?}: {stderr}");
        assert!(
            stderr.contains(key),
            "{extra:?}: {stderr} does not name {key}"
        );
    }

    let config = dir.path().join("driver.yaml");
    std::fs::write(
        &config,
        format!(
            "data_dir: {}\npools:\n  p:\n    driver: floppy\n",
            dir.path().join("data").display()
        ),
    )
    .expect("write the config");
    let out = Command::new(binary("kilnd"))
        .arg("--config")
        .arg(&config)
        .output()
        .expect("run kilnd");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("pools.p.driver"), "{stderr}");
}

#[test]
fn root_sigterm_lets_a_request_in_flight_finish() {
    require_root("loop mounts of volume images");
    let mut d = Daemon::start(DaemonOptions {
        quota_mib: Some(65536),
        reflink: Some("never".to_string()),
        ..DaemonOptions::default()
    });
    let post = |path: &str, body: &str| d.request(Via::Unix, "POST", path, Some(body), None);
    assert_eq!(
        post("/v1/volumes", r#"{"name":"big","size_mib":4096}"#).status,
        201
    );
    let sb = post(
        "/v1/sandboxes",
        r#"{"name":"w","volumes":[{"volume":"big","mount":"/b"}]}"#,
    );
    let device = sb.json()["volumes"][0]["device"]
        .as_str()
        .expect("a device for a running sandbox")
        .to_string();
    let m =
        kiln_tests::daemon::LoopMount::new(std::path::Path::new(&device), &d.scratch("big"), false);
    kiln_tests::daemon::write_test_files(m.path(), 512);
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
        .args(["volume", "clone", "big", "--name", "copy"]);
    let mut clone = clone.spawn().expect("start the clone");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let r = d.request(Via::Unix, "GET", "/v1/volumes/copy", None, None);
        if r.status == 200 {
            assert_eq!(r.json()["status"], "cloning", "the clone finished too soon");
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the clone never started"
        );
        std::thread::sleep(std::time::Duration::from_millis(2));
    }

    // SIGTERM while the clone runs: the daemon finishes it, then exits 0.
    let status = d.stop();
    assert!(
        status.success(),
        "kilnd exited with {status}:\n{}",
        d.log_text()
    );
    let clone = clone.wait().expect("wait for the clone");
    assert!(clone.success(), "the clone in flight failed: {clone}");
    assert!(d.log_text().contains("shutting down"), "{}", d.log_text());

    d.restart();
    let r = d.request(Via::Unix, "GET", "/v1/volumes/copy", None, None);
    assert_eq!(
        (r.status, r.json()["status"].clone()),
        (200, "ready".into()),
        "{}",
        r.body
    );
}
