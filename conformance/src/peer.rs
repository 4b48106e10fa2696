//! Checks of an implementation behind an adapter (`PROTOCOL.md`) against the corpus.

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use kpl_codec::{deaggregate, Options};
use kpl_vectors::{Case, DecodeCase, DecodeExpected, EncodeCase, EncodeExpected, Vector};
use serde_json::{json, Value};

use crate::adapter::{AdapterProcess, Answer};
use crate::capture::{self, Answers};
use crate::report::Outcome;
use crate::shards::{self, Put};

/// Column names of the matrix for adapter checks.
pub mod column {
    /// Encode output byte-identical to KPL's.
    pub const KPL_BYTES: &str = "encode: KPL bytes";
    /// Encode output that KCL decodes back to the input user records.
    pub const KCL_DECODES: &str = "encode: KCL decodes";
    /// Encode output within the size and count limits.
    pub const LIMITS: &str = "encode: limits";
    /// Decoding well-formed aggregates like KCL.
    pub const DECODE_VALID: &str = "decode: valid";
    /// Handling malformed input like KCL.
    pub const DECODE_MALFORMED: &str = "decode: malformed";
    /// Attributing explicit hash keys like KCL.
    pub const EHK: &str = "decode: explicit hash keys";
    /// Encode output for a stream of 4 shards that keeps every user record on its shard
    /// (rows `<label> (4 shards)`, see [`crate::shards::check_shard_safety`]).
    pub const SHARD_SAFETY: &str = "encode: shard safety";
}

/// The row of the shard-safety column for the implementation labelled `label`.
pub fn shards_label(label: &str) -> String {
    format!("{label} ({} shards)", crate::shards::STANDARD_SHARDS)
}

/// What an adapter said about itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hello {
    /// Implementation name.
    pub name: String,
    /// Implementation version.
    pub version: String,
    /// Whether it encodes.
    pub encode: bool,
    /// Whether it decodes.
    pub decode: bool,
    /// The decode policies it follows (`kcl`, `strict`, `native`).
    pub policies: Vec<String>,
    /// Whether it applies a shard range.
    pub shard_range: bool,
    /// Whether it can skip the MD5 check (`verify_md5: false`).
    pub verify_md5_optional: bool,
    /// Whether its encoder uses the `shards` of an encode request (informational).
    pub shard_layout: bool,
    /// The whole hello answer, without `ok` (versions of what it depends on, say).
    pub raw: Value,
}

/// Asks the adapter who it is.
pub fn hello(adapter: &mut AdapterProcess) -> Result<Hello, String> {
    match adapter.request(&json!({"op": "hello"})) {
        Answer::Ok(v) => {
            let text = |k: &str| v.get(k).and_then(Value::as_str).unwrap_or("?").to_string();
            let flag = |k: &str| v.get(k).and_then(Value::as_bool).unwrap_or(false);
            Ok(Hello {
                name: text("name"),
                version: text("version"),
                encode: flag("encode"),
                decode: flag("decode"),
                policies: v
                    .get("policies")
                    .and_then(Value::as_array)
                    .map(|a| {
                        a.iter()
                            .filter_map(Value::as_str)
                            .map(String::from)
                            .collect()
                    })
                    .unwrap_or_default(),
                shard_range: flag("shard_range"),
                verify_md5_optional: flag("verify_md5_optional"),
                shard_layout: flag("shard_layout"),
                raw: match v {
                    Value::Object(mut map) => {
                        map.remove("ok");
                        Value::Object(map)
                    }
                    other => other,
                },
            })
        }
        other => Err(other.describe()),
    }
}

/// Runs every applicable check of `vectors` through the adapter. `label` names the
/// implementation in the report (`<label>` or `<label> (<policy>)`).
pub fn run(
    adapter: &mut AdapterProcess,
    hello: &Hello,
    label: &str,
    vectors: &[Vector],
) -> Vec<Outcome> {
    run_recording(adapter, hello, label, vectors, &mut Answers::new())
}

/// [`run`], also recording every decode answer in `answers` (vector name, then policy),
/// in the form of `vectors/captured/decoders` ([`crate::capture`]); a decode vector that
/// needs a capability the adapter lacks is recorded as not sent.
pub fn run_recording(
    adapter: &mut AdapterProcess,
    hello: &Hello,
    label: &str,
    vectors: &[Vector],
    answers: &mut Answers,
) -> Vec<Outcome> {
    let mut out = Vec::new();
    for vector in vectors {
        match &vector.case {
            Case::Encode(case) if hello.encode => {
                encode_checks(adapter, label, vector, case, &mut out)
            }
            Case::Decode(case) if hello.decode => {
                for policy in &hello.policies {
                    let lacking = if case.shard_range.is_some() && !hello.shard_range {
                        Some("needs shard_range")
                    } else if !case.verify_md5 && !hello.verify_md5_optional {
                        Some("needs verify_md5_optional")
                    } else {
                        None
                    };
                    if let Some(reason) = lacking {
                        answers
                            .entry(vector.name.clone())
                            .or_default()
                            .insert(policy.clone(), capture::not_sent(reason));
                        continue;
                    }
                    let implementation = if policy == "native" {
                        label.to_string()
                    } else {
                        format!("{label} ({policy})")
                    };
                    let category = if vector.name.contains("ehk") {
                        column::EHK
                    } else if vector.category() == "malformed" {
                        column::DECODE_MALFORMED
                    } else {
                        column::DECODE_VALID
                    };
                    let (result, answer) = decode_check(adapter, case, policy);
                    answers
                        .entry(vector.name.clone())
                        .or_default()
                        .insert(policy.clone(), capture::answer_json(&answer));
                    out.push(Outcome {
                        implementation,
                        category: category.to_string(),
                        vector: vector.name.clone(),
                        result,
                    });
                }
            }
            _ => {}
        }
    }
    out
}

