//! Runs the `kiln` binary against a stand-in for kilnd: a canned HTTP
//! responder on a unix socket (or TCP), written here, that records every
//! request. It checks what the CLI sends (method, path, body, token) and
//! what it prints and exits with, for success and for each error status.
//! The real daemon end to end is tested in the workspace's tests crate.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixListener;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use serde_json::{json, Value};

/// One request as the stand-in saw it.
#[derive(Debug, Clone)]
struct Seen {
    method: String,
    target: String,
    headers: Vec<(String, String)>,
    body: String,
}

impl Seen {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn json(&self) -> Value {
        serde_json::from_str(&self.body).expect("the CLI sent a JSON body")
    }
}

type Responder = dyn Fn(&Seen) -> (u16, Value) + Send + Sync;

/// A stand-in for kilnd: answers each request with what `respond` says
/// and records it. Its socket lives in its own temp dir, removed on drop.
struct StandInKilnd {
    dir: tempfile::TempDir,
    socket: PathBuf,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl StandInKilnd {
    fn unix(respond: impl Fn(&Seen) -> (u16, Value) + Send + Sync + 'static) -> StandInKilnd {
        let dir = tempfile::Builder::new()
            .prefix("kiln-cli-test-")
            .tempdir()
            .expect("a temp dir for the stand-in's socket");
        let socket = dir.path().join("kiln.sock");
        let listener = UnixListener::bind(&socket).expect("bind the stand-in's socket");
        let seen = Arc::new(Mutex::new(Vec::new()));
        let respond: Arc<Responder> = Arc::new(respond);
        let recorded = Arc::clone(&seen);
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { return };
                serve(stream, &*respond, &recorded);
            }
        });
        StandInKilnd { dir, socket, seen }
    }

    /// `kiln --socket THIS ARGS...` with no KILN_* from the outside.
    fn kiln(&self, args: &[&str]) -> Output {
        let mut command = kiln_command();
        command.arg("--socket").arg(&self.socket).args(args);
        command.output().expect("run kiln")
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().expect("the stand-in's log").clone()
    }

    fn only_request(&self) -> Seen {
        let seen = self.seen();
        assert_eq!(seen.len(), 1, "expected one request, got {seen:#?}");
        seen.into_iter().next().expect("one request")
    }
}

impl Drop for StandInKilnd {
    fn drop(&mut self) {
        // The listener thread dies with the test process; the socket's
        // directory goes with the TempDir.
        let _ = std::fs::remove_file(&self.socket);
        let _ = &self.dir;
    }
}

fn kiln_command() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_kiln"));
    command
        .env_remove("KILN_SOCKET")
        .env_remove("KILN_URL")
        .env_remove("KILN_TOKEN")
        .stdin(Stdio::null());
    command
}

/// Reads one HTTP/1.1 request, answers it and closes the connection.
fn serve<S: Read + Write>(stream: S, respond: &Responder, seen: &Mutex<Vec<Seen>>) {
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    if reader.read_line(&mut line).unwrap_or(0) == 0 {
        return;
    }
    let mut parts = line.split_whitespace();
    let method = parts.next().unwrap_or_default().to_owned();
    let target = parts.next().unwrap_or_default().to_owned();

    let mut headers = Vec::new();
    loop {
        let mut header = String::new();
        if reader.read_line(&mut header).unwrap_or(0) == 0 {
            return;
        }
        let header = header.trim_end();
        if header.is_empty() {
            break;
        }
        if let Some((name, value)) = header.split_once(':') {
            headers.push((name.trim().to_owned(), value.trim().to_owned()));
        }
    }
    let length: usize = headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0; length];
    if reader.read_exact(&mut body).is_err() {
        return;
    }

    let request = Seen {
        method,
        target,
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    };
    let (status, answer) = respond(&request);
    seen.lock().expect("the stand-in's log").push(request);

    let payload = if status == 204 {
        String::new()
    } else {
        answer.to_string()
    };
    let response = format!(
        "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{payload}",
        payload.len()
    );
    let mut stream = reader.into_inner();
    let _ = stream.write_all(response.as_bytes());
    let _ = stream.flush();
}

