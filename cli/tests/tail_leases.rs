//! `kpl tail --lease-table`: three worker processes share an 8-shard stream through KCL's
//! lease table (kinesis-mock and moto's DynamoDB, both inside a private network
//! namespace). Every record is printed; one worker is SIGKILLed and the records put after
//! its death, on the shards it held, are printed by the other two; the survivors stop on
//! SIGTERM (releasing their leases) with exit status 0. Records printed again (after a lease
//! moved) are counted.

#[path = "../../kinesis/tests/support/dynamodb.rs"]
mod dynamodb_server;
#[path = "../../kinesis/tests/support/mod.rs"]
mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use libtest_mimic::{Arguments, Failed, Trial};

fn main() {
    let args = Arguments::from_args();
    let server = support::enter_namespace_and_start();
    let moto = dynamodb_server::start();
    let trials = vec![Trial::test(
        "three_tail_workers_share_a_stream_and_survive_a_sigkill",
        three_workers,
    )];
    let conclusion = libtest_mimic::run(&args, trials);
    drop(moto);
    drop(server);
    conclusion.exit();
}

const STREAM: &str = "cli-leases";
const TABLE: &str = "cli-leases-app";

/// Worker `n`, printing to `out`, its standard error (`-v`: lease events) beside it.
fn worker(n: usize, out: &PathBuf) -> Result<Child, Failed> {
    let file = std::fs::File::create(out)?;
    let err = std::fs::File::create(out.with_extension("err"))?;
    let child = Command::new(env!("CARGO_BIN_EXE_kpl"))
        .args([
            "tail",
            "-v",
            "--stream",
            STREAM,
            "--endpoint",
            support::ENDPOINT,
        ])
        .args([
            "--lease-table",
            TABLE,
            "--worker-id",
            &format!("worker-{n}"),
        ])
        .args([
            "--dynamodb-endpoint",
            dynamodb_server::ENDPOINT,
            "--failover-ms",
            "3000",
        ])
        .env("AWS_ACCESS_KEY_ID", "AKIDTEST")
        .env("AWS_SECRET_ACCESS_KEY", "secret")
        .env("AWS_REGION", "us-east-1")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env_remove("AWS_PROFILE")
        .stdout(file)
        .stderr(err)
        .spawn()?;
    Ok(child)
}

/// (data, shard) of every line a worker printed so far.
fn printed(out: &PathBuf) -> Vec<(String, String)> {
    let text = std::fs::read_to_string(out).unwrap_or_default();
    text.lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter_map(|v| {
            let data = v.get("Data")?.as_str()?.to_owned();
            let shard = v.get("ShardId")?.as_str()?.to_owned();
            Some((data, shard))
        })
        .collect()
}

fn distinct(outs: &[PathBuf]) -> BTreeSet<String> {
    outs.iter()
        .flat_map(|o| printed(o).into_iter().map(|(d, _)| d))
        .collect()
}

fn wait_for(limit: Duration, mut done: impl FnMut() -> bool) -> bool {
    let started = Instant::now();
    while !done() {
        if started.elapsed() > limit {
            return false;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    true
}

async fn produce(range: std::ops::Range<u32>) -> Result<(), Failed> {
    let sink = support::sink_for(STREAM, support::flush_only_config()).await?;
    let mut pending = Vec::new();
    for i in range {
        let record = kpl_kinesis::sink::UserRecord::new(
            format!("key-{}", i % 89),
            format!("record {i}").into_bytes(),
        );
        pending.push(sink.put(record).await?);
    }
    sink.flush().await;
    support::all_stored(pending).await?;
    sink.shutdown(Duration::from_secs(10)).await;
    Ok(())
}

fn three_workers() -> Result<(), Failed> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    rt.block_on(support::create_stream(&support::admin(), STREAM, 8));
    rt.block_on(produce(0..1_000))?;
    let dir = std::env::temp_dir().join(format!("kpl-tail-leases-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let outs: Vec<PathBuf> = (0..3)
        .map(|n| dir.join(format!("worker-{n}.jsonl")))
        .collect();
    let mut workers = Vec::new();
    for (n, out) in outs.iter().enumerate() {
        workers.push(worker(n, out)?);
    }
    if !wait_for(Duration::from_secs(60), || distinct(&outs).len() == 1_000) {
        return Err(format!("{} of 1000 records printed in 60 s", distinct(&outs).len()).into());
    }
    // Balancing moves one lease per failover time: put a few records at a time until each
    // worker has printed some (each then holds a shard).
    let mut produced = 1_000;
    let busy = |o: &PathBuf| !printed(o).is_empty();
    let started = Instant::now();
    while !outs.iter().all(busy) {
        if started.elapsed() > Duration::from_secs(60) {
            return Err("a worker never got a shard in 60 s".into());
        }
        rt.block_on(produce(produced..produced + 50))?;
        produced += 50;
        std::thread::sleep(Duration::from_secs(1));
    }
    if !wait_for(Duration::from_secs(60), || {
        distinct(&outs).len() == produced as usize
    }) {
        return Err(format!("{} of {produced} records printed", distinct(&outs).len()).into());
    }
    // SIGKILL worker 0: no release, its leases expire after the failover time.
    let dead_shards: BTreeSet<String> = printed(&outs[0]).into_iter().map(|(_, s)| s).collect();
    workers[0].kill()?;
    workers[0].wait()?;
    rt.block_on(produce(produced..produced + 2_000))?;
    produced += 2_000;
    let all = |outs: &[PathBuf]| distinct(outs).len() == produced as usize;
    if !wait_for(Duration::from_secs(60), || all(&outs)) {
        return Err(format!(
            "{} of {produced} records printed after the kill",
            distinct(&outs).len()
        )
        .into());
    }
    // The dead worker's shards were read by the others after its death.
    let survivors: BTreeSet<String> = outs[1..]
        .iter()
        .flat_map(|o| printed(o).into_iter().map(|(_, s)| s))
        .collect();
    if let Some(orphan) = dead_shards.iter().find(|s| !survivors.contains(*s)) {
        return Err(format!("shard {orphan} of the dead worker never read by another").into());
    }
    // And each survivor said so with -v: the leases it took, on standard error.
    let said: String = outs[1..]
        .iter()
        .map(|o| std::fs::read_to_string(o.with_extension("err")).unwrap_or_default())
        .collect();
    for shard in &dead_shards {
        let line = format!("kpl: lease of {shard} taken: reading from ");
        if !said.contains(&line) {
            return Err(format!("no survivor logged {line:?}:\n{said}").into());
        }
    }
    for w in &workers[1..] {
        let pid = w.id().to_string();
        Command::new("kill").args(["-TERM", &pid]).status()?;
    }
    for w in &mut workers[1..] {
        let status = w.wait()?;
        if !status.success() {
            return Err(format!("a worker stopped by SIGTERM exited with {status}").into());
        }
    }
    let mut readers: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    for (n, o) in outs.iter().enumerate() {
        for (data, _) in printed(o) {
            readers.entry(data).or_default().push(n);
        }
    }
    let twice: Vec<_> = readers.iter().filter(|(_, w)| w.len() > 1).collect();
    // At least once: a record comes again when its shard's lease moves (the death, a steal
    // while balancing, a lease given up while DynamoDB answered slowly) before its
    // checkpoint was written. Counted, not bounded: how many depends on timing.
    eprintln!(
        "tail --lease-table: {} records, {} printed more than once",
        readers.len(),
        twice.len()
    );
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
