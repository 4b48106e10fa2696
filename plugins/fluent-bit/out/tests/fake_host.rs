//! The plugin inside a fake Fluent Bit 5.1.1 (`fakes::host`: the real host's calls, layouts
//! and 64 KiB flush stacks) against a scripted Kinesis on loopback (`fakes::kinesis`).
//! What a real run cannot make deterministic is tested here: exact return codes, retries
//! of byte-identical chunks, throttled shards, refused requests, malformed chunks, bad
//! properties, two instances and concurrent flushes.

mod fakes;

use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard};

use fakes::host::{log_text, Host, LOG, LOG_LEVEL};
use fakes::kinesis::{hash_of, shard_of, FakeKinesis, StoredRecord};
use kpl_codec::{deaggregate, Options, Policy, Verdict};
use kpl_fluent_bit::abi::{FLB_ERROR, FLB_OK, FLB_RETRY};

/// The golden chunk of `../shared/docs/fluent-bit.md`: real Fluent Bit 5.1.1 bytes, dummy
/// input with metadata, 2 events, tag `fx.meta`.
const GOLDEN: &str = "9292d7006b082134148a0be181a16da17888a76d657373616765a568656c6c6fa56c6576656ca4696e666fa16e2aa166cb3fe0000000000000a26f6bc3a46e6f6e65c0a36172729201a161a36f626a81a16ba1769292d7006b08213418b1156581a16da17888a76d657373616765a568656c6c6fa56c6576656ca4696e666fa16e2aa166cb3fe0000000000000a26f6bc3a46e6f6e65c0a36172729201a161a36f626a81a16ba176";

/// What the fixture's record decodes to, per fluent-bit.md, as JSON.
const GOLDEN_JSON: &str = r#"{"message":"hello","level":"info","n":42,"f":0.5,"ok":true,"none":null,"arr":[1,"a"],"obj":{"k":"v"}}"#;

fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

/// The log is shared by the whole process: tests run one at a time, each with a clean log.
fn serial() -> MutexGuard<'static, ()> {
    static SERIAL: Mutex<()> = Mutex::new(());
    let guard = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    LOG.lock().unwrap().clear();
    LOG_LEVEL.store(3, std::sync::atomic::Ordering::SeqCst);
    guard
}

/// A chunk as Fluent Bit 5.1.1 lays one out (`[[ext0 time, {}], {"k": key, "i": i,
/// "msg": ...}]` per event), written with msgpack's rules independently of the plugin's
/// decoder.
fn chunk(events: &[(String, String)]) -> Vec<u8> {
    fn str(out: &mut Vec<u8>, s: &str) {
        let b = s.as_bytes();
        match b.len() {
            n if n < 32 => out.push(0xa0 | n as u8),
            n if n < 256 => out.extend_from_slice(&[0xd9, n as u8]),
            n if n < 65_536 => {
                out.push(0xda);
                out.extend_from_slice(&(n as u16).to_be_bytes());
            }
            n => {
                out.push(0xdb);
                out.extend_from_slice(&(n as u32).to_be_bytes());
            }
        }
        out.extend_from_slice(b);
    }
    let mut out = Vec::new();
    for (i, (key, msg)) in events.iter().enumerate() {
        out.extend_from_slice(&[0x92, 0x92, 0xd7, 0x00]);
        out.extend_from_slice(&1_700_000_000u32.to_be_bytes());
        out.extend_from_slice(&(i as u32).to_be_bytes());
        out.push(0x80); // {} metadata
        out.push(0x83); // 3 fields
        str(&mut out, "k");
        str(&mut out, key);
        str(&mut out, "i");
        out.push(0xce);
        out.extend_from_slice(&(i as u32).to_be_bytes());
        str(&mut out, "msg");
        str(&mut out, msg);
    }
    out
}

