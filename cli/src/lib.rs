//! `kiln`, the command-line client of kilnd.
//!
//! This crate owns the CLI: its arguments, the HTTP/1.1 client that talks
//! to the daemon over a unix socket or TCP, the tables and JSON it prints,
//! the confirmation of destructive commands and the following of
//! long-running jobs. It talks to kilnd only through the HTTP API
//! (`docs/api.md`) and must not link the service or any backend: the
//! daemon judges every request, and the CLI checks only what it can check
//! better (sizes, `VOL:/mount[:ro]` specs) before sending it.
//!
//! Layout: `args` (the clap command line), `client` (HTTP over the
//! socket or TCP), `api` (the API's objects, read tolerantly), `commands`
//! (one module per command group), `output` (tables, sizes, JSON),
//! `confirm` (asking before destructive commands), `progress` (following
//! jobs), `size` (parsing `--size`), `error` (the error type and the exit
//! codes), `run` (from arguments to exit code).
//!
//! The binary's `main` is [`run`] and an exit code:
//!
//! ```no_run
//! fn main() -> std::process::ExitCode {
//!     kiln_cli::run(std::env::args_os()).into()
//! }
//! ```

#![deny(missing_docs)]

mod api;
mod args;
mod client;
mod commands;
mod confirm;
mod error;
mod output;
mod progress;
mod run;
mod size;

pub use args::VolumeSpec;
pub use error::{CliError, Exit};
pub use run::run;
pub use size::parse_size_mib;
