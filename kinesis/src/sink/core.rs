//! The sans-IO sink: a deterministic state machine that is handed user records, the shard
//! map, PutRecords outcomes and the time, and hands back PutRecords batches, the next
//! deadline and one outcome per user record. No I/O, no clock, no threads.
//!
//! Pipeline, as in KPL: `put` → per-shard [`Aggregator`] (flushed when full or at the
//! oldest record's deadline) → per-shard rate limiter (token buckets) → collector
//! (PutRecords batches, sent when full or at the oldest deadline) → in flight → outcome,
//! or retry with backoff, or re-send after a reshard.
//!
//! Invariants kept here:
//! - every accepted user record is in exactly one place (held, an aggregator, a Kinesis
//!   record in a ready queue, the collector, a retry, a request in flight, or parked) until
//!   its single outcome is emitted;
//! - an aggregate only ever holds user records of one open shard of the map it was built
//!   with, and is re-checked against the current map before it is sent again.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use kpl_codec::{deaggregate, Aggregator, HashRange, InputRecord, KinesisRecord, Options, Policy};

use super::admission::{Admission, ShardBudget, Throughput, RECORD_OVERHEAD};
use super::config::Config;
use super::errors::{retryable_record_error, GUARD_TIMEOUT};
use super::outcome::{
    ErrorInfo, Failure, FailureReason, Outcome, PutError, RecordId, Success, UserRecord,
};
use super::rate_limit::ShardLimiter;
use super::shard_map::{ShardInfo, ShardMap, ShardMapError};

/// Identifies a PutRecords request handed out by [`Core::poll_transmit`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RequestId(pub u64);

/// One entry of a PutRecords request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PutEntry {
    /// `"a"` for an aggregate, the user's key for a record sent alone.
    pub partition_key: String,
    /// Always set, as KPL does: the first user record's hash key in decimal.
    pub explicit_hash_key: String,
    /// The framed aggregate or the user's data.
    pub data: Vec<u8>,
    /// User records inside.
    pub user_records: usize,
}

/// A PutRecords request to send, then to answer with [`Core::on_response`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transmit {
    /// Pass it back with the response.
    pub id: RequestId,
    /// The entries, in order.
    pub entries: Vec<PutEntry>,
}

impl Transmit {
    /// Bytes counted by Kinesis against the request limit: data plus partition keys.
    pub fn size(&self) -> usize {
        self.entries
            .iter()
            .map(|e| e.data.len() + e.partition_key.len())
            .sum()
    }
}

/// The result of one PutRecords entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EntryResult {
    /// Stored.
    Stored {
        /// Where.
        shard_id: String,
        /// Its sequence number.
        sequence_number: String,
    },
    /// Not stored: `ErrorCode` and `ErrorMessage` of the entry.
    Failed(ErrorInfo),
}

/// A PutRecords call that failed as a whole.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestFailure {
    /// The error.
    pub error: ErrorInfo,
    /// Whether to retry (see [`retryable_request_error`](super::retryable_request_error)).
    pub retryable: bool,
}

/// Counters, for metrics.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    /// User records accepted by `put`.
    pub user_records_put: u64,
    /// User records stored.
    pub user_records_stored: u64,
    /// User records failed.
    pub user_records_failed: u64,
    /// Kinesis records sent (each attempt counts).
    pub kinesis_records_sent: u64,
    /// Kinesis records stored.
    pub kinesis_records_stored: u64,
    /// Bytes sent (data plus partition keys, each attempt counts).
    pub bytes_sent: u64,
    /// PutRecords requests handed out.
    pub put_records_calls: u64,
    /// Retries by error code (per Kinesis record, or per request for whole failures).
    pub retries_by_code: BTreeMap<String, u64>,
    /// Aggregates that landed on a shard not holding all their user records, re-sent.
    pub wrong_shard_resends: u64,
    /// Shard maps installed.
    pub shard_maps: u64,
}

impl Stats {
    /// User records per stored Kinesis record.
    pub fn aggregation_ratio(&self) -> f64 {
        if self.kinesis_records_stored == 0 {
            return 0.0;
        }
        self.user_records_stored as f64 / self.kinesis_records_stored as f64
    }
}

/// What the core keeps about a user record besides its bytes.
#[derive(Debug, Clone)]
struct Meta {
    id: RecordId,
    hash_key: u128,
    has_ehk: bool,
    size: usize,
    /// When it should be sent at the latest (put time + `RecordMaxBufferedTime`).
    deadline: Instant,
    /// When it fails if not stored (put time + `RecordTtl`).
    expires: Instant,
    attempts: u32,
    last_error: Option<ErrorInfo>,
    /// The shard whose admission account it is charged to (empty: no map when put).
    account: Arc<str>,
}

/// A Kinesis record and the user records it carries, in order.
#[derive(Debug)]
struct KRec {
    partition_key: String,
    explicit_hash_key: String,
    data: Vec<u8>,
    hash_key: u128,
    users: Vec<Meta>,
    /// Whether `data` is an aggregate (two or more user records when built).
    aggregated: bool,
    /// Shard map generation it was built (or last checked) with.
    epoch: u64,
    deadline: Instant,
}

