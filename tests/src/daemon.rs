//! The daemon harness: a real `kilnd` on a temporary data directory,
//! driven through the real `kiln` binary or raw HTTP.
//!
//! [`Daemon::start`] writes a config (the embedded default's shape, plus
//! TCP on a free port and tokens when asked), starts `kilnd`, and waits
//! for `/healthz`. Dropping the [`Daemon`] stops it (SIGTERM, then SIGKILL
//! after a bounded wait) and removes the data directory; a test that
//! panics gets the daemon's log printed. Everything a daemon makes lives
//! in its temporary directory, whose name carries a unique tag.
//!
//! The binaries are the workspace's own: `kilnd` and `kiln` next to the
//! test executable's folder (`target/debug/`). `./scripts/test` builds
//! them first; a missing one is a loud failure, never a skip.
//!
//! ```no_run
//! use kiln_tests::daemon::{Daemon, DaemonOptions};
//! let daemon = Daemon::start(DaemonOptions::default());
//! let v = daemon.kiln_json(&["volume", "create", "--name", "data", "--size", "64"]);
//! assert_eq!(v["size_mib"], 64);
//! ```

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

/// How long a daemon may take to answer `/healthz` after start.
const START_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a daemon may take to exit after SIGTERM before SIGKILL.
const STOP_TIMEOUT: Duration = Duration::from_secs(30);

/// A token the test daemon accepts.
#[derive(Debug, Clone)]
pub struct TestToken {
    /// Its owner.
    pub owner: String,
    /// The token text (at least 16 characters).
    pub token: String,
    /// Whether it is an admin token.
    pub admin: bool,
}

impl TestToken {
    /// A non-admin token for `owner`, derived from the owner's name.
    pub fn owner(owner: &str) -> Self {
        Self {
            owner: owner.to_string(),
            token: format!("test-token-of-{owner}-0123456789"),
            admin: false,
        }
    }
}

/// How to start the daemon.
#[derive(Debug, Clone, Default)]
pub struct DaemonOptions {
    /// Listen on TCP too, on a free port of 127.0.0.1 (needs `tokens`).
    pub tcp: bool,
    /// The tokens accepted.
    pub tokens: Vec<TestToken>,
    /// The default per-owner quota, in MiB (the daemon's default if None).
    pub quota_mib: Option<u64>,
    /// The pool's `reflink` option (the driver's default, `auto`, if
    /// None). Tests that need a clone to take a while set `never`, so
    /// the copy is a real one wherever they run.
    pub reflink: Option<String>,
    /// Start with `--data-dir` and no config file: the embedded default
    /// (the other options, which need a config, must be left unset).
    pub embedded: bool,
    /// A `backup:` section, as YAML starting with `backup:` (none if None).
    pub backup_yaml: Option<String>,
}

/// The transport of a raw request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    /// The unix socket.
    Unix,
    /// The TCP listener.
    Tcp,
}

/// A raw HTTP answer.
#[derive(Debug, Clone)]
pub struct HttpResponse {
    /// The status code.
    pub status: u16,
    /// The body as text.
    pub body: String,
}

impl HttpResponse {
    /// The body as JSON (panics, with the body, if it is not).
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("response body is not JSON ({e}): {}", self.body))
    }

    /// The `error.code` of an error body.
    pub fn code(&self) -> String {
        self.json()["error"]["code"]
            .as_str()
            .unwrap_or_else(|| panic!("not an error body: {}", self.body))
            .to_string()
    }
}

/// The result of one `kiln` run.
#[derive(Debug)]
pub struct CliOutput {
    /// The exit status.
    pub status: ExitStatus,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
}

impl CliOutput {
    fn from_output(o: Output) -> Self {
        Self {
            status: o.status,
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        }
    }

    /// The exit code (panics if `kiln` died of a signal).
    pub fn code(&self) -> i32 {
        self.status
            .code()
            .unwrap_or_else(|| panic!("kiln died of a signal: {self:?}"))
    }
}

/// Panics unless the test runs as root, naming `why`.
pub fn require_root(why: &str) {
    // SAFETY: geteuid has no preconditions and touches no memory.
    let euid = unsafe { libc::geteuid() };
    assert_eq!(
        euid, 0,
        "this test needs root ({why}); run it through ./scripts/test"
    );
}

