//! `kpl decode`: every option and every error path, against the real binary. Expected
//! values come from format.md by hand.

mod common;

use common::*;
use serde_json::{json, Value};

/// The worked example's user records, by hand from format.md section 2: pk "a" data "x"
/// ssn 0; pk "b" ehk "123" data "yz" ssn 1; pk "a" data "" ssn 2.
fn worked_users(seq: Option<&str>) -> Vec<Value> {
    let mut users = vec![
        json!({"PartitionKey": "a", "ExplicitHashKey": null, "Data": "eA==", "SubSequenceNumber": 0, "Aggregated": true}),
        json!({"PartitionKey": "b", "ExplicitHashKey": "123", "Data": "eXo=", "SubSequenceNumber": 1, "Aggregated": true}),
        json!({"PartitionKey": "a", "ExplicitHashKey": null, "Data": "", "SubSequenceNumber": 2, "Aggregated": true}),
    ];
    if let Some(seq) = seq {
        for user in &mut users {
            user["SequenceNumber"] = json!(seq);
        }
    }
    users
}

fn plain(pk: &str, data: &[u8], seq: Option<&str>) -> Value {
    let mut v = json!({"PartitionKey": pk, "ExplicitHashKey": null, "Data": b64(data), "SubSequenceNumber": 0, "Aggregated": false});
    if let Some(seq) = seq {
        v["SequenceNumber"] = json!(seq);
    }
    v
}

const SEQ1: &str = "49590338271490256608559692538361571095921575989136588898";
const SEQ2: &str = "49590338271490256608559692540925702759324208523137515618";

#[test]
fn the_spec_md5_of_the_worked_example_is_right() {
    use md5::{Digest, Md5};
    assert_eq!(
        Md5::digest(unhex(WORKED_PROTOBUF_HEX)).to_vec(),
        unhex(WORKED_MD5_HEX)
    );
}

#[test]
fn raw_worked_example() {
    let run = kpl(&["decode"], &worked_example());
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.stderr, "");
    assert_eq!(run.json_lines(), worked_users(None));
    // One compact JSON object per line, no SequenceNumber for raw input.
    assert_eq!(run.stdout.lines().count(), 3);
    assert!(!run.stdout.contains("\"SequenceNumber\""));
}

#[test]
fn explicit_raw_format_and_strict_policy_accept_the_worked_example() {
    let run = kpl(
        &["decode", "--from", "raw", "--policy", "strict"],
        &worked_example(),
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.json_lines(), worked_users(None));
}

#[test]
fn base64_input_ignores_surrounding_whitespace() {
    let text = format!("\n  {}  \r\n\n", b64(&worked_example()));
    let run = kpl(&["decode", "--from", "base64"], text.as_bytes());
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.json_lines(), worked_users(None));
}

#[test]
fn base64_input_may_be_wrapped_like_the_base64_tool_prints_it() {
    let text = b64(&worked_example());
    let wrapped = format!("{}\n{}\n", &text[..40], &text[40..]);
    let run = kpl(&["decode", "--from", "base64"], wrapped.as_bytes());
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.json_lines(), worked_users(None));
}

#[test]
fn hex_input_is_case_insensitive_and_ignores_whitespace() {
    let text = format!(
        "  {}\n",
        format!("{MAGIC_HEX}{WORKED_PROTOBUF_HEX}{WORKED_MD5_HEX}").to_uppercase()
    );
    let run = kpl(&["decode", "--from", "hex"], text.as_bytes());
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.json_lines(), worked_users(None));
}

#[test]
fn file_argument_and_dash_for_stdin() {
    let path = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("decode-worked.bin");
    std::fs::write(&path, worked_example()).unwrap();
    let run = kpl(&["decode", path.to_str().unwrap()], b"ignored stdin");
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.json_lines(), worked_users(None));

    let run = kpl(&["decode", "-"], &worked_example());
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.json_lines(), worked_users(None));
}

