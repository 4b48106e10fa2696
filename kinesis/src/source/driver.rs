//! Reading a stream with GetRecords polling: the thin tokio + AWS SDK shell around
//! [`SourceCore`], which decides every call; this file only makes them (several at once,
//! one per shard at most), saves checkpoints and hands records over.

use core::fmt;
use std::collections::HashMap;
use std::sync::Arc;

use aws_sdk_kinesis::config::http::HttpResponse;
use aws_sdk_kinesis::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_kinesis::types::ShardIteratorType;
use aws_sdk_kinesis::Client;
use aws_smithy_types::retry::RetryConfig;
use tokio::task::JoinSet;
// Time through tokio's clock: the system's, unless a test paused it (then it advances
// only when every task waits on a timer, and timing is exact).
use tokio::time::Instant;

use super::checkpoint::{CheckpointStore, MemoryCheckpoints};
use super::core::{
    Answer, Call, CallError, CallId, FetchedRecord, IteratorStart, RecordsPage, Request,
    SourceConfig, SourceCore,
};
use super::error::SourceError;
use super::lineage::ShardNode;
use super::records::SourceRecord;
use crate::aws::{self, with_stream, ClientSettings, Stream};

/// Builds a [`Source`]; see [`Source::builder`].
#[derive(Default)]
pub struct SourceBuilder {
    stream: Option<Stream>,
    config: SourceConfig,
    store: Option<Arc<dyn CheckpointStore>>,
    client: Option<Client>,
    sdk_config: Option<aws_config::SdkConfig>,
    endpoint: Option<String>,
    region: Option<String>,
    #[cfg(feature = "dynamodb")]
    leases: Option<super::leased::LeaseSettings>,
}

impl fmt::Debug for SourceBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SourceBuilder")
            .field("stream", &self.stream)
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl SourceBuilder {
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

    /// How to read.
    pub fn config(mut self, config: SourceConfig) -> Self {
        self.config = config;
        self
    }

    /// Where checkpoints are loaded from and saved to (default: in memory).
    pub fn checkpoints(mut self, store: Arc<dyn CheckpointStore>) -> Self {
        self.store = Some(store);
        self
    }

    /// A Kinesis endpoint URL (a local server).
    pub fn endpoint_url(mut self, url: impl Into<String>) -> Self {
        self.endpoint = Some(url.into());
        self
    }

    /// The region (default: the standard chain, else us-east-1).
    pub fn region(mut self, region: impl Into<String>) -> Self {
        self.region = Some(region.into());
        self
    }

    /// An AWS configuration to start from instead of the standard chain.
    pub fn sdk_config(mut self, sdk_config: aws_config::SdkConfig) -> Self {
        self.sdk_config = Some(sdk_config);
        self
    }

    /// A ready client, used as is (for tests with scripted responses).
    pub fn client(mut self, client: Client) -> Self {
        self.client = Some(client);
        self
    }

    /// Shares the stream with other workers through KCL's lease table in DynamoDB
    /// (feature `dynamodb`): this source reads only the shards whose leases it holds, its
    /// checkpoints go to the leases (the checkpoint store is not used), and it follows
    /// (never ends but in an error). See [`lease`](super::lease) for the rules.
    #[cfg(feature = "dynamodb")]
    pub fn leases(mut self, settings: super::leased::LeaseSettings) -> Self {
        self.leases = Some(settings);
        self
    }

    /// Loads the checkpoints and the AWS configuration. Nothing is read until
    /// [`Source::next`].
    pub async fn build(self) -> Result<Source, SourceError> {
        let stream = self.stream.ok_or(SourceError::NoStream)?;
        #[cfg(feature = "dynamodb")]
        let lease = match self.leases {
            Some(settings) => {
                let sdk = match &self.sdk_config {
                    Some(sdk) => sdk.clone(),
                    None => {
                        aws_config::defaults(aws_config::BehaviorVersion::latest())
                            .load()
                            .await
                    }
                };
                let runner = super::leased::LeaseRunner::start(
                    settings,
                    &sdk,
                    self.region.clone(),
                    self.config.start.clone(),
                )
                .await
                .map_err(|message| SourceError::Kinesis {
                    operation: "DynamoDB",
                    code: "LeaseTable".into(),
                    message,
                })?;
                Some(runner)
            }
            None => None,
        };
        let client = match self.client {
            Some(c) => c,
            None => {
                // One SDK retry; throttling is handled here, per shard, with backoff.
                aws::client(ClientSettings {
                    sdk_config: self.sdk_config,
                    region: self.region.unwrap_or_default(),
                    endpoint: self.endpoint.unwrap_or_default(),
                    retry: RetryConfig::standard().with_max_attempts(2),
                    attempt_timeout: None,
                })
                .await
            }
        };
        let store = self
            .store
            .unwrap_or_else(|| Arc::new(MemoryCheckpoints::default()));
        #[cfg(feature = "dynamodb")]
        let core = if lease.is_some() {
            SourceCore::leased(self.config)
        } else {
            SourceCore::new(self.config, store.load()?)
        };
        #[cfg(not(feature = "dynamodb"))]
        let core = SourceCore::new(self.config, store.load()?);
        Ok(Source {
            client,
            stream,
            store,
            core,
            tasks: JoinSet::new(),
            calls: HashMap::new(),
            stopped: false,
            #[cfg(feature = "dynamodb")]
            lease,
            #[cfg(not(feature = "dynamodb"))]
            lease: (),
        })
    }
}

