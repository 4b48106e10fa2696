//! Scenario tests of the sans-IO source core against a simulated stream
//! (`support/sim_stream.rs`): no tokio, no AWS SDK, no sleeps; time is an `Instant` the
//! test moves to the core's next deadline. Expected records come from `user_records` (the
//! per-record KCL rules, tested on their own) applied to each shard's records.

#[path = "support/sim_stream.rs"]
mod sim_stream;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use kpl_codec::{Aggregator, AggregatorConfig, HashRange, InputRecord};
use kpl_kinesis::source::{
    Answer, CallId, Checkpoint, IteratorStart, Request, ShardPosition, SourceConfig, SourceCore,
    SourceError, SourceRecord, StartPosition,
};
use sim_stream::{failed, SimStream};

/// A scripted fault: given the call and how many calls of its operation came before it,
/// an answer to give instead of the stream's.
type Faults<'a> = dyn FnMut(&Request, usize) -> Option<Answer> + 'a;

struct Run {
    core: SourceCore,
    sim: SimStream,
    start: Instant,
    now: Instant,
    /// Every call handed out, with the time since the start.
    calls: Vec<(Duration, Request)>,
    delivered: Vec<SourceRecord>,
    saves: Vec<(String, ShardPosition)>,
    checkpoint_each: bool,
    counts: BTreeMap<&'static str, usize>,
}

impl Run {
    fn new(sim: SimStream, config: SourceConfig) -> Self {
        Run::restarted(sim, config, BTreeMap::new())
    }

    fn restarted(
        sim: SimStream,
        config: SourceConfig,
        saved: BTreeMap<String, ShardPosition>,
    ) -> Self {
        let start = Instant::now();
        Run {
            core: SourceCore::new(config, saved),
            sim,
            start,
            now: start,
            calls: Vec::new(),
            delivered: Vec::new(),
            saves: Vec::new(),
            checkpoint_each: false,
            counts: BTreeMap::new(),
        }
    }

    fn check(&self) {
        if let Err(e) = self.core.check_invariants() {
            panic!("invariant broken: {e}");
        }
    }

    /// Takes the queued records and saves.
    fn drain(&mut self) {
        while let Some(r) = self.core.poll_record() {
            if self.checkpoint_each {
                self.core.checkpoint(&r);
            }
            self.delivered.push(r);
        }
        while let Some(s) = self.core.poll_save() {
            self.saves.push(s);
        }
    }

    /// Hands out every call possible now.
    fn calls_now(&mut self) -> Vec<(CallId, Request)> {
        let mut calls = Vec::new();
        while let Some(call) = self.core.poll_call(self.now) {
            self.calls
                .push((self.now - self.start, call.request.clone()));
            calls.push((call.id, call.request));
            self.check();
        }
        calls
    }

    fn answer(&mut self, id: CallId, request: &Request, faults: &mut Faults<'_>) {
        let n = self.counts.entry(request.operation()).or_default();
        let index = *n;
        *n += 1;
        let answer = faults(request, index).unwrap_or_else(|| self.sim.answer(request));
        self.core.on_answer(id, answer, self.now);
        self.check();
    }

    /// Runs until the core ends (or `limit` rounds pass: then `None`).
    fn run(&mut self, faults: &mut Faults<'_>, limit: usize) -> Option<Result<(), SourceError>> {
        for _ in 0..limit {
            self.drain();
            if let Some(end) = self.core.poll_end() {
                return Some(end);
            }
            let calls = self.calls_now();
            if calls.is_empty() {
                let wake = self
                    .core
                    .poll_timeout()
                    .expect("the core stalled: no call, no deadline, not ended");
                assert!(wake > self.now, "a deadline that does not move time on");
                self.now = wake;
                continue;
            }
            for (id, request) in calls {
                self.answer(id, &request, faults);
            }
        }
        None
    }

    fn run_to_end(&mut self, faults: &mut Faults<'_>) -> Result<(), SourceError> {
        self.run(faults, 100_000).expect("the source ended")
    }

