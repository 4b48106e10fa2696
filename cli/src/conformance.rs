//! `kpl conformance`: the golden vectors against the built-in implementation and any
//! adapters named.

use std::io::Write;
use std::time::Duration;

use kpl_conformance::adapter::AdapterProcess;
use kpl_conformance::{expectations, peer, Report};

use crate::args::ConformanceArgs;
use crate::error::{CliError, Stop, EXIT_DEFECT};

/// Runs the corpus against kpl-codec and every adapter and writes the matrix; fails
/// (exit 1) when a built-in check fails or an adapter's results differ from its
/// expectations.
pub fn run(args: &ConformanceArgs, out: &mut dyn Write) -> Result<(), Stop> {
    if args.bench {
        return bench(args, out);
    }
    let dir = args.corpus.clone().unwrap_or_else(kpl_vectors::corpus_dir);
    let mut vectors = kpl_vectors::load_dir(&dir)
        .map_err(|e| CliError::input(format!("cannot load the vectors: {e}")))?;
    if args.corpus.is_none() {
        // The vectors captured from real peers (the real Java KPL's output) too.
        vectors.extend(
            kpl_vectors::load_captured()
                .map_err(|e| CliError::input(format!("cannot load the vectors: {e}")))?,
        );
    }
    let mut report = kpl_conformance::run_builtin(&vectors);
    let builtin_failures = report.failures().count();
    let expectations_dir = args.expectations.clone().unwrap_or_else(|| {
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../conformance/expectations")
    });
    let mut surprises = Vec::new();
    let mut versions = Vec::new();
    for spec in &args.adapters {
        let (name, command) = adapter_spec(spec)?;
        let mut adapter = AdapterProcess::new(command, Duration::from_secs(args.timeout));
        let hello = peer::hello(&mut adapter)
            .map_err(|e| CliError::input(format!("adapter {name}: hello failed: {e}")))?;
        versions.push(format!("{name}: {} {}", hello.name, hello.version));
        let mut own = Report::default();
        for outcome in peer::run(&mut adapter, &hello, name, &vectors) {
            own.push(outcome);
        }
        let expected = expectations::load(&expectations_dir.join(format!("{name}.json")))
            .map_err(CliError::input)?;
        surprises.extend(expectations::surprises(&own, &expected));
        for outcome in own.outcomes() {
            report.push(outcome.clone());
        }
    }
    writeln!(
        out,
        "kpl conformance: {} vectors from {}",
        vectors.len(),
        dir.display()
    )
    .map_err(Stop::from)?;
    for v in &versions {
        writeln!(out, "adapter {v}").map_err(Stop::from)?;
    }
    write!(out, "\n{}", report.render_text()).map_err(Stop::from)?;
    if !surprises.is_empty() {
        writeln!(out, "\nResults that differ from the expectations files:").map_err(Stop::from)?;
        for (key, what) in &surprises {
            writeln!(out, "- {key}: {what}").map_err(Stop::from)?;
        }
    }
    if let Some(dir) = &args.report {
        write_report(dir, &report, &versions, &surprises, vectors.len())?;
    }
    if builtin_failures > 0 || !surprises.is_empty() {
        return Err(Stop::Error(CliError {
            exit_code: EXIT_DEFECT,
            message: format!(
                "{builtin_failures} built-in checks failed, {} adapter results differ from their expectations",
                surprises.len()
            ),
        }));
    }
    Ok(())
}

/// Parses `NAME=COMMAND`.
fn adapter_spec(spec: &str) -> Result<(&str, &str), CliError> {
    spec.split_once('=')
        .ok_or_else(|| CliError::input(format!("--adapter {spec:?}: expected NAME=COMMAND")))
}

/// `--bench`: the same corpus through kpl-codec and every adapter, in one run.
fn bench(args: &ConformanceArgs, out: &mut dyn Write) -> Result<(), Stop> {
    use kpl_conformance::bench_corpus::{build, SHAPES};
    use kpl_conformance::throughput;

    let corpus = build(&SHAPES[0]);
    let path = std::env::temp_dir().join(format!("kpl-bench-corpus-{}.ndjson", std::process::id()));
    throughput::write_corpus(&corpus.records, &path)
        .map_err(|e| CliError::input(format!("cannot write {}: {e}", path.display())))?;
    let mut rows = vec![throughput::builtin(&corpus.records, args.iterations)];
    for spec in &args.adapters {
        let (name, command) = adapter_spec(spec)?;
        let mut adapter = AdapterProcess::new(command, Duration::from_secs(args.timeout.max(600)));
        let hello = peer::hello(&mut adapter)
            .map_err(|e| CliError::input(format!("adapter {name}: hello failed: {e}")))?;
        let label = format!("{name} ({} {})", hello.name, hello.version);
        rows.push(throughput::adapter(
            &mut adapter,
            &label,
            &path,
            args.iterations,
        ));
    }
    let _ = std::fs::remove_file(&path);
    writeln!(
        out,
        "kpl conformance --bench: {} Kinesis records, {} bytes, {} user records, {} iterations; KCL-style decoding with MD5\n",
        corpus.records.len(),
        corpus.bytes,
        corpus.users.len(),
        args.iterations
    )
    .map_err(Stop::from)?;
    write!(
        out,
        "{}",
        throughput::render(&rows, corpus.bytes as u64, args.iterations)
    )
    .map_err(Stop::from)?;
    Ok(())
}

/// Writes `REPORT.md` and `report.json` into `dir`.
fn write_report(
    dir: &std::path::Path,
    report: &Report,
    versions: &[String],
    surprises: &[(String, String)],
    vectors: usize,
) -> Result<(), CliError> {
    let mut md = format!(
        "# Conformance report\n\nGenerated by `kpl conformance` on {} from {vectors} vectors \
         (`vectors/corpus`). Implementations checked: kpl-codec (built in)",
        kpl_conformance::today()
    );
    for v in versions {
        md.push_str(&format!("; {v}"));
    }
    md.push_str(
        ".\n\nCells are checks passed / checks run. Failures listed in \
        `conformance/expectations/<adapter>.json` are known divergences, each with its reason.\n\n",
    );
    md.push_str(&report.render_text());
    if !surprises.is_empty() {
        md.push_str("\nResults that differ from the expectations files:\n");
        for (key, what) in surprises {
            md.push_str(&format!("- {key}: {what}\n"));
        }
    }
    let write = |name: &str, text: String| {
        std::fs::write(dir.join(name), text)
            .map_err(|e| CliError::input(format!("cannot write {}: {e}", dir.join(name).display())))
    };
    write("REPORT.md", md)?;
    write("report.json", format!("{:#}\n", report.to_json()))
}
