//! Whole conformance runs, as `kpl conformance` makes them: the matrix of the corpus through
//! kpl-codec and every adapter, each adapter compared with its expectations file and its
//! stored decoder capture ([`matrix`]); the decode answers of every decoder captured
//! ([`capture_decoders`]); decoding timed on the same machine ([`bench()`]).
//!
//! Each returns what it found; the caller decides what to print and how to exit.
//!
//! ```
//! use kpl_conformance::run::{matrix, Settings};
//!
//! let run = matrix(&Settings::default())?;
//! assert!(run.passed(), "{}", run.render_text());
//! assert!(run.render_text().contains("| kpl-codec (kcl) |"));
//! # Ok::<(), kpl_conformance::run::RunError>(())
//! ```

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use kpl_vectors::{Case, Vector};

use crate::adapter::AdapterProcess;
use crate::capture::{self, Answers, Capture};
use crate::throughput::{self, Throughput};
use crate::{expectations, peer, Report};

/// An implementation behind an adapter (`conformance/PROTOCOL.md`): its name (which names
/// its expectations and capture files) and the command that starts it (`sh -c COMMAND`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdapterSpec {
    /// The name, e.g. `kpl` or `aws-kinesis-agg-python`.
    pub name: String,
    /// The command, run as `sh -c COMMAND`.
    pub command: String,
}

/// What a run covers and where it finds its files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// The corpus directory; `None` for the vectors this crate was built with, plus the
    /// vectors captured from real peers.
    pub corpus: Option<PathBuf>,
    /// The adapters to check besides kpl-codec, in order.
    pub adapters: Vec<AdapterSpec>,
    /// How long to wait for each adapter answer.
    pub timeout: Duration,
    /// Where `<name>.json` lists each adapter's known divergences; `None` for
    /// [`expectations::default_dir`].
    pub expectations: Option<PathBuf>,
    /// Where each adapter's stored decoder capture is; `None` for
    /// [`capture::default_dir`] with the default corpus, and no comparison with another.
    pub captures: Option<PathBuf>,
}

impl Default for Settings {
    /// The default corpus, no adapter, 20 s per answer.
    fn default() -> Self {
        Settings {
            corpus: None,
            adapters: Vec::new(),
            timeout: Duration::from_secs(20),
            expectations: None,
            captures: None,
        }
    }
}

/// Why a run could not be made. Every variant is about the run's inputs or files, not
/// about a check's result (that is in the [`Report`]).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum RunError {
    /// The corpus could not be loaded.
    Vectors(String),
    /// An adapter did not answer `hello` as the protocol says.
    Hello {
        /// The adapter's name.
        adapter: String,
        /// What went wrong.
        message: String,
    },
    /// An expectations file could not be read.
    Expectations(String),
    /// A stored capture could not be read.
    Capture(String),
    /// A file or directory could not be written.
    Write {
        /// The file or directory.
        path: PathBuf,
        /// The error.
        message: String,
    },
}

impl fmt::Display for RunError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RunError::Vectors(e) => write!(f, "cannot load the vectors: {e}"),
            RunError::Hello { adapter, message } => {
                write!(f, "adapter {adapter}: hello failed: {message}")
            }
            RunError::Expectations(e) | RunError::Capture(e) => f.write_str(e),
            RunError::Write { path, message } => {
                write!(f, "cannot write {}: {message}", path.display())
            }
        }
    }
}

impl std::error::Error for RunError {}

/// The corpus `settings` names: its directory and its vectors.
pub fn load_vectors(settings: &Settings) -> Result<(PathBuf, Vec<Vector>), RunError> {
    let dir = settings
        .corpus
        .clone()
        .unwrap_or_else(kpl_vectors::corpus_dir);
    let mut vectors = kpl_vectors::load_dir(&dir).map_err(|e| RunError::Vectors(e.to_string()))?;
    if settings.corpus.is_none() {
        // The vectors captured from real peers (the real Java KPL's output) too.
        vectors.extend(kpl_vectors::load_captured().map_err(|e| RunError::Vectors(e.to_string()))?);
    }
    Ok((dir, vectors))
}

/// Starts an adapter and reads its `hello`.
fn start(spec: &AdapterSpec, timeout: Duration) -> Result<(AdapterProcess, peer::Hello), RunError> {
    let mut adapter = AdapterProcess::new(&spec.command, timeout);
    let hello = peer::hello(&mut adapter).map_err(|message| RunError::Hello {
        adapter: spec.name.clone(),
        message,
    })?;
    Ok((adapter, hello))
}

