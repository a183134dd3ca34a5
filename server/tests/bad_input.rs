//! Bad input through the router, without a socket, against a real
//! ext4-file pool in a temporary folder: each case asserts its status,
//! its error code, the field named, and that nothing changed.

use std::path::Path;
use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use axum::Router;
use kiln_core::config::Config;
use kiln_core::service::VolumeService;
use kilnd::{router, AppState, Transport};
use tower::ServiceExt;

struct App {
    _dir: tempfile::TempDir,
    pool_dir: std::path::PathBuf,
    router: Router,
}

async fn app() -> App {
    let dir = tempfile::Builder::new()
        .prefix(&format!("kiln-router-{}-", std::process::id()))
        .tempdir()
        .expect("temporary folder");
    let mut config = Config::embedded(dir.path());
    // Clones here are about input checks, not about reflinks.
    for pool in config.pools.values_mut() {
        pool.options["reflink"] = serde_json::json!("never");
    }
    let pools = kilnd::open_pools(&config)
        .await
        .expect("open the ext4-file pool");
    let service: Arc<VolumeService> = VolumeService::open(&config, pools)
        .await
        .expect("open the service");
    App {
        pool_dir: dir.path().join("volumes"),
        _dir: dir,
        router: router(AppState::new(service)),
    }
}

struct Answer {
    status: StatusCode,
    body: serde_json::Value,
}

impl App {
    async fn send(
        &self,
        method: &str,
        path: &str,
        content_type: Option<&str>,
        body: Vec<u8>,
    ) -> Answer {
        let mut req = Request::builder().method(method).uri(path);
        if let Some(ct) = content_type {
            req = req.header("content-type", ct);
        }
        let mut req = req.body(Body::from(body)).expect("a valid request");
        req.extensions_mut().insert(Transport::Unix);
        let res = self
            .router
            .clone()
            .oneshot(req)
            .await
            .expect("the router is infallible");
        let status = res.status();
        let bytes = axum::body::to_bytes(res.into_body(), usize::MAX)
            .await
            .expect("read the body");
        let body = if bytes.is_empty() {
            serde_json::Value::Null
        } else {
            serde_json::from_slice(&bytes).unwrap_or_else(|e| {
                panic!(
                    "{method} {path}: body is not JSON ({e}): {}",
                    String::from_utf8_lossy(&bytes)
                )
            })
        };
        Answer { status, body }
    }

    async fn json(&self, method: &str, path: &str, body: &str) -> Answer {
        self.send(
            method,
            path,
            Some("application/json"),
            body.as_bytes().to_vec(),
        )
        .await
    }

    async fn get(&self, path: &str) -> Answer {
        self.send("GET", path, None, Vec::new()).await
    }

    /// Everything a refused request must leave as it was.
    async fn snapshot(&self) -> (serde_json::Value, serde_json::Value, Vec<String>) {
        let volumes = self.get("/v1/volumes").await;
        let sandboxes = self.get("/v1/sandboxes").await;
        assert_eq!(
            (volumes.status, sandboxes.status),
            (StatusCode::OK, StatusCode::OK)
        );
        (volumes.body, sandboxes.body, files(&self.pool_dir))
    }
}