/// A path of one of the workspace's binaries, next to the test binary.
pub fn binary(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("the test binary knows its path");
    // target/debug/deps/TEST-HASH -> target/debug/NAME
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("the test binary lives in target/PROFILE/deps");
    let path = dir.join(name);
    assert!(
        path.is_file(),
        "{} is missing: build the binaries first (cargo build --workspace --bins; \
         ./scripts/test does)",
        path.display()
    );
    path
}

/// A unique tag for this test's resources: the pid and a counter.
pub fn unique_tag(what: &str) -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!("{what}-{}-{n}-{nanos:x}", std::process::id())
}

/// A running `kilnd` on its own temporary data directory.
pub struct Daemon {
    dir: tempfile::TempDir,
    config: PathBuf,
    socket: PathBuf,
    tcp: Option<SocketAddr>,
    tokens: Vec<TestToken>,
    log: PathBuf,
    embedded: bool,
    child: Option<Child>,
}

impl Daemon {
    /// Writes the config, starts `kilnd` and waits until it answers.
    pub fn start(options: DaemonOptions) -> Self {
        let tag = unique_tag("kiln-e2e");
        let dir = tempfile::Builder::new()
            .prefix(&format!("{tag}-"))
            .tempdir()
            .expect("create the daemon's temporary folder");
        let data = dir.path().join("data");
        let socket = data.join("kiln.sock");
        let tcp = options.tcp.then(free_tcp_addr);
        assert!(
            !options.embedded
                || (tcp.is_none()
                    && options.tokens.is_empty()
                    && options.quota_mib.is_none()
                    && options.reflink.is_none()
                    && options.backup_yaml.is_none()),
            "the embedded default has no TCP, tokens, quota or reflink options"
        );
        assert!(
            tcp.is_none() || !options.tokens.is_empty(),
            "a TCP daemon needs tokens"
        );

        let mut yaml = format!(
            "data_dir: {data}\nlisten:\n  socket: {socket}\n",
            data = data.display(),
            socket = socket.display()
        );
        if let Some(addr) = tcp {
            yaml.push_str(&format!("  tcp: {addr}\n"));
        }
        if !options.tokens.is_empty() {
            yaml.push_str("tokens:\n");
            for t in &options.tokens {
                yaml.push_str(&format!(
                    "  - owner: {}\n    token: \"{}\"\n    admin: {}\n",
                    t.owner, t.token, t.admin
                ));
            }
        }
        yaml.push_str(&format!(
            "pools:\n  default:\n    driver: ext4-file\n    path: {}\n",
            data.join("volumes").display()
        ));
        if let Some(reflink) = &options.reflink {
            yaml.push_str(&format!("    reflink: {reflink}\n"));
        }
        if let Some(q) = options.quota_mib {
            yaml.push_str(&format!("quotas:\n  default_mib: {q}\n"));
        }
        if let Some(backup) = &options.backup_yaml {
            yaml.push_str(backup);
            if !backup.ends_with('\n') {
                yaml.push('\n');
            }
        }
        let config = dir.path().join("config.yaml");
        std::fs::write(&config, yaml).expect("write the daemon's config");

        let log = dir.path().join("kilnd.log");
        let mut daemon = Self {
            dir,
            config,
            socket,
            tcp,
            tokens: options.tokens,
            log,
            embedded: options.embedded,
            child: None,
        };
        daemon.spawn();
        daemon
    }

