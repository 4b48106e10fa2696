//! Scenario tests of the sans-IO sink core, through its public API only: an injected clock
//! (`Instant`s computed from one `t0`, never slept on) and scripted PutRecords outcomes.
//! Expected values come from the config and from format.md, not from what the core printed.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use kpl_codec::{deaggregate, hash_key, HashRange, Options, Verdict};
use kpl_kinesis::sink::{
    Config, Core, EntryResult, ErrorInfo, Failure, FailureReason, Outcome, PutEntry, PutError,
    RecordId, RequestFailure, ShardInfo, ShardMap, Success, Transmit, UserRecord,
};

const HALF: u128 = 1 << 127;
const QUARTER: u128 = 1 << 126;
const PTEE: &str = "ProvisionedThroughputExceededException";

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn us(n: u64) -> Duration {
    Duration::from_micros(n)
}

fn shard_id(i: usize) -> String {
    format!("shardId-{i:012}")
}

/// What a driver does at `now`: the timer work due ([`Core::handle_timeout`]), then the
/// next request ([`Core::poll_transmit`]). (A debug build of the core checks its invariants
/// itself after both while it holds few records; `outcomes` checks them always.)
trait TransmitAt {
    fn transmit_at(&mut self, now: Instant) -> Option<Transmit>;
}

impl TransmitAt for Core {
    fn transmit_at(&mut self, now: Instant) -> Option<Transmit> {
        self.handle_timeout(now);
        self.poll_transmit(now)
    }
}

fn new_core(config: Config, map: Option<ShardMap>, t0: Instant) -> Core {
    let mut core = Core::new(config, t0).unwrap();
    if let Some(map) = map {
        core.set_shard_map(map, t0);
    }
    core
}

fn with_key(pk: &str, ehk: u128, data: &str) -> UserRecord {
    UserRecord::new(pk, data).with_explicit_hash_key(ehk.to_string())
}