#[test]
fn plain_record_takes_the_partition_key_option() {
    let run = kpl(&["decode", "--partition-key", "pk-1"], b"hello");
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.json_lines(), vec![plain("pk-1", b"hello", None)]);
    // Default: the empty string.
    let run = kpl(&["decode"], b"hello");
    assert_eq!(run.json_lines(), vec![plain("", b"hello", None)]);
    // Also for base64 and hex input.
    let run = kpl(
        &["decode", "--from", "hex", "--partition-key", "k"],
        b"68656C6C6F",
    );
    assert_eq!(run.json_lines(), vec![plain("k", b"hello", None)]);
    let run = kpl(
        &["decode", "--from", "base64", "--partition-key", "k"],
        b"aGVsbG8=",
    );
    assert_eq!(run.json_lines(), vec![plain("k", b"hello", None)]);
}

#[test]
fn empty_input_is_one_empty_plain_record() {
    let run = kpl(&["decode"], b"");
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.json_lines(), vec![plain("", b"", None)]);
}

#[test]
fn aggregated_record_ignores_the_outer_partition_key() {
    let run = kpl(&["decode", "--partition-key", "outer"], &worked_example());
    assert_eq!(run.json_lines(), worked_users(None));
}

#[test]
fn lambda_event_every_record_with_sequence_numbers() {
    let event = lambda_event(&[("a", &worked_example(), SEQ1), ("p2", b"hello", SEQ2)]);
    let run = kpl(&["decode", "--from", "lambda"], event.as_bytes());
    assert_eq!(run.code, 0, "{}", run.stderr);
    let mut expected = worked_users(Some(SEQ1));
    expected.push(plain("p2", b"hello", Some(SEQ2)));
    assert_eq!(run.json_lines(), expected);
}

#[test]
fn get_records_output_every_record_with_sequence_numbers() {
    let output = get_records_output(&[("p2", b"hello", SEQ2), ("a", &worked_example(), SEQ1)]);
    let run = kpl(&["decode", "--from", "get-records"], output.as_bytes());
    assert_eq!(run.code, 0, "{}", run.stderr);
    let mut expected = vec![plain("p2", b"hello", Some(SEQ2))];
    expected.extend(worked_users(Some(SEQ1)));
    assert_eq!(run.json_lines(), expected);
}

