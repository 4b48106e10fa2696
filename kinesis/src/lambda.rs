//! Helpers for AWS Lambda functions fed by a Kinesis event source mapping (feature
//! `lambda`): the user records of a [`KinesisEvent`], deaggregated the way KCL does, and the
//! partial-batch-failure answer ([`KinesisEventResponse`]) naming the Kinesis records whose
//! user records failed.
//!
//! Lambda does not deaggregate: each `Records[i].kinesis.data` is one Kinesis record's data,
//! possibly a KPL aggregate. [`user_records`] turns it into user records with
//! [`kpl_codec::deaggregate_batch()`] under the KCL policy ([`Options::kcl`]), the MD5s of
//! all the event's aggregates computed side by side in SIMD lanes: MD5 checked, anything
//! that is not a valid aggregate (no magic, bad MD5, unparseable protobuf) passed through as
//! one record with `aggregated == false`, exactly as a KCL application would see it.
//!
//! # No hash-range filter
//! KCL drops a whole aggregate when any of its user records lies outside the hash range of
//! the shard it was read from (format.md, section 4). A Lambda event says which shard it
//! comes from (`eventID` is `shardId-…:sequence`) but not that shard's hash range, so
//! [`user_records`] applies **no** shard range: only KCL's full-range check remains (an
//! explicit hash key that is negative or above 2^128 - 1 still drops its aggregate).
//! What that means: after a reshard, an aggregate that was built for the parent shard but
//! landed on a child shard that does not hold all its user records — one KCL would drop
//! entirely — is delivered here in full. A producer that re-sends such aggregates (the
//! [`sink`](crate::sink) does, as KCL needs it) therefore makes a Lambda consumer see those
//! user records twice: delivery to Lambda is at-least-once, and handlers must be idempotent
//! anyway (see below).
//!
//! # Partial batch failures
//! With `FunctionResponseTypes: ["ReportBatchItemFailures"]` on the event source mapping,
//! a handler may answer `{"batchItemFailures":[{"itemIdentifier":"<sequence number>"}]}`.
//! The identifier is a **Kinesis record's** sequence number: Lambda knows nothing of user
//! records. Lambda checkpoints just before the lowest sequence number listed and retries
//! the batch from there, so every user record of that Kinesis record, and of every later
//! Kinesis record in the batch (including those that succeeded), is delivered again:
//! consumers must be idempotent. An empty list means the whole batch succeeded; an
//! identifier that is empty or not in the batch makes Lambda retry the whole batch. Without
//! `ReportBatchItemFailures` the answer is ignored and only a function error causes a
//! retry, of the whole batch. [`batch_item_failures`] builds the answer from the user
//! records that failed.
//!
//! ```
//! use kpl_kinesis::lambda::{batch_item_failures, user_records, KinesisEvent};
//!
//! fn handler(event: &KinesisEvent) -> kpl_kinesis::lambda::KinesisEventResponse {
//!     let records = user_records(event);
//!     let failed: Vec<_> = records.iter().filter(|r| r.data.is_empty()).collect();
//!     batch_item_failures(failed)
//! }
//! let event: KinesisEvent = serde_json::from_str(r#"{"Records":[]}"#).unwrap();
//! assert!(handler(&event).batch_item_failures.is_empty());
//! ```

use std::borrow::Cow;
use std::collections::BTreeSet;

use kpl_codec::{deaggregate_batch, Options};

/// The `aws_lambda_events` crate these helpers are built on (features `kinesis` and
/// `streams`), for its other types.
pub use aws_lambda_events;
pub use aws_lambda_events::event::kinesis::{KinesisEvent, KinesisEventRecord};
pub use aws_lambda_events::event::streams::{KinesisBatchItemFailure, KinesisEventResponse};

