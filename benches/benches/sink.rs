//! Criterion benchmark of the sans-IO sink core (`kpl_kinesis::sink::Core`): user records
//! per second through the whole pipeline on one core: put (validation, hash key, shard
//! routing, KPL-exact aggregation), deadline flushes, rate limiting, PutRecords batching,
//! and outcomes for scripted successful responses. 100-byte records with 1,000 distinct
//! partition keys on 4 shards, simulated time advancing 1 µs per record (100 ms buffering
//! then flushes every 100,000 records, as a busy producer would). The target (issue 5) is
//! at least 1,000,000 user records per second per core (issue 13: 2,000,000). The second
//! function puts them 1,024 at a time with `Core::put_batch` (partition keys hashed side by
//! side).
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

/// Puts one record, answering requests while the core refuses it for want of room (the
/// drain rule: the core sends what it buffers at once then), as `Sink::put` waits for room.
fn put(core: &mut Core, mut r: UserRecord, now: Instant, shard_ids: &[String]) -> usize {
    let mut outcomes = 0;
    loop {
        match core.put(r, now) {
            Ok(_) => return outcomes,
            Err(PutError::Full(back)) => {
                r = back;
                outcomes += answer(core, now, shard_ids);
            }
            Err(e) => panic!("put refused: {e:?}"),
        }
    }
}

/// Records go in one by one (`Core::put`), or 1,024 at a time (`Core::put_batch`: their
/// partition keys hashed side by side), answering requests between.
fn run(records: Vec<UserRecord>, batched: bool) -> usize {
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
    if batched {
        let mut records = records.into_iter();
        loop {
            let chunk: Vec<UserRecord> = records.by_ref().take(1024).collect();
            if chunk.is_empty() {
                break;
            }
            // The clock as put one by one: 1 µs per record.
            now += Duration::from_micros(chunk.len() as u64);
            for result in core.put_batch(chunk, now) {
                match result {
                    Ok(_) => {}
                    Err(PutError::Full(back)) => {
                        outcomes += answer(&mut core, now, &shard_ids);
                        outcomes += put(&mut core, back, now, &shard_ids);
                    }
                    Err(e) => panic!("put refused: {e:?}"),
                }
            }
            outcomes += answer(&mut core, now, &shard_ids);
        }
        core.flush(now);
        outcomes += answer(&mut core, now, &shard_ids);
        assert_eq!(outcomes, RECORDS, "every record has its outcome");
        return outcomes;
    }
    for (i, r) in records.into_iter().enumerate() {
        now += Duration::from_micros(1);
        outcomes += put(&mut core, r, now, &shard_ids);
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
        b.iter_batched(records, |r| black_box(run(r, false)), BatchSize::LargeInput)
    });
    group.bench_function("put_batch_100b_4_shards", |b| {
        b.iter_batched(records, |r| black_box(run(r, true)), BatchSize::LargeInput)
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
