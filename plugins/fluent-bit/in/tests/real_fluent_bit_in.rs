//! The input plugin in the real Fluent Bit 5.1.1 against kinesis-mock (started inside a
//! private network namespace by `support`): records put with the kpl-kinesis sink,
//! aggregated, on 4 shards with a reshard in the middle, come out of Fluent Bit exactly
//! once; a restart from the checkpoint file neither loses nor repeats; a crash repeats
//! only what was not checkpointed; `kpl_kinesis` input to `kpl_kinesis` output copies one
//! stream into another, re-aggregated; two Fluent Bit instances with `lease_table` share a
//! stream through KCL's lease table (moto's DynamoDB, in the same namespace), every record
//! written by one of them.
//!
//! Fluent Bit comes from `$FLUENT_BIT`, else `../shared/tools/fluent-bit/bin/fluent-bit`;
//! without it every trial is ignored, saying why.

#[path = "../../../../kinesis/tests/support/dynamodb.rs"]
mod dynamodb_server;
#[path = "../../../../kinesis/tests/support/mod.rs"]
mod support;
#[path = "../../testing.rs"]
mod testing;

use testing::find_fluent_bit;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use aws_sdk_kinesis::types::ScalingType;
use kpl_kinesis::sink::{Config, UserRecord};
use libtest_mimic::{Arguments, Failed, Trial};

fn main() {
    let mut args = Arguments::from_args();
    args.test_threads = Some(1);
    let fluent_bit = find_fluent_bit();
    let server = match &fluent_bit {
        Ok(_) => Some(support::enter_namespace_and_start()),
        Err(why) => {
            eprintln!("real_fluent_bit_in: every trial is skipped: {why}");
            None
        }
    };
    let dynamodb = server.as_ref().map(|_| dynamodb_server::start());
    let trials: Vec<Trial> = vec![
        (
            "reshard_mid_stream_every_record_exactly_once",
            reshard as fn(&Env) -> Result<(), Failed>,
        ),
        (
            "restart_from_the_checkpoint_file_neither_loses_nor_repeats",
            restart,
        ),
        ("input_to_output_copies_a_stream_re_aggregated", copy_stream),
        (
            "two_instances_share_a_stream_through_a_lease_table",
            shared_by_leases,
        ),
    ]
    .into_iter()
    .map(|(name, f)| {
        let env = fluent_bit.clone().map(|fb| Env {
            fluent_bit: fb,
            dir: std::env::temp_dir().join(format!("kpl-fb-in-{}-{name}", std::process::id())),
        });
        let ignored = env.is_err();
        Trial::test(name, move || match &env {
            Ok(env) => {
                let _ = std::fs::remove_dir_all(&env.dir);
                std::fs::create_dir_all(&env.dir)?;
                f(env)
            }
            Err(why) => Err(why.clone().into()),
        })
        .with_ignored_flag(ignored)
    })
    .collect();
    let conclusion = libtest_mimic::run(&args, trials);
    drop(dynamodb);
    drop(server);
    conclusion.exit();
}

struct Env {
    fluent_bit: PathBuf,
    dir: PathBuf,
}

/// A plugin library cargo built for this test run, which must exist.
fn library(name: &str) -> Result<PathBuf, Failed> {
    let path = testing::plugin_library(name);
    if path.is_file() {
        Ok(path)
    } else {
        Err(format!(
            "{} not built: run `cargo build -p kpl-fluent-bit-in -p kpl-fluent-bit-out`",
            path.display()
        )
        .into())
    }
}

fn block_on<T>(f: impl std::future::Future<Output = T>) -> T {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(f)
}

/// Puts records `range` (data `{"n":i,"msg":...}`) with the sink, aggregated.
async fn put(stream: &str, range: std::ops::Range<u32>) -> Result<(), Failed> {
    let config = Config {
        record_max_buffered_time: 200,
        ..support::patient_config()
    };
    let sink = support::sink_for(stream, config).await?;
    let mut pending = Vec::new();
    for i in range {
        let data = format!(
            r#"{{"n":{i},"msg":"record {i} {}"}}"#,
            "x".repeat((i % 50) as usize)
        );
        pending.push(
            sink.put(UserRecord::new(
                format!("key-{}", i % 97),
                data.into_bytes(),
            ))
            .await?,
        );
    }
    sink.flush().await;
    support::all_stored(pending).await?;
    sink.shutdown(Duration::from_secs(10)).await;
    Ok(())
}

