//! One Kinesis record into the user records a KCL consumer gets, with their place in the
//! stream.

use std::sync::Arc;

use kpl_codec::kcl_text;
use kpl_codec::{
    deaggregate, deaggregate_batch, Deaggregated, DecodeError, HashRange, Options, Policy,
};

use super::sequence::Checkpoint;

/// A user record read from the stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceRecord {
    /// The shard it was read from.
    pub shard_id: Arc<str>,
    /// The Kinesis record's sequence number.
    pub sequence_number: Arc<str>,
    /// Its position in the Kinesis record (0 for a plain record).
    pub sub_sequence_number: u64,
    /// Its partition key (decoded as Java does when not valid UTF-8, as KCL hands it over).
    pub partition_key: String,
    /// Its explicit hash key, when the aggregate carries one.
    pub explicit_hash_key: Option<String>,
    /// Its data.
    pub data: Vec<u8>,
    /// Whether it came out of an aggregate.
    pub aggregated: bool,
    /// When Kinesis received the Kinesis record holding it (`ApproximateArrivalTimestamp`),
    /// if the answer said.
    pub approximate_arrival: Option<std::time::SystemTime>,
    /// Under the strict policy only: the defect (with its byte offset) that made this
    /// Kinesis record undecodable; the record is then handed over whole, as one record.
    pub defect: Option<String>,
}

impl SourceRecord {
    /// The checkpoint that marks this record as processed.
    pub fn checkpoint(&self) -> Checkpoint {
        Checkpoint::new(self.sequence_number.as_ref(), self.sub_sequence_number)
    }
}

/// The user records of one Kinesis record under KCL's policy (MD5 checked; with `range`,
/// KCL's all-or-nothing hash-range filter), without those `skip` covers (already
/// processed before a restart).
///
/// ```
/// use std::sync::Arc;
/// use kpl_kinesis::source::{user_records, Checkpoint};
/// let plain = user_records(&Arc::from("shardId-0"), None, &Arc::from("7"), "k", b"hello", None);
/// assert_eq!(plain.len(), 1);
/// assert!(!plain[0].aggregated);
/// let skipped = user_records(&Arc::from("shardId-0"), None, &Arc::from("7"), "k", b"hello",
///     Some(&Checkpoint::new("7", 0)));
/// assert!(skipped.is_empty());
/// ```
pub fn user_records(
    shard_id: &Arc<str>,
    range: Option<HashRange>,
    sequence_number: &Arc<str>,
    partition_key: &str,
    data: &[u8],
    skip: Option<&Checkpoint>,
) -> Vec<SourceRecord> {
    user_records_under(
        Policy::Kcl,
        shard_id,
        range,
        sequence_number,
        partition_key,
        data,
        skip,
    )
}

/// [`user_records`] under a policy: with [`Policy::Strict`], a Kinesis record with any
/// defect (bad MD5, bad protobuf, a bad index, a hash key outside `range`) is not
/// deaggregated but handed over whole, as one record carrying the defect.
pub fn user_records_under(
    policy: Policy,
    shard_id: &Arc<str>,
    range: Option<HashRange>,
    sequence_number: &Arc<str>,
    partition_key: &str,
    data: &[u8],
    skip: Option<&Checkpoint>,
) -> Vec<SourceRecord> {
    if covered_whole(skip, sequence_number) {
        return Vec::new();
    }
    let decoded = deaggregate(data, partition_key.as_bytes(), &options(policy, range));
    source_records(
        decoded,
        shard_id,
        sequence_number,
        partition_key,
        data,
        skip,
    )
}

/// One Kinesis record of a GetRecords page, borrowed, for [`user_records_batch`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KinesisRecordRef<'a> {
    /// The Kinesis record's sequence number.
    pub sequence_number: &'a str,
    /// The Kinesis record's partition key.
    pub partition_key: &'a str,
    /// The Kinesis record's data.
    pub data: &'a [u8],
}