/// The user records a stream holds, deaggregated like KCL with each shard's range
/// filter: (partition key, data).
fn user_records(stored: &[StoredRecord], stream: &str, shards: usize) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    for r in stored.iter().filter(|r| r.stream == stream) {
        let width = u128::MAX / shards as u128;
        let start = width * r.shard as u128;
        let end = if r.shard + 1 == shards {
            u128::MAX
        } else {
            width * (r.shard as u128 + 1) - 1
        };
        let options = Options {
            policy: Policy::Kcl,
            verify_md5: true,
            shard_range: Some(kpl_codec::HashRange::new(start, end)),
        };
        let decoded = deaggregate(&r.data, r.partition_key.as_bytes(), &options)
            .expect("the KCL policy never fails");
        if let Verdict::Aggregated {
            dropped: Some(e), ..
        } = decoded.verdict()
        {
            panic!("KCL would drop records of an aggregate: {e:?}");
        }
        for u in decoded {
            out.push((
                String::from_utf8_lossy(u.partition_key).into_owned(),
                u.data.to_vec(),
            ));
        }
    }
    out
}

fn props<'a>(
    kinesis: &'a FakeKinesis,
    stream: &'a str,
    extra: &[(&'a str, &'a str)],
) -> Vec<(&'a str, &'a str)> {
    let mut p = vec![
        ("stream", stream),
        ("endpoint", kinesis.endpoint.as_str()),
        ("region", "us-east-1"),
    ];
    p.extend_from_slice(extra);
    p
}

fn set_fake_credentials() {
    // The standard chain reads these first; nothing leaves loopback.
    std::env::set_var("AWS_ACCESS_KEY_ID", "AKIDFAKE");
    std::env::set_var("AWS_SECRET_ACCESS_KEY", "fake");
    std::env::set_var("AWS_EC2_METADATA_DISABLED", "true");
}

#[test]
fn register_writes_only_what_every_host_version_allocates() {
    let _s = serial();
    let host = Host::load();
    let (kind, proxy, flags, name, desc, tail_zero) = host.registered();
    assert_eq!((kind, proxy, flags), (2, 11, 0));
    assert_eq!(name, "kpl_kinesis");
    assert!(!desc.is_empty());
    assert!(
        tail_zero,
        "event_type and config_map must stay as the host zeroed them"
    );
}

#[test]
fn golden_chunk_becomes_one_aggregate_of_kinesis_streams_json_lines() {
    let _s = serial();
    set_fake_credentials();
    let kinesis = FakeKinesis::start(2);
    let mut host = Host::load();
    let (code, out) = host.init(&props(&kinesis, "golden", &[("partition_key", "$level")]));
    assert_eq!(code, 1, "{}", log_text());
    let out = out.unwrap();
    assert_eq!(
        host.flush(&out, "fx.meta", &hex(GOLDEN)),
        FLB_OK,
        "{}",
        log_text()
    );
    let stored = kinesis.stored();
    assert_eq!(stored.len(), 1, "both events share a key: one aggregate");
    assert_eq!(stored[0].data[..4], [0xF3, 0x89, 0x9A, 0xC2]);
    let users = user_records(&stored, "golden", 2);
    let expected = format!("{GOLDEN_JSON}\n").into_bytes();
    assert_eq!(
        users,
        vec![
            ("info".to_string(), expected.clone()),
            ("info".to_string(), expected)
        ]
    );
    assert_eq!(host.exit(out), FLB_OK);
    let log = log_text();
    assert!(
        log.contains("exit: 2 records stored, 0 failed for good, 1 Kinesis records"),
        "{log}"
    );
}

