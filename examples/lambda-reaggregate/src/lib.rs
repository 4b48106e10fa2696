//! The pipeline this project started from: an AWS Lambda function fed by one Kinesis stream
//! deaggregates each batch like KCL, transforms every user record, and re-aggregates the
//! results into a second stream with the [`Sink`], answering Lambda with the Kinesis
//! records whose user records could not be stored (partial batch failures).
//!
//! [`handle`] is a plain async function: wire it into `lambda_runtime` (see README.md) or
//! run it once on an event file with this crate's binary.
//!
//! Delivery is at-least-once end to end. Lambda retries from the lowest failed sequence
//! number, so the user records of a failed Kinesis record, and of every later one in the
//! batch, are transformed and put again, including those that were stored the first time;
//! and [`user_records`] applies no hash-range filter,
//! so after a reshard of the source stream a user record the producer re-sent arrives twice
//! (see [`kpl_kinesis::lambda`]). Consumers of the destination stream must be idempotent:
//! the [`envelope`] transform carries the source sequence numbers for exactly that.

use base64::Engine as _;
use kpl_kinesis::lambda::{
    batch_item_failures, user_records, KinesisEvent, KinesisEventResponse, LambdaUserRecord,
};
use kpl_kinesis::sink::{Outcome, Sink, UserRecord};

/// Deaggregates `event` ([`user_records`]), puts `transform(record)` for every user record
/// into `sink` (the destination stream), flushes, waits for every outcome, and returns the
/// `batchItemFailures` naming the source Kinesis record (its sequence number) of every
/// user record whose put failed, whether the sink refused it at once (an invalid record)
/// or reported a failed outcome. An empty list: everything was stored.
///
/// The sink is meant to live across invocations (build it once, outside the handler); this
/// function only flushes it.
pub async fn handle<F>(event: KinesisEvent, sink: &Sink, transform: F) -> KinesisEventResponse
where
    F: Fn(&LambdaUserRecord<'_>) -> UserRecord,
{
    let records = user_records(&event);
    let mut pending = Vec::with_capacity(records.len());
    let mut failed = Vec::new();
    for record in &records {
        match sink.put(transform(record)).await {
            Ok(outcome) => pending.push((record, outcome)),
            Err(e) => {
                eprintln!("{}: put refused: {e}", describe(record));
                failed.push(record);
            }
        }
    }
    sink.flush().await;
    for (record, outcome) in pending {
        if let Outcome::Failure(failure) = outcome.await {
            eprintln!("{}: {failure}", describe(record));
            failed.push(record);
        }
    }
    batch_item_failures(failed)
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
}
