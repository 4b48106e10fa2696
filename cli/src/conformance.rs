//! `kpl conformance`: the golden vectors against the built-in implementation.

use std::io::Write;

use crate::args::ConformanceArgs;
use crate::error::{CliError, Stop, EXIT_DEFECT};

/// Runs the corpus against kpl-codec and writes the matrix; fails (exit 1) when any check
/// fails.
pub fn run(args: &ConformanceArgs, out: &mut dyn Write) -> Result<(), Stop> {
    let dir = args.corpus.clone().unwrap_or_else(kpl_vectors::corpus_dir);
    let vectors = kpl_vectors::load_dir(&dir)
        .map_err(|e| CliError::input(format!("cannot load the vectors: {e}")))?;
    let report = kpl_conformance::run_builtin(&vectors);
    write!(
        out,
        "kpl conformance: {} vectors from {}\n\n{}",
        vectors.len(),
        dir.display(),
        report.render_text()
    )
    .map_err(Stop::from)?;
    let failed = report.failures().count();
    if failed > 0 {
        return Err(Stop::Error(CliError {
            exit_code: EXIT_DEFECT,
            message: format!("{failed} checks failed"),
        }));
    }
    Ok(())
}
