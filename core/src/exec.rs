//! The one way kiln runs an external tool (`mkfs.ext4`, `resize2fs`,
//! `lvcreate`, `zfs`, `qemu-img`, ...).
//!
//! No shell: a resolved binary and an argv. Every run gets `LC_ALL=C` (so
//! output and messages are stable), a timeout, and on failure an
//! [`ExecError`] that carries the argv, the exit status and the trimmed
//! stderr. Binaries are resolved once, when a backend opens, so a missing
//! tool is reported at start-up rather than on the first request.
//!
//! ```no_run
//! # async fn demo() -> Result<(), kiln_core::exec::ExecError> {
//! use kiln_core::exec::Tool;
//! let mkfs = Tool::resolve("mkfs.ext4")?;
//! mkfs.command().args(["-q", "-F", "/tmp/img"]).run().await?;
//! # Ok(()) }
//! ```

use std::ffi::{OsStr, OsString};
use std::fmt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::io::AsyncWriteExt;

/// How long a command may run unless told otherwise.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(600);

/// How much of stderr an error keeps.
const STDERR_KEEP: usize = 2000;

/// Folders searched after `PATH`: the sbin folders hold most storage tools
/// and are often missing from a service's `PATH`.
const EXTRA_DIRS: &[&str] = &["/usr/local/sbin", "/usr/sbin", "/sbin", "/usr/bin", "/bin"];

/// A failed run of an external tool.
#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    /// The binary is not installed.
    #[error("{program} not found in PATH or {}", EXTRA_DIRS.join(", "))]
    NotFound {
        /// The program's name.
        program: String,
    },
    /// The process could not be started.
    #[error("cannot run {argv}")]
    Spawn {
        /// The command line, quoted for reading.
        argv: Argv,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The process exited unsuccessfully.
    #[error("{argv} exited with {status}: {stderr}")]
    Failed {
        /// The command line, quoted for reading.
        argv: Argv,
        /// The exit status (`exit status: 1`, `signal: 9`).
        status: String,
        /// The exit code, when it exited normally.
        code: Option<i32>,
        /// The last part of stderr, trimmed.
        stderr: String,
    },
    /// The process ran past its timeout and was killed.
    #[error("{argv} did not finish within {}s and was killed", timeout.as_secs())]
    TimedOut {
        /// The command line, quoted for reading.
        argv: Argv,
        /// The timeout.
        timeout: Duration,
    },
}

impl ExecError {
    /// The exit code, where the command ran and failed.
    pub fn exit_code(&self) -> Option<i32> {
        match self {
            ExecError::Failed { code, .. } => *code,
            _ => None,
        }
    }

    /// The stderr of a failed run ("" otherwise).
    pub fn stderr(&self) -> &str {
        match self {
            ExecError::Failed { stderr, .. } => stderr,
            _ => "",
        }
    }
}

/// A command line kept for error messages, shown shell-quoted.
#[derive(Debug, Clone)]
pub struct Argv(Vec<OsString>);

impl fmt::Display for Argv {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, a) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(" ")?;
            }
            let s = a.to_string_lossy();
            let plain = !s.is_empty()
                && s.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_./=:,@%+".contains(&b));
            if plain {
                f.write_str(&s)?;
            } else {
                write!(f, "'{}'", s.replace('\'', r"'\''"))?;
            }
        }
        Ok(())
    }
}

/// A resolved external binary.
#[derive(Debug, Clone)]
pub struct Tool {
    name: String,
    path: PathBuf,
}

impl Tool {
    /// Finds `name` in `PATH`, then in the usual sbin folders.
    pub fn resolve(name: &str) -> Result<Self, ExecError> {
        let path_var = std::env::var_os("PATH").unwrap_or_default();
        let dirs = std::env::split_paths(&path_var).chain(EXTRA_DIRS.iter().map(PathBuf::from));
        for dir in dirs {
            let candidate = dir.join(name);
            if is_executable(&candidate) {
                return Ok(Self {
                    name: name.to_string(),
                    path: candidate,
                });
            }
        }
        Err(ExecError::NotFound {
            program: name.to_string(),
        })
    }

    /// A tool at a known path (checked to be executable).
    pub fn at(path: impl Into<PathBuf>) -> Result<Self, ExecError> {
        let path = path.into();
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if is_executable(&path) {
            Ok(Self { name, path })
        } else {
            Err(ExecError::NotFound {
                program: path.display().to_string(),
            })
        }
    }

    /// The tool's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Where the binary is.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Starts building a run of this tool.
    pub fn command(&self) -> Command {
        Command {
            program: self.path.clone(),
            args: Vec::new(),
            env: Vec::new(),
            stdin: None,
            timeout: DEFAULT_TIMEOUT,
        }
    }
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p)
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

