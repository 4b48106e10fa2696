//! `kpl inspect`: snapshots of the dump (reviewed by eye against format.md), plus checks
//! of its options and error paths.

mod common;

use common::*;

fn inspect(args: &[&str], stdin: &[u8]) -> String {
    let mut full = vec!["inspect"];
    full.extend_from_slice(args);
    let run = kpl(&full, stdin);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.stderr, "");
    run.stdout
}

#[test]
fn snapshot_worked_example() {
    insta::assert_snapshot!("worked_example", inspect(&[], &worked_example()));
}

#[test]
fn snapshot_plain_record() {
    insta::assert_snapshot!(
        "plain_record",
        inspect(&["--partition-key", "pk-1"], b"hello, plain world!\n")
    );
}

#[test]
fn snapshot_bad_md5() {
    insta::assert_snapshot!("bad_md5", inspect(&[], &worked_example_bad_md5()));
}

#[test]
fn snapshot_index_out_of_range() {
    insta::assert_snapshot!(
        "index_out_of_range",
        inspect(&[], &frame(OUT_OF_RANGE_PROTOBUF_HEX))
    );
}

#[test]
fn snapshot_invalid_utf8_key() {
    insta::assert_snapshot!(
        "invalid_utf8_key",
        inspect(&[], &frame(BAD_UTF8_PROTOBUF_HEX))
    );
}

#[test]
fn snapshot_unparseable_protobuf() {
    insta::assert_snapshot!("unparseable_protobuf", inspect(&[], &frame("1a050800")));
}

#[test]
fn snapshot_too_short() {
    let mut data = unhex(MAGIC_HEX);
    data.extend_from_slice(&[0u8; 16]);
    insta::assert_snapshot!("too_short", inspect(&[], &data));
}

#[test]
fn snapshot_lambda_event_with_shard_range() {
    let event = lambda_event(&[
        ("a", &worked_example(), "4959001"),
        ("p", b"\x00\x01binary\xff", "4959002"),
    ]);
    insta::assert_snapshot!(
        "lambda_shard_range",
        inspect(
            &["--from", "lambda", "--shard-range", "0-1000"],
            event.as_bytes()
        )
    );
}

#[test]
fn every_input_format_is_accepted() {
    let worked = worked_example();
    let expected = inspect(&[], &worked);
    let hex: String = worked.iter().map(|b| format!("{b:02X}")).collect();
    assert_eq!(inspect(&["--from", "hex"], hex.as_bytes()), expected);
    assert_eq!(
        inspect(&["--from", "base64"], b64(&worked).as_bytes()),
        expected
    );
    let path = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("inspect-worked.bin");
    std::fs::write(&path, &worked).unwrap();
    assert_eq!(inspect(&[path.to_str().unwrap()], b""), expected);
    let gr = get_records_output(&[("a", &worked, "77")]);
    let out = inspect(&["--from", "get-records"], gr.as_bytes());
    assert!(out.contains("sequence number 77"), "{out}");
    assert!(out.contains("KCL: aggregated: 3 user records"), "{out}");
}

#[test]
fn the_dump_holds_what_the_spec_says() {
    let out = inspect(&[], &worked_example());
    for needle in [
        "length: 54 bytes",
        "magic: present",
        "34 bytes",
        WORKED_MD5_HEX,
        "(match)",
        "\"123\"",
        "strict: OK: 3 user records",
    ] {
        assert!(out.contains(needle), "lacks {needle:?}:\n{out}");
    }
    let bad = inspect(&[], &worked_example_bad_md5());
    assert!(bad.contains("MISMATCH"), "{bad}");
    assert!(
        bad.contains("strict: error: Md5Mismatch at byte 38"),
        "{bad}"
    );
}

#[test]
fn bad_input_exits_2() {
    for (args, stdin) in [
        (vec!["inspect", "--from", "lambda"], b"{}".to_vec()),
        (vec!["inspect", "--from", "hex"], b"f".to_vec()),
        (vec!["inspect", "--shard-range", "9-1"], b"".to_vec()),
        (vec!["inspect", "--policy", "strict"], b"".to_vec()),
    ] {
        let run = kpl(&args, &stdin);
        run.one_error_line(2);
        assert_eq!(run.stdout, "");
    }
}

#[test]
fn help_explains_the_formats() {
    let run = kpl(&["inspect", "--help"], b"");
    assert_eq!(run.code, 0);
    for needle in [
        "raw",
        "base64",
        "hex",
        "lambda",
        "get-records",
        "--shard-range",
        "--partition-key",
        "MD5",
        "strict",
    ] {
        assert!(
            run.stdout.contains(needle),
            "inspect --help lacks {needle:?}"
        );
    }
}

#[test]
fn an_index_of_2_pow_32_is_shown_as_kcl_reads_it() {
    // pk table ["a"]; one record with pk index 2^32 (varint 80 80 80 80 10) and data "x".
    // KCL casts the index to a Java int: 2^32 -> 0, so it reads entry 0 = "a" (format.md 4);
    // strict rejects the index.
    let data = frame("0a0161 1a09 08 8080808010 1a0178");
    let text = inspect(&[], &data);
    assert!(
        text.contains(
            "pk index 4294967296 (OUTSIDE the table of 1; KCL casts it to int 0 = \"a\")"
        ),
        "{text}"
    );
    assert!(text.contains("KCL: aggregated: 1 user record"), "{text}");
    assert!(
        text.contains("strict: error: PartitionKeyIndexOutOfRange at byte 7"),
        "{text}"
    );
}
