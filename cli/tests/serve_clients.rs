//! `kpl serve` with real Kinesis clients (issue 11): boto3, the AWS CLI v1, aws-sdk-go-v2,
//! the AWS SDK for Java v2 (CBOR), aws-sdk-kinesis making Vector's calls, and Fluent Bit's
//! `kinesis_streams` output over TLS. Each trial creates a 4-shard stream in kinesis-mock
//! (started by the shared support module inside a private network namespace), starts
//! `kpl serve` in front of it, lets the client put distinct ~100-byte records with its own
//! API calls, and then checks:
//! - every record got an answer naming a shard of the stream and a sequence number, and the
//!   Kinesis record stored under that shard and sequence number holds the record (clients
//!   retry records answered with a retryable error, as producers do; FailedRecordCount
//!   matches the failed entries);
//! - read back with KCL's policy and each shard's hash-range filter, every record is there
//!   exactly once;
//! - at least 50 user records per Kinesis record on average;
//! - SIGTERM stops the server with status 0, after it printed exactly one line.
//!
//! The clients come from `.tools/serve-clients` (`bash ci/serve-clients install`); Fluent
//! Bit from `$FLUENT_BIT`, else `../shared/tools/fluent-bit/bin/fluent-bit` (its trial is
//! skipped with a message when neither exists).
//!
//! `KPL_SERVE_CLIENTS_TARGET=kinesis-mock` points the clients at kinesis-mock directly
//! instead (through socat for TLS), to check the client programs themselves: everything but
//! the aggregation ratio and the server's exit is checked the same way.

#[path = "../../kinesis/tests/support/mod.rs"]
mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use aws_sdk_kinesis::primitives::Blob;
use aws_sdk_kinesis::types::PutRecordsRequestEntry;
use kpl_codec::{deaggregate, Options, Policy};
use libtest_mimic::{Arguments, Failed, Trial};
use serde_json::{json, Value};

const SHARDS: i32 = 4;
/// Size of each record's data, bytes.
const RECORD_SIZE: usize = 100;
/// The aggregation the issue asks for with 100-byte records.
const MIN_RECORDS_PER_KINESIS_RECORD: f64 = 50.0;
/// How long one client may take to put its records.
const CLIENT_LIMIT: Duration = Duration::from_secs(150);
/// How long `kpl serve` may take to print its address, and to exit after SIGTERM.
const SERVER_LIMIT: Duration = Duration::from_secs(60);
/// Error codes a client retries (Kinesis's retryable per-record errors).
const RETRYABLE: [&str; 2] = ["ProvisionedThroughputExceededException", "InternalFailure"];

fn main() {
    let args = Arguments::from_args();
    let server = support::enter_namespace_and_start();
    let trials = vec![
        Trial::test("boto3_put_records_5000_in_batches_of_500", boto3),
        Trial::test("aws_cli_v1_put_records_batches", aws_cli),
        Trial::test("aws_sdk_go_v2_put_records", go_sdk),
        Trial::test("aws_sdk_java_v2_put_records_over_cbor", java_sdk),
        Trial::test("rust_sdk_vector_describe_stream_then_put_records", rust_sdk),
        Trial::test("fluent_bit_kinesis_streams_over_tls", fluent_bit),
    ];
    let conclusion = libtest_mimic::run(&args, trials);
    drop(server);
    conclusion.exit();
}

// ---------------------------------------------------------------------------------------
// Where the clients send: `kpl serve`, or kinesis-mock itself.

/// True when the clients talk to kinesis-mock directly (`KPL_SERVE_CLIENTS_TARGET`).
fn direct() -> bool {
    match std::env::var("KPL_SERVE_CLIENTS_TARGET").as_deref() {
        Ok("kinesis-mock") => true,
        Ok("serve") | Err(_) => false,
        Ok(other) => panic!("KPL_SERVE_CLIENTS_TARGET={other}: use serve or kinesis-mock"),
    }
}

fn workspace_root() -> PathBuf {
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    manifest
        .ancestors()
        .find(|d| d.join("Cargo.lock").exists())
        .unwrap_or(&manifest)
        .to_path_buf()
}

fn tools() -> PathBuf {
    workspace_root().join(".tools/serve-clients")
}

fn require(path: &Path) -> Result<PathBuf, Failed> {
    if path.exists() {
        Ok(path.to_path_buf())
    } else {
        Err(format!(
            "{} is missing: run `bash ci/serve-clients install`",
            path.display()
        )
        .into())
    }
}

/// A trial's own folder (certificates, inputs, logs); removed when the trial passes.
struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Result<Self, Failed> {
        let dir =
            std::env::temp_dir().join(format!("kpl-serve-clients-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir)?;
        Ok(Scratch(dir))
    }

    fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }

    fn keep_on_failure<T>(self, result: Result<T, Failed>) -> Result<T, Failed> {
        match result {
            Ok(v) => {
                let _ = std::fs::remove_dir_all(&self.0);
                Ok(v)
            }
            Err(e) => Err(format!("{} (files in {})", message(&e), self.0.display()).into()),
        }
    }
}

/// Runs async work on its own runtime, failing after `limit`.
fn block_on<T>(
    work: impl std::future::Future<Output = Result<T, Failed>>,
    limit: Duration,
) -> Result<T, Failed> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?
        .block_on(async {
            tokio::time::timeout(limit, work)
                .await
                .map_err(|_| Failed::from(format!("took more than {limit:?}")))?
        })
}

/// A failure's text.
fn message(e: &Failed) -> &str {
    e.message().unwrap_or("failed")
}

/// The endpoint a client is given, and what serves it.
struct Target {
    /// `http://127.0.0.1:PORT` or `https://127.0.0.1:PORT`.
    url: String,
    port: u16,
    /// The certificate to trust, for TLS.
    ca_file: Option<PathBuf>,
    server: Server,
}

enum Server {
    /// `kpl serve`, with the stdout lines after the first and its log file.
    Kpl {
        child: Child,
        more_stdout: mpsc::Receiver<String>,
        log: PathBuf,
    },
    /// socat terminating TLS in front of kinesis-mock.
    Socat(Child),
    /// kinesis-mock's own plain port.
    Mock,
}

