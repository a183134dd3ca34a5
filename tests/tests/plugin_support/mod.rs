//! What the plugin tests share: the plugin libraries built from this
//! workspace, a library that is not a plugin, and a `kilnd` whose default
//! pool is a plugin (the daemon harness's daemons use ext4-file).

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use kiln_tests::daemon::{binary, unique_tag, unix_request, HttpResponse};

/// The plugin libraries of the workspace.
pub struct Libraries {
    /// The qcow2 example plugin.
    pub qcow2: PathBuf,
    /// A library claiming ABI version 99.
    pub wrong_abi: PathBuf,
    /// A plugin whose grow panics.
    pub panicky: PathBuf,
}

/// Builds the plugin cdylibs (once per test process; a no-op when
/// `./scripts/test` built the workspace already) and returns their paths.
pub fn libraries() -> &'static Libraries {
    static LIBS: OnceLock<Libraries> = OnceLock::new();
    LIBS.get_or_init(|| {
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let root = Path::new(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .expect("the tests crate is in the workspace");
        let out = Command::new(cargo)
            .current_dir(root)
            .args(["build", "--locked", "-p", "kiln-qcow2"])
            .args([
                "-p",
                "kiln-test-plugin-wrong-abi",
                "-p",
                "kiln-test-plugin-panic",
            ])
            .stdin(Stdio::null())
            .output()
            .expect("run cargo build for the plugin libraries");
        assert!(
            out.status.success(),
            "building the plugin libraries failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        Libraries {
            qcow2: binary("libkiln_qcow2.so"),
            wrong_abi: binary("libkiln_test_plugin_wrong_abi.so"),
            panicky: binary("libkiln_test_plugin_panic.so"),
        }
    })
}

/// A shared library of the system that is not a kiln plugin (libm).
pub fn system_library() -> PathBuf {
    let dirs = [
        "/lib/x86_64-linux-gnu",
        "/usr/lib/x86_64-linux-gnu",
        "/lib/aarch64-linux-gnu",
        "/usr/lib/aarch64-linux-gnu",
        "/lib64",
        "/usr/lib64",
        "/lib",
        "/usr/lib",
    ];
    dirs.iter()
        .map(|d| Path::new(d).join("libm.so.6"))
        .find(|p| p.is_file())
        .unwrap_or_else(|| panic!("libm.so.6 not found in any of {dirs:?}"))
}

/// A temporary folder whose name carries a unique tag.
pub fn temp_dir(what: &str) -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix(&format!("{}-", unique_tag(what)))
        .tempdir()
        .expect("create a temporary folder")
}

/// Panics unless the test runs as root.
pub fn require_root(why: &str) {
    kiln_tests::daemon::require_root(why);
}

/// A `kilnd` whose `default` pool is configured by `pool_yaml`.
pub struct PluginDaemon {
    dir: tempfile::TempDir,
    config: PathBuf,
    socket: PathBuf,
    log: PathBuf,
    child: Option<Child>,
}

impl PluginDaemon {
    /// Writes a config whose `default` pool has the keys `pool_yaml`
    /// returns for the daemon's temporary folder (lines indented by four
    /// spaces).
    pub fn configure(pool_yaml: impl FnOnce(&Path) -> String) -> Self {
        Self::write_config(pool_yaml, false)
    }

    /// Like [`PluginDaemon::configure`], with backups to a folder of the
    /// daemon's temporary folder (`backups/`).
    pub fn configure_with_backups(pool_yaml: impl FnOnce(&Path) -> String) -> Self {
        Self::write_config(pool_yaml, true)
    }

