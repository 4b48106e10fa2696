//! The sans-IO source: [`SourceCore`].

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use kpl_codec::{HashRange, Policy};

use super::checkpoint::ShardPosition;
use super::error::SourceError;
use super::lineage::{ShardNode, ShardTree};
use super::records::{user_records_batch, KinesisRecordRef, SourceRecord};
use super::sequence::Checkpoint;

/// Calls of one kind failing retryably in a row (with backoff) before their error ends
/// the source.
pub const ATTEMPTS: u32 = 10;

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
    AtTimestamp(SystemTime),
}

/// How a [`SourceCore`] reads.
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
    /// With `follow`: the pause before reading a caught-up shard again (default 500 ms).
    pub poll_interval: Duration,
    /// GetRecords `Limit` (default 10,000, the maximum); also the number of user records
    /// waiting to be delivered above which no GetRecords is handed out.
    pub max_records: i32,
    /// How often to list shards again while following (default 10 s); a closed shard
    /// triggers a listing at once.
    pub list_interval: Duration,
    /// Longest backoff after throttling (default 5 s).
    pub max_backoff: Duration,
    /// How each Kinesis record is deaggregated (default KCL's policy; strict hands a
    /// defective record over whole, with its defect: [`SourceRecord::defect`]).
    pub policy: Policy,
    /// Calls in flight at once, at most one per shard (default 8; at least 1).
    pub max_in_flight: usize,
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
            policy: Policy::Kcl,
            max_in_flight: 8,
        }
    }
}

/// Identifies a call handed out by [`SourceCore::poll_call`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct CallId(pub u64);

/// Where a GetShardIterator call asks to start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IteratorStart {
    /// `TRIM_HORIZON`.
    TrimHorizon,
    /// `LATEST`.
    Latest,
    /// `AT_SEQUENCE_NUMBER`.
    AtSequenceNumber(String),
    /// `AFTER_SEQUENCE_NUMBER`.
    AfterSequenceNumber(String),
    /// `AT_TIMESTAMP`.
    AtTimestamp(SystemTime),
}

/// A Kinesis call to make.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// List every shard of the stream (all pages): answer with [`Answer::Shards`].
    ListShards,
    /// GetShardIterator: answer with [`Answer::Iterator`].
    GetShardIterator {
        /// The shard.
        shard_id: String,
        /// Where to start.
        start: IteratorStart,
    },
    /// GetRecords: answer with [`Answer::Records`].
    GetRecords {
        /// The shard the iterator belongs to.
        shard_id: String,
        /// The iterator.
        iterator: String,
        /// `Limit`.
        limit: i32,
    },
}

impl Request {
    /// The Kinesis operation's name.
    pub fn operation(&self) -> &'static str {
        match self {
            Request::ListShards => "ListShards",
            Request::GetShardIterator { .. } => "GetShardIterator",
            Request::GetRecords { .. } => "GetRecords",
        }
    }
}

/// A call handed out by [`SourceCore::poll_call`]: make it, then pass its answer to
/// [`SourceCore::on_answer`] with its id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Call {
    /// Pass it back with the answer.
    pub id: CallId,
    /// What to ask.
    pub request: Request,
}

/// One record of a GetRecords page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchedRecord {
    /// `SequenceNumber`.
    pub sequence_number: String,
    /// `PartitionKey`.
    pub partition_key: String,
    /// `Data`.
    pub data: Vec<u8>,
    /// `ApproximateArrivalTimestamp`, if given.
    pub approximate_arrival: Option<SystemTime>,
}

/// A GetRecords answer.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RecordsPage {
    /// `Records`, in order.
    pub records: Vec<FetchedRecord>,
    /// `NextShardIterator`: `None` once a closed shard is read to its end.
    pub next_iterator: Option<String>,
    /// `MillisBehindLatest`.
    pub millis_behind_latest: Option<i64>,
}

/// A call that failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallError {
    /// The error code (`ProvisionedThroughputExceededException`, ...).
    pub code: String,
    /// The service's message.
    pub message: String,
    /// Whether asking again may succeed (throttling, a server error, the network).
    pub retryable: bool,
}

/// The answer to a [`Call`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// To [`Request::ListShards`]: every shard, all pages together.
    Shards(Vec<ShardNode>),
    /// To [`Request::GetShardIterator`]: the iterator (`None`: the shard has nothing more).
    Iterator(Option<String>),
    /// To [`Request::GetRecords`].
    Records(RecordsPage),
    /// The call failed.
    Failed(CallError),
}

/// Per-shard reading state.
#[derive(Debug)]
struct Reader {
    shard_id: Arc<str>,
    range: HashRange,
    iterator: Option<String>,
    /// The last Kinesis record whose user records were all queued for delivery.
    after: Option<String>,
    /// Without `follow`: read to its current end (an empty page, nothing behind).
    caught_up: bool,
    not_before: Option<Instant>,
    failures: u32,
    in_flight: bool,
    /// The last user record queued for delivery from this shard.
    last_queued: Option<Checkpoint>,
    phase: ShardPhase,
}