impl Target {
    /// Starts what serves the trial: `kpl serve` (with TLS when `tls` is set), or in direct
    /// mode kinesis-mock's port (through socat for TLS).
    fn start(scratch: &Scratch, tls: bool) -> Result<Target, Failed> {
        let cert = if tls {
            Some(make_certificate(scratch)?)
        } else {
            None
        };
        if direct() {
            return match cert {
                None => Ok(Target {
                    url: support::ENDPOINT.to_owned(),
                    port: 4568,
                    ca_file: None,
                    server: Server::Mock,
                }),
                Some((cert, key)) => start_socat(scratch, cert, &key),
            };
        }
        let config = scratch.path("kpl.toml");
        // The shared tests' patient settings: kinesis-mock on two busy cores can take
        // seconds to store a PutRecords, and a timed-out request stored anyway would be
        // stored twice.
        std::fs::write(
            &config,
            format!(
                "RequestTimeout = {}\nRecordTtl = {}\n",
                support::PATIENT_REQUEST_TIMEOUT,
                support::PATIENT_RECORD_TTL
            ),
        )?;
        let log = scratch.path("kpl-serve.log");
        let mut command = Command::new(env!("CARGO_BIN_EXE_kpl"));
        command
            .args([
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--endpoint",
                support::ENDPOINT,
            ])
            .args(["--region", "us-east-1", "--config"])
            .arg(&config);
        if let Some((cert, key)) = &cert {
            command
                .arg("--tls-cert")
                .arg(cert)
                .arg("--tls-key")
                .arg(key);
        }
        let mut child = command
            .env("AWS_ACCESS_KEY_ID", "AKIDSERVER")
            .env("AWS_SECRET_ACCESS_KEY", "server-secret")
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env_remove("AWS_SESSION_TOKEN")
            .env_remove("AWS_PROFILE")
            .env_remove("AWS_REGION")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log)?)
            .spawn()
            .map_err(|e| format!("cannot start kpl serve: {e}"))?;
        let stdout = child.stdout.take().ok_or("no stdout")?;
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { return };
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        let first = match lines.recv_timeout(SERVER_LIMIT) {
            Ok(line) => line,
            Err(_) => {
                let _ = child.kill();
                let status = child.wait()?;
                return Err(format!(
                    "kpl serve printed no address in {SERVER_LIMIT:?} ({status}); its log:\n{}",
                    tail(&log)
                )
                .into());
            }
        };
        let scheme = if tls { "https" } else { "http" };
        let prefix = format!("listening on {scheme}://127.0.0.1:");
        let port = first
            .strip_prefix(&prefix)
            .and_then(|p| p.parse::<u16>().ok())
            .ok_or_else(|| format!("kpl serve's first line is {first:?}, not `{prefix}PORT`"))?;
        Ok(Target {
            url: format!("{scheme}://127.0.0.1:{port}"),
            port,
            ca_file: cert.map(|(c, _)| c),
            server: Server::Kpl {
                child,
                more_stdout: lines,
                log,
            },
        })
    }

    /// Stops the server: `kpl serve` must exit with status 0 on SIGTERM, having printed
    /// nothing after its address line but its summary (`stopped: N user records in, ...`),
    /// whose counts come back (none for kinesis-mock or socat).
    fn stop(mut self) -> Result<Option<BTreeMap<String, u64>>, Failed> {
        match std::mem::replace(&mut self.server, Server::Mock) {
            Server::Mock => Ok(None),
            Server::Socat(mut child) => {
                let _ = child.kill();
                let _ = child.wait();
                Ok(None)
            }
            Server::Kpl {
                mut child,
                more_stdout,
                log,
            } => {
                signal(&child, "TERM")?;
                let Some(status) = wait_until(&mut child, Instant::now() + SERVER_LIMIT)? else {
                    let _ = child.kill();
                    let _ = child.wait();
                    return Err(format!(
                        "kpl serve did not exit within {SERVER_LIMIT:?} of SIGTERM; its log:\n{}",
                        tail(&log)
                    )
                    .into());
                };
                if status.code() != Some(0) {
                    return Err(format!(
                        "kpl serve exited with {status} after SIGTERM; its log:\n{}",
                        tail(&log)
                    )
                    .into());
                }
                // The rest of stdout, until the reader thread sees its end.
                let mut extra = Vec::new();
                let deadline = Instant::now() + Duration::from_secs(10);
                loop {
                    let left = deadline.saturating_duration_since(Instant::now());
                    match more_stdout.recv_timeout(left) {
                        Ok(line) => extra.push(line),
                        Err(mpsc::RecvTimeoutError::Disconnected) => break,
                        Err(mpsc::RecvTimeoutError::Timeout) => {
                            return Err("kpl serve exited but its stdout stayed open".into())
                        }
                    }
                }
                match extra.as_slice() {
                    [summary] => parse_summary(summary).map(Some),
                    _ => Err(format!(
                        "after its address line, kpl serve printed {} lines on stdout, not its one summary line: {extra:?}",
                        extra.len()
                    )
                    .into()),
                }
            }
        }
    }

    /// What the server logged, for failure messages.
    fn log_tail(&self) -> String {
        match &self.server {
            Server::Kpl { log, .. } => format!("\nkpl serve's log:\n{}", tail(log)),
            _ => String::new(),
        }
    }
}

impl Drop for Target {
    fn drop(&mut self) {
        match &mut self.server {
            Server::Kpl { child, .. } | Server::Socat(child) => {
                let _ = child.kill();
                let _ = child.wait();
            }
            Server::Mock => {}
        }
    }
}

/// The counts of `kpl serve`'s last line, `stopped: 5000 user records in, 5000 stored, 0
/// throttled, 0 failed, 40 Kinesis records, 0 forwarded requests`, by their labels
/// ("user records in", "stored", ...).
fn parse_summary(line: &str) -> Result<BTreeMap<String, u64>, Failed> {
    let bad = || {
        Failed::from(format!(
            "kpl serve's summary line does not read `stopped: N what, ...`: {line:?}"
        ))
    };
    let rest = line.strip_prefix("stopped: ").ok_or_else(bad)?;
    let mut counts = BTreeMap::new();
    for part in rest.split(", ") {
        let (n, label) = part.split_once(' ').ok_or_else(bad)?;
        counts.insert(label.to_owned(), n.parse::<u64>().map_err(|_| bad())?);
    }
    Ok(counts)
}

