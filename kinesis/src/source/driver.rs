//! Reading a stream with GetRecords polling: every shard, parents before children, user
//! records deaggregated as KCL does, checkpoints honoured.

use core::fmt;
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use aws_sdk_kinesis::config::http::HttpResponse;
use aws_sdk_kinesis::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_kinesis::types::ShardIteratorType;
use aws_sdk_kinesis::Client;
use aws_smithy_types::retry::RetryConfig;
use kpl_codec::HashRange;
// Time through tokio's clock: the system's, unless a test paused it (then it advances
// only when every task waits on a timer, and timing is exact).
use tokio::time::Instant;

use super::checkpoint::{CheckpointError, CheckpointStore, MemoryCheckpoints, ShardPosition};
use super::lineage::{ShardNode, ShardTree};
use super::records::{user_records_under, SourceRecord};
use super::sequence::Checkpoint;
use crate::aws::{self, with_stream, ClientSettings, Stream};

/// Where to start in shards that have no checkpoint.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum StartPosition {
    /// The oldest record kept.
    #[default]
    TrimHorizon,
    /// Only records put after the source starts.
    Latest,
    /// The record with this sequence number, in the shard that holds it (and that shard's
    /// descendants after it); other shards are not read.
    AtSequenceNumber(String),
    /// The first record that arrived at or after this time, in every shard (shards closed
    /// before it give nothing).
    AtTimestamp(std::time::SystemTime),
}

/// How a [`Source`] reads.
#[derive(Debug, Clone)]
pub struct SourceConfig {
    /// Where shards without a checkpoint start.
    pub start: StartPosition,
    /// Apply each shard's hash range as KCL does (drops aggregates that do not belong to
    /// the shard they were read from, such as those re-sent after a reshard). Default true.
    pub range_filter: bool,
    /// Keep reading new records and new shards; without it the source ends once every
    /// shard has been read to its current end.
    pub follow: bool,
    /// Pause after a round in which no shard had new records (default 500 ms).
    pub poll_interval: Duration,
    /// GetRecords `Limit` (default 10,000, the maximum).
    pub max_records: i32,
    /// How often to list shards again while following (default 10 s); a closed shard
    /// triggers a listing at once.
    pub list_interval: Duration,
    /// Longest backoff after throttling (default 5 s).
    pub max_backoff: Duration,
    /// How each Kinesis record is deaggregated (default KCL's policy; strict hands a
    /// defective record over whole, with its defect: [`SourceRecord::defect`]).
    pub policy: kpl_codec::Policy,
}

impl Default for SourceConfig {
    fn default() -> Self {
        SourceConfig {
            start: StartPosition::TrimHorizon,
            range_filter: true,
            follow: false,
            poll_interval: Duration::from_millis(500),
            max_records: 10_000,
            list_interval: Duration::from_secs(10),
            max_backoff: Duration::from_secs(5),
            policy: kpl_codec::Policy::Kcl,
        }
    }
}

/// Why reading stopped.
#[derive(Debug)]
pub enum SourceError {
    /// Neither a stream name nor an ARN was given.
    NoStream,
    /// A Kinesis call failed with an error that retrying does not fix.
    Kinesis {
        /// The operation (`ListShards`, `GetShardIterator`, `GetRecords`).
        operation: &'static str,
        /// The error code.
        code: String,
        /// The service's message.
        message: String,
    },
    /// The checkpoint store failed.
    Checkpoint(CheckpointError),
}

impl fmt::Display for SourceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SourceError::NoStream => f.write_str("no stream name or ARN given"),
            SourceError::Kinesis {
                operation,
                code,
                message,
            } if f.alternate() => write!(f, "{operation} failed: {code}: {message}"),
            SourceError::Kinesis {
                operation,
                code,
                message,
            } => write!(
                f,
                "{operation}: {}",
                crate::explain::describe(code, message, None)
            ),
            SourceError::Checkpoint(e) => write!(f, "checkpoint store: {e}"),
        }
    }
}

