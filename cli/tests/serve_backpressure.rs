//! `kpl serve` when its aggregating buffer is full: a PutRecords call whose records find no
//! room within `--admission-wait` gets them back as `ProvisionedThroughputExceededException`
//! (a client's SDK retries those), and only those; the records it did take get their own
//! outcome. The upstream is a small fake on loopback that knows the stream and its one
//! shard but never stores anything (every PutRecords is an `InternalFailure`), so the
//! buffer stays full until the records in it reach their TTL.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

mod common;
use common::start_serve;

/// Answers one upstream call by its `X-Amz-Target`.
fn upstream_answer(target: &str) -> (u16, String) {
    match target {
        "Kinesis_20131202.DescribeStreamSummary" => (
            200,
            r#"{"StreamDescriptionSummary":{"StreamName":"s","StreamARN":"arn:aws:kinesis:us-east-1:123456789012:stream/s","StreamStatus":"ACTIVE","RetentionPeriodHours":24,"StreamCreationTimestamp":1700000000,"EnhancedMonitoring":[],"OpenShardCount":1}}"#.to_owned(),
        ),
        "Kinesis_20131202.ListShards" => (
            200,
            format!(
                r#"{{"Shards":[{{"ShardId":"shardId-000000000000","HashKeyRange":{{"StartingHashKey":"0","EndingHashKey":"{}"}},"SequenceNumberRange":{{"StartingSequenceNumber":"49500000000000000000000000000000000000000000000000000000"}}}}]}}"#,
                u128::MAX
            ),
        ),
        _ => (
            500,
            r#"{"__type":"InternalFailure","message":"the fake upstream stores nothing"}"#
                .to_owned(),
        ),
    }
}

/// Serves one keep-alive connection of the fake upstream; counts its PutRecords calls.
fn upstream_connection(stream: TcpStream, puts: &AtomicUsize) {
    let mut reader = BufReader::new(stream.try_clone().expect("clone"));
    let mut writer = stream;
    loop {
        let (mut target, mut length) = (String::new(), 0usize);
        let mut line = String::new();
        loop {
            line.clear();
            match reader.read_line(&mut line) {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
            let header = line.trim_end();
            if header.is_empty() {
                break;
            }
            if let Some((name, value)) = header.split_once(':') {
                match name.trim().to_ascii_lowercase().as_str() {
                    "x-amz-target" => target = value.trim().to_owned(),
                    "content-length" => length = value.trim().parse().unwrap_or(0),
                    _ => {}
                }
            }
        }
        let mut body = vec![0; length];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        if target.ends_with(".PutRecords") {
            puts.fetch_add(1, Ordering::SeqCst);
        }
        let (status, body) = upstream_answer(&target);
        let head = format!(
            "HTTP/1.1 {status} X\r\nContent-Type: application/x-amz-json-1.1\r\nContent-Length: {}\r\n\r\n",
            body.len()
        );
        if writer.write_all(head.as_bytes()).is_err() || writer.write_all(body.as_bytes()).is_err()
        {
            return;
        }
    }
}

/// The fake upstream on a free loopback port: its endpoint and its PutRecords count.
fn start_upstream() -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let endpoint = format!("http://{}", listener.local_addr().expect("addr"));
    let puts = Arc::new(AtomicUsize::new(0));
    let counted = puts.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let puts = counted.clone();
            std::thread::spawn(move || upstream_connection(stream, &puts));
        }
    });
    (endpoint, puts)
}

/// One PutRecords call (JSON) on a fresh connection: (status, parsed body).
fn put_records(addr: &str, body: &str) -> (u16, serde_json::Value) {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let head = format!(
        "POST / HTTP/1.1\r\nHost: {addr}\r\nX-Amz-Target: Kinesis_20131202.PutRecords\r\nContent-Type: application/x-amz-json-1.1\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).unwrap();
    s.write_all(body.as_bytes()).unwrap();
    let mut raw = String::new();
    let _ = s.read_to_string(&mut raw);
    let (head, body) = raw.split_once("\r\n\r\n").unwrap_or((&raw, ""));
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("no status in {head:?}"));
    let value = serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {body:?}"));
    (status, value)
}

#[test]
fn records_that_find_no_room_are_answered_as_throttled_and_only_those() {
    let (endpoint, puts) = start_upstream();
    let config = std::env::temp_dir().join(format!("kpl-serve-full-{}.toml", std::process::id()));
    // The five in the buffer make room only when their TTL passes; the 200 ms admission
    // wait must end long before that, on a loaded machine too.
    std::fs::write(
        &config,
        "MaxBufferedRecords = 5\nRecordTtl = 5000\nRecordMaxBufferedTime = 10\nRequestTimeout = 1000\n",
    )
    .unwrap();
    let config_path = config.to_string_lossy().into_owned();
    let server = start_serve(&[
        "--endpoint",
        &endpoint,
        "--admission-wait",
        "200",
        "--config",
        &config_path,
    ]);
    let records: Vec<String> = (0..12)
        .map(|i| format!(r#"{{"Data":"aGk=","PartitionKey":"key-{i}"}}"#))
        .collect();
    let body = format!(r#"{{"StreamName":"s","Records":[{}]}}"#, records.join(","));
    let (status, answer) = put_records(&server.addr, &body);
    drop(server);
    let _ = std::fs::remove_file(&config);
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["FailedRecordCount"], 12, "{answer}");
    let entries = answer["Records"].as_array().expect("Records");
    assert_eq!(
        entries.len(),
        12,
        "one entry per record, in order: {answer}"
    );
    // The buffer took five; they were sent (and failed) until their TTL.
    for (i, e) in entries[..5].iter().enumerate() {
        assert_eq!(e["ErrorCode"], "InternalFailure", "record {i}: {e}");
    }
    assert!(
        puts.load(Ordering::SeqCst) > 0,
        "the five were sent upstream"
    );
    // The rest found no room within the admission wait: throttled, for the client to retry.
    let throttled = "ProvisionedThroughputExceededException";
    assert_eq!(entries[5]["ErrorCode"], throttled, "{answer}");
    let message = entries[5]["ErrorMessage"].as_str().unwrap_or_default();
    assert!(message.contains("stayed full"), "{message}");
    for (i, e) in entries.iter().enumerate().skip(6) {
        assert_eq!(e["ErrorCode"], throttled, "record {i}: {e}");
    }
}