    fn of_shard(&self, id: &str) -> Vec<SourceRecord> {
        self.delivered
            .iter()
            .filter(|r| r.shard_id.as_ref() == id)
            .cloned()
            .collect()
    }

    fn iterator_starts(&self) -> Vec<(String, IteratorStart)> {
        self.calls
            .iter()
            .filter_map(|(_, c)| match c {
                Request::GetShardIterator { shard_id, start } => {
                    Some((shard_id.clone(), start.clone()))
                }
                _ => None,
            })
            .collect()
    }
}

fn no_faults() -> impl FnMut(&Request, usize) -> Option<Answer> {
    |_, _| None
}

fn config() -> SourceConfig {
    SourceConfig {
        poll_interval: Duration::from_millis(500),
        max_backoff: Duration::from_secs(5),
        ..SourceConfig::default()
    }
}

/// An aggregate of `n` user records with keys `{prefix}{i}` (all land in any shard: the
/// tests use the full range for aggregates or check the filter on purpose).
fn aggregate(prefix: &str, n: usize) -> Vec<u8> {
    let mut a = Aggregator::new(AggregatorConfig::default()).expect("config");
    for i in 0..n {
        let key = format!("{prefix}{i}");
        let data = format!("{prefix}-data-{i}");
        let full = a
            .add(InputRecord::new(&key, data.as_bytes()))
            .expect("record");
        assert!(full.is_none());
    }
    a.flush().expect("an aggregate").data
}

fn fill(sim: &mut SimStream, shard: usize, n: usize) {
    for i in 0..n {
        let key = format!("s{shard}-k{i}");
        sim.push(shard, &key, format!("s{shard}-r{i}").into_bytes());
    }
}

#[test]
fn every_record_once_in_order_across_a_split_and_a_merge() {
    let mut sim = SimStream::even(2);
    sim.page = 3;
    fill(&mut sim, 0, 7);
    fill(&mut sim, 1, 4);
    let children = sim.split(
        0,
        &[HashRange::new(0, 100), HashRange::new(101, u128::MAX / 2)],
    );
    fill(&mut sim, children[0], 5);
    fill(&mut sim, children[1], 2);
    let merged = sim.merge(children[0], children[1]).expect("merge");
    fill(&mut sim, merged, 3);
    let mut run = Run::new(sim, config());
    run.run_to_end(&mut no_faults()).expect("read");
    for (i, shard) in run.sim.shards.clone().iter().enumerate() {
        assert_eq!(
            run.of_shard(&shard.id),
            run.sim.user_records(i),
            "shard {} read whole, once, in order",
            shard.id
        );
    }
    let position = |id: &str, first: bool| {
        let mut at = run
            .delivered
            .iter()
            .enumerate()
            .filter(|(_, r)| r.shard_id.as_ref() == id)
            .map(|(i, _)| i);
        if first { at.next() } else { at.next_back() }.expect("records of the shard")
    };
    let ids: Vec<String> = run.sim.shards.iter().map(|s| s.id.clone()).collect();
    // Parents before children, both parents before the merged child.
    assert!(position(&ids[0], false) < position(&ids[children[0]], true));
    assert!(position(&ids[0], false) < position(&ids[children[1]], true));
    assert!(position(&ids[children[0]], false) < position(&ids[merged], true));
    assert!(position(&ids[children[1]], false) < position(&ids[merged], true));
}

#[test]
fn an_expired_iterator_resumes_after_the_last_record_read() {
    let mut sim = SimStream::even(1);
    sim.page = 2;
    fill(&mut sim, 0, 5);
    sim.shards[0].open = false;
    let second = sim.shards[0].records[1].sequence_number.clone();
    let mut run = Run::new(sim, config());
    let mut faults = |request: &Request, n: usize| {
        (matches!(request, Request::GetRecords { .. }) && n == 1)
            .then(|| failed("ExpiredIteratorException", "Iterator expired", false))
    };
    run.run_to_end(&mut faults).expect("read");
    assert_eq!(run.delivered, run.sim.user_records(0));
    let shard = run.sim.shards[0].id.clone();
    assert_eq!(
        run.iterator_starts(),
        vec![
            (shard.clone(), IteratorStart::TrimHorizon),
            (shard, IteratorStart::AfterSequenceNumber(second)),
        ]
    );
}