/// Fluent Bit with the input reading `stream` into a `file` output (one JSON line per
/// record) in the trial's folder.
/// Fluent Bit's output (banner and log) goes to `fluent-bit.log` in the trial's folder,
/// appended across restarts.
fn log_to(cmd: &mut Command, env: &Env) -> Result<(), Failed> {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(env.dir.join("fluent-bit.log"))?;
    cmd.stdout(log.try_clone()?).stderr(log);
    Ok(())
}

/// A Fluent Bit process, killed if a trial fails before stopping it.
struct FluentBit(Option<Child>);

impl Drop for FluentBit {
    fn drop(&mut self) {
        if let Some(mut c) = self.0.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn start_fluent_bit(
    env: &Env,
    stream: &str,
    extra_input: &[(&str, &str)],
    out: &Path,
) -> Result<FluentBit, Failed> {
    let mut cmd = Command::new(&env.fluent_bit);
    cmd.arg("-e")
        .arg(library("libkpl_fluent_bit_in.so")?)
        .args(["-i", "kpl_kinesis", "-p", &format!("stream={stream}"), "-p"])
        .arg(format!("endpoint={}", support::ENDPOINT))
        .args(["-p", "poll_interval=200ms"]);
    for (k, v) in extra_input {
        cmd.args(["-p", &format!("{k}={v}")]);
    }
    cmd.args(["-o", "file", "-m", "*", "-p", "format=plain", "-p"])
        .arg(format!(
            "path={}",
            out.parent().unwrap_or(Path::new("/")).display()
        ))
        .arg("-p")
        .arg(format!(
            "file={}",
            out.file_name().and_then(|f| f.to_str()).unwrap_or("out")
        ))
        .args(["-f", "1"])
        .env("AWS_ACCESS_KEY_ID", "AKIDTEST")
        .env("AWS_SECRET_ACCESS_KEY", "secret")
        .env("AWS_REGION", "us-east-1")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .stdin(Stdio::null());
    log_to(&mut cmd, env)?;
    Ok(FluentBit(Some(cmd.spawn()?)))
}

/// The `n` of every record Fluent Bit wrote, with how many times each.
fn seen(out: &Path) -> BTreeMap<u64, usize> {
    let text = std::fs::read_to_string(out).unwrap_or_default();
    let mut counts = BTreeMap::new();
    for line in text.lines() {
        if let Ok(v) = serde_json::from_str::<serde_json::Value>(line) {
            if let Some(n) = v["n"].as_u64() {
                *counts.entry(n).or_default() += 1;
            }
        }
    }
    counts
}

fn wait_for(out: &Path, count: usize, limit: Duration) -> Result<BTreeMap<u64, usize>, Failed> {
    let started = Instant::now();
    loop {
        let s = seen(out);
        if s.len() >= count {
            return Ok(s);
        }
        if started.elapsed() > limit {
            return Err(format!(
                "Fluent Bit wrote {} of {count} records within {limit:?}",
                s.len()
            )
            .into());
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn stop(mut fb: FluentBit, signal: libc::c_int) -> Result<(), Failed> {
    let Some(child) = fb.0.as_mut() else {
        return Ok(());
    };
    // SAFETY: kill(2) on our own child.
    unsafe { libc::kill(child.id() as i32, signal) };
    let started = Instant::now();
    while child.try_wait()?.is_none() {
        if started.elapsed() > Duration::from_secs(60) {
            let _ = child.kill();
            return Err("Fluent Bit did not stop within 60 s".into());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(())
}

fn exactly(s: &BTreeMap<u64, usize>, range: std::ops::Range<u64>) -> Result<(), Failed> {
    let missing: Vec<u64> = range
        .clone()
        .filter(|n| !s.contains_key(n))
        .take(5)
        .collect();
    let repeated: Vec<(&u64, &usize)> = s.iter().filter(|(_, c)| **c > 1).take(5).collect();
    let extra: Vec<&u64> = s.keys().filter(|n| !range.contains(n)).take(5).collect();
    if missing.is_empty() && repeated.is_empty() && extra.is_empty() {
        Ok(())
    } else {
        Err(format!("missing {missing:?}, repeated {repeated:?}, unexpected {extra:?}").into())
    }
}

fn reshard(env: &Env) -> Result<(), Failed> {
    let out = env.dir.join("out.jsonl");
    block_on(async {
        let admin = support::admin();
        support::create_stream(&admin, "in-reshard", 4).await;
        put("in-reshard", 0..10_000).await?;
        let fb = start_fluent_bit(env, "in-reshard", &[], &out)?;
        // Reshard while Fluent Bit reads: 4 shards become 8 (parents closed, children new).
        admin
            .update_shard_count()
            .stream_name("in-reshard")
            .target_shard_count(8)
            .scaling_type(ScalingType::UniformScaling)
            .send()
            .await
            .map_err(|e| format!("UpdateShardCount: {e:?}"))?;
        support::wait_active(&admin, "in-reshard").await;
        put("in-reshard", 10_000..20_000).await?;
        let s = wait_for(&out, 20_000, Duration::from_secs(120))?;
        stop(fb, libc::SIGTERM)?;
        exactly(&seen(&out), 0..20_000)?;
        let _ = s;
        Ok(())
    })
}

fn restart(env: &Env) -> Result<(), Failed> {
    let out = env.dir.join("out.jsonl");
    let checkpoints = env.dir.join("checkpoints.json");
    let cp = checkpoints.display().to_string();
    block_on(async {
        let admin = support::admin();
        support::create_stream(&admin, "in-restart", 2).await;
        put("in-restart", 0..3_000).await?;
        let fb = start_fluent_bit(env, "in-restart", &[("checkpoint_file", &cp)], &out)?;
        wait_for(&out, 3_000, Duration::from_secs(60))?;
        stop(fb, libc::SIGTERM)?;
        // A clean stop checkpointed everything handed over: a restart repeats nothing.
        put("in-restart", 3_000..6_000).await?;
        let fb = start_fluent_bit(env, "in-restart", &[("checkpoint_file", &cp)], &out)?;
        wait_for(&out, 6_000, Duration::from_secs(60))?;
        stop(fb, libc::SIGTERM)?;
        exactly(&seen(&out), 0..6_000)?;
        // A crash (SIGKILL) loses nothing; it may repeat what was not checkpointed yet.
        put("in-restart", 6_000..9_000).await?;
        let fb = start_fluent_bit(env, "in-restart", &[("checkpoint_file", &cp)], &out)?;
        wait_for(&out, 9_000, Duration::from_secs(60))?;
        stop(fb, libc::SIGKILL)?;
        let before = seen(&out);
        put("in-restart", 9_000..9_100).await?;
        let fb = start_fluent_bit(env, "in-restart", &[("checkpoint_file", &cp)], &out)?;
        wait_for(&out, 9_100, Duration::from_secs(60))?;
        stop(fb, libc::SIGTERM)?;
        let after = seen(&out);
        let missing = (0..9_100u64).filter(|n| !after.contains_key(n)).count();
        if missing > 0 {
            return Err(format!("{missing} records lost across a crash").into());
        }
        // Repeats only among the records read after the last clean stop.
        let repeated_old = after.iter().filter(|(n, c)| **n < 6_000 && **c > 1).count();
        if repeated_old > 0 {
            return Err(
                format!("{repeated_old} records checkpointed before the crash came again").into(),
            );
        }
        let _ = before;
        Ok(())
    })
}

fn copy_stream(env: &Env) -> Result<(), Failed> {
    block_on(async {
        let admin = support::admin();
        support::create_stream(&admin, "copy-from", 2).await;
        support::create_stream(&admin, "copy-to", 4).await;
        put("copy-from", 0..5_000).await?;
        // A PutRecords that a busy kinesis-mock answers late must not be timed out and sent
        // again after it was stored (a repeat here would be the output's, not the input's).
        let kpl_config = env.dir.join("copy-out.conf");
        std::fs::write(&kpl_config, "RequestTimeout = 60000\n")?;
        let mut cmd = Command::new(&env.fluent_bit);
        cmd.arg("-e")
            .arg(library("libkpl_fluent_bit_in.so")?)
            .arg("-e")
            .arg(library("libkpl_fluent_bit_out.so")?)
            .args(["-i", "kpl_kinesis", "-p", "stream=copy-from", "-p"])
            .arg(format!("endpoint={}", support::ENDPOINT))
            .args([
                "-o",
                "kpl_kinesis",
                "-m",
                "*",
                "-p",
                "stream=copy-to",
                "-p",
                "workers=2",
                "-p",
                "partition_key=$kinesis['partition_key']",
                "-p",
            ])
            .arg(format!("endpoint={}", support::ENDPOINT))
            .arg("-p")
            .arg(format!("kpl_config={}", kpl_config.display()))
            .args(["-p", "record_max_buffered_time=500", "-f", "1"])
            .env("AWS_ACCESS_KEY_ID", "AKIDTEST")
            .env("AWS_SECRET_ACCESS_KEY", "secret")
            .env("AWS_REGION", "us-east-1")
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .stdin(Stdio::null());
        log_to(&mut cmd, env)?;
        let fb = FluentBit(Some(cmd.spawn()?));
        let started = Instant::now();
        let copied = loop {
            let stored = support::read_all(&admin, "copy-to").await;
            let (records, dropped) = support::kcl_view(&stored);
            if dropped > 0 {
                return Err(format!("KCL would drop {dropped} aggregates of the copy").into());
            }
            if records.len() >= 5_000 || started.elapsed() > Duration::from_secs(90) {
                break (records, stored.len());
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        };
        stop(fb, libc::SIGTERM)?;
        let (records, kinesis_records) = copied;
        let mut counts: BTreeMap<u64, usize> = BTreeMap::new();
        for (_, data) in &records {
            let v: serde_json::Value =
                serde_json::from_slice(data).map_err(|e| format!("copy is not JSON: {e}"))?;
            let n = v["n"].as_u64().ok_or("copied record without n")?;
            *counts.entry(n).or_default() += 1;
        }
        exactly(&counts, 0..5_000)?;
        if kinesis_records * 20 > 5_000 {
            return Err(format!(
                "{kinesis_records} Kinesis records for 5,000 copied: not re-aggregated"
            )
            .into());
        }
        Ok(())
    })
}

fn shared_by_leases(env: &Env) -> Result<(), Failed> {
    let outs = [env.dir.join("a.jsonl"), env.dir.join("b.jsonl")];
    block_on(async {
        let admin = support::admin();
        support::create_stream(&admin, "in-leases", 4).await;
        put("in-leases", 0..2_000).await?;
        let mut instances = Vec::new();
        for (worker, out) in ["fb-a", "fb-b"].iter().zip(&outs) {
            let props = [
                ("lease_table", "in-leases-app"),
                ("worker_id", *worker),
                ("dynamodb_endpoint", dynamodb_server::ENDPOINT),
                ("failover_time", "3000"),
            ];
            instances.push(start_fluent_bit(env, "in-leases", &props, out)?);
        }
        let union = |outs: &[PathBuf]| {
            let mut all: BTreeMap<u64, usize> = BTreeMap::new();
            for o in outs {
                for (n, c) in seen(o) {
                    *all.entry(n).or_default() += c;
                }
            }
            all
        };
        // Balancing moves a lease per failover time: a few records at a time until both
        // instances have written some (each then holds shards).
        let mut next = 2_000u32;
        let started = Instant::now();
        while outs.iter().any(|o| seen(o).is_empty()) {
            if started.elapsed() > Duration::from_secs(90) {
                return Err("an instance never got a shard in 90 s".into());
            }
            put("in-leases", next..next + 50).await?;
            next += 50;
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        let limit = Instant::now() + Duration::from_secs(90);
        while union(&outs).len() < next as usize {
            if Instant::now() > limit {
                return Err(format!("{} of {next} records written", union(&outs).len()).into());
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        for fb in instances {
            stop(fb, libc::SIGTERM)?;
        }
        let all = union(&outs);
        let missing = (0..u64::from(next))
            .filter(|n| !all.contains_key(n))
            .count();
        if missing > 0 {
            return Err(format!("{missing} records never written").into());
        }
        // At least once: a record comes again when its shard's lease moves (a steal while
        // balancing, or a lease given up when DynamoDB answers slowly) before its checkpoint
        // was written. Counted, not bounded: how many depends on timing.
        // Each instance logged the leases it took (at info, Fluent Bit's default level).
        let log = std::fs::read_to_string(env.dir.join("fluent-bit.log")).unwrap_or_default();
        let taken = log
            .lines()
            .filter(|l| l.contains("lease of shardId-") && l.contains(" taken: reading from "))
            .count();
        if taken < 2 {
            return Err(format!("{taken} lease takes logged by two instances:\n{log}").into());
        }
        let twice = all.values().filter(|c| **c > 1).count();
        eprintln!(
            "two Fluent Bit instances on one lease table: {} records, {twice} written more than once (re-read after a lease moved)",
            all.len()
        );
        Ok(())
    })
}
