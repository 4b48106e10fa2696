//! `deaggregate_batch` against `deaggregate` one record at a time: the same records, the
//! same verdicts, the same errors, in input order, for batches that mix valid aggregates,
//! aggregates with a wrong MD5, framed garbage (a correct MD5 over bytes that do not
//! parse), records too short for a frame, and plain records, under every policy.
//!
//! With the `simd` feature (on in `cargo test --workspace`, where kpl-kinesis and kpl-cli
//! enable it) the batch hashes with kpl-md5's multi-lane kernels; the test prints which
//! path ran.

use kpl_codec::{
    deaggregate, deaggregate_batch, Aggregator, AggregatorConfig, Deaggregated, DecodeError,
    HashRange, InputRecord, Options, UserRecord, Verdict, MAGIC,
};
use proptest::prelude::*;

/// One Kinesis record of a batch: its data and partition key.
#[derive(Debug, Clone)]
struct Input {
    data: Vec<u8>,
    key: Vec<u8>,
}

/// What a result is made of, to compare.
type Outcome<'a> = Result<(Verdict, Vec<UserRecord<'a>>), DecodeError>;

fn outcome(result: Result<Deaggregated<'_>, DecodeError>) -> Outcome<'_> {
    result.map(|d| (d.verdict(), d.collect()))
}

fn framed(protobuf: &[u8]) -> Vec<u8> {
    let mut data = MAGIC.to_vec();
    data.extend_from_slice(protobuf);
    data.extend_from_slice(&kpl_codec::md5(protobuf));
    data
}

/// Aggregates of 1 to `n` user records (one record goes out raw, as KPL does), with
/// explicit hash keys on some, sizes that put the protobuf on every side of a block.
fn aggregates() -> impl Strategy<Value = Vec<Input>> {
    let user = (
        "[a-z]{1,4}",
        prop::option::weighted(0.2, any::<u128>().prop_map(|v| v.to_string())),
        prop_oneof![
            3 => prop::collection::vec(any::<u8>(), 0..80),
            1 => prop::collection::vec(any::<u8>(), 100..3000),
        ],
    );
    (prop::collection::vec(user, 1..30), 1u64..8).prop_map(|(users, max_count)| {
        let config = AggregatorConfig {
            max_count,
            ..AggregatorConfig::default()
        };
        let mut aggregator = Aggregator::new(config).unwrap();
        let mut out = Vec::new();
        for (key, ehk, data) in &users {
            let mut record = InputRecord::new(key, data);
            if let Some(ehk) = ehk {
                record = record.with_explicit_hash_key(ehk);
            }
            out.extend(aggregator.add(record).unwrap());
        }
        out.extend(aggregator.drain());
        out.into_iter()
            .map(|r| Input {
                data: r.data,
                key: r.partition_key.into_bytes(),
            })
            .collect()
    })
}

/// Anything a consumer can be handed.
fn input() -> impl Strategy<Value = Vec<Input>> {
    prop_oneof![
        // Valid aggregates (and raw single records).
        6 => aggregates(),
        // An aggregate with one byte changed anywhere: a wrong MD5, or a bad magic.
        2 => (aggregates(), any::<prop::sample::Index>(), 1u8..=255).prop_map(|(mut inputs, at, flip)| {
            let first = &mut inputs[0].data;
            if !first.is_empty() {
                let i = at.index(first.len());
                first[i] ^= flip;
            }
            inputs
        }),
        // Framed bytes with a correct MD5 that may not parse.
        2 => prop::collection::vec(any::<u8>(), 0..200)
            .prop_map(|protobuf| vec![Input { data: framed(&protobuf), key: b"g".to_vec() }]),
        // The magic and at most 16 bytes (too short), or plain bytes.
        1 => prop::collection::vec(any::<u8>(), 0..=16).prop_map(|rest| {
            let mut data = MAGIC.to_vec();
            data.extend(rest);
            vec![Input { data, key: b"s".to_vec() }]
        }),
        1 => prop::collection::vec(any::<u8>(), 0..100)
            .prop_map(|data| vec![Input { data, key: b"p".to_vec() }]),
    ]
}

fn options() -> impl Strategy<Value = Options> {
    (
        prop::bool::ANY,
        prop::bool::ANY,
        prop::option::weighted(0.3, (any::<u128>(), any::<u128>())),
    )
        .prop_map(|(strict, verify, range)| {
            let mut options = if strict {
                Options::strict()
            } else {
                Options::kcl()
            };
            if !verify {
                options = options.without_md5_check();
            }
            if let Some((a, b)) = range {
                options = options.with_shard_range(HashRange::new(a.min(b), a.max(b)));
            }
            options
        })
}

fn check_batch(inputs: &[Input], options: &Options) -> Result<(), TestCaseError> {
    let pairs: Vec<(&[u8], &[u8])> = inputs
        .iter()
        .map(|i| (i.data.as_slice(), i.key.as_slice()))
        .collect();
    let batch = deaggregate_batch(&pairs, options);
    prop_assert_eq!(batch.len(), pairs.len());
    for (i, (result, &(data, key))) in batch.into_iter().zip(&pairs).enumerate() {
        let one = outcome(deaggregate(data, key, options));
        prop_assert_eq!(outcome(result), one, "input {} of {}", i, pairs.len());
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn batch_equals_one_at_a_time(
        parts in prop::collection::vec(input(), 0..12),
        options in options(),
    ) {
        let inputs: Vec<Input> = parts.into_iter().flatten().collect();
        check_batch(&inputs, &options)?;
    }
}

/// Enough aggregates to fill every lane of the widest kernel several times, with a wrong
/// MD5 in the middle, under both policies.
#[test]
fn large_batch_with_one_bad_digest() {
    println!(
        "deaggregate_batch hashes with {}",
        if cfg!(feature = "simd") {
            "kpl-md5 (multi-lane)"
        } else {
            "md-5, one at a time (no `simd` feature)"
        }
    );
    let mut inputs = Vec::new();
    for n in 0..100usize {
        let mut aggregator = Aggregator::new(AggregatorConfig::default()).unwrap();
        for i in 0..(n % 7 + 2) {
            let key = format!("key-{n}-{i}");
            let data = vec![n as u8; (n * 37 + i * 101) % 2000];
            assert!(aggregator
                .add(InputRecord::new(&key, &data))
                .unwrap()
                .is_none());
        }
        let record = aggregator.flush().unwrap();
        inputs.push(Input {
            data: record.data,
            key: record.partition_key.into_bytes(),
        });
    }
    let last = inputs[50].data.len() - 1;
    inputs[50].data[last] ^= 1;
    for options in [Options::kcl(), Options::strict()] {
        check_batch(&inputs, &options).unwrap();
    }
    let pairs: Vec<(&[u8], &[u8])> = inputs
        .iter()
        .map(|i| (i.data.as_slice(), i.key.as_slice()))
        .collect();
    let strict = deaggregate_batch(&pairs, &Options::strict());
    assert!(matches!(strict[50], Err(DecodeError::Md5Mismatch { .. })));
    assert_eq!(strict.iter().filter(|r| r.is_err()).count(), 1);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    /// Deferred digests, sealed per batch of any size, give exactly what `add`/`flush`
    /// emit (aggregates and raw records alike).
    #[test]
    fn seal_all_equals_add_and_flush(
        users in prop::collection::vec(("[a-c]{1,2}", prop::collection::vec(any::<u8>(), 0..300)), 0..60),
        max_count in 1u64..10,
        batch in 1usize..40,
    ) {
        let config = AggregatorConfig { max_count, ..AggregatorConfig::default() };
        let (mut plain, mut deferred) = (Aggregator::new(config).unwrap(), Aggregator::new(config).unwrap());
        let (mut sealed, mut unsealed) = (Vec::new(), Vec::new());
        for (key, data) in &users {
            sealed.extend(plain.add(InputRecord::new(key, data)).unwrap());
            unsealed.extend(deferred.add_unsealed(InputRecord::new(key, data)).unwrap());
        }
        sealed.extend(plain.drain());
        unsealed.extend(std::iter::from_fn(|| deferred.flush_unsealed()));
        let mut resealed = Vec::new();
        while !unsealed.is_empty() {
            let rest = unsealed.split_off(batch.min(unsealed.len()));
            resealed.extend(kpl_codec::seal_all(std::mem::replace(&mut unsealed, rest)));
        }
        prop_assert_eq!(resealed, sealed);
    }
}