impl std::error::Error for SourceError {}

impl From<CheckpointError> for SourceError {
    fn from(e: CheckpointError) -> Self {
        SourceError::Checkpoint(e)
    }
}

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

    /// Loads the checkpoints and the AWS configuration. Nothing is read until
    /// [`Source::next`].
    pub async fn build(self) -> Result<Source, SourceError> {
        let stream = self.stream.ok_or(SourceError::NoStream)?;
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
        let saved = store.load()?;
        Ok(Source {
            client,
            stream,
            config: self.config,
            store,
            saved,
            tree: ShardTree::default(),
            drained: BTreeSet::new(),
            readers: BTreeMap::new(),
            selected: None,
            buffer: VecDeque::new(),
            cursor: 0,
            listed_at: None,
            latest_roots: BTreeSet::new(),
            relist: true,
            list_failures: 0,
            done: false,
            idle_round: 0,
        })
    }
}

/// Per-shard reading state.
#[derive(Debug)]
struct Reader {
    shard_id: Arc<str>,
    range: HashRange,
    iterator: Option<String>,
    /// The last Kinesis record whose user records were all handed over.
    after: Option<String>,
    /// Read to the current end (open shard) in this round.
    caught_up: bool,
    not_before: Option<Instant>,
    failures: u32,
    /// The last user record handed over from this shard, and whether the shard ended.
    last_handed: Option<Checkpoint>,
    ended: bool,
    /// Set once the shard ended: its last user record, whose checkpoint marks it finished.
    finish_at: Option<Option<Checkpoint>>,
}

/// A consumer of one stream: one reader per shard, GetRecords polling, no lease
/// coordination. Run **one** `Source` per stream (or per checkpoint file); several
/// consumers sharing a stream need KCL's leases (or Enhanced Fan-Out with one consumer
/// each).
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
    config: SourceConfig,
    store: Arc<dyn CheckpointStore>,
    saved: BTreeMap<String, ShardPosition>,
    tree: ShardTree,
    /// Shards read to their end (or finished in the store): their children may be read.
    drained: BTreeSet<String>,
    readers: BTreeMap<String, Reader>,
    /// With `StartPosition::AtSequenceNumber`: the shards to read.
    selected: Option<BTreeSet<String>>,
    buffer: VecDeque<SourceRecord>,
    cursor: usize,
    listed_at: Option<Instant>,
    /// With `StartPosition::Latest`: the shards open at the first listing (read from
    /// LATEST; shards born later are read from their start).
    latest_roots: BTreeSet<String>,
    relist: bool,
    /// ListShards calls that failed in a row (retryable errors), for the backoff and the
    /// limit [`LIST_ATTEMPTS`].
    list_failures: u32,
    done: bool,
    idle_round: usize,
}

/// ListShards tries in a row (with backoff) before a retryable error ends the source: a
/// listing that cannot be had must end in that error, never in "no shards, nothing to read".
const LIST_ATTEMPTS: u32 = 10;