    fn spawn(&mut self) {
        assert!(self.child.is_none(), "the daemon is already running");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .expect("open the daemon log");
        let mut cmd = Command::new(binary("kilnd"));
        if self.embedded {
            cmd.arg("--data-dir").arg(self.data_dir());
        } else {
            cmd.arg("--config").arg(&self.config);
        }
        let child = cmd
            .arg("--log-level")
            .arg("info,kilnd=debug,kiln_core=debug")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("clone the log handle"))
            .stderr(log)
            .spawn()
            .expect("spawn kilnd");
        self.child = Some(child);
        self.wait_healthy();
    }

    fn wait_healthy(&mut self) {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Some(child) = self.child.as_mut() {
                if let Ok(Some(status)) = child.try_wait() {
                    self.child = None;
                    panic!("kilnd exited at start with {status}:\n{}", self.log_text());
                }
            }
            if let Ok(r) = self.try_request(Via::Unix, "GET", "/healthz", None, None) {
                if r.status == 200 {
                    return;
                }
            }
            assert!(
                Instant::now() < deadline,
                "kilnd did not answer /healthz within {START_TIMEOUT:?}:\n{}",
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The daemon's data directory.
    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// The folder of the `default` pool's images.
    pub fn pool_dir(&self) -> PathBuf {
        self.data_dir().join("volumes")
    }

    /// A scratch folder inside the daemon's temporary directory (made if
    /// missing), for mount points and test files.
    pub fn scratch(&self, name: &str) -> PathBuf {
        let p = self.dir.path().join("scratch").join(name);
        std::fs::create_dir_all(&p).expect("create a scratch folder");
        p
    }

    /// The unix socket.
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// The TCP URL, if the daemon listens on TCP.
    pub fn url(&self) -> Option<String> {
        self.tcp.map(|a| format!("http://{a}"))
    }

    /// The token of `owner` (panics if the daemon has none).
    pub fn token(&self, owner: &str) -> String {
        self.tokens
            .iter()
            .find(|t| t.owner == owner)
            .map(|t| t.token.clone())
            .unwrap_or_else(|| panic!("no token for owner {owner}"))
    }

    /// The daemon's log so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_else(|e| format!("(no log: {e})"))
    }

    /// The pid of the running daemon.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("the daemon is running").id()
    }

    /// Runs `kiln` over the unix socket without a token (the local admin).
    pub fn kiln(&self, args: &[&str]) -> CliOutput {
        let mut cmd = self.kiln_command();
        cmd.arg("--socket").arg(&self.socket).args(args);
        CliOutput::from_output(cmd.output().expect("run kiln"))
    }

    /// Runs `kiln` over TCP with `owner`'s token.
    pub fn kiln_as(&self, owner: &str, args: &[&str]) -> CliOutput {
        let url = self.url().expect("the daemon listens on TCP");
        let mut cmd = self.kiln_command();
        cmd.arg("--url")
            .arg(url)
            .arg("--token")
            .arg(self.token(owner))
            .args(args);
        CliOutput::from_output(cmd.output().expect("run kiln"))
    }

    /// A `kiln` command with a clean environment (no KILN_* of the caller).
    pub fn kiln_command(&self) -> Command {
        let mut cmd = Command::new(binary("kiln"));
        cmd.env_remove("KILN_SOCKET")
            .env_remove("KILN_URL")
            .env_remove("KILN_TOKEN")
            .stdin(Stdio::null());
        cmd
    }

    /// Runs `kiln --json ARGS` over the socket, asserts it succeeded, and
    /// returns its output as JSON.
    pub fn kiln_json(&self, args: &[&str]) -> serde_json::Value {
        let mut all = vec!["--json"];
        all.extend_from_slice(args);
        let out = self.kiln(&all);
        assert_eq!(out.code(), 0, "kiln {args:?} failed: {out:?}");
        serde_json::from_str(&out.stdout)
            .unwrap_or_else(|e| panic!("kiln {args:?} printed no JSON ({e}): {out:?}"))
    }

    /// One HTTP request; `token` is sent as a bearer token.
    pub fn request(
        &self,
        via: Via,
        method: &str,
        path: &str,
        body: Option<&str>,
        token: Option<&str>,
    ) -> HttpResponse {
        self.try_request(via, method, path, body, token)
            .unwrap_or_else(|e| panic!("{method} {path} over {via:?} failed: {e}"))
    }

    /// Like [`Daemon::request`], reporting a transport failure instead of
    /// panicking.
    pub fn try_request(
        &self,
        via: Via,
        method: &str,
        path: &str,
        body: Option<&str>,
        token: Option<&str>,
    ) -> std::io::Result<HttpResponse> {
        match via {
            Via::Unix => unix_request(&self.socket, method, path, body, token),
            Via::Tcp => {
                let addr = self.tcp.expect("the daemon listens on TCP");
                let req = http_request(method, path, body, token);
                parse_response(&exchange(TcpStream::connect(addr)?, req.as_bytes())?)
            }
        }
    }

    /// Kills the daemon with SIGKILL (a crash) and waits for it.
    pub fn kill9(&mut self) {
        let mut child = self.child.take().expect("the daemon is running");
        // Child::kill sends SIGKILL.
        child.kill().expect("kill -9 kilnd");
        let _ = child.wait();
    }

    /// Stops the daemon with SIGTERM and returns its exit status.
    pub fn stop(&mut self) -> ExitStatus {
        let mut child = self.child.take().expect("the daemon is running");
        terminate(&mut child)
    }

    /// Starts the daemon again on the same data directory and config.
    pub fn restart(&mut self) {
        if self.child.is_some() {
            let status = self.stop();
            assert!(status.success(), "kilnd exited with {status} on SIGTERM");
        }
        self.spawn();
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            terminate(&mut child);
        }
        if std::thread::panicking() {
            eprintln!(
                "---- kilnd log ----\n{}\n---- end of kilnd log ----",
                self.log_text()
            );
        }
    }
}

