//! `handle` against kinesis-mock (started inside a private network namespace by the
//! support module shared with kpl-kinesis's tests): user records are put into a source
//! stream by the sink, read back with GetRecords (so sequence numbers are real), turned
//! into Lambda `KinesisEvent`s (one per shard, as Lambda delivers them), handled, and the
//! destination stream is read back the way KCL reads it (each shard's hash-range filter).

#[path = "../../../kinesis/tests/support/mod.rs"]
mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use aws_sdk_kinesis::primitives::Blob;
use base64::Engine as _;
use kpl_kinesis::lambda::{user_records, KinesisEvent};
use kpl_kinesis::sink::{Config, UserRecord};
use lambda_reaggregate::{envelope, handle};
use libtest_mimic::{Arguments, Failed, Trial};
use serde_json::json;

fn main() {
    let args = Arguments::from_args();
    let server = support::enter_namespace_and_start();
    let trials = vec![
        Trial::test(
            "every_source_user_record_arrives_transformed_exactly_once",
            || support::block_on(every_record_once(), Duration::from_secs(240)),
        ),
        Trial::test(
            "a_failed_put_is_reported_by_its_outer_sequence_number",
            || support::block_on(failed_put_reported(), Duration::from_secs(240)),
        ),
        Trial::test("the_binary_handles_an_event_file_once", || {
            support::block_on(binary_runs_once(), Duration::from_secs(240))
        }),
    ];
    let conclusion = libtest_mimic::run(&args, trials);
    drop(server);
    conclusion.exit();
}

/// which exact-count assertions must not see.
/// The source stream read back as Lambda would deliver it: one `KinesisEvent` per shard,
/// built in Lambda's JSON shape and parsed with `aws_lambda_events`.
async fn lambda_events(stream: &str) -> Result<Vec<KinesisEvent>, Failed> {
    let arn = format!("arn:aws:kinesis:us-east-1:000000000000:stream/{stream}");
    let mut by_shard: BTreeMap<String, Vec<serde_json::Value>> = BTreeMap::new();
    for s in support::read_all(&support::admin(), stream).await {
        by_shard.entry(s.shard_id.clone()).or_default().push(json!({
            "kinesis": {
                "kinesisSchemaVersion": "1.0",
                "partitionKey": s.partition_key,
                "sequenceNumber": s.sequence_number,
                "data": base64::engine::general_purpose::STANDARD.encode(&s.data),
                "approximateArrivalTimestamp": 1_700_000_000.123,
            },
            "eventSource": "aws:kinesis",
            "eventVersion": "1.0",
            "eventID": format!("{}:{}", s.shard_id, s.sequence_number),
            "eventName": "aws:kinesis:record",
            "invokeIdentityArn": "arn:aws:iam::000000000000:role/lambda-role",
            "awsRegion": "us-east-1",
            "eventSourceARN": arn,
        }));
    }
    let mut events = Vec::new();
    for records in by_shard.into_values() {
        events.push(serde_json::from_value(json!({ "Records": records }))?);
    }
    Ok(events)
}