#[test]
fn one_throttled_shard_backs_off_alone_while_the_others_are_read() {
    let mut sim = SimStream::even(2);
    sim.page = 1;
    fill(&mut sim, 0, 2);
    fill(&mut sim, 1, 40);
    for s in &mut sim.shards {
        s.open = false;
    }
    let throttled = sim.shards[0].id.clone();
    let mut run = Run::new(sim, config());
    let t = throttled.clone();
    let mut seen = 0;
    let mut faults = move |request: &Request, _: usize| match request {
        Request::GetRecords { shard_id, .. } if *shard_id == t && seen < 3 => {
            seen += 1;
            Some(failed(
                "ProvisionedThroughputExceededException",
                "Rate exceeded",
                true,
            ))
        }
        _ => None,
    };
    run.run_to_end(&mut faults).expect("read");
    assert_eq!(run.of_shard(&throttled), run.sim.user_records(0));
    assert_eq!(
        run.of_shard(&run.sim.shards[1].id.clone()),
        run.sim.user_records(1)
    );
    let throttled_calls: Vec<Duration> = run
        .calls
        .iter()
        .filter(
            |(_, c)| matches!(c, Request::GetRecords { shard_id, .. } if *shard_id == throttled),
        )
        .map(|(at, _)| *at)
        .collect();
    // 200 ms, 400 ms, 800 ms of backoff after the three throttles, nothing more.
    let gaps: Vec<Duration> = throttled_calls.windows(2).map(|w| w[1] - w[0]).collect();
    assert_eq!(
        gaps[..3],
        [
            Duration::from_millis(200),
            Duration::from_millis(400),
            Duration::from_millis(800)
        ]
    );
    // The other shard was read to its end meanwhile, without waiting.
    let other_done = run
        .calls
        .iter()
        .filter(
            |(_, c)| matches!(c, Request::GetRecords { shard_id, .. } if *shard_id != throttled),
        )
        .map(|(at, _)| *at)
        .max()
        .expect("calls for the other shard");
    assert_eq!(
        other_done,
        Duration::ZERO,
        "40 pages of the other shard at once"
    );
}

#[test]
fn a_restart_inside_an_aggregate_skips_the_processed_user_records() {
    let mut sim = SimStream::even(1);
    sim.push(0, "k-before", b"before".to_vec());
    let at = sim.push(0, "a", aggregate("agg", 5));
    sim.push(0, "k-after", b"after".to_vec());
    sim.shards[0].open = false;
    let shard = sim.shards[0].id.clone();
    let saved = BTreeMap::from([(shard.clone(), ShardPosition::At(Checkpoint::new(&at, 2)))]);
    let mut run = Run::restarted(sim, config(), saved);
    run.run_to_end(&mut no_faults()).expect("read");
    let expected: Vec<SourceRecord> = run
        .sim
        .user_records(0)
        .into_iter()
        .filter(|r| !Checkpoint::new(&at, 2).covers(&r.sequence_number, r.sub_sequence_number))
        .collect();
    assert_eq!(
        expected.len(),
        3,
        "user records 3 and 4, and the record after"
    );
    assert_eq!(run.delivered, expected);
    assert_eq!(
        run.iterator_starts(),
        vec![(shard, IteratorStart::AtSequenceNumber(at))]
    );
}