/// One shard covering everything, then split in two halves (the parent closed): the
/// situation right after `SplitShard` of a one-shard stream.
fn split_map() -> ShardMap {
    ShardMap::new(&[
        ShardInfo {
            shard_id: shard_id(0),
            range: HashRange::FULL,
            open: false,
        },
        ShardInfo {
            shard_id: shard_id(1),
            range: HashRange::new(0, HALF - 1),
            open: true,
        },
        ShardInfo {
            shard_id: shard_id(2),
            range: HashRange::new(HALF, u128::MAX),
            open: true,
        },
    ])
    .unwrap()
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct User {
    pk: String,
    ehk: Option<String>,
    data: Vec<u8>,
}

fn user(pk: &str, ehk: Option<u128>, data: &str) -> User {
    User {
        pk: pk.to_owned(),
        ehk: ehk.map(|k| k.to_string()),
        data: data.as_bytes().to_vec(),
    }
}

fn is_aggregate(entry: &PutEntry) -> bool {
    let d = deaggregate(
        &entry.data,
        entry.partition_key.as_bytes(),
        &Options::strict(),
    )
    .unwrap();
    matches!(d.verdict(), Verdict::Aggregated { .. })
}

/// The user records of an entry (strict decoding); a raw entry gives its one record.
fn users(entry: &PutEntry) -> Vec<User> {
    let d = deaggregate(
        &entry.data,
        entry.partition_key.as_bytes(),
        &Options::strict(),
    )
    .unwrap();
    let raw = matches!(d.verdict(), Verdict::Plain(_));
    let out: Vec<User> = d
        .map(|u| User {
            pk: u.partition_key_str().unwrap().to_owned(),
            ehk: u.explicit_hash_key_str().map(|r| r.unwrap().to_owned()),
            data: u.data.to_vec(),
        })
        .collect();
    assert_eq!(out.len(), entry.user_records, "user_records of {entry:?}");
    if raw {
        assert_eq!(entry.user_records, 1);
    }
    out
}

fn data_of(entry: &PutEntry) -> Vec<String> {
    users(entry)
        .into_iter()
        .map(|u| String::from_utf8(u.data).unwrap())
        .collect()
}

fn stored(shard: &str, seq: u64) -> EntryResult {
    EntryResult::Stored {
        shard_id: shard.to_owned(),
        sequence_number: seq.to_string(),
    }
}

fn error(code: &str, message: &str) -> ErrorInfo {
    ErrorInfo {
        code: code.to_owned(),
        message: message.to_owned(),
    }
}

/// The outcomes decided so far (after a check of the core's invariants).
fn outcomes(core: &mut Core) -> BTreeMap<RecordId, Outcome> {
    core.check_invariants().unwrap();
    let mut out = BTreeMap::new();
    while let Some((id, outcome)) = core.poll_outcome() {
        assert!(out.insert(id, outcome).is_none(), "two outcomes for {id:?}");
    }
    out
}

fn success(outcome: &Outcome) -> &Success {
    match outcome {
        Outcome::Success(s) => s,
        Outcome::Failure(f) => panic!("expected success, got {f}"),
    }
}

fn failure(outcome: &Outcome) -> &Failure {
    match outcome {
        Outcome::Failure(f) => f,
        Outcome::Success(s) => panic!("expected failure, got {s:?}"),
    }
}

/// Shard index of a hash key in an even map of `n` shards (AWS's `floor(2^128 / n) * i`).
fn even_shard(key: u128, n: u128) -> usize {
    if n == 1 {
        return 0;
    }
    // floor(2^128 / n) without 2^128: (2^128 - n) / n + 1.
    let step = (u128::MAX - (n - 1)) / n + 1;
    ((key / step) as usize).min(n as usize - 1)
}

/// Drives the core from `now` until `until` or until nothing is left to do, answering
/// every request at once with `answer`. Returns the requests with the time each was sent.
fn run(
    core: &mut Core,
    mut now: Instant,
    until: Instant,
    mut answer: impl FnMut(&Transmit, Instant) -> Result<Vec<EntryResult>, RequestFailure>,
) -> Vec<(Instant, Transmit)> {
    let mut log = Vec::new();
    let mut stalls = 0;
    loop {
        let mut sent = false;
        while let Some(t) = core.transmit_at(now) {
            let response = answer(&t, now);
            core.on_response(t.id, response, now);
            log.push((now, t));
            sent = true;
        }
        match core.poll_timeout(now) {
            Some(next) if next <= until => {
                if next <= now && !sent {
                    stalls += 1;
                    assert!(
                        stalls < 100,
                        "poll_timeout keeps saying now, nothing is sent"
                    );
                } else {
                    stalls = 0;
                }
                now = now.max(next);
            }
            _ => {
                core.check_invariants().unwrap();
                return log;
            }
        }
    }
}

fn store_all(
    shard: &'static str,
) -> impl FnMut(&Transmit, Instant) -> Result<Vec<EntryResult>, RequestFailure> {
    let mut seq = 0;
    move |t, _| {
        Ok(t.entries
            .iter()
            .map(|_| {
                seq += 1;
                stored(shard, seq)
            })
            .collect())
    }
}

#[test]
fn flushes_at_record_max_buffered_time_not_before() {
    let t0 = Instant::now();
    let config = Config::default();
    let wait = ms(config.record_max_buffered_time);
    assert_eq!(wait, ms(100));
    let mut core = new_core(config, Some(ShardMap::even(1)), t0);
    let a = core.put(UserRecord::new("a", "first"), t0).unwrap();
    let b = core
        .put(UserRecord::new("b", "second"), t0 + ms(40))
        .unwrap();
    assert!(core.transmit_at(t0 + ms(40)).is_none());
    assert_eq!(core.poll_timeout(t0 + ms(40)), Some(t0 + wait));
    assert!(core.transmit_at(t0 + wait - us(1)).is_none());
    let request = core.transmit_at(t0 + wait).unwrap();
    assert_eq!(request.entries.len(), 1);
    let entry = &request.entries[0];
    assert_eq!(entry.partition_key, "a");
    assert_eq!(entry.explicit_hash_key, hash_key(b"a").to_string());
    assert_eq!(
        users(entry),
        vec![user("a", None, "first"), user("b", None, "second")]
    );
    assert!(core.transmit_at(t0 + wait).is_none());
    assert_eq!(core.poll_timeout(t0 + wait), None);

    // A record put after that flush waits its own full RecordMaxBufferedTime.
    let t1 = t0 + ms(150);
    let c = core.put(UserRecord::new("c", "third"), t1).unwrap();
    assert_eq!(core.poll_timeout(t1), Some(t1 + wait));
    assert!(core.transmit_at(t1 + wait - us(1)).is_none());
    let second = core.transmit_at(t1 + wait).unwrap();
    assert_eq!(second.entries.len(), 1);
    assert_eq!(second.entries[0].partition_key, "c");
    assert_eq!(second.entries[0].data, b"third");
    assert_eq!(
        second.entries[0].explicit_hash_key,
        hash_key(b"c").to_string()
    );
    assert!(!is_aggregate(&second.entries[0]));

    let shard = shard_id(0);
    core.on_response(request.id, Ok(vec![stored(&shard, 7)]), t1 + wait);
    core.on_response(second.id, Ok(vec![stored(&shard, 8)]), t1 + wait);
    let out = outcomes(&mut core);
    assert_eq!(out.len(), 3);
    let (sa, sb, sc) = (success(&out[&a]), success(&out[&b]), success(&out[&c]));
    assert_eq!(
        (&*sa.sequence_number, sa.sub_sequence_number, sa.aggregated),
        ("7", 0, true)
    );
    assert_eq!(
        (&*sb.sequence_number, sb.sub_sequence_number, sb.aggregated),
        ("7", 1, true)
    );
    assert_eq!(
        (&*sc.sequence_number, sc.sub_sequence_number, sc.aggregated),
        ("8", 0, false)
    );
    assert!([sa, sb, sc]
        .iter()
        .all(|s| s.attempts == 1 && *s.shard_id == shard));
    assert!(core.is_idle());
}

#[test]
fn aggregates_per_shard_on_four_shards() {
    let t0 = Instant::now();
    let mut core = new_core(Config::default(), Some(ShardMap::even(4)), t0);
    let mut expected: Vec<Vec<(RecordId, User)>> = vec![Vec::new(); 4];
    // Explicit hash keys: three per shard, interleaved across shards.
    for j in 0..3u128 {
        for i in 0..4u128 {
            let key = i * QUARTER + j * 1_000_003 + 1;
            let data = format!("ehk-{i}-{j}");
            let id = core.put(with_key("e", key, &data), t0).unwrap();
            expected[i as usize].push((id, user("e", Some(key), &data)));
        }
    }
    // Partition keys hashed with MD5 (format.md section 3).
    for n in 0..40 {
        let pk = format!("user-{n}");
        let data = format!("pk-{n}");
        let shard = even_shard(hash_key(pk.as_bytes()), 4);
        let id = core
            .put(UserRecord::new(pk.clone(), data.clone()), t0)
            .unwrap();
        expected[shard].push((id, user(&pk, None, &data)));
    }
    assert!(core.transmit_at(t0).is_none());
    let t1 = t0 + ms(100);
    let request = core.transmit_at(t1).unwrap();
    assert!(core.transmit_at(t1).is_none());
    assert_eq!(request.entries.len(), 4);
    let mut seen = BTreeSet::new();
    let mut results = Vec::new();
    for (n, entry) in request.entries.iter().enumerate() {
        assert!(is_aggregate(entry));
        assert_eq!(entry.partition_key, "a");
        let ehk: u128 = entry.explicit_hash_key.parse().unwrap();
        let shard = even_shard(ehk, 4);
        assert!(seen.insert(shard), "two aggregates for shard {shard}");
        let want: Vec<User> = expected[shard].iter().map(|(_, u)| u.clone()).collect();
        let first = &want[0];
        let first_key = first
            .ehk
            .as_ref()
            .map_or_else(|| hash_key(first.pk.as_bytes()), |k| k.parse().unwrap());
        assert_eq!(ehk, first_key, "the aggregate's key is its first record's");
        assert_eq!(users(entry), want, "shard {shard}");
        results.push(stored(&shard_id(shard), n as u64));
    }
    core.on_response(request.id, Ok(results), t1);
    let out = outcomes(&mut core);
    assert_eq!(out.len(), 52);
    for (shard, records) in expected.iter().enumerate() {
        for (position, (id, _)) in records.iter().enumerate() {
            let s = success(&out[id]);
            assert_eq!(*s.shard_id, shard_id(shard));
            assert_eq!(s.sub_sequence_number, position as u64);
            assert!(s.aggregated);
        }
    }
}

#[test]
fn splits_at_aggregation_max_size_and_batches_within_500_records_and_5_mib() {
    let t0 = Instant::now();
    // Count-bound: AggregationMaxSize 1000, user records of 100 bytes under one key "k".
    // KPL's estimate for n >= 2 records is n * (100 + 5) + (1 + 3): it reaches 1000 at the
    // 10th record. The accurate size of k records is 20 + 3 (key table entry 0A 01 6B) +
    // k * 106 (1A 68, then 08 00 1A 64 + 100 bytes): 977 for 9, 1083 for 10, so each flush
    // emits 9 records and keeps 1 (format.md section 2.6). 9001 records: 1000 aggregates of
    // 9 and one left for the deadline, sent alone (raw).
    // The drain rule is off: this test puts far more than the buffer floor before anything
    // is stored (admission has tests of its own).
    let config = Config {
        aggregation_max_size: 1000,
        buffer_drain_time: Some(0),
        ..Config::default()
    };
    let mut core = new_core(config, Some(ShardMap::even(1)), t0);
    let payload = "x".repeat(100);
    for _ in 0..9001 {
        core.put(UserRecord::new("k", payload.clone()), t0).unwrap();
    }
    let mut requests = Vec::new();
    while let Some(t) = core.transmit_at(t0) {
        requests.push(t);
    }
    assert_eq!(
        requests.iter().map(|t| t.entries.len()).collect::<Vec<_>>(),
        [500, 500]
    );
    for t in &requests {
        for e in &t.entries {
            assert_eq!((e.data.len(), e.user_records), (977, 9));
            assert!(e.data.len() <= 1000);
        }
        assert!(t.size() <= 5 * 1024 * 1024);
    }
    assert_eq!(core.poll_timeout(t0), Some(t0 + ms(100)));
    assert!(core.transmit_at(t0 + ms(100) - us(1)).is_none());
    let last = core.transmit_at(t0 + ms(100)).unwrap();
    assert_eq!(last.entries.len(), 1);
    assert_eq!(last.entries[0].partition_key, "k");
    assert_eq!(last.entries[0].data, payload.as_bytes());

    // Size-bound: AggregationMaxSize 300,000, user records of 100,000 bytes. The estimate
    // reaches the limit at 3 records (3 * 100,005 + 4); accurate sizes are 23 + k * 100,010
    // (1A + 3-byte length, then 08 00 1A + 3-byte length + data): 200,043 for 2, 300,053
    // for 3, so aggregates of 2. With the key "a", 200,044 bytes count per entry, and
    // 26 of them fit in 5 MiB (5,201,144) where 27 would not (5,401,188). 121 records:
    // 60 aggregates, then one record left for the deadline. The rate limit is raised so
    // that it does not interfere.
    let config = Config {
        aggregation_max_size: 300_000,
        rate_limit: 100_000,
        buffer_drain_time: Some(0),
        ..Config::default()
    };
    let mut core = new_core(config, Some(ShardMap::even(1)), t0);
    let payload = vec![b'y'; 100_000];
    for _ in 0..121 {
        core.put(UserRecord::new("k", payload.clone()), t0).unwrap();
    }
    let mut requests = Vec::new();
    while let Some(t) = core.transmit_at(t0) {
        requests.push(t);
    }
    assert_eq!(
        requests.iter().map(|t| t.entries.len()).collect::<Vec<_>>(),
        [26, 26]
    );
    for t in &requests {
        assert_eq!(t.size(), 26 * 200_044);
        assert!(t
            .entries
            .iter()
            .all(|e| e.data.len() == 200_043 && e.user_records == 2));
    }
    assert!(core.transmit_at(t0 + ms(99)).is_none());
    let last = core.transmit_at(t0 + ms(100)).unwrap();
    assert_eq!(last.entries.len(), 9);
    assert_eq!(last.size(), 8 * 200_044 + 100_001);
    assert!(core.transmit_at(t0 + ms(100)).is_none());
}

/// Checks that no more than `burst + rate * elapsed` units went to a shard by any time.
fn assert_within_rate(sent: &[(Instant, u64)], t0: Instant, burst: u64, rate: u64, what: &str) {
    let mut total = 0u128;
    for &(at, n) in sent {
        total += u128::from(n);
        let elapsed = at.duration_since(t0).as_micros();
        let allowed = u128::from(burst) * 1_000_000 + u128::from(rate) * elapsed;
        assert!(
            total * 1_000_000 <= allowed,
            "{what}: {total} by {elapsed} us, more than {burst} + {rate}/s"
        );
    }
}

#[test]
fn rate_limit_holds_records_per_second_per_shard() {
    let t0 = Instant::now();
    let config = Config {
        aggregation_enabled: false,
        // Bulk puts with nothing stored yet: the drain rule is off here.
        buffer_drain_time: Some(0),
        ..Config::default()
    };
    // RateLimit 150 % of 1,000 records/s: 1,500 a second, a bucket of one second.
    let per_second = config.shard_records_per_second * config.rate_limit / 100;
    assert_eq!(per_second, 1500);
    let mut core = new_core(config, Some(ShardMap::even(2)), t0);
    for i in 0..4500u128 {
        core.put(with_key("p", 1 + i, "d"), t0).unwrap();
    }
    for i in 0..1500u128 {
        core.put(with_key("p", HALF + 1 + i, "d"), t0).unwrap();
    }
    let log = run(
        &mut core,
        t0,
        t0 + ms(10_000),
        store_all("shardId-000000000000"),
    );
    let mut per_shard: [Vec<(Instant, u64)>; 2] = [Vec::new(), Vec::new()];
    for (at, t) in &log {
        let mut n = [0u64; 2];
        for e in &t.entries {
            n[usize::from(e.explicit_hash_key.parse::<u128>().unwrap() >= HALF)] += 1;
        }
        for s in 0..2 {
            if n[s] > 0 {
                per_shard[s].push((*at, n[s]));
            }
        }
    }
    assert_within_rate(&per_shard[0], t0, per_second, per_second, "shard 0 records");
    assert_within_rate(&per_shard[1], t0, per_second, per_second, "shard 1 records");
    let total = |s: &[(Instant, u64)]| s.iter().map(|x| x.1).sum::<u64>();
    assert_eq!((total(&per_shard[0]), total(&per_shard[1])), (4500, 1500));
    // Shard 1 is not held back by shard 0: all its records go at once.
    assert!(per_shard[1].iter().all(|(at, _)| *at == t0));
    // Shard 0: 1,500 at once, the other 3,000 at 1.5 per ms, the last at 2 s.
    let at_start: u64 = per_shard[0].iter().filter(|x| x.0 == t0).map(|x| x.1).sum();
    assert_eq!(at_start, 1500);
    let last = per_shard[0].last().unwrap().0;
    assert!(
        last >= t0 + ms(1999) && last <= t0 + ms(2001),
        "{:?}",
        last - t0
    );
    assert_eq!(outcomes(&mut core).len(), 6000);
    assert!(core.is_idle());
}

#[test]
fn rate_limit_holds_bytes_per_second_per_shard() {
    let t0 = Instant::now();
    let config = Config {
        aggregation_enabled: false,
        rate_limit: 100,
        shard_bytes_per_second: 100_000,
        // Bulk puts with nothing stored yet: the drain rule is off here.
        buffer_drain_time: Some(0),
        ..Config::default()
    };
    let mut core = new_core(config, Some(ShardMap::even(1)), t0);
    // 10,000 bytes each (data plus key): 10 at once, then one per 100 ms.
    let data = "z".repeat(9_999);
    for _ in 0..30 {
        core.put(UserRecord::new("p", data.clone()), t0).unwrap();
    }
    let log = run(
        &mut core,
        t0,
        t0 + ms(10_000),
        store_all("shardId-000000000000"),
    );
    let sent: Vec<(Instant, u64)> = log.iter().map(|(at, t)| (*at, t.size() as u64)).collect();
    assert_within_rate(&sent, t0, 100_000, 100_000, "bytes");
    assert_eq!(sent.iter().map(|x| x.1).sum::<u64>(), 300_000);
    let last = sent.last().unwrap().0;
    assert!(
        last >= t0 + ms(1999) && last <= t0 + ms(2001),
        "{:?}",
        last - t0
    );
    assert_eq!(outcomes(&mut core).len(), 30);
}

#[test]
fn retries_throttled_records_with_backoff_then_succeeds() {
    let t0 = Instant::now();
    let config = Config::default();
    let base = config.retry_backoff_min;
    let mut core = new_core(config, Some(ShardMap::even(1)), t0);
    let a = core.put(UserRecord::new("a", "1"), t0).unwrap();
    let b = core.put(UserRecord::new("b", "2"), t0).unwrap();
    let first = core.transmit_at(t0 + ms(100)).unwrap();
    let throttled = || {
        Ok(vec![EntryResult::Failed(error(
            PTEE,
            "Rate exceeded for shard shardId-000000000000",
        ))])
    };
    let t1 = t0 + ms(110);
    core.on_response(first.id, throttled(), t1);
    assert!(outcomes(&mut core).is_empty());
    assert!(core.transmit_at(t1).is_none());
    // First retry after RetryBackoffMin with jitter in its upper half.
    let due = core.poll_timeout(t1).unwrap();
    assert!(
        due >= t1 + ms(base / 2) && due <= t1 + ms(base),
        "{:?}",
        due - t1
    );
    assert!(core.transmit_at(due - us(1)).is_none());
    let second = core.transmit_at(due).unwrap();
    assert_eq!(second.entries, first.entries);
    core.on_response(second.id, throttled(), due);
    // Then doubled.
    let due2 = core.poll_timeout(due).unwrap();
    assert!(
        due2 >= due + ms(base) && due2 <= due + ms(2 * base),
        "{:?}",
        due2 - due
    );
    assert!(core.transmit_at(due2 - us(1)).is_none());
    let third = core.transmit_at(due2).unwrap();
    assert_eq!(third.entries, first.entries);
    core.on_response(third.id, Ok(vec![stored(&shard_id(0), 1)]), due2);
    let out = outcomes(&mut core);
    assert_eq!(out.len(), 2);
    for id in [a, b] {
        let s = success(&out[&id]);
        assert_eq!(s.attempts, 3);
        assert_eq!(&*s.sequence_number, "1");
    }
    assert_eq!(core.stats().retries_by_code.get(PTEE), Some(&2));
    assert!(core.is_idle());
}

#[test]
fn retry_backoff_is_capped_at_retry_backoff_max() {
    let t0 = Instant::now();
    let config = Config {
        retry_backoff_min: 100,
        retry_backoff_max: 150,
        ..Config::default()
    };
    let mut core = new_core(config, Some(ShardMap::even(1)), t0);
    core.put(UserRecord::new("a", "1"), t0).unwrap();
    let mut now = t0 + ms(100);
    let mut request = core.transmit_at(now).unwrap();
    for attempt in 1..=6u64 {
        core.on_response(
            request.id,
            Ok(vec![EntryResult::Failed(error(PTEE, "slow down"))]),
            now,
        );
        let due = core.poll_timeout(now).unwrap();
        let cap = (100 << (attempt - 1)).min(150);
        assert!(
            due >= now + ms(cap / 2) && due <= now + ms(cap),
            "attempt {attempt}: {:?}",
            due - now
        );
        now = due;
        request = core.transmit_at(now).unwrap();
    }
}

#[test]
fn fails_with_expired_after_record_ttl_with_last_error() {
    let t0 = Instant::now();
    let config = Config {
        record_ttl: 1000,
        ..Config::default()
    };
    let mut core = new_core(config, Some(ShardMap::even(1)), t0);
    let id = core.put(UserRecord::new("a", "1"), t0).unwrap();
    let mut now = t0;
    let mut attempts = 0u32;
    let out = loop {
        while let Some(t) = core.transmit_at(now) {
            attempts += 1;
            let message = format!("attempt {attempts}");
            core.on_response(
                t.id,
                Ok(vec![EntryResult::Failed(error(PTEE, &message))]),
                now,
            );
        }
        let out = outcomes(&mut core);
        if !out.is_empty() {
            break out;
        }
        assert!(now < t0 + ms(1000), "no outcome at the TTL");
        now = core.poll_timeout(now).unwrap().max(now);
    };
    assert_eq!(
        now,
        t0 + ms(1000),
        "fails when RecordTtl has passed, not before or later"
    );
    assert!(attempts >= 3, "retried until then ({attempts})");
    let f = failure(&out[&id]);
    assert_eq!(f.attempts, attempts);
    let last = error(PTEE, &format!("attempt {attempts}"));
    assert_eq!(f.reason, FailureReason::Expired(Some(last)));
    assert_eq!(core.stats().user_records_failed, 1);
    assert!(core.is_idle());
}

#[test]
fn ttl_expires_each_record_of_a_retried_aggregate_at_its_own_deadline() {
    let t0 = Instant::now();
    let config = Config {
        record_ttl: 1000,
        ..Config::default()
    };
    let mut core = new_core(config, Some(ShardMap::even(1)), t0);
    let early = core.put(UserRecord::new("a", "early"), t0).unwrap();
    let late = core.put(UserRecord::new("b", "late"), t0 + ms(50)).unwrap();
    let mut now = t0;
    let mut sent = Vec::new();
    let mut seen = Vec::new();
    while seen.len() < 2 {
        while let Some(t) = core.transmit_at(now) {
            let results = vec![EntryResult::Failed(error(PTEE, "busy")); t.entries.len()];
            sent.push((now, t.entries.clone()));
            core.on_response(t.id, Ok(results), now);
        }
        for (id, outcome) in outcomes(&mut core) {
            seen.push((now, id, outcome));
        }
        if seen.len() == 2 {
            break;
        }
        assert!(now <= t0 + ms(1050), "no outcome by the TTL");
        now = core.poll_timeout(now).unwrap().max(now);
    }
    assert_eq!((seen[0].0, seen[0].1), (t0 + ms(1000), early));
    assert_eq!((seen[1].0, seen[1].1), (t0 + ms(1050), late));
    for (_, _, outcome) in &seen {
        assert_eq!(
            failure(outcome).reason,
            FailureReason::Expired(Some(error(PTEE, "busy")))
        );
    }
    assert!(sent.iter().all(|(at, _)| *at < t0 + ms(1050)));
    let before: Vec<_> = sent.iter().filter(|(at, _)| *at < t0 + ms(1000)).collect();
    assert!(before
        .iter()
        .all(|(_, e)| e.len() == 1 && data_of(&e[0]) == ["early", "late"]));
    assert!(core.is_idle());
}

/// Two user records for shard 0 of two (one aggregate) and one for shard 1 (raw), sent at
/// `t0 + 100 ms`. Returns the ids (shard 0's two, shard 1's) and the request.
fn two_shard_request(core: &mut Core, t0: Instant) -> ([RecordId; 3], Transmit) {
    let a = core.put(with_key("a", 1, "a"), t0).unwrap();
    let b = core.put(with_key("b", 2, "b"), t0).unwrap();
    let c = core.put(with_key("c", HALF + 1, "c"), t0).unwrap();
    let t = core.transmit_at(t0 + ms(100)).unwrap();
    assert!(core.transmit_at(t0 + ms(100)).is_none());
    assert_eq!(t.entries.len(), 2);
    ([a, b, c], t)
}

/// Index in `t` of the entry for shard 0.
fn entry_of_shard0(t: &Transmit) -> usize {
    t.entries
        .iter()
        .position(|e| e.explicit_hash_key.parse::<u128>().unwrap() < HALF)
        .unwrap()
}

#[test]
fn non_retryable_entry_error_fails_only_that_record() {
    let t0 = Instant::now();
    let mut core = new_core(Config::default(), Some(ShardMap::even(2)), t0);
    let ([a, b, c], t) = two_shard_request(&mut core, t0);
    let i = entry_of_shard0(&t);
    let denied = error("KMSAccessDeniedException", "not allowed to use the key");
    let mut results = vec![stored(&shard_id(1), 5), stored(&shard_id(1), 5)];
    results[i] = EntryResult::Failed(denied.clone());
    core.on_response(t.id, Ok(results), t0 + ms(100));
    let out = outcomes(&mut core);
    assert_eq!(out.len(), 3);
    for id in [a, b] {
        let f = failure(&out[&id]);
        assert_eq!(f.reason, FailureReason::Rejected(denied.clone()));
        assert_eq!(f.attempts, 1);
    }
    assert_eq!(*success(&out[&c]).shard_id, shard_id(1));
    assert!(core.transmit_at(t0 + ms(10_000)).is_none());
    assert_eq!(core.poll_timeout(t0 + ms(100)), None);
    assert!(core.is_idle());
    assert!(core.stats().retries_by_code.is_empty());
}

#[test]
fn whole_request_throttling_retries_everything() {
    let t0 = Instant::now();
    let config = Config::default();
    let base = config.retry_backoff_min;
    let mut core = new_core(config, Some(ShardMap::even(2)), t0);
    let (ids, t) = two_shard_request(&mut core, t0);
    let t1 = t0 + ms(100);
    let throttling = RequestFailure {
        error: error("ThrottlingException", "Rate exceeded"),
        retryable: true,
    };
    core.on_response(t.id, Err(throttling), t1);
    assert!(outcomes(&mut core).is_empty());
    assert!(core.transmit_at(t1).is_none());
    let log = run(
        &mut core,
        t1,
        t1 + ms(10_000),
        store_all("shardId-000000000000"),
    );
    let mut before: Vec<PutEntry> = t.entries.clone();
    let mut after: Vec<PutEntry> = log.iter().flat_map(|(_, t)| t.entries.clone()).collect();
    before.sort_by(|x, y| x.data.cmp(&y.data));
    after.sort_by(|x, y| x.data.cmp(&y.data));
    assert_eq!(before, after);
    for (at, _) in &log {
        assert!(
            *at >= t1 + ms(base / 2) && *at <= t1 + ms(base),
            "{:?}",
            *at - t1
        );
    }
    let out = outcomes(&mut core);
    assert_eq!(out.len(), 3);
    assert!(ids.iter().all(|id| success(&out[id]).attempts == 2));
    assert!(core.is_idle());
}

#[test]
fn whole_request_retry_counts_once_per_request_in_stats() {
    let t0 = Instant::now();
    let t1 = t0 + ms(100);
    let mut core = new_core(Config::default(), Some(ShardMap::even(2)), t0);
    let (_, t) = two_shard_request(&mut core, t0);
    let throttling = RequestFailure {
        error: error("ThrottlingException", "Rate exceeded"),
        retryable: true,
    };
    core.on_response(t.id, Err(throttling), t1);
    assert_eq!(
        core.stats().retries_by_code.get("ThrottlingException"),
        Some(&1)
    );

    let mut core = new_core(Config::default(), Some(ShardMap::even(2)), t0);
    let (_, t) = two_shard_request(&mut core, t0);
    core.on_response(t.id, Ok(vec![stored(&shard_id(0), 1)]), t1);
    assert_eq!(core.stats().retries_by_code.get("ResponseError"), Some(&1));
    assert!(outcomes(&mut core).is_empty());

    let mut core = new_core(Config::default(), Some(ShardMap::even(2)), t0);
    let (_, t) = two_shard_request(&mut core, t0);
    core.on_response(
        t.id,
        Ok(vec![EntryResult::Failed(error(PTEE, "busy")); 2]),
        t1,
    );
    assert_eq!(core.stats().retries_by_code.get(PTEE), Some(&2));
}

#[test]
fn whole_request_validation_error_fails_everything_at_once() {
    let t0 = Instant::now();
    let mut core = new_core(Config::default(), Some(ShardMap::even(2)), t0);
    let (ids, t) = two_shard_request(&mut core, t0);
    let invalid = RequestFailure {
        error: error("ValidationException", "1 validation error detected"),
        retryable: false,
    };
    core.on_response(t.id, Err(invalid.clone()), t0 + ms(100));
    let out = outcomes(&mut core);
    assert_eq!(out.keys().copied().collect::<Vec<_>>(), ids.to_vec());
    for id in ids {
        let f = failure(&out[&id]);
        assert_eq!(f.reason, FailureReason::Rejected(invalid.error.clone()));
        assert_eq!(f.attempts, 1);
    }
    assert!(core.is_idle());
    assert_eq!(core.poll_timeout(t0 + ms(100)), None);
}

/// Three user records aggregated for the one shard of a one-shard map: keys 10 and 20 in
/// the lower half, `2^127 + 10` in the upper one. The aggregate's explicit hash key is 10.
fn spanning_aggregate(core: &mut Core, t0: Instant) -> ([RecordId; 3], Transmit) {
    let a = core.put(with_key("low-a", 10, "a"), t0).unwrap();
    let b = core.put(with_key("high-b", HALF + 10, "b"), t0).unwrap();
    let c = core.put(with_key("low-c", 20, "c"), t0).unwrap();
    let t = core.transmit_at(t0 + ms(100)).unwrap();
    assert_eq!(t.entries.len(), 1);
    assert_eq!(t.entries[0].explicit_hash_key, "10");
    assert_eq!(data_of(&t.entries[0]), ["a", "b", "c"]);
    ([a, b, c], t)
}

/// Every aggregate fits one open shard of `map`, the one its explicit hash key routes to.
fn assert_shard_safe(t: &Transmit, map: &ShardMap) {
    for e in &t.entries {
        if !is_aggregate(e) {
            continue;
        }
        let (_, range) = map
            .open_shard(map.route(e.explicit_hash_key.parse().unwrap()))
            .unwrap();
        for u in users(e) {
            let key = u
                .ehk
                .as_ref()
                .map_or_else(|| hash_key(u.pk.as_bytes()), |k| k.parse().unwrap());
            assert!(range.contains(key), "{u:?} outside {range:?}");
        }
    }
}

#[test]
fn wrong_shard_resends_all_user_records_after_new_map() {
    let t0 = Instant::now();
    let mut core = new_core(Config::default(), Some(ShardMap::even(1)), t0);
    let ([a, b, c], t) = spanning_aggregate(&mut core, t0);
    // The stream is split while the request is on its way; the core learns of it first.
    core.set_shard_map(split_map(), t0 + ms(101));
    assert!(!core.wants_shard_map());
    // Kinesis put the aggregate where its explicit hash key (10) lies: the lower child,
    // which does not hold b. KCL would drop the whole aggregate there.
    core.on_response(t.id, Ok(vec![stored(&shard_id(1), 1)]), t0 + ms(102));
    assert!(outcomes(&mut core).is_empty());
    assert!(core.wants_shard_map());
    assert_eq!(core.stats().wrong_shard_resends, 1);
    assert_eq!(core.buffered_records(), 3);
    let t1 = t0 + ms(103);
    core.set_shard_map(split_map(), t1);
    assert!(!core.wants_shard_map());
    // Re-sent within one RecordMaxBufferedTime of the answer.
    let due = core.poll_timeout(t1).unwrap();
    assert!(due >= t1 && due <= t0 + ms(102 + 100), "{:?}", due - t0);
    let resent = core.transmit_at(due).unwrap();
    assert!(core.transmit_at(due).is_none());
    assert_shard_safe(&resent, &split_map());
    // All three go again (a and c too, though they were in range): a and c aggregated for
    // the lower child, b alone for the upper one.
    let mut by_key: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for e in &resent.entries {
        by_key.insert(e.explicit_hash_key.clone(), data_of(e));
    }
    let want: BTreeMap<String, Vec<String>> = [
        ("10".to_owned(), vec!["a".to_owned(), "c".to_owned()]),
        ((HALF + 10).to_string(), vec!["b".to_owned()]),
    ]
    .into();
    assert_eq!(by_key, want);
    let results = resent
        .entries
        .iter()
        .map(|e| {
            let upper = e.explicit_hash_key.parse::<u128>().unwrap() >= HALF;
            stored(&shard_id(if upper { 2 } else { 1 }), 2)
        })
        .collect();
    core.on_response(resent.id, Ok(results), due);
    let out = outcomes(&mut core);
    assert_eq!(out.len(), 3);
    for (id, shard, sub, aggregated) in [(a, 1, 0, true), (c, 1, 1, true), (b, 2, 0, false)] {
        let s = success(&out[&id]);
        assert_eq!(*s.shard_id, shard_id(shard));
        assert_eq!(
            (&*s.sequence_number, s.sub_sequence_number, s.aggregated),
            ("2", sub, aggregated)
        );
        assert_eq!(s.attempts, 2);
    }
    assert!(core.is_idle());
}

#[test]
fn unknown_shard_parks_until_map_refresh() {
    let t0 = Instant::now();
    let mut core = new_core(Config::default(), Some(ShardMap::even(1)), t0);
    let (ids, t) = spanning_aggregate(&mut core, t0);
    // Split before the core knows: Kinesis answers with a shard its map does not have.
    core.on_response(t.id, Ok(vec![stored(&shard_id(1), 1)]), t0 + ms(102));
    assert!(outcomes(&mut core).is_empty());
    assert!(core.wants_shard_map());
    assert_eq!(core.buffered_records(), 3);
    assert!(!core.is_idle());
    // Parked: nothing is re-sent or reported while the map is awaited (here 20 s, within
    // the 30 s RecordTtl).
    let late = t0 + ms(20_000);
    assert!(core.transmit_at(late).is_none());
    assert!(outcomes(&mut core).is_empty());
    assert_eq!(core.buffered_records(), 3);
    core.set_shard_map(split_map(), late);
    let due = core.poll_timeout(late).unwrap();
    assert!(due >= late && due <= late + ms(100), "{:?}", due - late);
    let resent = core.transmit_at(due).unwrap();
    assert_eq!(
        resent.entries.iter().map(|e| e.user_records).sum::<usize>(),
        3
    );
    assert_shard_safe(&resent, &split_map());
    let results = resent
        .entries
        .iter()
        .map(|_| stored(&shard_id(1), 2))
        .collect();
    core.on_response(resent.id, Ok(results), due);
    let out = outcomes(&mut core);
    assert_eq!(out.keys().copied().collect::<Vec<_>>(), ids.to_vec());
    assert!(out.values().all(|o| success(o).attempts == 2));
}

#[test]
fn installing_the_fresh_map_after_an_unknown_shard_reaggregates_without_asking_again() {
    let t0 = Instant::now();
    let mut core = new_core(Config::default(), Some(ShardMap::even(1)), t0);
    let (_, t) = spanning_aggregate(&mut core, t0);
    core.on_response(t.id, Ok(vec![stored(&shard_id(1), 1)]), t0 + ms(102));
    let t1 = t0 + ms(103);
    core.set_shard_map(split_map(), t1);
    assert!(!core.wants_shard_map());
    let due = core.poll_timeout(t1).unwrap();
    assert!(due <= t1 + ms(100));
    let resent = core.transmit_at(due).unwrap();
    assert!(!core.wants_shard_map());
    let mut by_key: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for e in &resent.entries {
        by_key.insert(e.explicit_hash_key.clone(), data_of(e));
    }
    assert_eq!(
        by_key.get("10").map(Vec::as_slice),
        Some(&["a".to_owned(), "c".to_owned()][..])
    );
    assert_eq!(core.stats().shard_maps, 2);
}

#[test]
fn parked_aggregate_that_fits_its_new_shard_succeeds_without_resend() {
    let t0 = Instant::now();
    let mut core = new_core(Config::default(), Some(ShardMap::even(1)), t0);
    let a = core.put(with_key("a", 10, "a"), t0).unwrap();
    let b = core.put(with_key("b", 20, "b"), t0).unwrap();
    let t = core.transmit_at(t0 + ms(100)).unwrap();
    core.on_response(t.id, Ok(vec![stored(&shard_id(1), 4)]), t0 + ms(101));
    assert!(outcomes(&mut core).is_empty());
    assert!(core.wants_shard_map());
    core.set_shard_map(split_map(), t0 + ms(200));
    assert!(!core.wants_shard_map());
    let out = outcomes(&mut core);
    for (id, sub) in [(a, 0), (b, 1)] {
        let s = success(&out[&id]);
        assert_eq!(
            (&*s.shard_id, &*s.sequence_number, s.sub_sequence_number),
            (&*shard_id(1), "4", sub)
        );
        assert_eq!(s.attempts, 1);
    }
    assert!(core.transmit_at(t0 + ms(10_000)).is_none());
    assert!(core.is_idle());
    assert_eq!(core.stats().wrong_shard_resends, 0);
}

#[test]
fn backpressure_full_returns_the_record_until_outcomes_free_room() {
    let t0 = Instant::now();
    let config = Config {
        max_buffered_records: 3,
        ..Config::default()
    };
    let mut core = new_core(config, Some(ShardMap::even(1)), t0);
    for n in 0..3 {
        core.put(UserRecord::new("k", format!("{n}")), t0).unwrap();
    }
    let fourth = UserRecord::new("k", "3");
    assert!(!core.has_room(&fourth, t0));
    assert_eq!(
        core.put(fourth.clone(), t0),
        Err(PutError::Full(fourth.clone()))
    );
    assert_eq!(core.buffered_records(), 3);
    // Sent but not answered: still buffered.
    let t1 = t0 + ms(100);
    let t = core.transmit_at(t1).unwrap();
    assert_eq!(
        core.put(fourth.clone(), t1),
        Err(PutError::Full(fourth.clone()))
    );
    core.on_response(t.id, Ok(vec![stored(&shard_id(0), 1)]), t1);
    assert_eq!(core.buffered_records(), 0);
    assert!(core.has_room(&fourth, t1));
    assert_eq!(outcomes(&mut core).len(), 3);
    assert!(core.put(fourth, t1).is_ok());
    assert_eq!(core.stats().user_records_put, 4);

    // The byte limit: data plus partition key.
    let config = Config {
        max_record_size: 1000,
        max_buffered_bytes: 1000,
        ..Config::default()
    };
    let mut core = new_core(config, Some(ShardMap::even(1)), t0);
    core.put(UserRecord::new("k", "x".repeat(599)), t0).unwrap();
    assert_eq!(core.buffered_bytes(), 600);
    let big = UserRecord::new("k", "x".repeat(400));
    assert!(!core.has_room(&UserRecord::new("k", "x".repeat(400)), t0));
    assert_eq!(core.put(big.clone(), t0), Err(PutError::Full(big)));
    assert!(core.has_room(&UserRecord::new("k", "x".repeat(399)), t0));
    core.put(UserRecord::new("k", "x".repeat(399)), t0).unwrap();
    assert_eq!(core.buffered_bytes(), 1000);
    let one = UserRecord::new("k", "");
    assert_eq!(core.put(one.clone(), t0), Err(PutError::Full(one)));
}

#[test]
fn poll_transmit_only_hands_out_what_handle_timeout_collected() {
    let t0 = Instant::now();
    let mut core = new_core(Config::default(), Some(ShardMap::even(1)), t0);
    let a = core.put(UserRecord::new("a", "x"), t0).unwrap();
    let b = core.put(UserRecord::new("b", "y"), t0).unwrap();
    let t1 = t0 + ms(100);
    // Due, but still in the open aggregate: the timer work has not run.
    assert!(core.poll_transmit(t1).is_none());
    assert_eq!(core.poll_timeout(t1), Some(t1));
    // The timer work closes the aggregate and collects it, and hands nothing out.
    core.handle_timeout(t1);
    assert_eq!(core.in_flight(), 0);
    assert_eq!(core.stats().put_records_calls, 0);
    assert!(core.poll_outcome().is_none());
    let request = core.poll_transmit(t1).unwrap();
    assert_eq!(request.entries.len(), 1);
    assert_eq!(data_of(&request.entries[0]), ["x", "y"]);
    assert!(core.poll_transmit(t1).is_none());
    core.on_response(request.id, Ok(vec![stored(&shard_id(0), 1)]), t1);
    let out = outcomes(&mut core);
    assert_eq!(out.keys().copied().collect::<Vec<_>>(), [a, b]);
}

#[test]
fn a_collected_record_expires_at_its_ttl_while_no_request_may_go() {
    let t0 = Instant::now();
    let config = Config {
        max_connections: 1,
        record_ttl: 1000,
        ..Config::default()
    };
    let mut core = new_core(config, Some(ShardMap::even(1)), t0);
    let a = core.put(UserRecord::new("a", "first"), t0).unwrap();
    let first = core.transmit_at(t0 + ms(100)).unwrap();
    // The one connection stays busy: "b" is collected at its deadline but cannot go.
    let b = core
        .put(UserRecord::new("b", "second"), t0 + ms(200))
        .unwrap();
    assert!(core.transmit_at(t0 + ms(300)).is_none());
    // Its TTL (put + RecordTtl) is the next thing due.
    assert_eq!(core.poll_timeout(t0 + ms(300)), Some(t0 + ms(1200)));
    assert!(core.transmit_at(t0 + ms(1200) - us(1)).is_none());
    assert!(outcomes(&mut core).is_empty());
    assert!(core.transmit_at(t0 + ms(1200)).is_none());
    let out = outcomes(&mut core);
    assert_eq!(out.len(), 1);
    let f = failure(&out[&b]);
    assert_eq!(f.reason, FailureReason::Expired(None));
    assert_eq!(f.attempts, 0);
    // The request in flight is answered later: "a" is stored all the same.
    core.on_response(first.id, Ok(vec![stored(&shard_id(0), 1)]), t0 + ms(1500));
    let out = outcomes(&mut core);
    assert_eq!(success(&out[&a]).attempts, 1);
    assert!(core.is_idle());
}

#[test]
fn no_map_holds_then_sends_raw_at_deadline() {
    let t0 = Instant::now();
    let mut core = new_core(Config::default(), None, t0);
    assert!(core.wants_shard_map());
    let a = core.put(UserRecord::new("a", "1"), t0).unwrap();
    let b = core.put(with_key("b", 77, "2"), t0 + ms(10)).unwrap();
    assert!(core.transmit_at(t0 + ms(99)).is_none());
    assert_eq!(core.poll_timeout(t0 + ms(10)), Some(t0 + ms(100)));
    let first = core.transmit_at(t0 + ms(100)).unwrap();
    assert_eq!(first.entries.len(), 1);
    assert_eq!(
        first.entries[0],
        PutEntry {
            partition_key: "a".into(),
            explicit_hash_key: hash_key(b"a").to_string(),
            data: b"1".to_vec(),
            user_records: 1,
        }
    );
    let second = core.transmit_at(t0 + ms(110)).unwrap();
    assert_eq!(
        second.entries[0],
        PutEntry {
            partition_key: "b".into(),
            explicit_hash_key: "77".into(),
            data: b"2".to_vec(),
            user_records: 1,
        }
    );
    assert!(core.wants_shard_map());
    core.on_response(first.id, Ok(vec![stored(&shard_id(3), 1)]), t0 + ms(110));
    core.on_response(second.id, Ok(vec![stored(&shard_id(4), 2)]), t0 + ms(110));
    let out = outcomes(&mut core);
    for id in [a, b] {
        assert!(!success(&out[&id]).aggregated);
    }
    assert!(core.is_idle());

    // A map that comes before the deadline is used: one aggregate.
    let mut core = new_core(Config::default(), None, t0);
    core.put(UserRecord::new("a", "1"), t0).unwrap();
    core.put(with_key("b", 77, "2"), t0).unwrap();
    core.set_shard_map(ShardMap::even(1), t0 + ms(50));
    assert!(core.transmit_at(t0 + ms(99)).is_none());
    let t = core.transmit_at(t0 + ms(100)).unwrap();
    assert_eq!(t.entries.len(), 1);
    assert!(is_aggregate(&t.entries[0]));
    assert_eq!(
        users(&t.entries[0]),
        vec![user("a", None, "1"), user("b", Some(77), "2")]
    );
}

#[test]
fn invalid_records_rejected_at_put() {
    let t0 = Instant::now();
    let config = Config {
        max_record_size: 1000,
        ..Config::default()
    };
    let mut core = new_core(config, Some(ShardMap::even(1)), t0);
    let kind = |r: Result<RecordId, PutError>| match r {
        Err(PutError::Invalid(e)) => e.kind(),
        other => panic!("expected Invalid, got {other:?}"),
    };
    assert_eq!(
        kind(core.put(UserRecord::new("", "x"), t0)),
        "EmptyPartitionKey"
    );
    assert_eq!(
        kind(core.put(UserRecord::new("k".repeat(257), "x"), t0)),
        "PartitionKeyTooLong"
    );
    let bad_keys = [
        "12a",
        "-1",
        "",
        " 1",
        "340282366920938463463374607431768211456",
    ];
    for ehk in bad_keys {
        let r = core.put(UserRecord::new("k", "x").with_explicit_hash_key(ehk), t0);
        assert_eq!(kind(r), "InvalidExplicitHashKey", "{ehk:?}");
    }
    let r = core.put(UserRecord::new("kk", "x".repeat(999)), t0);
    assert!(matches!(
        r,
        Err(PutError::Invalid(kpl_codec::EncodeError::RecordTooLarge {
            size: 1001,
            limit: 1000
        }))
    ));
    assert!(core.is_idle());
    assert_eq!(core.buffered_records(), 0);
    assert_eq!(core.stats().user_records_put, 0);
    assert!(core.poll_outcome().is_none());
    // The limits themselves are allowed.
    core.put(UserRecord::new("k".repeat(256), "x".repeat(744)), t0)
        .unwrap();
    core.put(with_key("k", u128::MAX, "x"), t0).unwrap();
    core.put(UserRecord::new("k", "x").with_explicit_hash_key("0007"), t0)
        .unwrap();
    assert_eq!(core.buffered_records(), 3);
}

#[test]
fn abort_fails_everything_with_shutdown() {
    let t0 = Instant::now();
    let mut core = new_core(Config::default(), Some(ShardMap::even(1)), t0);
    let x1 = core.put(UserRecord::new("x1", "x1"), t0).unwrap();
    let x2 = core.put(UserRecord::new("x2", "x2"), t0).unwrap();
    let parked = core.transmit_at(t0 + ms(100)).unwrap();
    let y = core.put(UserRecord::new("y", "y"), t0 + ms(100)).unwrap();
    let retried = core.transmit_at(t0 + ms(200)).unwrap();
    let z = core.put(UserRecord::new("z", "z"), t0 + ms(200)).unwrap();
    let in_flight = core.transmit_at(t0 + ms(300)).unwrap();
    let p = core.put(UserRecord::new("p", "p"), t0 + ms(300)).unwrap();
    let t1 = t0 + ms(300);
    core.on_response(parked.id, Ok(vec![stored(&shard_id(9), 1)]), t1);
    core.on_response(
        retried.id,
        Ok(vec![EntryResult::Failed(error(PTEE, "busy"))]),
        t1,
    );
    assert!(outcomes(&mut core).is_empty());
    assert_eq!(core.buffered_records(), 5);
    core.abort();
    let out = outcomes(&mut core);
    assert_eq!(out.len(), 5);
    for id in [y, z, p] {
        assert_eq!(failure(&out[&id]).reason, FailureReason::Shutdown);
    }
    for id in [x1, x2] {
        assert_eq!(*success(&out[&id]).shard_id, shard_id(9));
    }
    assert_eq!(failure(&out[&y]).attempts, 1);
    assert_eq!(failure(&out[&p]).attempts, 0);
    assert!(core.is_idle());
    assert_eq!(core.buffered_bytes(), 0);
    core.on_response(in_flight.id, Ok(vec![stored(&shard_id(0), 2)]), t1);
    assert!(core.poll_outcome().is_none());
    assert!(core.transmit_at(t0 + ms(60_000)).is_none());
}

/// Found by the `sink_core` fuzz target: an aggregate stored on a shard that even the map
/// fetched afterwards does not list (a made-up id, or a closed shard past retention) used
/// to be parked again and the map wanted again, for ever: its records never got an outcome,
/// not even after their TTL. The fresh map decides: the records are re-sent for it.
#[test]
fn parked_aggregate_on_a_shard_the_fresh_map_does_not_list_is_resent() {
    let t0 = Instant::now();
    let mut core = new_core(Config::default(), Some(ShardMap::even(1)), t0);
    let a = core.put(with_key("a", 10, "a"), t0).unwrap();
    let b = core.put(with_key("b", 20, "b"), t0).unwrap();
    let t = core.transmit_at(t0 + ms(100)).unwrap();
    assert_eq!(t.entries.len(), 1);
    core.on_response(t.id, Ok(vec![stored(&shard_id(9), 1)]), t0 + ms(101));
    assert!(outcomes(&mut core).is_empty());
    assert!(core.wants_shard_map());
    let t1 = t0 + ms(200);
    core.set_shard_map(ShardMap::even(1), t1);
    assert!(!core.wants_shard_map(), "the fresh map is wanted again");
    assert_eq!(core.stats().wrong_shard_resends, 1);
    let due = core
        .poll_timeout(t1)
        .expect("the records are scheduled again");
    assert!(due <= t1 + ms(100), "{:?}", due - t1);
    let resent = core.transmit_at(due).unwrap();
    assert_eq!(data_of(&resent.entries[0]), ["a", "b"]);
    core.on_response(resent.id, Ok(vec![stored(&shard_id(0), 2)]), due);
    let out = outcomes(&mut core);
    for (id, sub) in [(a, 0), (b, 1)] {
        let s = success(&out[&id]);
        assert_eq!(
            (&*s.shard_id, &*s.sequence_number, s.sub_sequence_number),
            (&*shard_id(0), "2", sub)
        );
        assert_eq!(s.attempts, 2);
    }
    assert!(core.is_idle());
}

/// `put_batch` (partition keys hashed all at once) does what `put` does record by record:
/// the same results (ids, invalid records, records refused for want of room, handed back)
/// and the same requests, byte for byte, whose aggregates decode strictly (MD5 checked).
#[test]
fn put_batch_is_put_one_by_one() {
    let t0 = Instant::now();
    let config = Config {
        max_buffered_records: 40,
        aggregation_max_count: 7,
        ..Config::default()
    };
    let records: Vec<UserRecord> = (0..60u32)
        .map(|i| match i % 13 {
            5 => UserRecord::new("", "no key"),
            7 => with_key(
                &format!("k{i}"),
                u128::from(i % 4) * QUARTER + 3,
                "explicit",
            ),
            _ => UserRecord::new(format!("key-{}", i % 17), format!("data {i}")),
        })
        .collect();
    let mut one = new_core(config.clone(), Some(ShardMap::even(1)), t0);
    let mut batch = new_core(config, Some(ShardMap::even(1)), t0);
    let singly: Vec<_> = records.iter().map(|r| one.put(r.clone(), t0)).collect();
    let batched = batch.put_batch(records.clone(), t0);
    assert_eq!(batched, singly);
    assert!(singly
        .iter()
        .any(|r| matches!(r, Err(PutError::Invalid(_)))));
    let full: Vec<_> = singly
        .iter()
        .filter_map(|r| match r {
            Err(PutError::Full(back)) => Some(back),
            _ => None,
        })
        .collect();
    assert!(!full.is_empty(), "the buffer limit is reached");
    let until = t0 + ms(1000);
    let a = run(&mut one, t0, until, store_all("shardId-000000000000"));
    let b = run(&mut batch, t0, until, store_all("shardId-000000000000"));
    let entries = |log: &[(Instant, Transmit)]| -> Vec<PutEntry> {
        log.iter().flat_map(|(_, t)| t.entries.clone()).collect()
    };
    assert_eq!(entries(&b), entries(&a));
    let entries = entries(&a);
    assert!(entries.iter().any(is_aggregate));
    let sent: usize = entries.iter().map(|e| users(e).len()).sum();
    let accepted = singly.iter().filter(|r| r.is_ok()).count();
    assert_eq!(sent, accepted);
}