#[test]
fn a_retried_chunk_sends_only_what_was_not_stored() {
    let _s = serial();
    set_fake_credentials();
    let kinesis = FakeKinesis::start(2);
    kinesis.throttle_shard(1, true);
    let mut host = Host::load();
    let (code, out) = host.init(&props(
        &kinesis,
        "retry",
        &[
            ("partition_key", "$k"),
            // Shard 1's records wait this long; shard 0's must be stored well within it,
            // on a loaded machine too.
            ("record_ttl", "3000"),
            ("record_max_buffered_time", "10"),
        ],
    ));
    assert_eq!(code, 1, "{}", log_text());
    let out = out.unwrap();
    let events: Vec<(String, String)> = (0..300)
        .map(|i| (format!("key-{i}"), format!("line {i}")))
        .collect();
    let on_shard_1 = events
        .iter()
        .filter(|(k, _)| shard_of(hash_of(k), 2) == 1)
        .count();
    assert!(
        on_shard_1 > 50 && on_shard_1 < 250,
        "keys spread: {on_shard_1}"
    );
    let c = chunk(&events);

    assert_eq!(host.flush(&out, "app", &c), FLB_RETRY, "{}", log_text());
    let first = user_records(&kinesis.stored(), "retry", 2);
    assert_eq!(
        first.len(),
        300 - on_shard_1,
        "shard 0's records are stored, shard 1's are not"
    );
    assert!(log_text().contains("retry"), "{}", log_text());

    // Fluent Bit re-delivers the identical bytes under the same tag.
    kinesis.throttle_shard(1, false);
    assert_eq!(host.flush(&out, "app", &c), FLB_OK, "{}", log_text());
    let all = user_records(&kinesis.stored(), "retry", 2);
    let mut seen: BTreeMap<Vec<u8>, usize> = BTreeMap::new();
    for (_, data) in &all {
        *seen.entry(data.clone()).or_default() += 1;
    }
    assert_eq!(seen.len(), 300, "every event stored");
    assert!(seen.values().all(|n| *n == 1), "no duplicates: {seen:?}");

    // A chunk with the same bytes under another tag is another chunk: sent in full.
    assert_eq!(host.flush(&out, "other-tag", &c), FLB_OK);
    assert_eq!(user_records(&kinesis.stored(), "retry", 2).len(), 600);
    host.exit(out);
}

#[test]
fn refused_requests_retry_the_whole_chunk_then_store_it_once() {
    let _s = serial();
    set_fake_credentials();
    let kinesis = FakeKinesis::start(1);
    kinesis.refuse_all(true);
    let mut host = Host::load();
    let (_, out) = host.init(&props(
        &kinesis,
        "refused",
        &[("record_ttl", "500"), ("record_max_buffered_time", "10")],
    ));
    let out = out.expect("init");
    let events: Vec<(String, String)> = (0..50)
        .map(|i| (format!("k{i}"), format!("m{i}")))
        .collect();
    let c = chunk(&events);
    assert_eq!(host.flush(&out, "t", &c), FLB_RETRY);
    assert!(kinesis.stored().is_empty());
    kinesis.refuse_all(false);
    assert_eq!(host.flush(&out, "t", &c), FLB_OK, "{}", log_text());
    assert_eq!(user_records(&kinesis.stored(), "refused", 1).len(), 50);
    host.exit(out);
}

#[test]
fn a_record_that_can_never_be_stored_is_logged_and_does_not_hold_back_its_chunk() {
    let _s = serial();
    set_fake_credentials();
    let kinesis = FakeKinesis::start(1);
    let mut host = Host::load();
    let (_, out) = host.init(&props(
        &kinesis,
        "big",
        &[
            ("max_record_size", "1K"),
            ("record_max_buffered_time", "10"),
        ],
    ));
    let out = out.expect("init");
    let events = vec![
        ("a".to_string(), "small".to_string()),
        ("b".to_string(), "x".repeat(2000)),
        ("c".to_string(), "small too".to_string()),
    ];
    assert_eq!(
        host.flush(&out, "t", &chunk(&events)),
        FLB_OK,
        "{}",
        log_text()
    );
    let users = user_records(&kinesis.stored(), "big", 1);
    assert_eq!(users.len(), 2);
    let log = log_text();
    assert!(
        log.contains("record 1 of a chunk (tag t) can never be stored"),
        "{log}"
    );
    host.exit(out);
    assert!(
        log_text().contains("2 records stored, 1 failed for good"),
        "{}",
        log_text()
    );
}

