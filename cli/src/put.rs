//! `kpl put`: user records from NDJSON (or text lines) into a Kinesis stream through the
//! kpl-kinesis sink, then a summary.

use std::collections::BTreeMap;
use std::io::{IsTerminal, Read, Write};
use std::time::{Duration, Instant};

use kpl_kinesis::sink::{Config, Outcome, PendingOutcome, Sink, SinkError, Stats, UserRecord};
use serde_json::Value;

use crate::args::PutArgs;
use crate::error::{CliError, Stop, EXIT_DEFECT};
use crate::input::{parse_user_record_line, NumberedLines};
use crate::status::{PutCounts, PutProgress};

/// Failures listed one by one in the summary; the rest are counted.
const LISTED_FAILURES: usize = 20;
/// Most records put into the sink at once (`Sink::put_batch`).
const PUT_GROUP: usize = 256;

/// The sink settings: KPL defaults, then `--config`, then `--endpoint` and `--region`.
pub fn config(args: &PutArgs) -> Result<Config, CliError> {
    sink_config(
        args.config.as_deref(),
        args.target.endpoint.as_deref(),
        args.target.region.as_deref(),
    )
}

/// KPL defaults, then a config file (TOML, or JSON for `.json`), then an endpoint and a
/// region given on the command line; validated. Shared by `kpl put` and `kpl serve`.
pub fn sink_config(
    path: Option<&std::path::Path>,
    endpoint: Option<&str>,
    region: Option<&str>,
) -> Result<Config, CliError> {
    let mut config = match path {
        None => Config::default(),
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| CliError::input(format!("cannot read {}: {e}", path.display())))?;
            let parsed = if path.extension().is_some_and(|e| e == "json") {
                serde_json::from_str::<Config>(&text).map_err(|e| e.to_string())
            } else {
                toml::from_str::<Config>(&text).map_err(|e| e.to_string())
            };
            parsed.map_err(|e| CliError::input(format!("{}: {e}", path.display())))?
        }
    };
    if let Some(endpoint) = endpoint {
        config.kinesis_endpoint = endpoint.to_owned();
    }
    if let Some(region) = region {
        config.region = region.to_owned();
    }
    config
        .validate()
        .map_err(|e| CliError::input(e.to_string()))?;
    Ok(config)
}

/// What one input line turned into.
enum Line {
    Record(UserRecord),
    Blank,
    /// Not sent, with the reason (counted as a failed record).
    Refused(String),
}

/// Partition keys for `--lines` without `--partition-key-field`: random, as KPL users do
/// for even spread (xorshift seeded from the clock; not for cryptography).
struct RandomKeys(u64);

impl RandomKeys {
    fn next(&mut self) -> String {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        format!("{:016x}", self.0)
    }
}

fn parse_line(
    args: &PutArgs,
    bytes: &[u8],
    line_number: usize,
    keys: &mut RandomKeys,
) -> Result<Line, CliError> {
    if !args.lines {
        // A line that does not parse is that record's failure, listed in the summary; the
        // other records still go.
        return match parse_user_record_line(bytes, line_number) {
            Ok(None) => Ok(Line::Blank),
            Ok(Some(u)) => Ok(Line::Record(UserRecord {
                partition_key: u.partition_key,
                explicit_hash_key: u.explicit_hash_key,
                data: u.data,
            })),
            Err(e) => Ok(Line::Refused(
                e.message
                    .strip_prefix(&format!("line {line_number}: "))
                    .unwrap_or(&e.message)
                    .to_owned(),
            )),
        };
    }
    let bytes = bytes.strip_suffix(b"\r").unwrap_or(bytes);
    let key = match &args.partition_key_field {
        None => keys.next(),
        Some(field) => {
            let value: Option<Value> = serde_json::from_slice(bytes).ok();
            match value.as_ref().and_then(|v| v.get(field)) {
                Some(Value::String(s)) if !s.is_empty() => s.clone(),
                Some(Value::Number(n)) => n.to_string(),
                Some(Value::Bool(b)) => b.to_string(),
                _ => {
                    return Ok(Line::Refused(format!(
                        "no non-empty string field {field:?} in a JSON object"
                    )))
                }
            }
        }
    };
    Ok(Line::Record(UserRecord::new(key, bytes.to_vec())))
}

