//! The tokio + `aws-sdk-kinesis` shell around [`Core`]: one background task that lists
//! shards, sends the PutRecords requests the core hands out and feeds their answers back.
//! Every decision (aggregation, batching, rate limits, retries, reshards) is the core's.

use core::fmt;
use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use aws_sdk_kinesis::types::PutRecordsRequestEntry;
use aws_sdk_kinesis::Client;
use aws_smithy_types::retry::RetryConfig;
use aws_smithy_types::Blob;
use tokio::sync::{oneshot, Notify};
use tokio::task::JoinSet;

use crate::aws::{self, with_stream, ClientSettings, Stream};

use super::{
    Config, ConfigError, Core, EntryResult, ErrorInfo, Failure, FailureReason, Outcome, PutError,
    RecordId, RequestFailure, RequestId, ShardInfo, Stats, Transmit, UserRecord, GUARD_TIMEOUT,
};

/// Puts a record into the core (its partition key's hash key given if already computed)
/// and registers the waiter of its outcome; [`SinkError::Full`] hands it back.
fn admit(
    state: &mut State,
    record: UserRecord,
    hash_key: Option<u128>,
    now: Instant,
) -> Result<PendingOutcome, SinkError> {
    if state.closed {
        return Err(SinkError::Closed);
    }
    match state.core.put_keyed(record, hash_key, now) {
        Ok(id) => {
            let (tx, rx) = oneshot::channel();
            state.waiters.insert(id, tx);
            Ok(PendingOutcome { id, rx })
        }
        Err(PutError::Full(record)) => Err(SinkError::Full(record)),
        Err(PutError::Invalid(e)) => Err(SinkError::Invalid(e)),
    }
}

/// The time, read through tokio's clock (which is the system's monotonic clock, unless a
/// test paused it: then time advances only when every task waits on a timer, and
/// timing is exact), as the `std::time::Instant` the core takes.
fn tokio_now() -> Instant {
    tokio::time::Instant::now().into_std()
}

/// Why the sink could not be built or could not take a record.
#[derive(Debug)]
pub enum SinkError {
    /// A setting is out of range.
    Config(ConfigError),
    /// Neither a stream name nor an ARN was given.
    NoStream,
    /// The record is invalid; it will never be accepted.
    Invalid(kpl_codec::EncodeError),
    /// `try_put` and `put_batch_until` only: the buffer is full; the record is handed back.
    Full(UserRecord),
    /// The sink is shutting down or shut down.
    Closed,
}

impl fmt::Display for SinkError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SinkError::Config(e) => write!(f, "invalid sink configuration: {e}"),
            SinkError::NoStream => f.write_str("no stream name or ARN given"),
            SinkError::Invalid(e) => write!(f, "invalid record: {e}"),
            SinkError::Full(_) => f.write_str("sink buffer full"),
            SinkError::Closed => f.write_str("sink is shut down"),
        }
    }
}

impl std::error::Error for SinkError {}

/// Builds a [`Sink`]; see [`Sink::builder`].
#[derive(Debug, Default)]
pub struct SinkBuilder {
    stream: Option<Stream>,
    config: Config,
    client: Option<Client>,
    sdk_config: Option<aws_config::SdkConfig>,
}

impl SinkBuilder {
    /// The stream, by name.
    pub fn stream_name(mut self, name: impl Into<String>) -> Self {
        self.stream = Some(Stream::Name(name.into()));
        self
    }

    /// The stream, by ARN.
    pub fn stream_arn(mut self, arn: impl Into<String>) -> Self {
        self.stream = Some(Stream::Arn(arn.into()));
        self
    }

    /// The settings (region and endpoint included).
    pub fn config(mut self, config: Config) -> Self {
        self.config = config;
        self
    }

    /// An AWS configuration to start from instead of the standard chain (credentials,
    /// region); `Region` and `KinesisEndpoint` in [`Config`] still override it.
    pub fn sdk_config(mut self, sdk_config: aws_config::SdkConfig) -> Self {
        self.sdk_config = Some(sdk_config);
        self
    }

