//! `kpl encode`: KPL's bytes and splits, every option and every error path, against the
//! real binary. Expected values come from format.md by hand.

mod common;

use common::*;
use serde_json::{json, Value};

const WORKED_INPUT: &str = concat!(
    r#"{"PartitionKey":"a","Data":"eA=="}"#,
    "\n",
    r#"{"PartitionKey":"b","ExplicitHashKey":"123","Data":"eXo="}"#,
    "\n",
    r#"{"PartitionKey":"a","Data":""}"#,
    "\n"
);

fn worked_output() -> Value {
    json!({
        "PartitionKey": "a",
        "ExplicitHashKey": HASH_KEY_A,
        "Data": b64(&worked_example()),
    })
}

#[test]
fn worked_example_is_one_aggregate_with_kpls_bytes() {
    let run = kpl(&["encode"], WORKED_INPUT.as_bytes());
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.stderr, "");
    assert_eq!(run.stdout.lines().count(), 1);
    assert_eq!(run.json_lines(), vec![worked_output()]);
}

#[test]
fn blank_lines_null_explicit_hash_key_and_crlf_are_accepted() {
    let input = concat!(
        "\n",
        r#"{"PartitionKey":"a","ExplicitHashKey":null,"Data":"eA=="}"#,
        "\r\n   \n\r\n",
        r#"{"Data":"eXo=","ExplicitHashKey":"123","PartitionKey":"b"}"#,
        "\r\n",
        r#"  {"PartitionKey":"a","Data":""}  "#
    );
    let run = kpl(&["encode"], input.as_bytes());
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.json_lines(), vec![worked_output()]);
}

#[test]
fn file_argument_and_dash() {
    let path = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("encode-worked.ndjson");
    std::fs::write(&path, WORKED_INPUT).unwrap();
    let run = kpl(&["encode", path.to_str().unwrap()], b"");
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.json_lines(), vec![worked_output()]);
    let run = kpl(&["encode", "-"], WORKED_INPUT.as_bytes());
    assert_eq!(run.json_lines(), vec![worked_output()]);
}

#[test]
fn empty_input_prints_nothing() {
    let run = kpl(&["encode"], b"\n\n");
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.stdout, "");
}

#[test]
fn a_lone_record_goes_out_raw_with_its_hash_key() {
    // Section 2.4: one user record: its raw bytes, its key, explicit hash key always set.
    let run = kpl(&["encode"], br#"{"PartitionKey":"a","Data":"eA=="}"#);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(
        run.json_lines(),
        vec![json!({"PartitionKey": "a", "ExplicitHashKey": HASH_KEY_A, "Data": "eA=="})]
    );
    // The user's explicit hash key, canonical (section 2.3).
    let run = kpl(
        &["encode"],
        br#"{"PartitionKey":"k","ExplicitHashKey":"000123","Data":"eXo="}"#,
    );
    assert_eq!(
        run.json_lines(),
        vec![json!({"PartitionKey": "k", "ExplicitHashKey": "123", "Data": "eXo="})]
    );
}

#[test]
fn max_count_splits_after_the_count_is_reached() {
    // Count 2 reached after the second record: the first two go out as an aggregate
    // (the worked example without its third record), the third alone, raw.
    let run = kpl(&["encode", "--max-count", "2"], WORKED_INPUT.as_bytes());
    assert_eq!(run.code, 0, "{}", run.stderr);
    let first = frame("0a01610a01621203313233 1a0508001a0178 1a08080110001a02797a");
    assert_eq!(
        run.json_lines(),
        vec![
            json!({"PartitionKey": "a", "ExplicitHashKey": HASH_KEY_A, "Data": b64(&first)}),
            json!({"PartitionKey": "a", "ExplicitHashKey": HASH_KEY_A, "Data": ""}),
        ]
    );
    // --max-count 1: every record raw.
    let run = kpl(&["encode", "--max-count", "1"], WORKED_INPUT.as_bytes());
    assert_eq!(
        run.json_lines(),
        vec![
            json!({"PartitionKey": "a", "ExplicitHashKey": HASH_KEY_A, "Data": "eA=="}),
            json!({"PartitionKey": "b", "ExplicitHashKey": "123", "Data": "eXo="}),
            json!({"PartitionKey": "a", "ExplicitHashKey": HASH_KEY_A, "Data": ""}),
        ]
    );
}

#[test]
fn max_size_keeps_every_aggregate_within_the_limit() {
    let mut input = String::new();
    for i in 0..40 {
        let data = vec![b'0' + (i % 10) as u8; 30];
        input.push_str(
            &json!({"PartitionKey": format!("k{}", i % 3), "Data": b64(&data)}).to_string(),
        );
        input.push('\n');
    }
    let run = kpl(&["encode", "--max-size", "200"], input.as_bytes());
    assert_eq!(run.code, 0, "{}", run.stderr);
    let lines = run.json_lines();
    assert!(lines.len() > 5, "{} lines", lines.len());
    for line in &lines {
        let data = base64_decode(line["Data"].as_str().unwrap());
        assert!(data.len() <= 200, "{} bytes", data.len());
        assert_eq!(line["PartitionKey"], "a");
    }
}