#[test]
fn empty_records_arrays_print_nothing() {
    for (format, input) in [
        ("lambda", r#"{"Records":[]}"#),
        ("get-records", r#"{"Records":[],"NextShardIterator":null}"#),
    ] {
        let run = kpl(&["decode", "--from", format], input.as_bytes());
        assert_eq!(run.code, 0, "{format}: {}", run.stderr);
        assert_eq!(run.stdout, "");
    }
}

#[test]
fn kcl_passes_a_bad_md5_through_as_plain_data() {
    let bad = worked_example_bad_md5();
    let run = kpl(&["decode", "--partition-key", "outer"], &bad);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.json_lines(), vec![plain("outer", &bad, None)]);
    let run = kpl(&["decode", "--policy", "kcl"], &bad);
    assert_eq!(run.json_lines(), vec![plain("", &bad, None)]);
}

#[test]
fn strict_reports_a_bad_md5_after_printing_earlier_records() {
    let event = lambda_event(&[
        ("a", &worked_example(), SEQ1),
        ("a", &worked_example_bad_md5(), SEQ2),
        ("p", b"never reached", "3"),
    ]);
    let run = kpl(
        &["decode", "--from", "lambda", "--policy", "strict"],
        event.as_bytes(),
    );
    let line = run.one_error_line(1);
    // The digest starts at byte 4 + 34 = 38.
    let prefix =
        format!("kpl: record 1 (sequence number {SEQ2}): strict: Md5Mismatch at byte 38: ");
    assert!(line.starts_with(&prefix), "{line}");
    assert!(line.contains("MD5"), "{line}");
    assert_eq!(run.json_lines(), worked_users(Some(SEQ1)));
}

#[test]
fn strict_error_without_sequence_number_names_the_record_index() {
    let run = kpl(&["decode", "--policy", "strict"], &worked_example_bad_md5());
    let line = run.one_error_line(1);
    assert!(
        line.starts_with("kpl: record 0: strict: Md5Mismatch at byte 38: "),
        "{line}"
    );
    assert_eq!(run.stdout, "");
}

#[test]
fn no_verify_skips_the_md5_check_under_both_policies() {
    for policy in ["kcl", "strict"] {
        let run = kpl(
            &["decode", "--no-verify", "--policy", policy],
            &worked_example_bad_md5(),
        );
        assert_eq!(run.code, 0, "{policy}: {}", run.stderr);
        assert_eq!(run.json_lines(), worked_users(None), "{policy}");
    }
}

#[test]
fn strict_accepts_plain_records() {
    let run = kpl(
        &["decode", "--policy", "strict", "--partition-key", "p"],
        b"plain",
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.json_lines(), vec![plain("p", b"plain", None)]);
}

#[test]
fn magic_with_16_bytes_or_fewer() {
    // 20 bytes: the magic and 16 bytes. KCL: raw; strict: TooShort at byte 4.
    let mut data = unhex(MAGIC_HEX);
    data.extend_from_slice(&[0u8; 16]);
    let run = kpl(&["decode"], &data);
    assert_eq!(run.json_lines(), vec![plain("", &data, None)]);
    let run = kpl(&["decode", "--policy", "strict"], &data);
    let line = run.one_error_line(1);
    assert!(
        line.starts_with("kpl: record 0: strict: TooShort at byte 4: "),
        "{line}"
    );
}

#[test]
fn shard_range_full_range_keeps_everything() {
    let run = kpl(
        &[
            "decode",
            "--shard-range",
            "0-340282366920938463463374607431768211455",
        ],
        &worked_example(),
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.json_lines(), worked_users(None));
}

#[test]
fn shard_range_is_inclusive() {
    // Effective hash keys (section 3): records 0 and 2 have pk "a" -> HASH_KEY_A; record 1
    // has the explicit hash key 123. [123, hash("a")] holds all three, ends included.
    let range = format!("123-{HASH_KEY_A}");
    let run = kpl(&["decode", "--shard-range", &range], &worked_example());
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.json_lines(), worked_users(None));
}

#[test]
fn shard_range_drops_the_whole_aggregate_under_kcl() {
    // hash("a") - 1 = 16955237001963240173058271559858726496: excludes records 0 and 2;
    // [124, max] excludes record 1 (after record 0 was emitted: taken back too).
    let below_a = "0-16955237001963240173058271559858726496";
    let above_123 = "124-340282366920938463463374607431768211455";
    for range in [below_a, above_123, "0-1000", "5-5"] {
        let run = kpl(&["decode", "--shard-range", range], &worked_example());
        assert_eq!(run.code, 0, "{range}: {}", run.stderr);
        assert_eq!(run.stdout, "", "{range}");
    }
}

#[test]
fn shard_range_under_strict_is_an_error_at_the_record() {
    // [0, 1000] misses "a"'s hash key: the first record, whose tag is at byte 15.
    let run = kpl(
        &["decode", "--policy", "strict", "--shard-range", "0-1000"],
        &worked_example(),
    );
    let line = run.one_error_line(1);
    assert!(
        line.starts_with("kpl: record 0: strict: OutsideShardRange at byte 15: "),
        "{line}"
    );
}

#[test]
fn shard_range_never_filters_plain_records() {
    let run = kpl(
        &["decode", "--shard-range", "0-0", "--partition-key", "p"],
        b"plain",
    );
    assert_eq!(run.json_lines(), vec![plain("p", b"plain", None)]);
}