/// [`user_records_under`] for every Kinesis record of a page (one GetRecords answer), with
/// the MD5s of all its aggregates computed side by side in SIMD lanes
/// ([`kpl_codec::deaggregate_batch`]): one list of user records per Kinesis record, in
/// page order, each exactly what [`user_records_under`] gives for it. Kinesis records that
/// `skip` covers whole are neither hashed nor decoded.
///
/// ```
/// use std::sync::Arc;
/// use kpl_codec::Policy;
/// use kpl_kinesis::source::{user_records_batch, KinesisRecordRef};
/// let page = [
///     KinesisRecordRef { sequence_number: "7", partition_key: "k", data: b"hello" },
///     KinesisRecordRef { sequence_number: "8", partition_key: "k", data: b"world" },
/// ];
/// let users = user_records_batch(Policy::Kcl, &Arc::from("shardId-0"), None, &page, None);
/// assert_eq!(users.len(), 2);
/// assert_eq!(users[1][0].data, b"world");
/// ```
pub fn user_records_batch(
    policy: Policy,
    shard_id: &Arc<str>,
    range: Option<HashRange>,
    page: &[KinesisRecordRef<'_>],
    skip: Option<&Checkpoint>,
) -> Vec<Vec<SourceRecord>> {
    let wanted: Vec<bool> = page
        .iter()
        .map(|r| !covered_whole(skip, r.sequence_number))
        .collect();
    let inputs: Vec<(&[u8], &[u8])> = page
        .iter()
        .zip(&wanted)
        .filter(|(_, wanted)| **wanted)
        .map(|(r, _)| (r.data, r.partition_key.as_bytes()))
        .collect();
    let mut decoded = deaggregate_batch(&inputs, &options(policy, range)).into_iter();
    page.iter()
        .zip(wanted)
        .map(
            |(r, wanted)| match wanted.then(|| decoded.next()).flatten() {
                Some(decoded) => source_records(
                    decoded,
                    shard_id,
                    &Arc::from(r.sequence_number),
                    r.partition_key,
                    r.data,
                    skip,
                ),
                None => Vec::new(),
            },
        )
        .collect()
}

/// Whether the checkpoint `skip` covers the whole Kinesis record: nothing to decode.
fn covered_whole(skip: Option<&Checkpoint>, sequence_number: &str) -> bool {
    skip.is_some_and(|cp| cp.covers(sequence_number, u64::MAX))
}

fn options(policy: Policy, range: Option<HashRange>) -> Options {
    Options {
        policy,
        verify_md5: true,
        shard_range: range,
    }
}

/// The source records of one deaggregated Kinesis record, without those `skip` covers.
fn source_records(
    decoded: Result<Deaggregated<'_>, DecodeError>,
    shard_id: &Arc<str>,
    sequence_number: &Arc<str>,
    partition_key: &str,
    data: &[u8],
    skip: Option<&Checkpoint>,
) -> Vec<SourceRecord> {
    let decoded = match decoded {
        Ok(decoded) => decoded,
        // Strict: the defect, and the record whole (the KCL policy never fails).
        Err(e) => {
            return vec![SourceRecord {
                shard_id: shard_id.clone(),
                sequence_number: sequence_number.clone(),
                sub_sequence_number: 0,
                partition_key: partition_key.to_owned(),
                explicit_hash_key: None,
                data: data.to_vec(),
                aggregated: false,
                approximate_arrival: None,
                defect: Some(e.to_string()),
            }]
        }
    };
    decoded
        .filter(|u| skip.is_none_or(|cp| !cp.covers(sequence_number, u.sub_sequence_number)))
        .map(|u| SourceRecord {
            shard_id: shard_id.clone(),
            sequence_number: sequence_number.clone(),
            sub_sequence_number: u.sub_sequence_number,
            partition_key: kcl_text(u.partition_key).into_owned(),
            explicit_hash_key: u.explicit_hash_key.map(|k| kcl_text(k).into_owned()),
            data: u.data.to_vec(),
            aggregated: u.aggregated,
            approximate_arrival: None,
            defect: None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use kpl_codec::{Aggregator, AggregatorConfig, InputRecord};

    fn aggregate() -> Vec<u8> {
        let mut a = Aggregator::new(AggregatorConfig::default()).unwrap();
        for (k, d) in [("a", "x"), ("b", "y"), ("c", "z")] {
            assert!(a.add(InputRecord::new(k, d.as_bytes())).unwrap().is_none());
        }
        a.flush().unwrap().data
    }

    #[test]
    fn strict_hands_a_defective_aggregate_over_whole_with_its_defect() {
        let (shard, seq) = (Arc::from("s"), Arc::from("500"));
        let mut data = aggregate();
        let last = data.len() - 1;
        data[last] ^= 1; // the MD5 no longer matches
        let kcl = user_records(&shard, None, &seq, "a", &data, None);
        assert_eq!(kcl.len(), 1, "KCL passes it through as one plain record");
        assert!(kcl[0].defect.is_none());
        let strict = user_records_under(Policy::Strict, &shard, None, &seq, "a", &data, None);
        assert_eq!(strict.len(), 1);
        assert_eq!(strict[0].data, data);
        assert!(
            strict[0]
                .defect
                .as_deref()
                .is_some_and(|d| d.contains("MD5")),
            "{:?}",
            strict[0].defect
        );
        let fine = user_records_under(Policy::Strict, &shard, None, &seq, "a", &aggregate(), None);
        assert_eq!(fine.len(), 3);
        assert!(fine.iter().all(|r| r.defect.is_none()));
    }

    #[test]
    fn a_page_in_one_batch_equals_one_record_at_a_time() {
        let shard = Arc::from("s");
        let good = aggregate();
        let mut bad = aggregate();
        let last = bad.len() - 1;
        bad[last] ^= 1;
        let page = [
            KinesisRecordRef {
                sequence_number: "100",
                partition_key: "a",
                data: &good,
            },
            KinesisRecordRef {
                sequence_number: "200",
                partition_key: "p",
                data: b"plain",
            },
            KinesisRecordRef {
                sequence_number: "300",
                partition_key: "a",
                data: &bad,
            },
            KinesisRecordRef {
                sequence_number: "400",
                partition_key: "a",
                data: &good,
            },
        ];
        let skips = [
            None,
            Some(Checkpoint::new("100", 1)),
            Some(Checkpoint::new("300", 0)),
        ];
        for policy in [Policy::Kcl, Policy::Strict] {
            for range in [None, Some(HashRange::new(0, 1))] {
                for skip in &skips {
                    let batch = user_records_batch(policy, &shard, range, &page, skip.as_ref());
                    let one: Vec<Vec<SourceRecord>> = page
                        .iter()
                        .map(|r| {
                            let seq = Arc::from(r.sequence_number);
                            let (key, data) = (r.partition_key, r.data);
                            user_records_under(
                                policy,
                                &shard,
                                range,
                                &seq,
                                key,
                                data,
                                skip.as_ref(),
                            )
                        })
                        .collect();
                    assert_eq!(batch, one, "{policy:?} {range:?} {skip:?}");
                }
            }
        }
        // The checks above see every kind of outcome.
        let strict = user_records_batch(Policy::Strict, &shard, None, &page, None);
        assert_eq!(
            strict.iter().map(Vec::len).collect::<Vec<_>>(),
            [3, 1, 1, 3]
        );
        assert!(strict[2][0].defect.is_some());
        let resumed = user_records_batch(Policy::Kcl, &shard, None, &page, skips[2].as_ref());
        assert_eq!(
            resumed.iter().map(Vec::len).collect::<Vec<_>>(),
            [0, 0, 0, 3]
        );
    }

    #[test]
    fn resumes_inside_an_aggregate() {
        let (shard, seq) = (Arc::from("s"), Arc::from("500"));
        let data = aggregate();
        let all = user_records(&shard, None, &seq, "a", &data, None);
        assert_eq!(
            all.iter()
                .map(|r| r.partition_key.as_str())
                .collect::<Vec<_>>(),
            ["a", "b", "c"]
        );
        let rest = user_records(
            &shard,
            None,
            &seq,
            "a",
            &data,
            Some(&Checkpoint::new("500", 0)),
        );
        assert_eq!(
            rest.iter()
                .map(|r| r.sub_sequence_number)
                .collect::<Vec<_>>(),
            [1, 2]
        );
        assert!(user_records(
            &shard,
            None,
            &seq,
            "a",
            &data,
            Some(&Checkpoint::new("500", 2))
        )
        .is_empty());
        assert_eq!(
            user_records(
                &shard,
                None,
                &seq,
                "a",
                &data,
                Some(&Checkpoint::new("499", 9))
            )
            .len(),
            3
        );
    }

    #[test]
    fn range_filter_drops_the_whole_aggregate_like_kcl() {
        let (shard, seq) = (Arc::from("s"), Arc::from("1"));
        let data = aggregate();
        let narrow = HashRange::new(0, 1);
        assert!(user_records(&shard, Some(narrow), &seq, "a", &data, None).is_empty());
        assert_eq!(
            user_records(&shard, Some(HashRange::FULL), &seq, "a", &data, None).len(),
            3
        );
    }
}