impl KRec {
    fn size(&self) -> usize {
        self.data.len() + self.partition_key.len()
    }

    fn aggregated(&self) -> bool {
        self.aggregated
    }

    fn fits(&self, range: HashRange) -> bool {
        self.users.iter().all(|u| range.contains(u.hash_key))
    }
}

#[derive(Debug)]
struct Shard {
    id: Arc<str>,
    range: HashRange,
    aggregator: Aggregator,
    /// Metadata of the user records inside `aggregator`, in the same order.
    pending: VecDeque<Meta>,
    /// Kinesis records waiting for the rate limiter.
    ready: VecDeque<KRec>,
    limiter: ShardLimiter,
}

#[derive(Debug)]
struct Parked {
    rec: KRec,
    shard_id: Arc<str>,
    sequence_number: Arc<str>,
}

/// The sink state machine. Pipeline, as in KPL: `put` → per-shard aggregator (flushed when
/// full or at the oldest record's deadline) → per-shard rate limiter → collector (PutRecords
/// batches, sent when full or at the oldest deadline) → in flight → outcome, or retry with
/// backoff, or re-send after a reshard. Every accepted user record gets exactly one outcome.
///
/// ```
/// use std::time::{Duration, Instant};
/// use kpl_kinesis::sink::{Config, Core, EntryResult, ShardMap, UserRecord};
///
/// let t0 = Instant::now();
/// let mut core = Core::new(Config::default(), t0).unwrap();
/// core.set_shard_map(ShardMap::even(1), t0);
/// let a = core.put(UserRecord::new("a", "x"), t0).unwrap();
/// let b = core.put(UserRecord::new("b", "yz"), t0).unwrap();
/// assert!(core.poll_transmit(t0).is_none()); // waits up to RecordMaxBufferedTime
/// let t1 = core.poll_timeout(t0).unwrap();
/// assert_eq!(t1, t0 + Duration::from_millis(100));
/// let request = core.poll_transmit(t1).unwrap();
/// assert_eq!(request.entries.len(), 1); // one aggregate of two user records
/// core.on_response(request.id, Ok(vec![EntryResult::Stored {
///     shard_id: "shardId-000000000000".into(), sequence_number: "1".into() }]), t1);
/// let (id, outcome) = core.poll_outcome().unwrap();
/// assert_eq!(id, a);
/// assert!(outcome.is_success());
/// assert_eq!(core.poll_outcome().unwrap().0, b);
/// ```
#[derive(Debug)]
pub struct Core {
    config: Config,
    buffered_time: Duration,
    ttl: Duration,
    checker: Aggregator,
    map: Option<ShardMap>,
    epoch: u64,
    shards: Vec<Shard>,
    /// User records waiting for a shard map (none yet, or a refresh after a wrong shard).
    held: VecDeque<(UserRecord, Meta)>,
    /// A map refresh is wanted (start, wrong or unknown shard).
    wants_map: bool,
    collect: VecDeque<KRec>,
    collect_bytes: usize,
    collect_deadline: Option<Instant>,
    retries: BTreeMap<(Instant, u64), KRec>,
    in_flight: BTreeMap<RequestId, Vec<KRec>>,
    /// Bytes of the requests in flight.
    in_flight_bytes: usize,
    /// Most bytes per PutRecords request now: `CollectionMaxSize`, halved after each
    /// request that timed out (a server that slow must get smaller requests, or it never
    /// answers one in time), and grown back by a quarter after each answered one.
    batch_bytes: usize,
    /// Bytes of Kinesis records the stream answered as stored, per second lately: what the
    /// in-flight window is measured against.
    answered: Throughput,
    parked: Vec<Parked>,
    outcomes: VecDeque<(RecordId, Outcome)>,
    next_record: u64,
    next_request: u64,
    next_retry: u64,
    buffered_records: usize,
    buffered_bytes: usize,
    admission: Admission,
    /// The admission account of records put before any shard map.
    no_map: Arc<str>,
    rng: u64,
    stats: Stats,
}

impl Core {
    /// A core with no shard map yet ([`Core::wants_shard_map`] is true).
    pub fn new(config: Config, now: Instant) -> Result<Self, super::ConfigError> {
        config.validate()?;
        let checker = Aggregator::new(config.aggregator()).map_err(|_| super::ConfigError {
            option: "AggregationMaxSize",
            value: config.aggregation_max_size as u64,
            allowed: "64 to 10485760",
        })?;
        Ok(Core {
            batch_bytes: config.collection_max_size,
            answered: Throughput::new(now),
            admission: Admission::new(config.drain_time(), config.buffer_min_bytes),
            no_map: Arc::from(""),
            buffered_time: config.buffered_time(),
            ttl: config.ttl(),
            rng: config.seed | 1,
            config,
            checker,
            map: None,
            epoch: 0,
            shards: Vec::new(),
            held: VecDeque::new(),
            wants_map: true,
            collect: VecDeque::new(),
            collect_bytes: 0,
            collect_deadline: None,
            retries: BTreeMap::new(),
            in_flight: BTreeMap::new(),
            in_flight_bytes: 0,
            parked: Vec::new(),
            outcomes: VecDeque::new(),
            next_record: 0,
            next_request: 0,
            next_retry: 0,
            buffered_records: 0,
            buffered_bytes: 0,
            stats: Stats::default(),
        })
    }