/// One user record of a Lambda [`KinesisEvent`], borrowing from the event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LambdaUserRecord<'a> {
    /// The Kinesis record it came from, with everything Lambda says about it
    /// (`eventID`, `eventSourceARN`, `awsRegion`, arrival time, ...).
    pub record: &'a KinesisEventRecord,
    /// The Kinesis record's position in `Records`.
    pub record_index: usize,
    /// The Kinesis record's sequence number, shared by all user records of an aggregate;
    /// the identifier for [`batch_item_failures`].
    pub sequence_number: &'a str,
    /// Position among the user records of its Kinesis record: 0, 1, 2... (0 for a record
    /// that is not aggregated). With `sequence_number`, KCL's checkpoint.
    pub sub_sequence_number: u64,
    /// The partition key's bytes: the user record's own inside an aggregate, the Kinesis
    /// record's otherwise (see [`LambdaUserRecord::partition_key_text`]).
    pub partition_key: &'a [u8],
    /// The explicit hash key's text as stored in the aggregate, when the user record has
    /// one. Always `None` for a record that is not aggregated: Lambda does not report a
    /// Kinesis record's explicit hash key.
    pub explicit_hash_key: Option<&'a [u8]>,
    /// The user's data.
    pub data: &'a [u8],
    /// Whether it came out of an aggregate (`false` for a record passed through as is).
    pub aggregated: bool,
}

impl<'a> LambdaUserRecord<'a> {
    /// The partition key as KCL hands it to the application: Java's lossy UTF-8 decoding,
    /// borrowed when the bytes are valid UTF-8.
    pub fn partition_key_text(&self) -> Cow<'a, str> {
        kpl_codec::kcl_text(self.partition_key)
    }

    /// The explicit hash key as text (lossily decoded, like the partition key), if any.
    pub fn explicit_hash_key_text(&self) -> Option<Cow<'a, str>> {
        self.explicit_hash_key.map(kpl_codec::kcl_text)
    }

    /// The effective hash key: the explicit hash key's value, or the MD5 of the partition
    /// key, as KCL computes it.
    pub fn hash_key(&self) -> u128 {
        kpl_codec::UserRecord {
            partition_key: self.partition_key,
            explicit_hash_key: self.explicit_hash_key,
            data: self.data,
            sub_sequence_number: self.sub_sequence_number,
            aggregated: self.aggregated,
        }
        .hash_key()
    }

    /// Lambda's `eventID` of the Kinesis record, `shardId-000000000000:<sequence number>`.
    pub fn event_id(&self) -> Option<&'a str> {
        self.record.event_id.as_deref()
    }

    /// The shard the Kinesis record was read from, taken from `eventID` (the part before
    /// the `:`), when it has that shape.
    pub fn shard_id(&self) -> Option<&'a str> {
        let (shard, _) = self.event_id()?.split_once(':')?;
        shard.starts_with("shardId-").then_some(shard)
    }

    /// The stream's ARN (`eventSourceARN`).
    pub fn event_source_arn(&self) -> Option<&'a str> {
        self.record.event_source_arn.as_deref()
    }
}

/// Every user record of the event, in order: the Kinesis records in `Records` order, and
/// the user records of each aggregate in sub-sequence order.
///
/// KCL policy with MD5 check and **no** hash-range filter (see the [module docs](self)):
/// a record that is not a valid aggregate is one user record with `aggregated == false`
/// and the Kinesis record's partition key; a valid aggregate with zero user records (or
/// one KCL drops, e.g. for an explicit hash key above 2^128 - 1) contributes none.
pub fn user_records(event: &KinesisEvent) -> Vec<LambdaUserRecord<'_>> {
    let inputs: Vec<(&[u8], &[u8])> = event
        .records
        .iter()
        .map(|record| {
            (
                &record.kinesis.data[..],
                record.kinesis.partition_key.as_bytes(),
            )
        })
        .collect();
    let decoded = deaggregate_batch(&inputs, &Options::kcl());
    let mut out = Vec::with_capacity(event.records.len());
    for (record_index, (record, decoded)) in event.records.iter().zip(decoded).enumerate() {
        let kinesis = &record.kinesis;
        // The KCL policy never fails; `flatten` keeps that without an unwrap.
        for user in decoded.into_iter().flatten() {
            out.push(LambdaUserRecord {
                record,
                record_index,
                sequence_number: &kinesis.sequence_number,
                sub_sequence_number: user.sub_sequence_number,
                partition_key: user.partition_key,
                explicit_hash_key: user.explicit_hash_key,
                data: user.data,
                aggregated: user.aggregated,
            });
        }
    }
    out
}

