//! `kpl serve`'s counters, served as Prometheus text on `GET /metrics`.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use kpl_kinesis::sink::Stats;

/// Upper bounds (ms) of the put latency histogram's buckets.
const BUCKETS_MS: [u64; 11] = [5, 10, 25, 50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000];

/// The counters; all atomics, shared by every connection.
#[derive(Debug, Default)]
pub struct Metrics {
    /// Put requests (PutRecords and PutRecord) answered.
    pub put_requests: AtomicU64,
    /// User records received in valid put requests.
    pub records_in: AtomicU64,
    /// User records answered as stored.
    pub records_stored: AtomicU64,
    /// User records answered ProvisionedThroughputExceeded (buffer full).
    pub records_throttled: AtomicU64,
    /// User records answered with another failure.
    pub records_failed: AtomicU64,
    /// Requests refused as invalid (validation, serialization).
    pub invalid_requests: AtomicU64,
    /// Requests forwarded to the upstream.
    pub forwarded: AtomicU64,
    /// Connections closed at once because of the connection limit.
    pub refused_connections: AtomicU64,
    latency_buckets: [AtomicU64; BUCKETS_MS.len()],
    latency_count: AtomicU64,
    latency_sum_us: AtomicU64,
}

fn add(counter: &AtomicU64, n: u64) {
    counter.fetch_add(n, Ordering::Relaxed);
}

impl Metrics {
    /// Adds `n` to a counter.
    pub fn add(&self, counter: &AtomicU64, n: u64) {
        add(counter, n);
    }

    /// Records one put request's latency (receipt to answer).
    pub fn observe_put(&self, latency: Duration) {
        let micros = latency.as_micros();
        for (bound, bucket) in BUCKETS_MS.iter().zip(&self.latency_buckets) {
            if micros <= u128::from(*bound) * 1_000 {
                add(bucket, 1);
            }
        }
        add(&self.latency_count, 1);
        add(&self.latency_sum_us, latency.as_micros() as u64);
    }

    /// The Prometheus text, with the sinks' totals (Kinesis records stored, PutRecords calls).
    pub fn render(&self, sinks: &[(String, Stats)]) -> String {
        let mut out = String::new();
        let counter = |out: &mut String, name: &str, help: &str, value: u64| {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {value}"
            );
        };
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        counter(
            &mut out,
            "kpl_serve_put_requests_total",
            "PutRecords and PutRecord requests answered.",
            get(&self.put_requests),
        );
        counter(
            &mut out,
            "kpl_serve_user_records_in_total",
            "User records received.",
            get(&self.records_in),
        );
        counter(
            &mut out,
            "kpl_serve_user_records_stored_total",
            "User records answered as stored.",
            get(&self.records_stored),
        );
        counter(
            &mut out,
            "kpl_serve_user_records_throttled_total",
            "User records answered ProvisionedThroughputExceededException.",
            get(&self.records_throttled),
        );
        counter(
            &mut out,
            "kpl_serve_user_records_failed_total",
            "User records answered with another failure.",
            get(&self.records_failed),
        );
        counter(
            &mut out,
            "kpl_serve_invalid_requests_total",
            "Requests refused as invalid.",
            get(&self.invalid_requests),
        );
        counter(
            &mut out,
            "kpl_serve_forwarded_requests_total",
            "Requests forwarded to the upstream.",
            get(&self.forwarded),
        );
        counter(
            &mut out,
            "kpl_serve_refused_connections_total",
            "Connections closed over the connection limit.",
            get(&self.refused_connections),
        );
        let _ = writeln!(out, "# HELP kpl_serve_kinesis_records_stored_total Kinesis records the sinks stored upstream.\n# TYPE kpl_serve_kinesis_records_stored_total counter");
        for (stream, stats) in sinks {
            let _ = writeln!(
                out,
                "kpl_serve_kinesis_records_stored_total{{stream=\"{}\"}} {}",
                stream.replace('"', "'"),
                stats.kinesis_records_stored
            );
        }
        let _ = writeln!(out, "# HELP kpl_serve_put_records_calls_total PutRecords calls the sinks made upstream.\n# TYPE kpl_serve_put_records_calls_total counter");
        for (stream, stats) in sinks {
            let _ = writeln!(
                out,
                "kpl_serve_put_records_calls_total{{stream=\"{}\"}} {}",
                stream.replace('"', "'"),
                stats.put_records_calls
            );
        }
        let _ = writeln!(out, "# HELP kpl_serve_put_latency_seconds Put request latency, receipt to answer.\n# TYPE kpl_serve_put_latency_seconds histogram");
        for (bound, bucket) in BUCKETS_MS.iter().zip(&self.latency_buckets) {
            let _ = writeln!(
                out,
                "kpl_serve_put_latency_seconds_bucket{{le=\"{}\"}} {}",
                *bound as f64 / 1000.0,
                get(bucket)
            );
        }
        let count = get(&self.latency_count);
        let _ = writeln!(
            out,
            "kpl_serve_put_latency_seconds_bucket{{le=\"+Inf\"}} {count}"
        );
        let _ = writeln!(
            out,
            "kpl_serve_put_latency_seconds_sum {}",
            get(&self.latency_sum_us) as f64 / 1e6
        );
        let _ = writeln!(out, "kpl_serve_put_latency_seconds_count {count}");
        out
    }
}
