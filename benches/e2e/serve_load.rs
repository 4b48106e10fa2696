//! `serve-load`: the load generator and read-back check of `benches/e2e/serve-vs-direct.sh`.
//!
//! ```text
//! serve-load put  --endpoint URL --stream S [--records 200000] [--clients 8] [--batch 500]
//!                 [--size 100] [--key-len 16] [--rate 0] [--deadline 600] [--calls FILE]
//! serve-load read --endpoint URL --stream S [--records 200000] [--size 100] [--key-len 16]
//! serve-load gen  [--records 200000] [--size 100] [--key-len 16] [--keys 0]
//! ```
//!
//! `put` sends RECORDS user records through CLIENTS concurrent clients (one aws-sdk-kinesis
//! client each, its own connections), each calling PutRecords with batches of BATCH
//! records, as Vector's `aws_kinesis_streams` sink does: record `i` is 10 bytes `"%09d "`
//! then SIZE - 10 lowercase letters, with a 16-character alphanumeric partition key, both
//! drawn from a fixed-seed generator (SplitMix64 of `i`), so every run sends the same
//! distinct bytes. Batch `b` holds records `b * BATCH ..`, client `c` sends the batches
//! `b = c, c + CLIENTS, ...`. With `--rate R` (records per second, all clients together)
//! batch `b` is due at `b * BATCH / R` seconds after the start and a client that falls
//! behind sends at once; `--rate 0` sends as fast as the answers come. The records a
//! PutRecords answer says failed are sent again after an exponential backoff with jitter
//! (100 ms doubling, at most 2 s), and so is a whole batch whose call failed with a
//! throttling, server or transport error (after the SDK's own retries: standard mode, 3
//! attempts), as an SDK user would, until they are stored or DEADLINE seconds have passed;
//! any other error gives the batch up. Like Vector's healthcheck, `put` first calls
//! DescribeStream (limit 1) and stops if that fails. Every call's latency (from the moment it is
//! sent to its answer, the SDK's retries included) is kept (`--calls FILE` writes them, one
//! line per call in answer order). Prints one JSON object: calls,
//! retries, failures by error code, latency percentiles (ms), wall time, records given up.
//!
//! `read` reads the whole stream back (every shard from TRIM_HORIZON), and prints one JSON
//! object: Kinesis records (KPL aggregates and plain records), their bytes (data and
//! partition key), PUT payload units under three readings of "25 KB", and the user records
//! found after deaggregating like KCL (the same seed rebuilds what `put` sent: missing,
//! more than once, or not sent at all).
//!
//! `gen` prints the same user records, one line each: partition key, a tab, the data (for
//! producers fed from a file, benches/e2e/producer-vs-kpl.sh). `--keys K` (`gen` and `read`;
//! 0, the default, keeps the random keys) gives record `i` the key `key-{i % K}` instead.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_sdk_kinesis::config::retry::RetryConfig;
use aws_sdk_kinesis::config::timeout::TimeoutConfig;
use aws_sdk_kinesis::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_kinesis::error::ProvideErrorMetadata;
use aws_sdk_kinesis::primitives::Blob;
use aws_sdk_kinesis::types::{PutRecordsRequestEntry, ShardIteratorType};
use aws_sdk_kinesis::Client;
use kpl_codec::{deaggregate, Options, Verdict};
use tokio::sync::Mutex;

type Error = Box<dyn std::error::Error + Send + Sync>;

/// How long one call may take, the SDK's retries included (a bound, not an expectation).
const OPERATION_TIMEOUT: Duration = Duration::from_secs(120);

struct Args {
    endpoint: String,
    stream: String,
    records: usize,
    clients: usize,
    batch: usize,
    size: usize,
    key_len: usize,
    keys: usize,
    rate: f64,
    deadline: Duration,
    samples: Option<String>,
}

