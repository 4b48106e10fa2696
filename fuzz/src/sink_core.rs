//! The sans-IO sink core ([`kpl_kinesis::sink::Core`]) driven by hostile input: arbitrary
//! user records, PutRecords answers (any number of entries, any shard id, any error code
//! and message, whole-request failures, answers to unknown or already answered requests),
//! shard lists (valid reshards of a simulated stream, and broken or made-up lists), flushes,
//! time jumps of up to a century, and abort. Then a final drain: the stream's real shard
//! list, a flush, every request answered as the stream would store it, time past the TTL.
//!
//! Checked after every step (a panic is a bug):
//! - the core's own invariants (`Core::check_invariants`: every record without an outcome
//!   in exactly one place, the counters and admission accounts, the limits, shard safety
//!   of what is queued), after the step, after the timer work, and after the requests and
//!   outcomes are taken;
//! - `put` accepts exactly the valid records that fit the buffer, and refuses a full one
//!   only when a buffer limit is really reached;
//! - every accepted record gets at most one outcome, never while it is in flight, and after
//!   the drain exactly one; `buffered_records` is the number still without one, within
//!   `MaxBufferedRecords` (and the bytes within `MaxBufferedBytes`);
//! - every request holds 1 to `CollectionMaxCount` entries and at most `CollectionMaxSize`
//!   bytes, every entry at most `MaxRecordSize`; at most `MaxConnections` in flight;
//! - every entry carries only accepted records still without an outcome, each in at most
//!   one request in flight; an aggregate decodes strictly, is within `AggregationMaxSize`
//!   and `AggregationMaxCount`, keyed by its first record, and every record in it lies in
//!   the range of the open shard its explicit hash key routes to in `core.shard_map()`;
//! - a success names a sequence number and shard this harness answered for an entry holding
//!   that record at that sub-sequence number, and (but for abort) an aggregated one a shard
//!   whose range in the current map holds the record; `Rejected` carries an error answered
//!   as permanent; `Expired` comes after the TTL; `Shutdown` only from `abort`; `Internal`
//!   never;
//! - `set_shards` accepts exactly the lists whose open shards tile the key space, and a
//!   refused list changes nothing.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use arbitrary::Arbitrary;
use kpl_codec::{deaggregate, hash_key, parse_explicit_hash_key, HashRange, Options, Verdict};
use kpl_kinesis::sink::{
    retryable_record_error, Config, Core, EntryResult, ErrorInfo, FailureReason, Outcome, PutError,
    RecordId, RequestFailure, RequestId, ShardInfo, ShardMap, Transmit, UserRecord,
    RECORD_OVERHEAD,
};

/// The whole input: limits (a middling config when absent, so that short inputs reach
/// the steps), the stream's first shard count, whether the core starts without its shard
/// list (it gets it first otherwise), then the steps.
#[derive(Debug, Arbitrary)]
pub struct SinkCoreInput {
    config: Option<ConfigInput>,
    shards: u8,
    no_first_map: bool,
    ops: Vec<Op>,
}

/// Raw bytes for every option, mapped into the allowed ranges with small buffers and
/// rates, so that limits are reached. All-zero bytes mean a middling setting: aggregation
/// on, 1,024-byte aggregates and records, 100 ms buffering, a 1 s TTL, 32 records buffered.
#[derive(Debug, Default, Arbitrary)]
struct ConfigInput {
    no_aggregation: bool,
    max_count: u8,
    max_size: u16,
    max_record_size: u16,
    batch_count: u16,
    batch_size: u16,
    wait_ms: u16,
    ttl_ms: u16,
    rate_limit: u8,
    records_per_second: u16,
    bytes_per_second: u32,
    connections: u8,
    max_records: u8,
    extra_bytes: u16,
    backoff_min: u16,
    backoff_extra: u16,
    seed: u64,
}

