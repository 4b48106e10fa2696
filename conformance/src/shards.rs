//! Shard safety: aggregating per shard as KPL does with its shard map, and checking that a
//! producer's Kinesis records keep every user record on the shard its hash key selects.
//!
//! ```
//! use kpl_codec::{AggregatorConfig, InputRecord};
//! use kpl_conformance::shards::{standard_layout, ShardedAggregator};
//!
//! let layout = standard_layout();
//! let mut aggregator = ShardedAggregator::new(AggregatorConfig::default(), layout.clone())?;
//! let mut puts = Vec::new();
//! for (pk, data) in [("a", b"x"), ("b", b"y"), ("d", b"z")] {
//!     puts.extend(aggregator.add(InputRecord::new(pk, data))?);
//! }
//! puts.extend(aggregator.drain());
//! // "b" and "d" hash to shard 2, "a" to shard 0: two Kinesis records, in shard order.
//! assert_eq!(puts.len(), 2);
//! assert_eq!((puts[0].partition_key.as_str(), puts[1].user_records), ("a", 2));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::fmt;

use kpl_codec::{
    deaggregate, hash_key, parse_explicit_hash_key, Aggregator, AggregatorConfig, EncodeError,
    HashRange, InputRecord, KinesisRecord, Options,
};
use serde_json::{json, Value};

/// Number of shards of the [standard layout](standard_layout).
pub const STANDARD_SHARDS: u32 = 4;

/// One open shard: its id and its inclusive hash-key range.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shard {
    /// E.g. `shardId-000000000001`.
    pub shard_id: String,
    /// `[StartingHashKey, EndingHashKey]`.
    pub range: HashRange,
}

/// `n` (at least 1) shards splitting the hash space evenly, as Kinesis creates them:
/// shard `i` starts at `floor(2^128 / n) * i` and ends where the next one starts, minus
/// one; the last ends at `2^128 - 1`. Ids are `shardId-` and 12 digits.
pub fn even_layout(n: u32) -> Vec<Shard> {
    let n = n.max(1);
    // floor(2^128 / n) without 2^128: (2^128 - 1) / n, plus one when n divides 2^128.
    // (Saturating: for n = 1 the step would be 2^128, and it is never used.)
    let step = (u128::MAX / u128::from(n))
        .saturating_add(u128::from((u128::MAX % u128::from(n)) + 1 == u128::from(n)));
    (0..n)
        .map(|i| {
            let start = step * u128::from(i);
            let end = if i + 1 == n {
                u128::MAX
            } else {
                step * u128::from(i + 1) - 1
            };
            Shard {
                shard_id: format!("shardId-{i:012}"),
                range: HashRange::new(start, end),
            }
        })
        .collect()
}

/// The layout every encode vector is also checked with: [`STANDARD_SHARDS`] even shards.
pub fn standard_layout() -> Vec<Shard> {
    even_layout(STANDARD_SHARDS)
}

/// The layout as the `shards` field of an encode request (`conformance/PROTOCOL.md`).
pub fn layout_json(layout: &[Shard]) -> Value {
    Value::Array(
        layout
            .iter()
            .map(|s| {
                json!({"shard_id": s.shard_id, "starting_hash_key": s.range.start.to_string(),
                       "ending_hash_key": s.range.end.to_string()})
            })
            .collect(),
    )
}

/// Reads the `shards` field of an encode request.
pub fn parse_layout(value: &Value) -> Result<Vec<Shard>, String> {
    let shards = value.as_array().ok_or("shards: not an array")?;
    let mut out = Vec::with_capacity(shards.len());
    for (i, s) in shards.iter().enumerate() {
        let key = |name: &str| -> Result<u128, String> {
            s.get(name)
                .and_then(Value::as_str)
                .and_then(|t| parse_explicit_hash_key(t).ok())
                .ok_or_else(|| format!("shards[{i}].{name}: not a decimal hash key"))
        };
        let range = HashRange::new(key("starting_hash_key")?, key("ending_hash_key")?);
        if range.start > range.end {
            return Err(format!("shards[{i}]: starting_hash_key > ending_hash_key"));
        }
        out.push(Shard {
            shard_id: s
                .get("shard_id")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string(),
            range,
        });
    }
    Ok(out)
}

/// The index of the shard holding `key`, if any.
pub fn shard_of(layout: &[Shard], key: u128) -> Option<usize> {
    layout.iter().position(|s| s.range.contains(key))
}

/// Why [`ShardedAggregator::add`] refused a record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ShardedError {
    /// The record itself is invalid (as [`Aggregator::add`] says).
    Record(EncodeError),
    /// No shard of the layout holds the record's hash key.
    NoShard {
        /// The record's hash key.
        hash_key: u128,
    },
}