#[test]
fn malformed_chunks_are_errors_logged_never_crashes() {
    let _s = serial();
    set_fake_credentials();
    let kinesis = FakeKinesis::start(1);
    let mut host = Host::load();
    let (_, out) = host.init(&props(
        &kinesis,
        "bad",
        &[("record_max_buffered_time", "10")],
    ));
    let out = out.expect("init");
    let golden = hex(GOLDEN);
    // Cut inside the second event: the first is sent, the chunk is an error.
    assert_eq!(host.flush(&out, "t", &golden[..100]), FLB_ERROR);
    assert_eq!(user_records(&kinesis.stored(), "bad", 1).len(), 1);
    assert!(log_text().contains("malformed"), "{}", log_text());
    assert_eq!(host.flush(&out, "t", &[0xc1, 0xff, 0x00]), FLB_ERROR);
    assert_eq!(host.flush(&out, "t", &[]), FLB_OK);
    host.exit(out);
}

#[test]
fn bad_properties_fail_init_with_a_line_naming_them() {
    let _s = serial();
    let mut host = Host::load();
    for (props, name) in [
        (vec![("region", "us-east-1")], "'stream'"),
        (
            vec![("stream", "s"), ("aggregation", "perhaps")],
            "'aggregation'",
        ),
        (vec![("stream", "s"), ("RecordTtl", "1000")], "'recordttl'"),
        (
            vec![("stream", "s"), ("partition_key", "$a['b")],
            "'partition_key'",
        ),
    ] {
        LOG.lock().unwrap().clear();
        let (code, out) = host.init(&props);
        assert_eq!(code, 0);
        assert!(out.is_none());
        let log = log_text();
        assert!(log.contains(name), "{name}: {log}");
        assert!(
            log.starts_with("[1] [output:kpl_kinesis:kpl_kinesis."),
            "{log}"
        );
    }
}

#[test]
fn two_instances_and_concurrent_flushes_keep_their_records_apart() {
    let _s = serial();
    set_fake_credentials();
    let kinesis = FakeKinesis::start(4);
    let mut host = Host::load();
    let (_, a) = host.init(&props(
        &kinesis,
        "stream-a",
        &[("partition_key", "$k"), ("record_max_buffered_time", "50")],
    ));
    let (_, b) = host.init(&props(
        &kinesis,
        "stream-b",
        &[("record_max_buffered_time", "50")],
    ));
    let (a, b) = (a.expect("init a"), b.expect("init b"));
    let chunks: Vec<Vec<u8>> = (0..4)
        .map(|c| {
            let events: Vec<(String, String)> = (0..500)
                .map(|i| (format!("k{}", i % 37), format!("chunk {c} line {i}")))
                .collect();
            chunk(&events)
        })
        .collect();
    // Like `workers 2` on each instance: flushes of one instance run at the same time.
    std::thread::scope(|s| {
        for (i, c) in chunks.iter().enumerate() {
            let host = &host;
            let out = if i % 2 == 0 { &a } else { &b };
            s.spawn(move || assert_eq!(host.flush(out, &format!("tag{i}"), c), FLB_OK));
            s.spawn(move || assert_eq!(host.flush(out, &format!("again{i}"), c), FLB_OK));
        }
    });
    let stored = kinesis.stored();
    let users_a = user_records(&stored, "stream-a", 4);
    let users_b = user_records(&stored, "stream-b", 4);
    assert_eq!(users_a.len(), 2000);
    assert_eq!(users_b.len(), 2000);
    assert!(users_a.iter().all(|(_, d)| d.starts_with(b"{\"k\":")
        && (d.windows(7).any(|w| w == b"chunk 0") || d.windows(7).any(|w| w == b"chunk 2"))));
    // Random keys spread over the four shards.
    let shards_b: std::collections::BTreeSet<usize> = stored
        .iter()
        .filter(|r| r.stream == "stream-b")
        .map(|r| r.shard)
        .collect();
    assert_eq!(shards_b.len(), 4);
    // Aggregation: far fewer Kinesis records than user records.
    let kinesis_records = stored.iter().filter(|r| r.stream == "stream-a").count();
    assert!(
        kinesis_records * 20 <= 2000,
        "{kinesis_records} Kinesis records for 2000"
    );
    host.exit(a);
    host.exit(b);
}

