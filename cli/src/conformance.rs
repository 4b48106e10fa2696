//! `kpl conformance`: the golden vectors against the built-in implementation and any
//! adapters named. The runs are `kpl_conformance::run`'s; this reads the arguments and
//! prints.

use std::io::Write;
use std::time::Duration;

use kpl_conformance::run::{self, AdapterSpec, RunError, Settings};

use crate::args::ConformanceArgs;
use crate::error::{CliError, Stop, EXIT_DEFECT};

/// Runs the corpus against kpl-codec and every adapter and writes the matrix; fails
/// (exit 1) when a built-in check fails or an adapter's results differ from its
/// expectations.
pub fn run(args: &ConformanceArgs, out: &mut dyn Write) -> Result<(), Stop> {
    let settings = settings(args)?;
    if args.bench {
        let bench = run::bench(&settings, args.iterations).map_err(input)?;
        write!(out, "{}", bench.render_text()).map_err(Stop::from)?;
        return Ok(());
    }
    if let Some(dir) = &args.capture_decoders {
        let captures = run::capture_decoders(&settings, dir).map_err(input)?;
        write!(out, "{}", captures.render_text()).map_err(Stop::from)?;
        return Ok(());
    }
    let matrix = run::matrix(&settings).map_err(input)?;
    write!(out, "{}", matrix.render_text()).map_err(Stop::from)?;
    if let Some(dir) = &args.report {
        matrix.write_report(dir).map_err(input)?;
    }
    if !matrix.passed() {
        return Err(Stop::Error(CliError {
            exit_code: EXIT_DEFECT,
            message: format!(
                "{} built-in checks failed, {} adapter results differ from their expectations",
                matrix.builtin_failures,
                matrix.surprises.len()
            ),
        }));
    }
    Ok(())
}

/// The run's settings from the arguments.
fn settings(args: &ConformanceArgs) -> Result<Settings, CliError> {
    Ok(Settings {
        corpus: args.corpus.clone(),
        adapters: args
            .adapters
            .iter()
            .map(|spec| adapter_spec(spec))
            .collect::<Result<_, _>>()?,
        timeout: Duration::from_secs(args.timeout),
        expectations: args.expectations.clone(),
        captures: args.captures.clone(),
    })
}

/// Parses `--adapter NAME=COMMAND`.
fn adapter_spec(spec: &str) -> Result<AdapterSpec, CliError> {
    let (name, command) = spec
        .split_once('=')
        .ok_or_else(|| CliError::input(format!("--adapter {spec:?}: expected NAME=COMMAND")))?;
    Ok(AdapterSpec {
        name: name.to_string(),
        command: command.to_string(),
    })
}

/// A run that could not be made: bad input (exit 2).
fn input(error: RunError) -> CliError {
    CliError::input(error.to_string())
}