/// Whether a shard is still being read.
#[derive(Debug, Clone, PartialEq, Eq)]
enum ShardPhase {
    Reading,
    /// Read to its end; checkpointing `finish_at` (its last user record, if any) marks it
    /// finished in the store.
    Ended {
        finish_at: Option<Checkpoint>,
    },
}

/// The listing's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Listing {
    /// A listing must be had before anything is concluded (at the start, after a shard
    /// ended, after a failure once its backoff is over).
    Due {
        not_before: Option<Instant>,
    },
    InFlight,
    /// Listed at this time.
    Fresh {
        at: Instant,
    },
}

/// With [`StartPosition::AtSequenceNumber`]: finding the shard that holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Selection {
    /// Every shard is read.
    All,
    /// Asking each shard (after the first listing) whether it holds the number.
    Probing {
        pending: BTreeMap<String, Probe>,
        holders: BTreeSet<String>,
    },
    /// These shards (the holders and their descendants) are read.
    Chosen(BTreeSet<String>),
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
struct Probe {
    in_flight: bool,
    failures: u32,
    not_before: Option<Instant>,
}

/// What an in-flight call was for.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Purpose {
    List,
    Probe(String),
    Iterator(String),
    Records(String),
    /// A call for a shard revoked (or reassigned) while it was in flight: its answer is
    /// dropped.
    Orphan,
}

/// The sans-IO source: a deterministic state machine that is handed the answers to
/// ListShards, GetShardIterator and GetRecords and the time, and hands back the next calls
/// to make (and when), the user records to deliver in order, and the checkpoints to save.
/// No I/O, no clock, no threads: [`Source`](super::Source) is a thin loop around it.
///
/// Rules kept here:
/// - lineage: a child shard is read only once its parents are read to their end (or
///   finished in the checkpoint store), so records of one partition key come out in order;
/// - start positions: a checkpoint wins over [`StartPosition`]; a restarted shard is read
///   from its checkpointed Kinesis record and the user records at or before the checkpoint
///   are skipped (a checkpoint may point inside an aggregate);
/// - each shard backs off on its own (throttling, failures), the others are read meanwhile;
///   with [`SourceConfig::follow`] a caught-up shard is polled again after
///   `poll_interval`;
/// - a listing is whole or not at all, and a failed one is retried with backoff: nothing is
///   concluded (such as "no shards, nothing to read") from a listing that did not come;
/// - retryable errors are retried with backoff up to [`ATTEMPTS`] times in a row, any other
///   error ends the source;
/// - at most one call per shard is in flight, and no GetRecords is handed out while
///   `max_records` user records wait to be delivered.
///
/// ```
/// use std::time::Instant;
/// use kpl_kinesis::source::{Answer, Request, ShardNode, SourceCore, SourceConfig};
/// use kpl_codec::HashRange;
///
/// let now = Instant::now();
/// let mut core = SourceCore::new(SourceConfig::default(), Default::default());
/// let call = core.poll_call(now).unwrap();
/// assert_eq!(call.request, Request::ListShards);
/// let shard = ShardNode {
///     shard_id: "shardId-0".into(), parent: None, adjacent_parent: None,
///     range: HashRange::FULL, open: false,
/// };
/// core.on_answer(call.id, Answer::Shards(vec![shard]), now);
/// let call = core.poll_call(now).unwrap(); // GetShardIterator at TRIM_HORIZON
/// core.on_answer(call.id, Answer::Iterator(None), now); // closed and empty
/// assert!(core.poll_call(now).is_some()); // listed again: the shard ended
/// ```
#[derive(Debug)]
pub struct SourceCore {
    config: SourceConfig,
    saved: BTreeMap<String, ShardPosition>,
    tree: ShardTree,
    /// Shards read to their end (or finished in the store): their children may be read.
    drained: BTreeSet<String>,
    readers: BTreeMap<String, Reader>,
    selection: Selection,
    /// With `StartPosition::Latest`: the shards open at the first listing (read from
    /// LATEST; shards born later are read from their start).
    latest_roots: BTreeSet<String>,
    listed_once: bool,
    listing: Listing,
    /// A shard ended while a listing was in flight: that listing may predate its
    /// children, so another follows it.
    relist_after_flight: bool,
    list_failures: u32,
    in_flight: BTreeMap<CallId, Purpose>,
    next_id: u64,
    /// The shard last handed a call, for round robin.
    cursor: Option<String>,
    deliver: VecDeque<SourceRecord>,
    saves: VecDeque<(String, ShardPosition)>,
    failure: Option<SourceError>,
    ended: bool,
    listings: u64,
    /// With leases: the shards this worker holds (`None`: every shard is read).
    leased: Option<BTreeSet<String>>,
    /// With leases: shards being handed over, whose delivered records' checkpoints are
    /// still taken.
    releasing: BTreeSet<String>,
    /// With leases: where a held shard without a checkpoint starts.
    assigned_start: BTreeMap<String, IteratorStart>,
}

