//! A stand-in for kilnd for the CLI's tests: a canned HTTP responder on
//! a unix socket (or TCP), written here, that records every request, so a
//! test can check what the `kiln` binary sends (method, path, body, token)
//! and what it prints and exits with. It is not kilnd: the real daemon end
//! to end is tested in the workspace's tests crate.

// Each test binary uses a different part of this module.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixListener;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::sync::{Arc, Mutex};

use serde_json::{json, Value};

/// One request as the stand-in saw it.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: String,
    pub target: String,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Seen {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).expect("the CLI sent a JSON body")
    }
}

pub type Responder = dyn Fn(&Seen) -> (u16, Value) + Send + Sync;

/// A stand-in for kilnd: answers each request with what `respond` says
/// and records it. Its socket lives in its own temp dir (tagged
/// `kiln-cli-test-`), removed with the socket when this is dropped; the
/// listener thread ends with the test process.
pub struct StandInKilnd {
    _dir: tempfile::TempDir,
    pub socket: PathBuf,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl StandInKilnd {
    pub fn unix(respond: impl Fn(&Seen) -> (u16, Value) + Send + Sync + 'static) -> StandInKilnd {
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
        StandInKilnd {
            _dir: dir,
            socket,
            seen,
        }
    }

    /// `kiln --socket THIS ARGS...` with no KILN_* from the outside.
    pub fn kiln(&self, args: &[&str]) -> Output {
        let mut command = kiln_command();
        command.arg("--socket").arg(&self.socket).args(args);
        command.output().expect("run kiln")
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().expect("the stand-in's log").clone()
    }

    pub fn only_request(&self) -> Seen {
        let seen = self.seen();
        assert_eq!(seen.len(), 1, "expected one request, got {seen:#?}");
        seen.into_iter().next().expect("one request")
    }
}

pub fn kiln_command() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_kiln"));
    command
        .env_remove("KILN_SOCKET")
        .env_remove("KILN_URL")
        .env_remove("KILN_TOKEN")
        .stdin(Stdio::null());
    command
}

/// Reads one HTTP/1.1 request, answers it and closes the connection.
pub fn serve<S: Read + Write>(stream: S, respond: &Responder, seen: &Mutex<Vec<Seen>>) {
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

pub fn error_body(code: &str, message: &str) -> Value {
    json!({ "error": { "code": code, "message": message, "request_id": "req-1" } })
}

pub fn volume(name: &str, size_mib: u64) -> Value {
    json!({
        "id": "vol-1", "name": name, "owner": "admin", "pool": "default",
        "size_mib": size_mib, "status": "ready", "created_at": "2026-12-03T10:00:00Z",
        "attachments": []
    })
}

pub fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

pub fn code(output: &Output) -> i32 {
    output.status.code().expect("kiln exited, not killed")
}