/// Checks the server's own counts against what the trial saw: every record put (first
/// tries, retries, and the one record put to a stream that does not exist) came in, each
/// record was stored once, the throttled and failed answers are the clients' failed entries
/// (and that one record), and as many Kinesis records went out as were read back.
fn check_summary(
    counts: Option<&BTreeMap<String, u64>>,
    expected: usize,
    failed_entries: usize,
    missing_stream_puts: usize,
    kinesis_records: usize,
    forwarded: u64,
) -> Result<(), Failed> {
    let Some(counts) = counts else { return Ok(()) };
    let get = |label: &str| {
        counts.get(label).copied().ok_or_else(|| {
            Failed::from(format!("kpl serve's summary has no {label:?}: {counts:?}"))
        })
    };
    // The puts to a stream that does not exist count as failed records.
    let refused = (get("throttled")? + get("failed")?).saturating_sub(missing_stream_puts as u64);
    if refused != failed_entries as u64 {
        return Err(format!(
            "kpl serve counts {refused} throttled or failed records, the client saw {failed_entries} failed entries: {counts:?}"
        )
        .into());
    }
    let want = [
        (
            "user records in",
            (expected + failed_entries + missing_stream_puts) as u64,
        ),
        ("stored", expected as u64),
        ("Kinesis records", kinesis_records as u64),
        ("forwarded requests", forwarded),
    ];
    for (label, n) in want {
        if get(label)? != n {
            return Err(format!(
                "kpl serve's summary says {} {label}, expected {n}: {counts:?}",
                get(label)?
            )
            .into());
        }
    }
    Ok(())
}

/// The last lines of a log file.
fn tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(40)..].join("\n")
}

fn signal(child: &Child, name: &str) -> Result<(), Failed> {
    let status = Command::new("kill")
        .arg(format!("-{name}"))
        .arg(child.id().to_string())
        .status()?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("kill -{name} {} failed: {status}", child.id()).into())
    }
}

/// Waits for a child until `deadline`, polling; `None` if it is still running then.
fn wait_until(child: &mut Child, deadline: Instant) -> Result<Option<ExitStatus>, Failed> {
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok(Some(status));
        }
        if Instant::now() >= deadline {
            return Ok(None);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A self-signed certificate for `localhost` and `127.0.0.1`, made with openssl:
/// (certificate, key) PEM files.
fn make_certificate(scratch: &Scratch) -> Result<(PathBuf, PathBuf), Failed> {
    let cert = scratch.path("cert.pem");
    let key = scratch.path("key.pem");
    let out = Command::new("openssl")
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
        ])
        .args(["-subj", "/CN=localhost"])
        .args(["-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .map_err(|e| format!("cannot run openssl: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "openssl req failed: {}",
            String::from_utf8_lossy(&out.stderr)
        )
        .into());
    }
    Ok((cert, key))
}

/// A free port on loopback (bound and released; nothing else picks ports in the namespace).
fn free_port() -> Result<u16, Failed> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

fn start_socat(scratch: &Scratch, cert: PathBuf, key: &Path) -> Result<Target, Failed> {
    let both = scratch.path("both.pem");
    let mut pem = std::fs::read(&cert)?;
    pem.extend(std::fs::read(key)?);
    std::fs::write(&both, pem)?;
    let port = free_port()?;
    let child = Command::new("socat")
        .arg(format!(
            "openssl-listen:{port},bind=127.0.0.1,reuseaddr,fork,cert={},verify=0",
            both.display()
        ))
        .arg("TCP:127.0.0.1:4568")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(scratch.path("socat.log"))?)
        .spawn()
        .map_err(|e| format!("cannot start socat: {e}"))?;
    let target = Target {
        url: format!("https://127.0.0.1:{port}"),
        port,
        ca_file: Some(cert),
        server: Server::Socat(child),
    };
    let deadline = Instant::now() + SERVER_LIMIT;
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        if Instant::now() >= deadline {
            return Err("socat did not listen within a minute".into());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(target)
}

// ---------------------------------------------------------------------------------------
// Records, answers and the checks every trial makes.

/// Deterministic pseudo-random numbers (xorshift64*), for keys and padding.
struct Rng(u64);

impl Rng {
    fn new(seed: &str) -> Self {
        let mut s = 0x9E37_79B9_7F4A_7C15u64;
        for b in seed.bytes() {
            s = (s ^ u64::from(b)).wrapping_mul(0x0100_0000_01B3);
        }
        Rng(s | 1)
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// `n` random characters from `alphabet`.
    fn text(&mut self, alphabet: &[u8], n: usize) -> String {
        (0..n)
            .map(|_| char::from(alphabet[(self.next() % alphabet.len() as u64) as usize]))
            .collect()
    }
}

/// (partition key, data).
type UserRecord = (String, Vec<u8>);

const ALPHANUMERIC: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

/// `n` distinct records of RECORD_SIZE text bytes, under random 16-character keys:
/// (partition key, data).
fn records(client: &str, n: usize) -> Vec<(String, Vec<u8>)> {
    let mut rng = Rng::new(client);
    (0..n)
        .map(|i| {
            let key = rng.text(ALPHANUMERIC, 16);
            let head = format!("{client} record {i:06} ");
            let pad = rng.text(b"abcdefghijklmnopqrstuvwxyz", RECORD_SIZE - head.len());
            (key, format!("{head}{pad}").into_bytes())
        })
        .collect()
}

/// Writes records as the client programs read them: `KEY<TAB>DATA` lines.
fn write_tsv(path: &Path, records: &[(String, Vec<u8>)]) -> Result<(), Failed> {
    let mut out = Vec::new();
    for (key, data) in records {
        out.extend_from_slice(key.as_bytes());
        out.push(b'\t');
        out.extend_from_slice(data);
        out.push(b'\n');
    }
    std::fs::write(path, out)?;
    Ok(())
}

/// What a client was answered, record by record.
#[derive(Default)]
struct Answers {
    /// Record index -> (ShardId, SequenceNumber) of its successful answer.
    stored: BTreeMap<usize, (String, String)>,
    /// Failed entries: (record index, ErrorCode, ErrorMessage).
    failures: Vec<(usize, String, String)>,
    /// PutRecords calls, and the sum of their FailedRecordCount.
    calls: usize,
    failed_record_count: u64,
}

impl Answers {
    fn call(&mut self, failed_record_count: u64) {
        self.calls += 1;
        self.failed_record_count += failed_record_count;
    }

    fn success(
        &mut self,
        index: usize,
        shard_id: &str,
        sequence_number: &str,
    ) -> Result<(), Failed> {
        let previous = self
            .stored
            .insert(index, (shard_id.to_owned(), sequence_number.to_owned()));
        match previous {
            None => Ok(()),
            Some(p) => Err(format!(
                "record {index} was answered as stored twice: {p:?}, then ({shard_id}, {sequence_number})"
            )
            .into()),
        }
    }