impl SourceCore {
    /// A core starting from the positions `saved` in the checkpoint store.
    pub fn new(config: SourceConfig, saved: BTreeMap<String, ShardPosition>) -> Self {
        let selection = match config.start {
            StartPosition::AtSequenceNumber(_) => Selection::Probing {
                pending: BTreeMap::new(),
                holders: BTreeSet::new(),
            },
            _ => Selection::All,
        };
        SourceCore {
            config,
            saved,
            tree: ShardTree::default(),
            drained: BTreeSet::new(),
            readers: BTreeMap::new(),
            selection,
            latest_roots: BTreeSet::new(),
            listed_once: false,
            listing: Listing::Due { not_before: None },
            relist_after_flight: false,
            list_failures: 0,
            in_flight: BTreeMap::new(),
            next_id: 0,
            cursor: None,
            deliver: VecDeque::new(),
            saves: VecDeque::new(),
            failure: None,
            ended: false,
            listings: 0,
            leased: None,
            releasing: BTreeSet::new(),
            assigned_start: BTreeMap::new(),
        }
    }

    /// A core that reads only the shards assigned to it ([`assign`](Self::assign)), as a
    /// worker holding leases does. It follows (never ends but in an error); lineage is the
    /// lease holder's business (a child's lease is taken once its parents' are finished).
    pub fn leased(config: SourceConfig) -> Self {
        let mut core = SourceCore::new(
            SourceConfig {
                follow: true,
                start: match config.start {
                    StartPosition::AtSequenceNumber(_) => StartPosition::TrimHorizon,
                    ref other => other.clone(),
                },
                ..config
            },
            BTreeMap::new(),
        );
        core.leased = Some(BTreeSet::new());
        core
    }

    /// With leases: shard `shard_id` is now this worker's, to read from `from` (its
    /// lease's checkpoint). A shard assigned again starts afresh.
    pub fn assign(&mut self, shard_id: &str, from: &super::lease::LeaseCheckpoint) {
        use super::lease::LeaseCheckpoint;
        let Some(leased) = self.leased.as_mut() else {
            return;
        };
        leased.insert(shard_id.to_owned());
        self.releasing.remove(shard_id);
        self.drop_reader(shard_id);
        self.saved.remove(shard_id);
        self.assigned_start.remove(shard_id);
        self.drained.remove(shard_id);
        match from {
            LeaseCheckpoint::At(cp) => {
                self.saved
                    .insert(shard_id.to_owned(), ShardPosition::At(cp.clone()));
            }
            LeaseCheckpoint::ShardEnd => {
                self.saved
                    .insert(shard_id.to_owned(), ShardPosition::Finished);
                self.drained.insert(shard_id.to_owned());
            }
            LeaseCheckpoint::TrimHorizon => {
                self.assigned_start
                    .insert(shard_id.to_owned(), IteratorStart::TrimHorizon);
            }
            LeaseCheckpoint::Latest => {
                self.assigned_start
                    .insert(shard_id.to_owned(), IteratorStart::Latest);
            }
            LeaseCheckpoint::AtTimestamp => {
                let start = match self.config.start {
                    StartPosition::AtTimestamp(t) => IteratorStart::AtTimestamp(t),
                    _ => IteratorStart::TrimHorizon,
                };
                self.assigned_start.insert(shard_id.to_owned(), start);
            }
        }
    }

    /// With leases: shard `shard_id` is no longer this worker's: its records waiting for
    /// delivery are dropped, its calls in flight ignored, nothing more is read from it.
    pub fn revoke(&mut self, shard_id: &str) {
        if let Some(leased) = self.leased.as_mut() {
            leased.remove(shard_id);
        }
        self.releasing.remove(shard_id);
        self.drop_reader(shard_id);
        self.deliver.retain(|r| r.shard_id.as_ref() != shard_id);
        self.saves.retain(|(s, _)| s != shard_id);
    }

    /// With leases: shard `shard_id` is being handed over to another worker. As
    /// [`revoke`](Self::revoke), except that the checkpoints of its records already
    /// delivered are still taken ([`poll_save`](Self::poll_save)), to go with the lease,
    /// until it is revoked or assigned again.
    pub fn hand_over(&mut self, shard_id: &str) {
        if let Some(leased) = self.leased.as_mut() {
            leased.remove(shard_id);
        }
        self.drop_reader(shard_id);
        self.deliver.retain(|r| r.shard_id.as_ref() != shard_id);
        self.releasing.insert(shard_id.to_owned());
    }

    /// The shards of the last listing.
    pub fn shards(&self) -> Vec<ShardNode> {
        self.tree
            .ids()
            .filter_map(|id| self.tree.get(id).cloned())
            .collect()
    }

    /// How many listings came in so far (to notice a new one).
    pub fn listings(&self) -> u64 {
        self.listings
    }

    fn drop_reader(&mut self, shard_id: &str) {
        if self.readers.remove(shard_id).is_some() {
            for purpose in self.in_flight.values_mut() {
                if matches!(purpose, Purpose::Iterator(id) | Purpose::Records(id) if id == shard_id)
                {
                    *purpose = Purpose::Orphan;
                }
            }
        }
        if self.cursor.as_deref() == Some(shard_id) {
            self.cursor = None;
        }
    }

