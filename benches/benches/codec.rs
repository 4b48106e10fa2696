//! Criterion benchmarks of kpl-codec (see `benches/README.md`).
//!
//! Three corpus shapes of about 2 MB of Kinesis record data each, built with
//! `kpl_codec::Aggregator` from a fixed-seed generator; one criterion group per shape, so
//! that the ratios between functions come from one run:
//!
//! - `md5`: MD5 alone (`kpl_codec::md5`, the md-5 crate) over every Kinesis record's data,
//!   the limit of a verifying decoder on one core;
//! - `decode_verified` / `decode_unverified`: `deaggregate` under `Options::strict()`, with
//!   and without the MD5 check, iterating every user record;
//! - `deaggregate_kcl`: `Options::kcl()` (MD5 checked), iterating every user record;
//! - `prost_owned`: the naive port: check the magic, skip the MD5, decode with prost into
//!   owned structs (`String` keys), resolve each record's keys and data;
//! - `encode`: the same user records through an `Aggregator`, drained.
//! - `md5_lanes_avx2` / `md5_lanes_avx512`: multi-lane MD5 (`kpl_md5::digest_many_with`)
//!   over the same bytes as `md5`, every Kinesis record of the corpus in one batch;
//! - `decode_verified_batch_avx2` / `decode_verified_batch_avx512`: `deaggregate_batch`
//!   under `Options::strict()`, the whole corpus as one batch (a GetRecords page of about
//!   2 MB), its MD5s multi-lane with that backend, iterating every user record.
//!
//! - `encode_batch`: `encode` with the digests deferred (`Aggregator::add_unsealed`) and
//!   written by `kpl_codec::seal_all` per PutRecords batch of 500 Kinesis records, as a
//!   sink does (multi-lane MD5, best backend).
//!
//! A backend the CPU lacks is skipped with a message on standard error.
//!
//! Every function's throughput is the Kinesis record bytes it reads (for `encode`: writes)
//! and the user records it yields (consumes). The shapes' sizes are also written to
//! `<criterion dir>/kpl-shapes.json` for `benches/report.py`.

use std::hint::black_box;
use std::path::PathBuf;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, SamplingMode, Throughput};
use kpl_codec::{
    deaggregate, deaggregate_batch, Aggregator, AggregatorConfig, KinesisRecord, Options,
};
use kpl_conformance::bench_corpus::{build, Built, Keys, ShapeSpec, User, SHAPES};
use kpl_md5::Backend;
use md5::{Digest, Md5};
use prost::Message;

