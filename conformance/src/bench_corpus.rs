//! Deterministic corpora for benchmarks (the `benches/` criterion suite and
//! `kpl conformance --bench`): user records drawn by a fixed-seed generator and aggregated
//! by kpl-codec, so every run measures the same bytes.

use kpl_codec::{Aggregator, AggregatorConfig, InputRecord, KinesisRecord};

/// Kinesis record bytes per shape (the corpus stops at the first whole aggregate past it).
pub const TARGET_BYTES: usize = 2_000_000;

/// SplitMix64: a fixed-seed generator, so every run benchmarks the same bytes.
pub struct SplitMix64(pub u64);

impl SplitMix64 {
    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number below `n`.
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }

    /// `len` random bytes.
    pub fn bytes(&mut self, len: usize) -> Vec<u8> {
        let mut out = Vec::with_capacity(len + 8);
        while out.len() < len {
            out.extend_from_slice(&self.next_u64().to_le_bytes());
        }
        out.truncate(len);
        out
    }

    /// A UUID-shaped partition key (36 characters).
    pub fn uuid(&mut self) -> String {
        let v = (u128::from(self.next_u64()) << 64) | u128::from(self.next_u64());
        let h = format!("{v:032x}");
        format!(
            "{}-{}-{}-{}-{}",
            &h[0..8],
            &h[8..12],
            &h[12..16],
            &h[16..20],
            &h[20..32]
        )
    }
}

#[derive(Clone, Copy)]
/// How a shape draws its keys.
pub enum Keys {
    /// Partition keys drawn from a pool of this many; no explicit hash keys.
    Pool(usize),
    /// Every user record has its own partition key and its own explicit hash key.
    Distinct,
}

/// One corpus shape.
pub struct ShapeSpec {
    /// The shape's name (`small`, `large`, `distinct`).
    pub name: &'static str,
    /// User records per aggregate.
    pub per_aggregate: usize,
    /// Bytes of data per user record.
    pub data_len: usize,
    /// How partition and explicit hash keys are drawn.
    pub keys: Keys,
    /// The generator's seed.
    pub seed: u64,
}

/// The three shapes: `small`, `large`, `distinct`.
pub const SHAPES: [ShapeSpec; 3] = [
    ShapeSpec {
        name: "small",
        per_aggregate: 100,
        data_len: 100,
        keys: Keys::Pool(20),
        seed: 1,
    },
    ShapeSpec {
        name: "large",
        per_aggregate: 5,
        data_len: 10 * 1024,
        keys: Keys::Pool(20),
        seed: 2,
    },
    ShapeSpec {
        name: "distinct",
        per_aggregate: 100,
        data_len: 100,
        keys: Keys::Distinct,
        seed: 3,
    },
];

/// A user record, owned.
pub struct User {
    /// Partition key.
    pub partition_key: String,
    /// Explicit hash key, if any.
    pub explicit_hash_key: Option<String>,
    /// Data.
    pub data: Vec<u8>,
}

impl User {
    /// The record as the aggregator takes it.
    pub fn input(&self) -> InputRecord<'_> {
        let record = InputRecord::new(&self.partition_key, &self.data);
        match &self.explicit_hash_key {
            Some(ehk) => record.with_explicit_hash_key(ehk),
            None => record,
        }
    }
}

/// A shape's corpus: the aggregator's limits, the user records in order, the Kinesis
/// records they aggregate to (every one holding exactly `per_aggregate` user records),
/// and the total bytes of Kinesis record data.
pub struct Built {
    /// The aggregator's limits.
    pub config: AggregatorConfig,
    /// The user records, in order.
    pub users: Vec<User>,
    /// The Kinesis records.
    pub records: Vec<KinesisRecord>,
    /// Bytes of Kinesis record data.
    pub bytes: usize,
}

/// Builds the corpus of `spec` (about [`TARGET_BYTES`] of Kinesis record data).
pub fn build(spec: &ShapeSpec) -> Built {
    let mut rng = SplitMix64(0x6B70_6C2D_6265_6E63 ^ spec.seed);
    let pool: Vec<String> = match spec.keys {
        Keys::Pool(n) => (0..n)
            .map(|i| format!("device-{i:02}-{:08x}", rng.next_u64() as u32))
            .collect(),
        Keys::Distinct => Vec::new(),
    };
    let config = AggregatorConfig {
        max_size: 1024 * 1024,
        max_count: spec.per_aggregate as u64,
        ..AggregatorConfig::default()
    };
    let mut aggregator = Aggregator::new(config).unwrap_or_else(|e| panic!("{e}"));
    let mut users = Vec::new();
    let mut records = Vec::new();
    let mut bytes = 0;
    while bytes < TARGET_BYTES {
        for _ in 0..spec.per_aggregate {
            let user = match spec.keys {
                Keys::Pool(n) => User {
                    partition_key: pool[rng.below(n)].clone(),
                    explicit_hash_key: None,
                    data: rng.bytes(spec.data_len),
                },
                Keys::Distinct => {
                    let ehk = (u128::from(rng.next_u64()) << 64) | u128::from(rng.next_u64());
                    User {
                        partition_key: rng.uuid(),
                        explicit_hash_key: Some(ehk.to_string()),
                        data: rng.bytes(spec.data_len),
                    }
                }
            };
            if let Some(record) = aggregator
                .add(user.input())
                .unwrap_or_else(|e| panic!("{e}"))
            {
                bytes += record.data.len();
                records.push(record);
            }
            users.push(user);
        }
    }
    Built {
        config,
        users,
        records,
        bytes,
    }
}
