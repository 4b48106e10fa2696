//! Backpressure of the sans-IO sink core against simulated streams that are slower than the
//! producer: the producer puts as fast as the core admits (a `Full` answer makes it wait
//! for the next event, as `Sink::put` does), on a virtual clock. What must hold (issue
//! "slow the producer down instead of expiring its records"): on a slow stream every record
//! is stored and what is buffered stays within what can drain in `BufferDrainTime`; on a
//! dead stream records expire after their TTL, each with its outcome, with memory bounded.
//! On a shard throttled far below its nominal rate for minutes, the sink sends at what the
//! shard takes and nothing expires.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

const PTEE: &str = "ProvisionedThroughputExceededException";

use kpl_kinesis::sink::{
    Config, Core, EntryResult, ErrorInfo, FailureReason, Outcome, PutError, RecordId,
    RequestFailure, RequestId, ShardMap, Transmit, UserRecord, RECORD_OVERHEAD,
};

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// How a simulated stream answers one PutRecords request: when, and what.
type Answer = (Instant, Result<Vec<EntryResult>, RequestFailure>);

trait Stream {
    fn answer(&mut self, t: &Transmit, shards: &[usize], now: Instant) -> Answer;
}

/// A stream that stores everything but only `bytes_per_second` overall: requests are
/// served one after another (FIFO), each taking its size over the bandwidth, plus latency;
/// an answer later than `timeout` is a (retryable) timeout, as the driver's RequestTimeout.
struct Slow {
    bytes_per_second: u64,
    latency: Duration,
    timeout: Duration,
    free_at: Instant,
    seq: u64,
}

impl Stream for Slow {
    fn answer(&mut self, t: &Transmit, shards: &[usize], now: Instant) -> Answer {
        let start = self.free_at.max(now);
        let busy = Duration::from_micros(t.size() as u64 * 1_000_000 / self.bytes_per_second);
        self.free_at = start + busy;
        if self.free_at + self.latency > now + self.timeout {
            // The driver gives up after RequestTimeout; the stream stores the records anyway
            // (they come again with the retry), as a slow endpoint does.
            let failure = RequestFailure {
                error: ErrorInfo {
                    code: "Timeout".into(),
                    message: "no answer".into(),
                },
                retryable: true,
            };
            return (now + self.timeout, Err(failure));
        }
        let results = shards
            .iter()
            .map(|&s| {
                self.seq += 1;
                EntryResult::Stored {
                    shard_id: format!("shardId-{s:012}"),
                    sequence_number: self.seq.to_string(),
                }
            })
            .collect();
        (self.free_at + self.latency, Ok(results))
    }
}

/// Kinesis's own throttling: each shard stores at most its capacity of bytes per second
/// (per calendar second of the virtual clock); entries beyond it fail with
/// ProvisionedThroughputExceededException.
struct Throttling {
    t0: Instant,
    capacity: Vec<u64>,
    used: Vec<(u64, u64)>,
    latency: Duration,
    seq: u64,
}

impl Stream for Throttling {
    fn answer(&mut self, t: &Transmit, shards: &[usize], now: Instant) -> Answer {
        let second = now.duration_since(self.t0).as_secs();
        let results = t
            .entries
            .iter()
            .zip(shards)
            .map(|(e, &s)| {
                let size = (e.data.len() + e.partition_key.len()) as u64;
                let used = &mut self.used[s];
                if used.0 != second {
                    *used = (second, 0);
                }
                if used.1 + size > self.capacity[s] {
                    return EntryResult::Failed(ErrorInfo {
                        code: PTEE.into(),
                        message: "Rate exceeded for shard".into(),
                    });
                }
                used.1 += size;
                self.seq += 1;
                EntryResult::Stored {
                    shard_id: format!("shardId-{s:012}"),
                    sequence_number: self.seq.to_string(),
                }
            })
            .collect();
        (now + self.latency, Ok(results))
    }
}

/// A stream that accepts nothing: every request fails as a whole, retryably.
struct Dead;

impl Stream for Dead {
    fn answer(&mut self, _: &Transmit, _: &[usize], now: Instant) -> Answer {
        let failure = RequestFailure {
            error: ErrorInfo {
                code: "ServiceUnavailable".into(),
                message: "down".into(),
            },
            retryable: true,
        };
        (now + ms(100), Err(failure))
    }
}

/// What a run observed.
#[derive(Debug, Default)]
struct Report {
    stored: usize,
    failed: BTreeMap<String, usize>,
    /// Times `put` answered Full (the producer waited).
    waits: usize,
    /// Highest cost buffered (bytes plus RECORD_OVERHEAD per record) over the run.
    peak_cost: usize,
    /// Highest cost buffered for one shard, beyond its limit at the time of the put.
    over_limit: usize,
    elapsed: Duration,
    retries: BTreeMap<String, u64>,
}