fn parse_args() -> Result<(String, Args), Error> {
    let mut it = std::env::args().skip(1);
    let command = it
        .next()
        .ok_or("usage: serve-load put|read --endpoint URL --stream S ...")?;
    let mut args = Args {
        endpoint: String::new(),
        stream: String::new(),
        records: 200_000,
        clients: 8,
        batch: 500,
        size: 100,
        key_len: 16,
        keys: 0,
        rate: 0.0,
        deadline: Duration::from_secs(600),
        samples: None,
    };
    while let Some(flag) = it.next() {
        let value = it.next().ok_or_else(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--endpoint" => args.endpoint = value,
            "--stream" => args.stream = value,
            "--records" => args.records = value.parse()?,
            "--clients" => args.clients = value.parse()?,
            "--batch" => args.batch = value.parse()?,
            "--size" => args.size = value.parse()?,
            "--key-len" => args.key_len = value.parse()?,
            "--keys" => args.keys = value.parse()?,
            "--rate" => args.rate = value.parse()?,
            "--deadline" => args.deadline = Duration::from_secs_f64(value.parse()?),
            "--calls" => args.samples = Some(value),
            other => return Err(format!("unknown option {other}").into()),
        }
    }
    if command != "gen" && (args.endpoint.is_empty() || args.stream.is_empty()) {
        return Err("--endpoint and --stream are required".into());
    }
    if args.size < 10 || args.clients == 0 || !(1..=500).contains(&args.batch) {
        return Err("--size is at least 10, --clients at least 1, --batch 1 to 500".into());
    }
    Ok((command, args))
}

fn main() -> Result<(), Error> {
    let (command, args) = parse_args()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let report = match command.as_str() {
        "put" => runtime.block_on(put(&args))?,
        "read" => runtime.block_on(read(&args))?,
        "gen" => return gen(&args),
        other => return Err(format!("unknown command {other}: put, read or gen").into()),
    };
    println!("{report}");
    Ok(())
}

fn client(endpoint: &str) -> Client {
    let config = aws_sdk_kinesis::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new("bench", "bench", None, None, "serve-load"))
        .endpoint_url(endpoint)
        .retry_config(RetryConfig::standard().with_max_attempts(3))
        .timeout_config(
            TimeoutConfig::builder()
                .operation_timeout(OPERATION_TIMEOUT)
                .build(),
        )
        .build();
    Client::from_conf(config)
}

