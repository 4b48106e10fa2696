//! A model test of the sans-IO sink core: random interleavings of puts, time, PutRecords
//! answers (success, partial failure, throttling, non-retryable errors) and reshards,
//! against a simulated Kinesis stream that routes each entry by its explicit hash key to
//! its current open shard, so that an aggregate built for a shard that was split before it
//! arrived lands where KCL would drop it. The core learns of a reshard only when it asks
//! for the map (or, sometimes, unasked).
//!
//! Checked throughout: the core's own invariants (`Core::check_invariants`: every record
//! in exactly one place, the counters, the limits) after every step and every timer pass;
//! one outcome per accepted record, none twice, none unknown, none for a record still in
//! flight; the buffer limits; every aggregate handed out fits the open shard its explicit
//! hash key routes to in the core's map of that moment; every success points at a stored
//! Kinesis record that KCL reads back with that user record at that sub-sequence number. At the end, after a drain: every record has its outcome, and
//! KCL's read-back of the whole stream (each record filtered by the range of the shard
//! it is stored on) delivers exactly the successful records, once each, and nothing that
//! was not put.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::{Duration, Instant};

use kpl_codec::{deaggregate, hash_key, HashRange, Options, Policy, Verdict};
use kpl_kinesis::sink::{
    Config, Core, EntryResult, ErrorInfo, FailureReason, Outcome, PutEntry, PutError, RecordId,
    RequestFailure, ShardInfo, ShardMap, Transmit, UserRecord, RECORD_OVERHEAD,
};
use proptest::prelude::*;

const PTEE: &str = "ProvisionedThroughputExceededException";
const MAX_OPEN_SHARDS: usize = 8;

#[derive(Debug, Clone)]
enum Op {
    Put {
        ehk: Option<u128>,
        pk: u16,
        size: usize,
    },
    Advance(u64),
    AdvanceToTimeout,
    Answer {
        pick: usize,
        kind: u8,
        seed: u64,
    },
    Reshard {
        pick: usize,
        merge: bool,
    },
    Map {
        unasked: bool,
    },
    Flush,
}

struct StoredRecord {
    seq: u64,
    pk: String,
    data: Vec<u8>,
}

struct SimShard {
    id: String,
    range: HashRange,
    open: bool,
    stored: Vec<StoredRecord>,
}

/// The simulated stream: its own shard map, resharded at will, and what it stored.
struct Server {
    shards: Vec<SimShard>,
    next_seq: u64,
}

impl Server {
    fn new(n: usize) -> Self {
        let map = ShardMap::even(n);
        let shards = (0..map.len())
            .map(|i| {
                let (id, range) = map.open_shard(i).unwrap();
                SimShard {
                    id: id.to_string(),
                    range,
                    open: true,
                    stored: Vec::new(),
                }
            })
            .collect();
        Server {
            shards,
            next_seq: 1,
        }
    }

    fn infos(&self) -> Vec<ShardInfo> {
        self.shards
            .iter()
            .map(|s| ShardInfo {
                shard_id: s.id.clone(),
                range: s.range,
                open: s.open,
            })
            .collect()
    }

    fn open(&self) -> Vec<usize> {
        let mut open: Vec<usize> = (0..self.shards.len())
            .filter(|&i| self.shards[i].open)
            .collect();
        open.sort_by_key(|&i| self.shards[i].range.start);
        open
    }

    fn add(&mut self, range: HashRange) {
        let id = format!("shardId-{:012}", self.shards.len());
        self.shards.push(SimShard {
            id,
            range,
            open: true,
            stored: Vec::new(),
        });
    }

    /// SplitShard at the middle of the range: the parent closes, two children open.
    fn split(&mut self, pick: usize) {
        let open = self.open();
        if open.len() >= MAX_OPEN_SHARDS {
            return;
        }
        let candidates: Vec<usize> = open
            .into_iter()
            .filter(|&i| self.shards[i].range.end > self.shards[i].range.start)
            .collect();
        if candidates.is_empty() {
            return;
        }
        let parent = candidates[pick % candidates.len()];
        let HashRange { start, end } = self.shards[parent].range;
        let middle = start + (end - start) / 2;
        self.shards[parent].open = false;
        self.add(HashRange::new(start, middle));
        self.add(HashRange::new(middle + 1, end));
    }

