//! The pipeline this project started from, as an AWS Lambda function: fed by one Kinesis
//! stream, it deaggregates each batch like KCL, transforms every user record, re-aggregates
//! the results into a second stream with the [`Sink`], and answers Lambda with the Kinesis
//! records whose user records could not be stored (partial batch failures,
//! `ReportBatchItemFailures`).
//!
//! The binary (`src/main.rs`) runs on the official `lambda_runtime`: it reads its settings
//! from the environment ([`FunctionConfig::from_env`]), builds the sink once per execution
//! environment, and hands every invocation to [`handle_until`] with the invocation's
//! deadline. [`handle`] and [`handle_until`] are plain async functions, testable without
//! the runtime; the binary can also handle one event file without Lambda.
//!
//! Delivery is at-least-once end to end. Lambda retries from the lowest failed sequence
//! number, so the user records of a failed Kinesis record, and of every later one in the
//! batch, are transformed and put again, including those that were stored the first time;
//! and [`user_records`] applies no hash-range filter,
//! so after a reshard of the source stream a user record the producer re-sent arrives twice
//! (see [`kpl_kinesis::lambda`]). Consumers of the destination stream must be idempotent:
//! the [`envelope`] transform carries the source sequence numbers for exactly that.
#![deny(missing_docs)]

use std::fmt;
use std::time::Duration;

use base64::Engine as _;
use kpl_kinesis::lambda::{
    batch_item_failures, user_records, KinesisEvent, KinesisEventResponse, LambdaUserRecord,
};
use kpl_kinesis::sink::{Config, Outcome, Sink, SinkError, UserRecord};
use tokio::time::Instant;