impl fmt::Display for ShardedError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ShardedError::Record(e) => write!(f, "{}: {e}", e.kind()),
            ShardedError::NoShard { hash_key } => {
                write!(f, "no shard holds hash key {hash_key}")
            }
        }
    }
}

impl std::error::Error for ShardedError {}

impl From<EncodeError> for ShardedError {
    fn from(e: EncodeError) -> Self {
        ShardedError::Record(e)
    }
}

/// KPL's aggregation over a stream's open shards: one [`Aggregator`] per shard, each user
/// record added to the aggregator of the shard its hash key (explicit, else MD5 of the
/// partition key) falls in. An aggregator that reaches a limit emits its Kinesis record at
/// once; [`ShardedAggregator::drain`] flushes the rest in shard order.
#[derive(Debug, Clone)]
pub struct ShardedAggregator {
    layout: Vec<Shard>,
    aggregators: Vec<Aggregator>,
}

impl ShardedAggregator {
    /// One empty aggregator per shard of `layout`; fails if a limit is out of range.
    pub fn new(config: AggregatorConfig, layout: Vec<Shard>) -> Result<Self, EncodeError> {
        let aggregators = layout
            .iter()
            .map(|_| Aggregator::new(config))
            .collect::<Result<_, _>>()?;
        Ok(ShardedAggregator {
            layout,
            aggregators,
        })
    }

    /// Adds a user record to its shard's aggregator; returns the Kinesis record that
    /// aggregator emits, if the add reached a limit. A refused record changes nothing.
    pub fn add(&mut self, record: InputRecord<'_>) -> Result<Option<KinesisRecord>, ShardedError> {
        if let Some(aggregator) = self.aggregators.first() {
            aggregator.check(&record)?;
        }
        let key = record.hash_key()?;
        let shard = shard_of(&self.layout, key).ok_or(ShardedError::NoShard { hash_key: key })?;
        match self.aggregators.get_mut(shard) {
            Some(aggregator) => Ok(aggregator.add(record)?),
            None => Err(ShardedError::NoShard { hash_key: key }),
        }
    }

    /// Flushes every aggregator until empty, shard by shard in layout order.
    pub fn drain(&mut self) -> Vec<KinesisRecord> {
        self.aggregators
            .iter_mut()
            .flat_map(|a| a.drain().collect::<Vec<_>>())
            .collect()
    }
}

/// A Kinesis record as a producer put it: partition key, explicit hash key (if sent), data.
pub type Put = (String, Option<String>, Vec<u8>);

