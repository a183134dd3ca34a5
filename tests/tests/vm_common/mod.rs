//! The end-to-end scenario the VM tier runs once per driver: a real
//! `kilnd` with one pool of that driver and an fs backup target, driven
//! through the real `kiln`.
//!
//! The daemon harness of `kiln_tests::daemon` configures an ext4-file
//! pool; this one writes its own config naming the driver's pool and
//! keeps everything else (data directory, socket, backup folder) in one
//! temporary folder, removed on drop.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use kiln_tests::daemon::{binary, checksums, unique_tag, write_test_files};

/// A `kilnd` with one pool, `vm`, described by `pool_yaml`.
pub struct VmDaemon {
    dir: tempfile::TempDir,
    socket: PathBuf,
    child: Child,
}

impl VmDaemon {
    /// Starts `kilnd`; `pool_yaml` is the pool's keys (driver and
    /// options), one per line, unindented.
    pub fn start(pool_yaml: &str) -> Self {
        let dir = tempfile::Builder::new()
            .prefix(&format!("{}-", unique_tag("kiln-vm-e2e")))
            .tempdir()
            .expect("a temporary folder for the daemon");
        let data = dir.path().join("data");
        let socket = data.join("kiln.sock");
        let pool: String = pool_yaml.lines().map(|l| format!("    {l}\n")).collect();
        let config = format!(
            "data_dir: {data}\nlisten:\n  socket: {socket}\ndefault_pool: vm\npools:\n  vm:\n\
             {pool}backup:\n  target: fs\n  fs:\n    path: {backups}\n  block_size_mib: 1\n",
            data = data.display(),
            socket = socket.display(),
            backups = dir.path().join("backups").display(),
        );
        let config_path = dir.path().join("config.yaml");
        std::fs::write(&config_path, config).expect("write the config");
        let log = std::fs::File::create(dir.path().join("kilnd.log")).expect("the daemon log");
        let child = Command::new(binary("kilnd"))
            .arg("--config")
            .arg(&config_path)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("clone the log handle"))
            .stderr(log)
            .spawn()
            .expect("spawn kilnd");
        let mut d = Self { dir, socket, child };
        d.wait_ready();
        d
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("kilnd.log")).unwrap_or_default()
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(120);
        while !self.socket.exists() || self.kiln(&["pool", "list"]).0 != 0 {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("kilnd exited at start with {status}:\n{}", self.log());
            }
            assert!(
                Instant::now() < deadline,
                "kilnd did not start:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Runs `kiln ARGS`; returns the exit code, stdout and stderr.
    pub fn kiln(&self, args: &[&str]) -> (i32, String, String) {
        let out = Command::new(binary("kiln"))
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

    /// Runs `kiln --json ARGS`, which must succeed, and parses its output.
    pub fn json(&self, args: &[&str]) -> serde_json::Value {
        let mut all = vec!["--json"];
        all.extend_from_slice(args);
        let (code, stdout, stderr) = self.kiln(&all);
        assert_eq!(
            code,
            0,
            "kiln {args:?} failed: {stderr}\ndaemon log:\n{}",
            self.log()
        );
        serde_json::from_str(&stdout)
            .unwrap_or_else(|e| panic!("kiln {args:?} printed no JSON ({e}): {stdout}"))
    }

    fn scratch(&self, name: &str) -> PathBuf {
        let p = self.dir.path().join(name);
        std::fs::create_dir_all(&p).expect("a scratch folder");
        p
    }
}

impl Drop for VmDaemon {
    fn drop(&mut self) {
        // SAFETY: kill(2) with a pid this struct spawned and still owns.
        unsafe {
            libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM);
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        while matches!(self.child.try_wait(), Ok(None)) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("kilnd log:\n{}", self.log());
        }
    }
}

/// A mount of a volume's block device, unmounted on drop.
struct Mount {
    dir: PathBuf,
}

impl Mount {
    fn new(device: &Path, dir: PathBuf, read_only: bool) -> Self {
        let mut cmd = Command::new("mount");
        if read_only {
            cmd.args(["-o", "ro"]);
        }
        let status = cmd.arg(device).arg(&dir).status().expect("run mount");
        assert!(
            status.success(),
            "mount {} on {}",
            device.display(),
            dir.display()
        );
        Self { dir }
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.dir).status();
    }
}

/// Creates sandbox `name` with `volume` at /data and returns the device.
fn attach(d: &VmDaemon, sandbox: &str, volume: &str, read_only: bool) -> PathBuf {
    let spec = format!("{volume}:/data{}", if read_only { ":ro" } else { "" });
    let sb = d.json(&["sandbox", "create", "--name", sandbox, "--volume", &spec]);
    let device = sb["volumes"][0]["device"]
        .as_str()
        .unwrap_or_else(|| panic!("sandbox create shows no device: {sb}"));
    PathBuf::from(device)
}

fn destroy(d: &VmDaemon, sandbox: &str) {
    let (code, _, err) = d.kiln(&["sandbox", "destroy", sandbox, "--yes"]);
    assert_eq!(code, 0, "sandbox destroy {sandbox}: {err}");
}

/// Mounts `volume` read-only through a sandbox and returns its files'
/// checksums.
fn sums_of(d: &VmDaemon, volume: &str) -> std::collections::BTreeMap<String, String> {
    let sandbox = format!("read-{volume}");
    let device = attach(d, &sandbox, volume, true);
    let sums = {
        let m = Mount::new(&device, d.scratch(&sandbox), true);
        checksums(&m.dir)
    };
    destroy(d, &sandbox);
    sums
}

/// Create, sandbox create, write, back up while attached (a snapshot:
/// crash-consistent), clone, restore into a new volume, verify the backup,
/// and compare every copy's files with what was written.
pub fn scenario(pool_yaml: &str) {
    let d = VmDaemon::start(pool_yaml);
    let v = d.json(&["volume", "create", "--name", "data", "--size", "128"]);
    assert_eq!(v["size_mib"], 128, "{v}");

    let device = attach(&d, "sb", "data", false);
    let written = {
        let m = Mount::new(&device, d.scratch("sb"), false);
        let sums = write_test_files(&m.dir, 4);
        let status = Command::new("sync").status().expect("run sync");
        assert!(status.success());

        // Attached and mounted: the backup reads a snapshot.
        let b = d.json(&["volume", "backup", "data"]);
        assert_eq!(b["consistency"], "crash_consistent", "{b}");
        (sums, b["id"].as_str().expect("a backup id").to_string())
    };
    let (sums, backup) = written;
    destroy(&d, "sb");

    d.json(&["volume", "clone", "data", "--name", "copy"]);
    d.json(&[
        "volume",
        "restore",
        "data",
        "--backup-id",
        &backup,
        "--to",
        "back",
    ]);
    let (code, out, err) = d.kiln(&["backup", "verify", &backup]);
    assert_eq!(code, 0, "backup verify: {out}{err}");

    assert_eq!(sums_of(&d, "data"), sums, "the source changed");
    assert_eq!(sums_of(&d, "copy"), sums, "the clone differs");
    assert_eq!(sums_of(&d, "back"), sums, "the restored volume differs");

    for name in ["copy", "back", "data"] {
        let (code, _, err) = d.kiln(&["volume", "delete", name, "--yes"]);
        assert_eq!(code, 0, "volume delete {name}: {err}");
    }
}