    /// The settings.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The counters so far.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// User records accepted and without an outcome yet (taken or not).
    pub fn buffered_records(&self) -> usize {
        self.buffered_records
    }

    /// Bytes of those user records (data plus partition keys).
    pub fn buffered_bytes(&self) -> usize {
        self.buffered_bytes
    }

    /// PutRecords requests handed out and not answered.
    pub fn in_flight(&self) -> usize {
        self.in_flight.len()
    }

    /// Whether nothing is buffered, in flight or waiting to be taken.
    pub fn is_idle(&self) -> bool {
        self.buffered_records == 0 && self.outcomes.is_empty() && self.in_flight.is_empty()
    }

    /// Whether the driver should fetch the shard map (ListShards) and call
    /// [`Core::set_shard_map`]: at start, and after an aggregate landed on a shard that is
    /// not the one it was built for or that the map does not know.
    pub fn wants_shard_map(&self) -> bool {
        self.wants_map
    }

    /// The current map, if any.
    pub fn shard_map(&self) -> Option<&ShardMap> {
        self.map.as_ref()
    }

    /// Accepts a user record, or says why not. Its outcome comes later from
    /// [`Core::poll_outcome`].
    pub fn put(&mut self, record: UserRecord, now: Instant) -> Result<RecordId, PutError> {
        let input = InputRecord {
            partition_key: &record.partition_key,
            explicit_hash_key: record.explicit_hash_key.as_deref(),
            data: &record.data,
        };
        self.checker.check(&input).map_err(PutError::Invalid)?;
        let size = record.size();
        let hash_key = hash_key_of(&record).map_err(PutError::Invalid)?;
        let account = self.account_of(hash_key);
        if !self.admits(&account, size, now) {
            // Waiting longer to fill aggregates cannot help a producer that has to wait:
            // what is buffered goes out now, so that room comes from outcomes (with a long
            // RecordMaxBufferedTime nothing would otherwise leave before its deadline).
            self.flush(now);
            return Err(PutError::Full(record));
        }
        self.admission.charge(&account, size + RECORD_OVERHEAD, now);
        let id = RecordId(self.next_record);
        self.next_record += 1;
        let meta = Meta {
            id,
            hash_key,
            has_ehk: record.explicit_hash_key.is_some(),
            size,
            deadline: now + self.buffered_time,
            expires: now + self.ttl,
            attempts: 0,
            last_error: None,
            account,
        };
        self.buffered_records += 1;
        self.buffered_bytes += size;
        self.stats.user_records_put += 1;
        self.route(record, meta, false, now);
        Ok(id)
    }

    /// Whether `put` would accept `record` (if valid) at `now`: within the hard bounds
    /// (`MaxBufferedRecords`, `MaxBufferedBytes`) and within what its shard can drain in
    /// `BufferDrainTime` at the throughput it achieved lately ([`Core::shard_budget`]).
    pub fn has_room(&self, record: &UserRecord, now: Instant) -> bool {
        let hash_key = hash_key_of(record).unwrap_or(0);
        self.admits(&self.account_of(hash_key), record.size(), now)
    }

    fn admits(&self, account: &Arc<str>, size: usize, now: Instant) -> bool {
        if self.buffered_records == 0 {
            return size <= self.config.max_buffered_bytes;
        }
        self.buffered_records < self.config.max_buffered_records
            && self.buffered_bytes.saturating_add(size) <= self.config.max_buffered_bytes
            && self.admission.allows(account, size + RECORD_OVERHEAD, now)
    }

    /// The admission account of a hash key: its shard in the current map.
    fn account_of(&self, hash_key: u128) -> Arc<str> {
        self.map
            .as_ref()
            .and_then(|m| self.shards.get(m.route(hash_key)))
            .map_or_else(|| self.no_map.clone(), |s| s.id.clone())
    }

    /// What the admission rule sees of the shard a record with this hash key is charged
    /// to: its buffered records and cost, its throughput and its limit at `now`.
    pub fn shard_budget(&self, hash_key: u128, now: Instant) -> ShardBudget {
        self.admission.budget(&self.account_of(hash_key), now)
    }

