//! The CLI's one error type and the exit code each error means.

use std::path::PathBuf;

/// How `kiln` exits.
///
/// - 0: done;
/// - 1: the daemon refused or failed the request, a job failed or was
///   cancelled, `backup verify` found damage, or kilnd could not be reached;
/// - 2: usage: bad flags or arguments, a bad size or volume spec, a
///   refused confirmation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// The command did what it was asked.
    Done,
    /// The daemon refused or failed, or could not be reached.
    Failed,
    /// The command line was wrong, or a confirmation was refused.
    Usage,
}

impl Exit {
    /// The process exit status.
    pub fn code(self) -> u8 {
        match self {
            Exit::Done => 0,
            Exit::Failed => 1,
            Exit::Usage => 2,
        }
    }
}

impl From<Exit> for std::process::ExitCode {
    fn from(exit: Exit) -> Self {
        std::process::ExitCode::from(exit.code())
    }
}

/// Everything that can stop a `kiln` command.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// The command line is wrong in a way clap could not see.
    #[error("{message}")]
    Usage {
        /// What is wrong and what to do instead.
        message: String,
    },

    /// A destructive command was not confirmed.
    #[error("{action}: not confirmed, nothing done")]
    NotConfirmed {
        /// What would have been done (`delete volume "data"`).
        action: String,
    },

    /// A destructive command found no terminal to ask on and no `--yes`.
    #[error("refusing to {action} without confirmation: no terminal to ask on; pass --yes")]
    NoTerminal {
        /// What would have been done (`delete volume "data"`).
        action: String,
    },

    /// The daemon answered with an error status.
    #[error("{message} ({code})")]
    Api {
        /// The HTTP status.
        status: u16,
        /// The API's stable machine code (`conflict`, `not_found`, ...).
        code: String,
        /// The daemon's human message.
        message: String,
        /// The request id the daemon logged the failure under.
        request_id: Option<String>,
    },

    /// The daemon could not be reached.
    #[error("cannot connect to kilnd at {endpoint}: {source}")]
    Connect {
        /// The socket path or `host:port` tried.
        endpoint: String,
        /// Why the connection failed.
        #[source]
        source: std::io::Error,
    },

    /// The connection broke while a request was in flight.
    #[error("request {method} {path} to kilnd failed")]
    Http {
        /// The request's method.
        method: String,
        /// The request's path.
        path: String,
        /// What hyper reported.
        #[source]
        source: hyper::Error,
    },

    /// The daemon answered in a way the CLI does not understand.
    #[error("unexpected answer from kilnd to {method} {path}: {reason}")]
    BadResponse {
        /// The request's method.
        method: String,
        /// The request's path.
        path: String,
        /// What was wrong with the answer.
        reason: String,
    },

    /// An answer's JSON is not the object the API describes.
    #[error("cannot read the daemon's {what}")]
    Unreadable {
        /// What was being read (`volume`, `job`, ...).
        what: &'static str,
        /// What serde found wrong.
        #[source]
        source: serde_json::Error,
    },

    /// A job ended in `failed`.
    #[error("{kind} job {id} failed: {message}")]
    JobFailed {
        /// The job's kind (`backup`, `restore`, `gc`, `verify`).
        kind: String,
        /// The job's id.
        id: String,
        /// The job's error message.
        message: String,
    },

    /// A job ended in `cancelled`.
    #[error("{kind} job {id} was cancelled")]
    JobCancelled {
        /// The job's kind.
        kind: String,
        /// The job's id.
        id: String,
    },

    /// `backup verify` found damaged blocks (already printed).
    #[error("backup {backup} failed verification: {damaged} damaged block(s)")]
    Damaged {
        /// The backup's id.
        backup: String,
        /// How many blocks are damaged.
        damaged: usize,
    },

    /// Reading an answer from the terminal or writing output failed.
    #[error("cannot use the terminal")]
    Terminal(#[source] std::io::Error),

    /// The async runtime could not be started.
    #[error("cannot start the async runtime")]
    Runtime(#[source] std::io::Error),

    /// The socket path is not usable.
    #[error("socket path {path} is not valid: {reason}")]
    SocketPath {
        /// The path given.
        path: PathBuf,
        /// Why it cannot be used.
        reason: String,
    },
}

impl CliError {
    /// The exit code this error means.
    pub fn exit(&self) -> Exit {
        match self {
            CliError::Usage { .. }
            | CliError::NotConfirmed { .. }
            | CliError::NoTerminal { .. }
            | CliError::SocketPath { .. } => Exit::Usage,
            CliError::Api { .. }
            | CliError::Connect { .. }
            | CliError::Http { .. }
            | CliError::BadResponse { .. }
            | CliError::Unreadable { .. }
            | CliError::JobFailed { .. }
            | CliError::JobCancelled { .. }
            | CliError::Damaged { .. }
            | CliError::Terminal(_)
            | CliError::Runtime(_) => Exit::Failed,
        }
    }

    /// The error and each of its causes, one per line, as printed.
    pub fn report(&self) -> String {
        let mut out = format!("error: {self}");
        if let CliError::Api {
            status: 500,
            request_id: Some(id),
            ..
        } = self
        {
            // The message of an internal error points at the daemon log,
            // where the detail is filed under this id.
            out.push_str(&format!("\n  request id: {id}"));
        }
        let mut cause = std::error::Error::source(self);
        while let Some(err) = cause {
            // Some messages already end with their cause; print it once.
            let text = err.to_string();
            if !out.ends_with(&text) {
                out.push_str(&format!("\n  caused by: {text}"));
            }
            cause = err.source();
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_errors_exit_1_and_name_the_code() {
        let err = CliError::Api {
            status: 409,
            code: "conflict".into(),
            message: "volume \"data\" is attached to sb1".into(),
            request_id: Some("req-1".into()),
        };
        assert_eq!(err.exit(), Exit::Failed);
        assert_eq!(
            err.report(),
            "error: volume \"data\" is attached to sb1 (conflict)"
        );
    }

    #[test]
    fn usage_and_refusals_exit_2() {
        let usage = CliError::Usage {
            message: "bad".into(),
        };
        let refused = CliError::NoTerminal {
            action: "delete volume \"data\"".into(),
        };
        let declined = CliError::NotConfirmed {
            action: "delete volume \"data\"".into(),
        };
        assert_eq!(usage.exit(), Exit::Usage);
        assert_eq!(refused.exit(), Exit::Usage);
        assert_eq!(declined.exit(), Exit::Usage);
        assert_eq!(Exit::Usage.code(), 2);
    }

    #[test]
    fn connection_failures_exit_1_and_name_the_socket_and_cause_once() {
        let err = CliError::Connect {
            endpoint: "./kiln-data/kiln.sock".into(),
            source: std::io::Error::new(std::io::ErrorKind::NotFound, "no such file"),
        };
        assert_eq!(err.exit(), Exit::Failed);
        assert_eq!(
            err.report(),
            "error: cannot connect to kilnd at ./kiln-data/kiln.sock: no such file"
        );
    }

    #[test]
    fn causes_are_printed_one_per_line() {
        let err = CliError::Terminal(std::io::Error::other("broken pipe"));
        assert_eq!(
            err.report(),
            "error: cannot use the terminal\n  caused by: broken pipe"
        );
    }

    #[test]
    fn damaged_backups_and_failed_jobs_exit_1() {
        let damaged = CliError::Damaged {
            backup: "bk-1".into(),
            damaged: 2,
        };
        let failed = CliError::JobFailed {
            kind: "backup".into(),
            id: "job-1".into(),
            message: "target unreachable".into(),
        };
        assert_eq!(damaged.exit(), Exit::Failed);
        assert_eq!(failed.exit(), Exit::Failed);
        assert_eq!(Exit::Done.code(), 0);
    }
}