    /// The JSON lines the client programs print: {"Call", "Records", "FailedRecordCount"},
    /// {"Index", "ShardId", "SequenceNumber"}, {"Index", "ErrorCode", "ErrorMessage"}; other
    /// objects (the Java client's request headers, version lines) are left to the caller.
    fn from_lines(lines: &[Value]) -> Result<Answers, Failed> {
        let mut answers = Answers::default();
        for line in lines {
            if let Some(failed) = line.get("FailedRecordCount") {
                let failed = failed.as_u64().ok_or_else(|| format!("bad line {line}"))?;
                answers.call(failed);
            } else if let Some(index) = line.get("Index").and_then(Value::as_u64) {
                let index = index as usize;
                let text = |f: &str| line.get(f).and_then(Value::as_str);
                match (text("ShardId"), text("SequenceNumber"), text("ErrorCode")) {
                    (_, _, Some(code)) => answers.failures.push((
                        index,
                        code.to_owned(),
                        text("ErrorMessage").unwrap_or_default().to_owned(),
                    )),
                    (Some(shard), Some(seq), None) => answers.success(index, shard, seq)?,
                    _ => {
                        return Err(format!(
                        "an answer with neither ShardId and SequenceNumber nor ErrorCode: {line}"
                    )
                        .into())
                    }
                }
            }
        }
        Ok(answers)
    }
}

/// The checks every trial ends with. `answers` is `None` for a client that does not show
/// its answers (Fluent Bit); `keys_known` is false when the client picks partition keys
/// itself (then only the data is compared).
fn check_stream(
    stream: &str,
    expected: &[(String, Vec<u8>)],
    answers: Option<&Answers>,
    keys_known: bool,
) -> Result<(usize, usize), Failed> {
    let (stored, shard_ids) = block_on(
        async {
            let admin = support::admin();
            let stored = support::read_all(&admin, stream).await;
            let shards = admin
                .list_shards()
                .stream_name(stream)
                .send()
                .await
                .map_err(|e| format!("ListShards: {e:?}"))?;
            let ids: BTreeSet<String> = shards
                .shards()
                .iter()
                .map(|s| s.shard_id().to_owned())
                .collect();
            Ok((stored, ids))
        },
        Duration::from_secs(120),
    )?;

    // Read back as KCL does: every record exactly once, nothing dropped by a range filter.
    let (delivered, dropped) = support::kcl_view(&stored);
    if dropped != 0 {
        return Err(
            format!("KCL's range filter dropped records from {dropped} Kinesis records").into(),
        );
    }
    if keys_known {
        support::assert_same_records(
            &support::counts(delivered),
            &support::counts(expected.iter().cloned()),
            "read back under the KCL policy",
        );
    } else {
        let data_only = |v: Vec<(String, Vec<u8>)>| {
            support::counts(v.into_iter().map(|(_, d)| (String::new(), d)))
        };
        support::assert_same_records(
            &data_only(delivered),
            &data_only(expected.to_vec()),
            "read back under the KCL policy (data only: the client picks the keys)",
        );
    }

    if let Some(answers) = answers {
        check_answers(expected, answers, &stored, &shard_ids)?;
    }

    // Aggregation.
    let ratio = expected.len() as f64 / stored.len().max(1) as f64;
    if !direct() && ratio < MIN_RECORDS_PER_KINESIS_RECORD {
        // How the records were cut, shard by shard, in stored order.
        let mut sizes: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
        for s in stored.iter() {
            let n = deaggregate(&s.data, s.partition_key.as_bytes(), &Options::kcl())
                .map_or(0, |d| d.count());
            sizes.entry(s.shard_id.as_str()).or_default().push(n);
        }
        // Runs of equal sizes shortened: `128 x 1` is 128 Kinesis records of one user record.
        let sizes: BTreeMap<&str, String> = sizes
            .into_iter()
            .map(|(shard, v)| {
                let mut runs: Vec<(usize, usize)> = Vec::new();
                for n in v {
                    match runs.last_mut() {
                        Some((count, size)) if *size == n => *count += 1,
                        _ => runs.push((1, n)),
                    }
                }
                let text = runs
                    .iter()
                    .map(|&(count, size)| match count {
                        1 => size.to_string(),
                        _ => format!("{count} x {size}"),
                    })
                    .collect::<Vec<_>>()
                    .join(", ");
                (shard, text)
            })
            .collect();
        return Err(format!(
            "{} user records went into {} Kinesis records: {ratio:.1} per record, fewer than {MIN_RECORDS_PER_KINESIS_RECORD}; user records per Kinesis record, by shard in stored order: {sizes:?}",
            expected.len(),
            stored.len()
        )
        .into());
    }
    Ok((expected.len(), stored.len()))
}

/// Every record was answered as stored, under a shard of the stream and a sequence number
/// whose Kinesis record holds it; failed entries carry retryable codes and add up to the
/// calls' FailedRecordCount.
fn check_answers(
    expected: &[(String, Vec<u8>)],
    answers: &Answers,
    stored: &[support::Stored],
    shard_ids: &BTreeSet<String>,
) -> Result<(), Failed> {
    let missing: Vec<usize> = (0..expected.len())
        .filter(|i| !answers.stored.contains_key(i))
        .collect();
    if !missing.is_empty() {
        return Err(format!(
            "{} of {} records were never answered as stored (e.g. indexes {:?}); failures: {:?}",
            missing.len(),
            expected.len(),
            &missing[..missing.len().min(5)],
            &answers.failures[..answers.failures.len().min(5)]
        )
        .into());
    }
    if let Some(extra) = answers.stored.keys().find(|&&i| i >= expected.len()) {
        return Err(format!("an answer for record {extra}, of {}", expected.len()).into());
    }
    if answers.failed_record_count != answers.failures.len() as u64 {
        return Err(format!(
            "FailedRecordCount adds up to {} over {} calls, but {} entries carried an ErrorCode",
            answers.failed_record_count,
            answers.calls,
            answers.failures.len()
        )
        .into());
    }
    if let Some(f) = answers
        .failures
        .iter()
        .find(|(_, code, _)| !RETRYABLE.contains(&code.as_str()))
    {
        return Err(format!(
            "record {} was answered with a non-retryable error: {f:?}",
            f.0
        )
        .into());
    }

    // (shard, sequence number) -> the user records in that Kinesis record.
    let mut by_sequence: BTreeMap<(&str, &str), BTreeSet<UserRecord>> = BTreeMap::new();
    let options = Options {
        policy: Policy::Kcl,
        verify_md5: true,
        shard_range: None,
    };
    for s in stored {
        let users = deaggregate(&s.data, s.partition_key.as_bytes(), &options)
            .map_err(|e| format!("deaggregate: {e}"))?;
        let set = by_sequence
            .entry((s.shard_id.as_str(), s.sequence_number.as_str()))
            .or_default();
        for u in users {
            set.insert((
                String::from_utf8_lossy(u.partition_key).into_owned(),
                u.data.to_vec(),
            ));
        }
    }
    for (&i, (shard, seq)) in &answers.stored {
        if !shard_ids.contains(shard) {
            return Err(format!("record {i} was answered ShardId {shard:?}, not a shard of the stream ({shard_ids:?})").into());
        }
        if seq.is_empty() || !seq.bytes().all(|b| b.is_ascii_digit()) {
            return Err(format!("record {i} was answered SequenceNumber {seq:?}").into());
        }
        let Some(users) = by_sequence.get(&(shard.as_str(), seq.as_str())) else {
            return Err(format!(
                "record {i} was answered ({shard}, {seq}), but no Kinesis record has that shard and sequence number"
            )
            .into());
        };
        if !users.contains(&expected[i]) {
            return Err(format!(
                "record {i} was answered ({shard}, {seq}), but that Kinesis record ({} user records) does not hold it",
                users.len()
            )
            .into());
        }
    }
    Ok(())
}

/// What a client sends besides its records' puts, for the server's counts.
#[derive(Clone, Copy)]
struct Besides {
    /// Records put to a stream that does not exist (the client programs put one).
    missing_stream_puts: usize,
    /// Requests the server forwards (Vector's DescribeStream).
    forwarded: u64,
}

const NOTHING_BESIDES: Besides = Besides {
    missing_stream_puts: 0,
    forwarded: 0,
};

/// The end of every trial: stops the server (checking its exit and summary), reads the
/// stream back and checks it, and prints one line on what happened. `answers` is `None`
/// for a client that shows none (Fluent Bit), which also picks its own partition keys.
fn finish(
    client: &str,
    target: Target,
    stream: &str,
    expected: &[UserRecord],
    answers: Option<&Answers>,
    besides: Besides,
    client_time: Duration,
) -> Result<(), Failed> {
    let counts = target.stop()?;
    let (user_records, kinesis_records) =
        check_stream(stream, expected, answers, answers.is_some())?;
    // A client that shows no answers (Fluent Bit) logged no failure: then none was answered,
    // and nothing was put twice.
    check_summary(
        counts.as_ref(),
        expected.len(),
        answers.map_or(0, |a| a.failures.len()),
        besides.missing_stream_puts,
        kinesis_records,
        besides.forwarded,
    )?;
    let (calls, failed) = answers.map_or((String::from("?"), 0), |a| {
        (a.calls.to_string(), a.failures.len())
    });
    eprintln!(
        "  {client}: {user_records} user records in {kinesis_records} Kinesis records ({:.1} per record), {calls} calls, {failed} failed entries retried, client {:.1} s",
        user_records as f64 / kinesis_records.max(1) as f64,
        client_time.as_secs_f64()
    );
    Ok(())
}

/// Creates the trial's stream (4 shards) in kinesis-mock.
fn create_stream(stream: &str) -> Result<(), Failed> {
    block_on(
        async {
            support::create_stream(&support::admin(), stream, SHARDS).await;
            Ok(())
        },
        Duration::from_secs(60),
    )
}

/// Runs a client to its end (at most CLIENT_LIMIT) with its stdin from `input`: its stdout
/// and stderr.
fn run_client(
    mut command: Command,
    input: Option<Vec<u8>>,
    what: &str,
) -> Result<(String, String), Failed> {
    client_env(&mut command);
    let mut child = command
        .stdin(if input.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot start {what}: {e}"))?;
    let writer = child.stdin.take().zip(input).map(|(mut stdin, input)| {
        std::thread::spawn(move || {
            let _ = stdin.write_all(&input);
        })
    });
    let read = |mut r: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut v = Vec::new();
            let _ = r.read_to_end(&mut v);
            v
        })
    };
    let out = read(Box::new(child.stdout.take().ok_or("stdout")?));
    let err = read(Box::new(child.stderr.take().ok_or("stderr")?));
    let status = wait_until(&mut child, Instant::now() + CLIENT_LIMIT)?;
    if status.is_none() {
        let _ = child.kill();
        let _ = child.wait();
    }
    if let Some(w) = writer {
        let _ = w.join();
    }
    let stdout = String::from_utf8_lossy(&out.join().unwrap_or_default()).into_owned();
    let stderr = String::from_utf8_lossy(&err.join().unwrap_or_default()).into_owned();
    let tail_of = |s: &str| {
        let lines: Vec<&str> = s.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    };
    match status {
        None => {
            return Err(format!(
                "{what} did not finish within {CLIENT_LIMIT:?}; stdout ends:\n{}\nstderr ends:\n{}",
                tail_of(&stdout),
                tail_of(&stderr)
            )
            .into())
        }
        Some(s) if !s.success() => {
            return Err(format!(
                "{what} failed ({s}); stdout ends:\n{}\nstderr ends:\n{}",
                tail_of(&stdout),
                tail_of(&stderr)
            )
            .into())
        }
        Some(_) => {}
    }
    Ok((stdout, stderr))
}