    /// Installs the shard map from ListShards (all shards, open and closed). Records held
    /// for want of a map are routed; aggregates built for shards that closed are taken
    /// apart and their user records re-aggregated for the new map.
    pub fn set_shard_map(&mut self, map: ShardMap, now: Instant) {
        self.epoch += 1;
        self.stats.shard_maps += 1;
        let mut old = core::mem::take(&mut self.shards);
        let mut shards = Vec::with_capacity(map.len());
        for i in 0..map.len() {
            let Some((id, range)) = map.open_shard(i) else {
                continue;
            };
            match old.iter().position(|s| s.id == *id && s.range == range) {
                Some(pos) => shards.push(old.swap_remove(pos)),
                None => shards.push(self.new_shard(id.clone(), range, now)),
            }
        }
        self.shards = shards;
        let open: Vec<Arc<str>> = self.shards.iter().map(|s| s.id.clone()).collect();
        self.admission.retain(|id| open.iter().any(|o| &**o == id));
        self.map = Some(map);
        self.wants_map = false;
        // Shards that are gone: take their records apart.
        for mut shard in old {
            while let Some(rec) = shard.aggregator.flush() {
                let rec = take_krec(rec, &mut shard.pending, self.epoch, now);
                self.requeue(rec, now, false);
            }
            for rec in shard.ready {
                self.requeue(rec, now, false);
            }
        }
        // Kinesis records waiting for a request: re-check them against the new map.
        let collect = core::mem::take(&mut self.collect);
        self.collect_bytes = 0;
        self.collect_deadline = None;
        for rec in collect {
            self.resubmit(rec, now);
        }
        let held = core::mem::take(&mut self.held);
        for (record, meta) in held {
            self.route(record, meta, false, now);
        }
        // Parked aggregates: this map was fetched after they landed, so one on a shard that
        // does not hold them all, or that even this map does not list, is re-aggregated for
        // it, not held for yet another map (which could be wanted, and the records parked
        // past their TTL, forever).
        let parked = core::mem::take(&mut self.parked);
        for p in parked {
            match self.map.as_ref().and_then(|m| m.range_of(&p.shard_id)) {
                Some(range) if p.rec.fits(range) => {
                    self.succeed(p.rec, p.shard_id, p.sequence_number, Some(now))
                }
                _ => {
                    self.stats.wrong_shard_resends += 1;
                    self.requeue(p.rec, now, false);
                }
            }
        }
    }

    /// Installs a map from ListShards' shard list; on a list that is not usable (during a
    /// reshard it can briefly be inconsistent) nothing changes and a refresh stays wanted.
    pub fn set_shards(&mut self, shards: &[ShardInfo], now: Instant) -> Result<(), ShardMapError> {
        let map = ShardMap::new(shards)?;
        self.set_shard_map(map, now);
        Ok(())
    }

    fn new_shard(&self, id: Arc<str>, range: HashRange, now: Instant) -> Shard {
        let pct = self.config.rate_limit;
        let scale = |rate: u64| (rate.saturating_mul(pct) / 100).max(1);
        Shard {
            id,
            range,
            aggregator: self.checker.clone(),
            pending: VecDeque::new(),
            ready: VecDeque::new(),
            limiter: ShardLimiter::new(
                scale(self.config.shard_records_per_second),
                scale(self.config.shard_bytes_per_second),
                now,
            ),
        }
    }

    /// Sends everything buffered as soon as the rate limits and the in-flight limit allow,
    /// without waiting for deadlines or for batches to fill. Retries keep their backoff.
    pub fn flush(&mut self, now: Instant) {
        let epoch = self.epoch;
        for shard in &mut self.shards {
            while let Some(rec) = shard.aggregator.flush() {
                let rec = take_krec(rec, &mut shard.pending, epoch, now);
                shard.ready.push_back(rec);
            }
            for rec in &mut shard.ready {
                rec.deadline = rec.deadline.min(now);
            }
        }
        for (_, meta) in &mut self.held {
            meta.deadline = meta.deadline.min(now);
        }
        for rec in &mut self.collect {
            rec.deadline = rec.deadline.min(now);
        }
        if !self.collect.is_empty() {
            self.collect_deadline = Some(self.collect_deadline.map_or(now, |d| d.min(now)));
        }
    }

    /// Processes what is due at `now`: deadline flushes, retries, rate-limited records.
    pub fn handle_timeout(&mut self, now: Instant) {
        // Records without a usable map: sent alone once due (always shard-safe).
        if self.map.is_some() && !self.wants_map && !self.held.is_empty() {
            let held = core::mem::take(&mut self.held);
            for (record, meta) in held {
                self.route(record, meta, false, now);
            }
        }
        while self.held.front().is_some_and(|(_, m)| m.deadline <= now) {
            if let Some((record, meta)) = self.held.pop_front() {
                let rec = raw_krec(record, meta, self.epoch);
                match self.map.as_ref().map(|m| m.route(rec.hash_key)) {
                    Some(i) if i < self.shards.len() => self.shards[i].ready.push_back(rec),
                    _ => self.push_collect(rec),
                }
            }
        }
        let epoch = self.epoch;
        for shard in &mut self.shards {
            while shard.pending.front().is_some_and(|m| m.deadline <= now) {
                let Some(rec) = shard.aggregator.flush() else {
                    break;
                };
                let rec = take_krec(rec, &mut shard.pending, epoch, now);
                shard.ready.push_back(rec);
            }
        }
        while let Some(entry) = self.retries.first_entry() {
            if entry.key().0 > now {
                break;
            }
            let rec = entry.remove();
            self.resubmit(rec, now);
        }
        // The rate limiter, shard by shard.
        let mut passed = Vec::new();
        for shard in &mut self.shards {
            while let Some(rec) = shard.ready.front() {
                let size = rec.size() as u64;
                if !shard.limiter.available(size, now) {
                    break;
                }
                shard.limiter.take(size);
                if let Some(rec) = shard.ready.pop_front() {
                    passed.push(rec);
                }
            }
        }
        for rec in passed {
            self.push_collect(rec);
        }
    }

