//! A gc that waits for a backup lock says so in its job: the router over a
//! real ext4-file pool and a folder backup target, with a lock object as a
//! crashed daemon would leave it.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use axum::body::Body;
use axum::http::{Request, StatusCode};
use axum::Router;
use kiln_core::config::{BackupConfig, Config, TargetConfig};
use kiln_core::service::VolumeService;
use kilnd::{router, AppState, Transport};
use tower::ServiceExt;

async fn app(dir: &std::path::Path) -> Router {
    let mut config = Config::embedded(dir);
    config.backup = Some(BackupConfig {
        target: TargetConfig::Fs {
            path: dir.join("backups"),
        },
        block_size_mib: 1,
        compression_level: 3,
        concurrency: 2,
        encryption_key_file: None,
        gc_grace_secs: 0,
        schedules: Vec::new(),
    });
    let pools = kilnd::open_pools(&config)
        .await
        .expect("open the ext4-file pool");
    let service: Arc<VolumeService> = VolumeService::open(&config, pools)
        .await
        .expect("open the service");
    router(
        AppState::new(service)
            .open_backups()
            .expect("open the folder target"),
    )
}

async fn call(app: &Router, method: &str, path: &str) -> (StatusCode, serde_json::Value) {
    let mut req = Request::builder()
        .method(method)
        .uri(path)
        .body(Body::empty())
        .expect("a valid request");
    req.extensions_mut().insert(Transport::Unix);
    let res = app.clone().oneshot(req).await.expect("infallible");
    let status = res.status();
    let bytes = axum::body::to_bytes(res.into_body(), usize::MAX)
        .await
        .expect("read the body");
    let body = serde_json::from_slice(&bytes).expect("a JSON body");
    (status, body)
}

/// Polls job `id` until `done` holds for it, for at most 20 s.
async fn wait_for(
    app: &Router,
    id: &str,
    what: &str,
    done: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let start = Instant::now();
    loop {
        let (status, job) = call(app, "GET", &format!("/v1/jobs/{id}")).await;
        assert_eq!(status, StatusCode::OK, "{job}");
        if done(&job) {
            return job;
        }
        assert!(start.elapsed() < Duration::from_secs(20), "{what}: {job}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_gc_waiting_for_a_backup_lock_names_it_with_its_age() {
    let dir = tempfile::Builder::new()
        .prefix(&format!("kiln-gc-lock-{}-", std::process::id()))
        .tempdir()
        .expect("temporary folder");
    let app = app(dir.path()).await;

    // The lock of a backup whose daemon died 5 minutes ago: still live
    // for 10 more minutes.
    let locks = dir.path().join("backups").join("locks");
    std::fs::create_dir_all(&locks).expect("make the locks folder");
    let lock = locks.join("backup-bk-crashed");
    std::fs::write(&lock, r#"{"pid":1,"written_at":"then"}"#).expect("write the lock");
    let five_minutes_ago = SystemTime::now() - Duration::from_secs(300);
    std::fs::File::options()
        .write(true)
        .open(&lock)
        .and_then(|f| f.set_modified(five_minutes_ago))
        .expect("age the lock");

    let (status, job) = call(&app, "POST", "/v1/backups/gc").await;
    assert_eq!(status, StatusCode::ACCEPTED, "{job}");
    let id = job["id"].as_str().expect("a job id").to_string();

    // Regression: the job showed only `0 B` done, with nothing saying why.
    let job = wait_for(&app, &id, "gc never said what it waits for", |j| {
        j["waiting_for"].is_string()
    })
    .await;
    assert_eq!(job["state"], "running", "{job}");
    let waiting = job["waiting_for"].as_str().unwrap_or_default();
    assert!(
        waiting.starts_with("running backups to finish: locks/backup-bk-crashed"),
        "{waiting}"
    );
    let age: u64 = waiting
        .split("last refreshed ")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .and_then(|secs| secs.parse().ok())
        .unwrap_or_else(|| panic!("no age in {waiting:?}"));
    assert!((295..400).contains(&age), "age {age} in {waiting}");
    assert!(waiting.contains("900 s"), "{waiting}");

    // What docs/backup-format.md tells an operator to do once no daemon
    // runs that backup: remove the lock. The gc then goes on.
    std::fs::remove_file(&lock).expect("remove the lock");
    let job = wait_for(&app, &id, "gc did not finish", |j| j["state"] != "running").await;
    assert_eq!(job["state"], "succeeded", "{job}");
    assert!(job["waiting_for"].is_null(), "{job}");
}