/// Runs `kpl put`.
pub fn run(args: &PutArgs, stdin: &mut dyn Read, out: &mut dyn Write) -> Result<(), Stop> {
    let config = config(args)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| CliError::input(format!("cannot start the async runtime: {e}")))?;
    let mut lines = NumberedLines::open(args.file.as_deref(), stdin)?;
    let summary = runtime.block_on(put_all(args, config, &mut lines))?;
    summary.write(out)?;
    if summary.failures.is_empty() {
        Ok(())
    } else {
        Err(Stop::Error(CliError {
            exit_code: EXIT_DEFECT,
            message: format!(
                "{} of {} user records failed",
                summary.failures.len(),
                summary.records
            ),
        }))
    }
}

struct Summary {
    records: usize,
    failures: Vec<(usize, String)>,
    stats: Stats,
    bytes: usize,
    elapsed: Duration,
}

impl Summary {
    fn write(&self, out: &mut dyn Write) -> std::io::Result<()> {
        let s = &self.stats;
        let secs = self.elapsed.as_secs_f64().max(1e-9);
        writeln!(
            out,
            "user records:     {} ({} stored, {} failed)",
            self.records,
            s.user_records_stored,
            self.failures.len()
        )?;
        writeln!(
            out,
            "kinesis records:  {} (aggregation ratio {:.1})",
            s.kinesis_records_stored,
            s.aggregation_ratio()
        )?;
        writeln!(out, "PutRecords calls: {}", s.put_records_calls)?;
        let retries: Vec<String> = s
            .retries_by_code
            .iter()
            .map(|(code, n)| format!("{code}={n}"))
            .collect();
        let retries = if retries.is_empty() {
            "none".to_owned()
        } else {
            retries.join(", ")
        };
        writeln!(out, "retries:          {retries}")?;
        if s.wrong_shard_resends > 0 {
            writeln!(
                out,
                "re-sent after a reshard: {} aggregates",
                s.wrong_shard_resends
            )?;
        }
        writeln!(
            out,
            "throughput:       {:.0} user records/s, {:.2} MB/s over {:.2} s",
            self.records as f64 / secs,
            self.bytes as f64 / secs / 1e6,
            secs
        )?;
        if !self.failures.is_empty() {
            writeln!(out, "failures:")?;
            for (line, reason) in self.failures.iter().take(LISTED_FAILURES) {
                writeln!(out, "  line {line}: {reason}")?;
            }
            if self.failures.len() > LISTED_FAILURES {
                let mut by_reason: BTreeMap<&str, usize> = BTreeMap::new();
                for (_, reason) in &self.failures[LISTED_FAILURES..] {
                    *by_reason.entry(reason.as_str()).or_default() += 1;
                }
                writeln!(
                    out,
                    "  ... and {} more: {}",
                    self.failures.len() - LISTED_FAILURES,
                    by_reason
                        .iter()
                        .map(|(r, n)| format!("{n} x {r}"))
                        .collect::<Vec<_>>()
                        .join("; ")
                )?;
            }
        }
        out.flush()
    }
}

