//! `kpl tail`: every shard's user records as NDJSON, deaggregated as KCL does.

use std::io::Write;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::atomic::{AtomicU64, AtomicUsize};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use kpl_kinesis::source::{LeaseSettings, Source, SourceConfig, SourceRecord, StartPosition};
use serde::Serialize;

use crate::args::TailArgs;
use crate::error::{CliError, Stop};
use crate::output::{write_line, DecodedLine};
use crate::status::{tail_line, TailCounts};

/// One line of `kpl tail`: the `kpl decode` shape plus the shard.
#[derive(Debug, Serialize)]
pub struct TailLine {
    /// The user record, as `kpl decode` prints it (with `SequenceNumber`).
    #[serde(flatten)]
    pub record: DecodedLine,
    /// The shard it was read from.
    #[serde(rename = "ShardId")]
    pub shard_id: String,
}

impl TailLine {
    /// The line for a record read by the source.
    pub fn new(r: &SourceRecord) -> Self {
        let user = kpl_codec::UserRecord {
            partition_key: r.partition_key.as_bytes(),
            explicit_hash_key: r.explicit_hash_key.as_deref().map(str::as_bytes),
            data: &r.data,
            sub_sequence_number: r.sub_sequence_number,
            aggregated: r.aggregated,
        };
        TailLine {
            record: DecodedLine::new(&user, Some(&r.sequence_number)),
            shard_id: r.shard_id.to_string(),
        }
    }
}

/// Where `--from` starts.
pub fn start_position(from: &str) -> Result<StartPosition, CliError> {
    match from {
        "trim-horizon" => Ok(StartPosition::TrimHorizon),
        "latest" => Ok(StartPosition::Latest),
        seq if !seq.is_empty() && seq.bytes().all(|b| b.is_ascii_digit()) => {
            Ok(StartPosition::AtSequenceNumber(seq.to_owned()))
        }
        other => Err(CliError::input(format!(
            "--from {other:?}: expected trim-horizon, latest or a sequence number"
        ))),
    }
}

/// Runs `kpl tail` until every shard is read to its end (or, with `--follow`, until
/// Ctrl-C).
pub fn run(args: &TailArgs, out: &mut dyn Write) -> Result<(), Stop> {
    let leased = args.lease_table.is_some();
    let follow = args.follow || leased;
    let config = SourceConfig {
        start: start_position(&args.from)?,
        range_filter: !args.no_range_filter,
        follow,
        ..SourceConfig::default()
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| CliError::input(format!("cannot start the async runtime: {e}")))?;
    runtime.block_on(async {
        let target = &args.target;
        // Fail fast: a stream that cannot be reached or does not exist is told in seconds.
        crate::preflight::stream_ready(
            &target.stream,
            target.endpoint.as_deref().unwrap_or_default(),
            target.region.as_deref().unwrap_or_default(),
            Duration::from_secs(15),
            target.verbose,
        )
        .await?;
        let mut builder = Source::builder().config(config);
        builder = if target.stream.starts_with("arn:") {
            builder.stream_arn(&target.stream)
        } else {
            builder.stream_name(&target.stream)
        };
        if let Some(endpoint) = &target.endpoint {
            builder = builder.endpoint_url(endpoint);
        }
        if let Some(region) = &target.region {
            builder = builder.region(region);
        }
        if let Some(table) = &args.lease_table {
            let worker = args
                .worker_id
                .clone()
                .unwrap_or_else(|| LeaseSettings::default_worker_id("kpl"));
            let mut settings = LeaseSettings::new(table, worker);
            settings.failover_time = Duration::from_millis(args.failover_ms.max(1));
            settings.endpoint = args.dynamodb_endpoint.clone();
            builder = builder.leases(settings);
        }
        let mut source = builder
            .build()
            .await
            .map_err(|e| CliError::input(e.to_string()))?;
        let stop = stop_signal();
        tokio::pin!(stop);
        // With --follow and -v: a status line on standard error every 10 s, from a task of
        // its own (so that no read is ever interrupted for it).
        let seen = Arc::new(Seen::default());
        let status_on = follow && target.verbose;
        let status = status_on.then(|| tokio::spawn(status_lines(seen.clone(), STATUS_EVERY)));
        let mut shards_counted: Option<std::time::Instant> = None;
        loop {
            let next = tokio::select! {
                () = &mut stop => break,
                next = source.next() => next,
            };
            // With leases and -v: the shards this worker takes and gives up, on standard
            // error.
            while let Some(event) = source.poll_lease_event() {
                if target.verbose {
                    eprintln!("kpl: {event}");
                }
            }
            match next {
                None => break,
                Some(Ok(record)) => {
                    write_line(out, &TailLine::new(&record))?;
                    if status_on {
                        seen.record(&record);
                        // Counting the shards lists them: at most once a second.
                        if shards_counted.is_none_or(|t| t.elapsed() >= Duration::from_secs(1)) {
                            shards_counted = Some(std::time::Instant::now());
                            seen.shards.store(source.shard_ids().len(), Relaxed);
                        }
                    }
                    // Line by line when following, so that `| jq` sees records at once.
                    if follow {
                        out.flush()?;
                    }
                    // With leases: printed, so processed (a lease lost meanwhile refuses
                    // it: its next holder prints the record again).
                    if leased {
                        let _ = source.checkpoint(&record);
                    }
                }
                Some(Err(e)) => {
                    let message = crate::preflight::message(&e, target.verbose);
                    return Err(Stop::Error(CliError::input(message)));
                }
            }
        }
        if let Some(task) = status {
            task.abort();
        }
        out.flush()?;
        // With leases: the last checkpoints written and the leases released, so that the
        // other workers take the shards at once.
        source.shutdown(Duration::from_secs(5)).await;
        Ok(())
    })
}

