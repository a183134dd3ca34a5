//! Backups end to end: a real `kilnd` with an ext4-file pool and a moto
//! backup target, driven through the real `kiln`.

use std::path::Path;

use kiln_tests::daemon::{
    checksums, require_root, write_test_files, Daemon, DaemonOptions, LoopMount, TestToken, Via,
};
use kiln_tests::s3::S3Server;

fn backup_yaml(s3: &S3Server) -> String {
    let c = s3.s3_config();
    format!(
        "backup:\n  target: s3\n  s3:\n    endpoint: {}\n    region: {}\n    bucket: {}\n    \
         path_style: true\n    access_key_id: {}\n    secret_access_key: {}\n  \
         block_size_mib: 1\n  gc_grace_secs: 0\n",
        c.endpoint, c.region, c.bucket, c.access_key_id, c.secret_access_key
    )
}

/// Attaches `volume` to a sandbox, mounts it, runs `f` on the mount, and
/// takes it all down again.
fn with_mounted<T>(d: &Daemon, volume: &str, read_only: bool, f: impl FnOnce(&Path) -> T) -> T {
    let body = format!(
        r#"{{"name":"sb-{volume}","volumes":[{{"volume":"{volume}","mount":"/m","read_only":{read_only}}}]}}"#
    );
    let sb = d.request(Via::Unix, "POST", "/v1/sandboxes", Some(&body), None);
    assert_eq!(sb.status, 201, "{}", sb.body);
    let device = sb.json()["volumes"][0]["device"]
        .as_str()
        .expect("a running sandbox shows its device")
        .to_string();
    let m = LoopMount::new(
        Path::new(&device),
        &d.scratch(&format!("mnt-{volume}")),
        read_only,
    );
    let out = f(m.path());
    m.unmount();
    let path = format!("/v1/sandboxes/sb-{volume}");
    assert_eq!(
        d.request(Via::Unix, "DELETE", &path, None, None).status,
        204
    );
    out
}