#[test]
fn calls_in_flight_are_bounded_and_one_per_shard() {
    let mut sim = SimStream::even(20);
    fill(&mut sim, 3, 2);
    let mut run = Run::new(
        sim,
        SourceConfig {
            max_in_flight: 4,
            ..config()
        },
    );
    let first = run.calls_now();
    assert_eq!(first.len(), 1, "the listing comes first, alone");
    assert_eq!(first[0].1, Request::ListShards);
    let (id, request) = first[0].clone();
    run.answer(id, &request, &mut no_faults());
    let calls = run.calls_now();
    assert_eq!(calls.len(), 4);
    let mut shards: Vec<&str> = calls
        .iter()
        .map(|(_, c)| match c {
            Request::GetShardIterator { shard_id, .. } => shard_id.as_str(),
            other => panic!("unexpected {other:?}"),
        })
        .collect();
    shards.dedup();
    assert_eq!(shards.len(), 4, "four different shards");
    assert!(run.core.poll_call(run.now).is_none());
    // Answering one frees one place, for a shard not in flight.
    let (id, request) = calls[0].clone();
    run.answer(id, &request, &mut no_faults());
    let next = run.calls_now();
    assert_eq!(next.len(), 1);
    assert!(calls.iter().all(|(_, c)| *c != next[0].1));
}

#[test]
fn no_get_records_while_a_page_waits_to_be_delivered() {
    let mut sim = SimStream::even(1);
    fill(&mut sim, 0, 10);
    let mut run = Run::new(
        sim,
        SourceConfig {
            max_records: 3,
            ..config()
        },
    );
    // List, iterator, one page of 3 records: then nothing until they are taken.
    for _ in 0..3 {
        for (id, request) in run.calls_now() {
            run.answer(id, &request, &mut no_faults());
        }
    }
    assert_eq!(run.core.queued_records(), 3);
    assert!(run.core.poll_call(run.now).is_none());
    assert_eq!(
        run.core.poll_timeout(),
        None,
        "only delivery moves things on"
    );
    assert!(run.core.poll_record().is_some());
    let next = run.calls_now();
    assert!(matches!(next[..], [(_, Request::GetRecords { .. })]));
}

#[test]
fn following_polls_a_caught_up_shard_after_the_poll_interval_and_lists_again() {
    let mut sim = SimStream::even(1);
    fill(&mut sim, 0, 1);
    let mut run = Run::new(
        sim,
        SourceConfig {
            follow: true,
            list_interval: Duration::from_secs(10),
            ..config()
        },
    );
    assert!(
        run.run(&mut no_faults(), 100).is_none(),
        "following never ends"
    );
    assert_eq!(run.delivered, run.sim.user_records(0));
    let records: Vec<Duration> = run
        .calls
        .iter()
        .filter(|(_, c)| matches!(c, Request::GetRecords { .. }))
        .map(|(at, _)| *at)
        .collect();
    // One page with the record (not caught up: it was not empty), then empty pages
    // every 500 ms.
    assert_eq!(records[0], Duration::ZERO);
    assert_eq!(records[1], Duration::ZERO);
    assert!(records[2..]
        .windows(2)
        .all(|w| w[1] - w[0] <= Duration::from_millis(500)));
    assert_eq!(records[2] - records[1], Duration::from_millis(500));
    let listings: Vec<Duration> = run
        .calls
        .iter()
        .filter(|(_, c)| *c == Request::ListShards)
        .map(|(at, _)| *at)
        .collect();
    assert_eq!(listings[..2], [Duration::ZERO, Duration::from_secs(10)]);
    // A record put now is read on the next poll.
    run.sim.push(0, "late", b"late".to_vec());
    run.run(&mut no_faults(), 10);
    assert_eq!(run.delivered, run.sim.user_records(0));
}

#[test]
fn a_listing_refused_for_good_ends_at_once_with_its_error() {
    let mut run = Run::new(SimStream::even(2), config());
    let mut faults = |_: &Request, _: usize| {
        Some(failed(
            "AccessDeniedException",
            "not authorized to perform: kinesis:ListShards",
            false,
        ))
    };
    let end = run.run_to_end(&mut faults);
    assert!(matches!(
        end,
        Err(SourceError::Kinesis { operation: "ListShards", ref code, .. }) if code == "AccessDeniedException"
    ));
    assert_eq!(run.calls.len(), 1);
    assert_eq!(run.now, run.start);
}