    /// A ready Kinesis client, used as is (for tests with scripted responses). The SDK's
    /// own retries should be off: the sink retries, within `RecordTtl`.
    pub fn client(mut self, client: Client) -> Self {
        self.client = Some(client);
        self
    }

    /// Validates the settings, loads AWS credentials and region from the standard chain
    /// (unless given), and starts the background task on the current tokio runtime.
    pub async fn build(self) -> Result<Sink, SinkError> {
        self.config.validate().map_err(SinkError::Config)?;
        let stream = self.stream.ok_or(SinkError::NoStream)?;
        let client = match self.client {
            Some(client) => client,
            None => {
                // No SDK retries: the core retries, within RecordTtl.
                aws::client(ClientSettings {
                    sdk_config: self.sdk_config,
                    region: self.config.region.clone(),
                    endpoint: self.config.kinesis_endpoint.clone(),
                    retry: RetryConfig::disabled(),
                    attempt_timeout: Some(Duration::from_millis(self.config.request_timeout)),
                })
                .await
            }
        };
        let now = tokio_now();
        let core = Core::new(self.config.clone(), now).map_err(SinkError::Config)?;
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                core,
                waiters: BTreeMap::new(),
                closed: false,
            }),
            wake: Notify::new(),
            room: Notify::new(),
            progress: Notify::new(),
        });
        let request_timeout = Duration::from_millis(self.config.request_timeout);
        let task = tokio::spawn(run(shared.clone(), client, stream, request_timeout));
        Ok(Sink {
            shared,
            task: Mutex::new(Some(task)),
        })
    }
}

struct State {
    core: Core,
    waiters: BTreeMap<RecordId, oneshot::Sender<Outcome>>,
    closed: bool,
}

struct Shared {
    state: Mutex<State>,
    /// Wakes the background task (a put, a flush, a shutdown).
    wake: Notify,
    /// Signalled when outcomes freed buffer room.
    room: Notify,
    /// Signalled whenever outcomes were delivered.
    progress: Notify,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave the core half-updated in a way that
        // matters more than losing the sink; keep going with the data.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// A Kinesis sink: aggregates like Java KPL per shard, sends PutRecords, retries, and
/// reports exactly one [`Outcome`] per record.
///
/// ```no_run
/// use kpl_kinesis::sink::{Config, Sink, UserRecord};
/// # async fn example() -> Result<(), Box<dyn std::error::Error>> {
/// let config = Config { kinesis_endpoint: "http://127.0.0.1:4568".into(), ..Config::default() };
/// let sink = Sink::builder().stream_name("logs").config(config).build().await?;
/// let pending = sink.put(UserRecord::new("host-1", b"hello".to_vec())).await?;
/// sink.flush().await;
/// let outcome = pending.await;
/// assert!(outcome.is_success());
/// sink.shutdown(std::time::Duration::from_secs(30)).await;
/// # Ok(()) }
/// ```
pub struct Sink {
    shared: Arc<Shared>,
    task: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl fmt::Debug for Sink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sink").finish_non_exhaustive()
    }
}

/// The outcome of one put record, to await.
#[derive(Debug)]
pub struct PendingOutcome {
    id: RecordId,
    rx: oneshot::Receiver<Outcome>,
}

impl PendingOutcome {
    /// The record's id in the sink.
    pub fn id(&self) -> RecordId {
        self.id
    }

    /// The outcome if it is decided, without waiting (then this must not be polled
    /// again); `None` while the record is still buffered or in flight. Lets a producer drop
    /// settled outcomes as it goes, so that what it keeps is bounded by the sink's buffer.
    pub fn try_outcome(&mut self) -> Option<Outcome> {
        match self.rx.try_recv() {
            Ok(outcome) => Some(outcome),
            Err(oneshot::error::TryRecvError::Empty) => None,
            Err(oneshot::error::TryRecvError::Closed) => Some(Outcome::Failure(Failure {
                reason: FailureReason::Shutdown,
                attempts: 0,
            })),
        }
    }
}

