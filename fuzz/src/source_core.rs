//! The sans-IO source core ([`kpl_kinesis::source::SourceCore`]) driven by hostile input
//! against a simulated stream (`kinesis/tests/support/sim_stream.rs`, included by path):
//! records put (plain or aggregates, any key) while it reads, splits and merges, answers
//! given in any order, correct or replaced by throttling, an expired iterator, a permanent
//! error, a failed task, an answer of the wrong kind, or a stale id; time moved by any
//! step or to the core's next deadline; records taken and checkpointed at any point; any
//! start position and saved checkpoints. Then a drain: every call answered correctly, time
//! moved to each deadline, records taken.
//!
//! Checked after every step (a panic is a bug):
//! - `check_invariants()` holds;
//! - the records delivered from each shard are a contiguous run of what KCL gets from it
//!   (`user_records` of each Kinesis record under the shard's range): nothing repeated,
//!   skipped or reordered inside a shard;
//! - a record is delivered only after its shard's parents delivered all they will (the
//!   parents' records from their start, when reading from TRIM_HORIZON without saved
//!   positions);
//! - a deadline from `poll_timeout` is never in the past of a core that has nothing to do;
//!   the core never stalls (no call, no deadline, not ended);
//! - the drain ends without `follow` (and never with it), in `Ok` unless a fault was
//!   injected (or the start sequence number is in no shard); when it ends in `Ok`, reading
//!   from TRIM_HORIZON, and the stream did not change after the start, every shard's
//!   records were delivered whole.

#[path = "../../kinesis/tests/support/sim_stream.rs"]
mod sim_stream;

use std::collections::BTreeMap;
use std::time::{Duration, Instant, SystemTime};

use arbitrary::Arbitrary;
use kpl_codec::{Aggregator, AggregatorConfig, HashRange, InputRecord};
use kpl_kinesis::source::{
    Answer, CallError, CallId, Checkpoint, Request, ShardPosition, SourceConfig, SourceCore,
    SourceError, SourceRecord, StartPosition,
};
use sim_stream::SimStream;

/// The whole input.
#[derive(Debug, Arbitrary)]
pub struct SourceCoreInput {
    shards: u8,
    follow: bool,
    max_in_flight: u8,
    max_records: u8,
    page: u8,
    start: Start,
    /// Records in the stream before the core starts: (shard, key, aggregate size).
    before: Vec<(u8, u8, u8)>,
    /// Checkpoints saved before the start: (shard, record index, sub-sequence number),
    /// or a shard finished.
    saved: Vec<(u8, u8, u8, bool)>,
    ops: Vec<Op>,
}

#[derive(Debug, Arbitrary)]
enum Start {
    TrimHorizon,
    Latest,
    /// The sequence number of the n-th record put before the start (or a made-up one).
    AtSequenceNumber(u8),
    AtTimestamp,
}

#[derive(Debug, Arbitrary)]
enum Op {
    /// Hands out every call possible now.
    Poll,
    /// Answers the n-th call waiting for an answer.
    Answer(u8, How),
    /// An answer to an id never handed out (or answered already).
    Stale(u8),
    Advance(u16),
    ToDeadline,
    /// Takes up to n records (checkpointing each when the flag is set).
    Take(u8, bool),
    /// Puts a record (an aggregate of n user records when n > 1) into an open shard.
    Put(u8, u8, u8),
    Split(u8),
    Merge(u8),
}

#[derive(Debug, Arbitrary)]
enum How {
    Correct,
    Throttled,
    Expired,
    Permanent,
    TaskFailed,
    WrongKind,
    NotFound,
}

struct Harness {
    core: SourceCore,
    sim: SimStream,
    now: Instant,
    waiting: Vec<(CallId, Request)>,
    delivered: BTreeMap<String, Vec<SourceRecord>>,
    /// Shard id → index of its first delivered record in what KCL gets from it.
    offsets: BTreeMap<String, usize>,
    /// Any fault was injected (ten retryable ones in a row end the source too).
    injected: bool,
    /// Records put or shards changed after the first listing: without `follow`, a shard
    /// read to its end may miss them.
    changed: bool,
    trim_horizon: bool,
    next_stale: u64,
    /// What KCL gets from each shard (by index), and for how many Kinesis records.
    expected: BTreeMap<usize, (usize, Vec<SourceRecord>)>,
}

