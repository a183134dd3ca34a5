//! The `kiln` binary: parses the command line, runs it, and exits with
//! the code documented in `kiln --help` and docs/cli.md.

fn main() -> std::process::ExitCode {
    kiln_cli::run(std::env::args_os()).into()
}