impl ConfigInput {
    fn config(&self) -> Config {
        // `(x + default) % span`: zero gives the default, anything else some other value.
        let pick = |x: u64, default: u64, span: u64| (x + default) % span;
        let max_record_size = 64 + pick(self.max_record_size.into(), 960, 4096) as usize;
        let backoff_min = 1 + pick(self.backoff_min.into(), 99, 1000);
        Config {
            aggregation_enabled: !self.no_aggregation,
            aggregation_max_count: match self.max_count {
                0 => u64::from(u32::MAX),
                n => u64::from(n),
            },
            aggregation_max_size: 64 + pick(self.max_size.into(), 960, 4096) as usize,
            max_record_size,
            collection_max_count: 1 + pick(self.batch_count.into(), 499, 500) as usize,
            collection_max_size: 52_224 + usize::from(self.batch_size),
            record_max_buffered_time: pick(self.wait_ms.into(), 100, 1 << 16),
            record_ttl: 100 + pick(self.ttl_ms.into(), 900, 1 << 16),
            rate_limit: 1 + pick(self.rate_limit.into(), 149, 256),
            shard_records_per_second: 1 + pick(self.records_per_second.into(), 999, 2000),
            shard_bytes_per_second: 1 + pick(self.bytes_per_second.into(), 1 << 20, 2 << 20),
            max_connections: 1 + pick(self.connections.into(), 1, 4) as usize,
            max_buffered_records: 1 + pick(self.max_records.into(), 31, 64) as usize,
            max_buffered_bytes: max_record_size
                + 4 * pick(self.extra_bytes.into(), 4096, 1 << 16) as usize,
            // Small floors, so that the drain rule binds as often as the hard bounds.
            buffer_min_bytes: pick(self.extra_bytes.into(), 1 << 20, 1 << 14) as usize,
            retry_backoff_min: backoff_min,
            retry_backoff_max: backoff_min + u64::from(self.backoff_extra % 5000),
            seed: self.seed,
            ..Config::default()
        }
    }
}

#[derive(Debug, Arbitrary)]
enum Op {
    Put(PutInput),
    /// Time passes, in ms.
    Advance(u16),
    /// Time jumps, in seconds (up to 136 years).
    Jump(u32),
    /// Time moves to the core's next deadline.
    AdvanceToTimeout,
    Flush,
    /// Answers the request in flight at `pick`.
    Answer {
        pick: u8,
        response: ResponseInput,
    },
    /// Answers a request already answered (or cut off by abort) again.
    AnswerAgain {
        pick: u8,
        response: ResponseInput,
    },
    /// Answers a request id never handed out (or any id at all).
    AnswerUnknown {
        id: u64,
        response: ResponseInput,
    },
    /// The stream splits an open shard at a point inside it.
    Split {
        pick: u8,
        at: u128,
    },
    /// The stream merges two adjacent open shards.
    Merge {
        pick: u8,
    },
    /// ListShards stops listing a closed shard (past the retention period).
    Forget {
        pick: u8,
    },
    /// The core gets the stream's shard list (when it asks, or always).
    GiveMap {
        unasked: bool,
    },
    /// The core gets the stream's list, broken in one place.
    GiveMutated {
        pick: u8,
        mutation: Mutation,
    },
    /// The core gets a made-up list.
    GiveShards(Vec<RawShard>),
    Abort,
}

#[derive(Debug, Arbitrary)]
struct PutInput {
    key: KeyInput,
    ehk: Option<EhkInput>,
    /// Repeated to the size (zeros when empty).
    pattern: Vec<u8>,
    size: SizeInput,
}

#[derive(Debug, Arbitrary)]
enum SizeInput {
    Small(u8),
    /// Reduced to at most `MaxRecordSize + 63`: some too large.
    Any(u16),
}

#[derive(Debug, Arbitrary)]
enum KeyInput {
    /// One of 16 keys, so that records share keys and shards.
    Few(u8),
    Text(String),
}

#[derive(Debug, Arbitrary)]
enum EhkInput {
    /// In decimal, with this many leading zeros (mod 4).
    Value(u128, u8),
    /// Near one end of a stream shard's range.
    Boundary {
        pick: u8,
        end: bool,
        delta: i8,
    },
    Text(String),
}

#[derive(Debug, Arbitrary)]
enum ResponseInput {
    /// One result per entry: these, cycled (all stored where the stream routes them when
    /// empty).
    PerEntry(Vec<EntryInput>),
    /// Exactly these results, however many entries the request had.
    Exactly(Vec<EntryInput>),
    /// The call failed as a whole.
    Whole {
        code: CodeInput,
        message: String,
        retryable: bool,
    },
}

#[derive(Debug, Clone, Arbitrary)]
enum EntryInput {
    /// Stored on the open shard of the stream holding the entry's explicit hash key.
    Stored,
    /// Stored on some shard the stream lists (open or closed), or on a made-up one.
    StoredOn(ShardName),
    Failed {
        code: CodeInput,
        message: String,
    },
}

