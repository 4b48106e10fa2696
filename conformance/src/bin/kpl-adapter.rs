//! kpl-codec behind the adapter protocol (`conformance/PROTOCOL.md`), so that the runner
//! checks the built-in implementation the same way as every peer.

use std::io::{BufRead, Write};

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use kpl_codec::{deaggregate, Aggregator, AggregatorConfig, HashRange, InputRecord, Options};
use kpl_conformance::capture::user_records_json;
use kpl_conformance::shards::{parse_layout, ShardedAggregator};
use serde_json::{json, Value};

fn main() {
    let stdin = std::io::stdin();
    let mut stdout = std::io::stdout();
    for line in stdin.lock().lines() {
        let Ok(line) = line else { break };
        let answer = match serde_json::from_str::<Value>(&line) {
            Ok(request) => handle(&request).unwrap_or_else(|e| json!({"ok": false, "error": e})),
            Err(e) => json!({"ok": false, "error": format!("bad request: {e}")}),
        };
        if writeln!(stdout, "{answer}")
            .and_then(|()| stdout.flush())
            .is_err()
        {
            break;
        }
    }
}

fn handle(request: &Value) -> Result<Value, String> {
    match request.get("op").and_then(Value::as_str) {
        Some("hello") => Ok(json!({
            "ok": true, "name": "kpl-codec", "version": env!("CARGO_PKG_VERSION"),
            "language": "rust", "encode": true, "decode": true,
            "policies": ["kcl", "strict"], "shard_range": true, "verify_md5_optional": true,
            "shard_layout": true, "bench": true
        })),
        Some("encode") => encode(request),
        Some("decode") => decode(request),
        Some("bench") => bench(request),
        other => Err(format!("unsupported op {other:?}")),
    }
}

fn b64(value: Option<&Value>) -> Result<Vec<u8>, String> {
    BASE64
        .decode(value.and_then(Value::as_str).unwrap_or(""))
        .map_err(|e| format!("bad base64: {e}"))
}

fn limit(request: &Value, name: &str, default: u64) -> u64 {
    request
        .get("limits")
        .and_then(|l| l.get(name))
        .and_then(Value::as_u64)
        .unwrap_or(default)
}

fn encode(request: &Value) -> Result<Value, String> {
    let defaults = AggregatorConfig::default();
    let config = AggregatorConfig {
        max_size: usize::try_from(limit(request, "max_size", defaults.max_size as u64))
            .map_err(|e| e.to_string())?,
        max_count: limit(request, "max_count", defaults.max_count),
        max_record_size: usize::try_from(limit(
            request,
            "max_record_size",
            defaults.max_record_size as u64,
        ))
        .map_err(|e| e.to_string())?,
    };
    // With the stream's open shards, aggregate per shard as KPL does with its shard map;
    // without, as for one shard.
    let mut sharded = match request.get("shards").filter(|s| !s.is_null()) {
        Some(shards) => {
            Some(ShardedAggregator::new(config, parse_layout(shards)?).map_err(|e| e.to_string())?)
        }
        None => None,
    };
    let mut aggregator = Aggregator::new(config).map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    let records = request
        .get("records")
        .and_then(Value::as_array)
        .ok_or("no records")?;
    for record in records {
        let pk = record
            .get("partition_key")
            .and_then(Value::as_str)
            .ok_or("record without partition_key")?;
        let data = b64(record.get("data"))?;
        let mut input = InputRecord::new(pk, &data);
        if let Some(ehk) = record.get("explicit_hash_key").and_then(Value::as_str) {
            input = input.with_explicit_hash_key(ehk);
        }
        match &mut sharded {
            Some(s) => out.extend(s.add(input).map_err(|e| e.to_string())?),
            None => out.extend(aggregator.add(input).map_err(|e| e.to_string())?),
        }
    }
    match &mut sharded {
        Some(s) => out.extend(s.drain()),
        None => out.extend(aggregator.drain()),
    }
    let kinesis_records: Vec<Value> = out
        .iter()
        .map(|k| {
            json!({"partition_key": k.partition_key, "explicit_hash_key": k.explicit_hash_key,
                   "data": BASE64.encode(&k.data)})
        })
        .collect();
    Ok(json!({"ok": true, "kinesis_records": kinesis_records}))
}

fn options(request: &Value) -> Result<Options, String> {
    let mut options = match request.get("policy").and_then(Value::as_str) {
        Some("strict") => Options::strict(),
        _ => Options::kcl(),
    };
    if request.get("verify_md5").and_then(Value::as_bool) == Some(false) {
        options = options.without_md5_check();
    }
    if let Some(range) = request.get("shard_range").filter(|r| !r.is_null()) {
        let end = |name: &str| -> Result<u128, String> {
            range
                .get(name)
                .and_then(Value::as_str)
                .and_then(|s| s.parse().ok())
                .ok_or_else(|| format!("bad shard_range.{name}"))
        };
        options = options.with_shard_range(HashRange::new(end("start")?, end("end")?));
    }
    Ok(options)
}

fn decode(request: &Value) -> Result<Value, String> {
    let data = b64(request.get("data"))?;
    let pk = request
        .get("partition_key")
        .and_then(Value::as_str)
        .unwrap_or("");
    let records = deaggregate(&data, pk.as_bytes(), &options(request)?)
        .map_err(|e| format!("{}: {e}", e.kind()))?;
    Ok(json!({"ok": true, "records": user_records_json(records)}))
}

fn bench(request: &Value) -> Result<Value, String> {
    let file = request
        .get("file")
        .and_then(Value::as_str)
        .ok_or("no file")?;
    let iterations = request
        .get("iterations")
        .and_then(Value::as_u64)
        .unwrap_or(1);
    let text = std::fs::read_to_string(file).map_err(|e| format!("{file}: {e}"))?;
    let mut corpus = Vec::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let v: Value = serde_json::from_str(line).map_err(|e| e.to_string())?;
        let pk = v
            .get("partition_key")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        corpus.push((b64(v.get("data"))?, pk));
    }
    let pairs = corpus
        .iter()
        .map(|(data, pk)| (data.as_slice(), pk.as_bytes()));
    let (seconds, user_records) = kpl_conformance::throughput::decode_timed(pairs, iterations);
    Ok(json!({"ok": true, "seconds": seconds, "user_records": user_records}))
}