    /// The next PutRecords request to send, if one is due (a batch is full, or its oldest
    /// record reached its deadline) and fewer than `MaxConnections` are in flight.
    pub fn poll_transmit(&mut self, now: Instant) -> Option<Transmit> {
        self.handle_timeout(now);
        loop {
            if !self.may_send(now) || self.collect.is_empty() {
                return None;
            }
            let full = self.collect.len() >= self.config.collection_max_count
                || self.collect_bytes >= self.batch_bytes;
            let due = self.collect_deadline.is_some_and(|d| d <= now);
            if !full && !due {
                return None;
            }
            let mut batch: Vec<KRec> = Vec::new();
            let mut bytes = 0usize;
            let max_bytes = self.batch_bytes.min(self.flight_room(now));
            while let Some(rec) = self.collect.front() {
                let size = rec.size();
                if batch.len() >= self.config.collection_max_count
                    || (!batch.is_empty() && bytes + size > max_bytes)
                {
                    break;
                }
                let Some(rec) = self.collect.pop_front() else {
                    break;
                };
                self.collect_bytes -= size;
                if let Some(rec) = self.expire(rec, now) {
                    bytes += size;
                    batch.push(rec);
                }
            }
            self.collect_deadline = self.collect.iter().map(|r| r.deadline).min();
            if batch.is_empty() {
                continue;
            }
            let id = RequestId(self.next_request);
            self.next_request += 1;
            let mut entries = Vec::with_capacity(batch.len());
            for rec in &mut batch {
                for u in &mut rec.users {
                    u.attempts += 1;
                }
                entries.push(PutEntry {
                    partition_key: rec.partition_key.clone(),
                    explicit_hash_key: rec.explicit_hash_key.clone(),
                    data: rec.data.clone(),
                    user_records: rec.users.len(),
                });
            }
            self.stats.put_records_calls += 1;
            self.stats.kinesis_records_sent += batch.len() as u64;
            self.stats.bytes_sent += bytes as u64;
            self.in_flight_bytes += bytes;
            self.in_flight.insert(id, batch);
            return Some(Transmit { id, entries });
        }
    }

    /// Whether another request may go out: fewer than `MaxConnections` in flight, and room
    /// in the in-flight window ([`Core::flight_room`]); one request may always go.
    fn may_send(&self, now: Instant) -> bool {
        self.in_flight.len() < self.config.max_connections
            && (self.in_flight.is_empty() || self.flight_room(now) > 0)
    }

    /// Bytes that may still go out now: when the drain rule is on, the bytes in flight stay
    /// within what the stream answered as stored in half a `RequestTimeout` lately (at least
    /// `BufferMinBytes`), so that a slow stream is not handed requests it cannot answer
    /// before they time out; a request is built no larger (but holds at least one record).
    fn flight_room(&self, now: Instant) -> usize {
        if self.config.drain_time().is_zero() {
            return usize::MAX;
        }
        let window = (u128::from(self.answered.per_second(now))
            * u128::from(self.config.request_timeout)
            / 2000)
            .max(self.config.buffer_min_bytes as u128);
        usize::try_from(window)
            .unwrap_or(usize::MAX)
            .saturating_sub(self.in_flight_bytes)
    }

    /// When [`Core::handle_timeout`] (or [`Core::poll_transmit`]) has work next, if ever.
    pub fn poll_timeout(&mut self, now: Instant) -> Option<Instant> {
        let mut next: Option<Instant> = None;
        let mut at = |t: Instant| next = Some(next.map_or(t, |n: Instant| n.min(t)));
        if let Some((_, m)) = self.held.front() {
            at(m.deadline);
        }
        if self.map.is_some() && !self.wants_map && !self.held.is_empty() {
            at(now);
        }
        for shard in &mut self.shards {
            if let Some(m) = shard.pending.front() {
                at(m.deadline);
            }
            if let Some(rec) = shard.ready.front() {
                let size = rec.size() as u64;
                at(shard.limiter.ready_at(size, now));
            }
        }
        if self.may_send(now) {
            if let Some(d) = self.collect_deadline {
                at(d);
            }
            if self.collect.len() >= self.config.collection_max_count
                || self.collect_bytes >= self.batch_bytes
            {
                at(now);
            }
        }
        if let Some((&(due, _), _)) = self.retries.first_key_value() {
            at(due);
        }
        next
    }