/// The result of [`matrix`].
#[derive(Debug, Clone)]
pub struct MatrixRun {
    /// The corpus directory.
    pub corpus_dir: PathBuf,
    /// How many vectors were run.
    pub vectors: usize,
    /// Every outcome: kpl-codec's, then each adapter's.
    pub report: Report,
    /// How many of kpl-codec's own checks failed.
    pub builtin_failures: usize,
    /// `<name>: <implementation> <version>` of each adapter, as it said hello.
    pub versions: Vec<String>,
    /// One line per adapter on its stored decoder capture (when captures are compared).
    pub capture_lines: Vec<String>,
    /// Results that differ from the expectations files or from the stored captures:
    /// `(key, what)`.
    pub surprises: Vec<(String, String)>,
}

impl MatrixRun {
    /// Whether every kpl-codec check passed and every adapter result is as expected.
    pub fn passed(&self) -> bool {
        self.builtin_failures == 0 && self.surprises.is_empty()
    }

    /// The text `kpl conformance` prints: the corpus, the adapters' versions, the capture
    /// lines, the matrix with its failures, and the surprises.
    pub fn render_text(&self) -> String {
        let mut out = format!(
            "kpl conformance: {} vectors from {}\n",
            self.vectors,
            self.corpus_dir.display()
        );
        for v in &self.versions {
            out.push_str(&format!("adapter {v}\n"));
        }
        for line in &self.capture_lines {
            out.push_str(line);
            out.push('\n');
        }
        out.push('\n');
        out.push_str(&self.report.render_text());
        if !self.surprises.is_empty() {
            out.push_str("\nResults that differ from the expectations files:\n");
            for (key, what) in &self.surprises {
                out.push_str(&format!("- {key}: {what}\n"));
            }
        }
        out
    }

    /// `REPORT.md`: the matrix, the implementations' versions and today's date.
    pub fn render_markdown(&self) -> String {
        let mut md = format!(
            "# Conformance report\n\nGenerated by `kpl conformance` on {} from {} vectors \
             (`vectors/corpus`). Implementations checked: kpl-codec (built in)",
            crate::today(),
            self.vectors
        );
        for v in &self.versions {
            md.push_str(&format!("; {v}"));
        }
        md.push_str(
            ".\n\nCells are checks passed / checks run. Failures listed in \
            `conformance/expectations/<adapter>.json` are known divergences, each with its reason.\n\n",
        );
        md.push_str(&self.report.render_text());
        if !self.surprises.is_empty() {
            md.push_str("\nResults that differ from the expectations files:\n");
            for (key, what) in &self.surprises {
                md.push_str(&format!("- {key}: {what}\n"));
            }
        }
        md
    }

    /// Writes `REPORT.md` ([`render_markdown`](Self::render_markdown)) and `report.json`
    /// (every outcome) into `dir`, which must exist.
    pub fn write_report(&self, dir: &Path) -> Result<(), RunError> {
        write(&dir.join("REPORT.md"), self.render_markdown())?;
        write(
            &dir.join("report.json"),
            format!("{:#}\n", self.report.to_json()),
        )
    }
}

/// Writes a file, naming it in the error.
fn write(path: &Path, text: String) -> Result<(), RunError> {
    std::fs::write(path, text).map_err(|e| RunError::Write {
        path: path.to_path_buf(),
        message: e.to_string(),
    })
}

