//! The driver's retry paths against scripted Kinesis answers: throttling, server errors,
//! per-record throughput errors, non-retryable errors, the record TTL, and request timeouts;
//! and `Sink::put_batch`, which must put exactly as `Sink::put` one record at a time does.
//!
//! Most tests hand the sink a client from `aws-smithy-mocks` (SDK retries off, so that every
//! retry seen is the sink's own) and run on tokio's paused clock: no real socket is
//! involved, time advances only when every task waits on a timer, and the sink reads time
//! through tokio, so backoffs, TTLs and waits are exact virtual durations, whatever the
//! machine's speed or load.
//!
//! The timeout tests need an answer that never comes, which the mocks cannot script: they
//! point a real client at a tiny HTTP server on 127.0.0.1 that leaves the first PutRecords
//! unanswered. Real sockets and a paused clock do not mix (tokio would advance the clock
//! while the socket is waited on), so these run in real time and check which timeout fired
//! by the error code it left (`Timeout` from the SDK, `GuardTimeout` from the sink's own
//! guard), never by how long it took.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_sdk_kinesis::config::retry::RetryConfig;
use aws_sdk_kinesis::config::{BehaviorVersion, Credentials, SharedCredentialsProvider};
use aws_sdk_kinesis::error::ErrorMetadata;
use aws_sdk_kinesis::operation::list_shards::ListShardsOutput;
use aws_sdk_kinesis::operation::put_records::{PutRecordsError, PutRecordsInput, PutRecordsOutput};
use aws_sdk_kinesis::types::error::ProvisionedThroughputExceededException;
use aws_sdk_kinesis::types::{HashKeyRange, PutRecordsResultEntry, SequenceNumberRange, Shard};
use aws_sdk_kinesis::Client;
use aws_smithy_mocks::{mock, mock_client, MockResponse, Rule, RuleMode};
use kpl_kinesis::sink::{
    Config, ErrorInfo, Failure, FailureReason, Outcome, PendingOutcome, Sink, SinkError, Stats,
    Success, UserRecord, GUARD_TIMEOUT,
};
use tokio::time::Instant;

const STREAM: &str = "test-stream";
const SHARD_0: &str = "shardId-000000000000";
const SHARD_1: &str = "shardId-000000000001";
/// Two open shards splitting the key space in halves, as AWS does.
const TWO_SHARDS: &[(&str, u128, u128)] =
    &[(SHARD_0, 0, (1 << 127) - 1), (SHARD_1, 1 << 127, u128::MAX)];
const ONE_SHARD: &[(&str, u128, u128)] = &[(SHARD_0, 0, u128::MAX)];

const THROTTLING_BODY: &str =
    r#"{"__type":"ThrottlingException","message":"Rate exceeded for stream test-stream"}"#;
const THROTTLING_MESSAGE: &str = "Rate exceeded for stream test-stream";
const PTEE: &str = "ProvisionedThroughputExceededException";

type Reply = MockResponse<PutRecordsOutput, PutRecordsError>;

/// A mocked Kinesis client and what it was asked.
struct MockKinesis {
    client: Client,
    /// The entries of each PutRecords call, in order.
    calls: Arc<Mutex<Vec<Vec<Entry>>>>,
    /// The ListShards rule, to count its calls.
    list: Rule,
}

/// A PutRecords entry as the mock saw it: partition key (`"a"` for an aggregate) and the
/// shard its explicit hash key routes to.
type Entry = (String, &'static str);

impl MockKinesis {
    fn calls(&self) -> Vec<Vec<Entry>> {
        self.calls.lock().unwrap().clone()
    }

    /// The partition keys of each call.
    fn keys(&self) -> Vec<Vec<String>> {
        let calls = self.calls();
        calls
            .into_iter()
            .map(|c| c.into_iter().map(|(k, _)| k).collect())
            .collect()
    }
}

/// A client whose ListShards lists `shards` (all open) and whose PutRecords answers are
/// `script(call_index, request)`. The SDK's own retries are off.
fn mock_kinesis(
    shards: &'static [(&'static str, u128, u128)],
    script: impl Fn(usize, &PutRecordsInput) -> Reply + Send + Sync + 'static,
) -> MockKinesis {
    mock_kinesis_with(shards, 0, script)
}

