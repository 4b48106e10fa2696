//! The source's checkpoint logic, lineage order and iterator expiry against scripted
//! Kinesis answers (`aws-smithy-mocks`, SDK retries off, so every retry seen is the
//! source's own).
//!
//! The script is a tiny in-memory Kinesis: shards with records, GetShardIterator answered
//! from the request's type and starting sequence number, GetRecords in pages, and faults
//! (expired iterators, throttling) injected at chosen calls. Every call is logged, so the
//! tests assert both what the source yields and exactly what it asked.
//!
//! The tests run on tokio's paused clock (no real socket is involved): time advances only
//! when every task waits on a timer, and the source reads time through tokio, so its
//! backoffs and pauses are exact virtual durations, whatever the machine's speed or load.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_sdk_kinesis::config::retry::RetryConfig;
use aws_sdk_kinesis::operation::get_records::{GetRecordsError, GetRecordsInput, GetRecordsOutput};
use aws_sdk_kinesis::operation::get_shard_iterator::{
    GetShardIteratorError, GetShardIteratorInput, GetShardIteratorOutput,
};
use aws_sdk_kinesis::operation::list_shards::{ListShardsError, ListShardsOutput};
use aws_sdk_kinesis::primitives::Blob;
use aws_sdk_kinesis::types::{HashKeyRange, Record, SequenceNumberRange, Shard, ShardIteratorType};
use aws_sdk_kinesis::Client;
use aws_smithy_mocks::{mock, mock_client, MockResponse, RuleMode};
use kpl_codec::{Aggregator, AggregatorConfig, InputRecord};
use kpl_kinesis::source::{
    Checkpoint, CheckpointStore, MemoryCheckpoints, ShardPosition, Source, SourceConfig,
    SourceRecord, StartPosition,
};
use tokio::time::Instant;

const STREAM: &str = "test-stream";
const HALF: u128 = 1 << 127;

/// A record stored in a scripted shard.
#[derive(Debug, Clone)]
struct Stored {
    seq: String,
    key: String,
    data: Vec<u8>,
}

/// A scripted shard.
#[derive(Debug, Clone)]
struct ShardSpec {
    id: &'static str,
    parent: Option<&'static str>,
    adjacent_parent: Option<&'static str>,
    range: (u128, u128),
    records: Vec<Stored>,
    closed: bool,
    /// ListShards gives a hash key range that does not parse.
    bad_range: bool,
}

fn shard(id: &'static str, number: usize, keys: &[&str]) -> ShardSpec {
    ShardSpec {
        id,
        parent: None,
        adjacent_parent: None,
        range: (0, u128::MAX),
        records: keys
            .iter()
            .enumerate()
            .map(|(i, k)| plain(number, i, k))
            .collect(),
        closed: false,
        bad_range: false,
    }
}

impl ShardSpec {
    fn closed(mut self) -> Self {
        self.closed = true;
        self
    }

    fn child_of(mut self, parent: &'static str) -> Self {
        self.parent = Some(parent);
        self
    }

    fn merged_from(mut self, parent: &'static str, adjacent: &'static str) -> Self {
        self.parent = Some(parent);
        self.adjacent_parent = Some(adjacent);
        self
    }

    fn range(mut self, start: u128, end: u128) -> Self {
        self.range = (start, end);
        self
    }
}

/// A realistic 56-digit sequence number: shard `number`, record `index`. Increasing
/// within a shard, and children above their parents.
fn seq(number: usize, index: usize) -> String {
    format!("4959{number:02}{index:050}")
}

/// A plain (not aggregated) record whose data is `"{key}-data"`.
fn plain(number: usize, index: usize, key: &str) -> Stored {
    Stored {
        seq: seq(number, index),
        key: key.to_owned(),
        data: format!("{key}-data").into_bytes(),
    }
}

/// An aggregated Kinesis record of user records with these keys (data `"{key}-data"`).
fn aggregate(number: usize, index: usize, keys: &[&str]) -> Stored {
    let mut aggregator = Aggregator::new(AggregatorConfig::default()).unwrap();
    let data: Vec<String> = keys.iter().map(|k| format!("{k}-data")).collect();
    for (k, d) in keys.iter().zip(&data) {
        assert!(aggregator
            .add(InputRecord::new(k, d.as_bytes()))
            .unwrap()
            .is_none());
    }
    let record = aggregator.flush().unwrap();
    assert!(record.is_aggregated());
    Stored {
        seq: seq(number, index),
        key: record.partition_key,
        data: record.data,
    }
}

/// A fault injected at one call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fault {
    /// GetRecords: `ExpiredIteratorException` (and the iterator stays expired).
    Expired,
    /// GetRecords: `ProvisionedThroughputExceededException`; GetShardIterator and
    /// ListShards: `LimitExceededException` (their throttling error).
    Throttled,
}

/// Which operation a fault applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Op {
    ListShards,
    GetShardIterator,
    GetRecords,
}

/// A call as the scripted Kinesis saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Call {
    ListShards,
    /// Shard, type, starting sequence number.
    GetShardIterator(String, ShardIteratorType, Option<String>),
    /// Shard and the position (record index) of the iterator used.
    GetRecords(String, usize),
}

/// An iterator handed out: a shard and a record index.
#[derive(Debug, Clone)]
struct Iter {
    shard: usize,
    position: usize,
    expired: bool,
}

#[derive(Debug, Default)]
struct Stream {
    shards: Vec<ShardSpec>,
    /// Records per GetRecords answer.
    page: usize,
    /// A closed shard's end is told in an extra empty page (rather than with its last
    /// records).
    empty_final_page: bool,
    faults: BTreeMap<(Op, usize), Fault>,
    calls: Vec<(Instant, Call)>,
    counts: BTreeMap<Op, usize>,
    iterators: Vec<Iter>,
    /// Records put to a shard right after the first LATEST iterator for it is handed out.
    put_after_latest: Vec<(&'static str, Stored)>,
}

impl Stream {
    fn shard_index(&self, id: &str) -> Option<usize> {
        self.shards.iter().position(|s| s.id == id)
    }