#[derive(Debug, Clone, Arbitrary)]
enum ShardName {
    Listed(u8),
    Text(String),
}

#[derive(Debug, Clone, Arbitrary)]
enum CodeInput {
    Throughput,
    InternalFailure,
    KmsThrottling,
    KmsAccessDenied,
    Validation,
    Other(String),
}

impl CodeInput {
    fn code(&self) -> String {
        match self {
            CodeInput::Throughput => "ProvisionedThroughputExceededException".into(),
            CodeInput::InternalFailure => "InternalFailure".into(),
            CodeInput::KmsThrottling => "KMSThrottlingException".into(),
            CodeInput::KmsAccessDenied => "KMSAccessDeniedException".into(),
            CodeInput::Validation => "ValidationException".into(),
            CodeInput::Other(s) => s.clone(),
        }
    }
}

#[derive(Debug, Arbitrary)]
enum Mutation {
    Remove,
    Duplicate,
    ToggleOpen,
    MoveStart(i8),
    MoveEnd(i8),
    Rename(String),
    SetRange(u128, u128),
}

#[derive(Debug, Arbitrary)]
struct RawShard {
    id: ShardName,
    start: u128,
    end: u128,
    open: bool,
}

/// A user record as it can be recognised in an entry: partition key, effective hash key,
/// data.
type Key = (String, u128, Vec<u8>);

/// The simulated stream: its shard list, resharded at will, always a tiling.
struct Stream {
    shards: Vec<ShardInfo>,
    next_id: usize,
}

const MAX_OPEN_SHARDS: usize = 16;

impl Stream {
    fn new(n: usize) -> Self {
        let map = ShardMap::even(n);
        let shards: Vec<ShardInfo> = (0..map.len())
            .filter_map(|i| map.open_shard(i))
            .map(|(id, range)| ShardInfo {
                shard_id: id.to_string(),
                range,
                open: true,
            })
            .collect();
        let next_id = shards.len();
        Stream { shards, next_id }
    }

    fn open(&self) -> Vec<usize> {
        let mut open: Vec<usize> = (0..self.shards.len())
            .filter(|&i| self.shards[i].open)
            .collect();
        open.sort_by_key(|&i| self.shards[i].range.start);
        open
    }

    fn add(&mut self, range: HashRange) {
        self.shards.push(ShardInfo {
            shard_id: format!("shardId-{:012}", self.next_id),
            range,
            open: true,
        });
        self.next_id += 1;
    }

    fn split(&mut self, pick: u8, at: u128) {
        let open = self.open();
        let candidates: Vec<usize> = open
            .iter()
            .copied()
            .filter(|&i| self.shards[i].range.end > self.shards[i].range.start)
            .collect();
        if open.len() >= MAX_OPEN_SHARDS || candidates.is_empty() {
            return;
        }
        let parent = candidates[usize::from(pick) % candidates.len()];
        let HashRange { start, end } = self.shards[parent].range;
        let middle = start + at % (end - start);
        self.shards[parent].open = false;
        self.add(HashRange::new(start, middle));
        self.add(HashRange::new(middle + 1, end));
    }

    fn merge(&mut self, pick: u8) {
        let open = self.open();
        if open.len() < 2 {
            return;
        }
        let i = usize::from(pick) % (open.len() - 1);
        let (a, b) = (open[i], open[i + 1]);
        let range = HashRange::new(self.shards[a].range.start, self.shards[b].range.end);
        self.shards[a].open = false;
        self.shards[b].open = false;
        self.add(range);
    }

    fn forget(&mut self, pick: u8) {
        let closed: Vec<usize> = (0..self.shards.len())
            .filter(|&i| !self.shards[i].open)
            .collect();
        if !closed.is_empty() {
            self.shards.remove(closed[usize::from(pick) % closed.len()]);
        }
    }

    /// The open shard holding `key` (there is exactly one).
    fn route(&self, key: u128) -> &ShardInfo {
        self.shards
            .iter()
            .find(|s| s.open && s.range.contains(key))
            .expect("the stream's open shards tile the key space")
    }

    fn name(&self, name: &ShardName) -> String {
        match name {
            ShardName::Listed(i) => self.shards[usize::from(*i) % self.shards.len()]
                .shard_id
                .clone(),
            ShardName::Text(s) => s.clone(),
        }
    }
}