/// [`mock_kinesis`], with ListShards throttled `list_failures` times first.
fn mock_kinesis_with(
    shards: &'static [(&'static str, u128, u128)],
    list_failures: usize,
    script: impl Fn(usize, &PutRecordsInput) -> Reply + Send + Sync + 'static,
) -> MockKinesis {
    let mut list = mock!(Client::list_shards).sequence();
    if list_failures > 0 {
        list = list
            .http_status(400, Some(THROTTLING_BODY.to_owned()))
            .times(list_failures);
    }
    let list = list.output(move || {
        let mut out = ListShardsOutput::builder();
        for &(id, start, end) in shards {
            out = out.shards(
                Shard::builder()
                    .shard_id(id)
                    .hash_key_range(
                        HashKeyRange::builder()
                            .starting_hash_key(start.to_string())
                            .ending_hash_key(end.to_string())
                            .build()
                            .unwrap(),
                    )
                    .sequence_number_range(
                        SequenceNumberRange::builder()
                            .starting_sequence_number(
                                "49500000000000000000000000000000000000000000000000000000",
                            )
                            .build()
                            .unwrap(),
                    )
                    .build()
                    .unwrap(),
            );
        }
        out.build()
    });
    let list = list.repeatedly().build();
    let calls: Arc<Mutex<Vec<Vec<Entry>>>> = Arc::default();
    let log = calls.clone();
    let put = mock!(Client::put_records).then_compute_response(move |input: &PutRecordsInput| {
        let keys: Vec<Entry> = input
            .records()
            .iter()
            .map(|r| {
                let key = r.partition_key().unwrap_or_default().to_owned();
                (key, shard_of(shards, r.explicit_hash_key()))
            })
            .collect();
        let index = {
            let mut log = log.lock().unwrap();
            log.push(keys);
            log.len() - 1
        };
        script(index, input)
    });
    // MatchAny: both rules stay and answer every call (the PutRecords one through `script`).
    let client = mock_client!(aws_sdk_kinesis, RuleMode::MatchAny, &[&list, &put], |b| b
        .retry_config(RetryConfig::disabled()));
    assert_eq!(
        client
            .config()
            .retry_config()
            .map(RetryConfig::max_attempts),
        Some(1),
        "the SDK must not retry on its own"
    );
    MockKinesis {
        client,
        calls,
        list,
    }
}