/// The partial-batch-failure answer for the user records that failed: one
/// `batchItemFailures` entry per Kinesis record with at least one failed user record, its
/// `itemIdentifier` the Kinesis record's sequence number, deduplicated, in ascending
/// sequence-number order (Lambda retries from the lowest; see the [module docs](self)).
/// No failed records gives `{"batchItemFailures":[]}`: the batch succeeded.
///
/// ```
/// use kpl_kinesis::lambda::batch_item_failures;
/// let none: Vec<kpl_kinesis::lambda::LambdaUserRecord<'_>> = Vec::new();
/// let answer = batch_item_failures(&none);
/// assert_eq!(serde_json::to_string(&answer).unwrap(), r#"{"batchItemFailures":[]}"#);
/// ```
pub fn batch_item_failures<'r, 'a: 'r>(
    failed: impl IntoIterator<Item = &'r LambdaUserRecord<'a>>,
) -> KinesisEventResponse {
    failed_sequence_numbers(failed.into_iter().map(|r| r.sequence_number))
}

/// [`batch_item_failures`] from the failed Kinesis records' sequence numbers directly
/// (deduplicated, in ascending numeric order).
pub fn failed_sequence_numbers<'s>(
    sequence_numbers: impl IntoIterator<Item = &'s str>,
) -> KinesisEventResponse {
    // Sequence numbers are decimal without leading zeros: a longer one is larger.
    let sorted: BTreeSet<(usize, &str)> =
        sequence_numbers.into_iter().map(|s| (s.len(), s)).collect();
    let mut response = KinesisEventResponse::default();
    response.set_failures(sorted.into_iter().map(|(_, s)| s));
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use kpl_codec::{Aggregator, AggregatorConfig, InputRecord};

    const ARN: &str = "arn:aws:kinesis:us-east-1:123456789012:stream/source";

    fn event_record(seq: &str, partition_key: &str, data: &[u8]) -> KinesisEventRecord {
        let mut r = KinesisEventRecord::default();
        r.kinesis.sequence_number = seq.to_owned();
        r.kinesis.partition_key = partition_key.to_owned();
        r.kinesis.kinesis_schema_version = Some("1.0".to_owned());
        *r.kinesis.data = data.to_vec();
        r.event_source = Some("aws:kinesis".to_owned());
        r.event_id = Some(format!("shardId-000000000003:{seq}"));
        r.event_source_arn = Some(ARN.to_owned());
        r.aws_region = Some("us-east-1".to_owned());
        r
    }

    fn event(records: Vec<KinesisEventRecord>) -> KinesisEvent {
        let mut e = KinesisEvent::default();
        e.records = records;
        e
    }

    fn aggregate(records: &[InputRecord<'_>]) -> kpl_codec::KinesisRecord {
        let mut aggregator = Aggregator::new(AggregatorConfig::default()).unwrap();
        for r in records {
            assert!(aggregator.add(*r).unwrap().is_none());
        }
        let out = aggregator.flush().unwrap();
        assert!(out.is_aggregated());
        out
    }

    const SEQ1: &str = "49590338271490256608559692538361571095921575989136588802";
    const SEQ2: &str = "49590338271490256608559692538361571095921575989136588803";
    const SEQ3: &str = "49590338271490256608559692540925702759324208523137515522";

    #[test]
    fn aggregated_and_raw_records_in_event_order() {
        let agg = aggregate(&[
            InputRecord::new("user-1", b"hello"),
            InputRecord::new("user-2", b"world").with_explicit_hash_key("12345"),
            InputRecord::new("user-1", b"again"),
        ]);
        let e = event(vec![
            event_record(SEQ1, &agg.partition_key, &agg.data),
            event_record(SEQ2, "plain-key", b"just bytes"),
        ]);
        let got = user_records(&e);
        let seen: Vec<_> = got
            .iter()
            .map(|r| {
                (
                    r.record_index,
                    r.sequence_number,
                    r.sub_sequence_number,
                    r.partition_key,
                    r.explicit_hash_key,
                    r.data,
                    r.aggregated,
                )
            })
            .collect();
        assert_eq!(
            seen,
            vec![
                (0, SEQ1, 0, &b"user-1"[..], None, &b"hello"[..], true),
                (0, SEQ1, 1, b"user-2", Some(&b"12345"[..]), b"world", true),
                (0, SEQ1, 2, b"user-1", None, b"again", true),
                (1, SEQ2, 0, b"plain-key", None, b"just bytes", false),
            ]
        );
        assert_eq!(got[1].hash_key(), 12345);
        assert_eq!(got[0].hash_key(), kpl_codec::hash_key(b"user-1"));
        assert_eq!(got[1].explicit_hash_key_text().as_deref(), Some("12345"));
        assert_eq!(got[3].partition_key_text(), "plain-key");
        for r in &got {
            assert_eq!(r.shard_id(), Some("shardId-000000000003"));
            assert_eq!(r.event_source_arn(), Some(ARN));
            assert!(std::ptr::eq(r.record, &e.records[r.record_index]));
        }
        assert_eq!(
            got[3].event_id(),
            Some(format!("shardId-000000000003:{SEQ2}").as_str())
        );
    }

    #[test]
    fn bad_md5_passes_through_as_one_raw_record() {
        let agg = aggregate(&[InputRecord::new("a", b"1"), InputRecord::new("b", b"2")]);
        let mut data = agg.data.clone();
        let last = data.len() - 1;
        data[last] ^= 0xFF;
        let e = event(vec![event_record(SEQ1, "outer-key", &data)]);
        let got = user_records(&e);
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].data, &data[..]);
        assert_eq!(got[0].partition_key, b"outer-key");
        assert!(!got[0].aggregated);
        assert_eq!(
            (got[0].sequence_number, got[0].sub_sequence_number),
            (SEQ1, 0)
        );
    }

    #[test]
    fn no_hash_range_filter_but_kcl_full_range_check() {
        // A hash key far outside any one shard's range is kept: no shard range applies.
        let max = u128::MAX.to_string();
        let agg = aggregate(&[
            InputRecord::new("k", b"low").with_explicit_hash_key("0"),
            InputRecord::new("k", b"high").with_explicit_hash_key(&max),
        ]);
        let e = event(vec![event_record(SEQ1, "a", &agg.data)]);
        assert_eq!(user_records(&e).len(), 2);
        // Above 2^128 - 1, KCL drops the aggregate even without a shard range.
        let framed = |ehk: &str| {
            let mut user = vec![0x08, 0x00, 0x10, 0x00, 0x1A, 0x01, b'x'];
            let mut protobuf = vec![0x0A, 0x01, b'k', 0x12, ehk.len() as u8];
            protobuf.extend_from_slice(ehk.as_bytes());
            protobuf.extend_from_slice(&[0x1A, user.len() as u8]);
            protobuf.append(&mut user);
            let mut data = vec![0xF3, 0x89, 0x9A, 0xC2];
            data.extend_from_slice(&protobuf);
            data.extend_from_slice(&kpl_codec::md5(&protobuf));
            data
        };
        let e = event(vec![
            event_record(SEQ1, "a", &framed(&max)),
            event_record(
                SEQ2,
                "a",
                &framed("340282366920938463463374607431768211456"),
            ),
        ]);
        let got = user_records(&e);
        assert_eq!(got.len(), 1);
        assert_eq!((got[0].sequence_number, got[0].data), (SEQ1, &b"x"[..]));
        assert!(got[0].aggregated);
    }

    #[test]
    fn event_json_in_lambdas_shape() {
        let agg = aggregate(&[InputRecord::new("x", b"1"), InputRecord::new("y", b"22")]);
        let json = format!(
            r#"{{"Records":[{{"kinesis":{{"kinesisSchemaVersion":"1.0","partitionKey":"a",
            "sequenceNumber":"{SEQ1}","data":"{}","approximateArrivalTimestamp":1545084650.987}},
            "eventSource":"aws:kinesis","eventVersion":"1.0","eventID":"shardId-000000000006:{SEQ1}",
            "eventName":"aws:kinesis:record","invokeIdentityArn":"arn:aws:iam::123456789012:role/lambda-role",
            "awsRegion":"us-east-2","eventSourceARN":"{ARN}"}}]}}"#,
            base64(&agg.data)
        );
        let e: KinesisEvent = serde_json::from_str(&json).unwrap();
        let got = user_records(&e);
        assert_eq!(got.len(), 2);
        assert_eq!((got[1].partition_key, got[1].data), (&b"y"[..], &b"22"[..]));
        assert_eq!(got[1].shard_id(), Some("shardId-000000000006"));
    }

    /// Standard base64, as the event's own type writes it.
    fn base64(bytes: &[u8]) -> String {
        let mut r = KinesisEventRecord::default();
        *r.kinesis.data = bytes.to_vec();
        let json = serde_json::to_value(&r.kinesis.data).unwrap();
        json.as_str().unwrap().to_owned()
    }

    #[test]
    fn failures_deduplicated_by_outer_record_in_aws_shape() {
        let agg = aggregate(&[
            InputRecord::new("a", b"1"),
            InputRecord::new("b", b"2"),
            InputRecord::new("c", b"3"),
        ]);
        let e = event(vec![
            event_record(SEQ1, "a", &agg.data),
            event_record(SEQ2, "p", b"plain"),
            event_record(SEQ3, "a", &agg.data),
        ]);
        let records = user_records(&e);
        assert_eq!(records.len(), 7);
        // Two user records of the first aggregate, one of the last, given out of order.
        let failed = [&records[6], &records[2], &records[0], &records[4]];
        let answer = batch_item_failures(failed);
        assert_eq!(
            serde_json::to_value(&answer).unwrap(),
            serde_json::json!({"batchItemFailures": [
                {"itemIdentifier": SEQ1},
                {"itemIdentifier": SEQ3},
            ]})
        );
        assert_eq!(
            serde_json::to_string(&batch_item_failures(&[])).unwrap(),
            r#"{"batchItemFailures":[]}"#
        );
        // Numeric order, not text order.
        let answer = failed_sequence_numbers(["100", "99", "100"]);
        assert_eq!(
            serde_json::to_value(&answer).unwrap(),
            serde_json::json!({"batchItemFailures": [
                {"itemIdentifier": "99"}, {"itemIdentifier": "100"}
            ]})
        );
    }

    #[test]
    fn empty_aggregate_yields_no_user_records() {
        // Magic, a protobuf with one partition key ("a") and no records, its MD5.
        let protobuf = [0x0A, 0x01, b'a'];
        let mut data = vec![0xF3, 0x89, 0x9A, 0xC2];
        data.extend_from_slice(&protobuf);
        data.extend_from_slice(&kpl_codec::md5(&protobuf));
        let e = event(vec![event_record(SEQ1, "a", &data)]);
        assert!(user_records(&e).is_empty());
    }
}
