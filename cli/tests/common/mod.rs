//! Shared helpers: run the real `kpl` binary, build records by hand from the spec.
#![allow(dead_code)]

use std::io::Write;
use std::process::{Command, Stdio};

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use md5::{Digest, Md5};

/// What a run of `kpl` left behind.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    /// The stdout lines parsed as JSON.
    pub fn json_lines(&self) -> Vec<serde_json::Value> {
        self.stdout
            .lines()
            .map(|line| serde_json::from_str(line).expect("stdout line is JSON"))
            .collect()
    }

    /// Asserts the run failed with `code` and exactly one `kpl: ...` line on stderr, and
    /// returns that line.
    pub fn one_error_line(&self, code: i32) -> &str {
        assert_eq!(self.code, code, "exit code; stderr: {}", self.stderr);
        let lines: Vec<&str> = self.stderr.lines().collect();
        assert_eq!(lines.len(), 1, "exactly one stderr line: {:?}", self.stderr);
        assert!(lines[0].starts_with("kpl: "), "{:?}", lines[0]);
        assert!(!self.stderr.contains("panicked"), "{}", self.stderr);
        lines[0]
    }
}

/// Runs `kpl ARGS` with `stdin`.
pub fn kpl(args: &[&str], stdin: &[u8]) -> Run {
    let mut child = Command::new(env!("CARGO_BIN_EXE_kpl"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn kpl");
    let mut pipe = child.stdin.take().expect("stdin");
    let input = stdin.to_vec();
    // kpl may exit before reading everything (bad usage): ignore a broken pipe.
    let writer = std::thread::spawn(move || {
        let _ = pipe.write_all(&input);
    });
    let output = child.wait_with_output().expect("wait for kpl");
    writer.join().expect("stdin writer");
    Run {
        code: output.status.code().expect("exit code"),
        stdout: String::from_utf8(output.stdout).expect("stdout is UTF-8"),
        stderr: String::from_utf8(output.stderr).expect("stderr is UTF-8"),
    }
}

/// Hex digits to bytes (test inputs only).
pub fn unhex(text: &str) -> Vec<u8> {
    let digits: Vec<u8> = text.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
    digits
        .chunks(2)
        .map(|pair| u8::from_str_radix(std::str::from_utf8(pair).unwrap(), 16).unwrap())
        .collect()
}

pub fn b64(bytes: &[u8]) -> String {
    BASE64.encode(bytes)
}

pub const MAGIC_HEX: &str = "f3899ac2";

/// The protobuf of the worked example of format.md section 2.
pub const WORKED_PROTOBUF_HEX: &str =
    "0a01610a01621203313233 1a0508001a0178 1a08080110001a02797a 1a0408001a00";

/// Its MD5, as format.md gives it.
pub const WORKED_MD5_HEX: &str = "50fb6761da66aa196a30884d6311e0d4";

/// The hash key of "a" (format.md section 3).
pub const HASH_KEY_A: &str = "16955237001963240173058271559858726497";

/// The 54 bytes of the worked example, from the hex in format.md.
pub fn worked_example() -> Vec<u8> {
    let bytes = unhex(&format!("{MAGIC_HEX}{WORKED_PROTOBUF_HEX}{WORKED_MD5_HEX}"));
    assert_eq!(bytes.len(), 54);
    bytes
}

/// Frames a hand-written protobuf: magic, protobuf, MD5 (computed with the md-5 crate).
pub fn frame(protobuf_hex: &str) -> Vec<u8> {
    let protobuf = unhex(protobuf_hex);
    let mut out = unhex(MAGIC_HEX);
    out.extend_from_slice(&protobuf);
    out.extend_from_slice(&Md5::digest(&protobuf));
    out
}

/// The worked example with its last MD5 byte changed.
pub fn worked_example_bad_md5() -> Vec<u8> {
    let mut bytes = worked_example();
    bytes[53] ^= 0x01;
    bytes
}

/// Table ["a"], records: (pk 0, "x"), (pk 5, "y"), (pk 0, "z"). The second record's tag is
/// at byte 4 + 3 + 7 = 14.
pub const OUT_OF_RANGE_PROTOBUF_HEX: &str = "0a0161 1a0508001a0178 1a0508051a0179 1a0508001a017a";

/// Table [ff, "b"] (the first entry is not UTF-8, its tag at byte 4), records: (pk 0, "x"),
/// (pk 1, "y").
pub const BAD_UTF8_PROTOBUF_HEX: &str = "0a01ff 0a0162 1a0508001a0178 1a0508011a0179";

/// A lambda KinesisEvent around these (partition key, data, sequence number) records.
pub fn lambda_event(records: &[(&str, &[u8], &str)]) -> String {
    let records: Vec<serde_json::Value> = records
        .iter()
        .map(|(pk, data, seq)| {
            serde_json::json!({
                "kinesis": {
                    "kinesisSchemaVersion": "1.0",
                    "partitionKey": pk,
                    "sequenceNumber": seq,
                    "data": b64(data),
                    "approximateArrivalTimestamp": 1_545_084_650.987
                },
                "eventSource": "aws:kinesis",
                "eventVersion": "1.0",
                "eventID": format!("shardId-000000000006:{seq}"),
                "eventName": "aws:kinesis:record",
                "invokeIdentityArn": "arn:aws:iam::123456789012:role/lambda-role",
                "awsRegion": "us-east-2",
                "eventSourceARN": "arn:aws:kinesis:us-east-2:123456789012:stream/lambda-stream"
            })
        })
        .collect();
    serde_json::json!({ "Records": records }).to_string()
}

/// `aws kinesis get-records` output around these records.
pub fn get_records_output(records: &[(&str, &[u8], &str)]) -> String {
    let records: Vec<serde_json::Value> = records
        .iter()
        .map(|(pk, data, seq)| {
            serde_json::json!({
                "SequenceNumber": seq,
                "ApproximateArrivalTimestamp": "2024-01-01T00:00:00.000000+00:00",
                "Data": b64(data),
                "PartitionKey": pk
            })
        })
        .collect();
    serde_json::json!({
        "Records": records,
        "NextShardIterator": "AAAAAAAAAAH...",
        "MillisBehindLatest": 0
    })
    .to_string()
}

/// A `kpl serve` on a free loopback port, killed when dropped.
pub struct Serve {
    child: std::process::Child,
    /// `host:port` it listens on.
    pub addr: String,
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `kpl serve --listen 127.0.0.1:0 --region us-east-1 ARGS` with fake credentials and
/// waits for its `listening on` line.
pub fn start_serve(args: &[&str]) -> Serve {
    use std::io::{BufRead, BufReader};
    let mut child = Command::new(env!("CARGO_BIN_EXE_kpl"))
        .args(["serve", "--listen", "127.0.0.1:0", "--region", "us-east-1"])
        .args(args)
        .env("AWS_ACCESS_KEY_ID", "AKIDTEST")
        .env("AWS_SECRET_ACCESS_KEY", "secret")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start kpl serve");
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("read the listening line");
    let addr = line
        .trim()
        .strip_prefix("listening on http://")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .to_owned();
    Serve { child, addr }
}