/// Whether the open shards of `shards` cover every hash key exactly once (the reference
/// for what `set_shards` must accept).
fn tiles(shards: &[ShardInfo]) -> bool {
    let mut open: Vec<HashRange> = shards.iter().filter(|s| s.open).map(|s| s.range).collect();
    open.sort_by_key(|r| r.start);
    let mut next = Some(0u128);
    for r in open {
        match next {
            Some(n) if r.start == n && r.end >= r.start => next = r.end.checked_add(1),
            _ => return false,
        }
    }
    next.is_none()
}

struct Accepted {
    key: Key,
    size: usize,
    at: Instant,
    done: bool,
}

/// A request handed out and not yet answered: its id and the records of each entry.
struct Flight {
    id: RequestId,
    entries: Vec<(u128, Vec<Key>)>,
}

struct Harness {
    config: Config,
    now: Instant,
    core: Core,
    stream: Stream,
    records: HashMap<RecordId, Accepted>,
    /// Accepted records without an outcome, by content (records may repeat).
    outstanding: HashMap<Key, usize>,
    /// Of those, how many are in a request in flight.
    flying: HashMap<Key, usize>,
    flights: Vec<Flight>,
    /// Requests answered, or cut off by abort.
    answered: Vec<RequestId>,
    /// Sequence number answered → (shard id, records of that entry in order).
    stored: HashMap<String, (String, Vec<Key>)>,
    next_seq: u64,
    /// Errors answered as permanent (per entry or for a whole request): code, message.
    permanent: HashSet<(String, String)>,
    aborting: bool,
}

impl Harness {
    fn new(config: Config, shards: usize) -> Self {
        let now = Instant::now();
        let core = Core::new(config.clone(), now).expect("the config is mapped into range");
        Harness {
            config,
            now,
            core,
            stream: Stream::new(shards),
            records: HashMap::new(),
            outstanding: HashMap::new(),
            flying: HashMap::new(),
            flights: Vec::new(),
            answered: Vec::new(),
            stored: HashMap::new(),
            next_seq: 0,
            permanent: HashSet::new(),
            aborting: false,
        }
    }

    fn apply(&mut self, op: Op) {
        match op {
            Op::Put(put) => self.put(put),
            Op::Advance(ms) => self.now += Duration::from_millis(u64::from(ms)),
            Op::Jump(secs) => {
                if let Some(t) = self.now.checked_add(Duration::from_secs(u64::from(secs))) {
                    self.now = t;
                }
            }
            Op::AdvanceToTimeout => {
                if let Some(t) = self.core.poll_timeout(self.now) {
                    self.now = self.now.max(t);
                }
            }
            Op::Flush => self.core.flush(self.now),
            Op::Answer { pick, response } => {
                if !self.flights.is_empty() {
                    let flight = self.flights.remove(usize::from(pick) % self.flights.len());
                    self.answer(flight, &response);
                }
            }
            Op::AnswerAgain { pick, response } => {
                if !self.answered.is_empty() {
                    let id = self.answered[usize::from(pick) % self.answered.len()];
                    self.answer_blind(id, &response);
                }
            }
            Op::AnswerUnknown { id, response } => {
                let id = RequestId(id);
                if !self.flights.iter().any(|f| f.id == id) {
                    self.answer_blind(id, &response);
                }
            }
            Op::Split { pick, at } => self.stream.split(pick, at),
            Op::Merge { pick } => self.stream.merge(pick),
            Op::Forget { pick } => self.stream.forget(pick),
            Op::GiveMap { unasked } => {
                if unasked || self.core.wants_shard_map() {
                    let shards = self.stream.shards.clone();
                    self.give(&shards);
                }
            }
            Op::GiveMutated { pick, mutation } => {
                let mut shards = self.stream.shards.clone();
                let i = usize::from(pick) % shards.len();
                match mutation {
                    Mutation::Remove => {
                        shards.remove(i);
                    }
                    Mutation::Duplicate => shards.push(shards[i].clone()),
                    Mutation::ToggleOpen => shards[i].open = !shards[i].open,
                    Mutation::MoveStart(d) => {
                        let r = &mut shards[i].range;
                        r.start = r.start.wrapping_add_signed(i128::from(d));
                    }
                    Mutation::MoveEnd(d) => {
                        let r = &mut shards[i].range;
                        r.end = r.end.wrapping_add_signed(i128::from(d));
                    }
                    Mutation::Rename(id) => shards[i].shard_id = id,
                    Mutation::SetRange(start, end) => shards[i].range = HashRange { start, end },
                }
                self.give(&shards);
            }
            Op::GiveShards(raw) => {
                let shards: Vec<ShardInfo> = raw
                    .iter()
                    .map(|r| ShardInfo {
                        shard_id: self.stream.name(&r.id),
                        range: HashRange {
                            start: r.start,
                            end: r.end,
                        },
                        open: r.open,
                    })
                    .collect();
                self.give(&shards);
            }
            Op::Abort => {
                // What is in flight fails now; a later answer to it is ignored.
                for flight in core::mem::take(&mut self.flights) {
                    self.land(&flight);
                    self.answered.push(flight.id);
                }
                self.core.abort();
                self.aborting = true;
                self.collect_outcomes();
                self.aborting = false;
                assert!(self.core.is_idle(), "not idle after abort");
            }
        }
        self.pump();
    }

