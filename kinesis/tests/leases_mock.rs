//! Workers sharing a stream through KCL-compatible leases, against kinesis-mock and moto's
//! DynamoDB, both started inside a private network namespace (`support`): three workers on
//! an 8-shard stream split the shards evenly; one is killed (its source dropped: no
//! release, no more renewals, as after SIGKILL) and its shards move to the others within
//! the failover time; a shard is split while they read; every record is delivered, and the
//! duplicates (re-reads after a lease moved before its checkpoint was written) are counted.

#[path = "support/dynamodb.rs"]
mod dynamodb_server;
mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_sdk_kinesis::types::ScalingType;
use kpl_kinesis::sink::UserRecord;
use kpl_kinesis::source::lease::dynamodb::from_item;
use kpl_kinesis::source::{LeaseSettings, Source, SourceConfig, SourceRecord};
use libtest_mimic::{Arguments, Failed, Trial};

use dynamodb_server::ENDPOINT as DYNAMODB;
const FAILOVER: Duration = Duration::from_secs(3);

fn main() {
    let args = Arguments::from_args();
    let server = support::enter_namespace_and_start();
    let moto = dynamodb_server::start();
    let trials = vec![Trial::test(
        "three_workers_share_eight_shards_through_a_death_and_a_reshard",
        || support::block_on(three_workers(), Duration::from_secs(240)),
    )];
    let conclusion = libtest_mimic::run(&args, trials);
    drop(moto);
    drop(server);
    conclusion.exit();
}

fn dynamodb() -> aws_sdk_dynamodb::Client {
    let conf = aws_sdk_dynamodb::config::Builder::from(&support::sdk_config())
        .endpoint_url(DYNAMODB)
        .build();
    aws_sdk_dynamodb::Client::from_conf(conf)
}

/// Lease owners by shard, from a scan of the table.
async fn owners(table: &str) -> Result<BTreeMap<String, Option<String>>, Failed> {
    let scan = dynamodb().scan().table_name(table).send().await?;
    Ok(scan
        .items()
        .iter()
        .filter_map(from_item)
        .map(|l| (l.lease_key, l.lease_owner))
        .collect())
}

/// What each worker got: (worker, record).
type Log = Arc<Mutex<Vec<(usize, SourceRecord)>>>;

async fn worker(n: usize, stream: &str, table: &str, log: Log) -> Result<(), Failed> {
    let mut settings = LeaseSettings::new(table, format!("worker-{n}"));
    settings.failover_time = FAILOVER;
    settings.endpoint = Some(DYNAMODB.to_owned());
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
    while let Some(r) = source.next().await {
        let r = r?;
        // Checkpointing each record; refused once the lease moved on (then another
        // worker has the shard and this record may come again).
        let _ = source.checkpoint(&r);
        if let Ok(mut log) = log.lock() {
            log.push((n, r));
        }
    }
    Err("a leased source ended".into())
}

fn record(i: u32) -> UserRecord {
    UserRecord::new(
        format!("key-{}", i % 97),
        format!("record {i}").into_bytes(),
    )
}

async fn produce(stream: &str, range: std::ops::Range<u32>) -> Result<(), Failed> {
    let sink = support::sink_for(stream, support::flush_only_config()).await?;
    let mut pending = Vec::new();
    for i in range {
        pending.push(sink.put(record(i)).await?);
    }
    sink.flush().await;
    support::all_stored(pending).await?;
    sink.shutdown(Duration::from_secs(10)).await;
    Ok(())
}

