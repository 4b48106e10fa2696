//! The sink's settings, with Java KPL's option names and defaults where KPL has the option.

use core::fmt;
use std::time::Duration;

use kpl_codec::AggregatorConfig;
use serde::Deserialize;

/// Everything the sink core needs to know, deserializable from TOML or JSON with KPL's
/// option names (`AggregationMaxSize`, `RecordMaxBufferedTime`, ...). Times are in
/// milliseconds, as in KPL's properties files. Unknown names are an error.
///
/// ```
/// use kpl_kinesis::sink::Config;
/// let config: Config = serde_json::from_str(r#"{"RecordMaxBufferedTime": 250, "RateLimit": 100}"#).unwrap();
/// assert_eq!(config.record_max_buffered_time, 250);
/// assert_eq!(config.aggregation_max_size, 51_200); // KPL's default
/// config.validate().unwrap();
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, rename_all = "PascalCase", deny_unknown_fields)]
pub struct Config {
    /// KPL `AggregationEnabled`: pack user records into aggregates (default true).
    pub aggregation_enabled: bool,
    /// KPL `AggregationMaxCount`: most user records per aggregate (default 4,294,967,295).
    pub aggregation_max_count: u64,
    /// KPL `AggregationMaxSize`: largest aggregate, 20 + protobuf bytes (default 51,200).
    pub aggregation_max_size: usize,
    /// The stream's record limit, data plus partition key (default 1 MiB; up to 10 MiB for
    /// streams configured so). Not a KPL option: KPL assumes 1 MiB.
    pub max_record_size: usize,
    /// KPL `CollectionMaxCount`: most Kinesis records per PutRecords (default 500).
    pub collection_max_count: usize,
    /// KPL `CollectionMaxSize`: most bytes (data plus partition keys) per PutRecords
    /// (default 5 MiB; 10 MiB streams accept more).
    pub collection_max_size: usize,
    /// KPL `RecordMaxBufferedTime`, ms: how long a user record may wait for others before
    /// its aggregate and its PutRecords are sent (default 100).
    pub record_max_buffered_time: u64,
    /// KPL `RecordTtl`, ms: how long a user record may be retried before it is reported as
    /// failed (default 30,000).
    pub record_ttl: u64,
    /// KPL `RateLimit`: per-shard limit on records/s and bytes/s sent, as a percentage of
    /// the shard's limits (default 150).
    pub rate_limit: u64,
    /// A shard's record rate, Kinesis records per second (default 1,000).
    pub shard_records_per_second: u64,
    /// A shard's byte rate, bytes per second (default 1 MiB).
    pub shard_bytes_per_second: u64,
    /// KPL `MaxConnections`: most PutRecords requests in flight (default 24).
    pub max_connections: usize,
    /// KPL `RequestTimeout`, ms: how long one PutRecords or ListShards call may take before
    /// it counts as a (retryable) timeout (default 6,000).
    pub request_timeout: u64,
    /// Most user records buffered (put but without an outcome yet); beyond it `put` waits
    /// and `try_put` says full (default 200,000). A hard bound; the drain rule
    /// (`BufferDrainTime`) usually binds first.
    pub max_buffered_records: usize,
    /// Most bytes (data plus partition keys) buffered (default 64 MiB). A hard bound, for
    /// streams so fast that the drain rule would allow more.
    pub max_buffered_bytes: usize,
    /// Admission control, ms: `put` waits while what is buffered could not be stored within
    /// this time at the throughput the sink achieved over the last 5 s (default: a third of
    /// `RecordTtl`, so 10,000 with KPL's TTL, leaving the rest of the TTL for retries; at
    /// most `RecordTtl`; 0 turns the rule off). Not a KPL option: KPL buffers without bound
    /// until records expire.
    pub buffer_drain_time: Option<u64>,
    /// What the drain rule allows a shard that stored nothing over the last 5 s, in its cost
    /// unit (bytes plus 64 per record; default 256 KiB): enough to start and measure, small
    /// enough to drain within the TTL even on a shard throttled to a trickle. Also the bytes
    /// that may be in flight before any throughput is measured.
    pub buffer_min_bytes: usize,
    /// First retry delay, ms; doubled per attempt, with jitter (default 100).
    pub retry_backoff_min: u64,
    /// Longest retry delay, ms (default 5,000).
    pub retry_backoff_max: u64,
    /// KPL `Region` (the driver's region; empty for the standard chain).
    pub region: String,
    /// KPL `KinesisEndpoint` as a URL, e.g. `http://127.0.0.1:4568` (empty for AWS).
    pub kinesis_endpoint: String,
    /// Seed of the retry jitter, so that tests are deterministic (default 1).
    pub seed: u64,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            aggregation_enabled: true,
            aggregation_max_count: u64::from(u32::MAX),
            aggregation_max_size: 51_200,
            max_record_size: 1024 * 1024,
            collection_max_count: 500,
            collection_max_size: 5 * 1024 * 1024,
            record_max_buffered_time: 100,
            record_ttl: 30_000,
            rate_limit: 150,
            shard_records_per_second: 1_000,
            shard_bytes_per_second: 1024 * 1024,
            max_connections: 24,
            request_timeout: 6_000,
            max_buffered_records: 200_000,
            max_buffered_bytes: 64 * 1024 * 1024,
            buffer_drain_time: None,
            buffer_min_bytes: 256 * 1024,
            retry_backoff_min: 100,
            retry_backoff_max: 5_000,
            region: String::new(),
            kinesis_endpoint: String::new(),
            seed: 1,
        }
    }
}