/// SplitMix64: the fixed-seed generator behind every record's bytes and key.
fn splitmix(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Prints every user record as `key\tdata` (the data is ASCII, without tabs or newlines).
fn gen(args: &Args) -> Result<(), Error> {
    use std::io::Write;
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    for i in 0..args.records {
        let (key, data) = user_record(i, args);
        out.write_all(key.as_bytes())?;
        out.write_all(b"\t")?;
        out.write_all(&data)?;
        out.write_all(b"\n")?;
    }
    out.flush()?;
    Ok(())
}

/// User record `i` under `args` (`--keys` applied): (partition key, data).
fn user_record(i: usize, args: &Args) -> (String, Vec<u8>) {
    let (key, data) = record(i, args.size, args.key_len);
    if args.keys == 0 {
        (key, data)
    } else {
        (format!("key-{}", i % args.keys), data)
    }
}

/// User record `i`: (partition key, data).
fn record(i: usize, size: usize, key_len: usize) -> (String, Vec<u8>) {
    const ALNUM: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut state = 0x6B70_6C2D_6265_6E63 ^ (i as u64).wrapping_mul(0xD129_0F5F_5A3C_2B0D);
    let key = (0..key_len)
        .map(|_| ALNUM[(splitmix(&mut state) % ALNUM.len() as u64) as usize] as char)
        .collect();
    let mut data = format!("{i:09} ").into_bytes();
    while data.len() < size {
        data.push(b'a' + (splitmix(&mut state) % 26) as u8);
    }
    data.truncate(size);
    (key, data)
}

/// The index a record's data starts with, if it is one of ours.
fn index_of(data: &[u8]) -> Option<usize> {
    if data.len() < 10 || data[9] != b' ' {
        return None;
    }
    std::str::from_utf8(&data[..9]).ok()?.parse().ok()
}

#[derive(Default)]
struct Tally {
    latencies: Vec<Duration>,
    /// (sent at, since the start; latency; records in the call; attempt), in answer order.
    calls_log: Vec<(Duration, Duration, usize, u32)>,
    calls: u64,
    retry_calls: u64,
    records_sent: u64,
    records_retried: u64,
    records_given_up: u64,
    call_errors: BTreeMap<String, u64>,
    record_errors: BTreeMap<String, u64>,
    max_lateness: Duration,
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    // Nearest rank.
    let rank = ((p / 100.0) * sorted.len() as f64).ceil().max(1.0) as usize;
    sorted[rank.min(sorted.len()) - 1].as_secs_f64() * 1000.0
}

async fn put(args: &Args) -> Result<String, Error> {
    let batches = args.records.div_ceil(args.batch);
    let tally = Arc::new(Mutex::new(Tally::default()));
    // Vector's healthcheck: DescribeStream (limit 1) before any put; stop at once if it fails.
    client(&args.endpoint)
        .describe_stream()
        .stream_name(&args.stream)
        .limit(1)
        .send()
        .await
        .map_err(|e| {
            format!(
                "DescribeStream {}: {}",
                args.stream,
                aws_sdk_kinesis::error::DisplayErrorContext(&e)
            )
        })?;
    let start = Instant::now();
    let deadline = start + args.deadline;
    let mut tasks = Vec::new();
    for c in 0..args.clients {
        let client = client(&args.endpoint);
        let tally = tally.clone();
        let (stream, records, batch, size, key_len, rate, clients) = (
            args.stream.clone(),
            args.records,
            args.batch,
            args.size,
            args.key_len,
            args.rate,
            args.clients,
        );
        tasks.push(tokio::spawn(async move {
            let mut jitter = 0x5EED_0000 + c as u64;
            for b in (c..batches).step_by(clients) {
                if rate > 0.0 {
                    let due = start + Duration::from_secs_f64((b * batch) as f64 / rate);
                    let now = Instant::now();
                    if due > now {
                        tokio::time::sleep_until(due.into()).await;
                    } else {
                        let mut t = tally.lock().await;
                        t.max_lateness = t.max_lateness.max(now - due);
                    }
                }
                let mut pending: Vec<PutRecordsRequestEntry> = (b * batch
                    ..((b + 1) * batch).min(records))
                    .map(|i| {
                        let (key, data) = record(i, size, key_len);
                        PutRecordsRequestEntry::builder()
                            .partition_key(key)
                            .data(Blob::new(data))
                            .build()
                            .expect("data and key are set")
                    })
                    .collect();
                let mut attempt = 0u32;
                while !pending.is_empty() {
                    if attempt > 0 {
                        if Instant::now() >= deadline {
                            tally.lock().await.records_given_up += pending.len() as u64;
                            break;
                        }
                        let cap = (100u64 << (attempt - 1).min(5)).min(2_000);
                        let ms = cap / 2 + splitmix(&mut jitter) % (cap / 2 + 1);
                        tokio::time::sleep(Duration::from_millis(ms)).await;
                    }
                    let sent = pending.len() as u64;
                    let began = Instant::now();
                    let result = client
                        .put_records()
                        .stream_name(&stream)
                        .set_records(Some(pending.clone()))
                        .send()
                        .await;
                    let took = began.elapsed();
                    let mut t = tally.lock().await;
                    t.latencies.push(took);
                    t.calls_log
                        .push((began - start, took, sent as usize, attempt));
                    t.calls += 1;
                    t.records_sent += sent;
                    if attempt > 0 {
                        t.retry_calls += 1;
                        t.records_retried += sent;
                    }
                    attempt += 1;
                    match result {
                        Ok(out) => {
                            let mut failed = Vec::new();
                            for (entry, answer) in pending.iter().zip(out.records()) {
                                if let Some(code) = answer.error_code() {
                                    *t.record_errors.entry(code.to_owned()).or_default() += 1;
                                    failed.push(entry.clone());
                                }
                            }
                            pending = failed;
                        }
                        Err(e) => {
                            let code = e.code().map_or_else(
                                || {
                                    let text = format!(
                                        "{}",
                                        aws_sdk_kinesis::error::DisplayErrorContext(&e)
                                    );
                                    text.chars().take(80).collect::<String>()
                                },
                                str::to_owned,
                            );
                            // What an SDK user retries: throttling, server errors and
                            // transport failures (no code); anything else is final.
                            let retryable = e.code().is_none_or(|c| {
                                matches!(
                                    c,
                                    "ProvisionedThroughputExceededException"
                                        | "KMSThrottlingException"
                                        | "LimitExceededException"
                                        | "ThrottlingException"
                                        | "InternalFailure"
                                        | "InternalFailureException"
                                        | "ServiceUnavailable"
                                        | "ServiceUnavailableException"
                                        | "RequestTimeout"
                                )
                            });
                            *t.call_errors.entry(code).or_default() += 1;
                            if !retryable {
                                t.records_given_up += pending.len() as u64;
                                pending.clear();
                            }
                        }
                    }
                }
            }
        }));
    }
    for task in tasks {
        task.await?;
    }
    let wall = start.elapsed();
    let mut t = Arc::try_unwrap(tally)
        .map_err(|_| "a client is still running")?
        .into_inner();
    t.latencies.sort();
    if let Some(path) = &args.samples {
        let mut text = String::from("sent_ms latency_ms records attempt\n");
        for (at, took, n, attempt) in &t.calls_log {
            text.push_str(&format!(
                "{:.1} {:.1} {n} {attempt}\n",
                at.as_secs_f64() * 1000.0,
                took.as_secs_f64() * 1000.0
            ));
        }
        std::fs::write(path, text)?;
    }
    let mean = if t.latencies.is_empty() {
        0.0
    } else {
        t.latencies.iter().map(Duration::as_secs_f64).sum::<f64>() * 1000.0
            / t.latencies.len() as f64
    };
    let report = format!(
        concat!(
            "{{\"records\":{},\"clients\":{},\"batch\":{},\"rate\":{},\"calls\":{},\"retry_calls\":{},",
            "\"records_sent\":{},\"records_retried\":{},\"records_given_up\":{},",
            "\"call_errors\":{},\"record_errors\":{},",
            "\"latency_ms\":{{\"p50\":{:.1},\"p90\":{:.1},\"p99\":{:.1},\"max\":{:.1},\"mean\":{:.1}}},",
            "\"max_lateness_ms\":{:.1},\"wall_s\":{:.2}}}"
        ),
        args.records,
        args.clients,
        args.batch,
        args.rate,
        t.calls,
        t.retry_calls,
        t.records_sent,
        t.records_retried,
        t.records_given_up,
        json_map(&t.call_errors),
        json_map(&t.record_errors),
        percentile(&t.latencies, 50.0),
        percentile(&t.latencies, 90.0),
        percentile(&t.latencies, 99.0),
        percentile(&t.latencies, 100.0),
        mean,
        t.max_lateness.as_secs_f64() * 1000.0,
        wall.as_secs_f64(),
    );
    Ok(report)
}

fn json_map(map: &BTreeMap<String, u64>) -> String {
    let fields: Vec<String> = map
        .iter()
        .map(|(k, v)| {
            let key: String = k
                .chars()
                .map(|c| {
                    if c == '"' || c == '\\' || c.is_control() {
                        '\''
                    } else {
                        c
                    }
                })
                .collect();
            format!("\"{key}\":{v}")
        })
        .collect();
    format!("{{{}}}", fields.join(","))
}

/// PUT payload units of one stored record of `bytes` (data + partition key) when a unit is
/// `unit` bytes: every started unit counts, at least one.
fn units(bytes: usize, unit: f64) -> u64 {
    ((bytes as f64 / unit).ceil() as u64).max(1)
}

async fn read(args: &Args) -> Result<String, Error> {
    let client = client(&args.endpoint);
    let mut shards = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let mut call = client.list_shards();
        call = match &token {
            Some(t) => call.next_token(t),
            None => call.stream_name(&args.stream),
        };
        let out = call.send().await?;
        shards.extend(out.shards().iter().map(|s| s.shard_id().to_owned()));
        token = out.next_token().map(str::to_owned);
        if token.is_none() {
            break;
        }
    }
    let mut seen = vec![0u32; args.records];
    let (mut kinesis, mut aggregated, mut plain, mut user, mut foreign) =
        (0u64, 0u64, 0u64, 0u64, 0u64);
    let (mut data_bytes, mut key_bytes, mut largest) = (0u64, 0u64, 0usize);
    let (mut u25600, mut u25000, mut u_mib40) = (0u64, 0u64, 0u64);
    let mut get_calls = 0u64;
    let options = Options::kcl();
    for shard in &shards {
        let mut iterator = client
            .get_shard_iterator()
            .stream_name(&args.stream)
            .shard_id(shard)
            .shard_iterator_type(ShardIteratorType::TrimHorizon)
            .send()
            .await?
            .shard_iterator()
            .map(str::to_owned);
        while let Some(it) = iterator {
            let out = client
                .get_records()
                .shard_iterator(it)
                .limit(10_000)
                .send()
                .await?;
            get_calls += 1;
            for r in out.records() {
                let data = r.data().as_ref();
                let key = r.partition_key().unwrap_or_default().as_bytes();
                kinesis += 1;
                data_bytes += data.len() as u64;
                key_bytes += key.len() as u64;
                let size = data.len() + key.len();
                largest = largest.max(size);
                u25600 += units(size, 25_600.0);
                u25000 += units(size, 25_000.0);
                u_mib40 += units(size, 1_048_576.0 / 40.0);
                let records = deaggregate(data, key, &options)?;
                match records.verdict() {
                    Verdict::Aggregated { .. } => aggregated += 1,
                    Verdict::Plain(_) => plain += 1,
                }
                for u in records {
                    user += 1;
                    match index_of(u.data).filter(|&i| i < args.records) {
                        Some(i) => {
                            let (want_key, want_data) = user_record(i, args);
                            if u.data == want_data.as_slice()
                                && u.partition_key == want_key.as_bytes()
                            {
                                seen[i] += 1;
                            } else {
                                foreign += 1;
                            }
                        }
                        None => foreign += 1,
                    }
                }
            }
            let caught_up =
                out.records().is_empty() && out.millis_behind_latest().unwrap_or(0) == 0;
            iterator = if caught_up {
                None
            } else {
                out.next_shard_iterator().map(str::to_owned)
            };
        }
    }
    let missing = seen.iter().filter(|&&n| n == 0).count();
    let repeated: u64 = seen.iter().map(|&n| u64::from(n.saturating_sub(1))).sum();
    Ok(format!(
        concat!(
            "{{\"shards\":{},\"get_records_calls\":{},\"kinesis_records\":{},\"aggregated\":{},\"plain\":{},",
            "\"data_bytes\":{},\"key_bytes\":{},\"largest_record\":{},",
            "\"units_25600\":{},\"units_25000\":{},\"units_mib_over_40\":{},",
            "\"user_records\":{},\"distinct\":{},\"missing\":{},\"repeated\":{},\"foreign\":{}}}"
        ),
        shards.len(),
        get_calls,
        kinesis,
        aggregated,
        plain,
        data_bytes,
        key_bytes,
        largest,
        u25600,
        u25000,
        u_mib40,
        user,
        args.records - missing,
        missing,
        repeated,
        foreign
    ))
}
