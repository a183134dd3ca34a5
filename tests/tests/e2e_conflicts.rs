//! End to end: every 409 of the API, through the real daemon, each
//! checked to have changed nothing.

use kiln_tests::daemon::{require_root, write_test_files, Daemon, DaemonOptions, LoopMount, Via};

fn post(d: &Daemon, path: &str, body: &str) -> kiln_tests::daemon::HttpResponse {
    d.request(Via::Unix, "POST", path, Some(body), None)
}

fn state(d: &Daemon) -> (String, String) {
    let v = d.request(Via::Unix, "GET", "/v1/volumes", None, None);
    let s = d.request(Via::Unix, "GET", "/v1/sandboxes", None, None);
    assert_eq!((v.status, s.status), (200, 200));
    (v.body, s.body)
}

#[track_caller]
fn assert_409(d: &Daemon, r: kiln_tests::daemon::HttpResponse, code: &str, mentions: &str) {
    assert_eq!(r.status, 409, "{}", r.body);
    assert_eq!(r.code(), code, "{}", r.body);
    let message = r.json()["error"]["message"]
        .as_str()
        .unwrap_or("")
        .to_string();
    assert!(
        message.contains(mentions),
        "{message:?} does not name {mentions:?}"
    );
    let _ = d;
}

#[test]
fn root_attached_volumes_refuse_delete_resize_clone_and_a_second_writer() {
    require_root("the daemon's pool on real ext4 images");
    let d = Daemon::start(DaemonOptions::default());
    assert_eq!(
        post(&d, "/v1/volumes", r#"{"name":"v","size_mib":64}"#).status,
        201
    );
    assert_eq!(
        post(&d, "/v1/volumes", r#"{"name":"w","size_mib":64}"#).status,
        201
    );
    let r = post(
        &d,
        "/v1/sandboxes",
        r#"{"name":"holder","volumes":[{"volume":"v","mount":"/data"}]}"#,
    );
    assert_eq!(r.status, 201, "{}", r.body);
    let before = state(&d);

    let r = d.request(Via::Unix, "DELETE", "/v1/volumes/v", None, None);
    assert_409(&d, r, "conflict", "holder");
    let r = post(&d, "/v1/volumes/v/resize", r#"{"size_mib":128}"#);
    assert_409(&d, r, "conflict", "holder");
    let r = post(&d, "/v1/volumes/v/clone", r#"{"name":"v2"}"#);
    assert_409(&d, r, "conflict", "holder");

    // A read-write attachment excludes every other, rw or ro; and the
    // second sandbox attaches none of its volumes (w stays free).
    let r = post(
        &d,
        "/v1/sandboxes",
        r#"{"name":"sb2","volumes":[{"volume":"w","mount":"/w"},{"volume":"v","mount":"/v"}]}"#,
    );
    assert_409(&d, r, "conflict", "holder");
    let r = post(
        &d,
        "/v1/sandboxes",
        r#"{"name":"sb3","volumes":[{"volume":"v","mount":"/v","read_only":true}]}"#,
    );
    assert_409(&d, r, "conflict", "holder");
    assert_eq!(state(&d), before, "a refused request changed something");

    // Read-only attachments share, but exclude a writer.
    let r = d.request(Via::Unix, "DELETE", "/v1/sandboxes/holder", None, None);
    assert_eq!(r.status, 204, "{}", r.body);
    for name in ["ro1", "ro2"] {
        let body = format!(
            r#"{{"name":"{name}","volumes":[{{"volume":"v","mount":"/v","read_only":true}}]}}"#
        );
        assert_eq!(post(&d, "/v1/sandboxes", &body).status, 201);
    }
    let before = state(&d);
    let r = post(
        &d,
        "/v1/sandboxes",
        r#"{"name":"rw","volumes":[{"volume":"v","mount":"/v"}]}"#,
    );
    assert_409(&d, r, "conflict", "ro1");
    assert_eq!(state(&d), before, "a refused request changed something");
}

#[test]
fn root_taken_names_answer_409_already_exists() {
    require_root("the daemon's pool on real ext4 images");
    let d = Daemon::start(DaemonOptions::default());
    assert_eq!(
        post(&d, "/v1/volumes", r#"{"name":"a","size_mib":64}"#).status,
        201
    );
    assert_eq!(
        post(&d, "/v1/volumes", r#"{"name":"b","size_mib":64}"#).status,
        201
    );
    let r = post(&d, "/v1/sandboxes", r#"{"name":"sb","volumes":[]}"#);
    assert_eq!(r.status, 201, "{}", r.body);
    let before = state(&d);

    let r = post(&d, "/v1/volumes", r#"{"name":"a","size_mib":32}"#);
    assert_409(&d, r, "already_exists", "a");
    let r = post(&d, "/v1/volumes/a/clone", r#"{"name":"b"}"#);
    assert_409(&d, r, "already_exists", "b");
    let r = post(&d, "/v1/sandboxes", r#"{"name":"sb","volumes":[]}"#);
    assert_409(&d, r, "already_exists", "sb");
    assert_eq!(state(&d), before, "a refused request changed something");

    // The CLI reports the refusal with exit code 1.
    let out = d.kiln(&["volume", "create", "--name", "a", "--size", "32"]);
    assert_eq!(out.code(), 1, "{out:?}");
}

#[test]
fn root_a_volume_being_cloned_is_busy() {
    require_root("loop mounts of volume images");
    let d = Daemon::start(DaemonOptions {
        quota_mib: Some(65536),
        reflink: Some("never".to_string()),
        ..DaemonOptions::default()
    });
    // Enough data that the copy takes a while on a filesystem without
    // reflinks (the host's ext4).
    assert_eq!(
        post(&d, "/v1/volumes", r#"{"name":"big","size_mib":4096}"#).status,
        201
    );
    let sb = post(
        &d,
        "/v1/sandboxes",
        r#"{"name":"w","volumes":[{"volume":"big","mount":"/b"}]}"#,
    );
    let device = sb.json()["volumes"][0]["device"]
        .as_str()
        .expect("a device for a running sandbox")
        .to_string();
    let m = LoopMount::new(std::path::Path::new(&device), &d.scratch("big"), false);
    write_test_files(m.path(), 768);
    m.unmount();
    assert_eq!(
        d.request(Via::Unix, "DELETE", "/v1/sandboxes/w", None, None)
            .status,
        204
    );

    let socket = d.socket().to_path_buf();
    let mut clone = d.kiln_command();
    clone
        .arg("--socket")
        .arg(&socket)
        .args(["volume", "clone", "big", "--name", "big2"]);
    let mut clone = clone.spawn().expect("start the clone");

    // While the copy runs, the source is held: a delete or a second clone
    // is refused as busy.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let mut refused = None;
    while std::time::Instant::now() < deadline && refused.is_none() {
        let r = d.request(Via::Unix, "GET", "/v1/volumes/big2", None, None);
        if r.status == 200 && r.json()["status"] == "cloning" {
            refused = Some(post(&d, "/v1/volumes/big/clone", r#"{"name":"big3"}"#));
        } else if r.status == 200 {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    let status = clone.wait().expect("wait for the clone");
    assert!(status.success(), "clone failed: {status}");
    let refused = refused.expect("never saw the clone in progress (status cloning)");
    assert_409(&d, refused, "conflict", "busy");
    let r = d.request(Via::Unix, "GET", "/v1/volumes/big3", None, None);
    assert_eq!(r.status, 404, "the refused clone left {}", r.body);
}