    fn give(&mut self, shards: &[ShardInfo]) {
        let maps = self.core.stats().shard_maps;
        let wanted = self.core.wants_shard_map();
        match self.core.set_shards(shards, self.now) {
            Ok(()) => {
                assert!(
                    tiles(shards),
                    "accepted a list that does not tile: {shards:?}"
                );
                assert_eq!(self.core.stats().shard_maps, maps + 1);
                assert!(!self.core.wants_shard_map());
            }
            Err(e) => {
                assert!(!tiles(shards), "refused a tiling ({e}): {shards:?}");
                assert_eq!(
                    self.core.stats().shard_maps,
                    maps,
                    "a refused list was installed"
                );
                assert_eq!(self.core.wants_shard_map(), wanted);
            }
        }
    }

    fn put(&mut self, input: PutInput) {
        let partition_key = match input.key {
            KeyInput::Few(n) => format!("k{}", n % 16),
            KeyInput::Text(text) => text,
        };
        let explicit_hash_key = input.ehk.map(|ehk| match ehk {
            EhkInput::Value(v, zeros) => "0".repeat(usize::from(zeros % 4)) + &v.to_string(),
            EhkInput::Boundary { pick, end, delta } => {
                let shards = &self.stream.shards;
                let range = shards[usize::from(pick) % shards.len()].range;
                let at = if end { range.end } else { range.start };
                at.wrapping_add_signed(i128::from(delta)).to_string()
            }
            EhkInput::Text(text) => text,
        });
        let len = match input.size {
            SizeInput::Small(n) => usize::from(n),
            SizeInput::Any(n) => usize::from(n) % (self.config.max_record_size + 64),
        };
        let data: Vec<u8> = if input.pattern.is_empty() {
            vec![0; len]
        } else {
            input.pattern.iter().copied().cycle().take(len).collect()
        };
        let record = UserRecord {
            partition_key,
            explicit_hash_key,
            data,
        };
        let size = record.size();
        let ehk = record
            .explicit_hash_key
            .as_deref()
            .map(parse_explicit_hash_key);
        let valid = !record.partition_key.is_empty()
            && record.partition_key.encode_utf16().count() <= 256
            && !matches!(ehk, Some(Err(_)))
            && size <= self.config.max_record_size;
        // The hard bounds, and the drain rule of the record's shard (an empty sink, or an
        // empty shard account, always takes one record).
        let hash = match ehk {
            Some(Ok(v)) => v,
            _ => hash_key(record.partition_key.as_bytes()),
        };
        let budget = self.core.shard_budget(hash, self.now);
        let full = self.core.buffered_records() > 0
            && (self.core.buffered_records() >= self.config.max_buffered_records
                || self.core.buffered_bytes() + size > self.config.max_buffered_bytes
                || (budget.buffered_records > 0
                    && budget.buffered_cost + size + RECORD_OVERHEAD > budget.limit));
        match self.core.put(record.clone(), self.now) {
            Ok(id) => {
                assert!(
                    valid && !full,
                    "accepted {record:?} (valid {valid}, full {full})"
                );
                let hash = match ehk {
                    Some(Ok(v)) => v,
                    _ => hash_key(record.partition_key.as_bytes()),
                };
                let key = (record.partition_key, hash, record.data);
                *self.outstanding.entry(key.clone()).or_default() += 1;
                let accepted = Accepted {
                    key,
                    size,
                    at: self.now,
                    done: false,
                };
                assert!(
                    self.records.insert(id, accepted).is_none(),
                    "{id:?} given twice"
                );
            }
            Err(PutError::Full(back)) => {
                assert!(
                    valid && full,
                    "Full for {record:?} (valid {valid}, full {full})"
                );
                assert_eq!(back, record, "Full hands the record back");
                assert!(!self.core.has_room(&record, self.now));
            }
            Err(PutError::Invalid(e)) => assert!(!valid, "valid {record:?} refused: {e}"),
        }
    }