#[test]
fn a_chunk_captured_from_fluent_bit_is_stored_line_for_line() {
    let _s = serial();
    set_fake_credentials();
    // tests/fixtures/capture.sh: 300 JSON lines through the real in_stdin, and the chunk
    // Fluent Bit 5.1.1 flushed for them. Each must come out as one JSON object with the
    // line's fields, then "\n" (byte-exactness against kinesis_streams itself is
    // kpl-fluent-bit's tests/kinesis_streams_bytes.rs).
    let lines = include_str!("fixtures/stdin.ndjson");
    let captured = include_bytes!("fixtures/stdin.msgpack");
    let kinesis = FakeKinesis::start(4);
    let mut host = Host::load();
    let (_, out) = host.init(&props(
        &kinesis,
        "captured",
        &[("partition_key", "$k"), ("record_max_buffered_time", "20")],
    ));
    let out = out.expect("init");
    assert_eq!(
        host.flush(&out, "app.stdin", captured),
        FLB_OK,
        "{}",
        log_text()
    );
    let parse = |pk: &str, data: &[u8]| -> (String, String) {
        let text = std::str::from_utf8(data).expect("UTF-8");
        let line = text.strip_suffix('\n').expect("a trailing newline");
        assert!(!line.contains('\n'), "one line per record");
        let value: serde_json::Value = serde_json::from_str(line).expect("JSON");
        (pk.to_owned(), value.to_string())
    };
    let mut got: Vec<(String, String)> = user_records(&kinesis.stored(), "captured", 4)
        .iter()
        .map(|(pk, data)| parse(pk, data))
        .collect();
    let mut expected: Vec<(String, String)> = lines
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            (v["k"].as_str().unwrap().to_owned(), v.to_string())
        })
        .collect();
    got.sort();
    expected.sort();
    assert_eq!(got.len(), 300);
    assert!(
        got == expected,
        "stored records differ from the input lines"
    );
    // 17 keys over 4 shards: at most 4 aggregates.
    assert!(kinesis.stored().len() <= 4, "{}", kinesis.stored().len());
    host.exit(out);
}

#[test]
fn a_missing_stream_is_retried_not_dropped() {
    let _s = serial();
    set_fake_credentials();
    // The stream does not exist yet (created later by the deployment, say): every request
    // says so. The records are the setup's victims, not at fault: RETRY, never dropped.
    let kinesis = FakeKinesis::start(1);
    kinesis.fail_all(Some(("400 Bad Request", "ResourceNotFoundException")));
    let mut host = Host::load();
    let (_, out) = host.init(&props(
        &kinesis,
        "late",
        &[("record_ttl", "500"), ("record_max_buffered_time", "10")],
    ));
    let out = out.expect("init");
    let c = chunk(&[("k".into(), "m".into())]);
    assert_eq!(host.flush(&out, "t", &c), FLB_RETRY, "{}", log_text());
    assert!(
        !log_text().contains("can never be stored"),
        "{}",
        log_text()
    );
    kinesis.fail_all(None);
    assert_eq!(host.flush(&out, "t", &c), FLB_OK, "{}", log_text());
    assert_eq!(user_records(&kinesis.stored(), "late", 1).len(), 1);
    host.exit(out);
}