/// What `transform` should make of every user record of the events, as (key, data).
fn expected(
    events: &[KinesisEvent],
    transform: impl Fn(&kpl_kinesis::lambda::LambdaUserRecord<'_>) -> UserRecord,
) -> Vec<(String, Vec<u8>)> {
    events
        .iter()
        .flat_map(|e| user_records(e).iter().map(&transform).collect::<Vec<_>>())
        .map(|r| (r.partition_key, r.data))
        .collect()
}

async fn every_record_once() -> Result<(), Failed> {
    const N: u32 = 600;
    let admin = support::admin();
    support::create_stream(&admin, "lambda-src", 2).await;
    support::create_stream(&admin, "lambda-dst", 3).await;

    // The source: aggregates from the sink, plus two plain records put directly.
    let source = support::sink_for("lambda-src", support::flush_only_config()).await?;
    let mut pending = Vec::new();
    let mut put = Vec::new();
    for i in 0..N {
        let mut r = UserRecord::new(format!("key-{}", i % 37), format!("record {i}"));
        if i % 10 == 0 {
            let ehk = u128::from(i).wrapping_mul(0x9E37_79B9_7F4A_7C15_F39C_C060_5CED_C835);
            r = r.with_explicit_hash_key(ehk.to_string());
        }
        put.push((r.partition_key.clone(), r.data.clone()));
        pending.push(source.put(r).await?);
    }
    source.flush().await;
    support::all_stored(pending).await?;
    source.shutdown(Duration::from_secs(10)).await;
    for i in 0..2 {
        let (key, data) = (format!("plain-{i}"), format!("plain record {i}"));
        admin
            .put_record()
            .stream_name("lambda-src")
            .partition_key(&key)
            .data(Blob::new(data.clone()))
            .send()
            .await?;
        put.push((key, data.into_bytes()));
    }

    let events = lambda_events("lambda-src").await?;
    // The events hold exactly what was put, aggregated and plain records both.
    let source_view: Vec<_> = events
        .iter()
        .flat_map(|e| {
            user_records(e)
                .iter()
                .map(|r| (r.partition_key_text().into_owned(), r.data.to_vec()))
                .collect::<Vec<_>>()
        })
        .collect();
    assert_eq!(support::counts(source_view), support::counts(put.clone()));
    let aggregated: usize = events
        .iter()
        .map(|e| user_records(e).iter().filter(|r| r.aggregated).count())
        .sum();
    assert_eq!(aggregated, N as usize, "the sink's records were aggregated");

    let want = support::counts(expected(&events, envelope));
    assert_eq!(want.len(), put.len(), "envelopes are unique");

    let destination = support::sink_for("lambda-dst", support::patient_config()).await?;
    for event in events {
        let response = handle(event, &destination, envelope).await;
        assert_eq!(
            serde_json::to_value(&response)?,
            json!({"batchItemFailures": []})
        );
    }
    let stats = destination.stats();
    destination.shutdown(Duration::from_secs(10)).await;

    let stored = support::read_all(&admin, "lambda-dst").await;
    let (delivered, dropped) = support::kcl_view(&stored);
    assert_eq!(dropped, 0, "KCL's hash-range filter dropped aggregates");
    assert_eq!(
        support::counts(delivered),
        want,
        "destination differs from the transformed source"
    );
    assert!(
        stats.kinesis_records_stored < stats.user_records_stored,
        "the destination is re-aggregated: {stats:?}"
    );
    // Each envelope names its source record and carries the original data.
    let (delivered, _) = support::kcl_view(&stored);
    for (key, data) in delivered.iter().take(20) {
        let v: serde_json::Value = serde_json::from_slice(data)?;
        assert_eq!(v["partitionKey"], json!(key));
        assert!(v["shardId"]
            .as_str()
            .is_some_and(|s| s.starts_with("shardId-")));
        assert!(v["sequenceNumber"].as_str().is_some_and(|s| !s.is_empty()));
    }
    Ok(())
}

const BIG: &[u8] = b"make me too big";

async fn failed_put_reported() -> Result<(), Failed> {
    let admin = support::admin();
    support::create_stream(&admin, "lambda-src-fail", 1).await;
    support::create_stream(&admin, "lambda-dst-fail", 1).await;

    // Two aggregates in the source: the second holds the record that will fail.
    let source = support::sink_for("lambda-src-fail", support::flush_only_config()).await?;
    for batch in 0..2 {
        let mut pending = Vec::new();
        for i in 0..10 {
            let data = if batch == 1 && i == 4 {
                BIG.to_vec()
            } else {
                format!("batch {batch} record {i}").into_bytes()
            };
            pending.push(source.put(UserRecord::new(format!("k{i}"), data)).await?);
        }
        source.flush().await;
        support::all_stored(pending).await?;
    }
    source.shutdown(Duration::from_secs(10)).await;

    let mut events = lambda_events("lambda-src-fail").await?;
    assert_eq!(events.len(), 1);
    let event = events.remove(0);
    assert_eq!(event.records.len(), 2, "one aggregate per flush");
    let big_sequence_number = {
        let records = user_records(&event);
        let big: Vec<_> = records.iter().filter(|r| r.data == BIG).collect();
        assert_eq!(big.len(), 1);
        assert!(big[0].aggregated);
        big[0].sequence_number.to_owned()
    };
    assert_eq!(
        big_sequence_number,
        event.records[1].kinesis.sequence_number
    );

    // The sink is told the stream takes 2 MiB records; kinesis-mock's takes 1 MiB, so the
    // 1.5 MB record fails alone, with a per-record error.
    let transform = |r: &kpl_kinesis::lambda::LambdaUserRecord<'_>| {
        if r.data == BIG {
            UserRecord::new(r.partition_key_text(), vec![b'z'; 1_500_000])
        } else {
            envelope(r)
        }
    };
    let want: Vec<_> = expected(std::slice::from_ref(&event), envelope)
        .into_iter()
        .zip(user_records(&event).iter().map(|r| r.data == BIG))
        .filter(|(_, big)| !big)
        .map(|(r, _)| r)
        .collect();
    assert_eq!(want.len(), 19);
    let config = Config {
        max_record_size: 2 * 1024 * 1024,
        ..support::patient_config()
    };
    let destination = support::sink_for("lambda-dst-fail", config).await?;
    let response = handle(event, &destination, transform).await;
    destination.shutdown(Duration::from_secs(10)).await;
    assert_eq!(
        serde_json::to_value(&response)?,
        json!({"batchItemFailures": [{"itemIdentifier": big_sequence_number}]})
    );

    let stored = support::read_all(&admin, "lambda-dst-fail").await;
    let (delivered, _) = support::kcl_view(&stored);
    assert_eq!(support::counts(delivered), support::counts(want));
    Ok(())
}