    /// MergeShards of two adjacent open shards: both close, one child opens.
    fn merge(&mut self, pick: usize) {
        let open = self.open();
        if open.len() < 2 {
            return;
        }
        let i = pick % (open.len() - 1);
        let (a, b) = (open[i], open[i + 1]);
        let range = HashRange::new(self.shards[a].range.start, self.shards[b].range.end);
        self.shards[a].open = false;
        self.shards[b].open = false;
        self.add(range);
    }

    /// PutRecords of one entry: stored on the open shard holding its explicit hash key.
    fn store(&mut self, entry: &PutEntry) -> EntryResult {
        let key: u128 = entry.explicit_hash_key.parse().unwrap();
        let shard = self
            .shards
            .iter_mut()
            .find(|s| s.open && s.range.contains(key))
            .unwrap();
        let seq = self.next_seq;
        self.next_seq += 1;
        shard.stored.push(StoredRecord {
            seq,
            pk: entry.partition_key.clone(),
            data: entry.data.clone(),
        });
        EntryResult::Stored {
            shard_id: shard.id.clone(),
            sequence_number: seq.to_string(),
        }
    }
}

/// What KCL hands to the application for one stored Kinesis record: the user records that
/// survive its deaggregation on a shard of `range`.
fn kcl_read(record: &StoredRecord, range: HashRange) -> Vec<(u64, String, Vec<u8>)> {
    let options = Options {
        policy: Policy::Kcl,
        verify_md5: true,
        shard_range: Some(range),
    };
    deaggregate(&record.data, record.pk.as_bytes(), &options)
        .unwrap()
        .map(|u| {
            (
                u.sub_sequence_number,
                String::from_utf8(u.partition_key.to_vec()).unwrap(),
                u.data.to_vec(),
            )
        })
        .collect()
}

/// The put index encoded at the start of a record's data (`"<index>:"`).
fn index_of(data: &[u8]) -> usize {
    let end = data.iter().position(|&b| b == b':').unwrap();
    std::str::from_utf8(&data[..end]).unwrap().parse().unwrap()
}

struct Put {
    pk: String,
    ehk: Option<String>,
    key: u128,
    data: Vec<u8>,
    at: Instant,
}

struct Model {
    config: Config,
    now: Instant,
    core: Core,
    server: Server,
    puts: Vec<Put>,
    ids: HashMap<RecordId, usize>,
    outcomes: BTreeMap<usize, Outcome>,
    in_flight: Vec<(Transmit, Vec<Vec<usize>>)>,
    flying: BTreeSet<usize>,
    rejected: BTreeSet<usize>,
}

impl Model {
    fn new(config: Config, shards: usize) -> Self {
        let now = Instant::now();
        let core = Core::new(config.clone(), now).unwrap();
        Model {
            config,
            now,
            core,
            server: Server::new(shards),
            puts: Vec::new(),
            ids: HashMap::new(),
            outcomes: BTreeMap::new(),
            in_flight: Vec::new(),
            flying: BTreeSet::new(),
            rejected: BTreeSet::new(),
        }
    }

    fn apply(&mut self, op: &Op) {
        match *op {
            Op::Put { ehk, pk, size } => self.put(ehk, pk, size),
            Op::Advance(ms) => self.now += Duration::from_millis(ms),
            Op::AdvanceToTimeout => {
                if let Some(t) = self.core.poll_timeout(self.now) {
                    self.now = self.now.max(t);
                }
            }
            Op::Answer { pick, kind, seed } => {
                if !self.in_flight.is_empty() {
                    let i = pick % self.in_flight.len();
                    self.answer(i, kind, seed);
                }
            }
            Op::Reshard { pick, merge } => {
                if merge {
                    self.server.merge(pick);
                } else {
                    self.server.split(pick);
                }
            }
            Op::Map { unasked } => {
                if unasked || self.core.wants_shard_map() {
                    self.give_map();
                }
            }
            Op::Flush => self.core.flush(self.now),
        }
        self.check_invariants();
        self.pump();
    }

    fn check_invariants(&self) {
        if let Err(broken) = self.core.check_invariants() {
            panic!("invariant broken: {broken}");
        }
    }

