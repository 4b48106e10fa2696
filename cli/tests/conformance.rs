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

/// A decoder behind the protocol that answers every decode request with `answer`.
fn fake_decoder(version: &str, answer: &str) -> String {
    format!(
        r#"while read -r l; do case "$l" in *'"hello"'*) echo '{{"ok": true, "name": "fake", "version": "{version}", "decode": true, "policies": ["native"]}}';; *) echo '{answer}';; esac; done"#
    )
}

#[test]
fn capture_decoders_writes_every_answer_and_the_live_run_reports_changes() {
    let dir = std::env::temp_dir().join(format!("kpl-capture-test-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let spec = format!(
        "fake={}",
        fake_decoder("1", r#"{"ok": true, "records": []}"#)
    );
    let run = kpl(
        &[
            "conformance",
            "--capture-decoders",
            dir.to_str().unwrap(),
            "--adapter",
            &spec,
        ],
        b"",
    );
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    let read = |name: &str| -> serde_json::Value {
        serde_json::from_slice(&std::fs::read(dir.join(name)).unwrap()).unwrap()
    };
    let fake = read("fake.json");
    let ours = read("kpl-codec.json");
    assert_eq!(fake["format"], "kpl-decoder-capture/1");
    assert_eq!(fake["implementation"]["version"], "1");
    let answers = fake["answers"].as_object().unwrap();
    // Every decode vector: the corpus's decode and malformed folders.
    assert_eq!(answers.len(), ours["answers"].as_object().unwrap().len());
    assert!(answers.len() > 80, "{}", answers.len());
    assert_eq!(
        answers["decode/kcl-zero-records"]["native"],
        serde_json::json!({"records": []})
    );
    // kpl-codec under both policies: records for KCL, the strict policy's error text.
    let md5 = &ours["answers"]["malformed/md5-mismatch"];
    assert_eq!(md5["kcl"]["records"][0]["aggregated"], false);
    assert!(
        md5["strict"]["error"]
            .as_str()
            .unwrap()
            .starts_with("Md5Mismatch at byte "),
        "{md5}"
    );

    // The same decoder, a new version that now errors: every change is named.
    let spec = format!(
        "fake={}",
        fake_decoder("2", r#"{"ok": false, "error": "boom"}"#)
    );
    let run = kpl(
        &[
            "conformance",
            "--captures",
            dir.to_str().unwrap(),
            "--adapter",
            &spec,
        ],
        b"",
    );
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(run.code, 1, "{}", run.stdout);
    let date = fake["captured"]["date"].as_str().unwrap();
    for line in [
        format!("- fake as captured: now fake 2, the capture of {date} is of fake 1"),
        format!(
            "- decode/kcl-zero-records [fake (native)] as captured: answer changed: was 0 user \
             records, now error \"boom\" (in the capture of {date})"
        ),
    ] {
        assert!(run.stdout.contains(&line), "{line}\n{}", run.stdout);
    }
    // Only the requests not sent (capabilities the decoder lacks) are unchanged.
    let not_sent = answers
        .values()
        .filter(|a| a["native"].get("not_sent").is_some())
        .count();
    assert!(not_sent > 0 && not_sent < 10, "{not_sent}");
    assert!(
        run.stdout.contains(&format!(
            "capture fake: {not_sent} of {} decode answers as in the capture of {date}",
            answers.len()
        )),
        "{}",
        run.stdout
    );
}