#[test]
fn a_throttled_listing_is_retried_with_backoff_then_ends_in_its_error() {
    let mut run = Run::new(SimStream::even(2), config());
    let mut faults =
        |_: &Request, _: usize| Some(failed("LimitExceededException", "Rate exceeded", true));
    let end = run.run_to_end(&mut faults);
    assert!(matches!(
        end,
        Err(SourceError::Kinesis { operation: "ListShards", ref code, .. }) if code == "LimitExceededException"
    ));
    let times: Vec<Duration> = run.calls.iter().map(|(at, _)| *at).collect();
    assert_eq!(times.len(), 10, "ATTEMPTS listings");
    // 200, 400, 800, 1600, 3200, then 5000 ms (max_backoff) between them.
    let gaps: Vec<u128> = times
        .windows(2)
        .map(|w| (w[1] - w[0]).as_millis())
        .collect();
    assert_eq!(gaps, [200, 400, 800, 1600, 3200, 5000, 5000, 5000, 5000]);
    assert!(run.delivered.is_empty());
}

#[test]
fn a_shard_ending_while_a_listing_is_in_flight_is_followed_by_another_listing() {
    let mut sim = SimStream::even(1);
    fill(&mut sim, 0, 1);
    let mut run = Run::new(
        sim,
        SourceConfig {
            follow: true,
            list_interval: Duration::from_secs(1),
            ..config()
        },
    );
    // List, iterator, first page.
    for _ in 0..3 {
        for (id, request) in run.calls_now() {
            run.answer(id, &request, &mut no_faults());
        }
    }
    run.drain();
    run.now += Duration::from_secs(1);
    let calls = run.calls_now();
    let list = calls
        .iter()
        .find(|(_, c)| *c == Request::ListShards)
        .cloned()
        .expect("the periodic listing");
    let read = calls
        .iter()
        .find(|(_, c)| matches!(c, Request::GetRecords { .. }))
        .cloned()
        .expect("a poll of the shard");
    // The listing is answered as the stream was before the split; the poll after it.
    let stale = run.sim.answer(&list.1);
    let children = run.sim.split(0, &[HashRange::FULL]);
    fill(&mut run.sim, children[0], 2);
    run.answer(read.0, &read.1, &mut no_faults());
    run.core.on_answer(list.0, stale, run.now);
    run.check();
    assert_eq!(
        run.calls_now().first().map(|(_, c)| c.clone()),
        Some(Request::ListShards),
        "the stale listing is not trusted"
    );
}

#[test]
fn without_follow_the_children_of_an_ended_shard_are_read_before_the_end() {
    let mut sim = SimStream::even(1);
    fill(&mut sim, 0, 2);
    let children = sim.split(0, &[HashRange::new(0, 10), HashRange::new(11, u128::MAX)]);
    fill(&mut sim, children[1], 3);
    let mut run = Run::new(sim, config());
    run.run_to_end(&mut no_faults()).expect("read");
    assert_eq!(
        run.of_shard(&run.sim.shards[children[1]].id.clone()).len(),
        3
    );
    assert_eq!(run.delivered.len(), 5);
}

#[test]
fn a_start_sequence_number_is_probed_in_every_shard_and_throttling_is_asked_again() {
    let mut sim = SimStream::even(3);
    fill(&mut sim, 0, 2);
    fill(&mut sim, 1, 4);
    fill(&mut sim, 2, 2);
    let start = sim.shards[1].records[2].sequence_number.clone();
    let children = sim.split(1, &[HashRange::new(0, 1), HashRange::new(2, u128::MAX)]);
    fill(&mut sim, children[0], 1);
    let mut run = Run::new(
        sim,
        SourceConfig {
            start: StartPosition::AtSequenceNumber(start.clone()),
            ..config()
        },
    );
    let mut throttled = false;
    let mut faults = |request: &Request, _: usize| match request {
        Request::GetShardIterator { shard_id, .. } if shard_id.ends_with('2') && !throttled => {
            throttled = true;
            Some(failed("LimitExceededException", "Rate exceeded", true))
        }
        _ => None,
    };
    run.run_to_end(&mut faults).expect("read");
    let ids: Vec<String> = run.sim.shards.iter().map(|s| s.id.clone()).collect();
    assert_eq!(run.of_shard(&ids[1]), run.sim.user_records(1)[2..].to_vec());
    assert_eq!(
        run.of_shard(&ids[children[0]]),
        run.sim.user_records(children[0])
    );
    assert!(run.of_shard(&ids[0]).is_empty() && run.of_shard(&ids[2]).is_empty());
    let probes_of_2 = run
        .iterator_starts()
        .iter()
        .filter(|(s, _)| *s == ids[2])
        .count();
    assert_eq!(probes_of_2, 2, "asked again after throttling");
}