    /// The configuration.
    pub fn config(&self) -> &SourceConfig {
        &self.config
    }

    /// Shards read so far (including ended ones).
    pub fn shard_ids(&self) -> impl Iterator<Item = &str> {
        self.readers.keys().map(String::as_str)
    }

    /// Calls handed out and not answered yet.
    pub fn in_flight(&self) -> usize {
        self.in_flight.len()
    }

    /// User records waiting to be delivered.
    pub fn queued_records(&self) -> usize {
        self.deliver.len()
    }

    /// The next user record to deliver, in order per shard.
    pub fn poll_record(&mut self) -> Option<SourceRecord> {
        self.deliver.pop_front()
    }

    /// The next position to save in the checkpoint store, in order.
    pub fn poll_save(&mut self) -> Option<(String, ShardPosition)> {
        self.saves.pop_front()
    }

    /// Whether reading is over: `Some(Ok(()))` once every shard is read to its end
    /// (without `follow`), `Some(Err(_))` with the error that stopped it (handed out
    /// once). Records still queued are delivered first: call it once
    /// [`poll_record`](Self::poll_record) gives nothing.
    pub fn poll_end(&mut self) -> Option<Result<(), SourceError>> {
        if let Some(e) = self.failure.take() {
            self.ended = true;
            return Some(Err(e));
        }
        if self.ended {
            return Some(Ok(()));
        }
        if self.is_done() {
            self.ended = true;
            return Some(Ok(()));
        }
        None
    }

    /// Marks `record` (and everything before it in its shard) as processed: queues its
    /// position for the store ([`poll_save`](Self::poll_save)), and, for the last record
    /// of an ended shard, the shard's end.
    pub fn checkpoint(&mut self, record: &SourceRecord) {
        let cp = record.checkpoint();
        let shard = record.shard_id.as_ref();
        if self.leased.as_ref().is_some_and(|l| !l.contains(shard))
            && !self.releasing.contains(shard)
        {
            // A shard this worker no longer holds: its new holder checkpoints it.
            return;
        }
        self.saves
            .push_back((shard.to_owned(), ShardPosition::At(cp.clone())));
        // Remembered, so that a shard whose end is found after this checkpoint (a later,
        // empty page) counts as processed at once.
        self.saved
            .insert(shard.to_owned(), ShardPosition::At(cp.clone()));
        let finishes = self.readers.get(shard).is_some_and(
            |r| matches!(&r.phase, ShardPhase::Ended { finish_at: Some(last) } if *last == cp),
        );
        if finishes {
            self.finish(shard);
        }
    }

    /// The next call to make now, if any.
    pub fn poll_call(&mut self, now: Instant) -> Option<Call> {
        if self.failure.is_some() || self.ended || self.in_flight.len() >= self.max_in_flight() {
            return None;
        }
        if self.listing_due(now) {
            self.listing = Listing::InFlight;
            return Some(self.call(Purpose::List, Request::ListShards));
        }
        if !self.listed_once {
            return None;
        }
        if let Some(call) = self.poll_probe(now) {
            return Some(call);
        }
        if matches!(self.selection, Selection::Probing { .. }) {
            return None;
        }
        self.add_readers();
        let id = self.next_ready(now)?;
        self.cursor = Some(id.clone());
        let reader = self.readers.get_mut(&id)?;
        reader.in_flight = true;
        match reader.iterator.clone() {
            Some(iterator) => {
                let request = Request::GetRecords {
                    shard_id: id.clone(),
                    iterator,
                    limit: self.config.max_records,
                };
                Some(self.call(Purpose::Records(id), request))
            }
            None => {
                let start = self.iterator_start(&id);
                let request = Request::GetShardIterator {
                    shard_id: id.clone(),
                    start,
                };
                Some(self.call(Purpose::Iterator(id), request))
            }
        }
    }