/// The shard of `shards` holding the entry's explicit hash key (the sink always sets it).
fn shard_of(
    shards: &[(&'static str, u128, u128)],
    explicit_hash_key: Option<&str>,
) -> &'static str {
    let key: u128 = explicit_hash_key
        .expect("the sink sets ExplicitHashKey")
        .parse()
        .unwrap();
    shards
        .iter()
        .find(|&&(_, start, end)| (start..=end).contains(&key))
        .map(|&(id, _, _)| id)
        .unwrap()
}

/// A PutRecords answer: `fail(partition_key)` gives an entry's error code, if it fails.
fn answer(
    shards: &[(&'static str, u128, u128)],
    call: usize,
    input: &PutRecordsInput,
    fail: impl Fn(&str) -> Option<&'static str>,
) -> Reply {
    let mut out = PutRecordsOutput::builder();
    let mut failed = 0;
    for (i, entry) in input.records().iter().enumerate() {
        let result = match fail(entry.partition_key().unwrap_or_default()) {
            Some(code) => {
                failed += 1;
                PutRecordsResultEntry::builder()
                    .error_code(code)
                    .error_message(format!("Rate exceeded for shard in stream {STREAM}."))
                    .build()
            }
            None => PutRecordsResultEntry::builder()
                .shard_id(shard_of(shards, entry.explicit_hash_key()))
                .sequence_number(format!("4950000000000000000000{call:04}{i:04}"))
                .build(),
        };
        out = out.records(result);
    }
    MockResponse::Output(out.failed_record_count(failed).build().unwrap())
}

/// Every entry stored.
fn all_stored(
    shards: &[(&'static str, u128, u128)],
    call: usize,
    input: &PutRecordsInput,
) -> Reply {
    answer(shards, call, input, |_| None)
}

/// An HTTP error answer with a JSON 1.1 error body.
fn http_error(status: u16, body: &str) -> Reply {
    MockResponse::Http(aws_sdk_kinesis::config::http::HttpResponse::new(
        status.try_into().unwrap(),
        aws_smithy_types::body::SdkBody::from(body.to_owned()),
    ))
}

/// Small backoffs and buffering so that tests run in milliseconds.
fn fast_config() -> Config {
    Config {
        record_max_buffered_time: 20,
        retry_backoff_min: 10,
        retry_backoff_max: 20,
        request_timeout: 2_000,
        ..Config::default()
    }
}

async fn sink_with(client: Client, config: Config) -> Sink {
    sink_with_limit(client, config, Duration::from_secs(5)).await
}

/// A sink on `client` that has its first shard map, waited for at most `limit`.
async fn sink_with_limit(client: Client, config: Config, limit: Duration) -> Sink {
    let sink = Sink::builder()
        .stream_name(STREAM)
        .config(config)
        .client(client)
        .build()
        .await
        .unwrap();
    wait_for_shard_map(&sink, limit).await;
    sink
}

/// Waits until the first ListShards answer is installed, so that records are routed (and
/// aggregated) by shard rather than sent alone for want of a map. On the paused clock the
/// mocked answer comes without any time passing; `limit` only turns a sink that never
/// installs a map into a failure rather than a hang.
async fn wait_for_shard_map(sink: &Sink, limit: Duration) {
    assert!(
        sink.wait_for_shard_map(limit).await,
        "no shard map after {limit:?}"
    );
    assert_eq!(sink.stats().shard_maps, 1);
}

/// A record on the given half of the key space (0: low, 1: high).
fn record(key: &str, half: u128) -> UserRecord {
    let hash_key = (half << 127) + 12_345;
    UserRecord::new(key, format!("data of {key}")).with_explicit_hash_key(hash_key.to_string())
}

/// Puts the records, flushes, and returns their outcomes in put order.
async fn put_all(sink: &Sink, records: Vec<UserRecord>) -> Vec<Outcome> {
    let mut pending: Vec<PendingOutcome> = Vec::new();
    for r in records {
        pending.push(sink.put(r).await.unwrap());
    }
    sink.flush().await;
    let mut outcomes = Vec::new();
    for p in pending {
        outcomes.push(p.await);
    }
    outcomes
}

fn success(outcome: &Outcome) -> &Success {
    match outcome {
        Outcome::Success(s) => s,
        Outcome::Failure(f) => panic!("expected success, got {f}"),
    }
}

fn failure(outcome: &Outcome) -> &Failure {
    match outcome {
        Outcome::Failure(f) => f,
        Outcome::Success(s) => panic!("expected failure, got {s:?}"),
    }
}

fn retries(stats: &Stats) -> BTreeMap<&str, u64> {
    stats
        .retries_by_code
        .iter()
        .map(|(k, v)| (k.as_str(), *v))
        .collect()
}

/// Four records, two per shard: two aggregates, one PutRecords of two entries.
fn four_records() -> Vec<UserRecord> {
    vec![
        record("a", 0),
        record("b", 1),
        record("c", 0),
        record("d", 1),
    ]
}

/// How many calls carried an entry for `shard`.
fn calls_to(calls: &[Vec<Entry>], shard: &str) -> u32 {
    calls
        .iter()
        .filter(|c| c.iter().any(|(_, s)| *s == shard))
        .count() as u32
}

/// Checks that the four records of [`four_records`] were stored in two aggregates, each
/// on its shard, each after `attempts` attempts; the first call carried both aggregates.
fn assert_four_stored(outcomes: &[Outcome], stats: &Stats, calls: &[Vec<Entry>], attempts: u32) {
    assert_eq!(outcomes.len(), 4);
    for (outcome, shard) in outcomes.iter().zip([SHARD_0, SHARD_1, SHARD_0, SHARD_1]) {
        let s = success(outcome);
        assert_eq!(s.attempts, attempts, "{s:?}");
        assert_eq!(&*s.shard_id, shard);
        assert!(s.aggregated);
    }
    let aggregates = vec![("a".to_owned(), SHARD_0), ("a".to_owned(), SHARD_1)];
    assert_eq!(calls[0], aggregates, "{calls:?}");
    // Each aggregate went `attempts` times, once per call at most (the retries of one
    // failed call may be spread over several calls).
    for shard in [SHARD_0, SHARD_1] {
        assert_eq!(calls_to(calls, shard), attempts, "{shard}: {calls:?}");
    }
    let entries: usize = calls.iter().map(Vec::len).sum();
    assert_eq!(entries, 2 * attempts as usize, "{calls:?}");
    assert_eq!(stats.put_records_calls, calls.len() as u64);
    assert_eq!(stats.kinesis_records_sent, 2 * u64::from(attempts));
    assert_eq!(stats.kinesis_records_stored, 2);
    assert_eq!(stats.user_records_stored, 4);
    assert_eq!(stats.user_records_failed, 0);
}

#[tokio::test(start_paused = true)]
async fn whole_request_throttling_is_retried_then_succeeds() {
    let mock = mock_kinesis(TWO_SHARDS, |call, input| match call {
        0 => http_error(400, THROTTLING_BODY),
        _ => all_stored(TWO_SHARDS, call, input),
    });
    let sink = sink_with(mock.client.clone(), fast_config()).await;
    let outcomes = put_all(&sink, four_records()).await;
    let stats = sink.stats();
    assert_four_stored(&outcomes, &stats, &mock.calls(), 2);
    // A whole-request failure counts once, however many Kinesis records it carried.
    assert_eq!(
        retries(&stats),
        BTreeMap::from([("ThrottlingException", 1)])
    );
    assert_eq!(stats.shard_maps, 1);
    sink.shutdown(Duration::from_secs(1)).await;
}

/// An interceptor that panics in the first PutRecords call's task, before the mock sees
/// the call (a panic inside the mock's own handler would poison its lock).
#[derive(Debug, Default)]
struct PanicOnFirstPut(std::sync::atomic::AtomicBool);

impl aws_sdk_kinesis::config::Intercept for PanicOnFirstPut {
    fn name(&self) -> &'static str {
        "PanicOnFirstPut"
    }

    fn read_before_execution(
        &self,
        context: &aws_sdk_kinesis::config::interceptors::BeforeSerializationInterceptorContextRef<
            '_,
        >,
        _cfg: &mut aws_sdk_kinesis::config::ConfigBag,
    ) -> Result<(), aws_sdk_kinesis::error::BoxError> {
        let put = context.input().downcast_ref::<PutRecordsInput>().is_some();
        if put && !self.0.swap(true, std::sync::atomic::Ordering::SeqCst) {
            panic!("scripted panic in the first PutRecords task");
        }
        Ok(())
    }
}

#[tokio::test(start_paused = true)]
async fn a_request_task_that_panics_is_retried_not_left_in_flight() {
    // The first PutRecords panics inside its task (a bug in the SDK or the HTTP stack).
    // Before the fix its records stayed in flight in the core for ever: `flush` never
    // returned. Now the failed task is mapped back to its request, whose records are
    // retried (the request may have reached Kinesis: at-least-once).
    let mock = mock_kinesis(TWO_SHARDS, |call, input| {
        all_stored(TWO_SHARDS, call, input)
    });
    let config = mock
        .client
        .config()
        .to_builder()
        .interceptor(PanicOnFirstPut::default())
        .build();
    let client = Client::from_conf(config);
    let sink = sink_with(client, fast_config()).await;
    let outcomes = tokio::time::timeout(Duration::from_secs(60), put_all(&sink, four_records()))
        .await
        .expect("flush hung: the panicked request's records never got an outcome");
    for outcome in &outcomes {
        // Handed out twice: the panicked request and its retry.
        assert_eq!(success(outcome).attempts, 2);
    }
    let stats = sink.stats();
    assert_eq!(retries(&stats), BTreeMap::from([("TaskFailed", 1)]));
    assert_eq!(stats.put_records_calls, 2);
    // Only the retry reached the (mock) stream.
    assert_eq!(mock.calls().len(), 1);
    assert_eq!(stats.user_records_stored, 4);
    sink.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test(start_paused = true)]
async fn modeled_throughput_error_on_whole_request_is_retried() {
    let mock = mock_kinesis(TWO_SHARDS, |call, input| match call {
        0 => MockResponse::Error(PutRecordsError::ProvisionedThroughputExceededException(
            ProvisionedThroughputExceededException::builder()
                .message("Rate exceeded")
                .meta(
                    ErrorMetadata::builder()
                        .code(PTEE)
                        .message("Rate exceeded")
                        .build(),
                )
                .build(),
        )),
        _ => all_stored(TWO_SHARDS, call, input),
    });
    let sink = sink_with(mock.client.clone(), fast_config()).await;
    let outcomes = put_all(&sink, four_records()).await;
    let stats = sink.stats();
    assert_four_stored(&outcomes, &stats, &mock.calls(), 2);
    assert_eq!(retries(&stats), BTreeMap::from([(PTEE, 1)]));
    sink.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test(start_paused = true)]
async fn http_500_is_retried_then_succeeds() {
    let mock = mock_kinesis(TWO_SHARDS, |call, input| match call {
        0 => http_error(
            500,
            r#"{"__type":"InternalFailure","message":"Internal service failure."}"#,
        ),
        _ => all_stored(TWO_SHARDS, call, input),
    });
    let sink = sink_with(mock.client.clone(), fast_config()).await;
    let outcomes = put_all(&sink, four_records()).await;
    let stats = sink.stats();
    assert_four_stored(&outcomes, &stats, &mock.calls(), 2);
    assert_eq!(retries(&stats), BTreeMap::from([("InternalFailure", 1)]));
    sink.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test(start_paused = true)]
async fn http_503_is_retried_by_status_or_as_unreadable() {
    let mock = mock_kinesis(ONE_SHARD, |call, input| match call {
        // A code the classifier does not know: the status says it is transient.
        0 => http_error(
            503,
            r#"{"__type":"SomeNewServerError","message":"Try again."}"#,
        ),
        // No code at all: the SDK calls it a response error, transient too.
        1 => http_error(503, ""),
        _ => all_stored(ONE_SHARD, call, input),
    });
    let sink = sink_with(mock.client.clone(), fast_config()).await;
    let outcomes = put_all(&sink, vec![record("a", 0), record("b", 1)]).await;
    for outcome in &outcomes {
        let s = success(outcome);
        assert_eq!((s.attempts, &*s.shard_id, s.aggregated), (3, SHARD_0, true));
    }
    assert_eq!(mock.keys(), [["a"], ["a"], ["a"]]);
    let stats = sink.stats();
    assert_eq!(stats.put_records_calls, 3);
    assert_eq!(
        retries(&stats),
        BTreeMap::from([("ResponseError", 1), ("SomeNewServerError", 1)])
    );
    sink.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test(start_paused = true)]
async fn per_record_throughput_error_retries_only_that_record() {
    let mock = mock_kinesis(ONE_SHARD, |call, input| match call {
        0 => answer(ONE_SHARD, call, input, |key| (key == "b").then_some(PTEE)),
        _ => all_stored(ONE_SHARD, call, input),
    });
    // Each user record its own Kinesis record, so that one entry can fail alone.
    let config = Config {
        aggregation_enabled: false,
        ..fast_config()
    };
    let sink = sink_with(mock.client.clone(), config).await;
    let records = vec![record("a", 0), record("b", 0), record("c", 1)];
    let outcomes = put_all(&sink, records).await;
    let attempts: Vec<u32> = outcomes.iter().map(|o| success(o).attempts).collect();
    assert_eq!(attempts, [1, 2, 1]);
    for outcome in &outcomes {
        let s = success(outcome);
        assert!(!s.aggregated);
        assert_eq!(&*s.shard_id, SHARD_0);
    }
    assert_eq!(mock.keys(), [vec!["a", "b", "c"], vec!["b"]]);
    let stats = sink.stats();
    assert_eq!(retries(&stats), BTreeMap::from([(PTEE, 1)]));
    assert_eq!(stats.put_records_calls, 2);
    assert_eq!(stats.kinesis_records_sent, 4);
    assert_eq!(stats.kinesis_records_stored, 3);
    assert_eq!(stats.user_records_stored, 3);
    sink.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test(start_paused = true)]
async fn non_retryable_request_error_rejects_every_record_at_once() {
    for (code, message) in [
        (
            "ResourceNotFoundException",
            "Stream test-stream under account 123456789012 not found.",
        ),
        (
            "AccessDeniedException",
            "User is not authorized to perform: kinesis:PutRecords",
        ),
    ] {
        let body = format!(r#"{{"__type":"{code}","message":"{message}"}}"#);
        let mock = mock_kinesis(TWO_SHARDS, move |_, _| http_error(400, &body));
        let sink = sink_with(mock.client.clone(), fast_config()).await;
        let outcomes = put_all(&sink, four_records()).await;
        let expected = FailureReason::Rejected(ErrorInfo {
            code: code.into(),
            message: message.into(),
        });
        for outcome in &outcomes {
            let f = failure(outcome);
            assert_eq!(f.reason, expected);
            assert_eq!(f.attempts, 1);
        }
        assert_eq!(mock.calls().len(), 1, "{code}: no retry");
        let stats = sink.stats();
        assert!(stats.retries_by_code.is_empty(), "{stats:?}");
        assert_eq!(stats.put_records_calls, 1);
        assert_eq!(
            (stats.user_records_failed, stats.user_records_stored),
            (4, 0)
        );
        sink.shutdown(Duration::from_secs(1)).await;
    }
}

#[tokio::test(start_paused = true)]
async fn persistent_throttling_expires_with_the_last_error() {
    let mock = mock_kinesis(TWO_SHARDS, |_, _| http_error(400, THROTTLING_BODY));
    let config = Config {
        record_ttl: 300,
        retry_backoff_min: 20,
        retry_backoff_max: 40,
        ..fast_config()
    };
    let sink = sink_with(mock.client.clone(), config).await;
    let started = Instant::now();
    let outcomes = put_all(&sink, four_records()).await;
    let elapsed = started.elapsed();
    let expected = FailureReason::Expired(Some(ErrorInfo {
        code: "ThrottlingException".into(),
        message: THROTTLING_MESSAGE.into(),
    }));
    let calls = mock.calls();
    for (outcome, shard) in outcomes.iter().zip([SHARD_0, SHARD_1, SHARD_0, SHARD_1]) {
        let f = failure(outcome);
        assert_eq!(f.reason, expected);
        // Every call to its shard carried it. The first backoff is 10 to 20 ms, the next
        // ones 20 to 40 ms (jitter in the upper half of 20 and 40): within 300 ms of
        // virtual time, at least 1 + 1 + 6 attempts (20 + 6 x 40 < 300) and at most
        // 1 + 1 + 14 (10 + 14 x 20 < 300 <= 10 + 15 x 20).
        assert_eq!(f.attempts, calls_to(&calls, shard));
        assert!(
            (8..=16).contains(&f.attempts),
            "{} attempts in 300 ms",
            f.attempts
        );
    }
    // The put, the flush and the answers take no virtual time: the records expired at
    // their TTL exactly, neither before nor at some later retry.
    assert_eq!(
        elapsed,
        Duration::from_millis(300),
        "expired after {elapsed:?}"
    );
    let stats = sink.stats();
    assert_eq!(stats.put_records_calls, calls.len() as u64);
    // Every request was throttled as a whole and counted once as a retry.
    let entries: u64 = calls.iter().map(|c| c.len() as u64).sum();
    assert_eq!(stats.kinesis_records_sent, entries);
    assert_eq!(
        retries(&stats),
        BTreeMap::from([("ThrottlingException", calls.len() as u64)])
    );
    assert_eq!(
        (stats.user_records_failed, stats.user_records_stored),
        (4, 0)
    );
    assert_eq!(stats.kinesis_records_stored, 0);
    sink.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test(start_paused = true)]
async fn list_shards_throttling_is_retried_and_records_still_go_out() {
    let mock = mock_kinesis_with(TWO_SHARDS, 1, |call, input| {
        all_stored(TWO_SHARDS, call, input)
    });
    let sink = Sink::builder()
        .stream_name(STREAM)
        .config(fast_config())
        .client(mock.client.clone())
        .build()
        .await
        .unwrap();
    // No shard map yet (the first ListShards was throttled, the next one comes after a
    // backoff): flushed records go out alone, which is always shard-safe.
    let early = put_all(&sink, vec![record("a", 0), record("b", 1)]).await;
    for (outcome, shard) in early.iter().zip([SHARD_0, SHARD_1]) {
        let s = success(outcome);
        assert_eq!((s.attempts, &*s.shard_id, s.aggregated), (1, shard, false));
    }
    assert_eq!(sink.stats().shard_maps, 0);
    // The retry comes after the driver's ListShards backoff (200 ms after a first
    // failure), in virtual time.
    let before_map = Instant::now();
    wait_for_shard_map(&sink, Duration::from_secs(5)).await;
    assert_eq!(before_map.elapsed(), Duration::from_millis(200));
    assert_eq!(
        mock.list.num_calls(),
        2,
        "one throttled ListShards, one retry"
    );
    let late = put_all(&sink, four_records()).await;
    for outcome in &late {
        let s = success(outcome);
        assert_eq!((s.attempts, s.aggregated), (1, true));
    }
    let stats = sink.stats();
    assert_eq!(stats.shard_maps, 1);
    // ListShards failures are not record retries.
    assert!(stats.retries_by_code.is_empty(), "{stats:?}");
    assert_eq!(stats.user_records_stored, 6);
    sink.shutdown(Duration::from_secs(1)).await;
}

// ---- timeouts, against a local HTTP server ----

const LIST_SHARDS_JSON: &str = r#"{"Shards":[{"ShardId":"shardId-000000000000","HashKeyRange":{"StartingHashKey":"0","EndingHashKey":"340282366920938463463374607431768211455"},"SequenceNumberRange":{"StartingSequenceNumber":"49500000000000000000000000000000000000000000000000000000"}}]}"#;

/// A minimal Kinesis (JSON 1.1 over HTTP/1.1) on 127.0.0.1: lists one shard and stores
/// every PutRecords entry, except that it never answers the first PutRecords.
struct HangingKinesis {
    addr: SocketAddr,
    /// PutRecords requests received (the unanswered one included).
    puts: Arc<AtomicUsize>,
}

impl HangingKinesis {
    fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let puts = Arc::new(AtomicUsize::new(0));
        let counter = puts.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                let counter = counter.clone();
                std::thread::spawn(move || serve(stream, &counter));
            }
        });
        HangingKinesis { addr, puts }
    }
}

/// One request: the `X-Amz-Target` header and the body; `None` once the peer closed.
fn read_request(stream: &mut TcpStream, buf: &mut Vec<u8>) -> Option<(String, Vec<u8>)> {
    let mut chunk = [0u8; 4096];
    let header_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let n = stream.read(&mut chunk).ok().filter(|&n| n > 0)?;
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..header_end]).into_owned();
    let header = |name: &str| {
        head.lines().find_map(|line| {
            let (k, v) = line.split_once(':')?;
            k.trim()
                .eq_ignore_ascii_case(name)
                .then(|| v.trim().to_owned())
        })
    };
    let length: usize = header("content-length").map_or(0, |v| v.parse().unwrap());
    let target = header("x-amz-target").unwrap_or_default();
    while buf.len() < header_end + length {
        let n = stream.read(&mut chunk).ok().filter(|&n| n > 0)?;
        buf.extend_from_slice(&chunk[..n]);
    }
    let body = buf[header_end..header_end + length].to_vec();
    buf.drain(..header_end + length);
    Some((target, body))
}