#[test]
fn root_backup_list_restore_to_and_in_place_through_kiln() {
    require_root("loop-mounting ext4 volumes");
    let s3 = S3Server::moto();
    let d = Daemon::start(DaemonOptions {
        backup_yaml: Some(backup_yaml(&s3)),
        ..DaemonOptions::default()
    });
    d.kiln_json(&["volume", "create", "--name", "data", "--size", "512"]);
    let sums1 = with_mounted(&d, "data", false, |m| write_test_files(m, 20));

    let b1 = d.kiln_json(&["volume", "backup", "data"]);
    assert_eq!(b1["volume"], "data");
    assert_eq!(b1["consistency"], "clean");
    assert!(b1["created_at"].is_string(), "{b1}");
    let b1_id = b1["id"].as_str().expect("a backup id").to_string();

    // Change about 5% of the data: one new 1 MiB file.
    let sums2 = with_mounted(&d, "data", false, |m| {
        let noise: Vec<u8> = (0..1u32 << 20)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect();
        std::fs::write(m.join("changed.bin"), noise).expect("write a file");
        checksums(m)
    });
    let b2 = d.kiln_json(&["volume", "backup", "data"]);
    let b2_id = b2["id"].as_str().expect("a backup id").to_string();
    let (stored1, stored2) = (b1["stored_bytes"].as_u64(), b2["stored_bytes"].as_u64());
    let (stored1, stored2) = (
        stored1.expect("stored_bytes"),
        stored2.expect("stored_bytes"),
    );
    assert!(
        stored2 < stored1 / 4,
        "second backup stored {stored2} bytes, the first {stored1}"
    );

    let list = d.kiln_json(&["volume", "backup-list", "data"]);
    let ids: Vec<&str> = list
        .as_array()
        .expect("a list")
        .iter()
        .map(|b| b["id"].as_str().expect("an id"))
        .collect();
    assert_eq!(ids, vec![b2_id.as_str(), b1_id.as_str()], "newest first");

    // The volume goes; its backups stay, and restore --to brings it back.
    assert_eq!(d.kiln(&["volume", "delete", "data", "--yes"]).code(), 0);
    let restored = d.kiln_json(&[
        "volume",
        "restore",
        "data",
        "--backup-id",
        &b2_id,
        "--to",
        "back",
    ]);
    assert_eq!(restored["name"], "back", "{restored}");
    assert_eq!(with_mounted(&d, "back", true, checksums), sums2);

    // Into the original name (a new volume), then in place over it.
    d.kiln_json(&[
        "volume",
        "restore",
        "data",
        "--backup-id",
        &b1_id,
        "--to",
        "data",
    ]);
    assert_eq!(with_mounted(&d, "data", true, checksums), sums1);
    let in_place = d.kiln_json(&["volume", "restore", "data", "--backup-id", &b2_id, "--yes"]);
    assert_eq!(in_place["name"], "data", "{in_place}");
    assert_eq!(with_mounted(&d, "data", true, checksums), sums2);

    // Attached volumes are not restored over.
    let sb = r#"{"name":"busy","volumes":[{"volume":"data","mount":"/m"}]}"#;
    assert_eq!(
        d.request(Via::Unix, "POST", "/v1/sandboxes", Some(sb), None)
            .status,
        201
    );
    let body = format!(r#"{{"backup_id":"{b1_id}"}}"#);
    let r = d.request(
        Via::Unix,
        "POST",
        "/v1/volumes/data/restore",
        Some(&body),
        None,
    );
    assert_eq!(r.status, 409, "{}", r.body);

    // Delete one backup, gc, the other still restores.
    assert_eq!(
        d.kiln(&["volume", "backup-delete", "data", &b1_id, "--yes"])
            .code(),
        0
    );
    let gc = d.kiln_json(&["backup", "gc"]);
    assert!(
        gc["blocks_deleted"].as_u64().expect("blocks_deleted") > 0,
        "{gc}"
    );
    d.kiln_json(&[
        "volume",
        "restore",
        "data",
        "--backup-id",
        &b2_id,
        "--to",
        "again",
    ]);
    assert_eq!(with_mounted(&d, "again", true, checksums), sums2);
}

#[test]
fn backup_routes_answer_501_without_a_backup_section() {
    let d = Daemon::start(DaemonOptions::default());
    let r = d.request(
        Via::Unix,
        "POST",
        "/v1/volumes/data/backups",
        Some("{}"),
        None,
    );
    assert_eq!(r.status, 501, "{}", r.body);
    assert_eq!(
        r.json()["error"]["message"],
        "backup not configured — add backup section to config.yaml"
    );
    let out = d.kiln(&["volume", "backup-list", "data"]);
    assert_ne!(out.code(), 0);
    assert!(
        out.stderr
            .contains("backup not configured — add backup section to config.yaml"),
        "{out:?}"
    );
}

#[test]
fn root_restore_over_a_damaged_block_fails_and_changes_nothing() {
    require_root("loop-mounting ext4 volumes");
    let scratch = tempfile::Builder::new()
        .prefix(&format!(
            "{}-",
            kiln_tests::daemon::unique_tag("kiln-e2e-fs-target")
        ))
        .tempdir()
        .expect("make the target folder");
    let target = scratch.path().join("backups");
    let d = Daemon::start(DaemonOptions {
        backup_yaml: Some(format!(
            "backup:\n  target: fs\n  fs:\n    path: {}\n",
            target.display()
        )),
        ..DaemonOptions::default()
    });
    d.kiln_json(&["volume", "create", "--name", "data", "--size", "256"]);
    let before = with_mounted(&d, "data", false, |m| write_test_files(m, 8));
    let b = d.kiln_json(&["volume", "backup", "data"]);
    let id = b["id"].as_str().expect("a backup id").to_string();

    // Change the volume after the backup, so a restore would be visible.
    let changed = with_mounted(&d, "data", false, |m| {
        std::fs::write(m.join("after.txt"), "written after the backup").expect("write");
        checksums(m)
    });
    assert_ne!(changed, before);

    let block = std::fs::read_dir(target.join("blocks"))
        .expect("the target has blocks")
        .flat_map(|fan| std::fs::read_dir(fan.expect("a fan-out folder").path()).expect("list"))
        .map(|e| e.expect("a block file").path())
        .next()
        .expect("at least one block");
    let hash = block
        .file_name()
        .expect("a name")
        .to_string_lossy()
        .to_string();
    let mut bytes = std::fs::read(&block).expect("read the block");
    let last = bytes.len() - 1;
    bytes[last] ^= 0xa5;
    std::fs::write(&block, bytes).expect("damage the block");

    let images = |d: &Daemon| {
        std::fs::read_dir(d.pool_dir())
            .expect("list the pool")
            .count()
    };
    let images_before = images(&d);
    let out = d.kiln(&["volume", "restore", "data", "--backup-id", &id, "--yes"]);
    assert_ne!(
        out.code(),
        0,
        "restore over a damaged block succeeded: {out:?}"
    );
    assert!(
        out.stderr.contains(&hash),
        "the block is not named: {out:?}"
    );
    assert_eq!(images(&d), images_before, "the new volume was left behind");
    assert_eq!(
        with_mounted(&d, "data", true, checksums),
        changed,
        "the volume changed"
    );

    let verify = d.kiln(&["--json", "backup", "verify", &id]);
    assert_ne!(verify.code(), 0, "verify found nothing: {verify:?}");
    assert!(verify.stdout.contains(&hash), "{verify:?}");
}

#[test]
fn schedules_keep_the_newest_backups_of_their_owner_only_and_show_failures() {
    let s3 = S3Server::moto();
    let mut yaml = backup_yaml(&s3);
    yaml.push_str(
        "  schedules:\n    - owner: team-a\n      volume: data\n      cron: \"* * * * * *\"\n      \
         keep: 2\n    - owner: team-a\n      volume: ghost\n      cron: \"* * * * * *\"\n      \
         keep: 1\n",
    );
    let d = Daemon::start(DaemonOptions {
        tcp: true,
        tokens: vec![TestToken::owner("team-a"), TestToken::owner("team-b")],
        backup_yaml: Some(yaml),
        ..DaemonOptions::default()
    });
    for owner in ["team-a", "team-b"] {
        let out = d.kiln_as(
            owner,
            &["volume", "create", "--name", "data", "--size", "64"],
        );
        assert_eq!(out.code(), 0, "{out:?}");
    }
    let theirs = d.kiln_as("team-b", &["--json", "volume", "backup", "data"]);
    assert_eq!(theirs.code(), 0, "{theirs:?}");

    // Several runs of the schedule go by (one a second).
    let started = std::time::Instant::now();
    let ours = loop {
        let list = d.kiln_as("team-a", &["--json", "volume", "backup-list", "data"]);
        let list: serde_json::Value = serde_json::from_str(&list.stdout).unwrap_or_default();
        let n = list.as_array().map_or(0, Vec::len);
        if n >= 2 && started.elapsed() > std::time::Duration::from_secs(5) {
            break list;
        }
        assert!(
            started.elapsed() < std::time::Duration::from_secs(60),
            "the schedule did not run: {list}"
        );
        std::thread::sleep(std::time::Duration::from_millis(500));
    };
    let n = ours.as_array().map_or(0, Vec::len);
    assert!((2..=3).contains(&n), "retention kept {n}: {ours}");

    let b_list = d.kiln_as("team-b", &["--json", "volume", "backup-list", "data"]);
    let b_list: serde_json::Value = serde_json::from_str(&b_list.stdout).expect("json");
    let b_ids: Vec<&str> = b_list
        .as_array()
        .expect("a list")
        .iter()
        .map(|b| b["id"].as_str().expect("an id"))
        .collect();
    let their_id = serde_json::from_str::<serde_json::Value>(&theirs.stdout).expect("json")["id"]
        .as_str()
        .expect("an id")
        .to_string();
    assert_eq!(
        b_ids,
        vec![their_id.as_str()],
        "another owner's backups were touched"
    );

    let token = d.token("team-a");
    let r = d.request(Via::Tcp, "GET", "/v1/backups/schedules", None, Some(&token));
    assert_eq!(r.status, 200, "{}", r.body);
    let schedules = r.json()["schedules"].clone();
    let ghost = schedules
        .as_array()
        .expect("a list")
        .iter()
        .find(|s| s["volume"] == "ghost")
        .expect("the ghost schedule")
        .clone();
    assert_eq!(ghost["last_run"]["state"], "failed", "{schedules}");
    assert!(
        ghost["last_run"]["error"]
            .as_str()
            .unwrap_or("")
            .contains("ghost"),
        "{schedules}"
    );
    let job = ghost["last_run"]["job"].as_str().expect("a job id");
    let r = d.request(
        Via::Tcp,
        "GET",
        &format!("/v1/jobs/{job}"),
        None,
        Some(&token),
    );
    assert_eq!(r.json()["state"], "failed", "{}", r.body);
}