#[test]
fn exit_sends_what_a_running_flush_buffered_without_waiting_for_its_timer() {
    let _s = serial();
    set_fake_credentials();
    LOG_LEVEL.store(4, std::sync::atomic::Ordering::SeqCst);
    let kinesis = FakeKinesis::start(1);
    let mut host = Host::load();
    // Records would wait ten minutes for more; the grace period is two. Only a flush at
    // exit stores them before the grace period ends (else they fail: the flush answers RETRY).
    let (_, out) = host.init(&props(
        &kinesis,
        "exit",
        &[("record_max_buffered_time", "10m"), ("exit_grace", "2m")],
    ));
    let out = out.expect("init");
    let c = chunk(
        &(0..100)
            .map(|i| (format!("k{i}"), format!("m{i}")))
            .collect::<Vec<_>>(),
    );
    std::thread::scope(|s| {
        let flushing = s.spawn(|| host.flush(&out, "t", &c));
        // The flush has its chunk once the plugin logs it (debug); then the host exits.
        let started = std::time::Instant::now();
        while !log_text().contains("chunk (tag t): ") {
            assert!(
                started.elapsed() < std::time::Duration::from_secs(60),
                "no flush seen"
            );
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        assert_eq!(host.exit_ref(&out), FLB_OK);
        assert_eq!(flushing.join().unwrap(), FLB_OK, "{}", log_text());
    });
    assert_eq!(user_records(&kinesis.stored(), "exit", 1).len(), 100);
    assert!(
        log_text().contains("exit: 100 records stored"),
        "{}",
        log_text()
    );
}

#[test]
fn hints_in_the_log_name_the_plugins_properties_not_cli_flags() {
    let _s = serial();
    set_fake_credentials();
    // A port nothing listens on (bound, then released).
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free loopback port");
    let endpoint = format!("http://{closed}");
    let mut host = Host::load();
    let (_, out) = host.init(&[
        ("stream", "s"),
        ("endpoint", endpoint.as_str()),
        ("region", "us-east-1"),
        // Long enough that an attempt fails before it (the line names that attempt's error).
        ("record_ttl", "3000"),
        ("record_max_buffered_time", "10"),
    ]);
    let out = out.expect("init");
    let c = chunk(&[("k".into(), "m".into())]);
    assert_eq!(host.flush(&out, "t", &c), FLB_RETRY, "{}", log_text());
    host.exit(out);
    let log = log_text();
    // The sink's own diagnostics (ListShards) and the chunk's failure both give the hint.
    let line = format!(
        "cannot connect to {closed}: connection refused (is the endpoint right? the endpoint property)"
    );
    assert_eq!(log.matches(&line).count(), 2, "{log}");
    assert!(!log.contains("--endpoint"), "{log}");
}

#[test]
fn a_full_buffer_retries_the_chunk_and_the_retry_stores_every_record_once() {
    let _s = serial();
    set_fake_credentials();
    let kinesis = FakeKinesis::start(1);
    kinesis.refuse_all(true);
    // A buffer of 10 records: the chunk's 50 cannot all be put while nothing is stored.
    let config = std::env::temp_dir().join(format!("kpl-fb-full-{}.toml", std::process::id()));
    std::fs::write(&config, "MaxBufferedRecords = 10\n").unwrap();
    let config_path = config.to_string_lossy().into_owned();
    let mut host = Host::load();
    let (_, out) = host.init(&props(
        &kinesis,
        "full",
        &[
            ("kpl_config", config_path.as_str()),
            ("partition_key", "$k"),
            ("record_ttl", "2000"),
            ("record_max_buffered_time", "10"),
        ],
    ));
    std::fs::remove_file(&config).unwrap();
    let out = out.expect("init");
    let events: Vec<(String, String)> = (0..50)
        .map(|i| (format!("key-{i}"), format!("line {i}")))
        .collect();
    let c = chunk(&events);
    // The first 10 wait in the buffer until their TTL, the other 40 for room that never
    // comes: nothing is stored and the chunk is retried.
    assert_eq!(host.flush(&out, "t", &c), FLB_RETRY, "{}", log_text());
    assert!(kinesis.stored().is_empty());
    assert!(
        log_text().contains("50 records not stored yet"),
        "{}",
        log_text()
    );
    // Kinesis is back: the retried chunk goes through the 10-record buffer, every record
    // once, in order within its partition key.
    kinesis.refuse_all(false);
    assert_eq!(host.flush(&out, "t", &c), FLB_OK, "{}", log_text());
    let stored = user_records(&kinesis.stored(), "full", 1);
    let mut keys: Vec<&str> = stored.iter().map(|(k, _)| k.as_str()).collect();
    keys.sort();
    let mut expected: Vec<&str> = events.iter().map(|(k, _)| k.as_str()).collect();
    expected.sort();
    assert_eq!(keys, expected, "every record once");
    for (key, data) in &stored {
        let value: serde_json::Value = serde_json::from_slice(data).expect("JSON");
        let i = key.strip_prefix("key-").unwrap();
        assert_eq!(value["msg"], format!("line {i}"), "{key}");
    }
    host.exit(out);
}