    fn give_map(&mut self) {
        self.core
            .set_shards(&self.server.infos(), self.now)
            .unwrap();
    }

    fn put(&mut self, ehk: Option<u128>, pk: u16, size: usize) {
        let index = self.puts.len();
        let mut data = format!("{index}:").into_bytes();
        data.resize(data.len() + size, b'x');
        let (pk, record) = match ehk {
            Some(key) => {
                let pk = format!("e{}", pk % 4);
                let record = UserRecord::new(pk.clone(), data.clone())
                    .with_explicit_hash_key(key.to_string());
                (pk, record)
            }
            None => {
                let pk = format!("k{pk}");
                (pk.clone(), UserRecord::new(pk, data.clone()))
            }
        };
        let size = record.size();
        match self.core.put(record.clone(), self.now) {
            Ok(id) => {
                assert!(
                    self.ids.insert(id, index).is_none(),
                    "id {id:?} given twice"
                );
                self.puts.push(Put {
                    key: ehk.unwrap_or_else(|| hash_key(pk.as_bytes())),
                    ehk: ehk.map(|k| k.to_string()),
                    pk,
                    data,
                    at: self.now,
                });
            }
            Err(PutError::Full(back)) => {
                assert_eq!(back, record, "Full hands the record back");
                assert!(!self.core.has_room(&record, self.now));
                // A hard bound, or the drain rule of its shard; never an empty sink or shard.
                let hash = ehk.unwrap_or_else(|| hash_key(pk.as_bytes()));
                let budget = self.core.shard_budget(hash, self.now);
                assert!(self.core.buffered_records() > 0, "Full while empty");
                assert!(
                    self.core.buffered_records() >= self.config.max_buffered_records
                        || self.core.buffered_bytes() + size > self.config.max_buffered_bytes
                        || (budget.buffered_records > 0
                            && budget.buffered_cost + size + RECORD_OVERHEAD > budget.limit),
                    "Full with room left"
                );
            }
            Err(PutError::Invalid(e)) => panic!("valid record refused: {e}"),
        }
    }

    /// Does the timer work due, takes every request then due and checks it; takes every
    /// outcome and checks it.
    fn pump(&mut self) {
        self.core.handle_timeout(self.now);
        self.check_invariants();
        while let Some(t) = self.core.poll_transmit(self.now) {
            let map = self.core.shard_map().cloned();
            let users = self.check_transmit(&t, map.as_ref());
            self.in_flight.push((t, users));
        }
        assert!(self.in_flight.len() <= self.config.max_connections);
        self.collect_outcomes();
        let waiting = self.puts.len() - self.outcomes.len();
        assert_eq!(self.core.buffered_records(), waiting, "buffered records");
        assert!(self.core.buffered_records() <= self.config.max_buffered_records);
        assert!(self.core.buffered_bytes() <= self.config.max_buffered_bytes);
        self.check_invariants();
    }

    /// Checks a request as it is handed out; returns the put indices of each entry.
    fn check_transmit(&mut self, t: &Transmit, map: Option<&ShardMap>) -> Vec<Vec<usize>> {
        assert!(!t.entries.is_empty());
        assert!(t.entries.len() <= self.config.collection_max_count);
        assert!(t.size() <= self.config.collection_max_size);
        let mut out = Vec::new();
        for entry in &t.entries {
            assert!(entry.data.len() + entry.partition_key.len() <= self.config.max_record_size);
            let decoded = deaggregate(
                &entry.data,
                entry.partition_key.as_bytes(),
                &Options::strict(),
            )
            .unwrap();
            let aggregated = matches!(decoded.verdict(), Verdict::Aggregated { .. });
            let ehk: u128 = entry.explicit_hash_key.parse().unwrap();
            let mut indices = Vec::new();
            if aggregated {
                assert!(self.config.aggregation_enabled);
                assert!(entry.data.len() <= self.config.aggregation_max_size);
                assert_eq!(entry.partition_key, "a");
                let map = map.expect("an aggregate built without a shard map");
                let (shard, range) = map.open_shard(map.route(ehk)).unwrap();
                for user in decoded {
                    let index = index_of(user.data);
                    let put = &self.puts[index];
                    assert_eq!(user.partition_key, put.pk.as_bytes());
                    assert_eq!(
                        user.explicit_hash_key
                            .map(|k| std::str::from_utf8(k).unwrap().to_owned()),
                        put.ehk
                    );
                    assert_eq!(user.data, &put.data[..]);
                    assert!(
                        range.contains(put.key),
                        "aggregate for {shard} holds record {index} with key {} outside {range:?}",
                        put.key
                    );
                    indices.push(index);
                }
                assert!(indices.len() >= 2);
                assert_eq!(
                    self.puts[indices[0]].key, ehk,
                    "an aggregate's key is its first record's"
                );
            } else {
                let index = index_of(&entry.data);
                let put = &self.puts[index];
                assert_eq!((&entry.partition_key, &entry.data), (&put.pk, &put.data));
                assert_eq!(ehk, put.key);
                indices.push(index);
            }
            assert_eq!(entry.user_records, indices.len());
            for &index in &indices {
                assert!(
                    !self.outcomes.contains_key(&index),
                    "record {index} sent after its outcome"
                );
                assert!(self.flying.insert(index), "record {index} in flight twice");
            }
            out.push(indices);
        }
        out
    }