    /// Counts the call and returns the fault scripted for it, if any.
    fn fault(&mut self, op: Op) -> Option<Fault> {
        let n = self.counts.entry(op).or_default();
        let index = *n;
        *n += 1;
        self.faults.get(&(op, index)).copied()
    }

    fn issue(&mut self, shard: usize, position: usize) -> String {
        self.iterators.push(Iter {
            shard,
            position,
            expired: false,
        });
        format!("iterator-{}", self.iterators.len() - 1)
    }

    fn list_shards(&mut self) -> MockResponse<ListShardsOutput, ListShardsError> {
        self.calls.push((Instant::now(), Call::ListShards));
        if let Some(Fault::Throttled) = self.fault(Op::ListShards) {
            return http_error(400, "LimitExceededException", "Rate exceeded for stream");
        }
        let mut out = ListShardsOutput::builder();
        for s in &self.shards {
            let first = s
                .records
                .first()
                .map_or_else(|| seq(99, 0), |r| r.seq.clone());
            let mut range = SequenceNumberRange::builder().starting_sequence_number(first.clone());
            if s.closed {
                let last = s.records.last().map_or(first, |r| r.seq.clone());
                range = range.ending_sequence_number(last);
            }
            out = out.shards(
                Shard::builder()
                    .shard_id(s.id)
                    .set_parent_shard_id(s.parent.map(str::to_owned))
                    .set_adjacent_parent_shard_id(s.adjacent_parent.map(str::to_owned))
                    .hash_key_range(
                        HashKeyRange::builder()
                            .starting_hash_key(s.range.0.to_string())
                            .ending_hash_key(if s.bad_range {
                                "not-a-number".to_owned()
                            } else {
                                s.range.1.to_string()
                            })
                            .build()
                            .unwrap(),
                    )
                    .sequence_number_range(range.build().unwrap())
                    .build()
                    .unwrap(),
            );
        }
        MockResponse::Output(out.build())
    }

    fn get_shard_iterator(
        &mut self,
        input: &GetShardIteratorInput,
    ) -> MockResponse<GetShardIteratorOutput, GetShardIteratorError> {
        assert_eq!(input.stream_name(), Some(STREAM));
        let id = input.shard_id().unwrap_or_default().to_owned();
        let kind = input
            .shard_iterator_type()
            .cloned()
            .expect("an iterator type");
        let start = input.starting_sequence_number().map(str::to_owned);
        self.calls.push((
            Instant::now(),
            Call::GetShardIterator(id.clone(), kind.clone(), start.clone()),
        ));
        if let Some(Fault::Throttled) = self.fault(Op::GetShardIterator) {
            return http_error(
                400,
                "LimitExceededException",
                "Rate exceeded for shard in stream test-stream",
            );
        }
        let Some(index) = self.shard_index(&id) else {
            return http_error(400, "ResourceNotFoundException", "no such shard");
        };
        let records = &self.shards[index].records;
        let find = |s: &str| records.iter().position(|r| r.seq == s);
        let position = match (&kind, &start) {
            (ShardIteratorType::TrimHorizon, None) => 0,
            (ShardIteratorType::Latest, None) => {
                let end = records.len();
                let puts: Vec<Stored> = self
                    .put_after_latest
                    .iter()
                    .filter(|(s, _)| *s == id)
                    .map(|(_, r)| r.clone())
                    .collect();
                self.put_after_latest.retain(|(s, _)| *s != id);
                self.shards[index].records.extend(puts);
                end
            }
            (ShardIteratorType::AtSequenceNumber, Some(s)) => match find(s) {
                Some(p) => p,
                None => return http_error(400, "InvalidArgumentException", "not in shard"),
            },
            (ShardIteratorType::AfterSequenceNumber, Some(s)) => match find(s) {
                Some(p) => p + 1,
                None => return http_error(400, "InvalidArgumentException", "not in shard"),
            },
            other => panic!("unexpected GetShardIterator request {other:?}"),
        };
        let iterator = self.issue(index, position);
        MockResponse::Output(
            GetShardIteratorOutput::builder()
                .shard_iterator(iterator)
                .build(),
        )
    }

