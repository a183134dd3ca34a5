//! Runs the `kiln` binary against a stand-in for kilnd: backups,
//! restores, gc, verify and jobs, followed to their end or not, and
//! Ctrl-C while following.

mod standin;

use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use serde_json::{json, Value};
use standin::*;

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
    assert_eq!(
        stderr(&out),
        "error: backup bk-1 failed verification: 2 damaged block(s)\n"
    );
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