async fn binary_runs_once() -> Result<(), Failed> {
    let admin = support::admin();
    support::create_stream(&admin, "lambda-src-bin", 1).await;
    support::create_stream(&admin, "lambda-dst-bin", 2).await;
    let source = support::sink_for("lambda-src-bin", support::flush_only_config()).await?;
    let mut pending = Vec::new();
    for i in 0..50 {
        let r = UserRecord::new(format!("k{}", i % 7), format!("line {i}"));
        pending.push(source.put(r).await?);
    }
    source.flush().await;
    support::all_stored(pending).await?;
    source.shutdown(Duration::from_secs(10)).await;
    let mut events = lambda_events("lambda-src-bin").await?;
    let event = events.remove(0);
    let want = support::counts(expected(std::slice::from_ref(&event), envelope));
    assert_eq!(want.len(), 50);

    let path = std::env::temp_dir().join(format!("lambda-reaggregate-{}.json", std::process::id()));
    std::fs::write(&path, serde_json::to_vec(&event)?)?;
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_lambda-reaggregate"));
    command
        .args([
            "--stream",
            "lambda-dst-bin",
            "--endpoint",
            support::ENDPOINT,
        ])
        .arg(&path)
        .env("AWS_ACCESS_KEY_ID", "AKIDTEST")
        .env("AWS_SECRET_ACCESS_KEY", "secret")
        .env("AWS_REGION", "us-east-1")
        .env("AWS_EC2_METADATA_DISABLED", "true");
    let output = tokio::task::spawn_blocking(move || command.output()).await??;
    let _ = std::fs::remove_file(&path);
    assert!(
        output.status.success(),
        "{:?}: {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&output.stdout),
        "{\"batchItemFailures\":[]}\n"
    );
    let stored = support::read_all(&admin, "lambda-dst-bin").await;
    let (delivered, dropped) = support::kcl_view(&stored);
    assert_eq!(dropped, 0);
    assert_eq!(support::counts(delivered), want);
    Ok(())
}
