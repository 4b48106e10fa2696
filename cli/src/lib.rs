//! The `kpl` command-line tool, as a library so that it can be tested: argument parsing
//! ([`args`]), input formats ([`input`]), NDJSON shapes ([`output`]) and the subcommands
//! ([`decode`], [`encode`], [`inspect`], [`conformance`], [`put`], [`tail`]). All the format logic is kpl-codec's.
#![deny(missing_docs)]
#![forbid(unsafe_code)]

pub mod args;
pub mod conformance;
pub mod decode;
pub mod encode;
pub mod error;
pub mod input;
pub mod inspect;
pub mod output;
pub mod preflight;
pub mod put;
pub mod serve;
pub mod status;
pub mod tail;

use std::io::{Read, Write};

pub use args::{Cli, Command};
pub use error::{CliError, Stop, EXIT_DEFECT, EXIT_OK, EXIT_USAGE};

/// Runs a parsed command line against the given standard input and output.
pub fn run(cli: &Cli, stdin: &mut dyn Read, out: &mut dyn Write) -> Result<(), Stop> {
    match &cli.command {
        Command::Decode(args) => decode::run(args, stdin, out),
        Command::Encode(args) => encode::run(args, stdin, out),
        Command::Inspect(args) => inspect::run(args, stdin, out),
        Command::Conformance(args) => conformance::run(args, out),
        Command::Put(args) => put::run(args, stdin, out),
        Command::Tail(args) => tail::run(args, out),
        Command::Serve(args) => serve::run(args, out),
    }
}

/// Runs `kpl` with these arguments (the first is the program name) and returns the exit
/// code; errors go to `err` as one line, `kpl: <message>`.
pub fn main_with<I, T>(
    args: I,
    stdin: &mut dyn Read,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> i32
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    use clap::error::ErrorKind;
    use clap::Parser as _;

    let cli = match Cli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(e) => match e.kind() {
            ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => {
                let _ = write!(out, "{}", e.render());
                return EXIT_OK;
            }
            ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
                let _ = write!(err, "{}", e.render());
                return EXIT_USAGE;
            }
            _ => {
                let rendered = e.render().to_string();
                let first = rendered
                    .lines()
                    .find(|line| !line.trim().is_empty())
                    .unwrap_or("bad usage");
                let first = first.strip_prefix("error: ").unwrap_or(first);
                let _ = writeln!(err, "kpl: {first} (see --help)");
                return EXIT_USAGE;
            }
        },
    };
    match run(&cli, stdin, out) {
        Ok(()) | Err(Stop::BrokenPipe) => EXIT_OK,
        Err(Stop::Error(e)) => {
            let _ = out.flush();
            let _ = writeln!(err, "kpl: {e}");
            e.exit_code
        }
    }
}
