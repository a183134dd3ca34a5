//! Asking before destructive commands.
//!
//! A destructive command (volume delete, backup-delete, in-place restore,
//! sandbox destroy) asks `y/N` when stdin is a terminal. Without a
//! terminal it never guesses: it refuses unless `--yes` was given, so a
//! script that forgot `--yes` fails (exit 2) instead of deleting data.

use std::io::{BufRead, IsTerminal, Write};

use crate::error::CliError;

/// Where an answer could come from.
pub enum Asker<'a> {
    /// A person at a terminal: the prompt goes to `prompt`, the answer
    /// is read from `answer`.
    Terminal {
        /// Where the question is written.
        prompt: &'a mut dyn Write,
        /// Where the answer is read.
        answer: &'a mut dyn BufRead,
    },
    /// Nobody to ask.
    Nobody,
}

/// Confirms `action` (`delete volume "data"`) on the process's terminal.
pub fn confirm(action: &str, yes: bool) -> Result<(), CliError> {
    if yes {
        return Ok(());
    }
    let stdin = std::io::stdin();
    if !stdin.is_terminal() {
        return confirm_with(action, false, Asker::Nobody);
    }
    let mut stderr = std::io::stderr();
    let mut lock = stdin.lock();
    confirm_with(
        action,
        false,
        Asker::Terminal {
            prompt: &mut stderr,
            answer: &mut lock,
        },
    )
}

/// Confirms `action`: done if `yes`, asked if there is someone to ask,
/// refused otherwise. Only `y` or `yes` (any case) confirms.
pub fn confirm_with(action: &str, yes: bool, asker: Asker<'_>) -> Result<(), CliError> {
    if yes {
        return Ok(());
    }
    let Asker::Terminal { prompt, answer } = asker else {
        return Err(CliError::NoTerminal {
            action: action.to_owned(),
        });
    };
    write!(prompt, "{action}? [y/N] ").map_err(CliError::Terminal)?;
    prompt.flush().map_err(CliError::Terminal)?;
    let mut line = String::new();
    answer.read_line(&mut line).map_err(CliError::Terminal)?;
    match line.trim().to_ascii_lowercase().as_str() {
        "y" | "yes" => Ok(()),
        _ => Err(CliError::NotConfirmed {
            action: action.to_owned(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Exit;

    #[test]
    fn without_a_terminal_and_without_yes_it_refuses_with_exit_2() {
        let err = confirm_with("delete volume \"data\"", false, Asker::Nobody)
            .expect_err("nobody confirmed");
        assert_eq!(err.exit(), Exit::Usage);
        assert_eq!(
            err.to_string(),
            "refusing to delete volume \"data\" without confirmation: no terminal to ask on; pass --yes"
        );
    }

    #[test]
    fn yes_needs_no_terminal() {
        assert!(confirm_with("delete volume \"data\"", true, Asker::Nobody).is_ok());
    }

    fn ask(typed: &str) -> (Result<(), CliError>, String) {
        let mut prompt = Vec::new();
        let mut answer = typed.as_bytes();
        let result = confirm_with(
            "delete volume \"data\"",
            false,
            Asker::Terminal {
                prompt: &mut prompt,
                answer: &mut answer,
            },
        );
        (result, String::from_utf8_lossy(&prompt).into_owned())
    }

    #[test]
    fn on_a_terminal_y_confirms_and_anything_else_declines() {
        let (result, prompt) = ask("y\n");
        assert!(result.is_ok());
        assert_eq!(prompt, "delete volume \"data\"? [y/N] ");
        assert!(ask("YES\n").0.is_ok());
        for no in ["\n", "n\n", "no\n", "yess\n", ""] {
            let err = ask(no).0.expect_err(no);
            assert_eq!(err.exit(), Exit::Usage, "{no:?}");
        }
    }
}
