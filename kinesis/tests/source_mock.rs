//! The source against kinesis-mock (started by `support` inside a private network
//! namespace): records produced by our sink and by the real Java KPL (its captured bytes,
//! put back as they were) are read back exactly once; a reshard while consuming; a
//! consumer restarted from a file checkpoint.

mod support;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use aws_sdk_kinesis::primitives::Blob;
use aws_sdk_kinesis::types::{PutRecordsRequestEntry, ScalingType};
use kpl_kinesis::sink::UserRecord;
use kpl_kinesis::source::{
    CheckpointStore, FileCheckpoints, ShardPosition, Source, SourceConfig, SourceRecord,
};
use kpl_vectors::{Case, EncodeExpected};
use libtest_mimic::{Arguments, Failed, Trial};

fn main() {
    let args = Arguments::from_args();
    let server = support::enter_namespace_and_start();
    let trials = vec![
        Trial::test("source_reads_sink_output_exactly_once_in_order", || {
            support::block_on(reads_sink_output(), Duration::from_secs(180))
        }),
        Trial::test("source_reads_real_kpl_output_exactly_once", || {
            support::block_on(reads_kpl_captures(), Duration::from_secs(180))
        }),
        Trial::test("reshard_while_consuming_children_after_parents", || {
            support::block_on(reshard_while_consuming(), Duration::from_secs(180))
        }),
        Trial::test(
            "restart_from_file_checkpoint_loses_and_repeats_nothing",
            || support::block_on(restart_from_checkpoint(), Duration::from_secs(180)),
        ),
    ];
    let conclusion = libtest_mimic::run(&args, trials);
    drop(server);
    conclusion.exit();
}

fn record(run: &str, i: u32) -> UserRecord {
    UserRecord::new(
        format!("{run}-{}", (u64::from(i) * 7919) % 101),
        format!("{run} {i} {}", "y".repeat((i % 40) as usize)).into_bytes(),
    )
}

/// Puts records through the sink and waits until every one is stored. Sent only at the
/// flush, so that the aggregates (and where each user record sits in one) are the same
/// on every run.
async fn produce(stream: &str, records: Vec<UserRecord>) -> Result<(), Failed> {
    let sink = support::sink_for(stream, support::flush_only_config()).await?;
    let mut pending = Vec::new();
    for r in records {
        pending.push(sink.put(r).await?);
    }
    sink.flush().await;
    support::all_stored(pending).await?;
    sink.shutdown(Duration::from_secs(10)).await;
    Ok(())
}

async fn source(
    stream: &str,
    config: SourceConfig,
    store: Option<Arc<dyn CheckpointStore>>,
) -> Result<Source, Failed> {
    let mut b = Source::builder()
        .stream_name(stream)
        .sdk_config(support::sdk_config())
        .config(config);
    if let Some(store) = store {
        b = b.checkpoints(store);
    }
    Ok(b.build().await?)
}

async fn read_to_end(source: &mut Source) -> Result<Vec<SourceRecord>, Failed> {
    let mut out = Vec::new();
    while let Some(r) = source.next().await {
        out.push(r?);
    }
    Ok(out)
}

fn key_data(r: &SourceRecord) -> (String, Vec<u8>) {
    (r.partition_key.clone(), r.data.clone())
}

/// Within each shard, (sequence number, sub-sequence number) strictly increase.
fn assert_ordered_per_shard(records: &[SourceRecord]) {
    let mut last: BTreeMap<&str, (&str, u64)> = BTreeMap::new();
    for r in records {
        if let Some((seq, sub)) = last.get(r.shard_id.as_ref()) {
            let order = kpl_kinesis::source::compare_sequence_numbers(seq, &r.sequence_number);
            assert!(
                order.is_lt() || (order.is_eq() && *sub < r.sub_sequence_number),
                "out of order in {}: {seq}:{sub} then {}:{}",
                r.shard_id,
                r.sequence_number,
                r.sub_sequence_number
            );
        }
        last.insert(&r.shard_id, (&r.sequence_number, r.sub_sequence_number));
    }
}

async fn reads_sink_output() -> Result<(), Failed> {
    let admin = support::admin();
    support::create_stream(&admin, "src-sink", 3).await;
    let records: Vec<UserRecord> = (0..5000).map(|i| record("s", i)).collect();
    let expected = support::counts(
        records
            .iter()
            .map(|r| (r.partition_key.clone(), r.data.clone())),
    );
    produce("src-sink", records).await?;
    let mut source = source("src-sink", SourceConfig::default(), None).await?;
    let read = read_to_end(&mut source).await?;
    support::assert_same_records(
        &support::counts(read.iter().map(key_data)),
        &expected,
        "read back",
    );
    assert_ordered_per_shard(&read);
    assert!(
        read.iter().any(|r| r.aggregated),
        "the sink aggregated nothing?"
    );
    Ok(())
}