/// A consumer of one stream: one reader per shard, GetRecords polling, no lease
/// coordination. Run **one** `Source` per stream (or per checkpoint file); several
/// consumers sharing a stream need KCL's leases (or Enhanced Fan-Out with one consumer
/// each).
///
/// `next` is cancel-safe: calls in flight when its future is dropped keep running and
/// their answers are taken by the next call to `next`.
///
/// ```no_run
/// use kpl_kinesis::source::{FileCheckpoints, Source, SourceConfig};
/// use std::sync::Arc;
/// # async fn example() -> Result<(), Box<dyn std::error::Error>> {
/// let mut source = Source::builder()
///     .stream_name("logs")
///     .checkpoints(Arc::new(FileCheckpoints::new("logs.checkpoints.json")))
///     .config(SourceConfig { follow: true, ..SourceConfig::default() })
///     .build()
///     .await?;
/// while let Some(record) = source.next().await {
///     let record = record?;
///     println!("{} {}:{} {:?}", record.shard_id, record.sequence_number,
///              record.sub_sequence_number, record.data);
///     source.checkpoint(&record)?; // after processing: a restart resumes after it
/// }
/// # Ok(()) }
/// ```
pub struct Source {
    client: Client,
    stream: Stream,
    store: Arc<dyn CheckpointStore>,
    core: SourceCore,
    tasks: JoinSet<Answer>,
    /// Which call each task makes, so that a task that panics still gets an answer.
    calls: HashMap<tokio::task::Id, CallId>,
    stopped: bool,
    lease: LeaseSlot,
}

/// The leases of a source that shares its stream (feature `dynamodb`).
#[cfg(feature = "dynamodb")]
type LeaseSlot = Option<super::leased::LeaseRunner>;
#[cfg(not(feature = "dynamodb"))]
type LeaseSlot = ();

impl fmt::Debug for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Source")
            .field("stream", &self.stream)
            .field("core", &self.core)
            .finish_non_exhaustive()
    }
}

impl Source {
    /// Starts building a source.
    pub fn builder() -> SourceBuilder {
        SourceBuilder::default()
    }

    /// The next user record, `None` once every shard is read to its end (without
    /// `follow`), or the error that stopped reading (then `None`).
    pub async fn next(&mut self) -> Option<Result<SourceRecord, SourceError>> {
        loop {
            if let Err(e) = self.save_positions() {
                self.stop();
                return Some(Err(e));
            }
            if let Some(record) = self.core.poll_record() {
                return Some(Ok(record));
            }
            match self.core.poll_end() {
                Some(Ok(())) => {
                    self.stop();
                    return None;
                }
                Some(Err(e)) => {
                    let first = !self.stopped;
                    self.stop();
                    return first.then_some(Err(e));
                }
                None => {}
            }
            let now = Instant::now().into_std();
            while let Some(call) = self.core.poll_call(now) {
                self.start(call);
            }
            let wake = self.core.poll_timeout().map(Instant::from_std);
            #[cfg(feature = "dynamodb")]
            let wake = match &mut self.lease {
                Some(lease) => {
                    lease.start_calls(Instant::now());
                    match (wake, lease.timeout()) {
                        (Some(a), Some(b)) => Some(a.min(b)),
                        (a, b) => a.or(b),
                    }
                }
                None => wake,
            };
            #[cfg(feature = "dynamodb")]
            let leasing = self.lease.as_ref().is_some_and(|l| l.busy());
            #[cfg(not(feature = "dynamodb"))]
            let leasing = false;
            if self.tasks.is_empty() && wake.is_none() && !leasing {
                // Nothing in flight and nothing scheduled, yet not over: a bug in the core;
                // never passed off as the end of the stream.
                self.stop();
                return Some(Err(SourceError::Stalled));
            }
            tokio::select! {
                Some(done) = self.tasks.join_next_with_id(), if !self.tasks.is_empty() => {
                    let (task, answer) = match done {
                        Ok((task, answer)) => (task, answer),
                        Err(e) => (e.id(), Answer::Failed(CallError {
                            code: "TaskFailed".into(),
                            message: format!("the call's task failed: {e}"),
                            retryable: true,
                        })),
                    };
                    if let Some(id) = self.calls.remove(&task) {
                        self.core.on_answer(id, answer, Instant::now().into_std());
                    }
                }
                () = sleep_until(wake), if wake.is_some() => {}
                () = lease_answer(&mut self.lease), if leasing => {}
            }
        }
    }

