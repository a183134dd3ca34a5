//! End to end: owners are isolated over TCP, and TCP needs a token.

use kiln_tests::daemon::{require_root, Daemon, DaemonOptions, TestToken, Via};

fn names(list: &serde_json::Value) -> Vec<String> {
    list.as_array()
        .or_else(|| list["volumes"].as_array())
        .unwrap_or_else(|| panic!("not a volume list: {list}"))
        .iter()
        .filter_map(|v| v["name"].as_str().map(str::to_string))
        .collect()
}

#[test]
fn root_a_second_owner_cannot_see_or_touch_the_first_owners_volume() {
    require_root("the daemon's pool on real ext4 images");
    let d = Daemon::start(DaemonOptions {
        tcp: true,
        tokens: vec![TestToken::owner("team-a"), TestToken::owner("team-b")],
        ..DaemonOptions::default()
    });

    let out = d.kiln_as(
        "team-a",
        &[
            "--json", "volume", "create", "--name", "secret", "--size", "64",
        ],
    );
    assert_eq!(out.code(), 0, "{out:?}");
    let v: serde_json::Value = serde_json::from_str(&out.stdout).expect("JSON volume");
    assert_eq!(v["owner"], "team-a");

    // team-b sees nothing and can touch nothing.
    let out = d.kiln_as("team-b", &["--json", "volume", "list"]);
    assert_eq!(out.code(), 0, "{out:?}");
    let list: serde_json::Value = serde_json::from_str(&out.stdout).expect("JSON list");
    assert!(names(&list).is_empty(), "team-b sees {list}");
    let b = d.token("team-b");
    for (method, path, body) in [
        ("GET", "/v1/volumes/secret", None),
        ("DELETE", "/v1/volumes/secret", None),
        (
            "POST",
            "/v1/volumes/secret/resize",
            Some(r#"{"size_mib":128}"#),
        ),
        (
            "POST",
            "/v1/volumes/secret/clone",
            Some(r#"{"name":"mine"}"#),
        ),
    ] {
        let r = d.request(Via::Tcp, method, path, body, Some(&b));
        assert_eq!(r.status, 404, "{method} {path}: {}", r.body);
    }
    let r = d.request(
        Via::Tcp,
        "POST",
        "/v1/sandboxes",
        Some(r#"{"name":"steal","volumes":[{"volume":"secret","mount":"/s"}]}"#),
        Some(&b),
    );
    assert_eq!(r.status, 404, "{}", r.body);
    let r = d.request(Via::Tcp, "GET", "/v1/volumes?owner=team-a", None, Some(&b));
    assert_eq!(
        r.status, 403,
        "a non-admin acted for another owner: {}",
        r.body
    );
    let out = d.kiln_as("team-b", &["volume", "delete", "secret", "--yes"]);
    assert_eq!(out.code(), 1, "{out:?}");

    // team-b may use the same name in its own namespace.
    let out = d.kiln_as(
        "team-b",
        &["volume", "create", "--name", "secret", "--size", "32"],
    );
    assert_eq!(out.code(), 0, "{out:?}");

    // team-a's volume is untouched; the local admin sees both owners'.
    let out = d.kiln_as("team-a", &["--json", "volume", "get", "secret"]);
    assert_eq!(out.code(), 0, "{out:?}");
    let v: serde_json::Value = serde_json::from_str(&out.stdout).expect("JSON volume");
    assert_eq!(
        (v["size_mib"].as_u64(), v["owner"].as_str()),
        (Some(64), Some("team-a"))
    );
    let all = d.kiln_json(&["volume", "list"]);
    assert_eq!(names(&all).len(), 2, "{all}");
    let only_a = d
        .request(Via::Unix, "GET", "/v1/volumes?owner=team-a", None, None)
        .json();
    assert_eq!(names(&only_a), ["secret"]);
    assert_eq!(only_a["volumes"][0]["owner"], "team-a");
}

#[test]
fn root_tcp_requests_without_a_valid_token_get_401() {
    require_root("the daemon's pool on real ext4 images");
    let d = Daemon::start(DaemonOptions {
        tcp: true,
        tokens: vec![TestToken::owner("team-a")],
        ..DaemonOptions::default()
    });
    for token in [None, Some("not-a-known-token-at-all")] {
        for (method, path, body) in [
            ("GET", "/v1/volumes", None),
            ("POST", "/v1/volumes", Some(r#"{"name":"x","size_mib":64}"#)),
            ("GET", "/v1/pools", None),
        ] {
            let r = d.request(Via::Tcp, method, path, body, token);
            assert_eq!(r.status, 401, "{method} {path} with {token:?}: {}", r.body);
            assert_eq!(r.code(), "unauthorized");
        }
    }
    let r = d.request(Via::Tcp, "GET", "/healthz", None, None);
    assert_eq!(r.status, 200, "healthz needs no token: {}", r.body);
    // Nothing was created by the refused create.
    let list = d
        .request(Via::Unix, "GET", "/v1/volumes", None, None)
        .json();
    assert!(names(&list).is_empty(), "{list}");

    let url = d.url().expect("TCP url");
    let out = d
        .kiln_command()
        .args(["--url", &url, "volume", "list"])
        .output()
        .expect("run kiln");
    assert_eq!(out.status.code(), Some(1), "{out:?}");
}