    /// Hands in the answer to a request from [`Core::poll_transmit`]: per-entry results in
    /// request order, or a failure of the whole call. Unknown ids are ignored.
    pub fn on_response(
        &mut self,
        id: RequestId,
        response: Result<Vec<EntryResult>, RequestFailure>,
        now: Instant,
    ) {
        let Some(batch) = self.in_flight.remove(&id) else {
            return;
        };
        let sent: usize = batch.iter().map(KRec::size).sum();
        self.in_flight_bytes = self.in_flight_bytes.saturating_sub(sent);
        let attempts = batch
            .iter()
            .flat_map(|r| r.users.iter().map(|u| u.attempts))
            .max()
            .unwrap_or(1);
        let delay = self.backoff(attempts);
        match &response {
            Err(f) if f.error.code == "Timeout" || f.error.code == GUARD_TIMEOUT => {
                self.batch_bytes = self.batch_bytes.min(sent / 2).max(1);
            }
            _ => {
                self.batch_bytes = self
                    .batch_bytes
                    .saturating_add(self.batch_bytes.div_ceil(4))
                    .min(self.config.collection_max_size);
            }
        }
        let results = match response {
            Ok(results) if results.len() == batch.len() => results,
            Ok(results) => {
                let error = ErrorInfo {
                    code: "ResponseError".into(),
                    message: format!(
                        "PutRecords answered {} entries for {} records",
                        results.len(),
                        batch.len()
                    ),
                };
                self.count_retry(&error.code);
                for rec in batch {
                    self.retry(rec, error.clone(), now, delay);
                }
                return;
            }
            Err(failure) => {
                if failure.retryable {
                    self.count_retry(&failure.error.code);
                }
                for rec in batch {
                    if failure.retryable {
                        self.retry(rec, failure.error.clone(), now, delay);
                    } else {
                        self.fail_all(rec, FailureReason::Rejected(failure.error.clone()));
                    }
                }
                return;
            }
        };
        for (rec, result) in batch.into_iter().zip(results) {
            match result {
                EntryResult::Stored {
                    shard_id,
                    sequence_number,
                } => {
                    self.answered.on_stored(rec.size(), now);
                    self.settle_stored(rec, shard_id.into(), sequence_number.into(), now)
                }
                EntryResult::Failed(error) => {
                    if error.code == "ProvisionedThroughputExceededException" {
                        self.on_throttled(rec.hash_key, now);
                    }
                    if retryable_record_error(&error.code) {
                        self.count_retry(&error.code);
                        self.retry(rec, error, now, delay);
                    } else {
                        self.fail_all(rec, FailureReason::Rejected(error));
                    }
                }
            }
        }
    }

    /// The next outcome, in the order they were decided.
    pub fn poll_outcome(&mut self) -> Option<(RecordId, Outcome)> {
        self.outcomes.pop_front()
    }

    /// Ends the sink: every user record not yet stored or in flight fails with
    /// [`FailureReason::Shutdown`]; records in flight fail too, though Kinesis may have
    /// stored them (their answer will not be read). Parked records (stored, shard not yet
    /// checked) are reported stored.
    pub fn abort(&mut self) {
        let held = core::mem::take(&mut self.held);
        for (_, meta) in held {
            self.emit_failure(meta, FailureReason::Shutdown);
        }
        let shards = core::mem::take(&mut self.shards);
        for shard in shards {
            for meta in shard.pending {
                self.emit_failure(meta, FailureReason::Shutdown);
            }
            for rec in shard.ready {
                self.fail_all(rec, FailureReason::Shutdown);
            }
        }
        self.map = None;
        let collect = core::mem::take(&mut self.collect);
        self.collect_bytes = 0;
        self.collect_deadline = None;
        let retries = core::mem::take(&mut self.retries);
        let in_flight = core::mem::take(&mut self.in_flight);
        self.in_flight_bytes = 0;
        for rec in collect
            .into_iter()
            .chain(retries.into_values())
            .chain(in_flight.into_values().flatten())
        {
            self.fail_all(rec, FailureReason::Shutdown);
        }
        let parked = core::mem::take(&mut self.parked);
        for p in parked {
            self.succeed(p.rec, p.shard_id, p.sequence_number, None);
        }
    }

    // ---- internals ----

    /// Puts a user record where it goes next: its shard's aggregator, or the held queue.
    fn route(&mut self, record: UserRecord, meta: Meta, hold: bool, now: Instant) {
        let Some(map) = self.map.as_ref().filter(|_| !hold) else {
            self.held.push_back((record, meta));
            return;
        };
        let index = map.route(meta.hash_key);
        let epoch = self.epoch;
        let Some(shard) = self.shards.get_mut(index) else {
            self.held.push_back((record, meta));
            return;
        };
        if !self.config.aggregation_enabled {
            shard.ready.push_back(raw_krec(record, meta, epoch));
            return;
        }
        let input = InputRecord {
            partition_key: &record.partition_key,
            explicit_hash_key: record.explicit_hash_key.as_deref(),
            data: &record.data,
        };
        match shard.aggregator.add(input) {
            Ok(emitted) => {
                shard.pending.push_back(meta);
                if let Some(rec) = emitted {
                    let rec = take_krec(rec, &mut shard.pending, epoch, now);
                    shard.ready.push_back(rec);
                }
            }
            Err(e) => self.emit_failure(meta, FailureReason::Internal(e.to_string())),
        }
    }