/// A client's stdout as JSON lines.
fn json_lines(stdout: &str, what: &str) -> Result<Vec<Value>, Failed> {
    let mut lines = Vec::new();
    for line in stdout.lines().filter(|l| !l.trim().is_empty()) {
        lines.push(
            serde_json::from_str(line)
                .map_err(|e| format!("{what} printed a line that is not JSON ({e}): {line:?}"))?,
        );
    }
    Ok(lines)
}

/// The clients' credentials and region: fake, different from the server's (it signs its
/// own requests upstream), and nothing from the machine's AWS configuration.
fn client_env(command: &mut Command) {
    command
        .env("AWS_ACCESS_KEY_ID", "AKIDCLIENT")
        .env("AWS_SECRET_ACCESS_KEY", "client-secret")
        .env("AWS_REGION", "us-east-1")
        .env("AWS_DEFAULT_REGION", "us-east-1")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("AWS_CONFIG_FILE", "/dev/null")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
        .env_remove("AWS_SESSION_TOKEN")
        .env_remove("AWS_PROFILE")
        .env_remove("AWS_ENDPOINT_URL")
        .env_remove("AWS_ENDPOINT_URL_KINESIS");
}

/// A client program of cli/tests/serve_clients: `PROGRAM ENDPOINT STREAM INPUT BATCH`,
/// then the checks.
fn program_trial(
    name: &str,
    n: usize,
    command: impl FnOnce(&Target, &Path) -> Result<Command, Failed>,
    extra_checks: impl FnOnce(&[Value]) -> Result<(), Failed>,
) -> Result<(), Failed> {
    let scratch = Scratch::new(name)?;
    let result = (|| {
        let stream = format!("serve-{name}");
        create_stream(&stream)?;
        let expected = records(name, n);
        let input = scratch.path("records.tsv");
        write_tsv(&input, &expected)?;
        let target = Target::start(&scratch, false)?;
        let started = Instant::now();
        let mut cmd = command(&target, &input)?;
        cmd.args([target.url.as_str(), stream.as_str()])
            .arg(&input)
            .arg("500");
        let (stdout, _) = run_client(cmd, None, name)
            .map_err(|e| format!("{}{}", message(&e), target.log_tail()))?;
        let client_time = started.elapsed();
        std::fs::write(scratch.path("client.out"), &stdout)?;
        let lines = json_lines(&stdout, name)?;
        check_missing_stream(&lines, name)?;
        extra_checks(&lines)?;
        let answers = Answers::from_lines(&lines)?;
        finish(
            name,
            target,
            &stream,
            &expected,
            Some(&answers),
            Besides {
                missing_stream_puts: 1,
                forwarded: 0,
            },
            client_time,
        )
    })();
    scratch.keep_on_failure(result)
}