/// Checks that `puts`, the Kinesis records a producer made of `inputs` for a stream with
/// the open shards of `layout`, are shard safe:
///
/// * every Kinesis record lands on the shard holding its explicit hash key, else the MD5
///   of its partition key;
/// * every user record inside an aggregate (its explicit hash key from the table when it
///   has one, else the MD5 of its partition key) belongs to that same shard;
/// * per shard, the user records KCL reads back are that shard's input records, each
///   exactly once and in input order (partition key and data compared).
///
/// The error is one line naming the first violation.
pub fn check_shard_safety(
    layout: &[Shard],
    inputs: &[kpl_vectors::InputRecord],
    puts: &[Put],
) -> Result<(), String> {
    let id = |s: usize| layout.get(s).map_or("?", |s| s.shard_id.as_str());
    let mut expected: Vec<Vec<usize>> = vec![Vec::new(); layout.len()];
    for (i, r) in inputs.iter().enumerate() {
        let key = match &r.explicit_hash_key {
            Some(text) => parse_explicit_hash_key(text)
                .map_err(|e| format!("input record {i}: explicit hash key {text:?}: {e}"))?,
            None => hash_key(r.partition_key.as_bytes()),
        };
        let shard = shard_of(layout, key)
            .ok_or_else(|| format!("input record {i}: no shard holds hash key {key}"))?;
        expected[shard].push(i);
    }
    let mut got: Vec<Vec<(Vec<u8>, Vec<u8>)>> = vec![Vec::new(); layout.len()];
    for (j, (pk, ehk, data)) in puts.iter().enumerate() {
        let outer = match ehk {
            Some(text) => parse_explicit_hash_key(text).map_err(|_| {
                format!("Kinesis record {j}: explicit hash key {text:?} is not a hash key")
            })?,
            None => hash_key(pk.as_bytes()),
        };
        let shard = shard_of(layout, outer)
            .ok_or_else(|| format!("Kinesis record {j}: no shard holds hash key {outer}"))?;
        let users = deaggregate(data, pk.as_bytes(), &Options::kcl())
            .map_err(|e| format!("Kinesis record {j}: {e}"))?;
        for (k, user) in users.enumerate() {
            let key = user.hash_key();
            if user.aggregated && !layout[shard].range.contains(key) {
                let belongs = shard_of(layout, key).map_or("no shard", id);
                return Err(format!(
                    "Kinesis record {j} lands on {} but holds user record {k} (key {:?}, hash {key}) of {belongs}",
                    id(shard),
                    String::from_utf8_lossy(user.partition_key),
                ));
            }
            got[shard].push((user.partition_key.to_vec(), user.data.to_vec()));
        }
    }
    for (shard, (want, have)) in expected.iter().zip(&got).enumerate() {
        for (n, (&i, (pk, data))) in want.iter().zip(have).enumerate() {
            let input = &inputs[i];
            if pk.as_slice() != input.partition_key.as_bytes() || *data != input.data {
                return Err(format!(
                    "{}: user record {n} read back is (key {:?}, {} bytes), expected input record {i} (key {:?}, {} bytes)",
                    id(shard),
                    String::from_utf8_lossy(pk),
                    data.len(),
                    input.partition_key,
                    input.data.len()
                ));
            }
        }
        if want.len() != have.len() {
            return Err(format!(
                "{}: {} user records read back, {} input records belong to it",
                id(shard),
                have.len(),
                want.len()
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_standard_layout_is_four_even_shards_of_the_hash_space() {
        let layout = standard_layout();
        let q = 1u128 << 126;
        let ranges: Vec<_> = layout
            .iter()
            .map(|s| (s.range.start, s.range.end))
            .collect();
        assert_eq!(
            ranges,
            [
                (0, q - 1),
                (q, 2 * q - 1),
                (2 * q, 3 * q - 1),
                (3 * q, u128::MAX)
            ]
        );
        assert_eq!(layout[0].range.end, 85070591730234615865843651857942052863);
        assert_eq!(layout[3].shard_id, "shardId-000000000003");
        assert_eq!(parse_layout(&layout_json(&layout)), Ok(layout));
    }

    #[test]
    fn even_layouts_cover_the_hash_space_without_gaps() {
        // 3 shards: the split shown in the AWS CLI's describe-stream example.
        let three = even_layout(3);
        assert_eq!(
            three[1].range.start,
            113427455640312821154458202477256070485
        );
        assert_eq!(
            three[2].range.start,
            226854911280625642308916404954512140970
        );
        for n in [1, 2, 3, 4, 5, 7, 16, 1000] {
            let layout = even_layout(n);
            assert_eq!(layout.len(), n as usize);
            assert_eq!(layout[0].range.start, 0);
            assert_eq!(layout[layout.len() - 1].range.end, u128::MAX);
            for w in layout.windows(2) {
                assert_eq!(w[0].range.end + 1, w[1].range.start, "n = {n}");
            }
        }
    }

    fn input(pk: &str, ehk: Option<&str>, data: &[u8]) -> kpl_vectors::InputRecord {
        kpl_vectors::InputRecord {
            partition_key: pk.into(),
            explicit_hash_key: ehk.map(String::from),
            data: data.to_vec(),
        }
    }

    fn puts(records: Vec<KinesisRecord>) -> Vec<Put> {
        records
            .into_iter()
            .map(|k| (k.partition_key, Some(k.explicit_hash_key), k.data))
            .collect()
    }

    /// Keys on shards 0, 1, 2 and 3 (explicit hash keys), plus keys by MD5.
    fn spread() -> Vec<kpl_vectors::InputRecord> {
        let q = 1u128 << 126;
        vec![
            input("a", Some("5"), b"0"),
            input("b", Some(&(q + 5).to_string()), b"1"),
            input("c", Some(&(2 * q).to_string()), b"2"),
            input("d", Some(&u128::MAX.to_string()), b"3"),
            input("e", Some("6"), b"4"),
            input("f", None, b"5"),
            input("g", None, b"6"),
        ]
    }

    fn sharded(inputs: &[kpl_vectors::InputRecord], max_size: usize) -> Vec<KinesisRecord> {
        let config = AggregatorConfig {
            max_size,
            ..AggregatorConfig::default()
        };
        let mut aggregator = ShardedAggregator::new(config, standard_layout()).unwrap();
        let mut out = Vec::new();
        for r in inputs {
            let mut record = InputRecord::new(&r.partition_key, &r.data);
            if let Some(ehk) = &r.explicit_hash_key {
                record = record.with_explicit_hash_key(ehk);
            }
            out.extend(aggregator.add(record).unwrap());
        }
        out.extend(aggregator.drain());
        out
    }

    #[test]
    fn the_sharded_aggregator_keeps_each_shard_apart_and_passes_the_check() {
        let inputs = spread();
        let out = sharded(&inputs, 51_200);
        let layout = standard_layout();
        // One Kinesis record per shard used, in shard order.
        let shards: Vec<_> = out
            .iter()
            .map(|k| shard_of(&layout, k.hash_key).unwrap())
            .collect();
        assert!(shards.windows(2).all(|w| w[0] < w[1]), "{shards:?}");
        assert_eq!(
            out.iter().map(|k| k.user_records).sum::<usize>(),
            inputs.len()
        );
        assert_eq!(check_shard_safety(&layout, &inputs, &puts(out)), Ok(()));
        // Small aggregates: shards flush as they fill, still shard safe.
        let many: Vec<_> = (0..200)
            .map(|i| input(&format!("k{i}"), None, &[7; 40]))
            .collect();
        let out = sharded(&many, 512);
        assert!(out.len() > 8, "{}", out.len());
        assert_eq!(check_shard_safety(&layout, &many, &puts(out)), Ok(()));
    }

    #[test]
    fn one_aggregate_across_shards_fails_with_the_record_and_shard_named() {
        let inputs = spread();
        let mut single = Aggregator::new(AggregatorConfig::default()).unwrap();
        for r in &inputs {
            let mut record = InputRecord::new(&r.partition_key, &r.data);
            if let Some(ehk) = &r.explicit_hash_key {
                record = record.with_explicit_hash_key(ehk);
            }
            assert!(single.add(record).unwrap().is_none());
        }
        let out: Vec<_> = single.drain().collect();
        let err = check_shard_safety(&standard_layout(), &inputs, &puts(out)).unwrap_err();
        assert_eq!(
            err,
            format!(
                "Kinesis record 0 lands on shardId-000000000000 but holds user record 1 \
                 (key \"b\", hash {}) of shardId-000000000001",
                (1u128 << 126) + 5
            )
        );
    }

    #[test]
    fn lost_duplicated_reordered_or_misrouted_records_fail() {
        let layout = standard_layout();
        let inputs = spread();
        let good = puts(sharded(&inputs, 51_200));
        // Every user record raw, under its own key and explicit hash key: shard safe.
        let raw: Vec<Put> = inputs
            .iter()
            .map(|r| {
                (
                    r.partition_key.clone(),
                    r.explicit_hash_key.clone(),
                    r.data.clone(),
                )
            })
            .collect();
        assert_eq!(check_shard_safety(&layout, &inputs, &raw), Ok(()));
        // A lost record.
        let err = check_shard_safety(&layout, &inputs, &raw[1..]).unwrap_err();
        assert!(
            err.starts_with("shardId-000000000000: user record 0 read back is (key \"e\""),
            "{err}"
        );
        let err = check_shard_safety(&layout, &inputs, &raw[..6]).unwrap_err();
        assert!(err.contains("user records read back,"), "{err}");
        // A duplicate.
        let mut twice = good.clone();
        twice.push(good[good.len() - 1].clone());
        assert!(check_shard_safety(&layout, &inputs, &twice).is_err());
        // Reordered within a shard ("a" and "e" share shard 0).
        let mut swapped = raw.clone();
        swapped.swap(0, 4);
        let err = check_shard_safety(&layout, &inputs, &swapped).unwrap_err();
        assert!(err.contains("expected input record 0"), "{err}");
        // A raw record sent without its explicit hash key lands by MD5 elsewhere.
        let mut misrouted = raw.clone();
        misrouted[1].1 = None;
        assert!(check_shard_safety(&layout, &inputs, &misrouted).is_err());
        // An outer explicit hash key Kinesis would not accept.
        let mut bad = raw;
        bad[0].1 = Some("-1".into());
        let err = check_shard_safety(&layout, &inputs, &bad).unwrap_err();
        assert_eq!(
            err,
            "Kinesis record 0: explicit hash key \"-1\" is not a hash key"
        );
    }

    #[test]
    fn invalid_records_and_uncovered_keys_are_refused() {
        let mut one = ShardedAggregator::new(
            AggregatorConfig::default(),
            vec![Shard {
                shard_id: "shardId-000000000000".into(),
                range: HashRange::new(0, 10),
            }],
        )
        .unwrap();
        assert_eq!(
            one.add(InputRecord::new("", b"x")),
            Err(ShardedError::Record(EncodeError::EmptyPartitionKey))
        );
        assert_eq!(
            one.add(InputRecord::new("k", b"x").with_explicit_hash_key("11")),
            Err(ShardedError::NoShard { hash_key: 11 })
        );
        assert_eq!(
            one.add(InputRecord::new("k", b"x").with_explicit_hash_key("010")),
            Ok(None)
        );
        assert_eq!(one.drain().len(), 1);
        assert!(parse_layout(
            &json!([{"shard_id": "s", "starting_hash_key": "2", "ending_hash_key": "1"}])
        )
        .is_err());
        assert!(parse_layout(&json!({})).is_err());
    }
}