    fn answer(&mut self, i: usize, kind: u8, seed: u64) {
        let (t, users) = self.in_flight.remove(i);
        for indices in &users {
            for index in indices {
                self.flying.remove(index);
            }
        }
        let mut rng = seed | 1;
        let mut draw = move |n: u64| {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng % n
        };
        let response = match kind {
            0..=4 => Ok(t.entries.iter().map(|e| self.server.store(e)).collect()),
            5..=6 => Ok(t
                .entries
                .iter()
                .zip(&users)
                .map(|(e, indices)| match draw(10) {
                    0..=5 => self.server.store(e),
                    6..=8 => EntryResult::Failed(ErrorInfo {
                        code: PTEE.into(),
                        message: "Rate exceeded for shard".into(),
                    }),
                    _ => {
                        self.rejected.extend(indices);
                        EntryResult::Failed(ErrorInfo {
                            code: "KMSAccessDeniedException".into(),
                            message: "not allowed".into(),
                        })
                    }
                })
                .collect()),
            7..=8 => Err(RequestFailure {
                error: ErrorInfo {
                    code: "ThrottlingException".into(),
                    message: "Rate exceeded".into(),
                },
                retryable: true,
            }),
            _ => {
                self.rejected.extend(users.iter().flatten());
                Err(RequestFailure {
                    error: ErrorInfo {
                        code: "ValidationException".into(),
                        message: "invalid".into(),
                    },
                    retryable: false,
                })
            }
        };
        self.core.on_response(t.id, response, self.now);
    }

    fn collect_outcomes(&mut self) {
        while let Some((id, outcome)) = self.core.poll_outcome() {
            let index = *self
                .ids
                .get(&id)
                .unwrap_or_else(|| panic!("outcome for unknown {id:?}"));
            assert!(
                !self.flying.contains(&index),
                "outcome for record {index} still in flight"
            );
            match &outcome {
                Outcome::Success(s) => {
                    let shard = self
                        .server
                        .shards
                        .iter()
                        .find(|x| *x.id == *s.shard_id)
                        .unwrap();
                    let seq: u64 = s.sequence_number.parse().unwrap();
                    let record = shard.stored.iter().find(|r| r.seq == seq).unwrap();
                    let read = kcl_read(record, shard.range);
                    let delivered = read.iter().find(|r| r.0 == s.sub_sequence_number);
                    let delivered = delivered.map(|r| index_of(&r.2));
                    assert_eq!(
                        delivered,
                        Some(index),
                        "success points where KCL does not deliver it"
                    );
                }
                Outcome::Failure(f) => match &f.reason {
                    FailureReason::Rejected(_) => {
                        assert!(
                            self.rejected.contains(&index),
                            "record {index} rejected unprompted"
                        )
                    }
                    FailureReason::Expired(_) => {
                        let ttl = Duration::from_millis(self.config.record_ttl);
                        assert!(
                            self.now >= self.puts[index].at + ttl,
                            "record {index} expired early"
                        );
                    }
                    other => panic!("record {index}: unexpected {other:?}"),
                },
            }
            assert!(
                self.outcomes.insert(index, outcome).is_none(),
                "two outcomes for record {index}"
            );
        }
    }

