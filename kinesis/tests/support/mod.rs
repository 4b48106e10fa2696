//! kinesis-mock for integration tests: the test binary re-runs itself inside a private
//! network namespace (`unshare -rn`), brings loopback up, starts kinesis-mock there (it
//! listens on every interface, so nothing outside the namespace can reach it), runs the
//! tests against `http://127.0.0.1:4568`, and stops the server.
//!
//! kinesis-mock comes from `KPL_KINESIS_MOCK_DIR` (a `node_modules/kinesis-local` folder),
//! by default `.tools/kinesis-mock/node_modules/kinesis-local` in the workspace, which
//! `ci/kinesis-mock install` sets up (npm kinesis-local 0.6.2).
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use aws_sdk_kinesis::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_kinesis::types::{ShardIteratorType, StreamStatus};
use aws_sdk_kinesis::Client;
use kpl_codec::{deaggregate, HashRange, Options, Policy, Verdict};

/// The plain-HTTP endpoint inside the namespace.
pub const ENDPOINT: &str = "http://127.0.0.1:4568";

const MARKER: &str = "KPL_TEST_IN_NETNS";

/// The server, stopped on drop.
pub struct MockServer {
    child: Child,
}

impl MockServer {
    /// The server's process id (to pause it with SIGSTOP and resume it with SIGCONT).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for MockServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Call first in `main`. Outside the namespace it re-runs this binary inside one and
/// exits with its status; inside, it starts kinesis-mock and returns it.
pub fn enter_namespace_and_start() -> MockServer {
    if std::env::var_os(MARKER).is_none() {
        let exe = std::env::current_exe().unwrap_or_else(|e| panic!("current_exe: {e}"));
        let status = Command::new("unshare")
            .arg("-rn")
            .arg(exe)
            .args(std::env::args_os().skip(1))
            .env(MARKER, "1")
            .status()
            .unwrap_or_else(|e| {
                panic!("cannot run `unshare -rn` (util-linux) for a private network namespace: {e}")
            });
        std::process::exit(status.code().unwrap_or(1));
    }
    let up = Command::new("ip")
        .args(["link", "set", "lo", "up"])
        .status();
    assert!(
        matches!(up, Ok(s) if s.success()),
        "ip link set lo up failed: {up:?}"
    );
    let dir = std::env::var_os("KPL_KINESIS_MOCK_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            // The workspace root: the nearest folder up holding Cargo.lock.
            let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
            let root = manifest
                .ancestors()
                .find(|d| d.join("Cargo.lock").exists())
                .unwrap_or(&manifest)
                .to_path_buf();
            root.join(".tools/kinesis-mock/node_modules/kinesis-local")
        });
    assert!(
        dir.join("main.js").exists(),
        "kinesis-mock not found in {}: run `bash ci/kinesis-mock install`",
        dir.display()
    );
    // Its warnings (stack traces for refused requests the tests make on purpose) go to a
    // file, named on failure.
    let log_path = std::env::temp_dir().join(format!("kinesis-mock-{}.log", std::process::id()));
    let log = std::fs::File::create(&log_path)
        .unwrap_or_else(|e| panic!("cannot create {}: {e}", log_path.display()));
    let child = Command::new("node")
        .arg(dir.join("main.js"))
        .env("KINESIS_MOCK_CERT_PATH", dir.join("server.json"))
        .env("KINESIS_MOCK_PLAIN_PORT", "4568")
        .env("KINESIS_MOCK_TLS_PORT", "4567")
        .env("CREATE_STREAM_DURATION", "0ms")
        .env("DELETE_STREAM_DURATION", "0ms")
        .env("UPDATE_SHARD_COUNT_DURATION", "0ms")
        .env("SPLIT_SHARD_DURATION", "0ms")
        .env("MERGE_SHARDS_DURATION", "0ms")
        .env("LOG_LEVEL", "WARN")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start node: {e}"));
    let server = MockServer { child };
    let started = Instant::now();
    while !healthy() {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "kinesis-mock did not become healthy in 60 s; its log: {}",
            log_path.display()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    server
}

fn healthy() -> bool {
    let Ok(mut s) = TcpStream::connect("127.0.0.1:4568") else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    if s.write_all(b"GET /healthcheck HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        .is_err()
    {
        return false;
    }
    let mut answer = String::new();
    let _ = s.read_to_string(&mut answer);
    answer.starts_with("HTTP/1.1 200")
}

/// Fake static credentials, region and endpoint for the mock.
pub fn sdk_config() -> aws_config::SdkConfig {
    aws_config::SdkConfig::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .credentials_provider(aws_sdk_kinesis::config::SharedCredentialsProvider::new(
            Credentials::new("AKIDTEST", "secret", None, None, "kpl-tests"),
        ))
        .endpoint_url(ENDPOINT)
        .build()
}

/// A client for setting streams up and reading them back.
pub fn admin() -> Client {
    Client::new(&sdk_config())
}

/// Creates a stream and waits until it is active.
pub async fn create_stream(client: &Client, name: &str, shards: i32) {
    client
        .create_stream()
        .stream_name(name)
        .shard_count(shards)
        .send()
        .await
        .unwrap_or_else(|e| panic!("CreateStream {name}: {e:?}"));
    wait_active(client, name).await;
}

/// Waits until the stream is ACTIVE (after a create or a reshard), polling; a minute is
/// far more than kinesis-mock (set to change states at once) takes, even on a busy machine.
pub async fn wait_active(client: &Client, name: &str) {
    let limit = Duration::from_secs(60);
    let started = Instant::now();
    loop {
        let d = client
            .describe_stream_summary()
            .stream_name(name)
            .send()
            .await
            .unwrap_or_else(|e| panic!("DescribeStreamSummary {name}: {e:?}"));
        if d.stream_description_summary().map(|s| s.stream_status()) == Some(&StreamStatus::Active)
        {
            return;
        }
        assert!(
            started.elapsed() < limit,
            "stream {name} did not become ACTIVE in {limit:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A Kinesis record as read back, with the shard it was read from.
pub struct Stored {
    pub shard_id: String,
    pub range: HashRange,
    pub sequence_number: String,
    pub partition_key: String,
    pub data: Vec<u8>,
}

/// Every record of every shard (closed ones included), oldest first per shard.
pub async fn read_all(client: &Client, name: &str) -> Vec<Stored> {
    let mut out = Vec::new();
    let shards = client
        .list_shards()
        .stream_name(name)
        .send()
        .await
        .unwrap_or_else(|e| panic!("ListShards: {e:?}"));
    for shard in shards.shards() {
        let range = shard.hash_key_range().expect("ListShards gives ranges");
        let range = HashRange::new(
            range.starting_hash_key().parse().expect("decimal"),
            range.ending_hash_key().parse().expect("decimal"),
        );
        let mut iterator = client
            .get_shard_iterator()
            .stream_name(name)
            .shard_id(shard.shard_id())
            .shard_iterator_type(ShardIteratorType::TrimHorizon)
            .send()
            .await
            .unwrap_or_else(|e| panic!("GetShardIterator: {e:?}"))
            .shard_iterator()
            .map(str::to_owned);
        while let Some(it) = iterator {
            let page = client
                .get_records()
                .shard_iterator(it)
                .limit(10_000)
                .send()
                .await
                .unwrap_or_else(|e| panic!("GetRecords: {e:?}"));
            for r in page.records() {
                out.push(Stored {
                    shard_id: shard.shard_id().to_owned(),
                    range,
                    sequence_number: r.sequence_number().to_owned(),
                    partition_key: r.partition_key().unwrap_or_default().to_owned(),
                    data: r.data().as_ref().to_vec(),
                });
            }
            if page.records().is_empty() {
                break;
            }
            iterator = page.next_shard_iterator().map(str::to_owned);
        }
    }
    out
}

/// What a KCL consumer reading each shard with its hash-range filter hands to the
/// application: (partition key, data) of every user record, plus how many aggregates
/// the filter (or a defect) dropped records from.
pub fn kcl_view(stored: &[Stored]) -> (Vec<(String, Vec<u8>)>, usize) {
    let mut records = Vec::new();
    let mut dropped = 0;
    for s in stored {
        let options = Options {
            policy: Policy::Kcl,
            verify_md5: true,
            shard_range: Some(s.range),
        };
        let Ok(decoded) = deaggregate(&s.data, s.partition_key.as_bytes(), &options) else {
            panic!("the KCL policy never fails");
        };
        if let Verdict::Aggregated {
            dropped: Some(_), ..
        } = decoded.verdict()
        {
            dropped += 1;
        }
        for u in decoded {
            records.push((
                String::from_utf8_lossy(u.partition_key).into_owned(),
                u.data.to_vec(),
            ));
        }
    }
    (records, dropped)
}

/// Compares two multisets of (partition key, data), reporting how many records are
/// missing or extra (with a few examples) instead of dumping both.
pub fn assert_same_records(
    actual: &std::collections::BTreeMap<(String, Vec<u8>), usize>,
    expected: &std::collections::BTreeMap<(String, Vec<u8>), usize>,
    what: &str,
) {
    let mut missing = Vec::new();
    let mut extra = Vec::new();
    for (k, n) in expected {
        let got = actual.get(k).copied().unwrap_or(0);
        if got < *n {
            missing.push((k, n - got));
        }
    }
    for (k, n) in actual {
        let want = expected.get(k).copied().unwrap_or(0);
        if *n > want {
            extra.push((k, n - want));
        }
    }
    let show = |v: &[(&(String, Vec<u8>), usize)]| {
        v.iter()
            .take(3)
            .map(|((key, data), n)| format!("{n} x ({key:?}, {:?})", String::from_utf8_lossy(data)))
            .collect::<Vec<_>>()
            .join("; ")
    };
    assert!(
        missing.is_empty() && extra.is_empty(),
        "{what}: {} missing (e.g. {}), {} extra (e.g. {})",
        missing.iter().map(|(_, n)| n).sum::<usize>(),
        show(&missing),
        extra.iter().map(|(_, n)| n).sum::<usize>(),
        show(&extra)
    );
}

/// Runs one async test on its own runtime, failing it after `limit`.
pub fn block_on(
    test: impl std::future::Future<Output = Result<(), libtest_mimic::Failed>>,
    limit: Duration,
) -> Result<(), libtest_mimic::Failed> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?
        .block_on(async {
            tokio::time::timeout(limit, test).await.map_err(|_| {
                libtest_mimic::Failed::from(format!("test took more than {limit:?}"))
            })?
        })
}

/// How many times each (partition key, data) occurs.
pub fn counts(
    records: impl IntoIterator<Item = (String, Vec<u8>)>,
) -> std::collections::BTreeMap<(String, Vec<u8>), usize> {
    let mut m = std::collections::BTreeMap::new();
    for r in records {
        *m.entry(r).or_insert(0) += 1;
    }
    m
}

/// Sink settings for these tests: kinesis-mock on two busy cores can take seconds to store
/// a 5 MiB PutRecords, and a timed-out request that was stored anyway is sent again
/// (at-least-once), which exact-count tests must not see: requests get a minute.
pub fn patient_config() -> kpl_kinesis::sink::Config {
    kpl_kinesis::sink::Config {
        request_timeout: PATIENT_REQUEST_TIMEOUT,
        record_ttl: PATIENT_RECORD_TTL,
        ..kpl_kinesis::sink::Config::default()
    }
}

/// [`patient_config`], but records leave only when the test flushes (or a PutRecords
/// batch fills): `RecordMaxBufferedTime` is an hour. Aggregate boundaries then depend on
/// the records alone, never on how fast the test happened to put them (a slow machine
/// would otherwise send part of them when their 100 ms are over).
pub fn flush_only_config() -> kpl_kinesis::sink::Config {
    kpl_kinesis::sink::Config {
        record_max_buffered_time: 3_600_000,
        // Nothing is stored before the first flush, so the drain rule would hold the
        // producer at this floor and send early; the whole input fits below it.
        buffer_min_bytes: 64 * 1024 * 1024,
        ..patient_config()
    }
}

/// [`patient_config`]'s `RequestTimeout` and `RecordTtl`, ms.
pub const PATIENT_REQUEST_TIMEOUT: u64 = 60_000;
pub const PATIENT_RECORD_TTL: u64 = 300_000;

/// A sink on the mock that has its shard map, so it aggregates per shard from the first
/// record on.
pub async fn sink_for(
    stream: &str,
    config: kpl_kinesis::sink::Config,
) -> Result<kpl_kinesis::sink::Sink, libtest_mimic::Failed> {
    let sink = kpl_kinesis::sink::Sink::builder()
        .stream_name(stream)
        .sdk_config(sdk_config())
        .config(config)
        .build()
        .await?;
    if !sink.wait_for_shard_map(Duration::from_secs(30)).await {
        return Err("the sink got no shard map in 30 s".into());
    }
    Ok(sink)
}

/// Awaits every outcome; the first failure fails the test.
pub async fn all_stored(
    pending: Vec<kpl_kinesis::sink::PendingOutcome>,
) -> Result<(), libtest_mimic::Failed> {
    for p in pending {
        let id = p.id();
        if let kpl_kinesis::sink::Outcome::Failure(f) = p.await {
            return Err(format!("record {id:?} failed: {f}").into());
        }
    }
    Ok(())
}