impl Future for PendingOutcome {
    type Output = Outcome;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Outcome> {
        Pin::new(&mut self.rx).poll(cx).map(|r| {
            r.unwrap_or(Outcome::Failure(Failure {
                reason: FailureReason::Shutdown,
                attempts: 0,
            }))
        })
    }
}

impl Sink {
    /// Starts building a sink.
    pub fn builder() -> SinkBuilder {
        SinkBuilder::default()
    }

    /// Puts a record, waiting while the buffer is full (backpressure). Resolves once the
    /// sink holds the record, with a future of its outcome.
    pub async fn put(&self, record: UserRecord) -> Result<PendingOutcome, SinkError> {
        let mut record = record;
        loop {
            let room = self.shared.room.notified();
            tokio::pin!(room);
            room.as_mut().enable();
            match self.try_put(record) {
                Err(SinkError::Full(back)) => record = back,
                other => return other,
            }
            room.await;
        }
    }

    /// Puts a record if there is room now; [`SinkError::Full`] hands it back otherwise.
    pub fn try_put(&self, record: UserRecord) -> Result<PendingOutcome, SinkError> {
        let put = admit(&mut self.shared.lock(), record, None, tokio_now());
        if put.is_ok() {
            self.shared.wake.notify_one();
        }
        put
    }

    /// Puts each record in order as [`Sink::put`] would, waiting while the buffer is full,
    /// with one result per record; but the hash keys of their partition keys are computed
    /// all at once, side by side in SIMD lanes, before the sink's lock is taken, and the
    /// lock is taken once per run of records that fit rather than once per record.
    ///
    /// Not cancel-safe: a dropped call loses the outcomes of the records it had put (they
    /// are still sent). To bound the wait, use [`Sink::put_batch_until`].
    pub async fn put_batch(
        &self,
        records: Vec<UserRecord>,
    ) -> Vec<Result<PendingOutcome, SinkError>> {
        self.put_batch_until(records, None).await
    }

    /// [`Sink::put_batch`], waiting for room at most until `deadline` (if any): the record
    /// that found none by then comes back as [`SinkError::Full`], and so does every record
    /// after it, not put either, so that records are always put in their order.
    pub async fn put_batch_until(
        &self,
        records: Vec<UserRecord>,
        deadline: Option<tokio::time::Instant>,
    ) -> Vec<Result<PendingOutcome, SinkError>> {
        let hashed = super::core::partition_hash_keys(&records);
        let mut results = Vec::with_capacity(records.len());
        let mut next = records.into_iter().zip(hashed);
        let mut refused: Option<(UserRecord, Option<u128>)> = None;
        loop {
            let room = self.shared.room.notified();
            tokio::pin!(room);
            room.as_mut().enable();
            let mut put_any = false;
            {
                let mut state = self.shared.lock();
                let now = tokio_now();
                while let Some((record, hash_key)) = refused.take().or_else(|| next.next()) {
                    match admit(&mut state, record, hash_key, now) {
                        Err(SinkError::Full(record)) => {
                            refused = Some((record, hash_key));
                            break;
                        }
                        put => {
                            put_any |= put.is_ok();
                            results.push(put);
                        }
                    }
                }
            }
            if put_any {
                self.shared.wake.notify_one();
            }
            let Some((record, hash_key)) = refused.take() else {
                return results;
            };
            let room_came = match deadline {
                None => {
                    room.await;
                    true
                }
                Some(deadline) => tokio::time::timeout_at(deadline, room).await.is_ok(),
            };
            if !room_came {
                results.push(Err(SinkError::Full(record)));
                results.extend(next.map(|(record, _)| Err(SinkError::Full(record))));
                return results;
            }
            refused = Some((record, hash_key));
        }
    }