/// The client programs first put to a stream that does not exist: the SDK must have
/// raised its typed ResourceNotFoundException (the error's shape, in the client's protocol,
/// is what Kinesis answers), with status 400 where the client shows it.
fn check_missing_stream(lines: &[Value], client: &str) -> Result<(), Failed> {
    let line = lines
        .iter()
        .find(|l| l.get("MissingStream").is_some())
        .ok_or_else(|| format!("{client} printed no MissingStream line"))?;
    if line["MissingStream"] != "ResourceNotFoundException"
        || line.get("Status").is_some_and(|s| s != 400)
    {
        return Err(format!(
            "{client}'s put to a stream that does not exist did not raise ResourceNotFoundException (400): {line}"
        )
        .into());
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// The trials.

fn python_command(script: &Path) -> Result<Command, Failed> {
    let site = require(&tools().join("python"))?;
    let mut command = Command::new("python3");
    command
        .arg("-s")
        .arg(script)
        .env("PYTHONPATH", site)
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .env("PYTHONUNBUFFERED", "1");
    Ok(command)
}

/// boto3's put_records, 5,000 records in batches of 500.
fn boto3() -> Result<(), Failed> {
    program_trial(
        "boto3",
        5000,
        |_, _| {
            let script = workspace_root().join("cli/tests/serve_clients/boto3_put.py");
            python_command(&script)
        },
        |lines| {
            let version = lines
                .iter()
                .find_map(|l| l.get("Version"))
                .ok_or("boto3 printed no version")?;
            if version != "1.44.3" {
                return Err(format!("boto3 {version} ran, not the pinned 1.44.3").into());
            }
            Ok(())
        },
    )
}

/// aws-sdk-go-v2's PutRecords, 3,000 records in batches of 500.
fn go_sdk() -> Result<(), Failed> {
    program_trial(
        "go",
        3000,
        |_, _| Ok(Command::new(require(&tools().join("go-put-records"))?)),
        |_| Ok(()),
    )
}

/// The AWS SDK for Java v2's PutRecords in its default protocol, CBOR (checked on every
/// request as it leaves, and on every response), over HTTP/1.1; 3,000 records in batches
/// of 500.
fn java_sdk() -> Result<(), Failed> {
    program_trial(
        "java",
        3000,
        |_, _| {
            let dir = tools().join("java");
            let classpath = std::fs::read_to_string(require(&dir.join("classpath.txt"))?)?;
            let classes = require(&dir.join("target/classes/PutRecordsClient.class"))?;
            let mut command = Command::new("java");
            command
                .args([
                    "-XX:+UseSerialGC",
                    "-XX:TieredStopAtLevel=1",
                    "-Xmx256m",
                    "-cp",
                ])
                .arg(format!(
                    "{}:{}",
                    classes.parent().ok_or("classes")?.display(),
                    classpath.trim()
                ))
                .arg("PutRecordsClient")
                // The SDK reads these to turn CBOR off: make sure nothing does.
                .env_remove("AWS_CBOR_DISABLED")
                .env_remove("JAVA_TOOL_OPTIONS");
            Ok(command)
        },
        |lines| {
            let requests: Vec<&Value> = lines
                .iter()
                .filter(|l| l.get("ContentType").is_some())
                .collect();
            let puts: Vec<&&Value> = requests
                .iter()
                .filter(|l| l["Target"] == "Kinesis_20131202.PutRecords")
                .collect();
            if puts.is_empty() {
                return Err(format!(
                    "no PutRecords request was seen leaving the SDK: {requests:?}"
                )
                .into());
            }
            if let Some(other) = requests
                .iter()
                .find(|l| l["ContentType"] != "application/x-amz-cbor-1.1")
            {
                return Err(
                    format!("the Java SDK sent a request that is not CBOR: {other}").into(),
                );
            }
            // Answered in the protocol asked.
            let responses: Vec<&Value> = lines
                .iter()
                .filter(|l| l.get("ResponseContentType").is_some())
                .collect();
            if responses.len() != requests.len() {
                return Err(format!(
                    "{} requests but {} responses seen",
                    requests.len(),
                    responses.len()
                )
                .into());
            }
            if let Some(other) = responses
                .iter()
                .find(|l| l["ResponseContentType"] != "application/x-amz-cbor-1.1")
            {
                return Err(format!("a response that is not CBOR: {other}").into());
            }
            // All 200s but the missing stream's 400.
            let errors = responses.iter().filter(|l| l["Status"] != 200).count();
            if errors != 1 {
                return Err(format!("{errors} responses were not 200, expected 1 (the missing stream): {responses:?}").into());
            }
            Ok(())
        },
    )
}

/// The AWS CLI v1: `aws kinesis put-records --cli-input-json file://...`, 2,000 records in
/// four calls of 500 (records answered with an error go again in the next call), then one
/// more with `aws kinesis put-record`.
fn aws_cli() -> Result<(), Failed> {
    let name = "aws-cli";
    let scratch = Scratch::new(name)?;
    let result = (|| {
        let stream = format!("serve-{name}");
        create_stream(&stream)?;
        let expected = records(name, 2001);
        let last = expected.len() - 1;
        let aws = require(&tools().join("python/bin/aws"))?;
        let target = Target::start(&scratch, false)?;
        let started = Instant::now();
        let mut answers = Answers::default();
        let mut pending: Vec<usize> = (0..last).collect();
        let mut attempts = vec![0u32; expected.len()];
        while !pending.is_empty() {
            let batch: Vec<usize> = pending.drain(..pending.len().min(500)).collect();
            // AWS CLI v1 takes a blob as text and base64-encodes it itself.
            let input = json!({
                "StreamName": stream,
                "Records": batch.iter().map(|&i| json!({
                    "Data": String::from_utf8_lossy(&expected[i].1),
                    "PartitionKey": expected[i].0,
                })).collect::<Vec<_>>(),
            });
            let file = scratch.path(&format!("call-{}.json", answers.calls + 1));
            std::fs::write(&file, input.to_string())?;
            let mut cmd = python_command(&aws)?;
            cmd.args([
                "kinesis",
                "put-records",
                "--endpoint-url",
                &target.url,
                "--output",
                "json",
            ])
            .arg("--cli-input-json")
            .arg(format!("file://{}", file.display()));
            let (stdout, _) = run_client(cmd, None, "aws kinesis put-records")
                .map_err(|e| format!("{}{}", message(&e), target.log_tail()))?;
            // The CLI prints the answer as one (pretty-printed) JSON document.
            let answer: Value = serde_json::from_str(&stdout)
                .map_err(|e| format!("aws printed no JSON answer ({e}): {stdout}"))?;
            answers.call(answer["FailedRecordCount"].as_u64().unwrap_or(0));
            let entries = answer["Records"]
                .as_array()
                .ok_or_else(|| format!("no Records in {answer}"))?;
            if entries.len() != batch.len() {
                return Err(format!(
                    "{} entries answered for {} records",
                    entries.len(),
                    batch.len()
                )
                .into());
            }
            let mut retry = Vec::new();
            for (&i, entry) in batch.iter().zip(entries) {
                if let Some(code) = entry["ErrorCode"].as_str() {
                    answers.failures.push((
                        i,
                        code.to_owned(),
                        entry["ErrorMessage"]
                            .as_str()
                            .unwrap_or_default()
                            .to_owned(),
                    ));
                    attempts[i] += 1;
                    if attempts[i] >= 10 {
                        return Err(format!("record {i} failed 10 times: {entry}").into());
                    }
                    retry.push(i);
                } else {
                    let text = |f: &str| {
                        entry[f]
                            .as_str()
                            .ok_or_else(|| format!("no {f} in {entry}"))
                    };
                    answers.success(i, text("ShardId")?, text("SequenceNumber")?)?;
                }
            }
            retry.append(&mut pending);
            pending = retry;
        }
        // And the last record alone, with PutRecord.
        let (key, data) = &expected[last];
        let mut cmd = python_command(&aws)?;
        cmd.args(["kinesis", "put-record", "--endpoint-url", &target.url])
            .args(["--output", "json", "--stream-name", &stream])
            .args(["--partition-key", key, "--data"])
            .arg(String::from_utf8_lossy(data).as_ref());
        let (stdout, _) = run_client(cmd, None, "aws kinesis put-record")
            .map_err(|e| format!("{}{}", message(&e), target.log_tail()))?;
        let answer: Value = serde_json::from_str(&stdout)
            .map_err(|e| format!("aws printed no JSON answer ({e}): {stdout}"))?;
        let text = |f: &str| {
            answer[f]
                .as_str()
                .ok_or_else(|| format!("no {f} in PutRecord's answer {answer}"))
        };
        answers.success(last, text("ShardId")?, text("SequenceNumber")?)?;
        let client_time = started.elapsed();
        finish(
            name,
            target,
            &stream,
            &expected,
            Some(&answers),
            NOTHING_BESIDES,
            client_time,
        )
    })();
    scratch.keep_on_failure(result)
}

/// aws-sdk-kinesis (Rust) making Vector's `aws_kinesis_streams` calls: the healthcheck
/// (DescribeStream with Limit 1, StreamName compared), then PutRecords of 500 records with
/// random 16-character partition keys, six batches; failed entries are put again.
fn rust_sdk() -> Result<(), Failed> {
    let name = "rust-vector";
    let scratch = Scratch::new(name)?;
    let result = (|| {
        let stream = format!("serve-{name}");
        create_stream(&stream)?;
        let expected = records(name, 3000);
        let target = Target::start(&scratch, false)?;
        let started = Instant::now();
        let url = target.url.clone();
        let answers = block_on(
            async {
                let config = aws_config::SdkConfig::builder()
                    .behavior_version(aws_sdk_kinesis::config::BehaviorVersion::latest())
                    .region(aws_sdk_kinesis::config::Region::new("us-east-1"))
                    .credentials_provider(aws_sdk_kinesis::config::SharedCredentialsProvider::new(
                        aws_sdk_kinesis::config::Credentials::new(
                            "AKIDCLIENT",
                            "client-secret",
                            None,
                            None,
                            "vector-like",
                        ),
                    ))
                    .endpoint_url(&url)
                    .build();
                let client = aws_sdk_kinesis::Client::new(&config);
                // Vector's healthcheck.
                let described = client
                    .describe_stream()
                    .stream_name(&stream)
                    .set_exclusive_start_shard_id(None)
                    .limit(1)
                    .send()
                    .await
                    .map_err(|e| format!("DescribeStream: {e:?}"))?;
                let description = described
                    .stream_description()
                    .ok_or("DescribeStream answered no StreamDescription")?;
                if description.stream_name() != stream {
                    return Err(format!(
                        "DescribeStream answered StreamName {:?}",
                        description.stream_name()
                    )
                    .into());
                }
                if description.shards().len() != 1 || !description.has_more_shards() {
                    return Err(format!(
                        "DescribeStream with Limit 1 answered {} shards, HasMoreShards {}",
                        description.shards().len(),
                        description.has_more_shards()
                    )
                    .into());
                }
                // A stream that does not exist: the SDK's typed error.
                let missing = client
                    .put_records()
                    .records(
                        PutRecordsRequestEntry::builder()
                            .data(Blob::new(&b"never stored"[..]))
                            .partition_key("k")
                            .build()?,
                    )
                    .stream_name(format!("{stream}-missing"))
                    .send()
                    .await;
                match missing {
                    Err(e) if e.as_service_error().is_some_and(|s| s.is_resource_not_found_exception()) => {}
                    other => {
                        return Err(format!(
                            "a put to a stream that does not exist did not fail with ResourceNotFoundException: {other:?}"
                        )
                        .into())
                    }
                }
                // Vector's PutRecords.
                let mut answers = Answers::default();
                let mut pending: Vec<usize> = (0..expected.len()).collect();
                let mut attempts = vec![0u32; expected.len()];
                while !pending.is_empty() {
                    let batch: Vec<usize> = pending.drain(..pending.len().min(500)).collect();
                    let entries = batch
                        .iter()
                        .map(|&i| {
                            PutRecordsRequestEntry::builder()
                                .data(Blob::new(expected[i].1.clone()))
                                .partition_key(&expected[i].0)
                                .build()
                        })
                        .collect::<Result<Vec<_>, _>>()?;
                    let output = client
                        .put_records()
                        .set_records(Some(entries))
                        .stream_name(&stream)
                        .send()
                        .await
                        .map_err(|e| format!("PutRecords: {e:?}"))?;
                    answers.call(output.failed_record_count().unwrap_or(0).max(0) as u64);
                    if output.records().len() != batch.len() {
                        return Err(format!(
                            "{} entries answered for {} records",
                            output.records().len(),
                            batch.len()
                        )
                        .into());
                    }
                    let mut retry = Vec::new();
                    for (&i, entry) in batch.iter().zip(output.records()) {
                        if let Some(code) = entry.error_code() {
                            answers.failures.push((
                                i,
                                code.to_owned(),
                                entry.error_message().unwrap_or_default().to_owned(),
                            ));
                            attempts[i] += 1;
                            if attempts[i] >= 10 {
                                return Err(format!("record {i} failed 10 times: {entry:?}").into());
                            }
                            retry.push(i);
                        } else {
                            answers.success(
                                i,
                                entry
                                    .shard_id()
                                    .ok_or("an entry without ShardId or ErrorCode")?,
                                entry
                                    .sequence_number()
                                    .ok_or("an entry without SequenceNumber or ErrorCode")?,
                            )?;
                        }
                    }
                    retry.append(&mut pending);
                    pending = retry;
                }
                Ok(answers)
            },
            CLIENT_LIMIT,
        )
        .map_err(|e| format!("{}{}", message(&e), target.log_tail()))?;
        let client_time = started.elapsed();
        finish(
            name,
            target,
            &stream,
            &expected,
            Some(&answers),
            Besides {
                missing_stream_puts: 1,
                forwarded: 1,
            },
            client_time,
        )
    })();
    scratch.keep_on_failure(result)
}

/// `$FLUENT_BIT`, else the shared build next to the workspace.
fn fluent_bit_binary() -> Result<Option<PathBuf>, Failed> {
    if let Some(path) = std::env::var_os("FLUENT_BIT") {
        let path = PathBuf::from(path);
        return if path.is_file() {
            Ok(Some(path))
        } else {
            Err(format!("FLUENT_BIT={} is not a file", path.display()).into())
        };
    }
    let shared = workspace_root().join("../shared/tools/fluent-bit/bin/fluent-bit");
    Ok(shared.is_file().then_some(shared))
}

/// Fluent Bit's `kinesis_streams` output over TLS (it speaks nothing else), 3,000 NDJSON
/// lines through `in_stdin` (a pipe). Fluent Bit shows no per-record answers; it must log no
/// error or warning, exit 0, and every line must be read back once, as the JSON line plus a
/// newline that kinesis_streams makes of it.
fn fluent_bit() -> Result<(), Failed> {
    let Some(binary) = fluent_bit_binary()? else {
        eprintln!(
            "  fluent_bit_kinesis_streams_over_tls: SKIPPED, no Fluent Bit: set FLUENT_BIT=/path/to/fluent-bit or put one at ../shared/tools/fluent-bit/bin/fluent-bit"
        );
        return Ok(());
    };
    let name = "fluent-bit";
    let scratch = Scratch::new(name)?;
    let result = (|| {
        let stream = format!("serve-{name}");
        create_stream(&stream)?;
        let mut rng = Rng::new(name);
        let mut input = Vec::new();
        let mut expected = Vec::new();
        for i in 0..3000 {
            let head = format!("{{\"client\":\"fluent-bit\",\"i\":{i},\"pad\":\"");
            let pad = rng.text(
                b"abcdefghijklmnopqrstuvwxyz",
                RECORD_SIZE - 1 - head.len() - 2,
            );
            let line = format!("{head}{pad}\"}}");
            input.extend_from_slice(line.as_bytes());
            input.push(b'\n');
            expected.push((String::new(), format!("{line}\n").into_bytes()));
        }
        let target = Target::start(&scratch, true)?;
        let ca = target.ca_file.clone().ok_or("no certificate")?;
        // stdin's end starts the shutdown; the grace period (5 s by default) must cover
        // storing everything still buffered, on a loaded machine too.
        let service = scratch.path("service.conf");
        std::fs::write(&service, "[SERVICE]\n    grace 60\n")?;
        let mut cmd = Command::new(&binary);
        cmd.arg("-c")
            .arg(&service)
            .args(["-i", "stdin", "-o", "kinesis_streams", "-m", "*"])
            .args(["-p", &format!("stream={stream}"), "-p", "region=us-east-1"])
            .args([
                "-p",
                "endpoint=127.0.0.1",
                "-p",
                &format!("port={}", target.port),
            ])
            .args(["-p", "tls.verify=on"])
            .arg("-p")
            .arg(format!("tls.ca_file={}", ca.display()));
        let started = Instant::now();
        let (_, log) = run_client(cmd, Some(input), "fluent-bit")
            .map_err(|e| format!("{}{}", message(&e), target.log_tail()))?;
        let client_time = started.elapsed();
        std::fs::write(scratch.path("fluent-bit.log"), &log)?;
        let complaints: Vec<&str> = log
            .lines()
            .filter(|l| {
                // Not complaints: stdin's end, and the shutdown it starts.
                l.contains("[error]")
                    || (l.contains("[ warn]")
                        && !l.contains("[input:stdin:")
                        && !l.contains("service will shutdown"))
            })
            .collect();
        if !complaints.is_empty() {
            return Err(format!(
                "Fluent Bit complained:\n{}{}",
                complaints.join("\n"),
                target.log_tail()
            )
            .into());
        }
        finish(
            name,
            target,
            &stream,
            &expected,
            None,
            NOTHING_BESIDES,
            client_time,
        )
    })();
    scratch.keep_on_failure(result)
}