    /// When to call [`poll_call`](Self::poll_call) again if nothing is answered before:
    /// the end of a backoff or of a pause, or the next periodic listing. `None` when only
    /// an answer (or a delivered record) can move things on.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.failure.is_some() || self.ended {
            return None;
        }
        let mut wake: Option<Instant> = None;
        let mut at = |t: Option<Instant>| {
            if let Some(t) = t {
                wake = Some(wake.map_or(t, |w| w.min(t)));
            }
        };
        match self.listing {
            Listing::Due { not_before } => at(not_before),
            Listing::InFlight => {}
            Listing::Fresh { at: listed } => {
                if self.config.follow {
                    at(Some(listed + self.config.list_interval));
                }
            }
        }
        if let Selection::Probing { pending, .. } = &self.selection {
            for p in pending.values().filter(|p| !p.in_flight) {
                at(p.not_before);
            }
        }
        let records_allowed = self.records_allowed();
        for r in self.readers.values() {
            let waits = !r.in_flight
                && r.phase == ShardPhase::Reading
                && (self.config.follow || !r.caught_up)
                && (r.iterator.is_none() || records_allowed);
            if waits {
                at(r.not_before);
            }
        }
        wake
    }

    /// Takes the answer to call `id`. An id not in flight (answered twice, never handed
    /// out) is ignored.
    pub fn on_answer(&mut self, id: CallId, answer: Answer, now: Instant) {
        let Some(purpose) = self.in_flight.remove(&id) else {
            return;
        };
        self.release(&purpose);
        if self.failure.is_some() || self.ended {
            return;
        }
        match purpose {
            Purpose::List => self.on_listing(answer, now),
            Purpose::Probe(shard) => self.on_probe(&shard, answer, now),
            Purpose::Iterator(shard) => self.on_iterator(&shard, answer, now),
            Purpose::Records(shard) => self.on_records(&shard, answer, now),
            Purpose::Orphan => {}
        }
    }

    /// Checks the core's internal consistency, for tests and fuzzing (cost linear in the
    /// shards, calls in flight and queued records): calls in flight within
    /// `max_in_flight`, at most one per shard and one listing, each shard's and probe's
    /// in-flight mark matching a call, ended shards counted as read, and queued records in
    /// order within each shard. The first broken rule, described.
    pub fn check_invariants(&self) -> Result<(), String> {
        if self.in_flight.len() > self.max_in_flight() {
            return Err(format!(
                "{} calls in flight, more than {}",
                self.in_flight.len(),
                self.max_in_flight()
            ));
        }
        let listings = self
            .in_flight
            .values()
            .filter(|p| **p == Purpose::List)
            .count();
        if listings != usize::from(self.listing == Listing::InFlight) {
            return Err(format!(
                "{listings} listings in flight, listing state {:?}",
                self.listing
            ));
        }
        let mut busy = BTreeSet::new();
        let mut probing = BTreeSet::new();
        for purpose in self.in_flight.values() {
            match purpose {
                Purpose::List | Purpose::Orphan => {}
                Purpose::Probe(id) => {
                    if !probing.insert(id.as_str()) {
                        return Err(format!("two probes of {id} in flight"));
                    }
                }
                Purpose::Iterator(id) | Purpose::Records(id) => {
                    if !busy.insert(id.as_str()) {
                        return Err(format!("two calls for shard {id} in flight"));
                    }
                }
            }
        }
        for (id, r) in &self.readers {
            if r.in_flight != busy.contains(id.as_str()) {
                return Err(format!(
                    "shard {id} marked in flight {} but {} call",
                    r.in_flight,
                    if busy.contains(id.as_str()) {
                        "a"
                    } else {
                        "no"
                    }
                ));
            }
            let drained = self.drained.contains(id);
            match &r.phase {
                ShardPhase::Ended { .. } if !drained => {
                    return Err(format!("shard {id} ended but not counted as read"));
                }
                ShardPhase::Reading if drained => {
                    return Err(format!("shard {id} counted as read while still read"));
                }
                _ => {}
            }
        }
        if busy.iter().any(|id| !self.readers.contains_key(*id)) {
            return Err("a call in flight for a shard without a reader".into());
        }
        if let Selection::Probing { pending, .. } = &self.selection {
            for (id, p) in pending {
                if p.in_flight != probing.contains(id.as_str()) {
                    return Err(format!("probe of {id} marked in flight {}", p.in_flight));
                }
            }
        } else if !probing.is_empty() {
            return Err("a probe in flight after the selection was made".into());
        }
        let mut last: BTreeMap<&str, Checkpoint> = BTreeMap::new();
        for r in &self.deliver {
            let cp = r.checkpoint();
            if let Some(before) = last.get(r.shard_id.as_ref()) {
                if before.covers(&cp.sequence_number, cp.sub_sequence_number) {
                    return Err(format!(
                        "shard {} queues {}:{} after {}:{}",
                        r.shard_id,
                        cp.sequence_number,
                        cp.sub_sequence_number,
                        before.sequence_number,
                        before.sub_sequence_number
                    ));
                }
            }
            last.insert(r.shard_id.as_ref(), cp);
        }
        Ok(())
    }

    fn max_in_flight(&self) -> usize {
        self.config.max_in_flight.max(1)
    }

    /// Clears the in-flight mark of an answered call.
    fn release(&mut self, purpose: &Purpose) {
        match purpose {
            Purpose::List => {
                if self.listing == Listing::InFlight {
                    self.listing = Listing::Due { not_before: None };
                }
            }
            Purpose::Probe(id) => {
                if let Selection::Probing { pending, .. } = &mut self.selection {
                    if let Some(p) = pending.get_mut(id) {
                        p.in_flight = false;
                    }
                }
            }
            Purpose::Iterator(id) | Purpose::Records(id) => {
                if let Some(r) = self.readers.get_mut(id) {
                    r.in_flight = false;
                }
            }
            Purpose::Orphan => {}
        }
    }

    fn call(&mut self, purpose: Purpose, request: Request) -> Call {
        let id = CallId(self.next_id);
        self.next_id += 1;
        self.in_flight.insert(id, purpose);
        Call { id, request }
    }

    fn fail(&mut self, operation: &'static str, error: CallError) {
        if self.failure.is_none() {
            self.failure = Some(SourceError::Kinesis {
                operation,
                code: error.code,
                message: error.message,
            });
        }
    }

    /// The wait after `failures` failures in a row: 100 ms doubled per failure, at most
    /// `max_backoff`.
    fn backoff(&self, failures: u32) -> Duration {
        backoff(failures, self.config.max_backoff)
    }

    /// Whether to list now: a listing is due (and its backoff over), or, following, the
    /// last one is `list_interval` old.
    fn listing_due(&self, now: Instant) -> bool {
        match self.listing {
            Listing::Due { not_before } => not_before.is_none_or(|t| t <= now),
            Listing::InFlight => false,
            Listing::Fresh { at } => {
                self.config.follow && now.saturating_duration_since(at) >= self.config.list_interval
            }
        }
    }

    fn on_listing(&mut self, answer: Answer, now: Instant) {
        let nodes = match answer {
            Answer::Shards(nodes) => nodes,
            Answer::Failed(e) => {
                self.list_failures += 1;
                if !e.retryable || self.list_failures >= ATTEMPTS {
                    return self.fail("ListShards", e);
                }
                // A listing is whole or not at all: still due, after a backoff.
                let delay = self.backoff(self.list_failures);
                self.listing = Listing::Due {
                    not_before: Some(now + delay),
                };
                self.relist_after_flight = false;
                return;
            }
            other => return self.fail("ListShards", unexpected(&other)),
        };
        let first = !self.listed_once;
        self.tree = ShardTree::new(nodes);
        self.listings += 1;
        self.listed_once = true;
        self.listing = if self.relist_after_flight {
            Listing::Due { not_before: None }
        } else {
            Listing::Fresh { at: now }
        };
        self.relist_after_flight = false;
        self.list_failures = 0;
        if first && self.config.start == StartPosition::Latest && self.leased.is_none() {
            // Only what comes next: closed shards count as read, open ones start at LATEST.
            for id in self.tree.ids() {
                if self.saved.contains_key(id) {
                    continue;
                }
                if self.tree.get(id).is_some_and(|n| n.open) {
                    self.latest_roots.insert(id.to_owned());
                } else {
                    self.drained.insert(id.to_owned());
                }
            }
        }
        // Shards finished in the store count as drained.
        for (id, pos) in &self.saved {
            if *pos == ShardPosition::Finished {
                self.drained.insert(id.clone());
            }
        }
        match &mut self.selection {
            Selection::Probing { pending, holders } if first => {
                debug_assert!(pending.is_empty() && holders.is_empty());
                *pending = self
                    .tree
                    .ids()
                    .map(|id| (id.to_owned(), Probe::default()))
                    .collect();
                self.settle_probes();
            }
            Selection::Chosen(chosen) => {
                let mut all = chosen.clone();
                for id in chosen.iter() {
                    all.extend(self.tree.descendants(id));
                }
                *chosen = all;
            }
            _ => {}
        }
    }

    fn poll_probe(&mut self, now: Instant) -> Option<Call> {
        let Selection::Probing { pending, .. } = &mut self.selection else {
            return None;
        };
        let (id, probe) = pending
            .iter_mut()
            .find(|(_, p)| !p.in_flight && p.not_before.is_none_or(|t| t <= now))?;
        probe.in_flight = true;
        let shard_id = id.clone();
        let StartPosition::AtSequenceNumber(seq) = &self.config.start else {
            return None;
        };
        let request = Request::GetShardIterator {
            shard_id: shard_id.clone(),
            start: IteratorStart::AtSequenceNumber(seq.clone()),
        };
        Some(self.call(Purpose::Probe(shard_id), request))
    }

    /// Whether shard `id` holds the start sequence number: Kinesis hands out an
    /// AT_SEQUENCE_NUMBER iterator for it, or answers that it is not there. Throttling and
    /// other retryable errors say nothing either way: asked again with backoff.
    fn on_probe(&mut self, id: &str, answer: Answer, now: Instant) {
        let verdict = match answer {
            Answer::Iterator(_) => Ok(true),
            // Kinesis says InvalidArgumentException (the number is not from this shard);
            // kinesis-mock says ResourceNotFoundException ("Unable to find record").
            Answer::Failed(e)
                if e.code == "InvalidArgumentException"
                    || e.code == "ResourceNotFoundException" =>
            {
                Ok(false)
            }
            Answer::Failed(e) => Err(e),
            other => Err(unexpected(&other)),
        };
        let max_backoff = self.config.max_backoff;
        let Selection::Probing { pending, holders } = &mut self.selection else {
            return;
        };
        match verdict {
            Ok(holds) => {
                pending.remove(id);
                if holds {
                    holders.insert(id.to_owned());
                }
            }
            Err(e) => {
                let Some(probe) = pending.get_mut(id) else {
                    return;
                };
                probe.failures += 1;
                if !e.retryable || probe.failures >= ATTEMPTS {
                    return self.fail("GetShardIterator", e);
                }
                probe.not_before = Some(now + backoff(probe.failures, max_backoff));
            }
        }
        self.settle_probes();
    }

    /// Once every shard answered the probe: the holders and their descendants are read,
    /// the shards before them in their lineage count as read.
    fn settle_probes(&mut self) {
        let Selection::Probing { pending, holders } = &self.selection else {
            return;
        };
        if !pending.is_empty() {
            return;
        }
        if holders.is_empty() {
            let seq = match &self.config.start {
                StartPosition::AtSequenceNumber(s) => s.clone(),
                _ => String::new(),
            };
            return self.fail(
                "GetShardIterator",
                CallError {
                    code: "InvalidArgumentException".into(),
                    message: format!("no shard holds sequence number {seq}"),
                    retryable: false,
                },
            );
        }
        let holders = holders.clone();
        for id in &holders {
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
        let mut chosen = holders.clone();
        for id in &holders {
            chosen.extend(self.tree.descendants(id));
        }
        self.selection = Selection::Chosen(chosen);
    }

    fn selected(&self, id: &str) -> bool {
        match &self.selection {
            Selection::All => true,
            Selection::Probing { .. } => false,
            Selection::Chosen(chosen) => chosen.contains(id),
        }
    }

    /// Shards that may be read now (parents drained, selected), in id order.
    fn readable(&self) -> Vec<String> {
        if let Some(leased) = &self.leased {
            return leased
                .iter()
                .filter(|id| self.tree.get(id).is_some() && !self.drained.contains(*id))
                .cloned()
                .collect();
        }
        self.tree
            .readable(&self.drained)
            .into_iter()
            .filter(|id| self.selected(id))
            .map(str::to_owned)
            .collect()
    }

    fn add_readers(&mut self) {
        for id in self.readable() {
            if self.readers.contains_key(&id) {
                continue;
            }
            let range = self.tree.get(&id).map_or(HashRange::FULL, |n| n.range);
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
                    in_flight: false,
                    last_queued: None,
                    phase: ShardPhase::Reading,
                },
            );
        }
    }

    fn records_allowed(&self) -> bool {
        self.deliver.len() < usize::try_from(self.config.max_records.max(1)).unwrap_or(1)
    }

    /// The next shard to call for, round robin after the last one.
    fn next_ready(&self, now: Instant) -> Option<String> {
        let records_allowed = self.records_allowed();
        let ready = |r: &Reader| {
            !r.in_flight
                && r.phase == ShardPhase::Reading
                && (self.config.follow || !r.caught_up)
                && r.not_before.is_none_or(|t| t <= now)
                && (r.iterator.is_none() || records_allowed)
        };
        let after = self.cursor.as_deref();
        let later = self
            .readers
            .iter()
            .filter(|(id, _)| after.is_none_or(|c| id.as_str() > c));
        let earlier = self
            .readers
            .iter()
            .filter(|(id, _)| after.is_some_and(|c| id.as_str() <= c));
        later
            .chain(earlier)
            .find(|(_, r)| ready(r))
            .map(|(id, _)| id.clone())
    }

    fn iterator_start(&self, id: &str) -> IteratorStart {
        let Some(reader) = self.readers.get(id) else {
            return IteratorStart::TrimHorizon;
        };
        if let Some(after) = &reader.after {
            return IteratorStart::AfterSequenceNumber(after.clone());
        }
        if let Some(ShardPosition::At(cp)) = self.saved.get(id) {
            return IteratorStart::AtSequenceNumber(cp.sequence_number.clone());
        }
        if let Some(start) = self.assigned_start.get(id) {
            return start.clone();
        }
        match &self.config.start {
            StartPosition::AtSequenceNumber(seq) => {
                // The holder starts at the number; its descendants from their start.
                let root = self.tree.get(id).is_some_and(|n| {
                    [&n.parent, &n.adjacent_parent]
                        .into_iter()
                        .flatten()
                        .all(|p| !self.selected(p))
                });
                if root {
                    IteratorStart::AtSequenceNumber(seq.clone())
                } else {
                    IteratorStart::TrimHorizon
                }
            }
            StartPosition::Latest if self.latest_roots.contains(id) => IteratorStart::Latest,
            StartPosition::AtTimestamp(at) => IteratorStart::AtTimestamp(*at),
            _ => IteratorStart::TrimHorizon,
        }
    }

    /// A retryable failure of shard `id`'s call: back off that shard alone.
    fn back_off(&mut self, id: &str, operation: &'static str, error: CallError, now: Instant) {
        let Some(reader) = self.readers.get_mut(id) else {
            return;
        };
        reader.failures += 1;
        let failures = reader.failures;
        if !error.retryable || failures >= ATTEMPTS {
            return self.fail(operation, error);
        }
        let delay = self.backoff(failures);
        if let Some(reader) = self.readers.get_mut(id) {
            reader.not_before = Some(now + delay);
        }
    }

    fn on_iterator(&mut self, id: &str, answer: Answer, now: Instant) {
        let Some(reader) = self.readers.get_mut(id) else {
            return;
        };
        match answer {
            Answer::Iterator(Some(iterator)) => {
                reader.iterator = Some(iterator);
                reader.failures = 0;
                reader.not_before = None;
            }
            Answer::Iterator(None) => self.end_shard(id),
            Answer::Failed(e) => self.back_off(id, "GetShardIterator", e, now),
            other => self.fail("GetShardIterator", unexpected(&other)),
        }
    }

    fn on_records(&mut self, id: &str, answer: Answer, now: Instant) {
        let follow = self.config.follow;
        let poll_interval = self.config.poll_interval;
        let policy = self.config.policy;
        let range_filter = self.config.range_filter;
        let skip = match self.saved.get(id) {
            Some(ShardPosition::At(cp)) => Some(cp.clone()),
            _ => None,
        };
        let Some(reader) = self.readers.get_mut(id) else {
            return;
        };
        let page = match answer {
            Answer::Records(page) => page,
            Answer::Failed(e) if e.code == "ExpiredIteratorException" => {
                // Ask for a new iterator from where this reader got to.
                reader.iterator = None;
                return;
            }
            Answer::Failed(e) => return self.back_off(id, "GetRecords", e, now),
            other => return self.fail("GetRecords", unexpected(&other)),
        };
        reader.failures = 0;
        reader.not_before = None;
        let range = range_filter.then_some(reader.range);
        let empty = page.records.is_empty();
        // Every MD5 of the page at once, side by side in SIMD lanes.
        let refs: Vec<KinesisRecordRef<'_>> = page
            .records
            .iter()
            .map(|r| KinesisRecordRef {
                sequence_number: &r.sequence_number,
                partition_key: &r.partition_key,
                data: &r.data,
            })
            .collect();
        let decoded = user_records_batch(policy, &reader.shard_id, range, &refs, skip.as_ref());
        for (r, mut users) in page.records.iter().zip(decoded) {
            for u in &mut users {
                u.approximate_arrival = r.approximate_arrival;
            }
            if let Some(last) = users.last() {
                reader.last_queued = Some(last.checkpoint());
            }
            self.deliver.extend(users);
            reader.after = Some(r.sequence_number.clone());
        }
        let behind = page.millis_behind_latest.unwrap_or(0);
        let caught_up = empty && behind == 0;
        reader.caught_up = caught_up;
        if follow && caught_up {
            reader.not_before = Some(now + poll_interval);
        }
        reader.iterator = page.next_iterator;
        if reader.iterator.is_none() {
            self.end_shard(id);
        }
    }

    /// The shard is closed and read to its end: its children may be read after a new
    /// listing.
    fn end_shard(&mut self, id: &str) {
        let Some(reader) = self.readers.get_mut(id) else {
            return;
        };
        let last = reader.last_queued.clone();
        reader.phase = ShardPhase::Ended {
            finish_at: last.clone(),
        };
        reader.iterator = None;
        self.drained.insert(id.to_owned());
        if self.listing != Listing::InFlight {
            self.listing = Listing::Due { not_before: None };
        } else {
            // The listing under way may predate the children: one more after it.
            self.relist_after_flight = true;
        }
        // Nothing of it waits to be processed: finished in the store at once, unless its
        // last record was queued and not checkpointed yet.
        let processed = match (&last, self.saved.get(id)) {
            (None, _) => true,
            (Some(l), Some(ShardPosition::At(cp))) => cp == l,
            _ => false,
        };
        if processed {
            self.finish(id);
        }
    }

    fn finish(&mut self, id: &str) {
        self.saves
            .push_back((id.to_owned(), ShardPosition::Finished));
        self.saved.insert(id.to_owned(), ShardPosition::Finished);
    }

    /// Without `follow`: every readable shard ended or caught up, on a listing that came
    /// after the last shard ended, and no call in flight.
    fn is_done(&self) -> bool {
        if self.config.follow || self.failure.is_some() {
            return false;
        }
        if !self.listed_once
            || !matches!(self.listing, Listing::Fresh { .. })
            || !self.in_flight.is_empty()
            || !self.deliver.is_empty()
            || matches!(self.selection, Selection::Probing { .. })
        {
            return false;
        }
        self.readable().iter().all(|id| {
            self.readers
                .get(id)
                .is_some_and(|r| r.phase != ShardPhase::Reading || r.caught_up)
        })
    }
}

/// 100 ms doubled per failure in a row, at most `max`.
fn backoff(failures: u32, max: Duration) -> Duration {
    Duration::from_millis(100u64.saturating_mul(1 << failures.min(10))).min(max)
}

fn unexpected(answer: &Answer) -> CallError {
    let kind = match answer {
        Answer::Shards(_) => "a shard list",
        Answer::Iterator(_) => "an iterator",
        Answer::Records(_) => "a page of records",
        Answer::Failed(_) => "an error",
    };
    CallError {
        code: "UnexpectedAnswer".into(),
        message: format!("{kind} was not the answer to this call"),
        retryable: false,
    }
}