    /// Sends everything buffered now and resolves when every record put before this call
    /// has its outcome.
    pub async fn flush(&self) {
        let mark = {
            let mut state = self.shared.lock();
            state.core.flush(tokio_now());
            state.core.stats().user_records_put
        };
        self.shared.wake.notify_one();
        loop {
            let progress = self.shared.progress.notified();
            tokio::pin!(progress);
            progress.as_mut().enable();
            {
                let state = self.shared.lock();
                let done = state
                    .waiters
                    .first_key_value()
                    .is_none_or(|(id, _)| id.0 >= mark);
                if done {
                    return;
                }
            }
            progress.await;
        }
    }

    /// Stops taking records, sends everything buffered, and waits up to `timeout` for
    /// their outcomes; what is still unsettled then fails with
    /// [`FailureReason::Shutdown`] (records in flight may nevertheless have been stored).
    pub async fn shutdown(&self, timeout: Duration) {
        {
            let mut state = self.shared.lock();
            state.closed = true;
            state.core.flush(tokio_now());
        }
        self.shared.wake.notify_one();
        let task = self
            .task
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .take();
        let Some(mut task) = task else {
            return;
        };
        if tokio::time::timeout(timeout, &mut task).await.is_err() {
            task.abort();
            let mut state = self.shared.lock();
            state.core.abort();
            deliver(&mut state);
            drop(state);
            self.shared.room.notify_waiters();
            self.shared.progress.notify_waiters();
        }
    }

    /// Waits until the sink has its first shard map (ListShards answered), at most
    /// `timeout`; returns whether it has. Records put before are not lost (they wait, or
    /// go unaggregated once their `RecordMaxBufferedTime` passes), but only records put
    /// after are sure to be aggregated: KPL's warm-up, made explicit.
    pub async fn wait_for_shard_map(&self, timeout: Duration) -> bool {
        let wait = async {
            loop {
                let progress = self.shared.progress.notified();
                tokio::pin!(progress);
                progress.as_mut().enable();
                if self.shared.lock().core.shard_map().is_some() {
                    return;
                }
                progress.await;
            }
        };
        tokio::time::timeout(timeout, wait).await.is_ok()
    }

    /// The counters so far.
    pub fn stats(&self) -> Stats {
        self.shared.lock().core.stats().clone()
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        // Without a shutdown, the task still sends what was put, then ends.
        let mut state = self.shared.lock();
        state.closed = true;
        state.core.flush(tokio_now());
        drop(state);
        self.shared.wake.notify_one();
    }
}

/// Hands outcomes to their waiters; returns how many.
fn deliver(state: &mut State) -> usize {
    let mut n = 0;
    while let Some((id, outcome)) = state.core.poll_outcome() {
        n += 1;
        if let Some(tx) = state.waiters.remove(&id) {
            // The receiver may be gone (the caller dropped the future): nothing to do.
            let _ = tx.send(outcome);
        }
    }
    n
}

enum Done {
    Put(
        RequestId,
        Result<Vec<EntryResult>, RequestFailure>,
        Duration,
    ),
    Shards(Result<Vec<ShardInfo>, ErrorInfo>),
}

