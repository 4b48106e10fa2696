//! The Lambda function (this crate's binary, the `bootstrap`) under a local Lambda Runtime
//! API: the Lambda Runtime Interface Emulator (`aws-lambda-rie`, built by
//! `bash ci/lambda install` into `.tools/lambda/bin`, or `$KPL_LAMBDA_RIE`) runs it as
//! Lambda would, with its settings in environment variables, and the test invokes it over
//! HTTP with `KinesisEvent`s. Everything runs inside the private network namespace of the
//! kinesis-mock support module (loopback only).
//!
//! The source records are the real Java KPL captures of `vectors/captured/kpl/` (each
//! Kinesis record put as KPL put it, explicit hash key included) and aggregates made by
//! the `kpl-kinesis` sink, plus one plain record whose transformed form is too large for
//! the destination. They are read back from kinesis-mock (real sequence numbers) and
//! handed to the function one event per shard, as Lambda does. The destination stream is
//! then read back under the KCL policy with each shard's hash-range filter, and the
//! `batchItemFailures` answers are checked.
//!
//! `KPL_LAMBDA_BOOTSTRAP` runs another build of the function instead (e.g. the one
//! `cargo lambda build` made: `target/lambda/lambda-reaggregate/bootstrap`).

#[path = "../../../kinesis/tests/support/mod.rs"]
mod support;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::process::CommandExt as _;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use aws_sdk_kinesis::primitives::Blob;
use base64::Engine as _;
use kpl_codec::{deaggregate, Options, Policy};
use kpl_kinesis::sink::UserRecord;
use libtest_mimic::{Arguments, Failed, Trial};
use serde_json::{json, Value};

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

fn main() {
    let args = Arguments::from_args();
    let server = support::enter_namespace_and_start();
    let limit = Duration::from_secs(300);
    let trials = vec![
        Trial::test(
            "captures_and_sink_output_with_one_record_the_sink_refuses",
            move || support::block_on(reaggregate(Refusal::BySink, 9010), limit),
        ),
        Trial::test(
            "captures_and_sink_output_with_one_record_the_destination_refuses",
            move || support::block_on(reaggregate(Refusal::ByDestination, 9020), limit),
        ),
        Trial::test("identity_transform_copies_the_user_records", move || {
            support::block_on(identity_copy(9030), limit)
        }),
        Trial::test(
            "a_missing_destination_stream_fails_every_record",
            move || support::block_on(missing_destination(9040), limit),
        ),
        Trial::test(
            "a_destination_that_never_answers_gets_failures_before_the_timeout",
            move || support::block_on(silent_destination(9050), limit),
        ),
        Trial::test("a_bad_setting_fails_the_init_phase", move || {
            support::block_on(bad_setting(9060), limit)
        }),
    ];
    let conclusion = libtest_mimic::run(&args, trials);
    drop(server);
    conclusion.exit();
}

// ---------------------------------------------------------------------------------------
// The emulator

/// `aws-lambda-rie` running the function, killed (with the function) on drop.
struct Emulator {
    child: Child,
    address: SocketAddr,
    log: PathBuf,
}