fn error_body(code: &str, message: &str) -> Value {
    json!({ "error": { "code": code, "message": message, "request_id": "req-1" } })
}

fn volume(name: &str, size_mib: u64) -> Value {
    json!({
        "id": "vol-1", "name": name, "owner": "admin", "pool": "default",
        "size_mib": size_mib, "status": "ready", "created_at": "2026-12-03T10:00:00Z",
        "attachments": []
    })
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn code(output: &Output) -> i32 {
    output.status.code().expect("kiln exited, not killed")
}

#[test]
fn volume_create_posts_name_size_and_pool_and_prints_the_volume() {
    let kilnd = StandInKilnd::unix(|_| {
        let mut v = volume("data", 1536);
        v["pool"] = json!("fast");
        (201, v)
    });
    let out = kilnd.kiln(&[
        "volume", "create", "--name", "data", "--size", "1.5G", "--pool", "fast",
    ]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(
        stdout(&out),
        "created volume \"data\" (1.5 GiB, pool fast)\n"
    );

    let request = kilnd.only_request();
    assert_eq!(request.method, "POST");
    assert_eq!(request.target, "/v1/volumes");
    assert_eq!(request.header("content-type"), Some("application/json"));
    assert_eq!(request.header("authorization"), None, "no token was given");
    assert_eq!(
        request.json(),
        json!({"name": "data", "size_mib": 1536, "pool": "fast"})
    );
}

#[test]
fn the_token_from_the_environment_is_sent_as_a_bearer_token() {
    let kilnd = StandInKilnd::unix(|_| (200, json!({"volumes": []})));
    let out = kiln_command()
        .env("KILN_SOCKET", &kilnd.socket)
        .env("KILN_TOKEN", "s3cret")
        .args(["volume", "list"])
        .output()
        .expect("run kiln");
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let request = kilnd.only_request();
    assert_eq!(request.method, "GET");
    assert_eq!(request.target, "/v1/volumes");
    assert_eq!(request.header("authorization"), Some("Bearer s3cret"));
}

#[test]
fn volume_list_prints_an_aligned_table_or_a_json_array() {
    let kilnd = StandInKilnd::unix(|_| {
        let mut attached = volume("data", 1024);
        attached["attachments"] = json!([{"sandbox": "sb1", "mount": "/data", "read_only": false}]);
        (200, json!({"volumes": [attached, volume("scratch", 512)]}))
    });
    let out = kilnd.kiln(&["volume", "list"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(
        stdout(&out),
        "\
NAME     OWNER  POOL        SIZE  STATUS  ATTACHMENTS
data     admin  default    1 GiB  ready   sb1:/data(rw)
scratch  admin  default  512 MiB  ready   -
"
    );

    let out = kilnd.kiln(&["--json", "volume", "list"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let printed: Value = serde_json::from_str(&stdout(&out)).expect("--json prints JSON");
    let names: Vec<&str> = printed
        .as_array()
        .expect("a JSON array")
        .iter()
        .map(|v| v["name"].as_str().expect("a name"))
        .collect();
    assert_eq!(names, ["data", "scratch"]);
    assert_eq!(printed[0]["attachments"][0]["sandbox"], "sb1");
    assert_eq!(printed[0]["size_mib"], 1024);
}

#[test]
fn each_error_status_exits_1_with_the_daemons_message_and_code() {
    let cases = [
        (
            400,
            "invalid_input",
            "field \"name\": must match [a-zA-Z0-9][a-zA-Z0-9._-]{0,62}",
        ),
        (401, "unauthorized", "missing or unknown token"),
        (404, "not_found", "volume \"data\" not found"),
        (409, "conflict", "volume \"data\" is attached to sb1"),
        (409, "already_exists", "volume \"data\" already exists"),
        (413, "payload_too_large", "the body is over 65536 bytes"),
        (
            429,
            "quota_exceeded",
            "owner team-a would pass its quota of 20480 MiB",
        ),
        (500, "internal", "internal error (request req-1)"),
        (
            501,
            "not_configured",
            "backup not configured — add backup section to config.yaml",
        ),
        (
            503,
            "unavailable",
            "cannot reach http://127.0.0.1:9000 bucket kiln",
        ),
        (507, "insufficient_capacity", "pool \"default\" has no room"),
    ];
    for (status, error_code, message) in cases {
        let kilnd = StandInKilnd::unix(move |_| (status, error_body(error_code, message)));
        let out = kilnd.kiln(&["volume", "get", "data"]);
        assert_eq!(code(&out), 1, "status {status}: {}", stderr(&out));
        assert_eq!(stdout(&out), "", "status {status}");
        assert_eq!(
            stderr(&out),
            format!("error: {message} ({error_code})\n"),
            "status {status}"
        );
        assert_eq!(kilnd.only_request().target, "/v1/volumes/data");
    }
}

#[test]
fn an_unreachable_daemon_is_named_and_exits_1() {
    let dir = tempfile::Builder::new()
        .prefix("kiln-cli-test-")
        .tempdir()
        .expect("a temp dir");
    let socket = dir.path().join("absent.sock");
    let out = kiln_command()
        .arg("--socket")
        .arg(&socket)
        .args(["volume", "list"])
        .output()
        .expect("run kiln");
    assert_eq!(code(&out), 1);
    let err = stderr(&out);
    assert!(
        err.starts_with(&format!(
            "error: cannot connect to kilnd at {}: ",
            socket.display()
        )),
        "{err}"
    );
}

#[test]
fn delete_without_a_terminal_or_yes_refuses_with_exit_2_and_sends_nothing() {
    let kilnd = StandInKilnd::unix(|_| (204, Value::Null));
    let out = kilnd.kiln(&["volume", "delete", "data"]);
    assert_eq!(code(&out), 2);
    assert!(
        stderr(&out)
            .contains("refusing to delete volume \"data\" and its data without confirmation"),
        "{}",
        stderr(&out)
    );
    assert!(
        kilnd.seen().is_empty(),
        "nothing may be sent before confirmation"
    );

    let out = kilnd.kiln(&["volume", "delete", "data", "--yes"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(stdout(&out), "deleted volume \"data\"\n");
    let request = kilnd.only_request();
    assert_eq!(request.method, "DELETE");
    assert_eq!(request.target, "/v1/volumes/data");
}

#[test]
fn every_destructive_command_refuses_without_a_terminal() {
    let kilnd = StandInKilnd::unix(|_| (204, Value::Null));
    for args in [
        &["sandbox", "destroy", "sb1"][..],
        &["volume", "backup-delete", "data", "bk-1"],
        &["volume", "restore", "data", "--backup-id", "bk-1"],
    ] {
        let out = kilnd.kiln(args);
        assert_eq!(code(&out), 2, "{args:?}: {}", stderr(&out));
        assert!(
            stderr(&out).contains("pass --yes"),
            "{args:?}: {}",
            stderr(&out)
        );
    }
    assert!(kilnd.seen().is_empty());
}

#[test]
fn bad_sizes_and_volume_specs_are_usage_errors_and_send_nothing() {
    let kilnd = StandInKilnd::unix(|_| (201, volume("data", 1)));
    for size in ["0", "-1", "abc", "1.5M", "5X"] {
        let out = kilnd.kiln(&["volume", "create", "--name", "data", "--size", size]);
        assert_eq!(code(&out), 2, "size {size}: {}", stderr(&out));
        assert!(stderr(&out).contains(size), "size {size}: {}", stderr(&out));
    }
    let out = kilnd.kiln(&[
        "sandbox",
        "create",
        "--name",
        "sb1",
        "--volume",
        "data:relative",
    ]);
    assert_eq!(code(&out), 2, "{}", stderr(&out));
    assert!(
        stderr(&out).contains("must be absolute"),
        "{}",
        stderr(&out)
    );
    let out = kilnd.kiln(&["volume", "frobnicate"]);
    assert_eq!(code(&out), 2);
    assert!(kilnd.seen().is_empty());
}

#[test]
fn resize_and_clone_send_their_bodies() {
    let kilnd = StandInKilnd::unix(|seen| match seen.target.as_str() {
        "/v1/volumes/data/resize" => (200, volume("data", 5120)),
        _ => (201, volume("copy", 5120)),
    });
    let out = kilnd.kiln(&["volume", "resize", "data", "--size", "5G"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(
        stdout(&out),
        "resized volume \"data\" (5 GiB, pool default)\n"
    );
    let out = kilnd.kiln(&["volume", "clone", "data", "--name", "copy"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(stdout(&out), "cloned volume \"data\" to \"copy\" (5 GiB)\n");

    let seen = kilnd.seen();
    assert_eq!(seen.len(), 2);
    assert_eq!(
        (seen[0].method.as_str(), seen[0].target.as_str()),
        ("POST", "/v1/volumes/data/resize")
    );
    assert_eq!(seen[0].json(), json!({"size_mib": 5120}));
    assert_eq!(
        (seen[1].method.as_str(), seen[1].target.as_str()),
        ("POST", "/v1/volumes/data/clone")
    );
    assert_eq!(seen[1].json(), json!({"name": "copy"}));
}

#[test]
fn sandbox_create_sends_each_volume_and_prints_the_devices() {
    let kilnd = StandInKilnd::unix(|_| {
        (
            201,
            json!({"name": "sb1", "owner": "admin", "state": "running",
                   "created_at": "2026-12-03T10:00:00Z",
                   "volumes": [
                       {"volume": "data", "mount": "/data", "read_only": false,
                        "device": "/v/1.img"},
                       {"volume": "ref", "mount": "/ref", "read_only": true,
                        "device": "/v/2.img"}]}),
        )
    });
    let out = kilnd.kiln(&[
        "sandbox",
        "create",
        "--name",
        "sb1",
        "--volume",
        "data:/data",
        "--volume",
        "ref:/ref:ro",
    ]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(
        stdout(&out),
        "\
created sandbox \"sb1\" (running, 2 volumes)
VOLUME  MOUNT  MODE  DEVICE
data    /data  rw    /v/1.img
ref     /ref   ro    /v/2.img
"
    );
    let request = kilnd.only_request();
    assert_eq!(
        (request.method.as_str(), request.target.as_str()),
        ("POST", "/v1/sandboxes")
    );
    assert_eq!(
        request.json(),
        json!({"name": "sb1", "volumes": [
            {"volume": "data", "mount": "/data", "read_only": false},
            {"volume": "ref", "mount": "/ref", "read_only": true}]})
    );
}

#[test]
fn sandbox_stop_start_and_destroy_use_their_routes() {
    let kilnd = StandInKilnd::unix(|seen| {
        if seen.method == "DELETE" {
            return (204, Value::Null);
        }
        let state = if seen.target.ends_with("/stop") {
            "stopped"
        } else {
            "running"
        };
        (200, json!({"name": "sb1", "state": state, "volumes": []}))
    });
    for args in [
        &["sandbox", "stop", "sb1"][..],
        &["sandbox", "start", "sb1"],
        &["sandbox", "destroy", "sb1", "--yes"],
    ] {
        let out = kilnd.kiln(args);
        assert_eq!(code(&out), 0, "{args:?}: {}", stderr(&out));
    }
    let routes: Vec<(String, String)> = kilnd
        .seen()
        .into_iter()
        .map(|s| (s.method, s.target))
        .collect();
    assert_eq!(
        routes,
        [
            ("POST".to_owned(), "/v1/sandboxes/sb1/stop".to_owned()),
            ("POST".to_owned(), "/v1/sandboxes/sb1/start".to_owned()),
            ("DELETE".to_owned(), "/v1/sandboxes/sb1".to_owned()),
        ]
    );
}

#[test]
fn owner_is_sent_as_a_query_parameter() {
    let kilnd = StandInKilnd::unix(|_| (200, volume("data", 1024)));
    let out = kilnd.kiln(&["--owner", "team-a", "volume", "get", "data"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(kilnd.only_request().target, "/v1/volumes/data?owner=team-a");
}

#[test]
fn pool_list_shows_unmanaged_images() {
    let kilnd = StandInKilnd::unix(|_| {
        (
            200,
            json!({"pools": [{"name": "default", "driver": "ext4-file", "plugin": null,
                "capacity": {"size_bytes": 10737418240u64, "allocated_bytes": 1073741824u64,
                             "free_bytes": 9663676416u64, "thin": null},
                "provisioned_mib": 2048, "volumes": 2, "unmanaged": ["vol-x"]}]}),
        )
    });
    let out = kilnd.kiln(&["pool", "list"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(
        stdout(&out),
        "\
NAME     DRIVER     PLUGIN    SIZE   USED   FREE  PROVISIONED  VOLUMES  UNMANAGED
default  ext4-file  -       10 GiB  1 GiB  9 GiB        2 GiB        2          1
pool \"default\" holds 1 image(s) the catalog does not know: vol-x
"
    );
    assert_eq!(kilnd.only_request().target, "/v1/pools");
}

fn running_job(kind: &str) -> Value {
    json!({"id": "job-1", "kind": kind, "volume": "data", "owner": "admin", "state": "running",
           "bytes_done": 0, "bytes_total": 314572800u64,
           "started_at": "2026-12-03T10:00:00Z", "finished_at": null,
           "error": null, "result": null})
}

/// A stand-in whose job runs for two polls and then ends as `last` says.
fn job_kilnd(kind: &'static str, last: Value) -> StandInKilnd {
    let polls = AtomicUsize::new(0);
    StandInKilnd::unix(move |seen| {
        if seen.method == "POST" {
            return (202, running_job(kind));
        }
        if polls.fetch_add(1, Ordering::SeqCst) < 1 {
            let mut job = running_job(kind);
            job["bytes_done"] = json!(104857600u64);
            return (200, job);
        }
        let mut job = running_job(kind);
        job["bytes_done"] = json!(314572800u64);
        job["finished_at"] = json!("2026-12-03T10:00:12Z");
        for (key, value) in last.as_object().expect("an object").clone() {
            job[key] = value;
        }
        (200, job)
    })
}

#[test]
fn volume_backup_follows_the_job_and_prints_the_backup() {
    let kilnd = job_kilnd(
        "backup",
        json!({"state": "succeeded", "result": {
            "id": "bk-1", "volume": "data", "owner": "admin", "size_mib": 10240,
            "created_at": "2026-12-03T10:00:12Z", "consistency": "inconsistent",
            "logical_bytes": 314572800u64, "stored_bytes": 301989888u64,
            "reused_bytes": 12582912u64}}),
    );
    let out = kilnd.kiln(&["volume", "backup", "data"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(
        stdout(&out),
        "\
backed up volume \"data\"
backup id:    bk-1
logical size: 300 MiB
uploaded:     288 MiB
reused:       12 MiB
consistency:  inconsistent
time taken:   12.0s
"
    );
    assert!(
        stderr(&out).contains("warning: backup bk-1 may be inconsistent"),
        "{}",
        stderr(&out)
    );

    let seen = kilnd.seen();
    assert_eq!(
        (seen[0].method.as_str(), seen[0].target.as_str()),
        ("POST", "/v1/volumes/data/backups")
    );
    assert_eq!(seen[0].json(), json!({}));
    assert!(seen.len() >= 3, "{seen:#?}");
    assert!(seen[1..]
        .iter()
        .all(|s| s.method == "GET" && s.target == "/v1/jobs/job-1"));
}

#[test]
fn a_failed_job_exits_1_with_its_error() {
    let kilnd = job_kilnd(
        "backup",
        json!({"state": "failed", "error": {"code": "unavailable",
               "message": "cannot reach http://127.0.0.1:9 bucket kiln"}}),
    );
    let out = kilnd.kiln(&["volume", "backup", "data"]);
    assert_eq!(code(&out), 1);
    assert_eq!(
        stderr(&out),
        "error: backup job job-1 failed: cannot reach http://127.0.0.1:9 bucket kiln (unavailable)\n"
    );
}

#[test]
fn no_wait_prints_the_job_and_returns() {
    let kilnd = job_kilnd("backup", json!({"state": "succeeded"}));
    let out = kilnd.kiln(&["volume", "backup", "data", "--no-wait"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(
        stdout(&out),
        "started backup job job-1 (follow it with: kiln job get job-1)\n"
    );
    assert_eq!(kilnd.seen().len(), 1, "no polling with --no-wait");

    let out = kilnd.kiln(&["--json", "volume", "backup", "data", "--no-wait"]);
    let job: Value = serde_json::from_str(&stdout(&out)).expect("JSON");
    assert_eq!(job["id"], "job-1");
    assert_eq!(job["state"], "running");
}

#[test]
fn restore_into_a_new_volume_needs_no_confirmation() {
    let kilnd = job_kilnd(
        "restore",
        json!({"state": "succeeded", "result": volume("copy", 10240)}),
    );
    let out = kilnd.kiln(&[
        "volume",
        "restore",
        "data",
        "--backup-id",
        "bk-1",
        "--to",
        "copy",
    ]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(
        stdout(&out),
        "restored backup bk-1 into volume \"copy\" (10 GiB)\n"
    );
    let seen = kilnd.seen();
    assert_eq!(seen[0].target, "/v1/volumes/data/restore");
    assert_eq!(seen[0].json(), json!({"backup_id": "bk-1", "to": "copy"}));
}

#[test]
fn verify_names_damaged_blocks_and_exits_1() {
    let kilnd = job_kilnd(
        "verify",
        json!({"state": "succeeded",
               "result": {"blocks_checked": 75, "damaged": ["ab12", "cd34"]}}),
    );
    let out = kilnd.kiln(&["backup", "verify", "bk-1"]);
    assert_eq!(code(&out), 1);
    assert_eq!(
        stdout(&out),
        "backup bk-1: 75 blocks checked, 2 damaged:\n  ab12\n  cd34\n"
    );
    assert_eq!(stderr(&out), "error: backup bk-1 has 2 damaged blocks\n");
    assert_eq!(kilnd.seen()[0].target, "/v1/backups/bk-1/verify");

    let intact = job_kilnd(
        "verify",
        json!({"state": "succeeded", "result": {"blocks_checked": 75, "damaged": []}}),
    );
    let out = intact.kiln(&["backup", "verify", "bk-1"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(stdout(&out), "backup bk-1: 75 blocks checked, all intact\n");
}

#[test]
fn backup_list_is_newest_first_and_backup_delete_uses_its_route() {
    let kilnd = StandInKilnd::unix(|seen| {
        if seen.method == "DELETE" {
            return (204, Value::Null);
        }
        (
            200,
            json!({"backups": [
                {"id": "bk-old", "volume": "data", "size_mib": 1024,
                 "created_at": "2026-12-01T10:00:00Z", "consistency": "clean",
                 "logical_bytes": 1048576},
                {"id": "bk-new", "volume": "data", "size_mib": 1024,
                 "created_at": "2026-12-03T10:00:00Z", "consistency": "crash_consistent",
                 "logical_bytes": 2097152}]}),
        )
    });
    let out = kilnd.kiln(&["volume", "backup-list", "data"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(
        stdout(&out),
        "\
ID      CREATED                SIZE   DATA  CONSISTENCY
bk-new  2026-12-03T10:00:00Z  1 GiB  2 MiB  crash_consistent
bk-old  2026-12-01T10:00:00Z  1 GiB  1 MiB  clean
"
    );
    let out = kilnd.kiln(&["volume", "backup-delete", "data", "bk-old", "--yes"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let seen = kilnd.seen();
    assert_eq!(seen[0].target, "/v1/volumes/data/backups");
    assert_eq!(
        (seen[1].method.as_str(), seen[1].target.as_str()),
        ("DELETE", "/v1/volumes/data/backups/bk-old")
    );
}

#[test]
fn gc_and_job_commands_use_their_routes() {
    let kilnd = job_kilnd(
        "gc",
        json!({"state": "succeeded", "result": {"blocks_deleted": 3, "bytes_deleted": 12582912}}),
    );
    let out = kilnd.kiln(&["backup", "gc"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(
        stdout(&out),
        "garbage collection removed 3 blocks (12 MiB)\n"
    );
    assert_eq!(kilnd.seen()[0].target, "/v1/backups/gc");

    let out = kilnd.kiln(&["job", "cancel", "job-1"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let last = kilnd.seen().pop().expect("the cancel request");
    assert_eq!(
        (last.method.as_str(), last.target.as_str()),
        ("POST", "/v1/jobs/job-1/cancel")
    );

    let out = kilnd.kiln(&["job", "get", "job-1"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert!(
        stdout(&out).contains("id:       job-1\n"),
        "{}",
        stdout(&out)
    );
}

#[test]
fn url_selects_tcp_and_sends_the_token() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    let addr = listener.local_addr().expect("the bound address");
    let seen = Arc::new(Mutex::new(Vec::new()));
    let recorded = Arc::clone(&seen);
    std::thread::spawn(move || {
        let respond = |_: &Seen| (200, json!({"volumes": []}));
        for stream in listener.incoming() {
            let Ok(stream) = stream else { return };
            serve(stream, &respond, &recorded);
        }
    });
    let out = kiln_command()
        .args([
            "--url",
            &format!("http://{addr}"),
            "--token",
            "t0k",
            "volume",
            "list",
        ])
        .output()
        .expect("run kiln");
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let seen = seen.lock().expect("the log").clone();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].header("authorization"), Some("Bearer t0k"));
    assert_eq!(seen[0].header("host"), Some(addr.to_string().as_str()));
}

#[test]
fn help_documents_the_exit_codes_and_environment() {
    let out = kiln_command().arg("--help").output().expect("run kiln");
    assert_eq!(code(&out), 0);
    let text = stdout(&out);
    for needle in [
        "Exit codes:",
        "KILN_SOCKET",
        "KILN_URL",
        "KILN_TOKEN",
        "2  usage",
    ] {
        assert!(text.contains(needle), "--help lacks {needle:?}:\n{text}");
    }
}

#[test]
fn ctrl_c_while_following_asks_the_daemon_to_cancel_the_job() {
    let cancelled = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flag = Arc::clone(&cancelled);
    let kilnd = StandInKilnd::unix(move |seen| {
        let mut job = running_job("backup");
        if seen.target == "/v1/jobs/job-1/cancel" {
            flag.store(true, Ordering::SeqCst);
        } else if seen.method == "POST" {
            return (202, job);
        }
        if flag.load(Ordering::SeqCst) {
            job["state"] = json!("cancelled");
        }
        (200, job)
    });
    let child = kiln_command()
        .arg("--socket")
        .arg(&kilnd.socket)
        .args(["volume", "backup", "data"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start kiln");

    // The interrupt handler is in place before the first poll.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while !kilnd.seen().iter().any(|s| s.method == "GET") {
        assert!(
            std::time::Instant::now() < deadline,
            "kiln never polled the job"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let status = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .expect("run kill");
    assert!(status.success(), "kill -INT failed");

    let out = child.wait_with_output().expect("kiln ends");
    assert_eq!(code(&out), 1, "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("cancelling backup job job-1"), "{err}");
    assert!(
        err.ends_with("error: backup job job-1 was cancelled\n"),
        "{err}"
    );
    assert!(
        kilnd
            .seen()
            .iter()
            .any(|s| s.method == "POST" && s.target == "/v1/jobs/job-1/cancel"),
        "no cancel request was sent"
    );
}