/// Runs the corpus through kpl-codec and every adapter; compares each adapter's results
/// with its expectations file and its live decode answers with its stored capture.
pub fn matrix(settings: &Settings) -> Result<MatrixRun, RunError> {
    let (corpus_dir, vectors) = load_vectors(settings)?;
    // Stored decoder captures are of the default corpus: not compared with another one.
    let captures = match (&settings.captures, &settings.corpus) {
        (Some(dir), _) => Some(dir.clone()),
        (None, None) => Some(capture::default_dir()),
        (None, Some(_)) => None,
    };
    let expectations_dir = settings
        .expectations
        .clone()
        .unwrap_or_else(expectations::default_dir);
    let mut report = crate::run_builtin(&vectors);
    let builtin_failures = report.failures().count();
    let mut surprises = Vec::new();
    let mut versions = Vec::new();
    let mut capture_lines = Vec::new();
    for spec in &settings.adapters {
        let name = spec.name.as_str();
        let (mut adapter, hello) = start(spec, settings.timeout)?;
        versions.push(format!("{name}: {} {}", hello.name, hello.version));
        let mut own = Report::default();
        let mut answers = Answers::new();
        for outcome in peer::run_recording(&mut adapter, &hello, name, &vectors, &mut answers) {
            own.push(outcome);
        }
        let expected = expectations::load(&expectations_dir.join(format!("{name}.json")))
            .map_err(RunError::Expectations)?;
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
    Ok(MatrixRun {
        corpus_dir,
        vectors: vectors.len(),
        report,
        builtin_failures,
        versions,
        capture_lines,
        surprises,
    })
}

/// Compares an adapter's live decode answers with its stored capture, if it has one:
/// returns a line for the header and the differences, keyed
/// `<vector> [<name> (<policy>)] as captured`.
fn compare_with_capture(
    dir: &Path,
    name: &str,
    hello: &peer::Hello,
    answers: &Answers,
) -> Result<(String, Vec<(String, String)>), RunError> {
    let path = dir.join(format!("{name}.json"));
    let Some(stored) = Capture::load(&path).map_err(RunError::Capture)? else {
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

/// The result of [`capture_decoders`].
#[derive(Debug, Clone, Default)]
pub struct DecoderCaptures {
    /// Adapters that do not decode, with the implementation and version they said hello
    /// with: nothing captured.
    pub skipped: Vec<(String, String, String)>,
    /// The files written, kpl-codec's first.
    pub written: Vec<WrittenCapture>,
}

/// One capture file written by [`capture_decoders`].
#[derive(Debug, Clone)]
pub struct WrittenCapture {
    /// The file.
    pub path: PathBuf,
    /// The implementation's name and version.
    pub implementation: (String, String),
    /// How many answers of each kind (`records`, `error`, `crash`, ...).
    pub kinds: BTreeMap<String, usize>,
}

impl DecoderCaptures {
    /// The lines `kpl conformance --capture-decoders` prints.
    pub fn render_text(&self) -> String {
        let mut out = String::new();
        for (adapter, name, version) in &self.skipped {
            out.push_str(&format!(
                "{adapter}: {name} {version} does not decode, nothing to capture\n"
            ));
        }
        for w in &self.written {
            let (name, version) = &w.implementation;
            out.push_str(&format!(
                "wrote {} ({name} {version}): {:?}\n",
                w.path.display(),
                w.kinds
            ));
        }
        out
    }
}

/// Every decode vector of the corpus through every decoding adapter: each adapter's
/// answers written to `dir/<name>.json`, kpl-codec's to `dir/kpl-codec.json` (`dir` is
/// created if need be).
pub fn capture_decoders(settings: &Settings, dir: &Path) -> Result<DecoderCaptures, RunError> {
    let (_, vectors) = load_vectors(settings)?;
    let decode_vectors: Vec<_> = vectors
        .into_iter()
        .filter(|v| matches!(v.case, Case::Decode(_)))
        .collect();
    std::fs::create_dir_all(dir).map_err(|e| RunError::Write {
        path: dir.to_path_buf(),
        message: e.to_string(),
    })?;
    let date = crate::today();
    let mut captures = vec![Capture {
        adapter: capture::BUILTIN_FILE.to_string(),
        implementation: serde_json::json!({"name": "kpl-codec", "version": env!("CARGO_PKG_VERSION"),
                                           "language": "rust", "policies": ["kcl", "strict"]}),
        date: date.clone(),
        method: "kpl conformance --capture-decoders (built-in kpl-codec, no adapter)".into(),
        answers: capture::builtin_answers(&decode_vectors),
    }];
    let mut result = DecoderCaptures::default();
    for spec in &settings.adapters {
        let (mut adapter, hello) = start(spec, settings.timeout)?;
        if !hello.decode {
            result
                .skipped
                .push((spec.name.clone(), hello.name, hello.version));
            continue;
        }
        let mut answers = Answers::new();
        peer::run_recording(
            &mut adapter,
            &hello,
            &spec.name,
            &decode_vectors,
            &mut answers,
        );
        captures.push(Capture {
            adapter: spec.name.clone(),
            implementation: hello.raw.clone(),
            date: date.clone(),
            method: format!(
                "kpl conformance --capture-decoders --adapter {}=<{}>",
                spec.name, spec.command
            ),
            answers,
        });
    }
    for c in &captures {
        let path = dir.join(format!("{}.json", c.adapter));
        write(&path, c.to_text())?;
        let mut kinds: BTreeMap<String, usize> = BTreeMap::new();
        for a in c.answers.values().flat_map(|p| p.values()) {
            let kind = a
                .as_object()
                .and_then(|o| o.keys().next())
                .cloned()
                .unwrap_or_default();
            *kinds.entry(kind).or_default() += 1;
        }
        result.written.push(WrittenCapture {
            path,
            implementation: c.name_version(),
            kinds,
        });
    }
    Ok(result)
}

/// The result of [`bench()`].
#[derive(Debug, Clone)]
pub struct BenchRun {
    /// Kinesis records in the corpus.
    pub records: usize,
    /// Bytes of Kinesis record data in the corpus.
    pub bytes: usize,
    /// User records in the corpus.
    pub user_records: usize,
    /// Times each implementation decoded the corpus.
    pub iterations: u64,
    /// kpl-codec's figure, then each decoding adapter's.
    pub rows: Vec<Throughput>,
}

impl BenchRun {
    /// The text `kpl conformance --bench` prints: the corpus and the table.
    pub fn render_text(&self) -> String {
        format!(
            "kpl conformance --bench: {} Kinesis records, {} bytes, {} user records, {} iterations; KCL-style decoding with MD5\n\n{}",
            self.records,
            self.bytes,
            self.user_records,
            self.iterations,
            throughput::render(&self.rows, self.bytes as u64, self.iterations)
        )
    }
}

/// The benchmarks' `small` corpus decoded `iterations` times by kpl-codec in this process
/// and by every adapter that decodes (each timing itself; an adapter is given at least
/// 10 minutes per answer). `settings.corpus` is not used.
pub fn bench(settings: &Settings, iterations: u64) -> Result<BenchRun, RunError> {
    use crate::bench_corpus::{build, SHAPES};

    let corpus = build(&SHAPES[0]);
    let path = std::env::temp_dir().join(format!("kpl-bench-corpus-{}.ndjson", std::process::id()));
    throughput::write_corpus(&corpus.records, &path).map_err(|e| RunError::Write {
        path: path.clone(),
        message: e.to_string(),
    })?;
    let mut rows = vec![throughput::builtin(&corpus.records, iterations)];
    let timeout = settings.timeout.max(Duration::from_secs(600));
    let adapters = settings.adapters.iter().try_for_each(|spec| {
        let (mut adapter, hello) = start(spec, timeout)?;
        if hello.decode {
            // An encoder only (say the real KPL) has no decoding to time.
            let label = format!("{} ({} {})", spec.name, hello.name, hello.version);
            rows.push(throughput::adapter(&mut adapter, &label, &path, iterations));
        }
        Ok(())
    });
    let _ = std::fs::remove_file(&path);
    adapters?;
    Ok(BenchRun {
        records: corpus.records.len(),
        bytes: corpus.bytes,
        user_records: corpus.users.len(),
        iterations,
        rows,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_corpus_and_a_silent_adapter_are_run_errors() {
        let settings = Settings {
            corpus: Some(PathBuf::from("/nonexistent/kpl-corpus")),
            ..Settings::default()
        };
        assert!(matches!(matrix(&settings), Err(RunError::Vectors(_))));
        let settings = Settings {
            adapters: vec![AdapterSpec {
                name: "gone".into(),
                command: "exit 0".into(),
            }],
            ..Settings::default()
        };
        let error = matrix(&settings).err();
        assert!(
            matches!(&error, Some(RunError::Hello { adapter, .. }) if adapter == "gone"),
            "{error:?}"
        );
    }

    #[test]
    fn an_adapter_that_decodes_nothing_is_listed_and_its_differences_are_surprises() {
        // An encoder-only adapter that refuses every request: each of its results differs
        // from an empty expectations file, and it has no capture to compare with.
        let hello =
            r#"{"ok": true, "name": "fake", "version": "1", "encode": true, "decode": false}"#;
        let refuse = r#"{"ok": false, "error": "no"}"#;
        let command = format!(
            r#"while read -r l; do case "$l" in *'"hello"'*) echo '{hello}';; *) echo '{refuse}';; esac; done"#
        );
        let empty = std::env::temp_dir().join(format!("kpl-run-test-{}", std::process::id()));
        std::fs::create_dir_all(&empty).unwrap();
        let settings = Settings {
            adapters: vec![AdapterSpec {
                name: "fake".into(),
                command,
            }],
            expectations: Some(empty.clone()),
            captures: Some(empty.clone()),
            ..Settings::default()
        };
        let run = matrix(&settings).unwrap();
        let _ = std::fs::remove_dir_all(&empty);
        assert_eq!(run.versions, ["fake: fake 1"]);
        assert_eq!(run.capture_lines, ["capture fake: decodes nothing"]);
        assert_eq!(run.builtin_failures, 0);
        assert!(!run.passed());
        assert!(run
            .surprises
            .iter()
            .all(|(key, what)| key.contains("[fake") && what.starts_with("unexpected failure")));
        let text = run.render_text();
        assert!(text.contains("adapter fake: fake 1\n"), "{text}");
        assert!(
            text.contains("Results that differ from the expectations files:"),
            "{text}"
        );
    }
}
