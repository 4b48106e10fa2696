//! Criterion benchmark of the sans-IO sink core (`kpl_kinesis::sink::Core`): user records
//! per second through the whole pipeline on one core: put (validation, hash key, shard
//! routing, KPL-exact aggregation), deadline flushes, rate limiting, PutRecords batching,
//! and outcomes for scripted successful responses. 100-byte records with 1,000 distinct
//! partition keys on 4 shards, simulated time advancing 1 µs per record (100 ms buffering
//! then flushes every 100,000 records, as a busy producer would). The target (issue 5) is
//! at least 1,000,000 user records per second per core.
//!
//! Shard rate limits are raised so that they do not bind (they would cap a real 4-shard
//! stream at 6,000 Kinesis records/s): the limiter still runs for every Kinesis record.

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use kpl_kinesis::sink::{Config, Core, EntryResult, PutError, ShardMap, UserRecord};

const RECORDS: usize = 100_000;

fn records() -> Vec<UserRecord> {
    let mut state = 0x2545_F491_4F6C_DD1Du64;
    (0..RECORDS)
        .map(|i| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let key = format!("partition-key-{}", state % 1000);
            let mut data = vec![b'x'; 100];
            data[..8].copy_from_slice(&(i as u64).to_le_bytes());
            UserRecord::new(key, data)
        })
        .collect()
}

fn answer(core: &mut Core, now: Instant, shard_ids: &[String]) -> usize {
    let mut outcomes = 0;
    core.handle_timeout(now);
    while let Some(t) = core.poll_transmit(now) {
        let results = t
            .entries
            .iter()
            .map(|e| {
                let hash: u128 = e.explicit_hash_key.parse().unwrap_or(0);
                let shard = (hash >> 126) as usize;
                EntryResult::Stored {
                    shard_id: shard_ids[shard].clone(),
                    sequence_number: "49590338271490256608559692538361571095921575989136588898"
                        .into(),
                }
            })
            .collect();
        core.on_response(t.id, Ok(results), now);
    }
    while core.poll_outcome().is_some() {
        outcomes += 1;
    }
    outcomes
}

fn run(records: Vec<UserRecord>) -> usize {
    let config = Config {
        rate_limit: 1_000_000,
        max_connections: 256,
        ..Config::default()
    };
    let t0 = Instant::now();
    let mut core = Core::new(config, t0).unwrap_or_else(|e| panic!("{e}"));
    let map = ShardMap::even(4);
    let shard_ids: Vec<String> = (0..4)
        .map(|i| {
            map.open_shard(i)
                .map(|(id, _)| id.to_string())
                .unwrap_or_default()
        })
        .collect();
    core.set_shard_map(map, t0);
    let mut now = t0;
    let mut outcomes = 0;
    for (i, r) in records.into_iter().enumerate() {
        now += Duration::from_micros(1);
        // A refused put (the drain rule: the core sends what it buffers at once then) waits
        // for the answers, as Sink::put waits for room.
        let mut r = r;
        loop {
            match core.put(r, now) {
                Ok(_) => break,
                Err(PutError::Full(back)) => {
                    r = back;
                    outcomes += answer(&mut core, now, &shard_ids);
                }
                Err(e) => panic!("put refused: {e:?}"),
            }
        }
        if i % 1024 == 1023 {
            outcomes += answer(&mut core, now, &shard_ids);
        }
    }
    core.flush(now);
    outcomes += answer(&mut core, now, &shard_ids);
    assert_eq!(outcomes, RECORDS, "every record has its outcome");
    outcomes
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("sink_core");
    group.throughput(Throughput::Elements(RECORDS as u64));
    group.sample_size(20);
    group.bench_function("put_100b_4_shards", |b| {
        b.iter_batched(records, |r| black_box(run(r)), BatchSize::LargeInput)
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