/// Sends one decode request; returns the check's result and the answer.
fn decode_check(
    adapter: &mut AdapterProcess,
    case: &DecodeCase,
    policy: &str,
) -> (Result<(), String>, Answer) {
    let request = json!({
        "op": "decode", "data": BASE64.encode(&case.data), "partition_key": case.partition_key,
        "policy": policy, "verify_md5": case.verify_md5,
        "shard_range": case.shard_range.map(|r| json!({"start": r.start.to_string(), "end": r.end.to_string()})),
    });
    let expected = if policy == "strict" {
        &case.strict
    } else {
        &case.kcl
    };
    let answer = adapter.request(&request);
    let result = judge_decode(&answer, expected);
    (result, answer)
}

fn judge_decode(answer: &Answer, expected: &DecodeExpected) -> Result<(), String> {
    match (answer, expected) {
        (Answer::Refused(_), DecodeExpected::Error { .. }) => Ok(()),
        (Answer::Ok(_), DecodeExpected::Error { kind, .. }) => {
            Err(format!("answered records, expected an error ({kind})"))
        }
        (Answer::Ok(v), DecodeExpected::Records(expected)) => {
            let got = v
                .get("records")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            if got.len() != expected.len() {
                return Err(format!(
                    "{} user records, expected {}",
                    got.len(),
                    expected.len()
                ));
            }
            for (i, (g, e)) in got.iter().zip(expected).enumerate() {
                let pk = match g.get("partition_key").and_then(Value::as_str) {
                    Some(text) => text.as_bytes().to_vec(),
                    None => BASE64
                        .decode(
                            g.get("partition_key_b64")
                                .and_then(Value::as_str)
                                .unwrap_or(""),
                        )
                        .unwrap_or_default(),
                };
                let ehk = g
                    .get("explicit_hash_key")
                    .and_then(Value::as_str)
                    .map(String::from);
                let data = BASE64
                    .decode(g.get("data").and_then(Value::as_str).unwrap_or(""))
                    .unwrap_or_default();
                // An implementation that hands out keys as text can only give a lossy form
                // of a key that is not UTF-8: compare with the one KCL gives (Java's).
                let lossy_ok = g.get("partition_key").is_some()
                    && std::str::from_utf8(&e.partition_key).is_err()
                    && pk == kpl_codec::kcl_text(&e.partition_key).as_bytes();
                if pk != e.partition_key && !lossy_ok {
                    return Err(format!(
                        "user record {i}: partition key {:?}, expected {:?}",
                        String::from_utf8_lossy(&pk),
                        String::from_utf8_lossy(&e.partition_key)
                    ));
                }
                if ehk != e.explicit_hash_key {
                    return Err(format!(
                        "user record {i}: explicit hash key {ehk:?}, expected {:?}",
                        e.explicit_hash_key
                    ));
                }
                if data != e.data {
                    return Err(format!("user record {i}: data differs"));
                }
                let ssn = g.get("sub_sequence_number").and_then(Value::as_u64);
                if ssn != Some(e.sub_sequence_number) {
                    return Err(format!(
                        "user record {i}: sub-sequence number {ssn:?}, expected {}",
                        e.sub_sequence_number
                    ));
                }
                let aggregated = g.get("aggregated").and_then(Value::as_bool);
                if aggregated != Some(e.aggregated) {
                    return Err(format!(
                        "user record {i}: aggregated {aggregated:?}, expected {}",
                        e.aggregated
                    ));
                }
            }
            Ok(())
        }
        (other, _) => Err(other.describe()),
    }
}