    /// Does the timer work due, takes every request then due and checks it, then every
    /// outcome; the core's invariants are checked before and after.
    fn pump(&mut self) {
        self.check_invariants();
        self.core.handle_timeout(self.now);
        self.check_invariants();
        while let Some(t) = self.core.poll_transmit(self.now) {
            let flight = self.check_transmit(&t);
            self.flights.push(flight);
            assert!(
                self.flights.len() <= self.config.max_connections,
                "MaxConnections"
            );
        }
        assert_eq!(self.core.in_flight(), self.flights.len());
        self.collect_outcomes();
        let waiting = self.records.values().filter(|r| !r.done).count();
        let bytes: usize = self
            .records
            .values()
            .filter(|r| !r.done)
            .map(|r| r.size)
            .sum();
        assert_eq!(self.core.buffered_records(), waiting, "buffered records");
        assert_eq!(self.core.buffered_bytes(), bytes, "buffered bytes");
        assert!(waiting <= self.config.max_buffered_records);
        assert!(bytes <= self.config.max_buffered_bytes);
        self.check_invariants();
    }

    fn check_invariants(&self) {
        if let Err(broken) = self.core.check_invariants() {
            panic!("invariant broken: {broken}");
        }
    }

    fn check_transmit(&mut self, t: &Transmit) -> Flight {
        let config = &self.config;
        assert!(!t.entries.is_empty(), "empty request");
        assert!(
            t.entries.len() <= config.collection_max_count,
            "CollectionMaxCount"
        );
        assert!(t.size() <= config.collection_max_size, "CollectionMaxSize");
        let map = self.core.shard_map();
        let mut entries = Vec::new();
        for entry in &t.entries {
            assert!(
                entry.data.len() + entry.partition_key.len() <= config.max_record_size,
                "an entry over MaxRecordSize"
            );
            let ehk = parse_explicit_hash_key(&entry.explicit_hash_key)
                .expect("the entry's explicit hash key is a valid number");
            let keys: Vec<Key> = if entry.user_records >= 2 {
                assert!(
                    config.aggregation_enabled,
                    "an aggregate with aggregation off"
                );
                assert_eq!(entry.partition_key, "a");
                assert!(
                    entry.data.len() <= config.aggregation_max_size,
                    "AggregationMaxSize"
                );
                let map = map.expect("an aggregate handed out without a shard map");
                let (shard, range) = map
                    .open_shard(map.route(ehk))
                    .expect("route gives an open shard");
                let decoded = deaggregate(&entry.data, b"a", &Options::strict())
                    .unwrap_or_else(|e| panic!("an aggregate that does not decode: {e}"));
                assert!(matches!(decoded.verdict(), Verdict::Aggregated { .. }));
                let keys: Vec<Key> = decoded
                    .map(|u| {
                        let pk = String::from_utf8(u.partition_key.to_vec())
                            .expect("a partition key that is not UTF-8");
                        let key = (pk, u.hash_key(), u.data.to_vec());
                        assert!(
                            range.contains(key.1),
                            "aggregate for {shard} {range:?} holds hash key {}",
                            key.1
                        );
                        key
                    })
                    .collect();
                assert_eq!(keys.len(), entry.user_records);
                assert!(keys.len() as u64 <= config.aggregation_max_count);
                assert_eq!(keys[0].1, ehk, "an aggregate's key is its first record's");
                keys
            } else {
                assert_eq!(entry.user_records, 1, "an entry without records");
                vec![(entry.partition_key.clone(), ehk, entry.data.clone())]
            };
            for key in &keys {
                let outstanding = self.outstanding.get(key).copied().unwrap_or(0);
                let flying = self.flying.entry(key.clone()).or_default();
                *flying += 1;
                assert!(
                    *flying <= outstanding,
                    "a record sent that was never accepted, already has its outcome, \
                     or is in another request in flight: {key:?}"
                );
            }
            entries.push((ehk, keys));
        }
        Flight { id: t.id, entries }
    }