    /// Marks `record` (and everything before it in its shard) as processed, in the
    /// checkpoint store (saved when this returns); the last record of a closed shard also
    /// marks the shard finished.
    ///
    /// With leases (`SourceBuilder::leases`, feature `dynamodb`) the checkpoint is written
    /// to the lease by the next calls to [`next`](Self::next) (or
    /// [`shutdown`](Self::shutdown)), and refused with [`SourceError::LeaseLost`] once
    /// another worker holds the shard.
    pub fn checkpoint(&mut self, record: &SourceRecord) -> Result<(), SourceError> {
        #[cfg(feature = "dynamodb")]
        if let Some(lease) = &self.lease {
            if !lease.holds(&record.shard_id) {
                return Err(SourceError::LeaseLost {
                    shard_id: record.shard_id.to_string(),
                });
            }
        }
        self.core.checkpoint(record);
        self.save_positions()
    }

    /// Stops reading. With leases: writes the pending checkpoints and releases every
    /// lease, so that other workers take them at once (within `limit`).
    pub async fn shutdown(mut self, limit: std::time::Duration) {
        let _ = self.save_positions();
        self.stop();
        #[cfg(feature = "dynamodb")]
        if let Some(lease) = &mut self.lease {
            lease.exchange(&mut self.core);
            lease.shutdown(limit).await;
        }
        #[cfg(not(feature = "dynamodb"))]
        let _ = limit;
    }

    /// Whether records of shard `shard_id` are still this worker's to deliver: with leases,
    /// not once the shard's lease is being handed over or is lost (then the worker that
    /// reads the shard next starts from its last checkpoint); always without.
    ///
    /// A consumer that buffers records before processing them drops those of a shard no
    /// longer read (after [`leases_moved`](Self::leases_moved) changed): processed, they
    /// would be processed twice. Records it already processed it still checkpoints.
    pub fn reads(&self, shard_id: &str) -> bool {
        #[cfg(feature = "dynamodb")]
        if let Some(lease) = &self.lease {
            return lease.reads(shard_id);
        }
        let _ = shard_id;
        true
    }

    /// How many times a shard's lease was handed over or lost so far (0 without leases):
    /// when it changes, [`reads`](Self::reads) may have turned false for some shard.
    pub fn leases_moved(&self) -> u64 {
        #[cfg(feature = "dynamodb")]
        if let Some(lease) = &self.lease {
            return lease.moves();
        }
        0
    }

    /// The next change in the shards this worker reads through its leases (taken, being
    /// handed over to another worker, lost, finished), for the consumer's log; `None`
    /// without leases. The source acts on them itself: this is information only. The last
    /// 1,024 are kept.
    pub fn poll_lease_event(&mut self) -> Option<super::lease::LeaseEvent> {
        #[cfg(feature = "dynamodb")]
        if let Some(lease) = &mut self.lease {
            return lease.poll_notice();
        }
        None
    }

    /// Shards read so far (including finished ones).
    pub fn shard_ids(&self) -> Vec<String> {
        self.core.shard_ids().map(str::to_owned).collect()
    }

    fn save_positions(&mut self) -> Result<(), SourceError> {
        #[cfg(feature = "dynamodb")]
        if let Some(lease) = &mut self.lease {
            lease.exchange(&mut self.core);
            return Ok(());
        }
        while let Some((shard, position)) = self.core.poll_save() {
            self.store.save(&shard, &position)?;
        }
        Ok(())
    }

    fn stop(&mut self) {
        self.stopped = true;
        self.tasks.abort_all();
        self.calls.clear();
    }