/// Ctrl-C or SIGTERM.
async fn stop_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}

/// How often `kpl tail --follow -v` says how it goes.
const STATUS_EVERY: Duration = Duration::from_secs(10);

/// What the reading loop has seen, for the status line.
#[derive(Debug)]
struct Seen {
    records: AtomicU64,
    shards: AtomicUsize,
    /// How far behind the stream's tip the last record was, in milliseconds; `u64::MAX`
    /// when not known.
    behind_ms: AtomicU64,
}

impl Default for Seen {
    fn default() -> Self {
        Seen {
            records: AtomicU64::new(0),
            shards: AtomicUsize::new(0),
            behind_ms: AtomicU64::new(u64::MAX),
        }
    }
}

impl Seen {
    /// Counts a printed record and how long after its arrival in Kinesis it was printed.
    fn record(&self, record: &SourceRecord) {
        self.records.fetch_add(1, Relaxed);
        if let Some(arrival) = record.approximate_arrival {
            // A clock behind Kinesis's counts as caught up.
            let behind = SystemTime::now()
                .duration_since(arrival)
                .unwrap_or_default();
            let ms = u64::try_from(behind.as_millis()).unwrap_or(u64::MAX - 1);
            self.behind_ms.store(ms, Relaxed);
        }
    }
}

/// [`tail_line`] on standard error every `every`.
async fn status_lines(seen: Arc<Seen>, every: Duration) {
    let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    let mut before = 0;
    loop {
        ticks.tick().await;
        let records = seen.records.load(Relaxed);
        let behind_ms = seen.behind_ms.load(Relaxed);
        eprintln!(
            "{}",
            tail_line(&TailCounts {
                records,
                recent: records.saturating_sub(before),
                window: every,
                shards: seen.shards.load(Relaxed),
                behind: (behind_ms != u64::MAX).then(|| Duration::from_millis(behind_ms)),
            })
        );
        before = records;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn from_accepts_the_three_forms_only() {
        assert_eq!(
            start_position("trim-horizon").unwrap(),
            StartPosition::TrimHorizon
        );
        assert_eq!(start_position("latest").unwrap(), StartPosition::Latest);
        assert_eq!(
            start_position("4959").unwrap(),
            StartPosition::AtSequenceNumber("4959".into())
        );
        assert!(start_position("oldest").is_err());
        assert!(start_position("").is_err());
    }

    fn record(approximate_arrival: Option<SystemTime>) -> SourceRecord {
        SourceRecord {
            shard_id: "shardId-000000000000".into(),
            sequence_number: "1".into(),
            sub_sequence_number: 0,
            partition_key: "k".into(),
            explicit_hash_key: None,
            data: Vec::new(),
            aggregated: false,
            approximate_arrival,
            defect: None,
        }
    }

    #[test]
    fn the_status_counts_records_and_how_far_behind_the_last_was() {
        let seen = Seen::default();
        seen.record(&record(None));
        assert_eq!(seen.records.load(Relaxed), 1);
        assert_eq!(
            seen.behind_ms.load(Relaxed),
            u64::MAX,
            "not known without an arrival"
        );
        // An arrival after now (a clock behind Kinesis's) counts as caught up.
        let later = SystemTime::now() + Duration::from_secs(3600);
        seen.record(&record(Some(later)));
        assert_eq!(seen.behind_ms.load(Relaxed), 0);
        seen.record(&record(Some(SystemTime::UNIX_EPOCH)));
        assert!(seen.behind_ms.load(Relaxed) > 0);
        assert_eq!(seen.records.load(Relaxed), 3);
    }
}