    /// The records of a request in flight are no longer in flight.
    fn land(&mut self, flight: &Flight) {
        for key in flight.entries.iter().flat_map(|(_, keys)| keys) {
            if let Some(n) = self.flying.get_mut(key) {
                *n -= 1;
            }
        }
    }

    fn answer(&mut self, flight: Flight, response: &ResponseInput) {
        self.land(&flight);
        self.answered.push(flight.id);
        let n = flight.entries.len();
        let response = match response {
            ResponseInput::PerEntry(spec) if spec.is_empty() => {
                let results = (0..n).map(|i| self.result(&flight, i, &EntryInput::Stored));
                Ok(results.collect())
            }
            ResponseInput::PerEntry(spec) => {
                let results = (0..n).map(|i| self.result(&flight, i, &spec[i % spec.len()]));
                Ok(results.collect())
            }
            ResponseInput::Exactly(spec) => {
                let results = spec
                    .iter()
                    .enumerate()
                    .map(|(i, s)| self.result(&flight, i, s));
                Ok(results.collect())
            }
            ResponseInput::Whole { .. } => Err(self.failure(response)),
        };
        self.core.on_response(flight.id, response, self.now);
    }

    /// An answer to a request not in flight: the core must ignore it.
    fn answer_blind(&mut self, id: RequestId, response: &ResponseInput) {
        let blind = Flight {
            id,
            entries: Vec::new(),
        };
        let response = match response {
            ResponseInput::PerEntry(spec) | ResponseInput::Exactly(spec) => Ok(spec
                .iter()
                .enumerate()
                .map(|(i, s)| self.result(&blind, i, s))
                .collect()),
            ResponseInput::Whole { .. } => Err(self.failure(response)),
        };
        let before = (self.core.buffered_records(), self.core.stats().clone());
        self.core.on_response(id, response, self.now);
        assert!(
            self.core.poll_outcome().is_none(),
            "an outcome from a stray answer"
        );
        assert_eq!(
            (self.core.buffered_records(), self.core.stats().clone()),
            before
        );
    }

    /// The result for entry `i` of `flight` (an entry beyond the request's is stored on
    /// shard 0 of the stream, holding nothing).
    fn result(&mut self, flight: &Flight, i: usize, spec: &EntryInput) -> EntryResult {
        let entry = flight.entries.get(i);
        match spec {
            EntryInput::Stored | EntryInput::StoredOn(_) => {
                let shard_id = match spec {
                    EntryInput::StoredOn(name) => self.stream.name(name),
                    _ => match entry {
                        Some((ehk, _)) => self.stream.route(*ehk).shard_id.clone(),
                        None => self.stream.shards[0].shard_id.clone(),
                    },
                };
                self.next_seq += 1;
                let sequence_number = self.next_seq.to_string();
                let keys = entry.map(|(_, keys)| keys.clone()).unwrap_or_default();
                self.stored
                    .insert(sequence_number.clone(), (shard_id.clone(), keys));
                EntryResult::Stored {
                    shard_id,
                    sequence_number,
                }
            }
            EntryInput::Failed { code, message } => {
                let error = ErrorInfo {
                    code: code.code(),
                    message: message.clone(),
                };
                if !retryable_record_error(&error.code) {
                    self.permanent
                        .insert((error.code.clone(), error.message.clone()));
                }
                EntryResult::Failed(error)
            }
        }
    }

    fn failure(&mut self, response: &ResponseInput) -> RequestFailure {
        let ResponseInput::Whole {
            code,
            message,
            retryable,
        } = response
        else {
            unreachable!("only called for whole failures")
        };
        let error = ErrorInfo {
            code: code.code(),
            message: message.clone(),
        };
        if !retryable {
            self.permanent
                .insert((error.code.clone(), error.message.clone()));
        }
        RequestFailure {
            error,
            retryable: *retryable,
        }
    }