    fn push_collect(&mut self, rec: KRec) {
        self.collect_bytes += rec.size();
        self.collect_deadline = Some(
            self.collect_deadline
                .map_or(rec.deadline, |d| d.min(rec.deadline)),
        );
        self.collect.push_back(rec);
    }

    /// Returns the record unchanged when no user record in it is past its TTL; otherwise
    /// those fail and the rest go back through the pipeline.
    fn expire(&mut self, rec: KRec, now: Instant) -> Option<KRec> {
        if rec.users.iter().all(|u| u.expires > now) {
            return Some(rec);
        }
        self.requeue(rec, now, false);
        None
    }

    /// A Kinesis record due again (retry, or re-check after a new map): expired user
    /// records fail; an aggregate that no longer fits one open shard is re-aggregated.
    fn resubmit(&mut self, rec: KRec, now: Instant) {
        let Some(mut rec) = self.expire(rec, now) else {
            return;
        };
        let Some(map) = self.map.as_ref() else {
            self.push_collect(rec);
            return;
        };
        let index = map.route(rec.hash_key);
        let Some(shard) = self.shards.get_mut(index) else {
            self.push_collect(rec);
            return;
        };
        if rec.aggregated() && rec.epoch != self.epoch {
            if !rec.fits(shard.range) {
                self.requeue(rec, now, false);
                return;
            }
            rec.epoch = self.epoch;
        }
        // Ahead of records that never went out: a record retried on a throttled shard is
        // older than any of them, and would otherwise queue behind newer ones until its TTL.
        shard.ready.push_front(rec);
    }

    /// A Kinesis record was stored on `shard_id`: success for its user records, unless it
    /// is an aggregate on a shard that does not hold them all (KCL would drop it).
    fn settle_stored(
        &mut self,
        rec: KRec,
        shard_id: Arc<str>,
        sequence_number: Arc<str>,
        now: Instant,
    ) {
        if !rec.aggregated() {
            self.succeed(rec, shard_id, sequence_number, Some(now));
            return;
        }
        match self.map.as_ref().and_then(|m| m.range_of(&shard_id)) {
            Some(range) if rec.fits(range) => {
                self.succeed(rec, shard_id, sequence_number, Some(now))
            }
            Some(_) => {
                // A reshard moved the key space: every user record goes again, for the new map.
                self.stats.wrong_shard_resends += 1;
                self.wants_map = true;
                self.requeue(rec, now, true);
            }
            None => {
                // A shard the map does not know (it is older than a reshard): decide once
                // a fresh map is in.
                self.wants_map = true;
                self.parked.push(Parked {
                    rec,
                    shard_id,
                    sequence_number,
                });
            }
        }
    }

    /// Success for the user records of `rec`; `stored_at` is when the answer came (they
    /// then count toward their shard's throughput), `None` at abort.
    fn succeed(
        &mut self,
        rec: KRec,
        shard_id: Arc<str>,
        sequence_number: Arc<str>,
        stored_at: Option<Instant>,
    ) {
        let aggregated = rec.aggregated();
        self.stats.kinesis_records_stored += 1;
        for (i, meta) in rec.users.into_iter().enumerate() {
            self.stats.user_records_stored += 1;
            self.release(&meta, stored_at);
            self.outcomes.push_back((
                meta.id,
                Outcome::Success(Success {
                    shard_id: shard_id.clone(),
                    sequence_number: sequence_number.clone(),
                    sub_sequence_number: i as u64,
                    aggregated,
                    attempts: meta.attempts,
                }),
            ));
        }
    }

    /// The shard of `hash_key` throttled: it is sent to more slowly for a while.
    fn on_throttled(&mut self, hash_key: u128, now: Instant) {
        if let Some(i) = self.map.as_ref().map(|m| m.route(hash_key)) {
            if let Some(shard) = self.shards.get_mut(i) {
                shard.limiter.on_throttled(now);
            }
        }
    }

    /// Counts a retry in `retries_by_code`: per Kinesis record for entry errors, once per
    /// request for whole failures.
    fn count_retry(&mut self, code: &str) {
        *self
            .stats
            .retries_by_code
            .entry(code.to_owned())
            .or_default() += 1;
    }

    /// Schedules a retry after `delay` (one draw per response, so that the records of a
    /// failed request come due together and go out together again).
    fn retry(&mut self, mut rec: KRec, error: ErrorInfo, now: Instant, delay: Duration) {
        for u in &mut rec.users {
            u.last_error = Some(error.clone());
        }
        let earliest_expiry = rec.users.iter().map(|u| u.expires).min().unwrap_or(now);
        let due = (now + delay).min(earliest_expiry).max(now);
        self.retries.insert((due, self.next_retry), rec);
        self.next_retry += 1;
    }

