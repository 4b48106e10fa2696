//! The sans-IO sink: a deterministic state machine that is handed user records, the shard
//! map, PutRecords outcomes and the time, and hands back PutRecords batches, the next
//! deadline and one outcome per user record. No I/O, no clock, no threads.
//!
//! Pipeline, as in KPL: `put` → per-shard [`Aggregator`] (flushed when full or at the
//! oldest record's deadline) → per-shard rate limiter (token buckets) → collector
//! (PutRecords batches, sent when full or at the oldest deadline) → in flight → outcome,
//! or retry with backoff, or re-send after a reshard.
//!
//! Where an accepted user record can be, until its one outcome (exactly one place at a
//! time; [`Core::check_invariants`] checks it):
//! - held, waiting for a shard map (there is none yet, or it came back from a wrong shard
//!   and waits for the next one);
//! - in its shard's open aggregate: the [`Aggregator`]'s encoding, with the records it
//!   holds kept beside it, in order;
//! - in a Kinesis record ([`records::Outbound`]: an aggregate or the record alone, always
//!   with its user records beside its bytes) in its shard's ready queue (the rate limiter),
//!   in the collector, waiting for a retry, in a request in flight, or parked (stored on a
//!   shard the map does not know, until the next map).
//!
//! An aggregate only ever holds user records of one open shard of the map it was built
//! with, and is re-checked against the current map before it is sent again. One taken
//! apart (some of its records expired, or it no longer fits one shard) puts its user records
//! back through the pipeline as they were put: nothing is decoded. The price: the bytes of
//! a user record in an aggregate are held twice until its outcome, in the aggregate's
//! encoding and packed beside it ([`records::Packed`]), and copied once more (a tenth of
//! the core's throughput in the sink bench, against freeing them once encoded).
//!
//! The driver's loop: [`Core::handle_timeout`] (timer work: deadlines, retries, rate
//! limits, TTLs), then [`Core::poll_transmit`] until it is empty (it only hands out
//! requests), then sleep until [`Core::poll_timeout`] or the next event.

mod collector;
mod invariants;
mod records;

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use kpl_codec::{Aggregator, HashRange};

use self::collector::Collector;
use self::records::{input_of, seal_batch, Accepted, Meta, Outbound};
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

/// Builds with `debug_assertions` check the invariants after every call that changes the
/// core while it buffers at most this many user records: the check walks them all, and
/// beyond that it would make a debug build's run quadratic (the scenario tests took 300
/// times as long checking always).
#[cfg(debug_assertions)]
const SELF_CHECK_RECORDS: usize = 64;

/// One open shard of the map: its aggregate being filled, the Kinesis records waiting for
/// its rate limiter, and the limiter.
#[derive(Debug)]
struct Shard {
    id: Arc<str>,
    range: HashRange,
    /// The open aggregate's encoding.
    aggregator: Aggregator,
    /// The user records inside `aggregator`, in the same order.
    open: VecDeque<Accepted>,
    /// Kinesis records waiting for the rate limiter.
    ready: VecDeque<Outbound>,
    limiter: ShardLimiter,
}

/// An aggregate stored on a shard the map does not know, until a fresh map tells whether
/// that shard holds all its user records.
#[derive(Debug)]
struct Parked {
    rec: Outbound,
    shard_id: Arc<str>,
    sequence_number: Arc<str>,
}

/// With which shard map user records taken out of a Kinesis record go through the
/// pipeline again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reroute {
    /// The current one (expiry of some of its records, a reshard seen in the map).
    WithCurrentMap,
    /// The next one, wanted now: the record landed on a shard that does not hold them
    /// all, so the current map is out of date. They are held until it comes (or sent alone
    /// at their deadline).
    WithNextMap,
}