/// SIGTERM, then SIGKILL if the daemon does not exit in time.
fn terminate(child: &mut Child) -> ExitStatus {
    let pid = libc::pid_t::try_from(child.id()).expect("pids fit pid_t");
    // SAFETY: kill(2) on the pid of a child this harness spawned and has
    // not yet reaped, so the pid cannot belong to another process.
    unsafe { libc::kill(pid, libc::SIGTERM) };
    let deadline = Instant::now() + STOP_TIMEOUT;
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return status,
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(50)),
            _ => {
                let _ = child.kill();
                return child.wait().expect("reap kilnd");
            }
        }
    }
}

fn free_tcp_addr() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    l.local_addr().expect("a bound listener has an address")
}

/// One raw HTTP request to a kilnd listening on `socket` (any daemon, not
/// only one started by [`Daemon`]); `token` is sent as a bearer token.
pub fn unix_request(
    socket: &Path,
    method: &str,
    path: &str,
    body: Option<&str>,
    token: Option<&str>,
) -> std::io::Result<HttpResponse> {
    let req = http_request(method, path, body, token);
    let stream = UnixStream::connect(socket)?;
    // A daemon that stops answering fails the request instead of hanging
    // the test until the runner's own timeout.
    stream.set_read_timeout(Some(REQUEST_TIMEOUT))?;
    parse_response(&exchange(stream, req.as_bytes())?)
}

/// How long [`unix_request`] waits for an answer.
const REQUEST_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(120);

fn http_request(method: &str, path: &str, body: Option<&str>, token: Option<&str>) -> String {
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: kiln\r\nConnection: close\r\n");
    if let Some(token) = token {
        req.push_str(&format!("Authorization: Bearer {token}\r\n"));
    }
    let body = body.unwrap_or("");
    if !body.is_empty() || matches!(method, "POST" | "PUT") {
        req.push_str("Content-Type: application/json\r\n");
    }
    req.push_str(&format!("Content-Length: {}\r\n\r\n{body}", body.len()));
    req
}

fn exchange(mut stream: impl Read + Write, request: &[u8]) -> std::io::Result<Vec<u8>> {
    stream.write_all(request)?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw)?;
    Ok(raw)
}

fn parse_response(raw: &[u8]) -> std::io::Result<HttpResponse> {
    let bad = |what: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, what.to_string());
    let text = String::from_utf8_lossy(raw);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| bad("no end of headers"))?;
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| bad("no status"))?;
    let chunked = head.lines().any(|l| {
        l.to_ascii_lowercase()
            .starts_with("transfer-encoding: chunked")
    });
    let body = if chunked {
        dechunk(body)
    } else {
        body.to_string()
    };
    Ok(HttpResponse { status, body })
}

fn dechunk(mut s: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = s.split_once("\r\n") {
        let Ok(n) = usize::from_str_radix(size.trim(), 16) else {
            break;
        };
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        s = rest[n..].trim_start_matches("\r\n");
    }
    out
}

/// A loop mount of an image or device, unmounted on drop.
pub struct LoopMount {
    dir: PathBuf,
    mounted: bool,
}

