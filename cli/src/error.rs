//! The one error type of the CLI: a one-line message and the exit code it calls for.

use std::fmt;

/// Exit code for success.
pub const EXIT_OK: i32 = 0;
/// Exit code for a defect found under `--policy strict`.
pub const EXIT_DEFECT: i32 = 1;
/// Exit code for bad usage or bad input.
pub const EXIT_USAGE: i32 = 2;

/// Why `kpl` stops: printed as `kpl: <message>` on one line of standard error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CliError {
    /// The process exit code: [`EXIT_DEFECT`] or [`EXIT_USAGE`].
    pub exit_code: i32,
    /// The message, one line, without the `kpl: ` prefix.
    pub message: String,
}

impl CliError {
    /// Bad usage or bad input (exit code 2).
    pub fn input(message: impl Into<String>) -> Self {
        CliError {
            exit_code: EXIT_USAGE,
            message: one_line(message.into()),
        }
    }

    /// A defect under the strict policy (exit code 1).
    pub fn defect(message: impl Into<String>) -> Self {
        CliError {
            exit_code: EXIT_DEFECT,
            message: one_line(message.into()),
        }
    }
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for CliError {}

/// Keeps a message on one line (messages from serde or the OS could hold line breaks).
fn one_line(message: String) -> String {
    if message.contains(['\n', '\r']) {
        message
            .split(['\n', '\r'])
            .map(str::trim)
            .filter(|part| !part.is_empty())
            .collect::<Vec<_>>()
            .join(" ")
    } else {
        message
    }
}

/// Outcome of writing to standard output: a closed pipe (`kpl decode | head`) ends the
/// run quietly; any other write error is reported.
#[derive(Debug)]
pub enum Stop {
    /// A real error to report.
    Error(CliError),
    /// The reader went away: stop quietly.
    BrokenPipe,
}

impl From<CliError> for Stop {
    fn from(error: CliError) -> Self {
        Stop::Error(error)
    }
}

impl From<std::io::Error> for Stop {
    fn from(error: std::io::Error) -> Self {
        if error.kind() == std::io::ErrorKind::BrokenPipe {
            Stop::BrokenPipe
        } else {
            Stop::Error(CliError::input(format!(
                "cannot write to standard output: {error}"
            )))
        }
    }
}