    fn start(&mut self, call: Call) {
        let client = self.client.clone();
        let stream = self.stream.clone();
        let handle = self
            .tasks
            .spawn(async move { execute(&client, &stream, call.request).await });
        self.calls.insert(handle.id(), call.id);
    }
}

/// The next answer of a lease operation (never, without leases).
#[cfg(feature = "dynamodb")]
async fn lease_answer(lease: &mut LeaseSlot) {
    match lease {
        Some(lease) => lease.answer().await,
        None => std::future::pending().await,
    }
}

/// The next answer of a lease operation (never, without leases).
#[cfg(not(feature = "dynamodb"))]
async fn lease_answer(_: &mut LeaseSlot) {
    std::future::pending().await
}

async fn sleep_until(wake: Option<Instant>) {
    if let Some(t) = wake {
        tokio::time::sleep_until(t).await;
    }
}

fn call_error<E>(e: &SdkError<E, HttpResponse>) -> CallError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    let (info, retryable) = aws::error_info(e);
    CallError {
        code: info.code,
        message: info.message,
        retryable,
    }
}

/// Makes one call and reads its answer.
async fn execute(client: &Client, stream: &Stream, request: Request) -> Answer {
    match request {
        Request::ListShards => list_shards(client, stream).await,
        Request::GetShardIterator { shard_id, start } => {
            let mut request = client.get_shard_iterator().shard_id(shard_id);
            request = with_stream!(request, stream);
            request = match start {
                IteratorStart::TrimHorizon => {
                    request.shard_iterator_type(ShardIteratorType::TrimHorizon)
                }
                IteratorStart::Latest => request.shard_iterator_type(ShardIteratorType::Latest),
                IteratorStart::AtSequenceNumber(seq) => request
                    .shard_iterator_type(ShardIteratorType::AtSequenceNumber)
                    .starting_sequence_number(seq),
                IteratorStart::AfterSequenceNumber(seq) => request
                    .shard_iterator_type(ShardIteratorType::AfterSequenceNumber)
                    .starting_sequence_number(seq),
                IteratorStart::AtTimestamp(at) => request
                    .shard_iterator_type(ShardIteratorType::AtTimestamp)
                    .timestamp(aws_smithy_types::DateTime::from(at)),
            };
            match request.send().await {
                Ok(o) => Answer::Iterator(o.shard_iterator().map(str::to_owned)),
                Err(e) => Answer::Failed(call_error(&e)),
            }
        }
        Request::GetRecords {
            iterator, limit, ..
        } => match client
            .get_records()
            .shard_iterator(iterator)
            .limit(limit)
            .send()
            .await
        {
            Ok(output) => {
                let next_iterator = output.next_shard_iterator().map(str::to_owned);
                let millis_behind_latest = output.millis_behind_latest();
                let records = output
                    .records
                    .into_iter()
                    .map(|r| FetchedRecord {
                        approximate_arrival: r
                            .approximate_arrival_timestamp()
                            .and_then(|t| std::time::SystemTime::try_from(*t).ok()),
                        sequence_number: r.sequence_number,
                        partition_key: r.partition_key.unwrap_or_default(),
                        data: r.data.into_inner(),
                    })
                    .collect();
                Answer::Records(RecordsPage {
                    records,
                    next_iterator,
                    millis_behind_latest,
                })
            }
            Err(e) => Answer::Failed(call_error(&e)),
        },
    }
}

/// Every page of ListShards, or the first error (a listing is whole or not at all).
async fn list_shards(client: &Client, stream: &Stream) -> Answer {
    let mut nodes = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let mut request = client.list_shards();
        request = match &token {
            Some(t) => request.next_token(t),
            None => with_stream!(request, stream),
        };
        let output = match request.send().await {
            Ok(o) => o,
            Err(e) => return Answer::Failed(call_error(&e)),
        };
        for s in output.shards() {
            let info = match aws::shard_info(s) {
                Ok(info) => info,
                Err(e) => {
                    return Answer::Failed(CallError {
                        code: e.code,
                        message: e.message,
                        retryable: false,
                    })
                }
            };
            nodes.push(ShardNode {
                shard_id: info.shard_id,
                parent: s.parent_shard_id().map(str::to_owned),
                adjacent_parent: s.adjacent_parent_shard_id().map(str::to_owned),
                range: info.range,
                open: info.open,
            });
        }
        match output.next_token() {
            Some(t) if !t.is_empty() => token = Some(t.to_owned()),
            _ => return Answer::Shards(nodes),
        }
    }
}