fn serve(mut stream: TcpStream, puts: &AtomicUsize) {
    let mut buf = Vec::new();
    while let Some((target, body)) = read_request(&mut stream, &mut buf) {
        let (status, reply) = match target.as_str() {
            "Kinesis_20131202.ListShards" => (200, LIST_SHARDS_JSON.to_owned()),
            "Kinesis_20131202.PutRecords" => {
                if puts.fetch_add(1, Ordering::SeqCst) == 0 {
                    // Never answer; hold the connection until the client drops it.
                    let mut sink = [0u8; 1024];
                    while matches!(stream.read(&mut sink), Ok(n) if n > 0) {}
                    return;
                }
                let request: serde_json::Value = serde_json::from_slice(&body).unwrap();
                let n = request["Records"].as_array().map_or(0, Vec::len);
                let records: Vec<serde_json::Value> = (0..n)
                    .map(|i| {
                        serde_json::json!({
                            "ShardId": SHARD_0,
                            "SequenceNumber": format!("49500000000000000000000000{i:04}"),
                        })
                    })
                    .collect();
                let reply = serde_json::json!({"FailedRecordCount": 0, "Records": records});
                (200, reply.to_string())
            }
            other => (
                400,
                format!(r#"{{"__type":"UnknownOperationException","message":"{other}"}}"#),
            ),
        };
        let response = format!(
            "HTTP/1.1 {status} {}\r\nContent-Type: application/x-amz-json-1.1\r\nContent-Length: {}\r\nx-amzn-RequestId: test\r\n\r\n{reply}",
            if status == 200 { "OK" } else { "Bad Request" },
            reply.len(),
        );
        if stream.write_all(response.as_bytes()).is_err() {
            return;
        }
    }
}

/// Fake static credentials for the local server.
fn local_sdk_config() -> aws_config::SdkConfig {
    aws_config::SdkConfig::builder()
        .behavior_version(BehaviorVersion::latest())
        .credentials_provider(SharedCredentialsProvider::new(Credentials::new(
            "AKIDTEST", "secret", None, None, "test",
        )))
        .build()
}

/// The local server's ListShards answer can take long on a loaded machine; real time, so
/// the limit is generous (it only turns a sink without a map into a failure, not a hang).
const REAL_TIME_MAP_LIMIT: Duration = Duration::from_secs(60);

/// [`put_all`] in real time, failing rather than hanging if the outcomes never come (as
/// they would not if no timeout fired); far beyond what any working run takes.
async fn put_all_within_a_minute(sink: &Sink, records: Vec<UserRecord>) -> Vec<Outcome> {
    tokio::time::timeout(Duration::from_secs(60), put_all(sink, records))
        .await
        .expect("no outcomes after a minute: no timeout fired")
}

// Real time (no paused clock): a real socket is involved. Nothing is bounded from above.
#[tokio::test]
async fn request_timeout_is_retried_then_succeeds() {
    let server = HangingKinesis::start();
    let config = Config {
        kinesis_endpoint: format!("http://{}", server.addr),
        region: "us-east-1".into(),
        request_timeout: 2_000,
        ..fast_config()
    };
    // The sink's own client: SDK retries off, RequestTimeout as the attempt timeout.
    let sink = Sink::builder()
        .stream_name(STREAM)
        .config(config)
        .sdk_config(local_sdk_config())
        .build()
        .await
        .unwrap();
    wait_for_shard_map(&sink, REAL_TIME_MAP_LIMIT).await;
    let started = Instant::now();
    let outcomes = put_all_within_a_minute(&sink, vec![record("a", 0), record("b", 1)]).await;
    let elapsed = started.elapsed();
    for outcome in &outcomes {
        let s = success(outcome);
        assert_eq!((s.attempts, &*s.shard_id, s.aggregated), (2, SHARD_0, true));
    }
    assert_eq!(
        server.puts.load(Ordering::SeqCst),
        2,
        "one unanswered, one retry"
    );
    let stats = sink.stats();
    // The SDK's 2 s attempt timeout fired (code `Timeout`), not the driver's
    // RequestTimeout + 1 s guard (which would have left `GuardTimeout`): told by the code,
    // not by the time taken, which a loaded machine can stretch.
    assert_eq!(retries(&stats), BTreeMap::from([("Timeout", 1)]));
    assert_eq!(stats.put_records_calls, 2);
    assert_eq!(stats.user_records_stored, 2);
    // By construction: the first attempt was never answered, so the records could not be
    // stored before its 2 s timeout.
    assert!(elapsed >= Duration::from_millis(2_000), "{elapsed:?}");
    sink.shutdown(Duration::from_secs(10)).await;
}

// Real time (no paused clock): a real socket is involved. Nothing is bounded from above.
#[tokio::test]
async fn guard_times_out_a_call_on_a_client_without_attempt_timeout() {
    let server = HangingKinesis::start();
    // A client given to the sink as is, with no attempt timeout (and no SDK retries): only
    // the driver's guard, RequestTimeout + 1 s, ends the unanswered PutRecords.
    let conf = aws_sdk_kinesis::config::Builder::from(&local_sdk_config())
        .region(aws_sdk_kinesis::config::Region::from_static("us-east-1"))
        .endpoint_url(format!("http://{}", server.addr))
        .retry_config(RetryConfig::disabled())
        .build();
    assert_eq!(
        conf.timeout_config()
            .and_then(|t| t.operation_attempt_timeout()),
        None,
        "the client must not time out on its own"
    );
    let config = Config {
        request_timeout: 2_000,
        ..fast_config()
    };
    let sink = sink_with_limit(Client::from_conf(conf), config, REAL_TIME_MAP_LIMIT).await;
    let started = Instant::now();
    let outcomes = put_all_within_a_minute(&sink, vec![record("a", 0), record("b", 1)]).await;
    let elapsed = started.elapsed();
    for outcome in &outcomes {
        let s = success(outcome);
        assert_eq!((s.attempts, &*s.shard_id, s.aggregated), (2, SHARD_0, true));
    }
    assert_eq!(server.puts.load(Ordering::SeqCst), 2);
    let stats = sink.stats();
    assert_eq!(retries(&stats), BTreeMap::from([(GUARD_TIMEOUT, 1)]));
    assert_eq!(stats.user_records_stored, 2);
    // By construction: nothing but the guard's 3 s could end the first attempt.
    assert!(elapsed >= Duration::from_millis(3_000), "{elapsed:?}");
    sink.shutdown(Duration::from_secs(10)).await;
}

/// The shard of [`TWO_SHARDS`] a partition key routes to, from its MD5 (md-5, not the
/// sink's multi-lane hashing), read as a big-endian 128-bit number.
fn shard_of_partition_key(key: &str) -> &'static str {
    use md5::{Digest, Md5};
    let hash = u128::from_be_bytes(Md5::digest(key.as_bytes()).into());
    if hash < 1 << 127 {
        SHARD_0
    } else {
        SHARD_1
    }
}

