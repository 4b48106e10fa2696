//! Interop with the real KCL 3.5.1 (`KclLeaseHarness`, built by `bash ci/kcl-lease install`)
//! through one lease table in moto's DynamoDB, on kinesis-mock (both inside a private
//! network namespace):
//! - kpl workers read part of a stream, checkpointing each record, and stop cleanly; a KCL
//!   worker on the same table resumes at their checkpoints: it reads exactly the records kpl
//!   did not, none lost, none repeated;
//! - the other way round: a KCL worker reads the next records, checkpointing, and stops
//!   cleanly; more are put; a kpl worker resumes at KCL's checkpoints (KCL leaves its leases
//!   owned, their counters stopped: kpl takes them once expired) and reads exactly the new
//!   ones.
//!
//! Records carry their number in their data; aggregated by the sink, so that checkpoints
//! fall inside KPL aggregates.

#[path = "support/dynamodb.rs"]
mod dynamodb_server;
mod support;

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use base64::Engine as _;
use kpl_kinesis::sink::UserRecord;
use kpl_kinesis::source::{LeaseSettings, Source, SourceConfig};
use libtest_mimic::{Arguments, Failed, Trial};

/// Both workers' failover time: long enough that a renewal delayed by a loaded machine
/// (moto answering late, a JVM pause) never loses a lease mid-test.
const FAILOVER: Duration = Duration::from_secs(6);

fn main() {
    let args = Arguments::from_args();
    let server = support::enter_namespace_and_start();
    let moto = dynamodb_server::start();
    let trials = vec![Trial::test(
        "kcl_resumes_at_kpl_checkpoints_and_kpl_at_kcl_checkpoints",
        || support::block_on(hand_over(), Duration::from_secs(400)),
    )];
    let conclusion = libtest_mimic::run(&args, trials);
    drop(moto);
    drop(server);
    conclusion.exit();
}

fn root() -> PathBuf {
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    manifest
        .ancestors()
        .find(|d| d.join("Cargo.lock").exists())
        .unwrap_or(&manifest)
        .to_path_buf()
}

/// Puts the records, flushing every `batch` (small aggregates: many Kinesis records).
async fn produce(stream: &str, range: std::ops::Range<u32>, batch: u32) -> Result<(), Failed> {
    let sink = support::sink_for(stream, support::flush_only_config()).await?;
    let mut pending = Vec::new();
    for i in range {
        let record = UserRecord::new(format!("key-{}", i % 37), format!("{i}").into_bytes());
        pending.push(sink.put(record).await?);
        if (i + 1) % batch == 0 {
            sink.flush().await;
        }
    }
    sink.flush().await;
    support::all_stored(pending).await?;
    sink.shutdown(Duration::from_secs(10)).await;
    Ok(())
}

fn number(data: &[u8]) -> Result<u32, Failed> {
    Ok(std::str::from_utf8(data)?.parse()?)
}

/// A kpl worker: reads `limit` records (checkpointing each), or until `idle` passes without
/// one, then stops cleanly (checkpoints written, leases released).
async fn kpl_worker(
    stream: &str,
    table: &str,
    limit: usize,
    idle: Duration,
) -> Result<Vec<u32>, Failed> {
    let mut settings = LeaseSettings::new(table, "kpl-1");
    settings.failover_time = FAILOVER;
    settings.endpoint = Some(dynamodb_server::ENDPOINT.to_owned());
    let mut source = Source::builder()
        .stream_name(stream)
        .sdk_config(support::sdk_config())
        .leases(settings)
        .config(SourceConfig {
            poll_interval: Duration::from_millis(100),
            list_interval: Duration::from_secs(1),
            ..SourceConfig::default()
        })
        .build()
        .await?;
    let mut got = Vec::new();
    while got.len() < limit {
        match tokio::time::timeout(idle, source.next()).await {
            Err(_) => break,
            Ok(None) => return Err("a leased source ended".into()),
            Ok(Some(r)) => {
                let r = r?;
                source.checkpoint(&r)?;
                got.push(number(&r.data)?);
            }
        }
    }
    source.shutdown(Duration::from_secs(10)).await;
    Ok(got)
}