    fn get_records(
        &mut self,
        input: &GetRecordsInput,
    ) -> MockResponse<GetRecordsOutput, GetRecordsError> {
        let name = input.shard_iterator().expect("an iterator");
        let number: usize = name
            .strip_prefix("iterator-")
            .and_then(|n| n.parse().ok())
            .expect("an iterator this script handed out");
        let Iter {
            shard,
            position,
            expired,
        } = self.iterators[number].clone();
        let id = self.shards[shard].id.to_owned();
        self.calls
            .push((Instant::now(), Call::GetRecords(id, position)));
        match self.fault(Op::GetRecords) {
            Some(Fault::Expired) => self.iterators[number].expired = true,
            Some(Fault::Throttled) => {
                return http_error(
                    400,
                    "ProvisionedThroughputExceededException",
                    "Rate exceeded for shard in stream test-stream",
                )
            }
            None => {}
        }
        if self.iterators[number].expired || expired {
            return http_error(
                400,
                "ExpiredIteratorException",
                "Iterator expired. The iterator was created at time ...",
            );
        }
        let limit = input
            .limit()
            .map_or(10_000, |l| usize::try_from(l).unwrap());
        let spec = &self.shards[shard];
        let end = spec.records.len().min(position + self.page.min(limit));
        let page: Vec<Record> = spec.records[position..end]
            .iter()
            .map(|r| {
                Record::builder()
                    .sequence_number(&r.seq)
                    .partition_key(&r.key)
                    .data(Blob::new(r.data.clone()))
                    .build()
                    .unwrap()
            })
            .collect();
        let at_end = end == spec.records.len();
        // With `empty_final_page`, the end is told only in a page without records.
        let shard_ended = spec.closed && at_end && (page.is_empty() || !self.empty_final_page);
        let next = (!shard_ended).then(|| self.issue(shard, end));
        let behind = if at_end { 0 } else { 1_000 };
        MockResponse::Output(
            GetRecordsOutput::builder()
                .set_records(Some(page))
                .set_next_shard_iterator(next)
                .millis_behind_latest(behind)
                .build()
                .unwrap(),
        )
    }
}

/// An HTTP error answer with a JSON 1.1 error body, as Kinesis sends it.
fn http_error<O, E>(status: u16, code: &str, message: &str) -> MockResponse<O, E> {
    let body = format!(r#"{{"__type":"{code}","message":"{message}"}}"#);
    MockResponse::Http(aws_sdk_kinesis::config::http::HttpResponse::new(
        status.try_into().unwrap(),
        aws_smithy_types::body::SdkBody::from(body),
    ))
}

/// The stream, even after a call panicked while holding it (an injected panic).
fn lock(stream: &Mutex<Stream>) -> std::sync::MutexGuard<'_, Stream> {
    stream
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// A scripted Kinesis and the client that talks to it.
struct Kinesis {
    client: Client,
    stream: Arc<Mutex<Stream>>,
}

impl Kinesis {
    fn new(shards: Vec<ShardSpec>) -> Self {
        Kinesis::with(shards, |_| {})
    }

    fn with(shards: Vec<ShardSpec>, setup: impl FnOnce(&mut Stream)) -> Self {
        let mut stream = Stream {
            shards,
            page: 10_000,
            ..Stream::default()
        };
        setup(&mut stream);
        let stream = Arc::new(Mutex::new(stream));
        let s = stream.clone();
        let list = mock!(Client::list_shards).then_compute_response(move |input| {
            assert_eq!(input.stream_name(), Some(STREAM));
            lock(&s).list_shards()
        });
        let s = stream.clone();
        let iterator = mock!(Client::get_shard_iterator)
            .then_compute_response(move |input| lock(&s).get_shard_iterator(input));
        let s = stream.clone();
        let records = mock!(Client::get_records)
            .then_compute_response(move |input| lock(&s).get_records(input));
        // MatchAny: every rule stays and answers every call of its operation.
        let client = mock_client!(
            aws_sdk_kinesis,
            RuleMode::MatchAny,
            &[&list, &iterator, &records],
            |b| b.retry_config(RetryConfig::disabled())
        );
        assert_eq!(
            client
                .config()
                .retry_config()
                .map(RetryConfig::max_attempts),
            Some(1),
            "the SDK must not retry on its own"
        );
        Kinesis { client, stream }
    }

    fn calls(&self) -> Vec<Call> {
        let stream = lock(&self.stream);
        stream.calls.iter().map(|(_, c)| c.clone()).collect()
    }

    fn timed_calls(&self) -> Vec<(Instant, Call)> {
        lock(&self.stream).calls.clone()
    }

    /// The GetShardIterator requests: shard, type, starting sequence number.
    fn iterator_requests(&self) -> Vec<(String, ShardIteratorType, Option<String>)> {
        self.calls()
            .into_iter()
            .filter_map(|c| match c {
                Call::GetShardIterator(shard, kind, seq) => Some((shard, kind, seq)),
                _ => None,
            })
            .collect()
    }

    /// The GetRecords calls: shard and iterator position.
    fn get_records_calls(&self) -> Vec<(String, usize)> {
        self.calls()
            .into_iter()
            .filter_map(|c| match c {
                Call::GetRecords(shard, position) => Some((shard, position)),
                _ => None,
            })
            .collect()
    }
}

/// Short pauses so that tests run in milliseconds; `follow` off, so the source ends.
fn fast_config() -> SourceConfig {
    SourceConfig {
        poll_interval: Duration::from_millis(5),
        max_backoff: Duration::from_millis(50),
        // One call at a time: the scripted call sequences below are exact.
        max_in_flight: 1,
        ..SourceConfig::default()
    }
}

async fn source_with(
    kinesis: &Kinesis,
    store: Arc<MemoryCheckpoints>,
    config: SourceConfig,
) -> Source {
    Source::builder()
        .stream_name(STREAM)
        .client(kinesis.client.clone())
        .config(config)
        .checkpoints(store)
        .build()
        .await
        .unwrap()
}

/// The next record, failing the test on an error or after 10 s of virtual time (the
/// scripted answers take none: only a source that sleeps on and on gets there).
async fn next(source: &mut Source) -> Option<SourceRecord> {
    tokio::time::timeout(Duration::from_secs(10), source.next())
        .await
        .expect("the source answers within 10 s")
        .map(|r| r.expect("no error"))
}

/// Everything the source yields until it ends.
async fn read_all(source: &mut Source) -> Vec<SourceRecord> {
    let mut out = Vec::new();
    while let Some(r) = next(source).await {
        out.push(r);
        assert!(out.len() < 1_000, "the source does not end");
    }
    assert!(next(source).await.is_none(), "an ended source stays ended");
    out
}

/// (shard, sequence number, sub-sequence number, data) of each record.
fn summary(records: &[SourceRecord]) -> Vec<(String, String, u64, String)> {
    records
        .iter()
        .map(|r| {
            (
                r.shard_id.to_string(),
                r.sequence_number.to_string(),
                r.sub_sequence_number,
                String::from_utf8(r.data.clone()).unwrap(),
            )
        })
        .collect()
}

/// The expected summary of plain records `indices` of shard `number` with these keys.
fn expected(
    id: &str,
    number: usize,
    keys: &[&str],
    indices: std::ops::Range<usize>,
) -> Vec<(String, String, u64, String)> {
    indices
        .map(|i| {
            (
                id.to_owned(),
                seq(number, i),
                0,
                format!("{}-data", keys[i]),
            )
        })
        .collect()
}

fn trim_horizon(id: &str) -> (String, ShardIteratorType, Option<String>) {
    (id.to_owned(), ShardIteratorType::TrimHorizon, None)
}

fn position(store: &MemoryCheckpoints, id: &str) -> Option<ShardPosition> {
    store.load().unwrap().get(id).cloned()
}

const S0: &str = "shardId-000000000000";
const S1: &str = "shardId-000000000001";
const S2: &str = "shardId-000000000002";
const KEYS: &[&str] = &["k0", "k1", "k2", "k3", "k4"];

#[tokio::test(start_paused = true)]
async fn expired_iterator_resumes_after_the_last_record_read() {
    // Pages of two; the second GetRecords finds the iterator expired.
    let kinesis = Kinesis::with(vec![shard(S0, 0, KEYS).closed()], |s| {
        s.page = 2;
        s.faults.insert((Op::GetRecords, 1), Fault::Expired);
    });
    let store = Arc::new(MemoryCheckpoints::default());
    let mut source = source_with(&kinesis, store.clone(), fast_config()).await;
    let records = read_all(&mut source).await;

    assert_eq!(
        summary(&records),
        expected(S0, 0, KEYS, 0..5),
        "each once, in order"
    );
    assert_eq!(
        kinesis.iterator_requests(),
        vec![
            trim_horizon(S0),
            (
                S0.to_owned(),
                ShardIteratorType::AfterSequenceNumber,
                Some(seq(0, 1))
            ),
        ],
        "a new iterator after the last record read, not from the start or a checkpoint"
    );
    assert_eq!(
        kinesis.get_records_calls(),
        vec![
            (S0.to_owned(), 0),
            (S0.to_owned(), 2), // expired
            (S0.to_owned(), 2), // the new iterator
            (S0.to_owned(), 4), // the last page: no next iterator, the shard is closed
        ],
        "the expired iterator is not used again, and a closed shard read to its end is \
         not read further"
    );
    // Reading checkpoints nothing by itself.
    assert_eq!(position(&store, S0), None);
}

#[tokio::test(start_paused = true)]
async fn expired_iterator_before_any_record_falls_back_to_the_start() {
    // The very first GetRecords finds the iterator expired: nothing read yet, so the
    // source asks the same start again (TRIM_HORIZON), not AFTER_SEQUENCE_NUMBER.
    let kinesis = Kinesis::with(vec![shard(S0, 0, KEYS).closed()], |s| {
        s.page = 3;
        s.faults.insert((Op::GetRecords, 0), Fault::Expired);
    });
    let store = Arc::new(MemoryCheckpoints::default());
    let mut source = source_with(&kinesis, store, fast_config()).await;
    let records = read_all(&mut source).await;
    assert_eq!(summary(&records), expected(S0, 0, KEYS, 0..5));
    assert_eq!(
        kinesis.iterator_requests(),
        vec![trim_horizon(S0), trim_horizon(S0)]
    );
}

#[tokio::test(start_paused = true)]
async fn throttled_get_records_backs_off_and_retries() {
    let kinesis = Kinesis::with(vec![shard(S0, 0, &KEYS[..3]).closed()], |s| {
        s.faults.insert((Op::GetRecords, 0), Fault::Throttled);
        s.faults.insert((Op::GetRecords, 1), Fault::Throttled);
    });
    let store = Arc::new(MemoryCheckpoints::default());
    let config = fast_config();
    let backoff = config.max_backoff;
    let mut source = source_with(&kinesis, store, config).await;
    let records = read_all(&mut source).await;

    assert_eq!(
        summary(&records),
        expected(S0, 0, KEYS, 0..3),
        "each once, in order"
    );
    assert_eq!(
        kinesis.iterator_requests(),
        vec![trim_horizon(S0)],
        "throttling does not cost the iterator"
    );
    let reads: Vec<(Instant, Call)> = kinesis
        .timed_calls()
        .into_iter()
        .filter(|(_, c)| matches!(c, Call::GetRecords(..)))
        .collect();
    assert_eq!(
        reads.iter().map(|(_, c)| c.clone()).collect::<Vec<_>>(),
        vec![Call::GetRecords(S0.to_owned(), 0); 3],
        "two throttled calls, then the same iterator again"
    );
    // Virtual time: each retry came exactly when its backoff (100 ms doubled per failure,
    // capped at `max_backoff`, 50 ms) was over, neither before nor later.
    for pair in reads.windows(2) {
        let gap = pair[1].0.duration_since(pair[0].0);
        assert_eq!(gap, backoff, "retried after {gap:?}, not after the backoff");
    }
}

#[tokio::test(start_paused = true)]
async fn throttled_get_shard_iterator_backs_off_and_retries() {
    let kinesis = Kinesis::with(vec![shard(S0, 0, &KEYS[..2]).closed()], |s| {
        s.faults.insert((Op::GetShardIterator, 0), Fault::Throttled);
    });
    let store = Arc::new(MemoryCheckpoints::default());
    let mut source = source_with(&kinesis, store, fast_config()).await;
    let records = read_all(&mut source).await;
    assert_eq!(summary(&records), expected(S0, 0, KEYS, 0..2));
    assert_eq!(
        kinesis.iterator_requests(),
        vec![trim_horizon(S0), trim_horizon(S0)]
    );
    assert_eq!(kinesis.get_records_calls(), vec![(S0.to_owned(), 0)]);
}

/// Shard 0: a plain record, an aggregate of four user records, a plain record.
fn shard_with_aggregate() -> ShardSpec {
    let mut s = shard(S0, 0, &[]).closed();
    s.records = vec![
        plain(0, 0, "before"),
        aggregate(0, 1, &["a0", "a1", "a2", "a3"]),
        plain(0, 2, "after"),
    ];
    s
}

#[tokio::test(start_paused = true)]
async fn resume_from_checkpoint_inside_an_aggregate_skips_processed_user_records() {
    let kinesis = Kinesis::new(vec![shard_with_aggregate()]);
    let store = Arc::new(MemoryCheckpoints::default());
    store
        .save(S0, &ShardPosition::At(Checkpoint::new(seq(0, 1), 1)))
        .unwrap();
    let mut source = source_with(&kinesis, store.clone(), fast_config()).await;
    let records = read_all(&mut source).await;

    assert_eq!(
        kinesis.iterator_requests(),
        vec![(
            S0.to_owned(),
            ShardIteratorType::AtSequenceNumber,
            Some(seq(0, 1))
        )],
        "the checkpointed Kinesis record is read again"
    );
    let s = |sub: u64, data: &str| (S0.to_owned(), seq(0, 1), sub, data.to_owned());
    assert_eq!(
        summary(&records),
        vec![
            s(2, "a2-data"),
            s(3, "a3-data"),
            (S0.to_owned(), seq(0, 2), 0, "after-data".to_owned()),
        ],
        "only the user records after the checkpoint"
    );
    assert!(records[..2].iter().all(|r| r.aggregated));
    assert_eq!(records[0].partition_key, "a2");
    assert!(!records[2].aggregated);
    assert_eq!(
        position(&store, S0),
        Some(ShardPosition::At(Checkpoint::new(seq(0, 1), 1))),
        "reading moves no checkpoint"
    );
}

#[tokio::test(start_paused = true)]
async fn expiry_after_resuming_inside_an_aggregate_repeats_nothing() {
    // Pages of one record: the aggregate, then an expired iterator, then the rest.
    let kinesis = Kinesis::with(vec![shard_with_aggregate()], |s| {
        s.page = 1;
        s.faults.insert((Op::GetRecords, 1), Fault::Expired);
    });
    let store = Arc::new(MemoryCheckpoints::default());
    store
        .save(S0, &ShardPosition::At(Checkpoint::new(seq(0, 1), 0)))
        .unwrap();
    let mut source = source_with(&kinesis, store, fast_config()).await;
    let records = read_all(&mut source).await;
    assert_eq!(
        records
            .iter()
            .map(|r| (r.sequence_number.to_string(), r.sub_sequence_number))
            .collect::<Vec<_>>(),
        vec![
            (seq(0, 1), 1),
            (seq(0, 1), 2),
            (seq(0, 1), 3),
            (seq(0, 2), 0)
        ]
    );
    assert_eq!(
        kinesis.iterator_requests(),
        vec![
            (
                S0.to_owned(),
                ShardIteratorType::AtSequenceNumber,
                Some(seq(0, 1))
            ),
            (
                S0.to_owned(),
                ShardIteratorType::AfterSequenceNumber,
                Some(seq(0, 1))
            ),
        ]
    );
}

/// Shard 0 split into shards 1 (lower half) and 2 (upper half).
fn split(parent_keys: &[&str]) -> Vec<ShardSpec> {
    vec![
        shard(S0, 0, parent_keys).closed(),
        shard(S1, 1, &["c1-0", "c1-1"])
            .child_of(S0)
            .range(0, HALF - 1),
        shard(S2, 2, &["c2-0", "c2-1", "c2-2"])
            .child_of(S0)
            .range(HALF, u128::MAX),
    ]
}

#[tokio::test(start_paused = true)]
async fn finished_parent_is_skipped_and_children_read() {
    let kinesis = Kinesis::new(split(&["p0", "p1"]));
    let store = Arc::new(MemoryCheckpoints::default());
    store.save(S0, &ShardPosition::Finished).unwrap();
    let mut source = source_with(&kinesis, store.clone(), fast_config()).await;
    let records = read_all(&mut source).await;

    let requests = kinesis.iterator_requests();
    assert!(
        requests.iter().all(|(id, _, _)| id != S0),
        "no iterator for the finished parent: {requests:?}"
    );
    assert_eq!(requests.len(), 2);
    assert!(requests.contains(&trim_horizon(S1)) && requests.contains(&trim_horizon(S2)));
    assert!(kinesis.get_records_calls().iter().all(|(id, _)| id != S0));

    let of = |id: &str| -> Vec<_> {
        let s = summary(&records);
        s.into_iter().filter(|r| r.0 == id).collect()
    };
    assert_eq!(records.len(), 5, "each child record once");
    assert_eq!(of(S1), expected(S1, 1, &["c1-0", "c1-1"], 0..2));
    assert_eq!(of(S2), expected(S2, 2, &["c2-0", "c2-1", "c2-2"], 0..3));
    assert_eq!(position(&store, S0), Some(ShardPosition::Finished));
}

#[tokio::test(start_paused = true)]
async fn parent_read_before_children() {
    // Pages of one record, so that the parent takes several rounds.
    let kinesis = Kinesis::with(split(&["p0", "p1", "p2"]), |s| s.page = 1);
    let store = Arc::new(MemoryCheckpoints::default());
    let mut source = source_with(&kinesis, store, fast_config()).await;
    let records = read_all(&mut source).await;

    let all = summary(&records);
    assert_eq!(
        all[..3],
        expected(S0, 0, &["p0", "p1", "p2"], 0..3)[..],
        "every parent record first, in order"
    );
    let rest = &all[3..];
    assert_eq!(rest.len(), 5, "then each child record once");
    let of = |id: &str| -> Vec<_> { rest.iter().filter(|r| r.0 == id).cloned().collect() };
    assert_eq!(of(S1), expected(S1, 1, &["c1-0", "c1-1"], 0..2));
    assert_eq!(of(S2), expected(S2, 2, &["c2-0", "c2-1", "c2-2"], 0..3));

    // Nothing was asked of a child before the parent's last page.
    let calls = kinesis.calls();
    let parent_end = calls
        .iter()
        .rposition(|c| matches!(c, Call::GetRecords(id, _) if id == S0))
        .unwrap();
    let first_child = calls
        .iter()
        .position(|c| match c {
            Call::GetShardIterator(id, _, _) | Call::GetRecords(id, _) => id != S0,
            Call::ListShards => false,
        })
        .unwrap();
    assert!(parent_end < first_child, "{calls:?}");
    let requests = kinesis.iterator_requests();
    assert_eq!(requests.len(), 3, "{requests:?}");
    assert_eq!(requests[0], trim_horizon(S0));
    assert!(
        requests[1..].contains(&trim_horizon(S1)) && requests[1..].contains(&trim_horizon(S2)),
        "{requests:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn merged_child_waits_for_both_parents() {
    // Shards 0 and 1 (closed) merged into shard 2.
    let kinesis = Kinesis::with(
        vec![
            shard(S0, 0, &["a0", "a1"]).closed().range(0, HALF - 1),
            shard(S1, 1, &["b0", "b1", "b2"])
                .closed()
                .range(HALF, u128::MAX),
            shard(S2, 2, &["m0", "m1"]).merged_from(S0, S1),
        ],
        |s| s.page = 1,
    );
    let store = Arc::new(MemoryCheckpoints::default());
    let mut source = source_with(&kinesis, store, fast_config()).await;
    let all = summary(&read_all(&mut source).await);
    assert_eq!(all.len(), 7);
    assert_eq!(
        all[5..],
        expected(S2, 2, &["m0", "m1"], 0..2)[..],
        "the merged child last: {all:?}"
    );
    let of = |id: &str| -> Vec<_> { all.iter().filter(|r| r.0 == id).cloned().collect() };
    assert_eq!(of(S0), expected(S0, 0, &["a0", "a1"], 0..2));
    assert_eq!(of(S1), expected(S1, 1, &["b0", "b1", "b2"], 0..3));
}

#[tokio::test(start_paused = true)]
async fn checkpointing_the_last_record_of_a_closed_shard_marks_it_finished() {
    let kinesis = Kinesis::new(vec![shard(S0, 0, &KEYS[..3]).closed()]);
    let store = Arc::new(MemoryCheckpoints::default());
    let mut source = source_with(&kinesis, store.clone(), fast_config()).await;
    let records = read_all(&mut source).await;
    assert_eq!(records.len(), 3);
    assert_eq!(position(&store, S0), None, "nothing processed yet");

    source.checkpoint(&records[1]).unwrap();
    assert_eq!(
        position(&store, S0),
        Some(ShardPosition::At(Checkpoint::new(seq(0, 1), 0)))
    );
    source.checkpoint(&records[2]).unwrap();
    assert_eq!(position(&store, S0), Some(ShardPosition::Finished));

    // A restarted source skips the finished shard altogether.
    let before = kinesis.calls().len();
    let mut again = source_with(&kinesis, store.clone(), fast_config()).await;
    assert!(next(&mut again).await.is_none());
    let after: Vec<Call> = kinesis.calls()[before..].to_vec();
    assert_eq!(after, vec![Call::ListShards]);
}

#[tokio::test(start_paused = true)]
async fn checkpointing_each_record_as_read_marks_a_closed_shard_finished() {
    // The documented loop: checkpoint each record right after `next` hands it over. The
    // shard's end shows up only in a later, empty page (no next iterator), after its last
    // record was handed over and checkpointed.
    let kinesis = Kinesis::with(vec![shard(S0, 0, &KEYS[..3]).closed()], |s| {
        s.empty_final_page = true;
    });
    let store = Arc::new(MemoryCheckpoints::default());
    let mut source = source_with(&kinesis, store.clone(), fast_config()).await;
    let mut seen = Vec::new();
    while let Some(r) = next(&mut source).await {
        source.checkpoint(&r).unwrap();
        seen.push(r);
    }
    assert_eq!(summary(&seen), expected(S0, 0, KEYS, 0..3));
    assert_eq!(
        kinesis.get_records_calls(),
        vec![(S0.to_owned(), 0), (S0.to_owned(), 3)],
        "the end came in a second, empty page"
    );
    assert_eq!(
        position(&store, S0),
        Some(ShardPosition::Finished),
        "the closed shard's last record was checkpointed"
    );
}

#[tokio::test(start_paused = true)]
async fn checkpointed_parent_resumes_then_children_follow() {
    // The parent was processed up to its second record before a restart: the source
    // resumes it at that record, skips it, reads the rest, then the children.
    let kinesis = Kinesis::new(split(&["p0", "p1", "p2"]));
    let store = Arc::new(MemoryCheckpoints::default());
    store
        .save(S0, &ShardPosition::At(Checkpoint::new(seq(0, 1), 0)))
        .unwrap();
    let mut source = source_with(&kinesis, store.clone(), fast_config()).await;
    let records = read_all(&mut source).await;
    let all = summary(&records);
    assert_eq!(all[0], expected(S0, 0, &["p0", "p1", "p2"], 2..3)[0]);
    assert_eq!(all.len(), 6, "p2 and every child record: {all:?}");
    assert!(all[1..].iter().all(|r| r.0 != S0));
    assert_eq!(
        kinesis.iterator_requests()[0],
        (
            S0.to_owned(),
            ShardIteratorType::AtSequenceNumber,
            Some(seq(0, 1))
        )
    );
    // Checkpointing the parent's last record finishes it.
    source.checkpoint(&records[0]).unwrap();
    assert_eq!(position(&store, S0), Some(ShardPosition::Finished));
}

#[tokio::test(start_paused = true)]
async fn latest_start_reads_only_new_records() {
    // A closed parent and its open child, both with old records; two records are put to
    // the child right after the source takes its LATEST iterator.
    let mut child = shard(S1, 1, &["old0", "old1"]).child_of(S0);
    child.range = (0, u128::MAX);
    let kinesis = Kinesis::with(vec![shard(S0, 0, &["p0", "p1"]).closed(), child], |s| {
        s.put_after_latest = vec![(S1, plain(1, 2, "new0")), (S1, plain(1, 3, "new1"))];
    });
    let store = Arc::new(MemoryCheckpoints::default());
    let config = SourceConfig {
        start: StartPosition::Latest,
        ..fast_config()
    };
    let mut source = source_with(&kinesis, store, config).await;
    let records = read_all(&mut source).await;

    assert_eq!(
        kinesis.iterator_requests(),
        vec![(S1.to_owned(), ShardIteratorType::Latest, None)],
        "LATEST for the open shard; the closed one is not read"
    );
    assert_eq!(
        summary(&records),
        vec![
            (S1.to_owned(), seq(1, 2), 0, "new0-data".to_owned()),
            (S1.to_owned(), seq(1, 3), 0, "new1-data".to_owned()),
        ]
    );
    assert!(kinesis.get_records_calls().iter().all(|(id, _)| id == S1));
}

#[tokio::test(start_paused = true)]
async fn checkpoint_overrides_latest_start() {
    // With a checkpoint, LATEST does not apply: the shard resumes at the checkpoint.
    let kinesis = Kinesis::new(vec![shard(S0, 0, &KEYS[..4])]);
    let store = Arc::new(MemoryCheckpoints::default());
    store
        .save(S0, &ShardPosition::At(Checkpoint::new(seq(0, 1), 0)))
        .unwrap();
    let config = SourceConfig {
        start: StartPosition::Latest,
        ..fast_config()
    };
    let mut source = source_with(&kinesis, store, config).await;
    let records = read_all(&mut source).await;
    assert_eq!(summary(&records), expected(S0, 0, KEYS, 2..4));
    assert_eq!(
        kinesis.iterator_requests(),
        vec![(
            S0.to_owned(),
            ShardIteratorType::AtSequenceNumber,
            Some(seq(0, 1))
        )]
    );
}

#[tokio::test(start_paused = true)]
async fn restart_at_the_last_record_of_a_closed_shard_finishes_it() {
    // Processed to its last record before a restart, but not marked finished: the source
    // re-reads that record (AT_SEQUENCE_NUMBER), hands over nothing, and marks the shard
    // finished at once, as nothing of it is left to process; then its children follow.
    let kinesis = Kinesis::new(split(&["p0", "p1"]));
    let store = Arc::new(MemoryCheckpoints::default());
    store
        .save(S0, &ShardPosition::At(Checkpoint::new(seq(0, 1), 0)))
        .unwrap();
    let mut source = source_with(&kinesis, store.clone(), fast_config()).await;
    let records = read_all(&mut source).await;
    assert_eq!(records.len(), 5, "only the children's records");
    assert!(records.iter().all(|r| r.shard_id.as_ref() != S0));
    assert_eq!(position(&store, S0), Some(ShardPosition::Finished));
    assert_eq!(
        kinesis.iterator_requests()[0],
        (
            S0.to_owned(),
            ShardIteratorType::AtSequenceNumber,
            Some(seq(0, 1))
        )
    );
    assert_eq!(
        kinesis.get_records_calls()[0],
        (S0.to_owned(), 1),
        "read from the checkpointed record"
    );
}

#[tokio::test(start_paused = true)]
async fn a_throttled_listing_is_retried_not_taken_for_an_empty_stream() {
    // The first two ListShards are throttled. Before the fix the source slept, took the
    // failed listing for a stream without shards, and ended at once with nothing read: a
    // `kpl tail` that exits 0 on a stream full of records.
    let kinesis = Kinesis::with(vec![shard("shardId-0", 0, &["a", "b", "c"])], |s| {
        s.faults.insert((Op::ListShards, 0), Fault::Throttled);
        s.faults.insert((Op::ListShards, 1), Fault::Throttled);
    });
    let mut source = source_with(
        &kinesis,
        Arc::new(MemoryCheckpoints::default()),
        fast_config(),
    )
    .await;
    let mut keys = Vec::new();
    while let Some(r) = source.next().await {
        keys.push(r.unwrap().partition_key);
    }
    assert_eq!(keys, ["a", "b", "c"]);
    let listings: Vec<Instant> = kinesis
        .timed_calls()
        .into_iter()
        .filter(|(_, c)| *c == Call::ListShards)
        .map(|(t, _)| t)
        .collect();
    assert_eq!(listings.len(), 3, "{:?}", kinesis.calls());
    // Backed off between tries (100 ms doubling, at most max_backoff = 50 ms here).
    assert!(listings
        .windows(2)
        .all(|w| w[1] - w[0] >= Duration::from_millis(50)));
}

#[tokio::test(start_paused = true)]
async fn a_listing_that_keeps_failing_ends_in_an_error_not_in_silence() {
    let kinesis = Kinesis::with(vec![shard("shardId-0", 0, &["a"])], |s| {
        for i in 0..1000 {
            s.faults.insert((Op::ListShards, i), Fault::Throttled);
        }
    });
    let mut source = source_with(
        &kinesis,
        Arc::new(MemoryCheckpoints::default()),
        fast_config(),
    )
    .await;
    match source.next().await {
        Some(Err(e)) => assert!(e.to_string().contains("LimitExceeded"), "{e}"),
        other => panic!("expected the listing's error, got {other:?}"),
    }
    assert!(source.next().await.is_none());
    let listings = kinesis
        .calls()
        .iter()
        .filter(|c| **c == Call::ListShards)
        .count();
    assert_eq!(listings, 10, "tries before giving up");
}

#[tokio::test(start_paused = true)]
async fn a_throttled_probe_for_the_start_sequence_number_is_retried() {
    // Starting at a sequence number, the source asks each shard for an AT_SEQUENCE_NUMBER
    // iterator to find the one holding it. The probe of the right shard is throttled once:
    // that says nothing about where the number is, so it is asked again (before the fix it
    // counted as "not here", and the source failed with "no shard holds ...").
    let kinesis = Kinesis::with(
        vec![
            shard("shardId-0", 0, &["a", "b", "c"]),
            shard("shardId-1", 1, &["d", "e"]),
        ],
        |s| {
            s.faults.insert((Op::GetShardIterator, 0), Fault::Throttled);
        },
    );
    let config = SourceConfig {
        start: StartPosition::AtSequenceNumber(seq(0, 1)),
        ..fast_config()
    };
    let mut source = source_with(&kinesis, Arc::new(MemoryCheckpoints::default()), config).await;
    let mut keys = Vec::new();
    while let Some(r) = source.next().await {
        keys.push(r.unwrap().partition_key);
    }
    assert_eq!(keys, ["b", "c"]);
    let probes_of_0 = kinesis
        .iterator_requests()
        .iter()
        .filter(|(id, kind, _)| id == "shardId-0" && *kind == ShardIteratorType::AtSequenceNumber)
        .count();
    assert!(probes_of_0 >= 2, "{:?}", kinesis.iterator_requests());
}

#[tokio::test(start_paused = true)]
async fn one_throttled_shard_does_not_stall_the_others() {
    // The first GetRecords is throttled: that shard backs off 200 ms. The other shard's
    // five pages are read meanwhile, not one per backoff (before the fix the source slept
    // out one shard's backoff inline, stalling every shard).
    let kinesis = Kinesis::with(
        vec![
            shard("shardId-0", 0, &["a", "b", "c", "d", "e"]),
            shard("shardId-1", 1, &["f", "g", "h", "i", "j"]),
        ],
        |s| {
            s.page = 1;
            s.faults.insert((Op::GetRecords, 0), Fault::Throttled);
        },
    );
    let config = SourceConfig {
        max_backoff: Duration::from_secs(1),
        ..fast_config()
    };
    let mut source = source_with(&kinesis, Arc::new(MemoryCheckpoints::default()), config).await;
    let mut n = 0;
    while let Some(r) = source.next().await {
        r.unwrap();
        n += 1;
    }
    assert_eq!(n, 10);
    let reads: Vec<(Instant, String)> = kinesis
        .timed_calls()
        .into_iter()
        .filter_map(|(t, c)| match c {
            Call::GetRecords(shard, _) => Some((t, shard)),
            _ => None,
        })
        .collect();
    let (throttled_at, throttled) = reads[0].clone();
    let others: Vec<Instant> = reads
        .iter()
        .filter(|(_, s)| *s != throttled)
        .map(|(t, _)| *t)
        .collect();
    assert_eq!(others.len(), 6, "five pages and the end: {reads:?}");
    let backoff = Duration::from_millis(200);
    assert!(
        others.iter().all(|t| *t < throttled_at + backoff),
        "the other shard waited for the throttled one: {reads:?}"
    );
    // The throttled shard was read again once its backoff was over, not before.
    let again = reads
        .iter()
        .skip(1)
        .find(|(_, s)| *s == throttled)
        .map(|(t, _)| *t);
    assert_eq!(again, Some(throttled_at + backoff));
}

#[tokio::test(start_paused = true)]
async fn a_shard_whose_range_does_not_parse_is_an_error_not_skipped() {
    // Before, the source skipped such a shard: its records were never read, and the
    // source ended as if it had read everything.
    let mut odd = shard("shardId-1", 1, &["c"]);
    odd.bad_range = true;
    let kinesis = Kinesis::new(vec![shard("shardId-0", 0, &["a", "b"]), odd]);
    let mut source = source_with(
        &kinesis,
        Arc::new(MemoryCheckpoints::default()),
        fast_config(),
    )
    .await;
    match source.next().await {
        Some(Err(e)) => assert!(e.to_string().contains("not-a-number"), "{e}"),
        other => panic!("expected an error naming the bad range, got {other:?}"),
    }
}

#[tokio::test(start_paused = true)]
async fn several_shards_read_at_once_each_whole_and_in_order() {
    // The default: up to 8 calls in flight, one per shard. Four shards, pages of one
    // record, one of them throttled twice: each shard's records come whole, once, in
    // order, however the calls interleave.
    let keys: Vec<Vec<String>> = (0..4)
        .map(|s| (0..6).map(|i| format!("s{s}k{i}")).collect())
        .collect();
    let key_refs: Vec<Vec<&str>> = keys
        .iter()
        .map(|k| k.iter().map(String::as_str).collect())
        .collect();
    let ids = ["shardId-0", "shardId-1", "shardId-2", "shardId-3"];
    let shards = (0..4)
        .map(|s| shard(ids[s], s, &key_refs[s]).closed())
        .collect();
    let kinesis = Kinesis::with(shards, |s| {
        s.page = 1;
        s.faults.insert((Op::GetRecords, 2), Fault::Throttled);
        s.faults.insert((Op::GetRecords, 5), Fault::Throttled);
    });
    let config = SourceConfig {
        max_in_flight: SourceConfig::default().max_in_flight,
        ..fast_config()
    };
    assert!(config.max_in_flight > 1);
    let mut source = source_with(&kinesis, Arc::new(MemoryCheckpoints::default()), config).await;
    let records = read_all(&mut source).await;
    for (s, id) in ids.iter().enumerate() {
        let got: Vec<_> = summary(&records)
            .into_iter()
            .filter(|r| r.0 == *id)
            .collect();
        assert_eq!(got, expected(id, s, &key_refs[s], 0..6), "shard {id}");
    }
}

/// An interceptor that panics in the task of the `n`-th GetRecords call (from 0), before
/// the mock sees it (a panic inside the mock's handler would poison its lock).
#[derive(Debug)]
struct PanicOnGetRecords {
    n: usize,
    seen: std::sync::atomic::AtomicUsize,
}

impl aws_sdk_kinesis::config::Intercept for PanicOnGetRecords {
    fn name(&self) -> &'static str {
        "PanicOnGetRecords"
    }

    fn read_before_execution(
        &self,
        context: &aws_sdk_kinesis::config::interceptors::BeforeSerializationInterceptorContextRef<
            '_,
        >,
        _cfg: &mut aws_sdk_kinesis::config::ConfigBag,
    ) -> Result<(), aws_sdk_kinesis::error::BoxError> {
        if context.input().downcast_ref::<GetRecordsInput>().is_some()
            && self.seen.fetch_add(1, std::sync::atomic::Ordering::SeqCst) == self.n
        {
            panic!("scripted panic in a GetRecords task");
        }
        Ok(())
    }
}

#[tokio::test(start_paused = true)]
async fn a_call_that_panics_is_asked_again_not_lost() {
    // The second GetRecords panics inside its task (a bug in the SDK or below): the driver
    // answers it as a retryable failure (the shard backs off, then reads on), so no record
    // is lost or repeated and the source does not hang.
    let kinesis = Kinesis::with(vec![shard(S0, 0, KEYS).closed()], |s| s.page = 2);
    let config = kinesis
        .client
        .config()
        .to_builder()
        .interceptor(PanicOnGetRecords {
            n: 1,
            seen: Default::default(),
        })
        .build();
    let mut source = Source::builder()
        .stream_name(STREAM)
        .client(Client::from_conf(config))
        .config(fast_config())
        .build()
        .await
        .unwrap();
    let records = read_all(&mut source).await;
    assert_eq!(summary(&records), expected(S0, 0, KEYS, 0..5));
    assert_eq!(
        kinesis.get_records_calls(),
        vec![(S0.to_owned(), 0), (S0.to_owned(), 2), (S0.to_owned(), 4)],
        "the panicked page asked again with the same iterator"
    );
}
