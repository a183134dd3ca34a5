//! S3-compatible servers for the backup tests: moto (fast, does not check
//! signatures, in memory) and s3s-fs (checks SigV4 signatures, keeps its
//! data in a folder, so it can be stopped and started again).
//!
//! Each [`S3Server`] listens on a free 127.0.0.1 port, keeps its data in
//! its own temporary folder (tagged `kiln-s3-<tag>`), has a bucket made
//! for it, and is killed on drop. A missing binary is a loud failure:
//! `scripts/setup/s3.sh` installs both.
//!
//! ```no_run
//! let server = kiln_tests::s3::S3Server::moto();
//! let config = server.s3_config();
//! assert!(config.endpoint.starts_with("http://127.0.0.1:"));
//! ```

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use kiln_core::config::S3Config;

/// How long a server may take to accept connections.
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// Which server runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum S3Kind {
    /// `moto_server`.
    Moto,
    /// `s3s-fs`.
    S3sFs,
}

/// A running S3-compatible server with one bucket; stopped on drop.
pub struct S3Server {
    kind: S3Kind,
    child: Option<Child>,
    dir: tempfile::TempDir,
    port: u16,
    /// The bucket made for this server.
    pub bucket: String,
    /// The access key it accepts.
    pub access_key: String,
    /// The secret key it accepts.
    pub secret_key: String,
}

fn tag() -> String {
    format!("{}-{:08x}", std::process::id(), rand_u32())
}

fn rand_u32() -> u32 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    static COUNTER: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    nanos
        ^ COUNTER
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
            .wrapping_mul(2_654_435_761)
}

fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0 for a free port");
    l.local_addr()
        .expect("a bound listener has an address")
        .port()
}

/// Finds a binary on PATH or in `~/.cargo/bin`, failing loudly.
fn binary(name: &str) -> PathBuf {
    let mut dirs: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect())
        .unwrap_or_default();
    if let Some(home) = std::env::var_os("HOME") {
        dirs.push(Path::new(&home).join(".cargo/bin"));
    }
    dirs.into_iter()
        .map(|d| d.join(name))
        .find(|p| p.is_file())
        .unwrap_or_else(|| panic!("{name} is not installed: run scripts/setup/s3.sh"))
}

impl S3Server {
    /// Starts moto.
    pub fn moto() -> Self {
        Self::start_new(S3Kind::Moto)
    }

    /// Starts s3s-fs (checks signatures).
    pub fn s3s_fs() -> Self {
        Self::start_new(S3Kind::S3sFs)
    }

    fn start_new(kind: S3Kind) -> Self {
        let tag = tag();
        let dir = tempfile::Builder::new()
            .prefix(&format!("kiln-s3-{tag}-"))
            .tempdir()
            .expect("make the server's temporary folder");
        let mut server = Self {
            kind,
            child: None,
            dir,
            port: free_port(),
            bucket: format!("kiln-test-{tag}"),
            access_key: format!("AKKILN{}", &tag.replace('-', "")[..8.min(tag.len() - 1)]),
            secret_key: format!("secret-{tag}"),
        };
        if kind == S3Kind::S3sFs {
            std::fs::create_dir_all(server.data_dir().join(&server.bucket))
                .expect("make the bucket folder");
        }
        server.start();
        if kind == S3Kind::Moto {
            server.create_bucket_unsigned();
        }
        server
    }

    /// Where s3s-fs keeps objects (`<bucket>/<key>`).
    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// The endpoint URL.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Starts (or starts again, on the same port and folder) the server.
    pub fn start(&mut self) {
        assert!(self.child.is_none(), "the server is already running");
        let log =
            std::fs::File::create(self.dir.path().join("server.log")).expect("make the server log");
        let log2 = log.try_clone().expect("clone the log handle");
        let port = self.port.to_string();
        let mut cmd = match self.kind {
            S3Kind::Moto => {
                let mut c = Command::new(binary("moto_server"));
                c.args(["-H", "127.0.0.1", "-p", &port]);
                c
            }
            S3Kind::S3sFs => {
                std::fs::create_dir_all(self.data_dir()).expect("make the data folder");
                let mut c = Command::new(binary("s3s-fs"));
                c.args(["--host", "127.0.0.1", "--port", &port])
                    .args(["--access-key", &self.access_key])
                    .args(["--secret-key", &self.secret_key])
                    .arg(self.data_dir());
                c
            }
        };
        let child = cmd
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log2)
            .spawn()
            .unwrap_or_else(|e| panic!("start {:?}: {e}", self.kind));
        self.child = Some(child);

        let deadline = Instant::now() + START_TIMEOUT;
        while TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            if let Some(Ok(Some(status))) = self.child.as_mut().map(|c| c.try_wait()) {
                panic!("{:?} exited at start ({status}): {}", self.kind, self.log());
            }
            assert!(
                Instant::now() < deadline,
                "{:?} did not listen on port {} within {START_TIMEOUT:?}: {}",
                self.kind,
                self.port,
                self.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Kills the server (its data folder stays, for [`S3Server::start`]).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// The server's output so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }

    /// The configuration of a target in this server's bucket.
    pub fn s3_config(&self) -> S3Config {
        S3Config {
            endpoint: self.endpoint(),
            region: "us-east-1".into(),
            bucket: self.bucket.clone(),
            prefix: String::new(),
            path_style: true,
            access_key_id: self.access_key.clone(),
            secret_access_key: self.secret_key.clone(),
        }
    }

    /// moto takes an unsigned `PUT /<bucket>`.
    fn create_bucket_unsigned(&self) {
        let mut s = TcpStream::connect(("127.0.0.1", self.port)).expect("connect to moto");
        s.set_read_timeout(Some(Duration::from_secs(10)))
            .expect("set a read timeout");
        write!(
            s,
            "PUT /{} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            self.bucket, self.port
        )
        .expect("send the bucket request");
        let mut answer = String::new();
        let _ = s.read_to_string(&mut answer);
        assert!(
            answer.starts_with("HTTP/1.1 200"),
            "moto refused to create bucket {}: {answer}",
            self.bucket
        );
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("--- {:?} log ---\n{}", self.kind, self.log());
        }
        self.stop();
    }
}