/// Records routed by partition key (no explicit hash key), 40 of them (more than a SIMD
/// batch of 16 lanes, so that several kernel passes and a remainder run), one of them
/// invalid (an empty partition key) and one with an explicit hash key among them.
fn keyed_records() -> Vec<UserRecord> {
    (0..40)
        .map(|i| match i {
            7 => UserRecord::new("", "no key"),
            23 => record("explicit", 1),
            _ => UserRecord::new(format!("key-{i}"), format!("data {i}")),
        })
        .collect()
}

#[tokio::test(start_paused = true)]
async fn put_batch_puts_exactly_as_put_does_one_by_one() {
    let outcomes = {
        let mock = mock_kinesis(TWO_SHARDS, |call, input| {
            all_stored(TWO_SHARDS, call, input)
        });
        let sink = sink_with(mock.client.clone(), fast_config()).await;
        let results = sink.put_batch(keyed_records()).await;
        assert_eq!(results.len(), 40);
        let mut outcomes = Vec::new();
        for (i, result) in results.into_iter().enumerate() {
            match result {
                Ok(p) => outcomes.push(Some(p)),
                Err(SinkError::Invalid(_)) if i == 7 => outcomes.push(None),
                Err(e) => panic!("record {i}: {e}"),
            }
        }
        sink.flush().await;
        let mut settled = Vec::new();
        for p in outcomes {
            settled.push(match p {
                Some(p) => Some(p.await),
                None => None,
            });
        }
        sink.shutdown(Duration::from_secs(1)).await;
        settled
    };
    // The same records put one by one, on a sink of their own.
    let mock = mock_kinesis(TWO_SHARDS, |call, input| {
        all_stored(TWO_SHARDS, call, input)
    });
    let sink = sink_with(mock.client.clone(), fast_config()).await;
    let mut one_by_one = Vec::new();
    for r in keyed_records() {
        one_by_one.push(sink.put(r).await.ok());
    }
    sink.flush().await;
    for (i, (batch, single)) in outcomes.iter().zip(one_by_one).enumerate() {
        let single = match single {
            Some(p) => Some(p.await),
            None => None,
        };
        let shard = |o: &Option<Outcome>| o.as_ref().map(|o| success(o).shard_id.to_string());
        assert_eq!(shard(batch), shard(&single), "record {i}");
        let expected = match i {
            7 => None,
            23 => Some(SHARD_1.to_owned()),
            _ => Some(shard_of_partition_key(&format!("key-{i}")).to_owned()),
        };
        assert_eq!(shard(batch), expected, "record {i}");
    }
    sink.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test(start_paused = true)]