/// Waits until `done` holds, checking every 100 ms, at most `limit`.
async fn until(limit: Duration, mut done: impl FnMut() -> bool) -> bool {
    let started = tokio::time::Instant::now();
    while !done() {
        if started.elapsed() > limit {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    true
}

fn distinct(log: &Log) -> BTreeSet<Vec<u8>> {
    log.lock()
        .map(|l| l.iter().map(|(_, r)| r.data.clone()).collect())
        .unwrap_or_default()
}

async fn three_workers() -> Result<(), Failed> {
    let stream = "leases-three";
    let table = "leases-three-app";
    let admin = support::admin();
    support::create_stream(&admin, stream, 8).await;
    produce(stream, 0..2_000).await?;
    let log: Log = Arc::default();
    let mut tasks = Vec::new();
    for n in 0..3 {
        let log = log.clone();
        tasks.push(tokio::spawn(
            async move { worker(n, stream, table, log).await },
        ));
    }
    // Every record of the first batch read, and the shards split evenly.
    if !until(Duration::from_secs(60), || distinct(&log).len() == 2_000).await {
        return Err(format!("{} of 2000 records read in 60 s", distinct(&log).len()).into());
    }
    let even = until_owners(table, Duration::from_secs(60), |o| {
        per_worker(o) == [2, 3, 3]
    })
    .await?;
    if !even {
        return Err(format!("shards not split evenly: {:?}", owners(table).await?).into());
    }
    // Kill worker 0: its task is aborted, its source dropped without a word.
    let held_by_0: BTreeSet<String> = owners(table)
        .await?
        .into_iter()
        .filter(|(_, o)| o.as_deref() == Some("worker-0"))
        .map(|(k, _)| k)
        .collect();
    tasks[0].abort();
    let killed_at = Instant::now();
    let moved = until_owners(table, FAILOVER * 10, |o| {
        held_by_0.iter().all(|k| {
            o.get(k)
                .is_some_and(|w| w.as_deref() != Some("worker-0") && w.is_some())
        })
    })
    .await?;
    let took = killed_at.elapsed();
    if !moved {
        return Err(format!(
            "the dead worker's shards did not move: {:?}",
            owners(table).await?
        )
        .into());
    }
    // Split a shard while the two survivors read, then more records.
    admin
        .update_shard_count()
        .stream_name(stream)
        .target_shard_count(16)
        .scaling_type(ScalingType::UniformScaling)
        .send()
        .await?;
    support::wait_active(&admin, stream).await;
    produce(stream, 2_000..4_000).await?;
    if !until(Duration::from_secs(90), || distinct(&log).len() == 4_000).await {
        return Err(format!("{} of 4000 records read", distinct(&log).len()).into());
    }
    for t in &tasks {
        t.abort();
    }
    let log = log.lock().map(|l| l.clone()).unwrap_or_default();
    let mut seen: BTreeMap<Vec<u8>, usize> = BTreeMap::new();
    for (_, r) in &log {
        *seen.entry(r.data.clone()).or_default() += 1;
    }
    let duplicates: Vec<(&Vec<u8>, &usize)> = seen.iter().filter(|(_, n)| **n > 1).collect();
    // At least once: a record comes again when its shard's lease moves (the death, a steal
    // while balancing, a lease given up while DynamoDB answered slowly) before its
    // checkpoint was written. Counted (and how many came from the dead worker's shards).
    let mut after_death = 0;
    for (data, _) in &duplicates {
        let first = log.iter().find(|(_, r)| &r.data == *data);
        if first.is_some_and(|(w, r)| *w == 0 && held_by_0.contains(r.shard_id.as_ref())) {
            after_death += 1;
        }
    }
    let mut per_shard: BTreeMap<(String, Vec<usize>), usize> = BTreeMap::new();
    for (data, _) in &duplicates {
        let readers: Vec<(usize, String)> = log
            .iter()
            .filter(|(_, r)| &r.data == *data)
            .map(|(w, r)| (*w, r.shard_id.to_string()))
            .collect();
        *per_shard
            .entry((
                readers[0].1.clone(),
                readers.iter().map(|(w, _)| *w).collect(),
            ))
            .or_default() += 1;
    }
    eprintln!("duplicates by shard and readers: {per_shard:?}");
    eprintln!(
        "leases: shards of the dead worker moved in {took:?} (failover {FAILOVER:?}); {} records, {} read twice ({after_death} of the dead worker's shards)",
        seen.len(),
        duplicates.len()
    );
    Ok(())
}

/// Leases held per worker, sorted.
fn per_worker(owners: &BTreeMap<String, Option<String>>) -> Vec<usize> {
    let mut per: BTreeMap<&str, usize> = BTreeMap::new();
    for owner in owners.values().flatten() {
        *per.entry(owner).or_default() += 1;
    }
    let mut counts: Vec<usize> = per.into_values().collect();
    counts.sort_unstable();
    counts
}

/// Scans the table every 100 ms until `done` holds of its owners, at most `limit`.
async fn until_owners(
    table: &str,
    limit: Duration,
    mut done: impl FnMut(&BTreeMap<String, Option<String>>) -> bool,
) -> Result<bool, Failed> {
    let started = tokio::time::Instant::now();
    loop {
        if done(&owners(table).await?) {
            return Ok(true);
        }
        if started.elapsed() > limit {
            return Ok(false);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