/// The sink state machine. Pipeline, as in KPL: `put` → per-shard aggregator (flushed when
/// full or at the oldest record's deadline) → per-shard rate limiter → collector (PutRecords
/// batches, sent when full or at the oldest deadline) → in flight → outcome, or retry with
/// backoff, or re-send after a reshard. Every accepted user record gets exactly one outcome.
///
/// A driver calls [`Core::handle_timeout`] then [`Core::poll_transmit`] (until `None`)
/// whenever something happened or [`Core::poll_timeout`] is reached.
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
/// core.handle_timeout(t0);
/// assert!(core.poll_transmit(t0).is_none()); // waits up to RecordMaxBufferedTime
/// let t1 = core.poll_timeout(t0).unwrap();
/// assert_eq!(t1, t0 + Duration::from_millis(100));
/// core.handle_timeout(t1);
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
    /// Validates records at `put`; cloned (empty) for each new shard.
    checker: Aggregator,
    map: Option<ShardMap>,
    /// Shard map generation: incremented by each map installed.
    epoch: u64,
    /// The open shards of `map`, index for index.
    shards: Vec<Shard>,
    /// User records waiting for a shard map (none yet, or the next one after a wrong shard).
    held: VecDeque<Accepted>,
    /// A map refresh is wanted (start, wrong or unknown shard).
    wants_map: bool,
    collector: Collector,
    /// Kinesis records waiting out their backoff, by due time (then a sequence number).
    retries: BTreeMap<(Instant, u64), Outbound>,
    in_flight: BTreeMap<RequestId, Vec<Outbound>>,
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
            collector: Collector::default(),
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
        self.put_keyed(record, None, now)
    }

    /// [`Core::put`] of each record in order, with the same result for each (a record
    /// refused as [`PutError::Full`] is handed back in its result), but the hash keys of
    /// their partition keys computed all at once, side by side in SIMD lanes
    /// ([`kpl_codec::hash_keys`]) rather than one MD5 per `put`.
    ///
    /// ```
    /// use std::time::Instant;
    /// use kpl_kinesis::sink::{Config, Core, ShardMap, UserRecord};
    ///
    /// let t0 = Instant::now();
    /// let mut core = Core::new(Config::default(), t0).unwrap();
    /// core.set_shard_map(ShardMap::even(2), t0);
    /// let records = vec![UserRecord::new("a", "x"), UserRecord::new("", "y")];
    /// let results = core.put_batch(records, t0);
    /// assert!(results[0].is_ok());
    /// assert!(results[1].is_err()); // an empty partition key, refused as `put` would
    /// ```
    pub fn put_batch(
        &mut self,
        records: Vec<UserRecord>,
        now: Instant,
    ) -> Vec<Result<RecordId, PutError>> {
        let hashed = partition_hash_keys(&records);
        records
            .into_iter()
            .zip(hashed)
            .map(|(record, hash_key)| self.put_keyed(record, hash_key, now))
            .collect()
    }

    /// [`Core::put`], the hash key of the record's partition key already computed if
    /// given: it must be what [`partition_hash_keys`] gave for this record.
    pub(crate) fn put_keyed(
        &mut self,
        record: UserRecord,
        hash_key: Option<u128>,
        now: Instant,
    ) -> Result<RecordId, PutError> {
        self.checker
            .check(&input_of(&record))
            .map_err(PutError::Invalid)?;
        let size = record.size();
        let hash_key = match hash_key {
            Some(hash_key) => hash_key,
            None => hash_key_of(&record).map_err(PutError::Invalid)?,
        };
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
        let accepted = Accepted {
            record,
            meta: Meta {
                id,
                hash_key,
                size,
                deadline: now + self.buffered_time,
                expires: now + self.ttl,
                attempts: 0,
                last_error: None,
                account,
            },
        };
        self.buffered_records += 1;
        self.buffered_bytes += size;
        self.stats.user_records_put += 1;
        self.route(accepted);
        self.debug_check();
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
        let mut old = std::mem::take(&mut self.shards);
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
        // Shards that are gone: their user records go through the pipeline again.
        for shard in old {
            self.requeue(shard.open, now, Reroute::WithCurrentMap);
            for rec in shard.ready {
                self.requeue(rec.into_accepted(), now, Reroute::WithCurrentMap);
            }
        }
        // Kinesis records waiting for a request: re-check them against the new map.
        for rec in self.collector.take_all() {
            self.resubmit(rec, now);
        }
        let held = std::mem::take(&mut self.held);
        for accepted in held {
            self.route(accepted);
        }
        // Parked aggregates: this map was fetched after they landed, so one on a shard that
        // does not hold them all, or that even this map does not list, is re-aggregated for
        // it, not held for yet another map (which could be wanted, and the records parked
        // past their TTL, forever).
        let parked = std::mem::take(&mut self.parked);
        for p in parked {
            match self.map.as_ref().and_then(|m| m.range_of(&p.shard_id)) {
                Some(range) if p.rec.fits(range) => {
                    self.succeed(p.rec, p.shard_id, p.sequence_number, Some(now))
                }
                _ => {
                    self.stats.wrong_shard_resends += 1;
                    self.requeue(p.rec.into_accepted(), now, Reroute::WithCurrentMap);
                }
            }
        }
        self.debug_check();
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
            open: VecDeque::new(),
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
            while let Some(rec) = shard.aggregator.flush_unsealed() {
                match Outbound::emitted(rec, &mut shard.open, epoch) {
                    Some(rec) => shard.ready.push_back(rec),
                    None => break,
                }
            }
            for rec in &mut shard.ready {
                rec.deadline = rec.deadline.min(now);
            }
        }
        for accepted in &mut self.held {
            accepted.meta.deadline = accepted.meta.deadline.min(now);
        }
        self.collector.hasten(now);
        self.debug_check();
    }

    /// Does what is due at `now`, and only that: held records past their deadline go
    /// alone, open aggregates past their oldest record's deadline close, retries past their
    /// backoff go again, Kinesis records pass their shard's rate limiter into the collector
    /// as its tokens allow, and user records there past their TTL fail. Call it before
    /// [`Core::poll_transmit`], at least at [`Core::poll_timeout`].
    pub fn handle_timeout(&mut self, now: Instant) {
        self.send_held_alone(now);
        self.close_due_aggregates(now);
        self.resubmit_due_retries(now);
        self.pass_rate_limiters(now);
        self.expire_collected(now);
        self.debug_check();
    }

    /// Held records past their deadline are sent alone: always shard-safe, with or without
    /// a map.
    fn send_held_alone(&mut self, now: Instant) {
        while self.held.front().is_some_and(|a| a.meta.deadline <= now) {
            let Some(accepted) = self.held.pop_front() else {
                break;
            };
            let rec = Outbound::alone(accepted, self.epoch);
            match self.map.as_ref().map(|m| m.route(rec.hash_key)) {
                Some(i) if i < self.shards.len() => self.shards[i].ready.push_back(rec),
                _ => self.collector.push(rec),
            }
        }
    }

    /// Open aggregates whose oldest record reached its deadline go to the rate limiter.
    fn close_due_aggregates(&mut self, now: Instant) {
        let epoch = self.epoch;
        for shard in &mut self.shards {
            while shard.open.front().is_some_and(|a| a.meta.deadline <= now) {
                let Some(rec) = shard.aggregator.flush_unsealed() else {
                    break;
                };
                match Outbound::emitted(rec, &mut shard.open, epoch) {
                    Some(rec) => shard.ready.push_back(rec),
                    None => break,
                }
            }
        }
    }

    fn resubmit_due_retries(&mut self, now: Instant) {
        while let Some(entry) = self.retries.first_entry() {
            if entry.key().0 > now {
                break;
            }
            let rec = entry.remove();
            self.resubmit(rec, now);
        }
    }

    /// The rate limiter, shard by shard: what its tokens allow goes to the collector.
    fn pass_rate_limiters(&mut self, now: Instant) {
        for shard in &mut self.shards {
            while let Some(rec) = shard.ready.front() {
                let size = rec.size() as u64;
                if !shard.limiter.available(size, now) {
                    break;
                }
                shard.limiter.take(size);
                if let Some(rec) = shard.ready.pop_front() {
                    self.collector.push(rec);
                }
            }
        }
    }

    /// Kinesis records in the collector holding a user record past its TTL: those fail, the
    /// others go through the pipeline again.
    fn expire_collected(&mut self, now: Instant) {
        if self.collector.expires().is_none_or(|t| t > now) {
            return;
        }
        for rec in self.collector.take_all() {
            if let Some(rec) = self.expire(rec, now) {
                self.collector.push(rec);
            }
        }
    }

    /// The next PutRecords request to send, if one is due (a batch is full, or its oldest
    /// record reached its deadline) and fewer than `MaxConnections` are in flight. It only
    /// hands out what [`Core::handle_timeout`] collected.
    pub fn poll_transmit(&mut self, now: Instant) -> Option<Transmit> {
        if self.collector.is_empty() || !self.may_send(now) {
            return None;
        }
        let due = self.collector.deadline().is_some_and(|d| d <= now);
        if !self.collector_full() && !due {
            return None;
        }
        let max_bytes = self.batch_bytes.min(self.flight_room(now));
        let (mut batch, bytes) = self
            .collector
            .pop_batch(self.config.collection_max_count, max_bytes);
        if batch.is_empty() {
            return None;
        }
        // The aggregates going out for the first time get their MD5s, all in one
        // multi-lane call.
        seal_batch(&mut batch);
        let id = RequestId(self.next_request);
        self.next_request += 1;
        let mut entries = Vec::with_capacity(batch.len());
        for rec in &mut batch {
            for u in rec.metas_mut() {
                u.attempts += 1;
            }
            entries.push(rec.entry());
        }
        self.stats.put_records_calls += 1;
        self.stats.kinesis_records_sent += batch.len() as u64;
        self.stats.bytes_sent += bytes as u64;
        self.in_flight_bytes += bytes;
        self.in_flight.insert(id, batch);
        self.debug_check();
        Some(Transmit { id, entries })
    }

    /// Whether the collector holds a full request's worth.
    fn collector_full(&self) -> bool {
        self.collector.len() >= self.config.collection_max_count
            || self.collector.bytes() >= self.batch_bytes
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

    /// When [`Core::handle_timeout`] has work next, or [`Core::poll_transmit`] a request,
    /// if ever.
    pub fn poll_timeout(&mut self, now: Instant) -> Option<Instant> {
        let mut next: Option<Instant> = None;
        let mut at = |t: Instant| next = Some(next.map_or(t, |n: Instant| n.min(t)));
        if let Some(a) = self.held.front() {
            at(a.meta.deadline);
        }
        for shard in &mut self.shards {
            if let Some(a) = shard.open.front() {
                at(a.meta.deadline);
            }
            if let Some(rec) = shard.ready.front() {
                let size = rec.size() as u64;
                at(shard.limiter.ready_at(size, now));
            }
        }
        if let Some(t) = self.collector.expires() {
            at(t);
        }
        if !self.collector.is_empty() && self.may_send(now) {
            if let Some(d) = self.collector.deadline() {
                at(d);
            }
            if self.collector_full() {
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
        self.settle_response(batch, response, now);
        self.debug_check();
    }

    fn settle_response(
        &mut self,
        batch: Vec<Outbound>,
        response: Result<Vec<EntryResult>, RequestFailure>,
        now: Instant,
    ) {
        let sent: usize = batch.iter().map(Outbound::size).sum();
        self.in_flight_bytes = self.in_flight_bytes.saturating_sub(sent);
        let attempts = batch
            .iter()
            .flat_map(|r| r.metas().map(|u| u.attempts))
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
        let held = std::mem::take(&mut self.held);
        for accepted in held {
            self.emit_failure(accepted.meta, FailureReason::Shutdown);
        }
        let shards = std::mem::take(&mut self.shards);
        for shard in shards {
            for accepted in shard.open {
                self.emit_failure(accepted.meta, FailureReason::Shutdown);
            }
            for rec in shard.ready {
                self.fail_all(rec, FailureReason::Shutdown);
            }
        }
        self.map = None;
        let collected = self.collector.take_all();
        let retries = std::mem::take(&mut self.retries);
        let in_flight = std::mem::take(&mut self.in_flight);
        self.in_flight_bytes = 0;
        for rec in collected
            .into_iter()
            .chain(retries.into_values())
            .chain(in_flight.into_values().flatten())
        {
            self.fail_all(rec, FailureReason::Shutdown);
        }
        let parked = std::mem::take(&mut self.parked);
        for p in parked {
            self.succeed(p.rec, p.shard_id, p.sequence_number, None);
        }
        self.debug_check();
    }

    // ---- internals ----

    /// Under `debug_assertions`, while at most `SELF_CHECK_RECORDS` user records are
    /// buffered, panics with the first broken invariant ([`Core::check_invariants`]);
    /// nothing in release builds.
    #[inline]
    fn debug_check(&self) {
        #[cfg(debug_assertions)]
        if self.buffered_records <= SELF_CHECK_RECORDS {
            if let Err(broken) = self.check_invariants() {
                panic!("sink core: {broken}");
            }
        }
    }

    /// Puts a user record where it goes next with the current map: its shard's open
    /// aggregate (its ready queue when aggregation is off), or the held queue while there
    /// is no map.
    fn route(&mut self, accepted: Accepted) {
        let Some(map) = self.map.as_ref() else {
            self.held.push_back(accepted);
            return;
        };
        let index = map.route(accepted.meta.hash_key);
        let epoch = self.epoch;
        let Some(shard) = self.shards.get_mut(index) else {
            // Not reached: the shards are the map's open shards, index for index. A record
            // sent alone is safe on any shard.
            self.collector.push(Outbound::alone(accepted, epoch));
            return;
        };
        if !self.config.aggregation_enabled {
            shard.ready.push_back(Outbound::alone(accepted, epoch));
            return;
        }
        let added = shard.aggregator.add_unsealed(accepted.input());
        match added {
            Ok(emitted) => {
                shard.open.push_back(accepted);
                if let Some(rec) =
                    emitted.and_then(|r| Outbound::emitted(r, &mut shard.open, epoch))
                {
                    shard.ready.push_back(rec);
                }
            }
            Err(e) => self.emit_failure(accepted.meta, FailureReason::Internal(e.to_string())),
        }
    }

    /// Returns the record unchanged when no user record in it is past its TTL; otherwise
    /// those fail and the rest go back through the pipeline.
    fn expire(&mut self, rec: Outbound, now: Instant) -> Option<Outbound> {
        if rec.expires > now {
            return Some(rec);
        }
        self.requeue(rec.into_accepted(), now, Reroute::WithCurrentMap);
        None
    }

    /// A Kinesis record due again (retry, or re-check after a new map): expired user
    /// records fail; an aggregate that no longer fits one open shard is re-aggregated.
    fn resubmit(&mut self, rec: Outbound, now: Instant) {
        let Some(mut rec) = self.expire(rec, now) else {
            return;
        };
        let Some(map) = self.map.as_ref() else {
            self.collector.push(rec);
            return;
        };
        let index = map.route(rec.hash_key);
        let Some(shard) = self.shards.get_mut(index) else {
            self.collector.push(rec);
            return;
        };
        if rec.is_aggregate() && rec.epoch != self.epoch {
            if !rec.fits(shard.range) {
                self.requeue(rec.into_accepted(), now, Reroute::WithCurrentMap);
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
        rec: Outbound,
        shard_id: Arc<str>,
        sequence_number: Arc<str>,
        now: Instant,
    ) {
        if !rec.is_aggregate() {
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
                self.requeue(rec.into_accepted(), now, Reroute::WithNextMap);
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
        rec: Outbound,
        shard_id: Arc<str>,
        sequence_number: Arc<str>,
        stored_at: Option<Instant>,
    ) {
        let aggregated = rec.is_aggregate();
        self.stats.kinesis_records_stored += 1;
        for (i, meta) in rec.into_metas().enumerate() {
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
    /// failed request come due together and go out together again), or at its earliest
    /// TTL if sooner.
    fn retry(&mut self, mut rec: Outbound, error: ErrorInfo, now: Instant, delay: Duration) {
        for u in rec.metas_mut() {
            u.last_error = Some(Box::new(error.clone()));
        }
        let due = (now + delay).min(rec.expires).max(now);
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

    fn fail_all(&mut self, rec: Outbound, reason: FailureReason) {
        for meta in rec.into_metas() {
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

    /// Puts user records taken out of a Kinesis record or an open aggregate back through
    /// the pipeline, keeping their ids, TTLs and attempt counts; those past their TTL fail
    /// instead.
    fn requeue(
        &mut self,
        users: impl IntoIterator<Item = Accepted>,
        now: Instant,
        reroute: Reroute,
    ) {
        for mut accepted in users {
            let meta = &mut accepted.meta;
            if meta.expires <= now {
                let last = meta.last_error.take().map(|e| *e);
                self.emit_failure(accepted.meta, FailureReason::Expired(last));
                continue;
            }
            meta.deadline = (now + self.buffered_time).min(meta.expires);
            match reroute {
                Reroute::WithCurrentMap => self.route(accepted),
                Reroute::WithNextMap => self.held.push_back(accepted),
            }
        }
    }
}

/// For each record without an explicit hash key, the hash key of its partition key (the
/// MD5s computed side by side in SIMD lanes, [`kpl_codec::hash_keys`]); `None` for the
/// others, whose key comes from their explicit hash key.
pub(crate) fn partition_hash_keys(records: &[UserRecord]) -> Vec<Option<u128>> {
    let keys: Vec<&[u8]> = records
        .iter()
        .filter(|r| r.explicit_hash_key.is_none())
        .map(|r| r.partition_key.as_bytes())
        .collect();
    let mut hashed = vec![0u128; keys.len()];
    kpl_codec::hash_keys(&keys, &mut hashed);
    let mut hashed = hashed.into_iter();
    records
        .iter()
        .map(|r| match r.explicit_hash_key {
            None => hashed.next(),
            Some(_) => None,
        })
        .collect()
}

/// A user record's hash key: its explicit hash key, else the MD5 of its partition key.
fn hash_key_of(record: &UserRecord) -> Result<u128, kpl_codec::EncodeError> {
    input_of(record).hash_key()
}