#[test]
fn bad_limits_exit_2_with_the_codecs_message() {
    for (args, needle) in [
        (
            vec!["encode", "--max-size", "10"],
            "max_size 10 is outside 64..=10485760",
        ),
        (
            vec!["encode", "--max-size", "10485761"],
            "max_size 10485761",
        ),
        (vec!["encode", "--max-count", "0"], "max_count 0"),
        (
            vec!["encode", "--max-count", "4294967296"],
            "max_count 4294967296",
        ),
        (
            vec!["encode", "--max-record-size", "63"],
            "max_record_size 63",
        ),
        (vec!["encode", "--max-size", "-1"], "'-1'"),
        (vec!["encode", "--max-count", "many"], "--max-count"),
    ] {
        let run = kpl(&args, WORKED_INPUT.as_bytes());
        let line = run.one_error_line(2);
        assert!(line.contains(needle), "{args:?}: {line}");
        assert_eq!(run.stdout, "");
    }
}

#[test]
fn a_record_over_the_record_limit_names_its_line() {
    // "a" + 64 bytes = 65 > 64.
    let input = format!(
        "{}\n{}\n",
        r#"{"PartitionKey":"a","Data":"eA=="}"#,
        json!({"PartitionKey": "a", "Data": b64(&[7u8; 64])})
    );
    let run = kpl(&["encode", "--max-record-size", "64"], input.as_bytes());
    let line = run.one_error_line(2);
    assert!(line.starts_with("kpl: line 2: "), "{line}");
    assert!(line.contains("65"), "{line}");
}

#[test]
fn bad_lines_exit_2_naming_the_line_and_the_problem() {
    let good = r#"{"PartitionKey":"a","Data":"eA=="}"#;
    let cases: Vec<(String, &str, &str)> = vec![
        (
            format!("{good}\n{{\"PartitionKey\":\"a\",\"Datta\":\"eA==\"}}\n"),
            "line 2",
            "Datta",
        ),
        (
            format!("{good}\n\n{{\"PartitionKey\":\"a\",\n"),
            "line 3",
            "JSON",
        ),
        (format!("{good}\nnot json\n"), "line 2", "JSON"),
        (format!("{good}\n[1,2]\n"), "line 2", "JSON object"),
        (format!("{good}\n\"text\"\n"), "line 2", "JSON object"),
        (
            format!("{good}\n{{\"PartitionKey\":\"a\",\"Data\":\"e!A=\"}}\n"),
            "line 2",
            "base64",
        ),
        (
            format!("{good}\n{{\"PartitionKey\":\"a\"}}\n"),
            "line 2",
            "Data",
        ),
        (
            format!("{}\n", r#"{"Data":"eA=="}"#),
            "line 1",
            "PartitionKey",
        ),
        (
            format!(
                "{good}\n{{\"PartitionKey\":\"a\",\"ExplicitHashKey\":\"abc\",\"Data\":\"\"}}\n"
            ),
            "line 2",
            "explicit hash key",
        ),
        (
            format!(
                "{}\n",
                r#"{"PartitionKey":"a","ExplicitHashKey":"-1","Data":""}"#
            ),
            "line 1",
            "explicit hash key",
        ),
        (
            format!(
                "{}\n",
                r#"{"PartitionKey":"a","ExplicitHashKey":"340282366920938463463374607431768211456","Data":""}"#
            ),
            "line 1",
            "explicit hash key",
        ),
        (
            format!(
                "{}\n",
                r#"{"PartitionKey":"a","ExplicitHashKey":12,"Data":""}"#
            ),
            "line 1",
            "ExplicitHashKey",
        ),
        (
            format!("{good}\n{good}\n{{\"PartitionKey\":\"\",\"Data\":\"\"}}\n"),
            "line 3",
            "partition key is empty",
        ),
        (
            format!(
                "{{\"PartitionKey\":\"{}\",\"Data\":\"\"}}\n",
                "k".repeat(257)
            ),
            "line 1",
            "257",
        ),
    ];
    for (input, line_tag, needle) in cases {
        let run = kpl(&["encode"], input.as_bytes());
        let line = run.one_error_line(2);
        assert!(
            line.starts_with(&format!("kpl: {line_tag}: ")),
            "{input:?}: {line}"
        );
        assert!(line.contains(needle), "{input:?}: {line} lacks {needle:?}");
    }
}

#[test]
fn a_line_that_is_not_utf8_names_its_line() {
    let mut input = br#"{"PartitionKey":"a","Data":"eA=="}"#.to_vec();
    input.extend_from_slice(b"\n{\"PartitionKey\":\"\xff\",\"Data\":\"\"}\n");
    let run = kpl(&["encode"], &input);
    let line = run.one_error_line(2);
    assert!(line.starts_with("kpl: line 2: "), "{line}");
    assert!(line.contains("UTF-8"), "{line}");
}

#[test]
fn unreadable_file_names_the_file() {
    let missing = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("no-such-input.ndjson");
    let run = kpl(&["encode", missing.to_str().unwrap()], b"");
    let line = run.one_error_line(2);
    assert!(line.contains("no-such-input.ndjson"), "{line}");
}

#[test]
fn help_explains_the_formats() {
    let run = kpl(&["encode", "--help"], b"");
    assert_eq!(run.code, 0);
    for needle in [
        "PartitionKey",
        "ExplicitHashKey",
        "Data",
        "base64",
        "NDJSON",
        "--max-size",
        "--max-count",
        "--max-record-size",
        "EXIT CODES",
    ] {
        assert!(
            run.stdout.contains(needle),
            "encode --help lacks {needle:?}"
        );
    }
}

fn base64_decode(text: &str) -> Vec<u8> {
    use base64::engine::general_purpose::STANDARD;
    use base64::Engine as _;
    STANDARD.decode(text).expect("base64")
}

/// A small deterministic generator (64-bit LCG), so the round trip needs no extra crate.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 >> 33
    }
}