/// The record the producer puts n-th: about 100 bytes, a key of 1,000 (random enough to
/// spread over the shards).
fn record(n: usize) -> UserRecord {
    let data = format!("{n:08} {}", "x".repeat(91));
    UserRecord::new(format!("key-{}", (n * 7919) % 1000), data)
}

/// Puts `count` records as fast as the core admits them (or, with `until`, keeps putting
/// until that much virtual time has passed), answering its requests with `stream`, until
/// every record has its outcome.
fn run(config: Config, shards: usize, stream: &mut dyn Stream, count: usize) -> Report {
    let t0 = Instant::now();
    let mut core = Core::new(config, t0).unwrap();
    let map = ShardMap::even(shards);
    core.set_shard_map(map.clone(), t0);
    let mut now = t0;
    let mut report = Report::default();
    let mut answers: Vec<(Instant, RequestId, Result<Vec<EntryResult>, RequestFailure>)> =
        Vec::new();
    let mut outcomes: HashMap<RecordId, Outcome> = HashMap::new();
    let mut next = 0;
    let mut blocked: Option<UserRecord> = None;
    loop {
        // The producer: as many as the core takes now.
        while next < count {
            let r = blocked.take().unwrap_or_else(|| record(next));
            let budget = core.shard_budget(kpl_codec::hash_key(r.partition_key.as_bytes()), now);
            match core.put(r, now) {
                Ok(_) => {
                    next += 1;
                    let after = budget.buffered_cost + 100 + RECORD_OVERHEAD;
                    report.over_limit = report.over_limit.max(after.saturating_sub(budget.limit));
                }
                Err(PutError::Full(r)) => {
                    report.waits += 1;
                    blocked = Some(r);
                    break;
                }
                Err(PutError::Invalid(e)) => panic!("{e}"),
            }
        }
        let cost = core.buffered_bytes() + core.buffered_records() * RECORD_OVERHEAD;
        report.peak_cost = report.peak_cost.max(cost);
        core.handle_timeout(now);
        while let Some(t) = core.poll_transmit(now) {
            let routed: Vec<usize> = t
                .entries
                .iter()
                .map(|e| map.route(e.explicit_hash_key.parse().unwrap()))
                .collect();
            let (at, answer) = stream.answer(&t, &routed, now);
            if std::env::var("SIM_DEBUG").is_ok() {
                eprintln!(
                    "{:>8.3}s send {} entries {} bytes -> {:>8.3}s {}; buffered {} in flight {}",
                    (now - t0).as_secs_f64(),
                    t.entries.len(),
                    t.size(),
                    (at - t0).as_secs_f64(),
                    if answer.is_ok() { "ok" } else { "timeout" },
                    core.buffered_records(),
                    core.in_flight()
                );
            }
            answers.push((at, t.id, answer));
        }
        while let Some((id, outcome)) = core.poll_outcome() {
            assert!(outcomes.insert(id, outcome).is_none(), "two outcomes");
        }
        if next == count && core.is_idle() && answers.is_empty() {
            break;
        }
        let wake = answers
            .iter()
            .map(|a| a.0)
            .chain(core.poll_timeout(now))
            .min();
        let Some(wake) = wake else {
            // Everything settled while the producer waited: it is let in again (as a
            // `Sink::put` waiting for room is woken by outcomes).
            assert!(blocked.is_some() && core.buffered_records() == 0);
            continue;
        };
        now = wake.max(now + Duration::from_micros(100));
        assert!(now - t0 < Duration::from_secs(3600), "no end in sight");
        answers.sort_by_key(|a| a.0);
        while answers.first().is_some_and(|a| a.0 <= now) {
            let (_, id, answer) = answers.remove(0);
            core.on_response(id, answer, now);
        }
    }
    assert_eq!(outcomes.len(), count, "one outcome per record");
    for outcome in outcomes.values() {
        match outcome {
            Outcome::Success(_) => report.stored += 1,
            Outcome::Failure(f) => {
                let kind = match &f.reason {
                    FailureReason::Expired(_) => "expired".to_owned(),
                    other => format!("{other:?}"),
                };
                *report.failed.entry(kind).or_default() += 1;
            }
        }
    }
    report.elapsed = now - t0;
    report.retries = core.stats().retries_by_code.clone();
    report
}