/// The encode columns for one vector, then, when the vector expects Kinesis records, the
/// same request with the [standard shard layout](crate::shards::standard_layout) for the
/// shard-safety column.
fn encode_checks(
    adapter: &mut AdapterProcess,
    label: &str,
    vector: &Vector,
    case: &EncodeCase,
    out: &mut Vec<Outcome>,
) {
    let records: Vec<Value> = case
        .records
        .iter()
        .map(|r| json!({"partition_key": r.partition_key, "explicit_hash_key": r.explicit_hash_key, "data": BASE64.encode(&r.data)}))
        .collect();
    let mut request = json!({
        "op": "encode", "records": records,
        "limits": {"max_size": case.config.max_size, "max_count": case.config.max_count,
                   "max_record_size": case.config.max_record_size},
    });
    encode_columns(adapter, label, vector, case, &request, out);
    if matches!(case.expected, EncodeExpected::Records(_)) {
        let layout = shards::standard_layout();
        request["shards"] = shards::layout_json(&layout);
        let result = match adapter.request(&request) {
            Answer::Ok(v) => shards::check_shard_safety(&layout, &case.records, &puts_of(&v)),
            other => Err(other.describe()),
        };
        out.push(Outcome {
            implementation: shards_label(label),
            category: column::SHARD_SAFETY.to_string(),
            vector: vector.name.clone(),
            result,
        });
    }
}

/// The Kinesis records of an encode answer (missing fields read as empty).
fn puts_of(v: &Value) -> Vec<Put> {
    v.get("kinesis_records")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .map(|k| {
                    (
                        k.get("partition_key")
                            .and_then(Value::as_str)
                            .unwrap_or("")
                            .to_string(),
                        k.get("explicit_hash_key")
                            .and_then(Value::as_str)
                            .map(String::from),
                        BASE64
                            .decode(k.get("data").and_then(Value::as_str).unwrap_or(""))
                            .unwrap_or_default(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

fn encode_columns(
    adapter: &mut AdapterProcess,
    label: &str,
    vector: &Vector,
    case: &EncodeCase,
    request: &Value,
    out: &mut Vec<Outcome>,
) {
    let answer = adapter.request(request);
    let mut push = |category: &str, result: Result<(), String>| {
        out.push(Outcome {
            implementation: label.to_string(),
            category: category.to_string(),
            vector: vector.name.clone(),
            result,
        })
    };
    let expected = match &case.expected {
        EncodeExpected::Error { kind, .. } => {
            let result = match answer {
                Answer::Refused(_) => Ok(()),
                Answer::Ok(_) => Err(format!("accepted the input, expected it rejected ({kind})")),
                other => Err(other.describe()),
            };
            push(column::KPL_BYTES, result);
            return;
        }
        EncodeExpected::Records(expected) => expected,
    };
    let puts: Vec<Put> = match &answer {
        Answer::Ok(v) => puts_of(v),
        other => {
            for category in [column::KPL_BYTES, column::KCL_DECODES, column::LIMITS] {
                push(category, Err(other.describe()));
            }
            return;
        }
    };
    let identical = puts.len() == expected.len()
        && puts.iter().zip(expected).all(|(p, e)| {
            p.0 == e.partition_key
                && p.1.as_deref() == Some(e.explicit_hash_key.as_str())
                && p.2 == e.data
        });
    push(
        column::KPL_BYTES,
        if identical {
            Ok(())
        } else {
            Err(format!(
                "{} Kinesis records differ from KPL's {}",
                puts.len(),
                expected.len()
            ))
        },
    );
    push(column::KCL_DECODES, kcl_decodes(&puts, case));
    push(column::LIMITS, limits(&puts, case));
}

fn kcl_decodes(puts: &[Put], case: &EncodeCase) -> Result<(), String> {
    let mut users = Vec::new();
    for (pk, _, data) in puts {
        for r in deaggregate(data, pk.as_bytes(), &Options::kcl()).map_err(|e| e.to_string())? {
            users.push((r.partition_key.to_vec(), r.data.to_vec()));
        }
    }
    let sent: Vec<_> = case
        .records
        .iter()
        .map(|r| (r.partition_key.as_bytes().to_vec(), r.data.clone()))
        .collect();
    if users == sent {
        Ok(())
    } else {
        Err(format!(
            "KCL reads {} user records back, {} were sent, or keys or data differ",
            users.len(),
            sent.len()
        ))
    }
}

fn limits(puts: &[Put], case: &EncodeCase) -> Result<(), String> {
    for (i, (pk, _, data)) in puts.iter().enumerate() {
        let size = (data.len() + pk.len()) as u64;
        if size > case.config.max_record_size {
            return Err(format!(
                "Kinesis record {i}: {size} bytes with its key, over {}",
                case.config.max_record_size
            ));
        }
        let users = deaggregate(data, pk.as_bytes(), &Options::kcl()).map_err(|e| e.to_string())?;
        if users.len() > 1 || data.starts_with(&kpl_codec::MAGIC) {
            if data.len() as u64 > case.config.max_size {
                return Err(format!(
                    "aggregate {i}: {} bytes, over max_size {}",
                    data.len(),
                    case.config.max_size
                ));
            }
            if users.len() as u64 > case.config.max_count {
                return Err(format!(
                    "aggregate {i}: {} user records, over max_count",
                    users.len()
                ));
            }
        }
    }
    Ok(())
}
