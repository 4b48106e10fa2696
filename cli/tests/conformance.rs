//! `kpl conformance`: the built-in implementation against the golden corpus.

mod common;

use common::kpl;

fn corpus() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../vectors/corpus")
}

#[test]
fn the_corpus_passes_and_the_matrix_is_printed() {
    let run = kpl(&["conformance"], b"");
    assert_eq!(run.code, 0, "{}", run.stderr);
    for row in [
        "| kpl-codec |",
        "| kpl-codec (kcl) |",
        "| kpl-codec (strict) |",
    ] {
        assert!(run.stdout.contains(row), "{}", run.stdout);
    }
    assert!(run.stdout.contains("checks passed."), "{}", run.stdout);
}

#[test]
fn a_wrong_expectation_fails_and_is_named() {
    // A copy of one decode vector whose expected data for the first user record is changed:
    // the run must fail and name the vector.
    let dir = std::env::temp_dir().join(format!("kpl-conformance-test-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("decode")).unwrap();
    let source = corpus().join("decode/kcl-zero-records.json");
    let mut vector: serde_json::Value =
        serde_json::from_slice(&std::fs::read(source).unwrap()).unwrap();
    // Expect one made-up record where the vector (rightly) expects none.
    let made_up = serde_json::json!({
        "partition_key": "x", "explicit_hash_key": null, "data": "", "sub_sequence_number": 0,
        "aggregated": true, "hash_key": "0"
    });
    vector["expected"]["kcl"]["records"] = serde_json::json!([made_up]);
    std::fs::write(
        dir.join("decode/tampered.json"),
        serde_json::to_vec(&vector).unwrap(),
    )
    .unwrap();
    let run = kpl(&["conformance", "--corpus", dir.to_str().unwrap()], b"");
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(run.code, 1, "{}", run.stdout);
    assert!(
        run.stdout
            .contains("- decode/tampered [kpl-codec (kcl)]: 0 user records, expected 1"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.contains("| kpl-codec (kcl) | 0/1 |"),
        "{}",
        run.stdout
    );
}

#[test]
fn a_missing_corpus_is_an_input_error() {
    let run = kpl(&["conformance", "--corpus", "/nonexistent/kpl-corpus"], b"");
    let line = run.one_error_line(2);
    assert!(line.contains("cannot load the vectors"), "{line}");
}

#[test]
fn adapters_are_checked_and_a_bad_one_is_an_error() {
    let run = kpl(&["conformance", "--adapter", "no-equals-sign"], b"");
    let line = run.one_error_line(2);
    assert!(line.contains("NAME=COMMAND"), "{line}");
    // An adapter that exits at once cannot say hello.
    let run = kpl(&["conformance", "--adapter", "gone=exit 0"], b"");
    let line = run.one_error_line(2);
    assert!(line.contains("adapter gone: hello failed"), "{line}");
}

#[test]
fn bench_prints_the_throughput_table() {
    let run = kpl(&["conformance", "--bench", "--iterations", "1"], b"");
    assert_eq!(run.code, 0, "{}", run.stderr);
    // The benchmarks' small shape: 100 user records per aggregate.
    assert!(
        run.stdout.contains("18200 user records, 1 iterations"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.contains("| kpl-codec (in process) |"),
        "{}",
        run.stdout
    );
    assert!(run.stdout.contains("| 1.00 |"), "{}", run.stdout);
}

#[test]
fn report_writes_markdown_and_json() {
    let dir = std::env::temp_dir().join(format!("kpl-report-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let run = kpl(&["conformance", "--report", dir.to_str().unwrap()], b"");
    assert_eq!(run.code, 0, "{}", run.stderr);
    let md = std::fs::read_to_string(dir.join("REPORT.md")).unwrap();
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("report.json")).unwrap()).unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    assert!(md.starts_with("# Conformance report"), "{md}");
    let outcomes = json.as_array().unwrap();
    assert!(
        md.contains(&format!("All {} checks passed.", outcomes.len())),
        "{md}"
    );
    assert!(outcomes.iter().all(|o| o["passed"] == true));
}
