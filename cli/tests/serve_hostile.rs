//! `kpl serve` against hostile clients: every malformed request gets Kinesis's error and
//! the server keeps serving; a thousand connections at once and a client that sends its
//! headers byte by byte do not exhaust it. No upstream is needed (nothing here is valid
//! enough to reach one): the server is pointed at a closed port on loopback.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};
use std::time::{Duration, Instant};

mod common;
use common::{start_serve, Serve};

fn start(extra: &[&str]) -> Serve {
    start_serve(&[&["--endpoint", "http://127.0.0.1:9"], extra].concat())
}

/// One request on a fresh connection: (status, x-amzn-errortype, body).
fn request(addr: &str, target: &str, content_type: &str, body: &[u8]) -> (u16, String, Vec<u8>) {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let head = format!(
        "POST / HTTP/1.1\r\nHost: {addr}\r\nX-Amz-Target: Kinesis_20131202.{target}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).unwrap();
    s.write_all(body).unwrap();
    read_answer(&mut s)
}

fn read_answer(s: &mut TcpStream) -> (u16, String, Vec<u8>) {
    let mut raw = Vec::new();
    let _ = s.read_to_end(&mut raw);
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("no status in {head:?}"));
    let error = head
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("x-amzn-errortype: ")
                .map(str::to_owned)
        })
        .unwrap_or_default();
    (status, error, body.as_bytes().to_vec())
}

fn healthy(addr: &str) -> bool {
    let Ok(mut s) = TcpStream::connect(addr) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(30)));
    let _ = s.write_all(b"GET /healthcheck HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    let mut answer = String::new();
    let _ = s.read_to_string(&mut answer);
    answer.starts_with("HTTP/1.1 200")
}

const JSON: &str = "application/x-amz-json-1.1";
const CBOR: &str = "application/x-amz-cbor-1.1";

#[test]
fn every_malformed_request_gets_its_kinesis_error_and_the_server_stays_up() {
    let server = start(&[]);
    let rec = r#"{"Data":"aGk=","PartitionKey":"k"}"#;
    let many = format!(
        r#"{{"StreamName":"s","Records":[{}]}}"#,
        vec![rec; 501].join(",")
    );
    let big = format!(
        r#"{{"StreamName":"s","Records":[{{"Data":"{}","PartitionKey":"k"}}]}}"#,
        "A".repeat(1_500_000)
    );
    let cases: Vec<(&str, &str, Vec<u8>, u16, &str)> = vec![
        (
            "PutRecords",
            JSON,
            b"{not json".to_vec(),
            400,
            "serializationexception",
        ),
        (
            "PutRecords",
            CBOR,
            vec![0xff, 0x00, 0x13],
            400,
            "serializationexception",
        ),
        (
            "PutRecords",
            JSON,
            many.into_bytes(),
            400,
            "validationexception",
        ),
        (
            "PutRecords",
            JSON,
            big.into_bytes(),
            400,
            "validationexception",
        ),
        (
            "PutRecords",
            JSON,
            br#"{"Records":[{"Data":"aGk=","PartitionKey":"k"}]}"#.to_vec(),
            400,
            "validationexception",
        ),
        (
            "PutRecords",
            JSON,
            br#"{"StreamName":"s","Records":[{"Data":"%%%","PartitionKey":"k"}]}"#.to_vec(),
            400,
            "serializationexception",
        ),
        (
            "PutRecord",
            JSON,
            br#"{"StreamName":"s","Data":"aGk=","PartitionKey":""}"#.to_vec(),
            400,
            "validationexception",
        ),
        (
            "PutRecords",
            JSON,
            br#"[]"#.to_vec(),
            400,
            "serializationexception",
        ),
        // Nested 10,000 deep: refused, not a stack overflow.
        (
            "PutRecords",
            CBOR,
            [vec![0x81; 10_000], vec![0x00]].concat(),
            400,
            "serializationexception",
        ),
        (
            "PutRecords",
            JSON,
            [b"[".repeat(10_000), b"]".repeat(10_000)].concat(),
            400,
            "serializationexception",
        ),
    ];
    for (target, content_type, body, status, error) in cases {
        let (got_status, got_error, answer) = request(&server.addr, target, content_type, &body);
        assert_eq!(
            (got_status, got_error.as_str()),
            (status, error),
            "{target} {content_type} {:?}: {}",
            String::from_utf8_lossy(&body[..body.len().min(60)]),
            String::from_utf8_lossy(&answer)
        );
        assert!(healthy(&server.addr), "the server stopped after {target}");
    }
    // A body declared over the cap is refused before it is read.
    let mut s = TcpStream::connect(&server.addr).unwrap();
    s.write_all(b"POST / HTTP/1.1\r\nHost: x\r\nX-Amz-Target: Kinesis_20131202.PutRecords\r\nContent-Length: 999999999\r\nConnection: close\r\n\r\n").unwrap();
    let (status, _, _) = read_answer(&mut s);
    assert_eq!(status, 413);
    assert!(healthy(&server.addr));
}

#[test]
fn a_thousand_connections_and_a_slow_client_do_not_exhaust_it() {
    let server = start(&[]);
    // A client that sends its headers a byte at a time, slower than the server waits.
    let mut slow = TcpStream::connect(&server.addr).unwrap();
    slow.write_all(b"POST / HT").unwrap();
    // A thousand connections open at once, each sending a bad request at the end.
    let mut open: Vec<TcpStream> = (0..1000)
        .map(|_| TcpStream::connect(&server.addr).expect("connect"))
        .collect();
    assert!(
        healthy(&server.addr),
        "not served while 1,000 connections are open"
    );
    for s in &mut open {
        s.write_all(b"POST / HTTP/1.1\r\nHost: x\r\nX-Amz-Target: Kinesis_20131202.PutRecords\r\nContent-Length: 1\r\nConnection: close\r\n\r\n{").unwrap();
    }
    for s in &mut open {
        s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
        let (status, error, _) = read_answer(s);
        assert_eq!((status, error.as_str()), (400, "serializationexception"));
    }
    drop(open);
    // The slow client is cut off once its headers take longer than the server allows.
    slow.set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    let started = Instant::now();
    let mut rest = Vec::new();
    let closed = slow.read_to_end(&mut rest);
    assert!(
        closed.is_ok(),
        "the slow connection was not closed by the server: {closed:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(60));
    let _ = slow.shutdown(Shutdown::Both);
    assert!(healthy(&server.addr));
}

#[test]
fn connections_over_the_limit_are_closed_and_counted() {
    let server = start(&["--max-connections", "4"]);
    let held: Vec<TcpStream> = (0..4)
        .map(|_| TcpStream::connect(&server.addr).unwrap())
        .collect();
    // The fifth is accepted and closed at once.
    let mut fifth = TcpStream::connect(&server.addr).unwrap();
    fifth
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut buf = Vec::new();
    assert!(
        matches!(fifth.read_to_end(&mut buf), Ok(0)),
        "over the limit, a connection is closed"
    );
    drop(held);
    // Once they are gone, the server serves again (connections close asynchronously: poll).
    let started = Instant::now();
    while !healthy(&server.addr) {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "not serving after the held connections closed"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut s = TcpStream::connect(&server.addr).unwrap();
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut metrics = String::new();
    s.read_to_string(&mut metrics).unwrap();
    let refused: u64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("kpl_serve_refused_connections_total "))
        .and_then(|v| v.trim().parse().ok())
        .expect("the counter");
    assert!(refused >= 1, "{metrics}");
}