/// A setting outside its allowed range.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The option's name, as written in a config file (`AggregationMaxSize`).
    pub option: &'static str,
    /// The value given.
    pub value: u64,
    /// What is allowed, in words (`64 to 10485760`).
    pub allowed: &'static str,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} = {} is out of range (allowed: {})",
            self.option, self.value, self.allowed
        )
    }
}

impl std::error::Error for ConfigError {}

fn check(
    option: &'static str,
    value: u64,
    range: (u64, u64),
    allowed: &'static str,
) -> Result<(), ConfigError> {
    if value < range.0 || value > range.1 {
        return Err(ConfigError {
            option,
            value,
            allowed,
        });
    }
    Ok(())
}

const TEN_MIB: u64 = 10 * 1024 * 1024;

impl Config {
    /// Checks every option against its range (KPL's ranges where KPL has the option).
    pub fn validate(&self) -> Result<(), ConfigError> {
        check(
            "AggregationMaxCount",
            self.aggregation_max_count,
            (1, u64::from(u32::MAX)),
            "1 to 4294967295",
        )?;
        check(
            "AggregationMaxSize",
            self.aggregation_max_size as u64,
            (64, TEN_MIB),
            "64 to 10485760",
        )?;
        check(
            "MaxRecordSize",
            self.max_record_size as u64,
            (64, TEN_MIB),
            "64 to 10485760",
        )?;
        check(
            "CollectionMaxCount",
            self.collection_max_count as u64,
            (1, 500),
            "1 to 500",
        )?;
        check(
            "CollectionMaxSize",
            self.collection_max_size as u64,
            (52_224, 10 * TEN_MIB),
            "52224 to 104857600",
        )?;
        check(
            "RecordMaxBufferedTime",
            self.record_max_buffered_time,
            (0, u64::from(u32::MAX)),
            "0 to 4294967295",
        )?;
        check(
            "RecordTtl",
            self.record_ttl,
            (100, u64::from(u32::MAX)),
            "100 to 4294967295",
        )?;
        check(
            "RateLimit",
            self.rate_limit,
            (1, u64::from(u32::MAX)),
            "1 to 4294967295",
        )?;
        check(
            "ShardRecordsPerSecond",
            self.shard_records_per_second,
            (1, u64::from(u32::MAX)),
            "1 to 4294967295",
        )?;
        check(
            "ShardBytesPerSecond",
            self.shard_bytes_per_second,
            (1, u64::MAX / 2),
            "at least 1",
        )?;
        check(
            "MaxConnections",
            self.max_connections as u64,
            (1, 256),
            "1 to 256",
        )?;
        check(
            "RequestTimeout",
            self.request_timeout,
            (100, 600_000),
            "100 to 600000",
        )?;
        check(
            "MaxBufferedRecords",
            self.max_buffered_records as u64,
            (1, u64::MAX / 2),
            "at least 1",
        )?;
        check(
            "MaxBufferedBytes",
            self.max_buffered_bytes as u64,
            (self.max_record_size as u64, u64::MAX / 2),
            "at least MaxRecordSize",
        )?;
        check(
            "BufferDrainTime",
            self.drain_time().as_millis() as u64,
            (0, self.record_ttl),
            "0 to RecordTtl",
        )?;
        check(
            "BufferMinBytes",
            self.buffer_min_bytes as u64,
            (0, u64::MAX / 2),
            "at least 0",
        )?;
        check(
            "RetryBackoffMin",
            self.retry_backoff_min,
            (1, 600_000),
            "1 to 600000",
        )?;
        check(
            "RetryBackoffMax",
            self.retry_backoff_max,
            (self.retry_backoff_min, 600_000),
            "RetryBackoffMin to 600000",
        )?;
        if self.collection_max_size < self.max_record_size {
            return Err(ConfigError {
                option: "CollectionMaxSize",
                value: self.collection_max_size as u64,
                allowed: "at least MaxRecordSize",
            });
        }
        Ok(())
    }