#[test]
fn round_trip_encode_then_decode_with_splits() {
    let keys = ["alpha", "beta", "ключ", "日本", "k", "a", "🦀"];
    let mut rng = Lcg(7);
    let mut users = Vec::new();
    let mut input = String::new();
    for i in 0..300 {
        let pk = keys[(rng.next() % keys.len() as u64) as usize];
        let len = (rng.next() % 60) as usize;
        let data: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
        let ehk = (i % 5 == 0).then(|| format!("{:03}", rng.next() % 1000));
        let mut line = json!({"PartitionKey": pk, "Data": b64(&data)});
        if let Some(ehk) = &ehk {
            line["ExplicitHashKey"] = json!(ehk);
        }
        input.push_str(&line.to_string());
        input.push('\n');
        // Canonical form of the explicit hash key (no leading zeros).
        let canonical = ehk.map(|e| e.parse::<u128>().unwrap().to_string());
        users.push((pk.to_owned(), canonical, data));
    }

    let encoded = kpl(&["encode", "--max-size", "200"], input.as_bytes());
    assert_eq!(encoded.code, 0, "{}", encoded.stderr);
    let kinesis = encoded.json_lines();
    assert!(kinesis.len() > 20, "{} Kinesis records", kinesis.len());
    let records: Vec<(String, Vec<u8>, String)> = kinesis
        .iter()
        .enumerate()
        .map(|(i, k)| {
            let data = base64_decode(k["Data"].as_str().unwrap());
            assert!(data.len() <= 200, "record {i}: {} bytes", data.len());
            (
                k["PartitionKey"].as_str().unwrap().to_owned(),
                data,
                format!("{i}"),
            )
        })
        .collect();
    let shaped: Vec<(&str, &[u8], &str)> = records
        .iter()
        .map(|(pk, data, seq)| (pk.as_str(), data.as_slice(), seq.as_str()))
        .collect();
    let get_records = get_records_output(&shaped);

    let decoded = kpl(
        &["decode", "--from", "get-records", "--policy", "strict"],
        get_records.as_bytes(),
    );
    assert_eq!(decoded.code, 0, "{}", decoded.stderr);
    let out = decoded.json_lines();
    assert_eq!(out.len(), users.len());
    let mut last_seq = None;
    let mut expected_ssn = 0;
    for (i, (line, (pk, ehk, data))) in out.iter().zip(&users).enumerate() {
        assert_eq!(line["PartitionKey"], json!(pk), "user record {i}");
        assert_eq!(
            base64_decode(line["Data"].as_str().unwrap()),
            *data,
            "user record {i}"
        );
        let seq = line["SequenceNumber"].as_str().unwrap().to_owned();
        if last_seq.as_ref() != Some(&seq) {
            expected_ssn = 0;
            last_seq = Some(seq);
        }
        assert_eq!(
            line["SubSequenceNumber"],
            json!(expected_ssn),
            "user record {i}"
        );
        expected_ssn += 1;
        if line["Aggregated"] == json!(true) {
            assert_eq!(line["ExplicitHashKey"], json!(ehk), "user record {i}");
        } else {
            // A lone record travels raw: its explicit hash key is the Kinesis record's,
            // not part of the data.
            assert_eq!(line["ExplicitHashKey"], Value::Null, "user record {i}");
        }
    }
}