/// One run of a tool: argv, environment, optional stdin, timeout.
#[derive(Debug, Clone)]
pub struct Command {
    program: PathBuf,
    args: Vec<OsString>,
    env: Vec<(OsString, OsString)>,
    stdin: Option<Vec<u8>>,
    timeout: Duration,
}

/// What a successful run printed.
#[derive(Debug, Clone)]
pub struct Output {
    /// Standard output.
    pub stdout: String,
    /// Standard error (tools often warn there on success).
    pub stderr: String,
}

impl Command {
    /// Appends one argument.
    pub fn arg(mut self, a: impl AsRef<OsStr>) -> Self {
        self.args.push(a.as_ref().to_owned());
        self
    }

    /// Appends arguments.
    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.args
            .extend(args.into_iter().map(|a| a.as_ref().to_owned()));
        self
    }

    /// Sets an environment variable for this run.
    pub fn env(mut self, k: impl AsRef<OsStr>, v: impl AsRef<OsStr>) -> Self {
        self.env
            .push((k.as_ref().to_owned(), v.as_ref().to_owned()));
        self
    }

    /// Feeds `data` to the tool's stdin.
    pub fn stdin(mut self, data: impl Into<Vec<u8>>) -> Self {
        self.stdin = Some(data.into());
        self
    }

    /// Replaces the default timeout.
    pub fn timeout(mut self, t: Duration) -> Self {
        self.timeout = t;
        self
    }

    /// The argv, for messages.
    pub fn argv(&self) -> Argv {
        let mut v = vec![self.program.clone().into_os_string()];
        v.extend(self.args.iter().cloned());
        Argv(v)
    }

    /// Runs the tool to completion; a non-zero exit is an error.
    pub async fn run(self) -> Result<Output, ExecError> {
        let argv = self.argv();
        tracing::trace!(%argv, "running");
        let mut cmd = tokio::process::Command::new(&self.program);
        cmd.args(&self.args)
            .env("LC_ALL", "C")
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(if self.stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let mut child = cmd.spawn().map_err(|source| ExecError::Spawn {
            argv: argv.clone(),
            source,
        })?;
        if let (Some(data), Some(mut pipe)) = (self.stdin, child.stdin.take()) {
            // A tool that exits without reading stdin closes the pipe; its
            // exit status then tells what happened, so a write error here
            // is not the interesting one.
            let _ = pipe.write_all(&data).await;
            drop(pipe);
        }
        let out = match tokio::time::timeout(self.timeout, child.wait_with_output()).await {
            Ok(r) => r.map_err(|source| ExecError::Spawn {
                argv: argv.clone(),
                source,
            })?,
            // Dropping the future drops the child, which kill_on_drop kills.
            Err(_) => {
                return Err(ExecError::TimedOut {
                    argv,
                    timeout: self.timeout,
                })
            }
        };
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        if out.status.success() {
            Ok(Output { stdout, stderr })
        } else {
            Err(ExecError::Failed {
                argv,
                status: out.status.to_string(),
                code: out.status.code(),
                stderr: trim_stderr(&stderr),
            })
        }
    }
}

/// Keeps the end of stderr (where tools say what finally went wrong) on
/// one line.
fn trim_stderr(s: &str) -> String {
    let s = s.trim();
    let tail = if s.len() > STDERR_KEEP {
        let mut start = s.len() - STDERR_KEEP;
        while !s.is_char_boundary(start) {
            start += 1;
        }
        &s[start..]
    } else {
        s
    };
    tail.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(" | ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn failure_carries_argv_status_and_stderr() {
        let sh = Tool::resolve("sh").expect("sh is on every unix");
        let err = sh
            .command()
            .args(["-c", "echo oops >&2; exit 3"])
            .run()
            .await
            .expect_err("exit 3 is a failure");
        assert_eq!(err.exit_code(), Some(3));
        assert_eq!(err.stderr(), "oops");
        let msg = err.to_string();
        assert!(msg.contains("'echo oops >&2; exit 3'"), "{msg}");
    }

    #[tokio::test]
    async fn timeout_kills() {
        let sleep = Tool::resolve("sleep").expect("sleep is in coreutils");
        let err = sleep
            .command()
            .arg("5")
            .timeout(Duration::from_millis(100))
            .run()
            .await
            .expect_err("must time out");
        assert!(matches!(err, ExecError::TimedOut { .. }), "{err}");
    }

    #[tokio::test]
    async fn locale_is_c_and_stdin_is_fed() {
        let sh = Tool::resolve("sh").expect("sh is on every unix");
        let out = sh
            .command()
            .args(["-c", "read x; echo \"$LC_ALL $x\""])
            .stdin("hi\n")
            .run()
            .await
            .expect("runs");
        assert_eq!(out.stdout.trim(), "C hi");
    }

    #[test]
    fn missing_tool_is_named() {
        let err = Tool::resolve("kiln-no-such-tool").expect_err("absent");
        assert!(err.to_string().contains("kiln-no-such-tool"));
    }
}