impl Drop for Emulator {
    fn drop(&mut self) {
        // The emulator and the function it started share a process group.
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", self.child.id())])
            .status();
        let _ = self.child.kill();
        let _ = self.child.wait();
        // A failure quoted the log's end already.
        if let Some(dir) = self.log.parent() {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

impl Emulator {
    /// Starts the emulator on `127.0.0.1:port` (Runtime API on `port + 1`) with the function
    /// and exactly the environment `env` (plus fake credentials and a region), and waits
    /// until it accepts connections. The function itself starts at the first invocation
    /// (Lambda's init phase).
    fn start(port: u16, env: &[(&str, &str)]) -> Result<Self, Failed> {
        let rie = std::env::var_os("KPL_LAMBDA_RIE")
            .map(PathBuf::from)
            .unwrap_or_else(|| workspace_root().join(".tools/lambda/bin/aws-lambda-rie"));
        if !rie.exists() {
            return Err(format!(
                "the Lambda Runtime Interface Emulator is not in {}: run `bash ci/lambda install`",
                rie.display()
            )
            .into());
        }
        let bootstrap = std::env::var_os("KPL_LAMBDA_BOOTSTRAP")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_lambda-reaggregate")));
        let dir = std::env::temp_dir().join(format!("lambda-rie-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&dir)?;
        let log = dir.join("emulator.log");
        let address: SocketAddr = ([127, 0, 0, 1], port).into();
        let mut command = Command::new(&rie);
        command
            .arg("--runtime-interface-emulator-address")
            .arg(address.to_string())
            .arg("--runtime-api-address")
            .arg(format!("127.0.0.1:{}", port + 1))
            .arg(&bootstrap)
            .current_dir(&dir)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", &dir)
            .env("AWS_ACCESS_KEY_ID", "AKIDTEST")
            .env("AWS_SECRET_ACCESS_KEY", "secret")
            .env("AWS_REGION", "us-east-1")
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env("AWS_LAMBDA_FUNCTION_NAME", "reaggregate")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&log)?)
            .stderr(std::fs::OpenOptions::new().append(true).open(&log)?)
            .process_group(0);
        let child = command
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", rie.display()))?;
        let emulator = Emulator {
            child,
            address,
            log,
        };
        let started = Instant::now();
        while TcpStream::connect(address).is_err() {
            if started.elapsed() > Duration::from_secs(30) {
                return Err(emulator.failure("the emulator did not listen within 30 s"));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(emulator)
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// A failure that quotes the end of the emulator's log (the function's output too).
    fn failure(&self, what: impl std::fmt::Display) -> Failed {
        let log = self.log_text();
        let tail: String = log
            .lines()
            .rev()
            .take(40)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect::<Vec<_>>()
            .join("\n");
        format!("{what}\n--- {} (end) ---\n{tail}", self.log.display()).into()
    }

    /// Invokes the function with `event` and returns the HTTP status and body.
    async fn invoke(&self, event: &Value) -> Result<(u16, Vec<u8>), Failed> {
        let address = self.address;
        let body = serde_json::to_vec(event)?;
        tokio::task::spawn_blocking(move || post(address, &body))
            .await?
            .map_err(|e| self.failure(format!("invocation failed: {e}")))
    }

    /// Invokes the function and parses its answer, which must be a KinesisEventResponse.
    async fn invoke_ok(&self, event: &Value) -> Result<Value, Failed> {
        let (status, body) = self.invoke(event).await?;
        let text = String::from_utf8_lossy(&body);
        if status != 200 {
            return Err(self.failure(format!("the invocation answered {status}: {text}")));
        }
        serde_json::from_slice(&body)
            .map_err(|e| self.failure(format!("the answer is not JSON ({e}): {text}")))
    }
}

/// One HTTP/1.1 POST to the emulator's invocation path; the answer's status and body
/// (`Content-Length`, chunked, or up to the close).
fn post(address: SocketAddr, body: &[u8]) -> std::io::Result<(u16, Vec<u8>)> {
    let mut stream = TcpStream::connect(address)?;
    stream.set_read_timeout(Some(Duration::from_secs(120)))?;
    write!(
        stream,
        "POST /2015-03-31/functions/function/invocations HTTP/1.1\r\nHost: {address}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )?;
    stream.write_all(body)?;
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer)?;
    let bad = |what: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, what.to_owned());
    let split = answer
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| bad("no end of headers"))?;
    let head = String::from_utf8_lossy(&answer[..split]).into_owned();
    let mut rest = &answer[split + 4..];
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| bad("no status"))?;
    let chunked = head.lines().any(|l| {
        l.to_ascii_lowercase()
            .starts_with("transfer-encoding: chunked")
    });
    if !chunked {
        return Ok((status, rest.to_vec()));
    }
    let mut body = Vec::new();
    loop {
        let line_end = rest
            .windows(2)
            .position(|w| w == b"\r\n")
            .ok_or_else(|| bad("truncated chunk"))?;
        let size = usize::from_str_radix(String::from_utf8_lossy(&rest[..line_end]).trim(), 16)
            .map_err(|_| bad("bad chunk size"))?;
        rest = &rest[line_end + 2..];
        if size == 0 {
            return Ok((status, body));
        }
        if rest.len() < size + 2 {
            return Err(bad("truncated chunk"));
        }
        body.extend_from_slice(&rest[..size]);
        rest = &rest[size + 2..];
    }
}

// ---------------------------------------------------------------------------------------
// Source records

/// A user record as (partition key, explicit hash key, data).
type Expected = (String, Option<String>, Vec<u8>);

/// Puts every Kinesis record of every real KPL capture into `stream` as KPL put it
/// (partition key, explicit hash key, data) and returns the user records KPL was given.
async fn put_captures(
    admin: &aws_sdk_kinesis::Client,
    stream: &str,
) -> Result<Vec<Expected>, Failed> {
    let dir = workspace_root().join("vectors/captured/kpl");
    let mut paths: Vec<_> = std::fs::read_dir(&dir)?
        .map(|e| e.map(|e| e.path()))
        .collect::<Result<_, _>>()?;
    paths.sort();
    let mut expected = Vec::new();
    let mut captures = 0;
    for path in paths
        .iter()
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
    {
        let vector: Value = serde_json::from_slice(&std::fs::read(path)?)?;
        for r in vector["expected"]["kinesis_records"]
            .as_array()
            .ok_or("a capture without kinesis_records")?
        {
            let mut put = admin
                .put_record()
                .stream_name(stream)
                .partition_key(r["partition_key"].as_str().ok_or("no partition_key")?)
                .data(Blob::new(B64.decode(r["data"].as_str().ok_or("no data")?)?));
            if let Some(ehk) = r["explicit_hash_key"].as_str() {
                put = put.explicit_hash_key(ehk);
            }
            put.send().await?;
        }
        // KPL puts a lone user record as a plain Kinesis record, and Lambda does not
        // deliver a Kinesis record's explicit hash key: such a record has none downstream.
        let plain = all_plain(&vector)?;
        for u in vector["input"]["records"].as_array().ok_or("no input")? {
            let ehk = match u["explicit_hash_key"].as_str() {
                Some(_) if plain => None,
                Some(text) => Some(canonical_hash_key(text)?),
                None => None,
            };
            expected.push((
                u["partition_key"].as_str().ok_or("no key")?.to_owned(),
                ehk,
                B64.decode(u["data"].as_str().ok_or("no data")?)?,
            ));
        }
        captures += 1;
    }
    assert_eq!(captures, 8, "the captures of {}", dir.display());
    Ok(expected)
}

/// Whether every Kinesis record of the capture is plain (no KPL magic).
fn all_plain(vector: &Value) -> Result<bool, Failed> {
    let mut plain = true;
    for r in vector["expected"]["kinesis_records"]
        .as_array()
        .ok_or("no kinesis_records")?
    {
        let data = B64.decode(r["data"].as_str().ok_or("no data")?)?;
        plain &= !data.starts_with(&[0xF3, 0x89, 0x9A, 0xC2]);
    }
    Ok(plain)
}

/// An explicit hash key as the sink writes it into its aggregates: its value in decimal,
/// without leading zeros (`000123` is `123`).
fn canonical_hash_key(text: &str) -> Result<String, Failed> {
    Ok(text.parse::<u128>()?.to_string())
}

/// Puts `n` user records into `stream` through the sink (aggregates; every seventh with
/// an explicit hash key) and returns them.
async fn put_with_sink(stream: &str, n: usize) -> Result<Vec<Expected>, Failed> {
    let sink = support::sink_for(stream, support::flush_only_config()).await?;
    let mut pending = Vec::new();
    let mut put = Vec::new();
    for i in 0..n {
        let mut r = UserRecord::new(format!("sink-{}", i % 23), format!("sink record {i}"));
        if i % 7 == 0 {
            let ehk = (i as u128).wrapping_mul(0x9E37_79B9_7F4A_7C15_F39C_C060_5CED_C835);
            r = r.with_explicit_hash_key(ehk.to_string());
        }
        put.push((
            r.partition_key.clone(),
            r.explicit_hash_key.clone(),
            r.data.clone(),
        ));
        pending.push(sink.put(r).await?);
    }
    sink.flush().await;
    support::all_stored(pending).await?;
    sink.shutdown(Duration::from_secs(10)).await;
    Ok(put)
}

/// Data of the plain record whose envelope (base64 plus JSON) exceeds 1 MiB: 800,000
/// bytes fit the source stream, their base64 (1,066,668 bytes) does not fit the
/// destination.
fn too_large_once_wrapped() -> Vec<u8> {
    (0..800_000u32).map(|i| (i % 251) as u8).collect()
}

/// The source stream read back as Lambda delivers it: one `KinesisEvent` per shard (in
/// Lambda's JSON), and every Kinesis record by sequence number.
async fn lambda_events(stream: &str) -> (Vec<Value>, BTreeMap<String, support::Stored>) {
    let arn = format!("arn:aws:kinesis:us-east-1:000000000000:stream/{stream}");
    let mut by_shard: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    let mut by_sequence = BTreeMap::new();
    for s in support::read_all(&support::admin(), stream).await {
        by_shard.entry(s.shard_id.clone()).or_default().push(json!({
            "kinesis": {
                "kinesisSchemaVersion": "1.0",
                "partitionKey": s.partition_key,
                "sequenceNumber": s.sequence_number,
                "data": B64.encode(&s.data),
                "approximateArrivalTimestamp": 1_700_000_000.123,
            },
            "eventSource": "aws:kinesis",
            "eventVersion": "1.0",
            "eventID": format!("{}:{}", s.shard_id, s.sequence_number),
            "eventName": "aws:kinesis:record",
            "invokeIdentityArn": "arn:aws:iam::000000000000:role/lambda-role",
            "awsRegion": "us-east-1",
            "eventSourceARN": arn,
        }));
        by_sequence.insert(s.sequence_number.clone(), s);
    }
    let events = by_shard
        .into_values()
        .map(|records| json!({ "Records": records }))
        .collect();
    (events, by_sequence)
}

fn sequence_numbers(event: &Value) -> Vec<String> {
    event["Records"]
        .as_array()
        .map(|records| {
            records
                .iter()
                .filter_map(|r| r["kinesis"]["sequenceNumber"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// `{"batchItemFailures": [...]}` naming `sequence_numbers`, in ascending order.
fn failures(sequence_numbers: &[String]) -> Value {
    let mut sorted: Vec<&String> = sequence_numbers.iter().collect();
    sorted.sort_by_key(|s| (s.len(), s.as_str()));
    json!({ "batchItemFailures": sorted
        .into_iter()
        .map(|s| json!({ "itemIdentifier": s }))
        .collect::<Vec<_>>() })
}

// ---------------------------------------------------------------------------------------
// The destination, read back

/// A user record of the destination, as a KCL application gets it.
struct Delivered {
    partition_key: String,
    explicit_hash_key: Option<String>,
    data: Vec<u8>,
}

/// Every user record of the destination under the KCL policy with each shard's hash-range
/// filter (nothing may be dropped), and how many Kinesis records held them.
async fn read_destination(stream: &str) -> Result<(Vec<Delivered>, usize), Failed> {
    let stored = support::read_all(&support::admin(), stream).await;
    let mut out = Vec::new();
    for s in &stored {
        let options = Options {
            policy: Policy::Kcl,
            verify_md5: true,
            shard_range: Some(s.range),
        };
        let decoded = deaggregate(&s.data, s.partition_key.as_bytes(), &options)
            .map_err(|e| format!("the KCL policy failed: {e:?}"))?;
        if let kpl_codec::Verdict::Aggregated {
            dropped: Some(why), ..
        } = decoded.verdict()
        {
            return Err(format!("KCL drops an aggregate of {}: {why:?}", s.shard_id).into());
        }
        for u in decoded {
            out.push(Delivered {
                partition_key: String::from_utf8(u.partition_key.to_vec())?,
                explicit_hash_key: u
                    .explicit_hash_key
                    .map(|k| String::from_utf8_lossy(k).into_owned()),
                data: u.data.to_vec(),
            });
        }
    }
    Ok((out, stored.len()))
}

fn multiset(records: impl IntoIterator<Item = Expected>) -> BTreeMap<Expected, usize> {
    let mut m = BTreeMap::new();
    for r in records {
        *m.entry(r).or_insert(0) += 1;
    }
    m
}

fn assert_same(actual: &BTreeMap<Expected, usize>, expected: &BTreeMap<Expected, usize>) {
    let show = |m: &BTreeMap<Expected, usize>, other: &BTreeMap<Expected, usize>| {
        m.iter()
            .filter(|(k, n)| other.get(*k) != Some(n))
            .take(3)
            .map(|((key, ehk, data), n)| {
                format!(
                    "{n} x ({key:?}, {ehk:?}, {:?})",
                    String::from_utf8_lossy(&data[..data.len().min(40)])
                )
            })
            .collect::<Vec<_>>()
            .join("; ")
    };
    assert!(
        actual == expected,
        "destination differs: {} user records, {} expected; only in the destination: {}; only expected: {}",
        actual.values().sum::<usize>(),
        expected.values().sum::<usize>(),
        show(actual, expected),
        show(expected, actual)
    );
}

// ---------------------------------------------------------------------------------------
// The tests

#[derive(Clone, Copy)]
enum Refusal {
    /// Default settings: the sink refuses the too-large record at `put`.
    BySink,
    /// `KPL_CONFIG` tells the sink the destination takes 2 MiB records: kinesis-mock (1 MiB)
    /// refuses it.
    ByDestination,
}

async fn reaggregate(refusal: Refusal, port: u16) -> Result<(), Failed> {
    let admin = support::admin();
    let (src, dst) = (format!("rie-src-{port}"), format!("rie-dst-{port}"));
    support::create_stream(&admin, &src, 2).await;
    support::create_stream(&admin, &dst, 3).await;

    let mut expected = put_captures(&admin, &src).await?;
    expected.extend(put_with_sink(&src, 300).await?);
    let big = too_large_once_wrapped();
    admin
        .put_record()
        .stream_name(&src)
        .partition_key("big")
        .data(Blob::new(big.clone()))
        .send()
        .await?;

    let (events, source) = lambda_events(&src).await;
    assert_eq!(events.len(), 2, "one event per source shard");
    let big_sequence_number = source
        .values()
        .find(|s| s.data == big)
        .map(|s| s.sequence_number.clone())
        .ok_or("the big record is not in the source")?;

    let endpoint = support::ENDPOINT;
    let mut env = vec![
        ("DEST_STREAM", dst.as_str()),
        ("KINESIS_ENDPOINT", endpoint),
        ("AWS_LAMBDA_FUNCTION_TIMEOUT", "120"),
    ];
    if let Refusal::ByDestination = refusal {
        env.push((
            "KPL_CONFIG",
            r#"{"MaxRecordSize": 2097152, "RequestTimeout": 60000, "RecordTtl": 100000}"#,
        ));
    }
    let emulator = Emulator::start(port, &env)?;
    for event in &events {
        let answer = emulator.invoke_ok(event).await?;
        let want = if sequence_numbers(event).contains(&big_sequence_number) {
            failures(std::slice::from_ref(&big_sequence_number))
        } else {
            failures(&[])
        };
        if answer != want {
            return Err(emulator.failure(format!("answer {answer}, expected {want}")));
        }
    }
    let log = emulator.log_text();
    drop(emulator);
    // One init for both invocations: the sink lived across them.
    assert_eq!(log.matches("START RequestId").count(), 2, "{log}");
    assert_eq!(log.matches("Init Duration").count(), 1, "{log}");
    let why = match refusal {
        Refusal::BySink => "put refused",
        Refusal::ByDestination => "Exception",
    };
    assert!(
        log.lines()
            .any(|l| l.contains(&big_sequence_number) && l.contains(why)),
        "the function logs why the big record failed ({why}):\n{log}"
    );

    let (delivered, kinesis_records) = read_destination(&dst).await?;
    let mut seen = Vec::new();
    for d in &delivered {
        let envelope: Value = serde_json::from_slice(&d.data)?;
        let data = B64.decode(envelope["data"].as_str().ok_or("no data")?)?;
        assert_eq!(envelope["partitionKey"], json!(d.partition_key));
        // The envelope names the source Kinesis record and the user record's place in it.
        let sequence_number = envelope["sequenceNumber"]
            .as_str()
            .ok_or("no sequenceNumber")?;
        let origin = source
            .get(sequence_number)
            .ok_or_else(|| format!("no source record {sequence_number}"))?;
        assert_eq!(envelope["shardId"], json!(origin.shard_id));
        let sub = envelope["subSequenceNumber"]
            .as_u64()
            .ok_or("no subSequenceNumber")?;
        let user = deaggregate(
            &origin.data,
            origin.partition_key.as_bytes(),
            &Options::kcl(),
        )
        .map_err(|e| format!("{e:?}"))?
        .find(|u| u.sub_sequence_number == sub)
        .ok_or("no such sub-sequence number in the source record")?;
        assert_eq!(user.data, &data[..]);
        assert_eq!(envelope["aggregated"], json!(user.aggregated));
        seen.push((d.partition_key.clone(), d.explicit_hash_key.clone(), data));
    }
    assert_same(&multiset(seen), &multiset(expected.clone()));
    assert!(
        kinesis_records * 10 < delivered.len(),
        "{} user records in {kinesis_records} Kinesis records: not re-aggregated",
        delivered.len()
    );
    Ok(())
}

async fn identity_copy(port: u16) -> Result<(), Failed> {
    let admin = support::admin();
    let (src, dst) = (format!("rie-src-{port}"), format!("rie-dst-{port}"));
    support::create_stream(&admin, &src, 1).await;
    support::create_stream(&admin, &dst, 2).await;
    let mut expected = put_captures(&admin, &src).await?;
    expected.extend(put_with_sink(&src, 100).await?);
    let (events, _) = lambda_events(&src).await;
    let emulator = Emulator::start(
        port,
        &[
            (
                "DEST_STREAM",
                &format!("arn:aws:kinesis:us-east-1:000000000000:stream/{dst}"),
            ),
            ("TRANSFORM", "identity"),
            ("KINESIS_ENDPOINT", support::ENDPOINT),
            ("AWS_LAMBDA_FUNCTION_TIMEOUT", "120"),
        ],
    )?;
    for event in &events {
        let answer = emulator.invoke_ok(event).await?;
        if answer != failures(&[]) {
            return Err(emulator.failure(format!("answer {answer}")));
        }
    }
    drop(emulator);
    let (delivered, _) = read_destination(&dst).await?;
    let seen = delivered
        .into_iter()
        .map(|d| (d.partition_key, d.explicit_hash_key, d.data));
    assert_same(&multiset(seen), &multiset(expected));
    Ok(())
}

async fn missing_destination(port: u16) -> Result<(), Failed> {
    let admin = support::admin();
    let src = format!("rie-src-{port}");
    support::create_stream(&admin, &src, 1).await;
    put_captures(&admin, &src).await?;
    let (events, _) = lambda_events(&src).await;
    let emulator = Emulator::start(
        port,
        &[
            ("DEST_STREAM", "no-such-stream"),
            ("KINESIS_ENDPOINT", support::ENDPOINT),
            ("AWS_LAMBDA_FUNCTION_TIMEOUT", "60"),
        ],
    )?;
    let answer = emulator.invoke_ok(&events[0]).await?;
    let want = failures(&sequence_numbers(&events[0]));
    if answer != want {
        return Err(emulator.failure(format!("answer {answer}, expected {want}")));
    }
    Ok(())
}

async fn silent_destination(port: u16) -> Result<(), Failed> {
    let admin = support::admin();
    let src = format!("rie-src-{port}");
    support::create_stream(&admin, &src, 1).await;
    put_captures(&admin, &src).await?;
    let (events, _) = lambda_events(&src).await;
    // Accepts connections (the kernel does, into the backlog) and never answers.
    let silent = TcpListener::bind(("127.0.0.1", port + 9))?;
    let endpoint = format!("http://{}", silent.local_addr()?);
    let timeout = 5;
    let emulator = Emulator::start(
        port,
        &[
            ("DEST_STREAM", "anything"),
            ("KINESIS_ENDPOINT", endpoint.as_str()),
            ("AWS_LAMBDA_FUNCTION_TIMEOUT", &timeout.to_string()),
            ("ANSWER_MARGIN_MS", "1000"),
        ],
    )?;
    for round in 0..2 {
        let started = Instant::now();
        let answer = emulator.invoke_ok(&events[0]).await?;
        let took = started.elapsed();
        let want = failures(&sequence_numbers(&events[0]));
        if answer != want {
            return Err(
                emulator.failure(format!("round {round}: answer {answer}, expected {want}"))
            );
        }
        // Warm, it waits for the outcomes until its deadline less the margin, not longer.
        // (The first round also holds the init phase, where the function waits up to 2 s
        // for the destination's shard map.)
        if round == 1
            && (took >= Duration::from_secs(timeout) || took < Duration::from_secs(timeout - 2))
        {
            return Err(emulator.failure(format!("round {round}: answered after {took:?}")));
        }
    }
    let log = emulator.log_text();
    assert!(!log.contains("Task timed out"), "{log}");
    assert!(
        log.contains("no outcome by the invocation's deadline"),
        "{log}"
    );
    drop(silent);
    Ok(())
}

async fn bad_setting(port: u16) -> Result<(), Failed> {
    let emulator = Emulator::start(
        port,
        &[
            ("DEST_STREAM", "out"),
            ("TRANSFORM", "uppercase"),
            ("KINESIS_ENDPOINT", support::ENDPOINT),
            ("AWS_LAMBDA_FUNCTION_TIMEOUT", "30"),
        ],
    )?;
    let (status, body) = emulator.invoke(&json!({"Records": []})).await?;
    let started = Instant::now();
    // The function's message reaches the log (CloudWatch Logs in Lambda), and the init
    // phase fails as Lambda reports it: Runtime.ExitError, the invocation a 502.
    loop {
        let log = emulator.log_text();
        if log.contains("error: TRANSFORM=\"uppercase\" is not a transform")
            && log.contains("Runtime.ExitError")
        {
            break;
        }
        if started.elapsed() > Duration::from_secs(10) {
            return Err(emulator.failure("the init error is not in the log"));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    if status != 502 {
        let text = String::from_utf8_lossy(&body);
        return Err(emulator.failure(format!("a failed init answered {status}: {text}")));
    }
    Ok(())
}
