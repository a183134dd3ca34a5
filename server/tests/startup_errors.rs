//! What the kilnd binary prints when it cannot start: each cause once.

use std::process::Command;

#[test]
fn a_taken_tcp_port_is_reported_once_and_exits_1() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    let addr = taken.local_addr().expect("the bound address");
    let dir = tempfile::Builder::new()
        .prefix("kilnd-bind-taken-")
        .tempdir()
        .expect("a temporary folder");
    let config = dir.path().join("config.yaml");
    std::fs::write(
        &config,
        format!(
            "data_dir: {data}\nlisten:\n  tcp: {addr}\ntokens:\n  - owner: a\n    token: a-token-of-twenty-chars\npools:\n  default:\n    driver: ext4-file\n    path: {data}/volumes\n",
            data = dir.path().join("data").display(),
        ),
    )
    .expect("write the config");

    let out = Command::new(env!("CARGO_BIN_EXE_kilnd"))
        .arg("--config")
        .arg(&config)
        .env("RUST_LOG", "off")
        .output()
        .expect("run kilnd");
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    // Regression: `bind ADDR: Address already in use (os error 98):
    // Address already in use (os error 98)`.
    assert_eq!(
        stderr.trim_end(),
        format!("kilnd: bind {addr}: Address already in use (os error 98)"),
    );
}