impl LoopMount {
    /// `mount -o loop DEVICE DIR` (read-only with `read_only`).
    pub fn new(device: &Path, dir: &Path, read_only: bool) -> Self {
        std::fs::create_dir_all(dir).expect("create the mount point");
        let opts = if read_only { "loop,ro" } else { "loop" };
        let out = Command::new("mount")
            .arg("-o")
            .arg(opts)
            .arg(device)
            .arg(dir)
            .output()
            .expect("run mount");
        assert!(
            out.status.success(),
            "mount -o {opts} {} {} failed: {}",
            device.display(),
            dir.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        Self {
            dir: dir.to_path_buf(),
            mounted: true,
        }
    }

    /// The mount point.
    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// Unmounts now, asserting it worked.
    pub fn unmount(mut self) {
        self.mounted = false;
        let out = Command::new("umount")
            .arg(&self.dir)
            .output()
            .expect("run umount");
        assert!(
            out.status.success(),
            "umount {} failed: {}",
            self.dir.display(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

impl Drop for LoopMount {
    fn drop(&mut self) {
        if self.mounted {
            // Lazy, so a panicking test still leaves nothing mounted behind.
            let _ = Command::new("umount").arg("-l").arg(&self.dir).status();
        }
    }
}

/// Runs a command, asserting it succeeded, and returns its stdout.
pub fn run(program: &str, args: &[&str]) -> String {
    let out = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{program} could not be run ({e}); is it installed?"));
    assert!(
        out.status.success(),
        "{program} {args:?} failed with {}: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Bytes allocated on disk for `path` (`stat` blocks times 512).
pub fn allocated_bytes(path: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("stat {}: {e}", path.display()))
        .blocks()
        * 512
}

/// The SHA-256 of every regular file under `dir` (recursively, by path
/// relative to `dir`), leaving out `lost+found`.
pub fn checksums(dir: &Path) -> std::collections::BTreeMap<String, String> {
    fn walk(root: &Path, dir: &Path, out: &mut std::collections::BTreeMap<String, String>) {
        let entries =
            std::fs::read_dir(dir).unwrap_or_else(|e| panic!("read {}: {e}", dir.display()));
        for entry in entries {
            let entry = entry.expect("read a folder entry");
            let path = entry.path();
            let rel = path
                .strip_prefix(root)
                .expect("walked paths are under the root")
                .display()
                .to_string();
            if rel == "lost+found" {
                continue;
            }
            let kind = entry.file_type().expect("stat a folder entry");
            if kind.is_dir() {
                walk(root, &path, out);
            } else if kind.is_file() {
                let sum = run("sha256sum", &[&path.display().to_string()]);
                let sum = sum.split_whitespace().next().unwrap_or("").to_string();
                out.insert(rel, sum);
            }
        }
    }
    let mut out = std::collections::BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}

/// Fills `dir` with a few small text files and one file of `random_mib`
/// MiB of random data; returns their checksums.
pub fn write_test_files(dir: &Path, random_mib: u64) -> std::collections::BTreeMap<String, String> {
    std::fs::create_dir_all(dir.join("notes")).expect("create a folder in the volume");
    for i in 0..5 {
        std::fs::write(
            dir.join("notes").join(format!("note-{i}.txt")),
            format!("note {i}\n").repeat(100 + i * 37),
        )
        .expect("write a file in the volume");
    }
    if random_mib > 0 {
        run(
            "dd",
            &[
                "if=/dev/urandom",
                &format!("of={}", dir.join("random.bin").display()),
                "bs=1M",
                &format!("count={random_mib}"),
                "status=none",
                "conv=fsync",
            ],
        );
    }
    run("sync", &[]);
    checksums(dir)
}

/// The filesystem size of an ext4 image or device, in bytes
/// (`dumpe2fs -h`: block count times block size).
pub fn ext4_size_bytes(device: &Path) -> u64 {
    let out = run("dumpe2fs", &["-h", &device.display().to_string()]);
    let field = |name: &str| -> u64 {
        out.lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("dumpe2fs -h printed no {name:?}:\n{out}"))
    };
    field("Block count:") * field("Block size:")
}