fn aggregate(key: u8, n: u8) -> Vec<u8> {
    let Ok(mut a) = Aggregator::new(AggregatorConfig::default()) else {
        return Vec::new();
    };
    for i in 0..n {
        let key = format!("k{key}-{i}");
        if a.add(InputRecord::new(&key, &[i; 3])).is_err() {
            break;
        }
    }
    a.flush().map(|r| r.data).unwrap_or_default()
}

impl Harness {
    fn check(&self) {
        if let Err(e) = self.core.check_invariants() {
            panic!("invariant broken: {e}");
        }
    }

    fn put(&mut self, shard: u8, key: u8, n: u8) {
        let open: Vec<usize> = (0..self.sim.shards.len())
            .filter(|i| self.sim.shards[*i].open)
            .collect();
        if open.is_empty() {
            return;
        }
        let shard = open[usize::from(shard) % open.len()];
        // Keys land where they will: the range filter may drop a plain record's aggregate
        // sibling, exactly as for KCL (the expected records come from the same rules).
        let data = if n > 1 {
            aggregate(key, n)
        } else {
            vec![key; 4]
        };
        self.sim.push(shard, &format!("k{key}"), data);
    }

    fn take(&mut self, n: usize, checkpoint: bool) {
        for _ in 0..n {
            let Some(r) = self.core.poll_record() else {
                break;
            };
            if checkpoint {
                self.core.checkpoint(&r);
            }
            self.accept(r);
        }
        while self.core.poll_save().is_some() {}
    }

    /// Records `r` as delivered and checks it continues its shard's run.
    fn accept(&mut self, r: SourceRecord) {
        let id = r.shard_id.to_string();
        let Some(index) = self.sim.shards.iter().position(|s| s.id == id) else {
            panic!("a record of unknown shard {id}");
        };
        let records = self.sim.shards[index].records.len();
        let stale = self.expected.get(&index).is_none_or(|(n, _)| *n != records);
        if stale {
            self.expected
                .insert(index, (records, self.sim.user_records(index)));
        }
        let Some((_, expected)) = self.expected.get(&index) else {
            return;
        };
        let count = self.delivered.get(&id).map_or(0, Vec::len);
        let at = match self.offsets.get(&id) {
            Some(first) => first + count,
            None => {
                let Some(first) = expected.iter().position(|e| *e == r) else {
                    panic!("shard {id} delivered a record KCL would not: {r:?}");
                };
                if self.trim_horizon {
                    assert_eq!(first, 0, "shard {id} did not start at its first record");
                    self.check_parents_done(index);
                }
                self.offsets.insert(id.clone(), first);
                first
            }
        };
        assert_eq!(
            expected.get(at),
            Some(&r),
            "shard {id}: record {at} of its run is not the next one"
        );
        self.delivered.entry(id).or_default().push(r);
    }

    fn check_parents_done(&self, child: usize) {
        let node = &self.sim.shards[child];
        for parent in [&node.parent, &node.adjacent_parent].into_iter().flatten() {
            let Some(p) = self.sim.shards.iter().position(|s| s.id == *parent) else {
                continue;
            };
            let all = self.sim.user_records(p);
            let got = self.delivered.get(parent).map_or(0, Vec::len);
            assert_eq!(got, all.len(), "child {} read before parent {parent} ended", node.id);
        }
    }

    fn poll(&mut self) {
        while let Some(call) = self.core.poll_call(self.now) {
            self.waiting.push((call.id, call.request));
            self.check();
        }
    }