/// Deaggregates `event` ([`user_records`]), puts `transform(record)` for every user record
/// into `sink` (the destination stream), flushes, waits for every outcome, and returns the
/// `batchItemFailures` naming the source Kinesis record (its sequence number) of every
/// user record whose put failed, whether the sink refused it at once (an invalid record,
/// too large for the stream, say) or reported a failed outcome. An empty list: everything
/// was stored.
///
/// The sink is meant to live across invocations (build it once, outside the handler); this
/// function only flushes it. [`handle_until`] is the same with a deadline.
pub async fn handle<F>(event: KinesisEvent, sink: &Sink, transform: F) -> KinesisEventResponse
where
    F: Fn(&LambdaUserRecord<'_>) -> UserRecord,
{
    run(&event, sink, transform, None).await
}

/// [`handle`], but answers by `deadline` at the latest: a user record that is not put by
/// then (the sink was full) or whose outcome is not known by then (still buffered, being
/// retried, or in flight) counts as failed, so that Lambda gets a partial batch failure
/// instead of a timed-out invocation, which would make it retry the whole batch. Records
/// still in the sink at that point stay there and may yet be stored (the environment is
/// frozen and thawed with them): the retry Lambda makes then delivers them a second time,
/// which at-least-once allows.
///
/// The Lambda binary passes the invocation's deadline less `ANSWER_MARGIN_MS`.
pub async fn handle_until<F>(
    event: KinesisEvent,
    sink: &Sink,
    transform: F,
    deadline: Instant,
) -> KinesisEventResponse
where
    F: Fn(&LambdaUserRecord<'_>) -> UserRecord,
{
    run(&event, sink, transform, Some(deadline)).await
}

/// How many failed user records are logged one by one per invocation (then only counted).
const LOGGED_FAILURES: usize = 10;

async fn run<F>(
    event: &KinesisEvent,
    sink: &Sink,
    transform: F,
    deadline: Option<Instant>,
) -> KinesisEventResponse
where
    F: Fn(&LambdaUserRecord<'_>) -> UserRecord,
{
    let records = user_records(event);
    let mut pending = Vec::with_capacity(records.len());
    let mut failed = Vec::new();
    let mut log = FailureLog::default();
    for record in &records {
        let put = sink.put(transform(record));
        let put = match deadline {
            // `put` waits while the sink is full; past the deadline nothing more is put.
            Some(deadline) if Instant::now() >= deadline => None,
            Some(deadline) => tokio::time::timeout_at(deadline, put).await.ok(),
            None => Some(put.await),
        };
        match put {
            Some(Ok(outcome)) => pending.push((record, outcome)),
            Some(Err(e)) => {
                log.failed(record, format_args!("put refused: {e}"));
                failed.push(record);
            }
            None => {
                log.failed(
                    record,
                    format_args!("not put: the invocation's deadline came"),
                );
                failed.push(record);
            }
        }
    }
    // Everything buffered is sent now; wait for this invocation's own outcomes (not for
    // records an earlier invocation left behind at its deadline, which `flush` would also
    // wait for).
    let mut outcomes: Vec<Option<Outcome>> = pending.iter().map(|_| None).collect();
    {
        let own = async {
            for ((_, pending), slot) in pending.iter_mut().zip(outcomes.iter_mut()) {
                *slot = Some(pending.await);
            }
        };
        let flush = async {
            sink.flush().await;
            std::future::pending::<()>().await
        };
        let settled = async {
            tokio::select! {
                () = own => {}
                () = flush => {}
            }
        };
        match deadline {
            Some(deadline) => {
                let _ = tokio::time::timeout_at(deadline, settled).await;
            }
            None => settled.await,
        }
    }
    for ((record, mut pending), outcome) in pending.into_iter().zip(outcomes) {
        match outcome.or_else(|| pending.try_outcome()) {
            Some(Outcome::Success(_)) => {}
            Some(Outcome::Failure(failure)) => {
                log.failed(record, format_args!("{failure}"));
                failed.push(record);
            }
            None => {
                log.failed(
                    record,
                    format_args!("no outcome by the invocation's deadline (may still be stored)"),
                );
                failed.push(record);
            }
        }
    }
    log.finish(records.len());
    batch_item_failures(failed)
}

/// The first few failures one line each on standard error (CloudWatch Logs in Lambda),
/// then a count.
#[derive(Default)]
struct FailureLog {
    count: usize,
}

impl FailureLog {
    fn failed(&mut self, record: &LambdaUserRecord<'_>, why: fmt::Arguments<'_>) {
        self.count += 1;
        if self.count <= LOGGED_FAILURES {
            eprintln!("{}: {why}", describe(record));
        }
    }

    fn finish(&self, total: usize) {
        if self.count > LOGGED_FAILURES {
            eprintln!(
                "{} of {total} user records failed ({} more not shown)",
                self.count,
                self.count - LOGGED_FAILURES
            );
        }
    }
}

fn describe(record: &LambdaUserRecord<'_>) -> String {
    format!(
        "user record {}/{} of {}",
        record.sequence_number,
        record.sub_sequence_number,
        record.shard_id().unwrap_or("an unknown shard")
    )
}

/// The example transform: wraps the user record in a JSON envelope that says where it came
/// from, and keeps its partition key and explicit hash key (so records with one key stay
/// in order on one destination shard):
///
/// ```json
/// {"shardId":"shardId-000000000000","sequenceNumber":"4959…","subSequenceNumber":0,
///  "aggregated":true,"partitionKey":"user-1","data":"aGVsbG8="}
/// ```
///
/// `data` is the user's bytes in standard base64; `shardId` is `null` when the event has
/// no `eventID`. (`sequenceNumber`, `subSequenceNumber`) identify the source user record:
/// the key for a consumer that must drop the duplicates of at-least-once delivery.
pub fn envelope(record: &LambdaUserRecord<'_>) -> UserRecord {
    let partition_key = record.partition_key_text().into_owned();
    let body = serde_json::json!({
        "shardId": record.shard_id(),
        "sequenceNumber": record.sequence_number,
        "subSequenceNumber": record.sub_sequence_number,
        "aggregated": record.aggregated,
        "partitionKey": partition_key,
        "data": base64::engine::general_purpose::STANDARD.encode(record.data),
    });
    let out = UserRecord::new(partition_key, body.to_string().into_bytes());
    match record.explicit_hash_key_text() {
        Some(key) => out.with_explicit_hash_key(key.into_owned()),
        None => out,
    }
}

/// The pass-through transform: the user record as it was (partition key, explicit hash
/// key and data), so the destination holds the source's user records, re-aggregated for
/// the destination's shards.
pub fn identity(record: &LambdaUserRecord<'_>) -> UserRecord {
    let out = UserRecord::new(
        record.partition_key_text().into_owned(),
        record.data.to_vec(),
    );
    match record.explicit_hash_key_text() {
        Some(key) => out.with_explicit_hash_key(key.into_owned()),
        None => out,
    }
}

/// The transforms the function can be told to apply (`TRANSFORM`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transform {
    /// [`envelope`] (`TRANSFORM=envelope`, the default).
    Envelope,
    /// [`identity`] (`TRANSFORM=identity`).
    Identity,
}

impl Transform {
    /// The transform named `name` (`envelope` or `identity`).
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "envelope" => Some(Transform::Envelope),
            "identity" => Some(Transform::Identity),
            _ => None,
        }
    }

    /// Applies the transform to one user record.
    pub fn apply(self, record: &LambdaUserRecord<'_>) -> UserRecord {
        match self {
            Transform::Envelope => envelope(record),
            Transform::Identity => identity(record),
        }
    }
}

/// The destination stream, by name or by ARN.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Destination {
    /// A stream name, in the function's own account and region (`AWS_REGION`).
    Name(String),
    /// A stream ARN (`arn:aws:kinesis:REGION:ACCOUNT:stream/NAME`).
    Arn(String),
}