#[test]
fn a_start_sequence_number_no_shard_holds_is_an_error() {
    let mut sim = SimStream::even(2);
    fill(&mut sim, 0, 1);
    let mut run = Run::new(
        sim,
        SourceConfig {
            start: StartPosition::AtSequenceNumber("1234".into()),
            ..config()
        },
    );
    let end = run.run_to_end(&mut no_faults());
    assert!(
        matches!(end, Err(SourceError::Kinesis { ref message, .. }) if message.contains("1234"))
    );
}

#[test]
fn latest_reads_only_what_comes_after_the_start() {
    let mut sim = SimStream::even(1);
    fill(&mut sim, 0, 3);
    let mut run = Run::new(
        sim,
        SourceConfig {
            start: StartPosition::Latest,
            follow: true,
            ..config()
        },
    );
    run.run(&mut no_faults(), 10);
    assert!(run.delivered.is_empty());
    let seq = run.sim.push(0, "new", b"new".to_vec());
    run.run(&mut no_faults(), 10);
    assert_eq!(run.delivered.len(), 1);
    assert_eq!(run.delivered[0].sequence_number.as_ref(), seq);
}

#[test]
fn answers_to_calls_not_in_flight_are_ignored() {
    let mut run = Run::new(SimStream::even(1), config());
    let calls = run.calls_now();
    let (id, request) = calls[0].clone();
    run.core
        .on_answer(CallId(999), failed("X", "y", false), run.now);
    run.check();
    run.answer(id, &request, &mut no_faults());
    // The same id again, with an error: ignored too.
    run.core
        .on_answer(id, failed("AccessDeniedException", "no", false), run.now);
    run.check();
    assert!(run.core.poll_end().is_none());
    assert!(run.calls_now().len() == 1);
}

#[test]
fn an_answer_of_the_wrong_kind_ends_the_source() {
    let mut run = Run::new(SimStream::even(1), config());
    let mut faults = |request: &Request, _: usize| {
        matches!(request, Request::ListShards).then(|| Answer::Iterator(None))
    };
    let end = run.run_to_end(&mut faults);
    assert!(
        matches!(end, Err(SourceError::Kinesis { ref code, .. }) if code == "UnexpectedAnswer")
    );
}

#[test]
fn checkpointing_the_last_record_of_an_ended_shard_saves_it_finished() {
    let mut sim = SimStream::even(1);
    fill(&mut sim, 0, 2);
    sim.shards[0].open = false;
    let id = sim.shards[0].id.clone();
    let mut run = Run::new(sim, config());
    run.checkpoint_each = true;
    run.run_to_end(&mut no_faults()).expect("read");
    let last = run.delivered[1].checkpoint();
    assert_eq!(
        run.saves,
        vec![
            (id.clone(), ShardPosition::At(run.delivered[0].checkpoint())),
            (id.clone(), ShardPosition::At(last)),
            (id, ShardPosition::Finished),
        ]
    );
}

#[test]
fn a_shard_finished_in_the_store_is_not_read_and_its_children_are() {
    let mut sim = SimStream::even(1);
    fill(&mut sim, 0, 2);
    let children = sim.split(0, &[HashRange::FULL]);
    fill(&mut sim, children[0], 1);
    let saved = BTreeMap::from([(sim.shards[0].id.clone(), ShardPosition::Finished)]);
    let mut run = Run::restarted(sim, config(), saved);
    run.run_to_end(&mut no_faults()).expect("read");
    assert_eq!(run.delivered, run.sim.user_records(children[0]));
    assert!(run
        .iterator_starts()
        .iter()
        .all(|(s, _)| *s == run.sim.shards[children[0]].id));
}
