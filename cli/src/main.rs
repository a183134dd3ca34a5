//! The `kiln` binary: parses the command line, runs it, and exits with
//! the code documented in `kiln --help` and docs/cli.md.

fn main() -> std::process::ExitCode {
    // Rust ignores SIGPIPE, which turns `kiln volume list | head -1` into
    // a panic on the first write after `head` exits. Like other Unix
    // tools, end quietly instead.
    // SAFETY: called first in main, before any thread exists; SIG_DFL is
    // a valid disposition for SIGPIPE.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    kiln_cli::run(std::env::args_os()).into()
}