    /// Flush, answer everything successfully, give maps when asked, let time pass.
    fn drain(&mut self) {
        self.core.flush(self.now);
        for _ in 0..100_000 {
            if self.core.wants_shard_map() {
                self.give_map();
            }
            self.pump();
            while !self.in_flight.is_empty() {
                self.answer(0, 0, 0);
                self.pump();
            }
            if self.core.is_idle() {
                return;
            }
            match self.core.poll_timeout(self.now) {
                Some(t) if t > self.now => self.now = t,
                Some(_) => {}
                None => self.now += Duration::from_millis(100),
            }
            self.core.flush(self.now);
        }
        panic!(
            "not idle after the drain: {} buffered",
            self.core.buffered_records()
        );
    }

    /// KCL's read-back of the whole stream against the outcomes.
    fn check_stream(&self) {
        assert_eq!(
            self.outcomes.len(),
            self.puts.len(),
            "a record without an outcome"
        );
        let mut delivered = vec![0usize; self.puts.len()];
        for shard in &self.server.shards {
            for record in &shard.stored {
                for (_, pk, data) in kcl_read(record, shard.range) {
                    let index = index_of(&data);
                    let put = self
                        .puts
                        .get(index)
                        .expect("KCL delivers a record never put");
                    assert_eq!((&pk, &data), (&put.pk, &put.data));
                    delivered[index] += 1;
                }
            }
        }
        for (index, outcome) in &self.outcomes {
            let want = usize::from(outcome.is_success());
            assert_eq!(
                delivered[*index], want,
                "record {index} ({outcome:?}) delivered {} times",
                delivered[*index]
            );
        }
    }
}

fn config() -> impl Strategy<Value = Config> {
    (
        prop_oneof![9 => Just(true), 1 => Just(false)],
        prop_oneof![3 => Just(u64::from(u32::MAX)), 1 => 1u64..6],
        64usize..800,
        1usize..12,
        0u64..200,
        300u64..4000,
        (2u64..200, 500u64..50_000),
        1usize..4,
        (1usize..40, 1024usize..6000),
        (1u64..100, 0u64..500),
        any::<u64>(),
    )
        .prop_map(
            |(
                aggregate,
                count,
                size,
                batch,
                wait,
                ttl,
                (rps, bps),
                connections,
                (records, bytes),
                (backoff, extra),
                seed,
            )| Config {
                aggregation_enabled: aggregate,
                aggregation_max_count: count,
                aggregation_max_size: size,
                max_record_size: 1024,
                collection_max_count: batch,
                collection_max_size: 52_224,
                record_max_buffered_time: wait,
                record_ttl: ttl,
                rate_limit: 100,
                shard_records_per_second: rps,
                shard_bytes_per_second: bps,
                max_connections: connections,
                max_buffered_records: records,
                max_buffered_bytes: bytes,
                retry_backoff_min: backoff,
                retry_backoff_max: backoff + extra,
                seed,
                ..Config::default()
            },
        )
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        8 => (prop::option::weighted(0.5, any::<u128>()), 0u16..200, 0usize..300)
            .prop_map(|(ehk, pk, size)| Op::Put { ehk, pk, size }),
        3 => (0u64..250).prop_map(Op::Advance),
        2 => Just(Op::AdvanceToTimeout),
        5 => (any::<usize>(), 0u8..10, any::<u64>()).prop_map(|(pick, kind, seed)| Op::Answer { pick, kind, seed }),
        1 => (any::<usize>(), prop::bool::weighted(0.25)).prop_map(|(pick, merge)| Op::Reshard { pick, merge }),
        2 => prop::bool::weighted(0.2).prop_map(|unasked| Op::Map { unasked }),
        1 => Just(Op::Flush),
    ]
}

fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(512)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), ..ProptestConfig::default() })]

    #[test]
    fn random_interleavings_lose_nothing_and_stay_shard_safe(
        config in config(),
        shards in 1usize..4,
        ops in prop::collection::vec(op(), 1..200),
    ) {
        let mut model = Model::new(config, shards);
        for op in &ops {
            model.apply(op);
        }
        model.drain();
        model.check_stream();
    }
}