    fn answer(&mut self, pick: usize, how: &How) {
        if self.waiting.is_empty() {
            return;
        }
        let (id, request) = self.waiting.remove(pick % self.waiting.len());
        let error = |code: &str, retryable| {
            Answer::Failed(CallError {
                code: code.to_owned(),
                message: "injected".to_owned(),
                retryable,
            })
        };
        let answer = match how {
            How::Correct => self.sim.answer(&request),
            How::Throttled => error("ProvisionedThroughputExceededException", true),
            How::Expired => error("ExpiredIteratorException", false),
            How::TaskFailed => error("TaskFailed", true),
            How::NotFound => error("ResourceNotFoundException", false),
            How::Permanent => error("AccessDeniedException", false),
            How::WrongKind => match request {
                Request::ListShards => Answer::Iterator(None),
                _ => Answer::Shards(Vec::new()),
            },
        };
        if !matches!(how, How::Correct) {
            self.injected = true;
        }
        self.core.on_answer(id, answer, self.now);
        self.check();
    }

    fn to_deadline(&mut self) {
        if let Some(t) = self.core.poll_timeout() {
            if t > self.now {
                self.now = t;
            }
        }
    }

    /// Answers everything correctly until the core ends or `rounds` pass.
    fn drain(&mut self, rounds: usize) -> Option<Result<(), SourceError>> {
        for _ in 0..rounds {
            self.take(usize::MAX, false);
            if let Some(end) = self.core.poll_end() {
                return Some(end);
            }
            self.poll();
            if self.waiting.is_empty() {
                match self.core.poll_timeout() {
                    Some(t) => {
                        assert!(t >= self.now, "a deadline in the past with nothing to do");
                        self.now = t.max(self.now + Duration::from_millis(1));
                    }
                    None => panic!("stalled: no call, no deadline, not ended"),
                }
                continue;
            }
            while !self.waiting.is_empty() {
                self.answer(0, &How::Correct);
            }
        }
        None
    }
}