/// The naive port's message types: prost structs with `string` keys, as a port generated
/// from the `.proto` would have (proto2 `required` fields included).
mod naive {
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct AggregatedRecord {
        #[prost(string, repeated, tag = "1")]
        pub partition_key_table: Vec<String>,
        #[prost(string, repeated, tag = "2")]
        pub explicit_hash_key_table: Vec<String>,
        #[prost(message, repeated, tag = "3")]
        pub records: Vec<Record>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Record {
        #[prost(uint64, required, tag = "1")]
        pub partition_key_index: u64,
        #[prost(uint64, optional, tag = "2")]
        pub explicit_hash_key_index: Option<u64>,
        #[prost(bytes = "vec", required, tag = "3")]
        pub data: Vec<u8>,
        #[prost(message, repeated, tag = "4")]
        pub tags: Vec<Tag>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Tag {
        #[prost(string, required, tag = "1")]
        pub key: String,
        #[prost(string, optional, tag = "2")]
        pub value: Option<String>,
    }
}

struct Corpus {
    spec: &'static ShapeSpec,
    config: AggregatorConfig,
    users: Vec<User>,
    records: Vec<KinesisRecord>,
    bytes: u64,
}

impl Corpus {
    fn build(spec: &'static ShapeSpec) -> Corpus {
        let Built {
            config,
            users,
            records,
            bytes,
        } = build(spec);
        assert_eq!(
            users.len(),
            records.len() * spec.per_aggregate,
            "{}: aggregates must be whole",
            spec.name
        );
        for record in &records {
            assert_eq!(record.user_records, spec.per_aggregate, "{}", spec.name);
            assert!(record.is_aggregated());
        }
        let corpus = Corpus {
            spec,
            config,
            users,
            records,
            bytes: bytes as u64,
        };
        corpus.check();
        corpus
    }

    fn user_records(&self) -> u64 {
        self.users.len() as u64
    }

    fn throughput(&self) -> Throughput {
        Throughput::ElementsAndBytes {
            elements: self.user_records(),
            bytes: self.bytes,
        }
    }

    /// Every decoder sees exactly the user records that were aggregated, and the encoder
    /// reproduces the corpus: the benchmarks measure equal work.
    fn check(&self) {
        type Flat = Vec<(Vec<u8>, Option<Vec<u8>>, Vec<u8>)>;
        let expected: Flat = self
            .users
            .iter()
            .map(|u| {
                (
                    u.partition_key.as_bytes().to_vec(),
                    u.explicit_hash_key.as_ref().map(|k| k.as_bytes().to_vec()),
                    u.data.clone(),
                )
            })
            .collect();
        for options in [
            Options::strict(),
            Options::strict().without_md5_check(),
            Options::kcl(),
        ] {
            let mut got: Flat = Vec::new();
            for record in &self.records {
                for u in deaggregate(&record.data, b"a", &options).expect("valid aggregate") {
                    assert!(u.aggregated);
                    got.push((
                        u.partition_key.to_vec(),
                        u.explicit_hash_key.map(<[u8]>::to_vec),
                        u.data.to_vec(),
                    ));
                }
            }
            assert!(
                got == expected,
                "{}: deaggregate {options:?}",
                self.spec.name
            );
        }
        let mut oracle: Flat = Vec::new();
        let mut naive: Flat = Vec::new();
        for record in &self.records {
            let protobuf = &record.data[4..record.data.len() - kpl_codec::DIGEST_LEN];
            assert_eq!(kpl_oracle::frame(protobuf), record.data);
            // The md5 baseline is kpl-codec's own MD5: today the md-5 crate.
            let digest: [u8; 16] = Md5::digest(&record.data).into();
            assert_eq!(kpl_codec::md5(&record.data), digest);
            let message = kpl_oracle::AggregatedRecord::decode(protobuf).expect("prost decodes");
            oracle.extend(kpl_oracle::strict_expectation(&message).expect("strictly valid"));
            let message = naive::AggregatedRecord::decode(protobuf).expect("prost decodes");
            for r in &message.records {
                naive.push((
                    message.partition_key_table[r.partition_key_index as usize]
                        .as_bytes()
                        .to_vec(),
                    r.explicit_hash_key_index.map(|i| {
                        message.explicit_hash_key_table[i as usize]
                            .as_bytes()
                            .to_vec()
                    }),
                    r.data.clone(),
                ));
            }
        }
        assert!(oracle == expected, "{}: oracle", self.spec.name);
        assert!(naive == expected, "{}: naive prost", self.spec.name);
        let mut aggregator = Aggregator::new(self.config).expect("valid config");
        let mut again = Vec::new();
        for user in &self.users {
            again.extend(aggregator.add(user.input()).expect("valid record"));
        }
        again.extend(aggregator.drain());
        assert!(again == self.records, "{}: encode", self.spec.name);
        let mut unsealed = Vec::new();
        for user in &self.users {
            unsealed.extend(aggregator.add_unsealed(user.input()).expect("valid record"));
        }
        unsealed.extend(std::iter::from_fn(|| aggregator.flush_unsealed()));
        assert!(
            kpl_codec::seal_all(unsealed) == self.records,
            "{}: encode_batch",
            self.spec.name
        );
        let inputs: Vec<(&[u8], &[u8])> = self
            .records
            .iter()
            .map(|r| (&r.data[..], &b"a"[..]))
            .collect();
        for (record, batch) in self
            .records
            .iter()
            .zip(deaggregate_batch(&inputs, &Options::strict()))
        {
            let one: Vec<_> = deaggregate(&record.data, b"a", &Options::strict())
                .expect("valid")
                .collect();
            assert!(
                batch.expect("valid").collect::<Vec<_>>() == one,
                "{}: decode_verified_batch",
                self.spec.name
            );
        }
    }

    fn json(&self) -> String {
        format!(
            "{{\"per_aggregate\": {}, \"data_len\": {}, \"keys\": \"{}\", \"aggregates\": {}, \"user_records\": {}, \"bytes\": {}}}",
            self.spec.per_aggregate,
            self.spec.data_len,
            match self.spec.keys {
                Keys::Pool(n) => format!("{n} partition keys, no explicit hash keys"),
                Keys::Distinct => "distinct partition and explicit hash keys".to_string(),
            },
            self.records.len(),
            self.user_records(),
            self.bytes,
        )
    }
}

fn decode(records: &[KinesisRecord], options: &Options) {
    for record in records {
        let users = deaggregate(black_box(&record.data), b"a", options).expect("valid aggregate");
        for u in users {
            black_box(u.partition_key.len());
            black_box(u.explicit_hash_key.map(<[u8]>::len));
            black_box(u.data.len());
        }
    }
}

/// `decode` with the records as one batch.
fn decode_batch(records: &[KinesisRecord], options: &Options) {
    let inputs: Vec<(&[u8], &[u8])> = records
        .iter()
        .map(|record| (black_box(&record.data[..]), &b"a"[..]))
        .collect();
    for users in deaggregate_batch(&inputs, options) {
        for u in users.expect("valid aggregate") {
            black_box(u.partition_key.len());
            black_box(u.explicit_hash_key.map(<[u8]>::len));
            black_box(u.data.len());
        }
    }
}

/// The naive port: magic check, MD5 skipped, prost into owned structs, then resolve.
fn prost_owned(records: &[KinesisRecord]) {
    for record in records {
        let data = black_box(&record.data[..]);
        if data.len() <= 4 + kpl_codec::DIGEST_LEN || data[..4] != kpl_codec::MAGIC {
            black_box(data.len());
            continue;
        }
        let protobuf = &data[4..data.len() - kpl_codec::DIGEST_LEN];
        let message = naive::AggregatedRecord::decode(protobuf).expect("prost decodes");
        for r in &message.records {
            let partition_key = message
                .partition_key_table
                .get(r.partition_key_index as usize)
                .expect("partition key index in range");
            let explicit_hash_key = r.explicit_hash_key_index.map(|i| {
                message
                    .explicit_hash_key_table
                    .get(i as usize)
                    .expect("in range")
            });
            black_box(partition_key.len());
            black_box(explicit_hash_key.map(String::len));
            black_box(r.data.len());
        }
    }
}

fn criterion_dir() -> PathBuf {
    // Where criterion writes: $CRITERION_HOME, else $CARGO_TARGET_DIR/criterion, else the
    // workspace's target/criterion.
    if let Some(home) = std::env::var_os("CRITERION_HOME") {
        return PathBuf::from(home);
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../target")));
    target.join("criterion")
}

fn write_shapes(corpora: &[Corpus]) {
    let body: Vec<String> = corpora
        .iter()
        .map(|c| format!("  \"{}\": {}", c.spec.name, c.json()))
        .collect();
    let dir = criterion_dir();
    let written = std::fs::create_dir_all(&dir).and_then(|()| {
        std::fs::write(
            dir.join("kpl-shapes.json"),
            format!("{{\n{}\n}}\n", body.join(",\n")),
        )
    });
    if let Err(e) = written {
        eprintln!(
            "warning: could not write {}: {e}",
            dir.join("kpl-shapes.json").display()
        );
    }
}

fn benches(c: &mut Criterion) {
    let corpora: Vec<Corpus> = SHAPES.iter().map(Corpus::build).collect();
    write_shapes(&corpora);
    for corpus in &corpora {
        let mut group = c.benchmark_group(corpus.spec.name);
        group.sampling_mode(SamplingMode::Flat);
        group.throughput(corpus.throughput());
        let records = &corpus.records[..];

        group.bench_function("md5", |b| {
            b.iter(|| {
                for record in records {
                    black_box(kpl_codec::md5(black_box(&record.data[..])));
                }
            })
        });
        group.bench_function("decode_verified", |b| {
            b.iter(|| decode(records, &Options::strict()))
        });
        group.bench_function("decode_unverified", |b| {
            b.iter(|| decode(records, &Options::strict().without_md5_check()))
        });
        group.bench_function("deaggregate_kcl", |b| {
            b.iter(|| decode(records, &Options::kcl()))
        });
        group.bench_function("prost_owned", |b| b.iter(|| prost_owned(records)));

        let messages: Vec<&[u8]> = records.iter().map(|r| &r.data[..]).collect();
        let mut digests = vec![[0u8; 16]; messages.len()];
        for backend in [Backend::Avx2, Backend::Avx512] {
            if !backend.is_supported() {
                eprintln!(
                    "{}: skipping md5_lanes_{backend} and decode_verified_batch_{backend}: \
                     this CPU lacks {backend}",
                    corpus.spec.name
                );
                continue;
            }
            group.bench_function(format!("md5_lanes_{backend}"), |b| {
                b.iter(|| {
                    kpl_md5::digest_many_with(backend, black_box(&messages), &mut digests)
                        .expect("supported");
                    black_box(&digests);
                })
            });
            kpl_md5::set_max_backend(backend);
            group.bench_function(format!("decode_verified_batch_{backend}"), |b| {
                b.iter(|| decode_batch(records, &Options::strict()))
            });
            kpl_md5::set_max_backend(Backend::Avx512);
        }

        let mut aggregator = Aggregator::new(corpus.config).expect("valid config");
        group.bench_function("encode", |b| {
            b.iter(|| {
                let mut bytes = 0;
                for user in &corpus.users {
                    if let Some(record) = aggregator.add(black_box(user.input())).expect("valid") {
                        bytes += black_box(record).data.len();
                    }
                }
                for record in aggregator.drain() {
                    bytes += black_box(record).data.len();
                }
                assert_eq!(bytes as u64, corpus.bytes);
            })
        });
        group.bench_function("encode_batch", |b| {
            b.iter(|| {
                let mut bytes = 0;
                let mut batch = Vec::with_capacity(500);
                let mut seal = |batch: &mut Vec<kpl_codec::Unsealed>| {
                    for record in kpl_codec::seal_all(std::mem::take(batch)) {
                        bytes += black_box(record).data.len();
                    }
                };
                for user in &corpus.users {
                    let added = aggregator.add_unsealed(black_box(user.input()));
                    if let Some(record) = added.expect("valid") {
                        batch.push(record);
                        if batch.len() == 500 {
                            seal(&mut batch);
                        }
                    }
                }
                batch.extend(std::iter::from_fn(|| aggregator.flush_unsealed()));
                seal(&mut batch);
                assert_eq!(bytes as u64, corpus.bytes);
            })
        });
        group.finish();
    }
}

criterion_group! {
    name = codec;
    // Defaults for a shared 2-core machine; the command line (--warm-up-time,
    // --measurement-time, --sample-size) overrides them.
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .sample_size(30);
    targets = benches
}
criterion_main!(codec);
