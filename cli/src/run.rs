//! From the command line to an exit code.

use std::ffi::OsString;

use clap::Parser;

use crate::args::Cli;
use crate::commands;
use crate::error::{CliError, Exit};

/// Parses `args` (the program name first), runs the command and answers
/// the exit code. Errors are printed to stderr with their causes, one per
/// line; output goes to stdout.
pub fn run<I, T>(args: I) -> Exit
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let cli = match Cli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(err) => {
            // --help and --version come here too, and are not failures.
            let _ = err.print();
            return if err.exit_code() == 0 {
                Exit::Done
            } else {
                Exit::Usage
            };
        }
    };

    let outcome = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(CliError::Runtime)
        .and_then(|runtime| runtime.block_on(commands::run(cli)));

    match outcome {
        Ok(()) => Exit::Done,
        Err(err) => {
            eprintln!("{}", err.report());
            if let CliError::Connect { .. } = err {
                eprintln!(
                    "  hint: is kilnd running? Point kiln at it with --socket or KILN_SOCKET, \
                     or --url or KILN_URL"
                );
            }
            err.exit()
        }
    }
}