async fn put_batch_until_hands_back_in_order_what_found_no_room() {
    // Nothing is ever stored: the two records the buffer holds stay until their TTL.
    let mock = mock_kinesis(TWO_SHARDS, |_, _| http_error(400, THROTTLING_BODY));
    let config = Config {
        max_buffered_records: 2,
        record_ttl: 10_000,
        ..fast_config()
    };
    let sink = sink_with(mock.client.clone(), config).await;
    let records: Vec<UserRecord> = (0..5)
        .map(|i| UserRecord::new(format!("key-{i}"), "x"))
        .collect();
    let started = Instant::now();
    let deadline = started + Duration::from_millis(500);
    let results = sink.put_batch_until(records, Some(deadline)).await;
    // It waited for room until the deadline, and no longer.
    assert_eq!(started.elapsed(), Duration::from_millis(500));
    let mut pending = Vec::new();
    for (i, result) in results.into_iter().enumerate() {
        match (i, result) {
            (0 | 1, Ok(p)) => pending.push(p),
            (2.., Err(SinkError::Full(back))) => assert_eq!(back.partition_key, format!("key-{i}")),
            (i, Ok(_)) => panic!("record {i} was put beyond the buffer's two records"),
            (i, Err(e)) => panic!("record {i}: {e}"),
        }
    }
    assert_eq!(sink.stats().user_records_put, 2);
    for p in pending {
        let f = failure(&p.await).clone();
        assert!(matches!(f.reason, FailureReason::Expired(_)), "{f}");
    }
    // Room came back with the outcomes: the rest goes in now, without waiting.
    let now = Instant::now();
    let again = sink
        .put_batch_until(vec![UserRecord::new("key-2", "x")], Some(now))
        .await;
    assert!(matches!(again.as_slice(), [Ok(_)]));
    sink.shutdown(Duration::from_secs(1)).await;
}
