//! The sink against kinesis-mock (see `support` for how the server is started: inside a
//! private network namespace, loopback only). Records are read back with GetRecords and
//! decoded with kpl-codec's KCL policy and each shard's hash-range filter, as a KCL
//! consumer would.

mod support;

use std::time::Duration;

use aws_sdk_kinesis::types::ScalingType;
use kpl_kinesis::sink::{Config, FailureReason, Outcome, Sink, UserRecord};
use libtest_mimic::{Arguments, Failed, Trial};

fn main() {
    let args = Arguments::from_args();
    let server = support::enter_namespace_and_start();
    let trials = vec![
        Trial::test(
            "sink_puts_100000_records_into_4_shards_all_read_back_under_kcl_filtering",
            || {
                support::block_on(
                    hundred_thousand_records_four_shards(),
                    Duration::from_secs(240),
                )
            },
        ),
        Trial::test(
            "sink_loses_nothing_under_kcl_filtering_across_a_reshard",
            || support::block_on(reshard_mid_run(), Duration::from_secs(240)),
        ),
        Trial::test("record_over_the_stream_limit_fails_alone", || {
            support::block_on(oversized_record_fails_alone(), Duration::from_secs(240))
        }),
    ];
    let conclusion = libtest_mimic::run(&args, trials);
    drop(server);
    conclusion.exit();
}

/// The i-th test record: varied partition keys (repeats included), every tenth with an
/// explicit hash key spread over the key space, data naming the record.
fn record(run: &str, i: u32) -> UserRecord {
    let key = format!("{run}-key-{}", (u64::from(i) * 7919) % 5003);
    let data = format!("{run} record {i} {}", "x".repeat((i % 150) as usize));
    let r = UserRecord::new(key, data.into_bytes());
    if i.is_multiple_of(10) {
        let ehk = u128::from(i).wrapping_mul(0x9E37_79B9_7F4A_7C15_F39C_C060_5CED_C835);
        r.with_explicit_hash_key(ehk.to_string())
    } else {
        r
    }
}

/// exact-count tests must not see: give requests a minute.
async fn hundred_thousand_records_four_shards() -> Result<(), Failed> {
    const N: u32 = 100_000;
    let admin = support::admin();
    support::create_stream(&admin, "sink-100k", 4).await;
    // Half a second of buffering lets aggregates fill even though this loop puts records
    // one by one.
    let config = Config {
        record_max_buffered_time: 500,
        ..support::patient_config()
    };
    let sink = support::sink_for("sink-100k", config).await?;
    let started = std::time::Instant::now();
    let mut pending = Vec::with_capacity(N as usize);
    let mut expected = Vec::with_capacity(N as usize);
    for i in 0..N {
        let r = record("a", i);
        expected.push((r.partition_key.clone(), r.data.clone()));
        pending.push(sink.put(r).await?);
    }
    sink.flush().await;
    support::all_stored(pending).await?;
    let elapsed = started.elapsed();
    let stats = sink.stats();
    sink.shutdown(Duration::from_secs(10)).await;

    let stored = support::read_all(&admin, "sink-100k").await;
    let (delivered, dropped) = support::kcl_view(&stored);
    assert_eq!(dropped, 0, "KCL's hash-range filter dropped aggregates");
    assert_eq!(
        support::counts(delivered),
        support::counts(expected),
        "KCL view differs from what was put"
    );
    assert_eq!(stats.user_records_stored, u64::from(N));
    assert_eq!(stats.kinesis_records_stored, stored.len() as u64);
    assert_eq!(stats.wrong_shard_resends, 0);
    assert!(
        stats.retries_by_code.is_empty(),
        "{:?}",
        stats.retries_by_code
    );
    let ratio = f64::from(N) / stored.len() as f64;
    assert!(ratio > 10.0, "aggregation ratio {ratio}");
    eprintln!(
        "100k run: {:.1} s, {} Kinesis records, ratio {ratio:.1}, {} PutRecords calls, retries {:?}",
        elapsed.as_secs_f64(),
        stored.len(),
        stats.put_records_calls,
        stats.retries_by_code
    );
    Ok(())
}