    /// The codec's aggregation limits.
    pub fn aggregator(&self) -> AggregatorConfig {
        AggregatorConfig {
            max_size: self.aggregation_max_size,
            max_count: self.aggregation_max_count,
            max_record_size: self.max_record_size,
        }
    }

    /// `RecordMaxBufferedTime` as a duration.
    pub fn buffered_time(&self) -> Duration {
        Duration::from_millis(self.record_max_buffered_time)
    }

    /// `RecordTtl` as a duration.
    pub fn ttl(&self) -> Duration {
        Duration::from_millis(self.record_ttl)
    }

    /// `BufferDrainTime`, or its default, a third of `RecordTtl`.
    pub fn drain_time(&self) -> Duration {
        Duration::from_millis(self.buffer_drain_time.unwrap_or(self.record_ttl / 3))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_kpls_and_valid() {
        let c = Config::default();
        c.validate().unwrap();
        assert_eq!(c.aggregator(), AggregatorConfig::default());
        assert_eq!(
            (c.collection_max_count, c.collection_max_size),
            (500, 5 << 20)
        );
        assert_eq!(
            (c.record_max_buffered_time, c.record_ttl, c.rate_limit),
            (100, 30_000, 150)
        );
    }

    #[test]
    fn reads_kpl_names_from_toml_and_json() {
        let t: Config = toml::from_str("AggregationMaxSize = 1000\nRecordTtl = 5000\nKinesisEndpoint = \"http://127.0.0.1:4568\"").unwrap();
        let j: Config = serde_json::from_str(r#"{"AggregationMaxSize":1000,"RecordTtl":5000,"KinesisEndpoint":"http://127.0.0.1:4568"}"#).unwrap();
        assert_eq!(t, j);
        assert_eq!(t.aggregation_max_size, 1000);
        assert_eq!(t.ttl(), Duration::from_secs(5));
        assert_eq!(t.record_max_buffered_time, 100);
    }

    #[test]
    fn unknown_option_is_an_error_naming_it() {
        let e = toml::from_str::<Config>("AggregationMaxSise = 1000").unwrap_err();
        assert!(e.to_string().contains("AggregationMaxSise"), "{e}");
    }

    #[test]
    fn out_of_range_names_the_option() {
        let c = Config {
            aggregation_max_size: 10,
            ..Config::default()
        };
        let e = c.validate().unwrap_err();
        assert_eq!(e.option, "AggregationMaxSize");
        assert_eq!(
            e.to_string(),
            "AggregationMaxSize = 10 is out of range (allowed: 64 to 10485760)"
        );
        let c = Config {
            collection_max_count: 501,
            ..Config::default()
        };
        assert_eq!(c.validate().unwrap_err().option, "CollectionMaxCount");
    }
}