async fn run(shared: Arc<Shared>, client: Client, stream: Stream, request_timeout: Duration) {
    let mut tasks: JoinSet<Done> = JoinSet::new();
    // Which request each PutRecords task carries, so that a task that panics or is
    // cancelled still gives its records an outcome (a retry), instead of leaving them in
    // flight in the core for ever.
    let mut requests: HashMap<tokio::task::Id, RequestId> = HashMap::new();
    let mut listing = false;
    let mut list_failures: u32 = 0;
    let mut next_list = tokio_now();
    let mut exported = Stats::default();
    loop {
        let wake_at = {
            let mut state = shared.lock();
            let now = tokio_now();
            if state.core.wants_shard_map() && !listing && now >= next_list {
                listing = true;
                let (client, stream) = (client.clone(), stream.clone());
                tasks.spawn(async move {
                    Done::Shards(list_shards(&client, &stream, request_timeout).await)
                });
            }
            state.core.handle_timeout(now);
            while let Some(transmit) = state.core.poll_transmit(now) {
                let (client, stream) = (client.clone(), stream.clone());
                let id = transmit.id;
                let task = tasks.spawn(async move {
                    let started = tokio::time::Instant::now();
                    let result = put_records(&client, &stream, transmit, request_timeout).await;
                    Done::Put(id, result, started.elapsed())
                });
                requests.insert(task.id(), id);
            }
            let delivered = deliver(&mut state);
            export(state.core.stats(), &mut exported);
            let finished = state.closed && state.core.is_idle() && tasks.is_empty();
            let mut wake_at = state.core.poll_timeout(now);
            if state.core.wants_shard_map() && !listing {
                wake_at = Some(wake_at.map_or(next_list, |t| t.min(next_list)));
            }
            drop(state);
            if delivered > 0 {
                shared.room.notify_waiters();
                shared.progress.notify_waiters();
            }
            if finished {
                return;
            }
            wake_at
        };
        let sleep = async {
            match wake_at {
                Some(at) => tokio::time::sleep_until(at.into()).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = shared.wake.notified() => {}
            _ = sleep => {}
            Some(done) = tasks.join_next_with_id(), if !tasks.is_empty() => {
                let mut state = shared.lock();
                let now = tokio_now();
                match done {
                    Ok((task, Done::Put(id, result, latency))) => {
                        requests.remove(&task);
                        metrics::histogram!("kpl_sink_put_records_latency_seconds").record(latency.as_secs_f64());
                        if let Err(f) = &result {
                            tracing::debug!(code = %f.error.code, message = %f.error.message, "PutRecords failed");
                        }
                        state.core.on_response(id, result, now);
                    }
                    Ok((_, Done::Shards(result))) => {
                        listing = false;
                        let installed = match result {
                            Ok(shards) => state.core.set_shards(&shards, now).map_err(|e| e.to_string()),
                            Err(e) => Err(e.to_string()),
                        };
                        match installed {
                            Ok(()) => {
                                list_failures = 0;
                                shared.progress.notify_waiters();
                            }
                            Err(e) => {
                                list_failures += 1;
                                // The first failure, then every tenth: a stream that stays
                                // unreachable must not flood the log.
                                if list_failures % 10 == 1 {
                                    tracing::warn!(error = %e, failures = list_failures, "ListShards gave no usable shard map; retrying");
                                }
                                let backoff = 100u64.saturating_mul(1 << list_failures.min(6));
                                next_list = now + Duration::from_millis(backoff);
                            }
                        }
                    }
                    Err(join_error) => {
                        // A task panicked or was cancelled (a bug in the SDK or below). A
                        // PutRecords task's records are retried: the request may have
                        // reached Kinesis, so at-least-once, as after a timeout.
                        tracing::error!(error = %join_error, "Kinesis request task failed");
                        match requests.remove(&join_error.id()) {
                            Some(id) => {
                                let failure = RequestFailure {
                                    error: ErrorInfo {
                                        code: "TaskFailed".into(),
                                        message: format!("the PutRecords task failed: {join_error}"),
                                    },
                                    retryable: true,
                                };
                                state.core.on_response(id, Err(failure), now);
                            }
                            None => listing = false,
                        }
                    }
                }
            }
        }
    }
}

fn export(stats: &Stats, last: &mut Stats) {
    let delta = |now: u64, before: u64| now.saturating_sub(before);
    metrics::counter!("kpl_sink_user_records_total", "result" => "stored")
        .increment(delta(stats.user_records_stored, last.user_records_stored));
    metrics::counter!("kpl_sink_user_records_total", "result" => "failed")
        .increment(delta(stats.user_records_failed, last.user_records_failed));
    metrics::counter!("kpl_sink_kinesis_records_total")
        .increment(delta(stats.kinesis_records_sent, last.kinesis_records_sent));
    metrics::counter!("kpl_sink_bytes_total").increment(delta(stats.bytes_sent, last.bytes_sent));
    metrics::counter!("kpl_sink_put_records_calls_total")
        .increment(delta(stats.put_records_calls, last.put_records_calls));
    metrics::counter!("kpl_sink_wrong_shard_resends_total")
        .increment(delta(stats.wrong_shard_resends, last.wrong_shard_resends));
    for (code, n) in &stats.retries_by_code {
        let before = last.retries_by_code.get(code).copied().unwrap_or(0);
        if *n > before {
            metrics::counter!("kpl_sink_retries_total", "code" => code.clone())
                .increment(n - before);
        }
    }
    metrics::gauge!("kpl_sink_aggregation_ratio").set(stats.aggregation_ratio());
    *last = stats.clone();
}

/// How long the driver waits for a call before giving up on it itself: `RequestTimeout`
/// plus a second. The sink's own client has `RequestTimeout` as the SDK's attempt timeout,
/// which fires first (error code `Timeout`); this guard is what bounds a call made with a
/// client given through [`SinkBuilder::client`] that has no attempt timeout.
fn guard(request_timeout: Duration) -> Duration {
    request_timeout + Duration::from_secs(1)
}

/// The error of a call the driver's guard gave up on: code [`GUARD_TIMEOUT`], distinct
/// from the SDK's `Timeout`, so that retry counts tell the two apart.
fn guard_timeout(operation: &str, request_timeout: Duration) -> ErrorInfo {
    ErrorInfo {
        code: GUARD_TIMEOUT.into(),
        message: format!(
            "{operation}: no answer within RequestTimeout ({request_timeout:?}) + 1 s; the \
             sink's guard gave up on the call (the client's own attempt timeout, if it has \
             one, did not fire)"
        ),
    }
}

async fn put_records(
    client: &Client,
    stream: &Stream,
    transmit: Transmit,
    timeout: Duration,
) -> Result<Vec<EntryResult>, RequestFailure> {
    let mut request = with_stream!(client.put_records(), stream);
    for entry in transmit.entries {
        let built = PutRecordsRequestEntry::builder()
            .data(Blob::new(entry.data))
            .partition_key(entry.partition_key)
            .explicit_hash_key(entry.explicit_hash_key)
            .build()
            .map_err(|e| RequestFailure {
                error: ErrorInfo {
                    code: "ConstructionFailure".into(),
                    message: e.to_string(),
                },
                retryable: false,
            })?;
        request = request.records(built);
    }
    let sent = tokio::time::timeout(guard(timeout), request.send()).await;
    let output = match sent {
        Err(_) => {
            return Err(RequestFailure {
                error: guard_timeout("PutRecords", timeout),
                retryable: true,
            })
        }
        Ok(Err(e)) => {
            let (error, retryable) = aws::error_info(&e);
            return Err(RequestFailure { error, retryable });
        }
        Ok(Ok(output)) => output,
    };
    Ok(output
        .records()
        .iter()
        .map(|r| match r.error_code() {
            Some(code) => EntryResult::Failed(ErrorInfo {
                code: code.to_owned(),
                message: r.error_message().unwrap_or_default().to_owned(),
            }),
            None => EntryResult::Stored {
                shard_id: r.shard_id().unwrap_or_default().to_owned(),
                sequence_number: r.sequence_number().unwrap_or_default().to_owned(),
            },
        })
        .collect())
}

/// Every shard of the stream (ListShards, all pages).
async fn list_shards(
    client: &Client,
    stream: &Stream,
    timeout: Duration,
) -> Result<Vec<ShardInfo>, ErrorInfo> {
    let mut shards = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let mut request = client.list_shards();
        request = match (&token, stream) {
            (Some(t), _) => request.next_token(t),
            (None, stream) => with_stream!(request, stream),
        };
        let output = match tokio::time::timeout(guard(timeout), request.send()).await {
            Err(_) => return Err(guard_timeout("ListShards", timeout)),
            Ok(Err(e)) => return Err(aws::error_info(&e).0),
            Ok(Ok(output)) => output,
        };
        for shard in output.shards() {
            shards.push(aws::shard_info(shard)?);
        }
        match output.next_token() {
            Some(t) if !t.is_empty() => token = Some(t.to_owned()),
            _ => return Ok(shards),
        }
    }
}
