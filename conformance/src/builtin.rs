//! Checks of kpl-codec itself against one vector.

use kpl_codec::{
    deaggregate, hash_key, parse_explicit_hash_key, Aggregator, AggregatorConfig, HashRange,
    InputRecord, KinesisRecord, Options, Policy,
};
use kpl_vectors::{
    Case, DecodeCase, DecodeExpected, EncodeCase, EncodeExpected, ExpectedUserRecord,
    ExplicitHashKeyCase, HashKeyCase, OutputRecord, Vector,
};

use crate::shards::{standard_layout, ShardedAggregator};

/// Name of the built-in encoder and hash-key functions in reports.
pub const CODEC: &str = "kpl-codec";
/// Name of the built-in decoder under the KCL policy in reports.
pub const CODEC_KCL: &str = "kpl-codec (kcl)";
/// Name of the built-in decoder under the strict policy in reports.
pub const CODEC_STRICT: &str = "kpl-codec (strict)";
/// Name of the built-in encoder aggregating per shard of the standard 4-shard layout
/// ([`check_shard_safety`]) in reports.
pub const CODEC_SHARDS: &str = "kpl-codec (4 shards)";

/// The implementations that [`check_all`] checks for `vector`.
pub fn implementations(vector: &Vector) -> &'static [&'static str] {
    match &vector.case {
        Case::Decode(_) => &[CODEC_KCL, CODEC_STRICT],
        Case::Encode(EncodeCase {
            expected: EncodeExpected::Records(_),
            ..
        }) => &[CODEC, CODEC_SHARDS],
        _ => &[CODEC],
    }
}

/// Every check that applies to `vector`, with the name of the implementation checked.
pub fn check_all(vector: &Vector) -> Vec<(&'static str, Result<(), String>)> {
    match &vector.case {
        Case::Encode(
            case @ EncodeCase {
                expected: EncodeExpected::Records(_),
                ..
            },
        ) => vec![
            (CODEC, check_encode(case)),
            (CODEC_SHARDS, check_shard_safety(case)),
        ],
        Case::Encode(case) => vec![(CODEC, check_encode(case))],
        Case::Decode(case) => vec![
            (CODEC_KCL, check_decode(case, Policy::Kcl)),
            (CODEC_STRICT, check_decode(case, Policy::Strict)),
        ],
        Case::HashKey(case) => vec![(CODEC, check_hash_key(case))],
        Case::ExplicitHashKey(case) => vec![(CODEC, check_explicit_hash_key(case))],
    }
}

/// Encodes the vector's user records and compares the Kinesis records (or the error).
pub fn check_encode(case: &EncodeCase) -> Result<(), String> {
    let config = config_of(case)?;
    let mut aggregator = Aggregator::new(config).map_err(|e| format!("config rejected: {e}"))?;
    let mut produced = Vec::new();
    for (i, record) in case.records.iter().enumerate() {
        let mut input = InputRecord::new(&record.partition_key, &record.data);
        if let Some(ehk) = &record.explicit_hash_key {
            input = input.with_explicit_hash_key(ehk);
        }
        match aggregator.add(input) {
            Ok(out) => produced.extend(out),
            Err(e) => {
                return match &case.expected {
                    EncodeExpected::Error { kind, record } if *record == i && kind == e.kind() => {
                        Ok(())
                    }
                    expected => Err(format!(
                        "record {i} rejected with {} ({e}); expected {}",
                        e.kind(),
                        describe_encode(expected)
                    )),
                };
            }
        }
    }
    produced.extend(aggregator.drain());
    match &case.expected {
        EncodeExpected::Error { kind, record } => Err(format!(
            "expected {kind} at record {record}, but every record was accepted"
        )),
        EncodeExpected::Records(expected) => compare_kinesis_records(&produced, expected),
    }
}

/// Encodes the vector's user records for a stream with the standard 4 shards
/// ([`ShardedAggregator`]) and checks the result is shard safe
/// ([`crate::shards::check_shard_safety`]).
pub fn check_shard_safety(case: &EncodeCase) -> Result<(), String> {
    let config = config_of(case)?;
    let layout = standard_layout();
    let mut aggregator = ShardedAggregator::new(config, layout.clone())
        .map_err(|e| format!("config rejected: {e}"))?;
    let mut produced = Vec::new();
    for (i, record) in case.records.iter().enumerate() {
        let mut input = InputRecord::new(&record.partition_key, &record.data);
        if let Some(ehk) = &record.explicit_hash_key {
            input = input.with_explicit_hash_key(ehk);
        }
        produced.extend(
            aggregator
                .add(input)
                .map_err(|e| format!("record {i} rejected: {e}"))?,
        );
    }
    produced.extend(aggregator.drain());
    let puts: Vec<_> = produced
        .into_iter()
        .map(|k| (k.partition_key, Some(k.explicit_hash_key), k.data))
        .collect();
    crate::shards::check_shard_safety(&layout, &case.records, &puts)
}

fn config_of(case: &EncodeCase) -> Result<AggregatorConfig, String> {
    Ok(AggregatorConfig {
        max_size: usize::try_from(case.config.max_size).map_err(|e| e.to_string())?,
        max_count: case.config.max_count,
        max_record_size: usize::try_from(case.config.max_record_size).map_err(|e| e.to_string())?,
    })
}

fn describe_encode(expected: &EncodeExpected) -> String {
    match expected {
        EncodeExpected::Records(r) => format!("{} Kinesis records", r.len()),
        EncodeExpected::Error { kind, record } => format!("{kind} at record {record}"),
    }
}