fn files(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

#[track_caller]
fn assert_refused(a: &Answer, status: u16, code: &str, field: &str, case: &str) {
    assert_eq!(a.status.as_u16(), status, "{case}: {}", a.body);
    assert_eq!(a.body["error"]["code"], code, "{case}: {}", a.body);
    let message = a.body["error"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains(field),
        "{case}: {message:?} does not name {field:?}"
    );
    let request_id = a.body["error"]["request_id"].as_str().unwrap_or_default();
    assert!(
        request_id.starts_with("req-"),
        "{case}: no request id in {}",
        a.body
    );
}

/// A pool with one volume `v` attached to sandbox `sb`, for the cases
/// that need something to exist.
async fn populated() -> App {
    let app = app().await;
    let r = app
        .json("POST", "/v1/volumes", r#"{"name":"v","size_mib":64}"#)
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let r = app
        .json("POST", "/v1/volumes", r#"{"name":"free","size_mib":64}"#)
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let r = app
        .json(
            "POST",
            "/v1/sandboxes",
            r#"{"name":"sb","volumes":[{"volume":"v","mount":"/data"}]}"#,
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    app
}

#[tokio::test]
async fn bad_names_are_refused_naming_the_field() {
    let app = populated().await;
    let before = app.snapshot().await;
    let long = "a".repeat(64);
    for name in [
        "a..b", "../x", "a/b", "a b", " lead", "é", "naïve", &long, "", ".hidden",
    ] {
        let name_json = serde_json::to_string(name).expect("a JSON string");
        let case = format!("volume name {name:?}");
        let body = format!(r#"{{"name":{name_json},"size_mib":64}}"#);
        let a = app.json("POST", "/v1/volumes", &body).await;
        assert_refused(&a, 400, "invalid_input", "name", &case);

        let body = format!(r#"{{"name":{name_json}}}"#);
        let a = app.json("POST", "/v1/volumes/free/clone", &body).await;
        assert_refused(
            &a,
            400,
            "invalid_input",
            "name",
            &format!("clone to {case}"),
        );

        let body = format!(r#"{{"name":{name_json},"volumes":[]}}"#);
        let a = app.json("POST", "/v1/sandboxes", &body).await;
        assert_refused(&a, 400, "invalid_input", "name", &format!("sandbox {case}"));

        let body = format!(r#"{{"name":"s2","volumes":[{{"volume":{name_json},"mount":"/m"}}]}}"#);
        let a = app.json("POST", "/v1/sandboxes", &body).await;
        assert_refused(
            &a,
            400,
            "invalid_input",
            "volumes[0].volume",
            &format!("attach {case}"),
        );
    }
    // Names in the path are checked too.
    let a = app.get("/v1/volumes/a..b").await;
    assert_refused(&a, 400, "invalid_input", "name", "path name a..b");
    let a = app.get("/v1/volumes/a%20b").await;
    assert_refused(&a, 400, "invalid_input", "name", "path name 'a b'");
    assert_eq!(app.snapshot().await, before);
}

#[tokio::test]
async fn bad_sizes_are_refused_naming_the_field() {
    let app = populated().await;
    let before = app.snapshot().await;
    for size in [
        "0",
        "-1",
        "-4096",
        "\"64\"",
        "\"abc\"",
        "1.5",
        "null",
        "1e3",
        "99999999999999999999",
    ] {
        let case = format!("size {size}");
        let body = format!(r#"{{"name":"n","size_mib":{size}}}"#);
        let a = app.json("POST", "/v1/volumes", &body).await;
        assert_refused(&a, 400, "invalid_input", "size_mib", &case);
        let body = format!(r#"{{"size_mib":{size}}}"#);
        let a = app.json("POST", "/v1/volumes/free/resize", &body).await;
        assert_refused(
            &a,
            400,
            "invalid_input",
            "size_mib",
            &format!("resize to {case}"),
        );
    }
    // Larger than the pool's whole filesystem (within the quota).
    let a = app
        .json(
            "POST",
            "/v1/volumes",
            r#"{"name":"n","size_mib":1073741824}"#,
        )
        .await;
    assert_refused(
        &a,
        400,
        "invalid_input",
        "size_mib",
        "size larger than the pool",
    );
    // Shrinking is refused.
    let a = app
        .json("POST", "/v1/volumes/free/resize", r#"{"size_mib":32}"#)
        .await;
    assert_refused(&a, 400, "invalid_input", "size_mib", "shrink");
    let a = app
        .json("POST", "/v1/volumes/free/resize", r#"{"size_mib":64}"#)
        .await;
    assert_refused(&a, 400, "invalid_input", "size_mib", "same size");
    assert_eq!(app.snapshot().await, before);
}

#[tokio::test]
async fn bad_mount_paths_are_refused_naming_the_field() {
    let app = populated().await;
    let before = app.snapshot().await;
    for mount in [
        "data",
        "./data",
        "",
        "/data/../etc",
        "/..",
        "/proc",
        "/proc/1",
        "/etc",
        "/etc/kiln",
        "/",
        "/sys",
        "/dev",
        "/usr/lib",
    ] {
        let case = format!("mount {mount:?}");
        let body = format!(r#"{{"name":"s2","volumes":[{{"volume":"free","mount":"{mount}"}}]}}"#);
        let a = app.json("POST", "/v1/sandboxes", &body).await;
        assert_refused(&a, 400, "invalid_input", "volumes[0].mount", &case);
    }
    // The second entry is named by its index, and the first is not attached.
    let body = r#"{"name":"s2","volumes":[{"volume":"free","mount":"/ok"},{"volume":"free","mount":"etc"}]}"#;
    let a = app.json("POST", "/v1/sandboxes", body).await;
    assert_refused(&a, 400, "invalid_input", "volumes[1].mount", "second mount");
    assert_eq!(app.snapshot().await, before);
}

#[tokio::test]
async fn malformed_unknown_oversized_and_non_json_bodies_are_refused() {
    let app = populated().await;
    let before = app.snapshot().await;
    for body in [
        "",
        "{",
        "{\"name\":",
        "[]",
        "nul",
        "{\"name\":\"x\" \"size_mib\":1}",
        "\u{0}",
    ] {
        let a = app.json("POST", "/v1/volumes", body).await;
        assert_refused(
            &a,
            400,
            "invalid_input",
            "invalid",
            &format!("body {body:?}"),
        );
    }
    let a = app.json("POST", "/v1/volumes", r#"{"name":"n"}"#).await;
    assert_refused(&a, 400, "invalid_input", "size_mib", "missing size_mib");
    for (path, body, field) in [
        (
            "/v1/volumes",
            r#"{"name":"n","size_mib":64,"colour":"blue"}"#,
            "colour",
        ),
        (
            "/v1/volumes/free/resize",
            r#"{"size_mib":128,"force":true}"#,
            "force",
        ),
        (
            "/v1/volumes/free/clone",
            r#"{"name":"c","pool":"default"}"#,
            "pool",
        ),
        (
            "/v1/sandboxes",
            r#"{"name":"s2","volumes":[],"vmm":"fc"}"#,
            "vmm",
        ),
        (
            "/v1/sandboxes",
            r#"{"name":"s2","volumes":[{"volume":"free","mount":"/m","rw":true}]}"#,
            "rw",
        ),
    ] {
        let a = app.json("POST", path, body).await;
        assert_refused(
            &a,
            400,
            "invalid_input",
            field,
            &format!("unknown field {field}"),
        );
    }

    let huge = format!(
        r#"{{"name":"n","size_mib":64,"pad":"{}"}}"#,
        "x".repeat(100 * 1024)
    );
    let a = app.json("POST", "/v1/volumes", &huge).await;
    assert_refused(&a, 413, "payload_too_large", "bytes", "oversized body");

    let a = app
        .send(
            "POST",
            "/v1/volumes",
            Some("text/plain"),
            br#"{"name":"n","size_mib":64}"#.to_vec(),
        )
        .await;
    assert_refused(
        &a,
        415,
        "unsupported_media_type",
        "application/json",
        "text/plain body",
    );
    // Regression: the message showed Rust's Debug, `(got Some("text/plain"))`.
    assert_eq!(
        a.body["error"]["message"],
        "expected content-type application/json, got text/plain"
    );
    let a = app
        .send(
            "POST",
            "/v1/volumes",
            None,
            br#"{"name":"n","size_mib":64}"#.to_vec(),
        )
        .await;
    assert_refused(
        &a,
        415,
        "unsupported_media_type",
        "application/json",
        "no content type",
    );
    assert_eq!(
        a.body["error"]["message"],
        "expected content-type application/json, got no content-type"
    );
    assert_eq!(app.snapshot().await, before);
}

#[tokio::test]
async fn anything_after_the_json_object_is_refused_and_creates_nothing() {
    let app = populated().await;
    let before = app.snapshot().await;
    // Regression: `{...}xyz` created the volume.
    for body in [
        r#"{"name":"v9","size_mib":16}xyz"#,
        r#"{"name":"v9","size_mib":16}{}"#,
        r#"{"name":"v9","size_mib":16} 1"#,
    ] {
        let a = app.json("POST", "/v1/volumes", body).await;
        assert_refused(&a, 400, "invalid_input", "invalid body: ", body);
        let message = a.body["error"]["message"].as_str().unwrap_or_default();
        assert!(message.contains("trailing"), "{body}: {message}");
    }
    let a = app
        .json("POST", "/v1/volumes/free/resize", r#"{"size_mib":128}]"#)
        .await;
    assert_refused(&a, 400, "invalid_input", "invalid body: ", "resize");
    // Whitespace after the object is no content.
    let a = app
        .json(
            "POST",
            "/v1/volumes",
            "{\"name\":\"v9\",\"size_mib\":16}\n ",
        )
        .await;
    assert_eq!(a.status, StatusCode::CREATED, "{}", a.body);
    let a = app.json("DELETE", "/v1/volumes/v9", "").await;
    assert_eq!(a.status, StatusCode::NO_CONTENT, "{}", a.body);
    assert_eq!(app.snapshot().await, before);
}

#[tokio::test]
async fn messages_speak_json_not_rust_types() {
    let app = populated().await;
    let before = app.snapshot().await;
    // Regression: `invalid body: null, expected struct CreateBody`, and
    // `invalid [0]: ...` for `[1]`.
    for (path, body) in [
        ("/v1/volumes", "null"),
        ("/v1/volumes", "[1]"),
        ("/v1/volumes", "[]"),
        ("/v1/volumes", "1"),
        ("/v1/volumes", r#""x""#),
        ("/v1/volumes/free/resize", "[128]"),
        ("/v1/volumes/free/clone", "true"),
        ("/v1/sandboxes", r#"["s2",[]]"#),
    ] {
        let a = app.json("POST", path, body).await;
        assert_refused(&a, 400, "invalid_input", "", body);
        assert_eq!(
            a.body["error"]["message"], "invalid body: expected a JSON object",
            "{path} {body}"
        );
    }
    for (path, body, want) in [
        (
            "/v1/sandboxes",
            r#"{"name":"s2","volumes":[null]}"#,
            "invalid volumes[0]: null, expected a JSON object",
        ),
        (
            "/v1/volumes",
            r#"{"name":"n","size_mib":"64"}"#,
            "invalid size_mib: string \"64\", expected a whole number of at least 0",
        ),
        (
            "/v1/volumes",
            r#"{"name":"n","size_mib":-1}"#,
            "invalid size_mib: integer `-1`, expected a whole number of at least 0",
        ),
    ] {
        let a = app.json("POST", path, body).await;
        assert_refused(&a, 400, "invalid_input", "", body);
        assert_eq!(a.body["error"]["message"], want, "{path} {body}");
    }
    assert_eq!(app.snapshot().await, before);
}

#[tokio::test]
async fn backup_routes_answer_501_before_reading_the_body_or_path() {
    let app = populated().await;
    let before = app.snapshot().await;
    // Regression: restore with `{}` answered 400 `missing field backup_id`.
    for (method, path, body) in [
        ("POST", "/v1/volumes/v/restore", "{}"),
        ("POST", "/v1/volumes/v/restore", "[1]"),
        ("POST", "/v1/volumes/v/restore", "not json"),
        (
            "POST",
            "/v1/volumes/v/restore",
            r#"{"backup_id":"bk-1","x":1}"#,
        ),
        (
            "POST",
            "/v1/volumes/a..b/restore",
            r#"{"backup_id":"bk-1"}"#,
        ),
        ("POST", "/v1/volumes/v/backups", "{}"),
        ("POST", "/v1/volumes/a..b/backups", "{}"),
        ("GET", "/v1/volumes/v/backups", ""),
        ("GET", "/v1/volumes/a..b/backups", ""),
        ("DELETE", "/v1/volumes/v/backups/bk-1", ""),
        ("DELETE", "/v1/volumes/v/backups/BAD", ""),
        ("POST", "/v1/backups/gc", ""),
        ("GET", "/v1/backups/schedules", ""),
        ("POST", "/v1/backups/bk-1/verify", ""),
        ("POST", "/v1/backups/BAD/verify", ""),
        ("GET", "/v1/jobs/job-1", ""),
        ("GET", "/v1/jobs/BAD", ""),
        ("POST", "/v1/jobs/job-1/cancel", ""),
    ] {
        let a = app.json(method, path, body).await;
        assert_refused(
            &a,
            501,
            "not_configured",
            "backup not configured",
            &format!("{method} {path} {body}"),
        );
    }
    // A body sent without its content-type does not hide it either.
    let a = app
        .send(
            "POST",
            "/v1/volumes/v/restore",
            Some("text/plain"),
            b"{}".to_vec(),
        )
        .await;
    assert_refused(&a, 501, "not_configured", "backup", "restore as text/plain");
    assert_eq!(app.snapshot().await, before);
}

#[tokio::test]
async fn statuses_of_the_documented_routes() {
    let app = populated().await;
    let a = app.get("/healthz").await;
    assert_eq!(
        (a.status, a.body.clone()),
        (StatusCode::OK, serde_json::json!({"status": "ok"}))
    );
    let a = app.get("/v1/volumes/nope").await;
    assert_refused(&a, 404, "not_found", "nope", "missing volume");
    let a = app.get("/v1/sandboxes/nope").await;
    assert_refused(&a, 404, "not_found", "nope", "missing sandbox");
    let a = app
        .json(
            "POST",
            "/v1/volumes",
            r#"{"name":"n","size_mib":64,"pool":"fast"}"#,
        )
        .await;
    assert_refused(&a, 404, "not_found", "fast", "missing pool");
    let a = app.get("/v1/nothing").await;
    assert_refused(&a, 404, "not_found", "/v1/nothing", "unknown route");
    let a = app
        .send(
            "PUT",
            "/v1/volumes",
            Some("application/json"),
            b"{}".to_vec(),
        )
        .await;
    assert_eq!(a.status, StatusCode::METHOD_NOT_ALLOWED, "{}", a.body);
    let a = app.json("DELETE", "/v1/volumes/free", "").await;
    assert_eq!(a.status, StatusCode::NO_CONTENT);
    assert_eq!(a.body, serde_json::Value::Null);
    let a = app.json("POST", "/v1/volumes/v/backups", "{}").await;
    assert_refused(
        &a,
        501,
        "not_configured",
        "backup not configured",
        "backup without config",
    );
    let a = app.get("/v1/jobs/job-1").await;
    assert_refused(&a, 501, "not_configured", "backup", "jobs without config");
    let a = app.get("/v1/pools").await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    assert_eq!(a.body["pools"][0]["name"], "default");
    assert_eq!(a.body["pools"][0]["volumes"], 1);
}

#[tokio::test]
async fn quota_is_429_and_changes_nothing() {
    let app = populated().await;
    let before = app.snapshot().await;
    // The default quota is 20 GiB; 128 MiB are in use.
    let a = app
        .json("POST", "/v1/volumes", r#"{"name":"n","size_mib":20400}"#)
        .await;
    assert_refused(&a, 429, "quota_exceeded", "quota", "create over quota");
    let a = app
        .json("POST", "/v1/volumes/free/resize", r#"{"size_mib":20470}"#)
        .await;
    assert_refused(&a, 429, "quota_exceeded", "quota", "resize over quota");
    assert_eq!(app.snapshot().await, before);
}

#[tokio::test]
async fn requests_without_a_transport_are_treated_as_tcp() {
    let app = app().await;
    let req = Request::get("/v1/volumes")
        .body(Body::empty())
        .expect("a valid request");
    let res = app.router.clone().oneshot(req).await.expect("infallible");
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert!(res.headers().contains_key("x-request-id"));
}

#[tokio::test]
async fn a_panicking_handler_answers_500_and_the_router_keeps_serving() {
    async fn boom() -> &'static str {
        panic!("secret detail that must not reach the client")
    }
    let app = kilnd::app::with_layers(Router::new().route("/boom", axum::routing::get(boom)));
    for _ in 0..2 {
        let req = Request::get("/boom")
            .body(Body::empty())
            .expect("a valid request");
        let res = app.clone().oneshot(req).await.expect("infallible");
        assert_eq!(res.status(), StatusCode::INTERNAL_SERVER_ERROR);
        let bytes = axum::body::to_bytes(res.into_body(), usize::MAX)
            .await
            .expect("read the body");
        let body: serde_json::Value = serde_json::from_slice(&bytes).expect("a JSON body");
        assert_eq!(body["error"]["code"], "internal");
        assert!(!body.to_string().contains("secret"), "{body}");
        assert!(body["error"]["request_id"]
            .as_str()
            .is_some_and(|r| r.starts_with("req-")));
    }
}