#[test]
fn bad_shard_ranges_are_usage_errors() {
    for range in [
        "5-3",
        "abc",
        "1-",
        "-5",
        "1-2-3",
        "1..2",
        "+1-2",
        "0-340282366920938463463374607431768211456",
        "",
    ] {
        let run = kpl(&["decode", "--shard-range", range], &worked_example());
        let line = run.one_error_line(2);
        assert!(line.contains("--shard-range"), "{range:?}: {line}");
        assert_eq!(run.stdout, "");
    }
}

#[test]
fn index_out_of_range_keeps_earlier_records_under_kcl() {
    let data = frame(OUT_OF_RANGE_PROTOBUF_HEX);
    let run = kpl(&["decode"], &data);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(
        run.json_lines(),
        vec![
            json!({"PartitionKey": "a", "ExplicitHashKey": null, "Data": "eA==", "SubSequenceNumber": 0, "Aggregated": true})
        ]
    );
}

#[test]
fn index_out_of_range_is_a_strict_error_at_the_record() {
    let data = frame(OUT_OF_RANGE_PROTOBUF_HEX);
    let run = kpl(&["decode", "--policy", "strict"], &data);
    let line = run.one_error_line(1);
    assert!(
        line.starts_with("kpl: record 0: strict: PartitionKeyIndexOutOfRange at byte 14: "),
        "{line}"
    );
    assert_eq!(run.stdout, "");
}

#[test]
fn keys_that_are_not_utf8_are_printed_losslessly() {
    let data = frame(BAD_UTF8_PROTOBUF_HEX);
    let run = kpl(&["decode"], &data);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(
        run.json_lines(),
        vec![
            json!({"PartitionKey": "\u{FFFD}", "PartitionKeyBase64": "/w==", "ExplicitHashKey": null, "Data": "eA==", "SubSequenceNumber": 0, "Aggregated": true}),
            json!({"PartitionKey": "b", "ExplicitHashKey": null, "Data": "eQ==", "SubSequenceNumber": 1, "Aggregated": true}),
        ]
    );
    // Strict: the table entry's tag, at byte 4.
    let run = kpl(&["decode", "--policy", "strict"], &data);
    let line = run.one_error_line(1);
    assert!(
        line.starts_with("kpl: record 0: strict: InvalidUtf8 at byte 4: "),
        "{line}"
    );
}

#[test]
fn unparseable_protobuf_is_passed_through_under_kcl_and_an_error_under_strict() {
    // A record whose length runs past the end: 1a 05 08 00.
    let data = frame("1a050800");
    let run = kpl(&["decode"], &data);
    assert_eq!(run.json_lines(), vec![plain("", &data, None)]);
    let run = kpl(&["decode", "--policy", "strict"], &data);
    let line = run.one_error_line(1);
    assert!(
        line.starts_with("kpl: record 0: strict: Truncated at byte 4: "),
        "{line}"
    );
}