#[test]
fn a_slow_stream_slows_the_producer_and_stores_everything() {
    // 300,000 records of about 100 bytes (32 MB with keys) into a stream that stores
    // 1 MB/s (about kinesis-mock's speed): the producer cannot go faster than 32 s,
    // longer than the 30 s TTL.
    let count = 300_000;
    let slow = || Slow {
        bytes_per_second: 1_000_000,
        latency: ms(50),
        timeout: ms(6_000),
        free_at: Instant::now(),
        seq: 0,
    };
    let report = run(Config::default(), 4, &mut slow(), count);
    assert_eq!(report.stored, count, "{report:?}");
    assert!(report.failed.is_empty(), "{report:?}");
    assert!(report.waits > 0, "the producer never waited: {report:?}");
    // Never above a shard's limit by more than the one record an empty account takes.
    assert_eq!(report.over_limit, 0, "{report:?}");
    // Memory: the floors (256 KiB a shard) plus what drains in 10 s at this stream's speed,
    // counted as the rule counts. At most 10,000 records a second get through (each takes at least its 100 bytes of
    // data on the wire), each costing its 107 bytes plus the overhead.
    let per_second_cost = 1_000_000 / 100 * (107 + RECORD_OVERHEAD);
    let bound = 4 * 256 * 1024 + 10 * per_second_cost;
    assert!(report.peak_cost <= bound, "{} > {bound}", report.peak_cost);
    // The producer ran at the stream's speed: not much longer than the bytes take.
    let ideal = Duration::from_secs(32_100_000 / 1_000_000);
    assert!(report.elapsed < ideal * 3 / 2, "{report:?}");

    // The same run without the rule (BufferDrainTime 0, only the hard bounds): the
    // producer buffers up to 200,000 records at once and many of them expire.
    let off = Config {
        buffer_drain_time: Some(0),
        ..Config::default()
    };
    let report = run(off, 4, &mut slow(), count);
    assert!(
        report.failed.get("expired").copied().unwrap_or(0) > count / 10,
        "{report:?}"
    );
}

#[test]
fn a_server_slower_than_one_full_batch_per_request_timeout_gets_smaller_batches() {
    // 150 KB/s: a 5 MiB PutRecords takes 35 s, far beyond the 6 s RequestTimeout, so only
    // smaller requests can ever be answered. 50,000 records (5.4 MB): about 36 s at best,
    // longer than the TTL, so the producer must be slowed down too.
    let count = 50_000;
    let mut slow = Slow {
        bytes_per_second: 150_000,
        latency: ms(50),
        timeout: ms(6_000),
        free_at: Instant::now(),
        seq: 0,
    };
    let report = run(Config::default(), 4, &mut slow, count);
    assert!(report.failed.is_empty(), "{report:?}");
    assert_eq!(report.stored, count);
    assert!(report.waits > 0, "{report:?}");
}

#[test]
fn a_throttled_shard_for_minutes_expires_nothing() {
    // Shard 0 of 4 takes only 100 KB/s (a tenth of its nominal 1 MiB/s: other producers
    // use the rest) for the whole run; the others take what they are sent. 450,000
    // records, a quarter of them for shard 0: two minutes of virtual time at its pace.
    let t0 = Instant::now();
    let mut stream = Throttling {
        t0,
        capacity: vec![100_000, 1 << 20, 1 << 20, 1 << 20],
        used: vec![(u64::MAX, 0); 4],
        latency: ms(30),
        seq: 0,
    };
    let count = 450_000;
    let report = run(Config::default(), 4, &mut stream, count);
    assert!(report.failed.is_empty(), "{report:?}");
    assert_eq!(report.stored, count);
    assert!(
        report.retries.get(PTEE).copied().unwrap_or(0) > 0,
        "{report:?}"
    );
    assert!(report.elapsed > Duration::from_secs(110), "{report:?}");
    assert_eq!(report.over_limit, 0, "{report:?}");
}

#[test]
fn a_dead_stream_expires_records_after_the_ttl_with_memory_bounded() {
    let count = 50_000;
    let config = Config {
        record_ttl: 30_000,
        ..Config::default()
    };
    let report = run(config, 4, &mut Dead, count);
    assert_eq!(report.stored, 0);
    assert_eq!(
        report.failed.get("expired").copied(),
        Some(count),
        "{report:?}"
    );
    // Nothing was ever stored, so each shard holds at most its floor (plus one record).
    let bound = 4 * (256 * 1024 + 107 + RECORD_OVERHEAD);
    assert!(report.peak_cost <= bound, "{} > {bound}", report.peak_cost);
    // Records expire only after their whole TTL: 50,000 records of ~171 cost are about
    // 8.5 MB, 4 MiB at a time, so at least two TTLs pass.
    assert!(report.elapsed >= Duration::from_secs(8 * 30), "{report:?}");
    assert!(report.waits > 0);
}