async fn reads_kpl_captures() -> Result<(), Failed> {
    let admin = support::admin();
    support::create_stream(&admin, "src-kpl", 1).await;
    let captured = kpl_vectors::load_captured()?;
    let mut expected = Vec::new();
    let mut entries = Vec::new();
    for v in &captured {
        let Case::Encode(case) = &v.case else {
            continue;
        };
        if !v.name.starts_with("captured/kpl/") {
            continue;
        }
        let EncodeExpected::Records(out) = &case.expected else {
            continue;
        };
        expected.extend(
            case.records
                .iter()
                .map(|r| (r.partition_key.clone(), r.data.clone())),
        );
        for k in out {
            entries.push(
                PutRecordsRequestEntry::builder()
                    .partition_key(&k.partition_key)
                    .explicit_hash_key(&k.explicit_hash_key)
                    .data(Blob::new(k.data.clone()))
                    .build()?,
            );
        }
    }
    assert!(entries.len() >= 8, "captured KPL vectors missing");
    for chunk in entries.chunks(100) {
        let out = admin
            .put_records()
            .stream_name("src-kpl")
            .set_records(Some(chunk.to_vec()))
            .send()
            .await?;
        assert_eq!(out.failed_record_count(), Some(0));
    }
    let mut source = source("src-kpl", SourceConfig::default(), None).await?;
    let read = read_to_end(&mut source).await?;
    // One shard, put in order: the exact user records KPL was given, in order.
    assert_eq!(read.iter().map(key_data).collect::<Vec<_>>(), expected);
    Ok(())
}

async fn reshard_while_consuming() -> Result<(), Failed> {
    let admin = support::admin();
    support::create_stream(&admin, "src-reshard", 2).await;
    let first: Vec<UserRecord> = (0..2000).map(|i| record("a", i)).collect();
    let second: Vec<UserRecord> = (0..2000).map(|i| record("b", i)).collect();
    let expected = support::counts(
        first
            .iter()
            .chain(second.iter())
            .map(|r| (r.partition_key.clone(), r.data.clone())),
    );
    produce("src-reshard", first).await?;
    let config = SourceConfig {
        follow: true,
        poll_interval: Duration::from_millis(100),
        ..SourceConfig::default()
    };
    let mut source = source("src-reshard", config, None).await?;
    let mut read = Vec::new();
    while read.len() < 1000 {
        match source.next().await {
            Some(r) => read.push(r?),
            None => return Err("the source ended while following".into()),
        }
    }
    admin
        .update_shard_count()
        .stream_name("src-reshard")
        .target_shard_count(4)
        .scaling_type(ScalingType::UniformScaling)
        .send()
        .await?;
    support::wait_active(&admin, "src-reshard").await;
    produce("src-reshard", second).await?;
    while read.len() < 4000 {
        match tokio::time::timeout(Duration::from_secs(60), source.next()).await {
            Ok(Some(r)) => read.push(r?),
            Ok(None) => return Err("the source ended while following".into()),
            Err(_) => return Err(format!("stalled after {} records", read.len()).into()),
        }
    }
    // Nothing more comes (no duplicates waiting).
    if let Ok(Some(extra)) = tokio::time::timeout(Duration::from_secs(2), source.next()).await {
        return Err(format!("an extra record: {:?}", extra.map(|r| key_data(&r))).into());
    }
    support::assert_same_records(
        &support::counts(read.iter().map(key_data)),
        &expected,
        "read back",
    );
    assert_ordered_per_shard(&read);
    // Children after parents: every record of a child shard comes after the last record
    // of each of its parents.
    let shards = admin
        .list_shards()
        .stream_name("src-reshard")
        .send()
        .await?;
    let position = |shard: &str, last: bool| {
        let mut it = read
            .iter()
            .enumerate()
            .filter(|(_, r)| r.shard_id.as_ref() == shard)
            .map(|(i, _)| i);
        if last {
            it.next_back()
        } else {
            it.next()
        }
    };
    let mut children = 0;
    for s in shards.shards() {
        for parent in [s.parent_shard_id(), s.adjacent_parent_shard_id()]
            .into_iter()
            .flatten()
        {
            if let (Some(last_parent), Some(first_child)) =
                (position(parent, true), position(s.shard_id(), false))
            {
                children += 1;
                assert!(
                    last_parent < first_child,
                    "{} read before its parent {parent} was finished",
                    s.shard_id()
                );
            }
        }
    }
    assert!(children >= 2, "the children were not read");
    Ok(())
}

async fn restart_from_checkpoint() -> Result<(), Failed> {
    let admin = support::admin();
    support::create_stream(&admin, "src-restart", 2).await;
    let records: Vec<UserRecord> = (0..3000).map(|i| record("r", i)).collect();
    let expected = support::counts(
        records
            .iter()
            .map(|r| (r.partition_key.clone(), r.data.clone())),
    );
    produce("src-restart", records).await?;
    let dir = std::env::temp_dir().join(format!("kpl-source-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let path = dir.join("checkpoints.json");
    let _ = std::fs::remove_file(&path);

    // The first consumer processes 1,234 records (checkpointing each) and stops: the
    // last one is inside an aggregate.
    let store: Arc<dyn CheckpointStore> = Arc::new(FileCheckpoints::new(&path));
    let mut first = source("src-restart", SourceConfig::default(), Some(store)).await?;
    let mut processed = Vec::new();
    while processed.len() < 1234 {
        let r = first.next().await.ok_or("ended early")??;
        first.checkpoint(&r)?;
        processed.push(r);
    }
    let last = processed.last().ok_or("nothing read")?;
    assert!(
        last.aggregated && last.sub_sequence_number > 0,
        "stop inside an aggregate: {last:?}"
    );
    drop(first);

    // A new consumer from the file: the rest, nothing twice.
    let reopened = FileCheckpoints::new(&path);
    assert_eq!(
        reopened.load()?.get(last.shard_id.as_ref()),
        Some(&ShardPosition::At(last.checkpoint()))
    );
    let store: Arc<dyn CheckpointStore> = Arc::new(reopened);
    let mut second = source("src-restart", SourceConfig::default(), Some(store)).await?;
    let rest = read_to_end(&mut second).await?;
    let all = support::counts(processed.iter().chain(rest.iter()).map(key_data));
    support::assert_same_records(&all, &expected, "lost or repeated across the restart");
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}