fn compare_kinesis_records(got: &[KinesisRecord], expected: &[OutputRecord]) -> Result<(), String> {
    for (i, (g, e)) in got.iter().zip(expected).enumerate() {
        if g.partition_key != e.partition_key {
            return Err(format!(
                "Kinesis record {i}: partition key {:?}, expected {:?}",
                g.partition_key, e.partition_key
            ));
        }
        if g.explicit_hash_key != e.explicit_hash_key {
            return Err(format!(
                "Kinesis record {i}: explicit hash key {}, expected {}",
                g.explicit_hash_key, e.explicit_hash_key
            ));
        }
        if g.user_records as u64 != e.user_records {
            return Err(format!(
                "Kinesis record {i}: {} user records, expected {}",
                g.user_records, e.user_records
            ));
        }
        if g.data != e.data {
            return Err(format!(
                "Kinesis record {i}: data differs at byte {} ({} bytes, expected {})",
                first_difference(&g.data, &e.data),
                g.data.len(),
                e.data.len()
            ));
        }
    }
    if got.len() != expected.len() {
        return Err(format!(
            "{} Kinesis records, expected {}",
            got.len(),
            expected.len()
        ));
    }
    Ok(())
}

fn first_difference(a: &[u8], b: &[u8]) -> usize {
    a.iter()
        .zip(b)
        .position(|(x, y)| x != y)
        .unwrap_or(a.len().min(b.len()))
}

/// Decodes the vector's Kinesis record under `policy` and compares with its expectation.
pub fn check_decode(case: &DecodeCase, policy: Policy) -> Result<(), String> {
    let options = Options {
        policy,
        verify_md5: case.verify_md5,
        shard_range: case
            .shard_range
            .as_ref()
            .map(|r| HashRange::new(r.start, r.end)),
    };
    let expected = match policy {
        Policy::Kcl => &case.kcl,
        Policy::Strict => &case.strict,
    };
    match (
        deaggregate(&case.data, case.partition_key.as_bytes(), &options),
        expected,
    ) {
        (Err(e), DecodeExpected::Error { kind, offset }) => {
            if e.kind() == kind && e.offset() == *offset {
                Ok(())
            } else {
                Err(format!(
                    "error {} at byte {}, expected {kind} at byte {offset}",
                    e.kind(),
                    e.offset()
                ))
            }
        }
        (Err(e), DecodeExpected::Records(r)) => Err(format!(
            "error {} at byte {} ({e}), expected {} user records",
            e.kind(),
            e.offset(),
            r.len()
        )),
        (Ok(records), DecodeExpected::Error { kind, offset }) => Err(format!(
            "{} user records, expected error {kind} at byte {offset}",
            records.count()
        )),
        (Ok(records), DecodeExpected::Records(expected)) => {
            let got: Vec<ExpectedUserRecord> = records
                .map(|r| ExpectedUserRecord {
                    partition_key: r.partition_key.to_vec(),
                    explicit_hash_key: r
                        .explicit_hash_key
                        .map(|k| String::from_utf8_lossy(k).into_owned()),
                    data: r.data.to_vec(),
                    sub_sequence_number: r.sub_sequence_number,
                    aggregated: r.aggregated,
                    hash_key: r.hash_key(),
                })
                .collect();
            compare_user_records(&got, expected)
        }
    }
}

fn compare_user_records(
    got: &[ExpectedUserRecord],
    expected: &[ExpectedUserRecord],
) -> Result<(), String> {
    for (i, (g, e)) in got.iter().zip(expected).enumerate() {
        if g != e {
            let what = if g.partition_key != e.partition_key {
                format!(
                    "partition key {:?}, expected {:?}",
                    String::from_utf8_lossy(&g.partition_key),
                    String::from_utf8_lossy(&e.partition_key)
                )
            } else if g.explicit_hash_key != e.explicit_hash_key {
                format!(
                    "explicit hash key {:?}, expected {:?}",
                    g.explicit_hash_key, e.explicit_hash_key
                )
            } else if g.data != e.data {
                format!(
                    "data differs at byte {}",
                    first_difference(&g.data, &e.data)
                )
            } else if g.sub_sequence_number != e.sub_sequence_number {
                format!(
                    "sub-sequence number {}, expected {}",
                    g.sub_sequence_number, e.sub_sequence_number
                )
            } else if g.aggregated != e.aggregated {
                format!("aggregated {}, expected {}", g.aggregated, e.aggregated)
            } else {
                format!("hash key {}, expected {}", g.hash_key, e.hash_key)
            };
            return Err(format!("user record {i}: {what}"));
        }
    }
    if got.len() != expected.len() {
        return Err(format!(
            "{} user records, expected {}",
            got.len(),
            expected.len()
        ));
    }
    Ok(())
}

/// Checks `hash_key` of the vector's partition key.
pub fn check_hash_key(case: &HashKeyCase) -> Result<(), String> {
    let got = hash_key(&case.partition_key);
    if got == case.hash_key {
        Ok(())
    } else {
        Err(format!("hash key {got}, expected {}", case.hash_key))
    }
}

/// Checks parsing and canonicalisation of an explicit hash key.
pub fn check_explicit_hash_key(case: &ExplicitHashKeyCase) -> Result<(), String> {
    match (parse_explicit_hash_key(&case.text), &case.expected) {
        (Ok(v), Ok(canonical)) if v.to_string() == *canonical => Ok(()),
        (Err(e), Err(kind)) if e.kind() == kind => Ok(()),
        (got, expected) => Err(format!("got {got:?}, expected {expected:?}")),
    }
}