/// The function's settings, read from its environment variables:
///
/// | variable | meaning |
/// | --- | --- |
/// | `DEST_STREAM` | the destination stream's name or ARN (required) |
/// | `TRANSFORM` | `envelope` (default) or `identity` ([`Transform`]) |
/// | `KPL_CONFIG` | the sink's settings as a JSON object with KPL's names, e.g. `{"RecordTtl": 20000, "AggregationMaxSize": 51200}` ([`Config`]; default: KPL's defaults) |
/// | `KINESIS_ENDPOINT` | a Kinesis endpoint URL instead of AWS's (a local Kinesis); overrides `KinesisEndpoint` |
/// | `ANSWER_MARGIN_MS` | how long before the invocation's deadline the function stops waiting and answers (default 500) |
///
/// Credentials and region come from the standard AWS chain (in Lambda: the execution
/// role and `AWS_REGION`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FunctionConfig {
    /// `DEST_STREAM`.
    pub destination: Destination,
    /// `TRANSFORM`.
    pub transform: Transform,
    /// `KPL_CONFIG`, with `KINESIS_ENDPOINT` applied.
    pub sink: Config,
    /// `ANSWER_MARGIN_MS`.
    pub answer_margin: Duration,
}

/// The default `ANSWER_MARGIN_MS`.
pub const DEFAULT_ANSWER_MARGIN: Duration = Duration::from_millis(500);

/// A variable that is missing or does not parse; the message names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvError(pub String);

impl fmt::Display for EnvError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for EnvError {}

impl FunctionConfig {
    /// Reads the settings from the process environment (see the [type docs](Self)).
    pub fn from_env() -> Result<Self, EnvError> {
        Self::from_vars(|name| std::env::var(name).ok())
    }

    /// Reads the settings through `var`, which returns a variable's value (`None` when
    /// unset; an empty value counts as unset).
    pub fn from_vars(var: impl Fn(&str) -> Option<String>) -> Result<Self, EnvError> {
        let var = |name: &str| var(name).filter(|v| !v.trim().is_empty());
        let destination = match var("DEST_STREAM") {
            None => {
                return Err(EnvError(
                    "DEST_STREAM is not set: give the destination stream's name or ARN".into(),
                ))
            }
            Some(s) if s.starts_with("arn:") => Destination::Arn(s),
            Some(s) => Destination::Name(s),
        };
        let transform = match var("TRANSFORM") {
            None => Transform::Envelope,
            Some(name) => Transform::from_name(name.trim()).ok_or_else(|| {
                EnvError(format!(
                    "TRANSFORM={name:?} is not a transform: use envelope or identity"
                ))
            })?,
        };
        let mut sink = match var("KPL_CONFIG") {
            None => Config::default(),
            Some(json) => serde_json::from_str::<Config>(&json)
                .map_err(|e| EnvError(format!("KPL_CONFIG: {e}")))?,
        };
        if let Some(endpoint) = var("KINESIS_ENDPOINT") {
            sink.kinesis_endpoint = endpoint;
        }
        sink.validate()
            .map_err(|e| EnvError(format!("KPL_CONFIG: {e}")))?;
        let answer_margin = match var("ANSWER_MARGIN_MS") {
            None => DEFAULT_ANSWER_MARGIN,
            Some(ms) => Duration::from_millis(ms.trim().parse().map_err(|_| {
                EnvError(format!(
                    "ANSWER_MARGIN_MS={ms:?} is not a number of milliseconds"
                ))
            })?),
        };
        Ok(FunctionConfig {
            destination,
            transform,
            sink,
            answer_margin,
        })
    }