/// The KCL harness until it stops (after `idle_exit` without a record, or `max_run`): the
/// numbers of the records it processed.
fn kcl_worker(stream: &str, table: &str, extra: &[&str]) -> Result<Vec<u32>, Failed> {
    let tools = root().join(".tools/kcl-lease");
    let classpath = std::fs::read_to_string(tools.join("classpath.txt")).map_err(|e| {
        format!("{e}: the KCL harness is not built: run `bash ci/kcl-lease install`")
    })?;
    let cp = format!(
        "{}:{}",
        tools.join("target/classes").display(),
        classpath.trim()
    );
    let log = std::env::temp_dir().join(format!("kcl-interop-{}-{table}.log", std::process::id()));
    let mut child = Command::new("java")
        .args(["-cp", &cp, "KclLeaseHarness"])
        .args(["--stream", stream, "--app", table, "--worker", "kcl-1"])
        .args([
            "--kinesis",
            support::ENDPOINT,
            "--dynamodb",
            dynamodb_server::ENDPOINT,
        ])
        .args(["--failover-ms", &FAILOVER.as_millis().to_string()])
        .args(["--idle-between-reads-ms", "200"])
        .args(["--shard-sync-ms", "2000", "--assignment", "lease-count"])
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&log)?)
        .spawn()?;
    let stdout = child.stdout.take().ok_or("no stdout")?;
    let mut got = Vec::new();
    let mut clean = false;
    for line in BufReader::new(stdout).lines() {
        let line = line?;
        let Ok(v) = serde_json::from_str::<serde_json::Value>(&line) else {
            continue;
        };
        match v.get("event").and_then(|e| e.as_str()) {
            Some("record") => {
                let data = v.get("data").and_then(|d| d.as_str()).ok_or("no data")?;
                let bytes = base64::engine::general_purpose::STANDARD.decode(data)?;
                got.push(number(&bytes)?);
            }
            Some("stopped") => {
                clean = v.get("clean").and_then(serde_json::Value::as_bool) == Some(true);
            }
            _ => {}
        }
    }
    let status = child.wait()?;
    if !status.success() || !clean {
        return Err(format!(
            "KCL worker ended with {status}, clean {clean}; its log: {}",
            log.display()
        )
        .into());
    }
    Ok(got)
}

/// A KCL worker that checkpoints each batch and stops cleanly 15 s after its last record.
async fn kcl_until_idle(stream: &str, table: &str) -> Result<Vec<u32>, Failed> {
    let (s, t) = (stream.to_owned(), table.to_owned());
    tokio::task::spawn_blocking(move || {
        kcl_worker(
            &s,
            &t,
            &["--checkpoint", "batch", "--idle-exit-ms", "15000"],
        )
    })
    .await?
}

fn check_split(
    what: &str,
    all: std::ops::Range<u32>,
    first: &[u32],
    second: &[u32],
) -> Result<(), Failed> {
    let a: BTreeSet<u32> = first.iter().copied().collect();
    let b: BTreeSet<u32> = second.iter().copied().collect();
    if a.len() != first.len() || b.len() != second.len() {
        return Err(format!("{what}: a worker read a record twice").into());
    }
    let both: Vec<&u32> = a.intersection(&b).collect();
    if !both.is_empty() {
        return Err(format!(
            "{what}: {} records read by both, e.g. {:?}",
            both.len(),
            &both[..both.len().min(5)]
        )
        .into());
    }
    let missing: Vec<u32> = all.filter(|i| !a.contains(i) && !b.contains(i)).collect();
    if !missing.is_empty() {
        return Err(format!(
            "{what}: {} records lost, e.g. {:?}",
            missing.len(),
            &missing[..missing.len().min(5)]
        )
        .into());
    }
    Ok(())
}

async fn hand_over() -> Result<(), Failed> {
    let stream = "interop";
    let table = "interop-app";
    support::create_stream(&support::admin(), stream, 4).await;
    produce(stream, 0..400, 400).await?;
    // kpl first: 150 of the 400 records, then a clean stop.
    let kpl = kpl_worker(stream, table, 150, Duration::from_secs(30)).await?;
    if kpl.len() != 150 {
        return Err(format!("kpl read {} records, not 150", kpl.len()).into());
    }
    // KCL on the same table: the rest, from kpl's checkpoints.
    let kcl = kcl_until_idle(stream, table).await?;
    check_split("kpl then KCL", 0..400, &kpl, &kcl)?;
    // The other way round: KCL reads 200 more records, checkpointing, and stops cleanly
    // (its leases stay owned by it, counters stopped); 200 more are put; kpl resumes at
    // KCL's checkpoints and reads exactly those.
    produce(stream, 400..600, 10).await?;
    let kcl_second = kcl_until_idle(stream, table).await?;
    produce(stream, 600..800, 10).await?;
    let kpl_second = kpl_worker(stream, table, 400, Duration::from_secs(30)).await?;
    check_split("KCL then kpl", 400..800, &kcl_second, &kpl_second)?;
    if kcl_second.iter().any(|i| *i >= 600) || kpl_second.iter().any(|i| *i < 600) {
        return Err("KCL's checkpoints were not where kpl resumed".into());
    }
    eprintln!(
        "interop: kpl {} then KCL {} of 0..400; KCL {} then kpl {} of 400..800",
        kpl.len(),
        kcl.len(),
        kcl_second.len(),
        kpl_second.len()
    );
    Ok(())
}
