//! A scripted Kinesis on loopback (an ephemeral port on 127.0.0.1): ListShards and
//! PutRecords in the JSON 1.1 protocol the AWS SDK speaks, with faults a test switches on
//! and off: a shard that throttles every record, or every request refused with HTTP 500.
//! It stores what it accepts, routed like Kinesis (explicit hash key, else the MD5 of the
//! partition key) to evenly split shards.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use base64::Engine;
use md5::{Digest, Md5};
use serde_json::{json, Value};

/// One record as stored.
#[derive(Debug, Clone)]
pub struct StoredRecord {
    pub stream: String,
    pub shard: usize,
    pub partition_key: String,
    pub explicit_hash_key: Option<String>,
    pub data: Vec<u8>,
}

#[derive(Default)]
struct State {
    stored: Vec<StoredRecord>,
    throttled_shards: Vec<usize>,
}

/// The server; it runs until the test process ends.
pub struct FakeKinesis {
    pub endpoint: String,
    shards: usize,
    state: Arc<Mutex<State>>,
    refuse: Arc<Mutex<Option<(&'static str, &'static str)>>>,
    pub put_calls: Arc<AtomicU64>,
}

impl FakeKinesis {
    /// Starts a server with `shards` shards for every stream name.
    pub fn start(shards: usize) -> FakeKinesis {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        let endpoint = format!("http://{}", listener.local_addr().expect("local addr"));
        let state = Arc::new(Mutex::new(State::default()));
        let refuse = Arc::new(Mutex::new(None));
        let put_calls = Arc::new(AtomicU64::new(0));
        let server = Server {
            shards,
            state: state.clone(),
            refuse: refuse.clone(),
            put_calls: put_calls.clone(),
        };
        let server = Arc::new(server);
        std::thread::spawn(move || {
            for conn in listener.incoming().flatten() {
                let server = server.clone();
                std::thread::spawn(move || server.serve(conn));
            }
        });
        FakeKinesis {
            endpoint,
            shards,
            state,
            refuse,
            put_calls,
        }
    }

    /// Every record of shard `shard` is answered ProvisionedThroughputExceeded while on.
    pub fn throttle_shard(&self, shard: usize, on: bool) {
        let mut s = self.state.lock().unwrap();
        s.throttled_shards.retain(|x| *x != shard);
        if on {
            s.throttled_shards.push(shard);
        }
    }

    /// Every request is answered HTTP 500 InternalFailure while on.
    pub fn refuse_all(&self, on: bool) {
        self.fail_all(on.then_some(("500 Internal Server Error", "InternalFailure")));
    }

    /// Every request is answered with this HTTP status and error code (`None`: normally).
    pub fn fail_all(&self, failure: Option<(&'static str, &'static str)>) {
        *self.refuse.lock().unwrap() = failure;
    }

    /// What was stored so far.
    pub fn stored(&self) -> Vec<StoredRecord> {
        self.state.lock().unwrap().stored.clone()
    }

    /// The shard count.
    pub fn shards(&self) -> usize {
        self.shards
    }
}

struct Server {
    shards: usize,
    state: Arc<Mutex<State>>,
    refuse: Arc<Mutex<Option<(&'static str, &'static str)>>>,
    put_calls: Arc<AtomicU64>,
}

/// The shard owning a hash key, with the shard's range split evenly.
pub fn shard_of(hash_key: u128, shards: usize) -> usize {
    let width = u128::MAX / shards as u128;
    ((hash_key / width.max(1)) as usize).min(shards - 1)
}

fn range_of(shard: usize, shards: usize) -> (u128, u128) {
    let width = u128::MAX / shards as u128;
    let start = width * shard as u128;
    let end = if shard + 1 == shards {
        u128::MAX
    } else {
        width * (shard as u128 + 1) - 1
    };
    (start, end)
}

/// Kinesis's hash key of a partition key: its MD5 as a big-endian number.
pub fn hash_of(partition_key: &str) -> u128 {
    u128::from_be_bytes(Md5::digest(partition_key.as_bytes()).into())
}

impl Server {
    fn serve(&self, conn: TcpStream) {
        let mut reader = BufReader::new(conn.try_clone().expect("clone"));
        let mut conn = conn;
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line).unwrap_or(0) == 0 {
                return;
            }
            let mut target = String::new();
            let mut length = 0usize;
            loop {
                let mut header = String::new();
                if reader.read_line(&mut header).unwrap_or(0) == 0 {
                    return;
                }
                let header = header.trim_end();
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
            let (status, answer) = self.answer(&target, &body);
            let answer = answer.to_string();
            let response = format!(
                "HTTP/1.1 {status}\r\nContent-Type: application/x-amz-json-1.1\r\nContent-Length: {}\r\nx-amzn-RequestId: fake\r\n\r\n{answer}",
                answer.len()
            );
            if conn.write_all(response.as_bytes()).is_err() {
                return;
            }
        }
    }

    fn answer(&self, target: &str, body: &[u8]) -> (&'static str, Value) {
        if let Some((status, code)) = *self.refuse.lock().unwrap() {
            return (
                status,
                json!({"__type": code, "message": "refused by the test"}),
            );
        }
        let request: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
        match target.rsplit('.').next().unwrap_or("") {
            "ListShards" => {
                let shards: Vec<Value> = (0..self.shards)
                    .map(|i| {
                        let (start, end) = range_of(i, self.shards);
                        json!({
                            "ShardId": format!("shardId-{i:012}"),
                            "HashKeyRange": {"StartingHashKey": start.to_string(), "EndingHashKey": end.to_string()},
                            "SequenceNumberRange": {"StartingSequenceNumber": "0"}
                        })
                    })
                    .collect();
                ("200 OK", json!({ "Shards": shards }))
            }
            "PutRecords" => {
                self.put_calls.fetch_add(1, Ordering::SeqCst);
                let stream = request["StreamName"].as_str().unwrap_or("").to_owned();
                let mut state = self.state.lock().unwrap();
                let mut failed = 0;
                let mut results = Vec::new();
                for r in request["Records"].as_array().cloned().unwrap_or_default() {
                    let pk = r["PartitionKey"].as_str().unwrap_or("").to_owned();
                    let ehk = r["ExplicitHashKey"].as_str().map(str::to_owned);
                    let hash = match &ehk {
                        Some(e) => e.parse().unwrap_or(0),
                        None => hash_of(&pk),
                    };
                    let shard = shard_of(hash, self.shards);
                    if state.throttled_shards.contains(&shard) {
                        failed += 1;
                        results.push(json!({"ErrorCode": "ProvisionedThroughputExceededException", "ErrorMessage": "throttled by the test"}));
                        continue;
                    }
                    let data = base64::engine::general_purpose::STANDARD
                        .decode(r["Data"].as_str().unwrap_or(""))
                        .unwrap_or_default();
                    let seq = state.stored.len();
                    state.stored.push(StoredRecord {
                        stream: stream.clone(),
                        shard,
                        partition_key: pk,
                        explicit_hash_key: ehk,
                        data,
                    });
                    results.push(json!({"SequenceNumber": format!("{seq:056}"), "ShardId": format!("shardId-{shard:012}")}));
                }
                (
                    "200 OK",
                    json!({"FailedRecordCount": failed, "Records": results}),
                )
            }
            _ => (
                "400 Bad Request",
                json!({"__type": "UnknownOperationException", "message": target}),
            ),
        }
    }
}