    /// Builds the sink for the destination stream (credentials and region from the
    /// standard AWS chain) and waits up to `shard_map_wait` for its shard map, so that
    /// records are aggregated per destination shard from the first invocation on; a sink
    /// still without one then works all the same (records wait, or go out unaggregated).
    pub async fn build_sink(&self, shard_map_wait: Duration) -> Result<Sink, SinkError> {
        let builder = Sink::builder().config(self.sink.clone());
        let builder = match &self.destination {
            Destination::Name(name) => builder.stream_name(name),
            Destination::Arn(arn) => builder.stream_arn(arn),
        };
        let sink = builder.build().await?;
        if !sink.wait_for_shard_map(shard_map_wait).await {
            eprintln!(
                "no shard map for the destination after {shard_map_wait:?}: going on without"
            );
        }
        Ok(sink)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelope_names_the_source_and_keeps_the_keys() {
        let event: KinesisEvent = serde_json::from_value(serde_json::json!({"Records": [{
            "kinesis": {
                "kinesisSchemaVersion": "1.0",
                "partitionKey": "user-1",
                "sequenceNumber": "4959",
                "data": "aGVsbG8=",
                "approximateArrivalTimestamp": 1545084650.987
            },
            "eventSource": "aws:kinesis",
            "eventID": "shardId-000000000002:4959",
            "eventSourceARN": "arn:aws:kinesis:us-east-1:123456789012:stream/source",
            "awsRegion": "us-east-1"
        }]}))
        .unwrap();
        let records = user_records(&event);
        let out = envelope(&records[0]);
        assert_eq!(out.partition_key, "user-1");
        assert_eq!(out.explicit_hash_key, None);
        let body: serde_json::Value = serde_json::from_slice(&out.data).unwrap();
        assert_eq!(
            body,
            serde_json::json!({
                "shardId": "shardId-000000000002",
                "sequenceNumber": "4959",
                "subSequenceNumber": 0,
                "aggregated": false,
                "partitionKey": "user-1",
                "data": "aGVsbG8="
            })
        );
    }

    fn vars(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: std::collections::HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |name| map.get(name).cloned()
    }

    #[test]
    fn settings_from_the_environment() {
        let config = FunctionConfig::from_vars(vars(&[("DEST_STREAM", "out")])).unwrap();
        assert_eq!(config.destination, Destination::Name("out".into()));
        assert_eq!(config.transform, Transform::Envelope);
        assert_eq!(config.sink, Config::default());
        assert_eq!(config.answer_margin, DEFAULT_ANSWER_MARGIN);

        let arn = "arn:aws:kinesis:eu-west-1:123456789012:stream/out";
        let config = FunctionConfig::from_vars(vars(&[
            ("DEST_STREAM", arn),
            ("TRANSFORM", "identity"),
            (
                "KPL_CONFIG",
                r#"{"RecordTtl": 20000, "AggregationMaxSize": 4096}"#,
            ),
            ("KINESIS_ENDPOINT", "http://127.0.0.1:4568"),
            ("ANSWER_MARGIN_MS", "1500"),
        ]))
        .unwrap();
        assert_eq!(config.destination, Destination::Arn(arn.into()));
        assert_eq!(config.transform, Transform::Identity);
        assert_eq!(config.sink.record_ttl, 20_000);
        assert_eq!(config.sink.aggregation_max_size, 4096);
        assert_eq!(config.sink.kinesis_endpoint, "http://127.0.0.1:4568");
        assert_eq!(config.answer_margin, Duration::from_millis(1500));
    }

    #[test]
    fn bad_settings_name_their_variable() {
        let err = |pairs: &[(&str, &str)]| FunctionConfig::from_vars(vars(pairs)).unwrap_err().0;
        assert!(err(&[]).starts_with("DEST_STREAM"));
        assert!(err(&[("DEST_STREAM", " ")]).starts_with("DEST_STREAM"));
        assert!(err(&[("DEST_STREAM", "out"), ("TRANSFORM", "upper")]).starts_with("TRANSFORM"));
        let unknown = err(&[("DEST_STREAM", "out"), ("KPL_CONFIG", r#"{"Nope": 1}"#)]);
        assert!(
            unknown.starts_with("KPL_CONFIG") && unknown.contains("Nope"),
            "{unknown}"
        );
        let range = err(&[
            ("DEST_STREAM", "out"),
            ("KPL_CONFIG", r#"{"AggregationMaxSize": 1}"#),
        ]);
        assert!(
            range.starts_with("KPL_CONFIG") && range.contains("AggregationMaxSize"),
            "{range}"
        );
        assert!(err(&[("DEST_STREAM", "out"), ("ANSWER_MARGIN_MS", "soon")])
            .starts_with("ANSWER_MARGIN_MS"));
    }

    #[test]
    fn identity_keeps_the_user_record() {
        let mut agg = kpl_codec::Aggregator::new(kpl_codec::AggregatorConfig::default()).unwrap();
        assert!(agg
            .add(kpl_codec::InputRecord::new("k1", b"one").with_explicit_hash_key("77"))
            .unwrap()
            .is_none());
        assert!(agg
            .add(kpl_codec::InputRecord::new("k2", b"two"))
            .unwrap()
            .is_none());
        let kinesis = agg.flush().unwrap();
        let mut record = kpl_kinesis::lambda::KinesisEventRecord::default();
        record.kinesis.sequence_number = "1".into();
        record.kinesis.partition_key = kinesis.partition_key.clone();
        *record.kinesis.data = kinesis.data.clone();
        let mut event = KinesisEvent::default();
        event.records.push(record);
        let out: Vec<_> = user_records(&event)
            .iter()
            .map(|r| Transform::Identity.apply(r))
            .collect();
        assert_eq!(
            out,
            vec![
                UserRecord::new("k1", b"one".to_vec()).with_explicit_hash_key("77"),
                UserRecord::new("k2", b"two".to_vec()),
            ]
        );
    }
}
