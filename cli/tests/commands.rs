//! Runs the `kiln` binary against a stand-in for kilnd: volume, sandbox
//! and pool commands, errors, exit codes, connection flags and help.

mod standin;

use std::sync::{Arc, Mutex};

use serde_json::{json, Value};
use standin::*;

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
            "quota exceeded for owner \"team-a\": 5120 MiB requested, 18432 of 20480 MiB in use",
        ),
        (
            500,
            "internal",
            "internal error; the daemon log has the details under this request id",
        ),
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
        // Only an internal error, whose detail is in the daemon log, also
        // names the request id (error_body's "req-1").
        let request_id = if status == 500 {
            "  request id: req-1\n"
        } else {
            ""
        };
        assert_eq!(
            stderr(&out),
            format!("error: {message} ({error_code})\n{request_id}"),
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