    /// `RetryBackoffMin * 2^(attempts-1)`, at most `RetryBackoffMax`, with jitter: a
    /// uniform draw in its upper half.
    fn backoff(&mut self, attempts: u32) -> Duration {
        let shift = attempts.saturating_sub(1).min(20);
        let base = self
            .config
            .retry_backoff_min
            .saturating_mul(1 << shift)
            .min(self.config.retry_backoff_max)
            .max(1);
        // xorshift64*
        self.rng ^= self.rng >> 12;
        self.rng ^= self.rng << 25;
        self.rng ^= self.rng >> 27;
        let r = self.rng.wrapping_mul(0x2545_F491_4F6C_DD1D);
        let half = base / 2;
        Duration::from_millis(base - half + r % (half + 1))
    }

    fn fail_all(&mut self, rec: KRec, reason: FailureReason) {
        for meta in rec.users {
            self.emit_failure(meta, reason.clone());
        }
    }

    fn emit_failure(&mut self, meta: Meta, reason: FailureReason) {
        self.stats.user_records_failed += 1;
        self.release(&meta, None);
        self.outcomes.push_back((
            meta.id,
            Outcome::Failure(Failure {
                reason,
                attempts: meta.attempts,
            }),
        ));
    }

    fn release(&mut self, meta: &Meta, stored_at: Option<Instant>) {
        self.buffered_records -= 1;
        self.buffered_bytes -= meta.size;
        self.admission
            .release(&meta.account, meta.size + RECORD_OVERHEAD, stored_at);
    }

    /// Takes a Kinesis record apart and puts its user records back through the pipeline
    /// (held for the next map when `hold`), keeping their ids, TTLs and attempt counts;
    /// those past their TTL fail instead.
    fn requeue(&mut self, rec: KRec, now: Instant, hold: bool) {
        let mut users = rec.users.into_iter();
        if !rec.aggregated {
            if let Some(mut meta) = users.next() {
                if meta.expires <= now {
                    let last = meta.last_error.clone();
                    self.emit_failure(meta, FailureReason::Expired(last));
                    return;
                }
                meta.deadline = (now + self.buffered_time).min(meta.expires);
                let record = UserRecord {
                    explicit_hash_key: meta.has_ehk.then(|| rec.explicit_hash_key.clone()),
                    partition_key: rec.partition_key,
                    data: rec.data,
                };
                self.route(record, meta, hold, now);
            }
            return;
        }
        let options = Options {
            policy: Policy::Strict,
            verify_md5: false,
            shard_range: None,
        };
        let mut records = Vec::with_capacity(users.len());
        if let Ok(decoded) = deaggregate(&rec.data, rec.partition_key.as_bytes(), &options) {
            for user in decoded {
                let Ok(partition_key) = user.partition_key_str() else {
                    break;
                };
                let explicit_hash_key = match user.explicit_hash_key_str() {
                    Some(Ok(text)) => Some(text.to_owned()),
                    Some(Err(_)) => break,
                    None => None,
                };
                records.push(UserRecord {
                    partition_key: partition_key.to_owned(),
                    explicit_hash_key,
                    data: user.data.to_vec(),
                });
            }
        }
        let mut records = records.into_iter();
        for mut meta in users {
            match records.next() {
                Some(_) if meta.expires <= now => {
                    let last = meta.last_error.clone();
                    self.emit_failure(meta, FailureReason::Expired(last));
                }
                Some(record) => {
                    meta.deadline = (now + self.buffered_time).min(meta.expires);
                    self.route(record, meta, hold, now);
                }
                None => self.emit_failure(
                    meta,
                    FailureReason::Internal("could not read back an aggregate built here".into()),
                ),
            }
        }
    }
}

/// A user record's hash key: its explicit hash key, else the MD5 of its partition key.
fn hash_key_of(record: &UserRecord) -> Result<u128, kpl_codec::EncodeError> {
    match record.explicit_hash_key.as_deref() {
        Some(text) => kpl_codec::parse_explicit_hash_key(text),
        None => Ok(kpl_codec::hash_key(record.partition_key.as_bytes())),
    }
}

/// The Kinesis record the aggregator emitted, with the metadata of its user records (the
/// first `user_records` of `pending`).
fn take_krec(rec: KinesisRecord, pending: &mut VecDeque<Meta>, epoch: u64, now: Instant) -> KRec {
    let n = rec.user_records.min(pending.len());
    let users: Vec<Meta> = pending.drain(..n).collect();
    let deadline = users.iter().map(|u| u.deadline).min().unwrap_or(now);
    KRec {
        aggregated: rec.is_aggregated(),
        partition_key: rec.partition_key,
        explicit_hash_key: rec.explicit_hash_key,
        data: rec.data,
        hash_key: rec.hash_key,
        deadline,
        users,
        epoch,
    }
}

/// A user record sent alone, as KPL sends it: its own key, its hash key always explicit.
fn raw_krec(record: UserRecord, meta: Meta, epoch: u64) -> KRec {
    let mut buf = [0u8; 39];
    let ehk = kpl_codec::write_decimal(meta.hash_key, &mut buf).to_owned();
    KRec {
        partition_key: record.partition_key,
        explicit_hash_key: ehk,
        data: record.data,
        hash_key: meta.hash_key,
        deadline: meta.deadline,
        aggregated: false,
        users: vec![meta],
        epoch,
    }
}