/// The property; see the module docs.
pub fn source_core(input: SourceCoreInput) {
    let shards = usize::from(input.shards % 4) + 1;
    let mut sim = SimStream::even(shards);
    sim.page = usize::from(input.page % 8) + 1;
    let mut sequence_numbers = Vec::new();
    for (shard, key, n) in input.before.iter().take(64) {
        let shard = usize::from(*shard) % shards;
        let data = if *n > 1 {
            aggregate(*key, n % 16)
        } else {
            vec![*key; 2]
        };
        sequence_numbers.push((shard, sim.push(shard, &format!("k{key}"), data)));
    }
    let start = match input.start {
        Start::TrimHorizon => StartPosition::TrimHorizon,
        Start::Latest => StartPosition::Latest,
        Start::AtTimestamp => StartPosition::AtTimestamp(SystemTime::UNIX_EPOCH),
        Start::AtSequenceNumber(n) => StartPosition::AtSequenceNumber(
            sequence_numbers
                .get(usize::from(n))
                .map_or_else(|| "12345".to_owned(), |(_, s)| s.clone()),
        ),
    };
    let mut saved = BTreeMap::new();
    for (shard, record, sub, finished) in input.saved.iter().take(8) {
        let Some(s) = sim.shards.get(usize::from(*shard) % shards) else {
            continue;
        };
        let position = if *finished {
            ShardPosition::Finished
        } else if let Some(r) = s.records.get(usize::from(*record)) {
            ShardPosition::At(Checkpoint::new(&r.sequence_number, u64::from(*sub % 16)))
        } else {
            continue;
        };
        saved.insert(s.id.clone(), position);
    }
    let at_sequence_number = matches!(start, StartPosition::AtSequenceNumber(_));
    let trim_horizon = matches!(start, StartPosition::TrimHorizon) && saved.is_empty();
    let config = SourceConfig {
        start,
        follow: input.follow,
        max_in_flight: usize::from(input.max_in_flight % 6),
        max_records: i32::from(input.max_records % 32) + 1,
        poll_interval: Duration::from_millis(50),
        list_interval: Duration::from_millis(500),
        max_backoff: Duration::from_millis(400),
        ..SourceConfig::default()
    };
    let mut h = Harness {
        core: SourceCore::new(config, saved),
        sim,
        now: Instant::now(),
        waiting: Vec::new(),
        delivered: BTreeMap::new(),
        offsets: BTreeMap::new(),
        injected: false,
        changed: false,
        trim_horizon,
        next_stale: 1 << 40,
        expected: BTreeMap::new(),
    };
    for op in input.ops.iter().take(400) {
        match op {
            Op::Poll => h.poll(),
            Op::Answer(pick, how) => h.answer(usize::from(*pick), how),
            Op::Stale(n) => {
                let id = if *n % 2 == 0 {
                    CallId(h.next_stale)
                } else {
                    CallId(u64::from(*n / 2))
                };
                h.next_stale += 1;
                // An id still waiting is answered for real later; an old one is ignored.
                if h.waiting.iter().all(|(w, _)| *w != id) {
                    h.core.on_answer(id, Answer::Iterator(None), h.now);
                    h.check();
                }
            }
            Op::Advance(ms) => h.now += Duration::from_millis(u64::from(*ms)),
            Op::ToDeadline => h.to_deadline(),
            Op::Take(n, checkpoint) => h.take(usize::from(*n), *checkpoint),
            Op::Put(shard, key, n) => {
                h.changed = true;
                h.put(*shard, *key, *n);
            }
            Op::Split(shard) => {
                h.changed = true;
                let open: Vec<usize> = (0..h.sim.shards.len())
                    .filter(|i| h.sim.shards[*i].open)
                    .collect();
                if let Some(&s) = open.get(usize::from(*shard) % open.len().max(1)) {
                    let r = h.sim.shards[s].range;
                    if r.start < r.end && h.sim.shards.len() < 16 {
                        let mid = r.start + (r.end - r.start) / 2;
                        h.sim
                            .split(s, &[HashRange::new(r.start, mid), HashRange::new(mid + 1, r.end)]);
                    }
                }
            }
            Op::Merge(shard) => {
                h.changed = true;
                let open: Vec<usize> = (0..h.sim.shards.len())
                    .filter(|i| h.sim.shards[*i].open)
                    .collect();
                let at = usize::from(*shard) % open.len().max(1);
                // Two open shards whose ranges touch.
                if let (Some(&a), Some(&b)) = (open.get(at), open.get(at + 1)) {
                    let (ra, rb) = (h.sim.shards[a].range, h.sim.shards[b].range);
                    if ra.end.checked_add(1) == Some(rb.start) && h.sim.shards.len() < 16 {
                        h.sim.merge(a, b);
                    }
                }
            }
        }
        h.check();
    }
    // The drain: everything answered correctly from here on.
    while !h.waiting.is_empty() {
        h.answer(0, &How::Correct);
    }
    // Without `follow` a drain ends within a few thousand rounds (at most 16 shards, a few
    // hundred records, backoffs of at most 400 ms); following, 300 rounds show it keeps
    // going.
    let ended = h.drain(if input.follow { 300 } else { 20_000 });
    if input.follow {
        // Following never ends but in an error: an injected one, or the start sequence
        // number in no shard.
        if let Some(end) = ended {
            assert!(
                (h.injected || at_sequence_number) && end.is_err(),
                "a following source ended: {end:?}"
            );
        }
        return;
    }
    match ended {
        None => panic!("the drain did not end"),
        Some(Err(e)) => assert!(
            h.injected || at_sequence_number,
            "an error with nothing injected: {e:?}"
        ),
        Some(Ok(())) => {
            if h.trim_horizon && !h.changed {
                for (index, shard) in h.sim.shards.iter().enumerate() {
                    let all = h.sim.user_records(index);
                    let got = h.delivered.get(&shard.id).map_or(0, Vec::len);
                    assert_eq!(got, all.len(), "shard {} not read whole", shard.id);
                }
            }
        }
    }
}
