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

mod config;
mod core;
#[cfg(feature = "driver")]
mod driver;
mod errors;
mod outcome;
mod rate_limit;
mod shard_map;

pub use self::config::{Config, ConfigError};
pub use self::core::{Core, EntryResult, PutEntry, RequestFailure, RequestId, Stats, Transmit};
#[cfg(feature = "driver")]
pub use self::driver::{PendingOutcome, Sink, SinkBuilder, SinkError};
pub use self::errors::{retryable_record_error, retryable_request_error, GUARD_TIMEOUT};
pub use self::outcome::{
    ErrorInfo, Failure, FailureReason, Outcome, PutError, RecordId, Success, UserRecord,
};
pub use self::rate_limit::TokenBucket;
pub use self::shard_map::{ShardInfo, ShardMap, ShardMapError};