#[test]
fn bad_inputs_exit_2_with_one_clear_line() {
    let cases: Vec<(Vec<&str>, Vec<u8>, &str)> = vec![
        (vec!["decode", "--from", "lambda"], br#"{"records":[]}"#.to_vec(), "Records"),
        (vec!["decode", "--from", "lambda"], b"{not json".to_vec(), "JSON"),
        (vec!["decode", "--from", "lambda"], b"".to_vec(), "JSON"),
        (vec!["decode", "--from", "lambda"], br#"{"Records":{}}"#.to_vec(), "Records"),
        (
            vec!["decode", "--from", "lambda"],
            br#"{"Records":[{"eventID":"x"}]}"#.to_vec(),
            "Records[0]",
        ),
        (
            vec!["decode", "--from", "lambda"],
            br#"{"Records":[{"kinesis":{"partitionKey":"a","data":"eA=="}},{"kinesis":{"partitionKey":"a","data":"!!"}}]}"#.to_vec(),
            "Records[1].kinesis.data",
        ),
        (
            vec!["decode", "--from", "lambda"],
            br#"{"Records":[{"kinesis":{"data":"eA=="}}]}"#.to_vec(),
            "partitionKey",
        ),
        (
            vec!["decode", "--from", "lambda"],
            get_records_output(&[("a", b"x", "1")]).into_bytes(),
            "get-records",
        ),
        (
            vec!["decode", "--from", "get-records"],
            br#"{"NextShardIterator":"x"}"#.to_vec(),
            "Records",
        ),
        (
            vec!["decode", "--from", "get-records"],
            br#"{"Records":[{"PartitionKey":"a"}]}"#.to_vec(),
            "Data",
        ),
        (
            vec!["decode", "--from", "get-records"],
            br#"{"Records":[{"PartitionKey":"a","Data":"%%%"}]}"#.to_vec(),
            "Records[0].Data",
        ),
        (
            vec!["decode", "--from", "get-records"],
            lambda_event(&[("a", b"x", "1")]).into_bytes(),
            "lambda",
        ),
        (vec!["decode", "--from", "hex"], b"abc".to_vec(), "odd"),
        (vec!["decode", "--from", "hex"], b"zz".to_vec(), "'z'"),
        (vec!["decode", "--from", "base64"], b"eA=!".to_vec(), "base64"),
        (
            vec!["decode", "--from", "lambda", "--partition-key", "p"],
            lambda_event(&[("a", b"x", "1")]).into_bytes(),
            "--partition-key",
        ),
        (
            vec!["decode", "--from", "get-records", "--partition-key", "p"],
            get_records_output(&[("a", b"x", "1")]).into_bytes(),
            "--partition-key",
        ),
        (vec!["decode", "--from", "xml"], b"".to_vec(), "xml"),
        (vec!["decode", "--policy", "lenient"], b"".to_vec(), "lenient"),
        (vec!["decode", "--bogus"], b"".to_vec(), "--bogus"),
        (vec!["decode", "a", "b"], b"".to_vec(), "'b'"),
        (vec!["frobnicate"], b"".to_vec(), "frobnicate"),
    ];
    for (args, stdin, needle) in cases {
        let run = kpl(&args, &stdin);
        let line = run.one_error_line(2);
        assert!(line.contains(needle), "{args:?}: {line:?} lacks {needle:?}");
        assert_eq!(run.stdout, "", "{args:?}");
    }
}

#[test]
fn unreadable_file_names_the_file() {
    let missing = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("no-such-file.bin");
    let run = kpl(&["decode", missing.to_str().unwrap()], b"");
    let line = run.one_error_line(2);
    assert!(line.contains("no-such-file.bin"), "{line}");
    // A directory cannot be read as a file either.
    let run = kpl(&["decode", env!("CARGO_TARGET_TMPDIR")], b"");
    run.one_error_line(2);
}

#[test]
fn help_explains_the_formats_and_the_lossless_keys() {
    let run = kpl(&["decode", "--help"], b"");
    assert_eq!(run.code, 0);
    for needle in [
        "raw",
        "base64",
        "hex",
        "lambda",
        "get-records",
        "partitionKey",
        "NextShardIterator",
        "PartitionKeyBase64",
        "U+FFFD",
        "SubSequenceNumber",
        "SequenceNumber",
        "--policy",
        "--no-verify",
        "--shard-range",
        "--partition-key",
        "strict",
        "EXIT CODES",
    ] {
        assert!(
            run.stdout.contains(needle),
            "decode --help lacks {needle:?}"
        );
    }
    let run = kpl(&["decode", "-h"], b"");
    assert_eq!(run.code, 0);
    assert!(run.stdout.contains("--help"));
}

#[test]
fn no_subcommand_is_a_usage_error() {
    let run = kpl(&[], b"");
    assert_eq!(run.code, 2);
    assert!(run.stderr.contains("decode"));
}