async fn reshard_mid_run() -> Result<(), Failed> {
    const N: u32 = 10_000;
    let admin = support::admin();
    support::create_stream(&admin, "sink-reshard", 2).await;
    // Records leave only when flushed, so the first half is still buffered, aggregated for
    // the two original shards, when the stream goes to four, however long putting them and
    // resharding take.
    let sink = support::sink_for("sink-reshard", support::flush_only_config()).await?;
    // Aggregates must be built for the two original shards: wait for the sink's first map.
    assert!(sink.wait_for_shard_map(Duration::from_secs(30)).await);
    let mut pending = Vec::new();
    let mut expected = Vec::new();
    for i in 0..N {
        if i == N / 2 {
            admin
                .update_shard_count()
                .stream_name("sink-reshard")
                .target_shard_count(4)
                .scaling_type(ScalingType::UniformScaling)
                .send()
                .await?;
            support::wait_active(&admin, "sink-reshard").await;
            flush_until_settled(&sink).await;
        }
        let r = record("r", i);
        expected.push((r.partition_key.clone(), r.data.clone()));
        pending.push(sink.put(r).await?);
    }
    flush_until_settled(&sink).await;
    support::all_stored(pending).await?;
    let stats = sink.stats();
    sink.shutdown(Duration::from_secs(10)).await;

    let stored = support::read_all(&admin, "sink-reshard").await;
    let (delivered, dropped) = support::kcl_view(&stored);
    let delivered = support::counts(delivered);
    for r in &expected {
        assert!(
            delivered.contains_key(r),
            "lost under KCL filtering: {:?}",
            r.0
        );
    }
    assert!(
        stats.wrong_shard_resends > 0,
        "the reshard did not catch any aggregate in flight: the test did not test"
    );
    // Every aggregate KCL drops is one the sink saw land on the wrong shard and re-sent.
    assert!(
        stats.retries_by_code.is_empty(),
        "{:?}",
        stats.retries_by_code
    );
    assert_eq!(dropped as u64, stats.wrong_shard_resends);
    // A reader without the filter (Lambda, most libraries) sees the re-sent ones twice.
    let unfiltered: usize = stored
        .iter()
        .map(|s| {
            kpl_codec::deaggregate(
                &s.data,
                s.partition_key.as_bytes(),
                &kpl_codec::Options::kcl(),
            )
            .map(|d| d.count())
            .unwrap_or(0)
        })
        .sum();
    eprintln!(
        "reshard run: {} wrong-shard aggregates re-sent, {} Kinesis records stored, {} user records seen twice by a reader without the hash-range filter",
        stats.wrong_shard_resends,
        stored.len(),
        unfiltered - N as usize
    );
    Ok(())
}

/// Flushes until every record put so far has its outcome. With a sink that sends only
/// when flushed, one flush is not always enough: the user records of an aggregate that
/// landed on the wrong shard come back after it, and are queued again to wait out their
/// `RecordMaxBufferedTime` anew.
async fn flush_until_settled(sink: &Sink) {
    while tokio::time::timeout(Duration::from_millis(200), sink.flush())
        .await
        .is_err()
    {}
}

async fn oversized_record_fails_alone() -> Result<(), Failed> {
    let admin = support::admin();
    support::create_stream(&admin, "sink-oversized", 1).await;
    // The sink is told the stream takes 2 MiB records; kinesis-mock's stream takes 1 MiB.
    let config = Config {
        max_record_size: 2 * 1024 * 1024,
        ..support::patient_config()
    };
    let sink = support::sink_for("sink-oversized", config).await?;
    let small1 = sink
        .put(UserRecord::new("k1", b"small one".to_vec()))
        .await?;
    let big = sink
        .put(UserRecord::new("k2", vec![b'z'; 1_500_000]))
        .await?;
    let small2 = sink
        .put(UserRecord::new("k3", b"small two".to_vec()))
        .await?;
    sink.flush().await;
    for small in [small1, small2] {
        let outcome = small.await;
        assert!(outcome.is_success(), "{outcome:?}");
    }
    match big.await {
        Outcome::Failure(f) => match &f.reason {
            FailureReason::Rejected(e) => {
                assert!(!e.code.is_empty() && !e.message.is_empty(), "{e:?}");
                assert_eq!(f.attempts, 1, "a non-retryable error is not retried");
            }
            other => return Err(format!("expected Rejected, got {other:?}").into()),
        },
        Outcome::Success(s) => return Err(format!("stored a 1.5 MB record: {s:?}").into()),
    }
    sink.shutdown(Duration::from_secs(5)).await;
    let stored = support::read_all(&admin, "sink-oversized").await;
    let (delivered, _) = support::kcl_view(&stored);
    assert_eq!(
        support::counts(delivered),
        support::counts([
            ("k1".to_owned(), b"small one".to_vec()),
            ("k3".to_owned(), b"small two".to_vec())
        ])
    );
    Ok(())
}
