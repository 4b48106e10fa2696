//! `kpl conformance`: the golden vectors against the built-in implementation and any
//! adapters named.

use std::io::Write;
use std::time::Duration;

use kpl_conformance::adapter::AdapterProcess;
use kpl_conformance::capture::{self, Answers, Capture};
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
    if let Some(dir) = &args.capture_decoders {
        return capture_decoders(args, dir, &vectors, out);
    }
    // Stored decoder captures are of the default corpus: not compared with another one.
    let captures = match (&args.captures, &args.corpus) {
        (Some(dir), _) => Some(dir.clone()),
        (None, None) => Some(capture::default_dir()),
        (None, Some(_)) => None,
    };
    let mut report = kpl_conformance::run_builtin(&vectors);
    let builtin_failures = report.failures().count();
    let expectations_dir = args.expectations.clone().unwrap_or_else(|| {
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../conformance/expectations")
    });
    let mut surprises = Vec::new();
    let mut versions = Vec::new();
    let mut capture_lines = Vec::new();
    for spec in &args.adapters {
        let (name, command) = adapter_spec(spec)?;
        let mut adapter = AdapterProcess::new(command, Duration::from_secs(args.timeout));
        let hello = peer::hello(&mut adapter)
            .map_err(|e| CliError::input(format!("adapter {name}: hello failed: {e}")))?;
        versions.push(format!("{name}: {} {}", hello.name, hello.version));
        let mut own = Report::default();
        let mut answers = Answers::new();
        for outcome in peer::run_recording(&mut adapter, &hello, name, &vectors, &mut answers) {
            own.push(outcome);
        }
        let expected = expectations::load(&expectations_dir.join(format!("{name}.json")))
            .map_err(CliError::input)?;
        surprises.extend(expectations::surprises(&own, &expected));
        if let Some(dir) = &captures {
            let (line, changed) = compare_with_capture(dir, name, &hello, &answers)?;
            capture_lines.push(line);
            surprises.extend(changed);
        }
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
    for line in &capture_lines {
        writeln!(out, "{line}").map_err(Stop::from)?;
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

/// Compares an adapter's live decode answers with its stored capture, if it has one:
/// returns a line for the header and the differences, keyed
/// `<vector> [<name> (<policy>)] as captured`.
fn compare_with_capture(
    dir: &std::path::Path,
    name: &str,
    hello: &peer::Hello,
    answers: &Answers,
) -> Result<(String, Vec<(String, String)>), CliError> {
    let path = dir.join(format!("{name}.json"));
    let Some(stored) = Capture::load(&path).map_err(CliError::input)? else {
        let line = if answers.is_empty() {
            format!("capture {name}: decodes nothing")
        } else {
            format!("capture {name}: none stored ({})", path.display())
        };
        return Ok((line, Vec::new()));
    };
    let mut changed = Vec::new();
    let (stored_name, stored_version) = stored.name_version();
    if (stored_name.as_str(), stored_version.as_str())
        != (hello.name.as_str(), hello.version.as_str())
    {
        changed.push((
            format!("{name} as captured"),
            format!(
                "now {} {}, the capture of {} is of {stored_name} {stored_version}: re-run vectors/capture/decoders/capture.sh",
                hello.name, hello.version, stored.date
            ),
        ));
    }
    let differences = capture::differences(&stored, answers);
    let requests: usize = answers.values().map(|p| p.len()).sum();
    let line = format!(
        "capture {name}: {} of {requests} decode answers as in the capture of {} ({})",
        requests.saturating_sub(differences.len()),
        stored.date,
        path.display()
    );
    for capture::Difference {
        vector,
        policy,
        what,
    } in differences
    {
        changed.push((
            format!("{vector} [{name} ({policy})] as captured"),
            format!("answer changed: {what}"),
        ));
    }
    Ok((line, changed))
}

/// `--capture-decoders DIR`: every decode vector through every decoding adapter, each
/// adapter's answers written to `DIR/<NAME>.json`, kpl-codec's to `DIR/kpl-codec.json`.
fn capture_decoders(
    args: &ConformanceArgs,
    dir: &std::path::Path,
    vectors: &[kpl_vectors::Vector],
    out: &mut dyn Write,
) -> Result<(), Stop> {
    let decode_vectors: Vec<_> = vectors
        .iter()
        .filter(|v| matches!(v.case, kpl_vectors::Case::Decode(_)))
        .cloned()
        .collect();
    std::fs::create_dir_all(dir)
        .map_err(|e| CliError::input(format!("cannot create {}: {e}", dir.display())))?;
    let date = kpl_conformance::today();
    let mut captures = vec![Capture {
        adapter: capture::BUILTIN_FILE.to_string(),
        implementation: serde_json::json!({"name": "kpl-codec", "version": env!("CARGO_PKG_VERSION"),
                                           "language": "rust", "policies": ["kcl", "strict"]}),
        date: date.clone(),
        method: "kpl conformance --capture-decoders (built-in kpl-codec, no adapter)".into(),
        answers: capture::builtin_answers(&decode_vectors),
    }];
    for spec in &args.adapters {
        let (name, command) = adapter_spec(spec)?;
        let mut adapter = AdapterProcess::new(command, Duration::from_secs(args.timeout));
        let hello = peer::hello(&mut adapter)
            .map_err(|e| CliError::input(format!("adapter {name}: hello failed: {e}")))?;
        if !hello.decode {
            writeln!(
                out,
                "{name}: {} {} does not decode, nothing to capture",
                hello.name, hello.version
            )
            .map_err(Stop::from)?;
            continue;
        }
        let mut answers = Answers::new();
        peer::run_recording(&mut adapter, &hello, name, &decode_vectors, &mut answers);
        captures.push(Capture {
            adapter: name.to_string(),
            implementation: hello.raw.clone(),
            date: date.clone(),
            method: format!("kpl conformance --capture-decoders --adapter {name}=<{command}>"),
            answers,
        });
    }
    for c in &captures {
        let path = dir.join(format!("{}.json", c.adapter));
        std::fs::write(&path, c.to_text())
            .map_err(|e| CliError::input(format!("cannot write {}: {e}", path.display())))?;
        let mut kinds: std::collections::BTreeMap<String, usize> = Default::default();
        for a in c.answers.values().flat_map(|p| p.values()) {
            let kind = a
                .as_object()
                .and_then(|o| o.keys().next())
                .cloned()
                .unwrap_or_default();
            *kinds.entry(kind).or_default() += 1;
        }
        let (name, version) = c.name_version();
        writeln!(
            out,
            "wrote {} ({name} {version}): {kinds:?}",
            path.display()
        )
        .map_err(Stop::from)?;
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
        if !hello.decode {
            // An encoder only (say the real KPL): there is no decoding to time.
            continue;
        }
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