    fn write_config(pool_yaml: impl FnOnce(&Path) -> String, backups: bool) -> Self {
        let dir = temp_dir("kiln-plugin");
        let mut pool_yaml = pool_yaml(dir.path());
        if backups {
            pool_yaml.push_str(&format!(
                "backup:\n  target: fs\n  fs:\n    path: {}\n",
                dir.path().join("backups").display()
            ));
        }
        let data = dir.path().join("data");
        let socket = data.join("kiln.sock");
        let config = dir.path().join("config.yaml");
        let yaml = format!(
            "data_dir: {}\nlisten:\n  socket: {}\npools:\n  default:\n{pool_yaml}",
            data.display(),
            socket.display()
        );
        std::fs::write(&config, yaml).expect("write the config");
        let log = dir.path().join("kilnd.log");
        Self {
            dir,
            config,
            socket,
            log,
            child: None,
        }
    }

    /// A folder inside the daemon's temporary folder.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn spawn(&mut self) {
        let log = std::fs::File::create(&self.log).expect("create the log");
        let child = Command::new(binary("kilnd"))
            .arg("--config")
            .arg(&self.config)
            .arg("--log-level")
            .arg("info,kilnd=debug,kiln_plugin_loader=debug")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("clone the log handle"))
            .stderr(log)
            .spawn()
            .expect("spawn kilnd");
        self.child = Some(child);
    }

    /// Starts kilnd and waits until it answers `/healthz`.
    pub fn start(mut self) -> Self {
        self.spawn();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(Ok(Some(status))) = self.child.as_mut().map(Child::try_wait) {
                self.child = None;
                panic!("kilnd exited at start with {status}:\n{}", self.log_text());
            }
            if matches!(unix_request(&self.socket, "GET", "/healthz", None, None), Ok(a) if a.status == 200)
            {
                return self;
            }
            assert!(
                Instant::now() < deadline,
                "kilnd did not answer within 60s:\n{}",
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Starts kilnd expecting it to refuse to start; returns its exit
    /// status and what it printed.
    pub fn start_refused(mut self) -> (ExitStatus, String) {
        self.spawn();
        let mut child = self.child.take().expect("just spawned");
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                return (status, self.log_text());
            }
            if Instant::now() > deadline {
                drop(child.kill());
                drop(child.wait());
                panic!(
                    "kilnd kept running instead of refusing:\n{}",
                    self.log_text()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// What kilnd printed so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_else(|e| format!("(no log: {e})"))
    }

    /// Whether kilnd is still running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.as_mut().map(Child::try_wait), Some(Ok(None)))
    }

    /// Runs `kiln --socket ... ARGS`; returns exit code, stdout, stderr.
    pub fn kiln(&self, args: &[&str]) -> (i32, String, String) {
        let out = Command::new(binary("kiln"))
            .env_remove("KILN_SOCKET")
            .env_remove("KILN_URL")
            .env_remove("KILN_TOKEN")
            .arg("--socket")
            .arg(&self.socket)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("run kiln");
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// Runs `kiln --json ARGS`, asserting success, and parses its output.
    pub fn kiln_json(&self, args: &[&str]) -> serde_json::Value {
        let mut all = vec!["--json"];
        all.extend_from_slice(args);
        let (code, stdout, stderr) = self.kiln(&all);
        assert_eq!(code, 0, "kiln {args:?} failed: {stderr}{stdout}");
        serde_json::from_str(&stdout)
            .unwrap_or_else(|e| panic!("kiln {args:?} printed no JSON ({e}): {stdout}"))
    }

    /// One HTTP request over the socket.
    pub fn request(&self, method: &str, path: &str, body: Option<&str>) -> HttpResponse {
        unix_request(&self.socket, method, path, body, None)
            .unwrap_or_else(|e| panic!("{method} {path}: {e}"))
    }
}

impl Drop for PluginDaemon {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            if let Ok(pid) = libc::pid_t::try_from(child.id()) {
                // SAFETY: our own child, not yet reaped.
                unsafe { libc::kill(pid, libc::SIGTERM) };
            }
            let deadline = Instant::now() + Duration::from_secs(30);
            while matches!(child.try_wait(), Ok(None)) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(50));
            }
            drop(child.kill());
            drop(child.wait());
        }
        if std::thread::panicking() {
            eprintln!("---- kilnd log ----\n{}\n---- end ----", self.log_text());
        }
    }
}
