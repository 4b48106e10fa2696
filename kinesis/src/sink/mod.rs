//! The Kinesis sink: shard-aware KPL aggregation, PutRecords batching, rate limits and
//! retries, with exactly one outcome per user record.
//!
//! Two layers:
//! - [`Core`], a sans-IO state machine (no tokio, no AWS SDK; build with
//!   `default-features = false` to get only it), driven with an injected clock;
//! - [`Sink`] (feature `driver`, on by default), a thin tokio + `aws-sdk-kinesis` shell that
//!   feeds it.
//!
//! # Shard safety, and what it costs
//! KCL drops a whole aggregate when any of its user records lies outside the hash range of
//! the shard it was read from (format.md, section 4). An aggregate built for a shard that was
//! split or merged before the PutRecords arrived lands on a child shard that may not hold all
//! its records. The core checks every stored aggregate against the `ShardId` Kinesis
//! answered; when the shard does not hold them all (or is unknown), it refreshes the shard
//! map and re-sends **all** the aggregate's user records, re-aggregated for the new map (KPL
//! since 2024 re-sends only the out-of-range ones, which KCL still drops with the rest).
//! The first copy stays in the stream: a KCL consumer filters it away, but a consumer that
//! does not filter by hash range (Lambda, most libraries) sees those user records twice.
//! Delivery is therefore at-least-once for non-filtering consumers, exactly-once-stored for
//! KCL ones.
//!
//! # Backpressure: slowing the producer instead of expiring its records
//! `put` waits (and `try_put` / [`Core::put`] say full) not only at the hard bounds
//! (`MaxBufferedRecords`, `MaxBufferedBytes`) but as soon as what is buffered could not be
//! stored within `BufferDrainTime` (default 10 s, a third of `RecordTtl`) at the rate the
//! sink has actually stored user records over the last 5 s ([`THROUGHPUT_WINDOW`]), whatever
//! limits that rate: the stream's capacity, throttling, the sink's rate limits, a slow
//! endpoint. The rule holds **per shard**: a record is charged to the shard its hash key
//! routes to, so a hot or throttled shard slows down only the records bound for it (and a
//! producer that waits in `put` for one of them). Each record counts its data and partition
//! key plus [`RECORD_OVERHEAD`]. `BufferMinBytes` (default 256 KiB) is what a shard that
//! stored nothing in the last 5 s may hold, to start and measure; once it stores, its limit
//! is what it drains in time, even below that. A shard with nothing buffered always takes
//! one record, and a refused `put` sends what is buffered at once. [`Core::shard_budget`]
//! shows the numbers. A producer faster than its stream thus runs at the stream's speed,
//! with memory bounded by what drains within `BufferDrainTime`.
//!
//! Three more rules keep records from expiring on a slow or busy stream:
//! - the bytes in flight stay within what the stream answered as stored in half a
//!   `RequestTimeout` lately (at least `BufferMinBytes`), and no request is built larger;
//! - after a request times out, requests are at most half its size, growing back by a
//!   quarter with each answer;
//! - a shard that answers ProvisionedThroughputExceeded is sent to at half the rate (at most
//!   every 500 ms, down to a hundredth of `RateLimit`), recovering by a tenth a second
//!   ([`ShardLimiter`]), and retried records go ahead of new ones.
//!
//! When the stream stops accepting anything, the measured rate falls to zero within 5 s,
//! each shard holds at most `BufferMinBytes`, and records expire only once nothing at all
//! was stored for their whole `RecordTtl`. `BufferDrainTime = 0` turns the drain rule and the
//! in-flight window off (KPL's behaviour: take everything, until it expires).

mod admission;
mod config;
mod core;
#[cfg(feature = "driver")]
mod driver;
mod errors;
mod outcome;
mod rate_limit;
mod shard_map;

pub use self::admission::{ShardBudget, RECORD_OVERHEAD, WINDOW as THROUGHPUT_WINDOW};
pub use self::config::{Config, ConfigError};
pub use self::core::{Core, EntryResult, PutEntry, RequestFailure, RequestId, Stats, Transmit};
#[cfg(feature = "driver")]
pub use self::driver::{PendingOutcome, Sink, SinkBuilder, SinkError};
pub use self::errors::{retryable_record_error, retryable_request_error, GUARD_TIMEOUT};
pub use self::outcome::{
    ErrorInfo, Failure, FailureReason, Outcome, PutError, RecordId, Success, UserRecord,
};
pub use self::rate_limit::{ShardLimiter, TokenBucket};
pub use self::shard_map::{ShardInfo, ShardMap, ShardMapError};