async fn put_all(
    args: &PutArgs,
    config: Config,
    lines: &mut NumberedLines<'_>,
) -> Result<Summary, CliError> {
    let verbose = args.target.verbose;
    // Fail fast: a stream that cannot be reached or does not exist is told in seconds.
    let check_timeout = Duration::from_millis(config.request_timeout).max(Duration::from_secs(10));
    crate::preflight::stream_ready(
        &args.target.stream,
        &config.kinesis_endpoint,
        &config.region,
        check_timeout,
        verbose,
    )
    .await?;
    let mut builder = Sink::builder().config(config);
    builder = if args.target.stream.starts_with("arn:") {
        builder.stream_arn(&args.target.stream)
    } else {
        builder.stream_name(&args.target.stream)
    };
    let sink = builder
        .build()
        .await
        .map_err(|e| CliError::input(e.to_string()))?;
    // As KPL's warm-up: records put before the shard map is known cannot be aggregated.
    sink.wait_for_shard_map(Duration::from_secs(10)).await;
    let started = Instant::now();
    let seed = started.elapsed().as_nanos() as u64
        ^ u64::from(std::process::id()).rotate_left(32)
        ^ std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
    let mut keys = RandomKeys(seed | 1);
    let mut progress = PutProgress::new(!args.quiet && std::io::stderr().is_terminal());
    // Records refused before the sink (they are not in its counts).
    let mut refused = 0u64;
    let counts = |sink: &Sink, read: usize, refused: u64| {
        let s = sink.stats();
        PutCounts {
            read: read as u64,
            stored: s.user_records_stored,
            failed: s.user_records_failed + refused,
            kinesis_records: s.kinesis_records_stored,
            elapsed: started.elapsed(),
        }
    };
    // Outcomes not settled yet, oldest first; settled ones are dropped as the input is read,
    // so that memory stays bounded by the sink's buffer however long the input.
    let mut pending: Vec<(usize, PendingOutcome)> = Vec::new();
    let mut failures: Vec<(usize, String)> = Vec::new();
    let (mut records, mut bytes) = (0usize, 0usize);
    // Records go to the sink PUT_GROUP at a time (their partition keys hashed together, side
    // by side in SIMD lanes), or fewer when the input has no whole line ready: a slow pipe's
    // lines are never held back waiting for more.
    let mut group: Vec<(usize, UserRecord)> = Vec::with_capacity(PUT_GROUP);
    let mut more = true;
    // `records` when settled outcomes were last dropped from `pending`.
    let mut settled_at = 0;
    while more {
        while group.len() < PUT_GROUP && (group.is_empty() || lines.line_ready()) {
            let Some((line_number, content)) = lines.next_line()? else {
                more = false;
                break;
            };
            match parse_line(args, content, line_number, &mut keys)? {
                Line::Blank => {}
                Line::Refused(reason) => {
                    records += 1;
                    refused += 1;
                    failures.push((line_number, reason));
                }
                Line::Record(record) => {
                    records += 1;
                    bytes += record.data.len();
                    group.push((line_number, record));
                }
            }
        }
        let (line_numbers, batch): (Vec<usize>, Vec<UserRecord>) = group.drain(..).unzip();
        for (line_number, put) in line_numbers.into_iter().zip(sink.put_batch(batch).await) {
            match put {
                Ok(p) => pending.push((line_number, p)),
                Err(SinkError::Invalid(e)) => {
                    refused += 1;
                    failures.push((line_number, format!("invalid record: {e}")))
                }
                Err(e) => return Err(CliError::input(e.to_string())),
            }
        }
        if records - settled_at >= 1024 {
            settled_at = records;
            pending.retain_mut(|(line_number, p)| match p.try_outcome() {
                None => true,
                Some(Outcome::Failure(f)) => {
                    failures.push((*line_number, crate::preflight::message(&f, verbose)));
                    false
                }
                Some(_) => false,
            });
        }
        progress.update(|| counts(&sink, records, refused));
    }
    let flush = sink.flush();
    tokio::pin!(flush);
    loop {
        tokio::select! {
            _ = &mut flush => break,
            _ = tokio::time::sleep(Duration::from_millis(250)) => {
                progress.update(|| counts(&sink, records, refused));
            }
        }
    }
    progress.finish(&counts(&sink, records, refused));
    for (line_number, p) in pending {
        if let Outcome::Failure(f) = p.await {
            failures.push((line_number, crate::preflight::message(&f, verbose)));
        }
    }
    failures.sort_by_key(|(line, _)| *line);
    let elapsed = started.elapsed();
    let stats = sink.stats();
    sink.shutdown(Duration::from_secs(30)).await;
    Ok(Summary {
        records,
        failures,
        stats,
        bytes,
        elapsed,
    })
}