impl fmt::Debug for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Source")
            .field("stream", &self.stream)
            .field("shards", &self.readers.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

fn kinesis_error<E>(operation: &'static str, e: &SdkError<E, HttpResponse>) -> (SourceError, bool)
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    let (info, retryable) = aws::error_info(e);
    let error = SourceError::Kinesis {
        operation,
        code: info.code,
        message: info.message,
    };
    (error, retryable)
}

impl Source {
    /// Starts building a source.
    pub fn builder() -> SourceBuilder {
        SourceBuilder::default()
    }

    /// The next user record, `None` once every shard is read to its end (without
    /// `follow`), or the error that stopped reading.
    pub async fn next(&mut self) -> Option<Result<SourceRecord, SourceError>> {
        loop {
            if let Some(r) = self.buffer.pop_front() {
                if let Some(reader) = self.readers.get_mut(r.shard_id.as_ref()) {
                    reader.last_handed = Some(r.checkpoint());
                }
                return Some(Ok(r));
            }
            if self.done {
                return None;
            }
            if let Err(e) = self.step().await {
                self.done = true;
                return Some(Err(e));
            }
        }
    }

    /// Marks `record` (and everything before it in its shard) as processed, in the
    /// checkpoint store; the last record of a closed shard also marks the shard finished.
    pub fn checkpoint(&mut self, record: &SourceRecord) -> Result<(), SourceError> {
        let cp = record.checkpoint();
        let shard = record.shard_id.as_ref();
        self.store.save(shard, &ShardPosition::At(cp.clone()))?;
        // Remembered, so that a shard whose end is found after this checkpoint (a later,
        // empty page) counts as processed in `end_shard`.
        self.saved
            .insert(shard.to_owned(), ShardPosition::At(cp.clone()));
        if let Some(reader) = self.readers.get(shard) {
            if reader.finish_at == Some(Some(cp)) {
                self.store.save(shard, &ShardPosition::Finished)?;
            }
        }
        Ok(())
    }

    /// Shards read so far (including finished ones).
    pub fn shard_ids(&self) -> Vec<String> {
        self.readers.keys().cloned().collect()
    }

    /// One unit of progress: a listing, an iterator, or one GetRecords.
    async fn step(&mut self) -> Result<(), SourceError> {
        let now = Instant::now();
        let stale = self
            .listed_at
            .is_none_or(|t| now.duration_since(t) >= self.config.list_interval);
        if self.relist || (self.config.follow && stale) {
            self.list().await?;
            if self.relist {
                // The listing failed (and backed off): nothing may be concluded from the
                // shards known so far (none at the start, no children after a reshard).
                return Ok(());
            }
        }
        let readable: Vec<String> = self
            .tree
            .readable(&self.drained)
            .into_iter()
            .filter(|id| self.selected.as_ref().is_none_or(|s| s.contains(*id)))
            .map(str::to_owned)
            .collect();
        for id in &readable {
            if !self.readers.contains_key(id) {
                let range = self.tree.get(id).map_or(HashRange::FULL, |n| n.range);
                self.readers.insert(
                    id.clone(),
                    Reader {
                        shard_id: Arc::from(id.as_str()),
                        range,
                        iterator: None,
                        after: None,
                        caught_up: false,
                        not_before: None,
                        failures: 0,
                        last_handed: None,
                        ended: false,
                        finish_at: None,
                    },
                );
            }
        }
        let active: Vec<String> = readable
            .iter()
            .filter(|id| {
                self.readers
                    .get(*id)
                    .is_some_and(|r| !r.ended && (self.config.follow || !r.caught_up))
            })
            .cloned()
            .collect();
        if active.is_empty() {
            if !self.config.follow {
                self.done = true;
                return Ok(());
            }
            // Everything is caught up: wait, then start a new round.
            tokio::time::sleep(self.config.poll_interval).await;
            for r in self.readers.values_mut() {
                r.caught_up = false;
            }
            return Ok(());
        }
        // Shards backing off (throttled, failing) wait on their own: the others are read
        // meanwhile; only when every active shard is backing off does the source sleep,
        // until the first of them may go again.
        let now = Instant::now();
        let ready: Vec<String> = active
            .iter()
            .filter(|id| {
                self.readers
                    .get(*id)
                    .is_none_or(|r| r.not_before.is_none_or(|t| t <= now))
            })
            .cloned()
            .collect();
        if ready.is_empty() {
            let wake = active
                .iter()
                .filter_map(|id| self.readers.get(id).and_then(|r| r.not_before))
                .min();
            if let Some(t) = wake {
                tokio::time::sleep_until(t).await;
            }
            return Ok(());
        }
        self.cursor = (self.cursor + 1) % ready.len();
        let id = ready[self.cursor].clone();
        // In follow mode, a full round where every shard was caught up means: pause.
        if self.config.follow {
            let all_caught_up = active
                .iter()
                .all(|a| self.readers.get(a).is_some_and(|r| r.caught_up));
            if all_caught_up {
                self.idle_round += 1;
                tokio::time::sleep(self.config.poll_interval).await;
                for r in self.readers.values_mut() {
                    r.caught_up = false;
                }
            }
        }
        self.read_shard(&id).await
    }

    async fn list(&mut self) -> Result<(), SourceError> {
        let mut nodes = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let mut request = self.client.list_shards();
            request = match (&token, &self.stream) {
                (Some(t), _) => request.next_token(t),
                (None, stream) => with_stream!(request, stream),
            };
            let output = match request.send().await {
                Ok(o) => o,
                Err(e) => {
                    let (err, retryable) = kinesis_error("ListShards", &e);
                    self.list_failures += 1;
                    if !retryable || self.list_failures >= LIST_ATTEMPTS {
                        return Err(err);
                    }
                    let delay = self.backoff(self.list_failures);
                    tracing::debug!(error = %err, ?delay, "ListShards failed; trying again");
                    // A listing is whole or not at all: `relist` stays set.
                    self.relist = true;
                    tokio::time::sleep(delay).await;
                    return Ok(());
                }
            };
            for s in output.shards() {
                let info = aws::shard_info(s).map_err(|e| SourceError::Kinesis {
                    operation: "ListShards",
                    code: e.code,
                    message: e.message,
                })?;
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
                _ => break,
            }
        }
        let first = self.listed_at.is_none();
        self.tree = ShardTree::new(nodes);
        if first && self.config.start == StartPosition::Latest {
            // Only what comes next: closed shards count as read, open ones start at LATEST.
            let ids: Vec<(String, bool)> = self
                .tree
                .ids()
                .filter_map(|id| self.tree.get(id).map(|n| (id.to_owned(), n.open)))
                .collect();
            for (id, open) in ids {
                if self.saved.contains_key(&id) {
                    continue;
                }
                if open {
                    self.latest_roots.insert(id);
                } else {
                    self.drained.insert(id);
                }
            }
        }
        self.listed_at = Some(Instant::now());
        self.relist = false;
        self.list_failures = 0;
        // Shards finished in the store count as drained.
        for (id, pos) in &self.saved {
            if *pos == ShardPosition::Finished {
                self.drained.insert(id.clone());
            }
        }
        if let StartPosition::AtSequenceNumber(seq) = self.config.start.clone() {
            self.select(&seq).await?;
        }
        Ok(())
    }

    /// With a start sequence number: find the shard that holds it (the first listing),
    /// then keep its descendants selected.
    async fn select(&mut self, seq: &str) -> Result<(), SourceError> {
        if self.selected.is_none() {
            let mut selected = BTreeSet::new();
            let ids: Vec<String> = self.tree.ids().map(str::to_owned).collect();
            for id in ids {
                if self.holds(&id, seq).await? {
                    selected.insert(id);
                }
            }
            if selected.is_empty() {
                return Err(SourceError::Kinesis {
                    operation: "GetShardIterator",
                    code: "InvalidArgumentException".into(),
                    message: format!("no shard holds sequence number {seq}"),
                });
            }
            // The shards before it in its lineage count as read.
            for id in &selected {
                let mut ancestors = vec![id.clone()];
                while let Some(a) = ancestors.pop() {
                    if let Some(node) = self.tree.get(&a) {
                        for p in [&node.parent, &node.adjacent_parent].into_iter().flatten() {
                            if self.drained.insert(p.clone()) {
                                ancestors.push(p.clone());
                            }
                        }
                    }
                }
            }
            self.selected = Some(selected);
        }
        if let Some(selected) = &self.selected {
            let mut all = selected.clone();
            for id in selected {
                all.extend(self.tree.descendants(id));
            }
            self.selected = Some(all);
        }
        Ok(())
    }

    /// Whether shard `id` holds sequence number `seq`: Kinesis hands out an
    /// AT_SEQUENCE_NUMBER iterator for it, or answers that it is not there. Throttling
    /// and other retryable errors say nothing either way: asked again with backoff (up to
    /// [`LIST_ATTEMPTS`] times), then, like any other error, they end the source.
    async fn holds(&self, id: &str, seq: &str) -> Result<bool, SourceError> {
        let mut failures = 0u32;
        loop {
            let mut request = self
                .client
                .get_shard_iterator()
                .shard_id(id)
                .shard_iterator_type(ShardIteratorType::AtSequenceNumber)
                .starting_sequence_number(seq);
            request = with_stream!(request, &self.stream);
            let e = match request.send().await {
                Ok(_) => return Ok(true),
                Err(e) => e,
            };
            let (err, retryable) = kinesis_error("GetShardIterator", &e);
            // Kinesis says InvalidArgumentException (the number is not from this shard);
            // kinesis-mock says ResourceNotFoundException ("Unable to find record").
            if matches!(&err, SourceError::Kinesis { code, .. }
                if code == "InvalidArgumentException" || code == "ResourceNotFoundException")
            {
                return Ok(false);
            }
            failures += 1;
            if !retryable || failures >= LIST_ATTEMPTS {
                return Err(err);
            }
            let delay = self.backoff(failures);
            tokio::time::sleep(delay).await;
        }
    }

    async fn iterator_for(
        &self,
        id: &str,
        reader: &Reader,
    ) -> Result<Option<String>, (SourceError, bool)> {
        let mut request = self.client.get_shard_iterator().shard_id(id);
        request = with_stream!(request, &self.stream);
        request = if let Some(after) = &reader.after {
            request
                .shard_iterator_type(ShardIteratorType::AfterSequenceNumber)
                .starting_sequence_number(after)
        } else if let Some(ShardPosition::At(cp)) = self.saved.get(id) {
            request
                .shard_iterator_type(ShardIteratorType::AtSequenceNumber)
                .starting_sequence_number(&cp.sequence_number)
        } else {
            match &self.config.start {
                StartPosition::AtSequenceNumber(seq)
                    if self.selected.as_ref().is_some_and(|s| s.contains(id))
                        && self.tree.get(id).is_some_and(|n| {
                            n.parent.as_ref().is_none_or(|p| {
                                !self.selected.as_ref().is_some_and(|s| s.contains(p))
                            })
                        }) =>
                {
                    request
                        .shard_iterator_type(ShardIteratorType::AtSequenceNumber)
                        .starting_sequence_number(seq)
                }
                StartPosition::Latest if self.latest_roots.contains(id) => {
                    request.shard_iterator_type(ShardIteratorType::Latest)
                }
                StartPosition::AtTimestamp(at) => request
                    .shard_iterator_type(ShardIteratorType::AtTimestamp)
                    .timestamp(aws_smithy_types::DateTime::from(*at)),
                _ => request.shard_iterator_type(ShardIteratorType::TrimHorizon),
            }
        };
        match request.send().await {
            Ok(o) => Ok(o.shard_iterator().map(str::to_owned)),
            Err(e) => Err(kinesis_error("GetShardIterator", &e)),
        }
    }

    fn back_off(&mut self, id: &str) {
        let failures = match self.readers.get_mut(id) {
            Some(r) => {
                r.failures += 1;
                r.failures
            }
            None => return,
        };
        let delay = self.backoff(failures);
        if let Some(r) = self.readers.get_mut(id) {
            r.not_before = Some(Instant::now() + delay);
        }
    }

    /// The wait after `failures` failures in a row: 100 ms doubled per failure, at most
    /// `max_backoff` (shared by GetRecords, GetShardIterator and ListShards retries).
    fn backoff(&self, failures: u32) -> Duration {
        Duration::from_millis(100u64.saturating_mul(1 << failures.min(10)))
            .min(self.config.max_backoff)
    }

    async fn read_shard(&mut self, id: &str) -> Result<(), SourceError> {
        let Some(reader) = self.readers.get(id) else {
            return Ok(());
        };
        if reader.not_before.is_some_and(|t| t > Instant::now()) {
            // Still backing off: step() picks only shards that may go.
            return Ok(());
        }
        if reader.iterator.is_none() {
            match self.iterator_for(id, reader).await {
                Ok(Some(it)) => {
                    if let Some(r) = self.readers.get_mut(id) {
                        r.iterator = Some(it);
                    }
                }
                Ok(None) => return self.end_shard(id),
                Err((_, true)) => {
                    self.back_off(id);
                    return Ok(());
                }
                Err((e, false)) => return Err(e),
            }
        }
        let Some(iterator) = self.readers.get(id).and_then(|r| r.iterator.clone()) else {
            return Ok(());
        };
        let result = self
            .client
            .get_records()
            .shard_iterator(iterator)
            .limit(self.config.max_records)
            .send()
            .await;
        let output = match result {
            Ok(o) => o,
            Err(e) => {
                let (err, retryable) = kinesis_error("GetRecords", &e);
                let expired = matches!(&err, SourceError::Kinesis { code, .. } if code == "ExpiredIteratorException");
                if expired {
                    // Ask for a new iterator from where this reader got to.
                    if let Some(r) = self.readers.get_mut(id) {
                        r.iterator = None;
                    }
                    return Ok(());
                }
                if retryable {
                    self.back_off(id);
                    return Ok(());
                }
                return Err(err);
            }
        };
        let Some(reader) = self.readers.get_mut(id) else {
            return Ok(());
        };
        reader.failures = 0;
        reader.not_before = None;
        let skip = match self.saved.get(id) {
            Some(ShardPosition::At(cp)) => Some(cp.clone()),
            _ => None,
        };
        let range = self.config.range_filter.then_some(reader.range);
        for r in output.records() {
            let seq: Arc<str> = Arc::from(r.sequence_number());
            let mut users = user_records_under(
                self.config.policy,
                &reader.shard_id,
                range,
                &seq,
                r.partition_key().unwrap_or_default(),
                r.data().as_ref(),
                skip.as_ref(),
            );
            let arrival = r
                .approximate_arrival_timestamp()
                .and_then(|t| std::time::SystemTime::try_from(*t).ok());
            for u in &mut users {
                u.approximate_arrival = arrival;
            }
            self.buffer.extend(users);
            reader.after = Some(seq.to_string());
        }
        let empty = output.records().is_empty();
        let behind = output.millis_behind_latest().unwrap_or(0);
        reader.caught_up = empty && behind == 0;
        reader.iterator = output.next_shard_iterator().map(str::to_owned);
        if reader.iterator.is_none() {
            return self.end_shard(id);
        }
        Ok(())
    }

    /// The shard is closed and read to its end: its children may be read now.
    fn end_shard(&mut self, id: &str) -> Result<(), SourceError> {
        let last_buffered = self
            .buffer
            .iter()
            .rev()
            .find(|r| r.shard_id.as_ref() == id)
            .map(SourceRecord::checkpoint);
        let Some(reader) = self.readers.get_mut(id) else {
            return Ok(());
        };
        reader.ended = true;
        let last = last_buffered.or_else(|| reader.last_handed.clone());
        reader.finish_at = Some(last.clone());
        self.drained.insert(id.to_owned());
        self.relist = true;
        // Nothing of it is waiting to be processed: finished in the store at once, unless
        // its last record was handed over and not checkpointed yet.
        let processed = match (&last, self.saved.get(id)) {
            (None, _) => true,
            (Some(l), Some(ShardPosition::At(cp))) => cp == l,
            _ => false,
        };
        if processed {
            self.store.save(id, &ShardPosition::Finished)?;
        }
        Ok(())
    }
}