    fn collect_outcomes(&mut self) {
        while let Some((id, outcome)) = self.core.poll_outcome() {
            let record = self
                .records
                .get_mut(&id)
                .unwrap_or_else(|| panic!("an outcome for {id:?}, never accepted"));
            assert!(
                !record.done,
                "two outcomes for {id:?}: the second {outcome:?}"
            );
            record.done = true;
            let (key, at) = (record.key.clone(), record.at);
            let outstanding = self.outstanding.get_mut(&key).expect("counted at put");
            *outstanding -= 1;
            let flying = self.flying.get(&key).copied().unwrap_or(0);
            assert!(
                flying <= *outstanding,
                "an outcome for a record in flight: {outcome:?}"
            );
            match &outcome {
                Outcome::Success(s) => {
                    let (shard, keys) = self
                        .stored
                        .get(&*s.sequence_number)
                        .unwrap_or_else(|| panic!("success with an unknown sequence number {s:?}"));
                    assert_eq!(
                        **shard, *s.shard_id,
                        "success on another shard than answered"
                    );
                    let at_position = usize::try_from(s.sub_sequence_number)
                        .ok()
                        .and_then(|i| keys.get(i));
                    assert_eq!(at_position, Some(&key), "success points at another record");
                    assert_eq!(s.aggregated, keys.len() >= 2);
                    assert!(s.attempts >= 1);
                    if s.aggregated && !self.aborting {
                        let range = self.core.shard_map().and_then(|m| m.range_of(&s.shard_id));
                        assert!(
                            range.is_some_and(|r| r.contains(key.1)),
                            "aggregated success on {} ({range:?}), which does not hold {}",
                            s.shard_id,
                            key.1
                        );
                    }
                }
                Outcome::Failure(f) => match &f.reason {
                    FailureReason::Rejected(e) => assert!(
                        self.permanent
                            .contains(&(e.code.clone(), e.message.clone())),
                        "rejected with an error never answered as permanent: {e:?}"
                    ),
                    FailureReason::Expired(_) => assert!(
                        self.now >= at + self.config.ttl(),
                        "expired before RecordTtl"
                    ),
                    FailureReason::Shutdown => assert!(self.aborting, "Shutdown without abort"),
                    FailureReason::Internal(m) => panic!("internal error: {m}"),
                },
            }
        }
    }

    /// The stream's real list, a flush, every request answered as stored where the stream
    /// routes it, time moved on; then every accepted record has its one outcome.
    fn drain(&mut self) {
        let shards = self.stream.shards.clone();
        self.give(&shards);
        self.core.flush(self.now);
        for _ in 0..20_000 {
            if self.core.wants_shard_map() {
                self.give(&shards);
            }
            self.pump();
            while !self.flights.is_empty() {
                let flight = self.flights.remove(0);
                self.answer(flight, &ResponseInput::PerEntry(Vec::new()));
                self.pump();
            }
            if self.core.is_idle() {
                break;
            }
            self.now = match self.core.poll_timeout(self.now) {
                Some(t) if t > self.now => t,
                Some(_) => self.now + Duration::from_millis(1),
                // Nothing scheduled yet not idle: only the TTL can still decide.
                None => self.now + self.config.ttl(),
            };
            self.core.flush(self.now);
        }
        let left: Vec<_> = self
            .records
            .iter()
            .filter(|(_, r)| !r.done)
            .map(|(id, _)| id)
            .collect();
        assert!(
            left.is_empty(),
            "no outcome after the drain for {left:?} ({} buffered, {} in flight)",
            self.core.buffered_records(),
            self.core.in_flight()
        );
        assert!(self.core.is_idle());
        assert_eq!(self.core.buffered_bytes(), 0);
    }
}

/// Runs the steps, then the drain (see the module docs).
pub fn sink_core(input: SinkCoreInput) {
    let config = input.config.unwrap_or_default().config();
    let mut harness = Harness::new(config, 1 + usize::from(input.shards % 4));
    if !input.no_first_map {
        harness.apply(Op::GiveMap { unasked: true });
    }
    for op in input.ops {
        harness.apply(op);
    }
    harness.drain();
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put(n: u8) -> Op {
        Op::Put(PutInput {
            key: KeyInput::Few(n),
            ehk: None,
            pattern: vec![n],
            size: SizeInput::Small(10),
        })
    }

    #[test]
    fn aggregate_stored_on_a_made_up_shard() {
        sink_core(SinkCoreInput {
            config: None,
            shards: 0,
            no_first_map: false,
            ops: vec![
                put(1),
                put(2),
                Op::Flush,
                Op::Answer {
                    pick: 0,
                    response: ResponseInput::PerEntry(vec![EntryInput::StoredOn(ShardName::Text(
                        "nowhere".into(),
                    ))]),
                },
            ],
        });
    }
}
