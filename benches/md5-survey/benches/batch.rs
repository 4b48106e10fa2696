//! Multi-lane MD5: the digests of a batch of independent messages, md-5 0.10 one at a time
//! against md5-many 0.1.0-alpha.4 (`md5_many`), md5-simd 0.2.0 (`hash_many`) and kpl-md5
//! with each backend this CPU has forced. Same batches for all (fixed-seed lengths and
//! bytes); every implementation's digests are checked against md-5 before measuring.

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use kpl_md5::Backend;

/// SplitMix64: the batches are the same on every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> usize {
        (self.next() % n) as usize
    }
}

/// (group name, message lengths): 100 B and 1 KB messages, mixed lengths, and the sizes
/// of the KPL benchmark corpora's aggregates (`small`: about 11 KB, `large`: about 51 KB).
fn shapes(rng: &mut Rng) -> Vec<(&'static str, Vec<usize>)> {
    vec![
        ("batch-100B-x10000", vec![100; 10_000]),
        ("batch-1KB-x10000", vec![1000; 10_000]),
        (
            "batch-mixed-100B-5KB-x10000",
            (0..10_000).map(|_| 100 + rng.below(4900)).collect(),
        ),
        (
            "batch-11KB-x182",
            (0..182).map(|_| 10_500 + rng.below(1000)).collect(),
        ),
        (
            "batch-51KB-x40",
            (0..40).map(|_| 51_300 + rng.below(100)).collect(),
        ),
    ]
}

fn md5_010(data: &[u8]) -> [u8; 16] {
    use md5_010::{Digest, Md5};
    Md5::digest(data).into()
}

fn batch(c: &mut Criterion) {
    let mut rng = Rng(13);
    for (name, lengths) in shapes(&mut rng) {
        let data: Vec<Vec<u8>> = lengths
            .iter()
            .map(|&len| (0..len).map(|_| rng.next() as u8).collect())
            .collect();
        let messages: Vec<&[u8]> = data.iter().map(Vec::as_slice).collect();
        let bytes: usize = lengths.iter().sum();
        let want: Vec<[u8; 16]> = messages.iter().map(|m| md5_010(m)).collect();
        let mut out = vec![[0u8; 16]; messages.len()];
        let many = md5_many::Md5Many::new();
        let simd = md5_simd::Md5Engine::new();
        many.hash_many(&messages, &mut out);
        assert_eq!(out, want, "md5-many");
        simd.hash_many(&messages, &mut out);
        assert_eq!(out, want, "md5-simd");

        let mut group = c.benchmark_group(name);
        group.throughput(Throughput::Bytes(bytes as u64));
        group.bench_function("md-5 0.10 one at a time", |b| {
            b.iter(|| {
                for (message, out) in messages.iter().zip(out.iter_mut()) {
                    *out = md5_010(black_box(message));
                }
            })
        });
        group.bench_function("md5-many 0.1.0-alpha.4", |b| {
            b.iter(|| many.hash_many(black_box(&messages), &mut out))
        });
        group.bench_function("md5-simd 0.2.0", |b| {
            b.iter(|| simd.hash_many(black_box(&messages), &mut out))
        });
        for backend in [Backend::Avx2, Backend::Avx512] {
            if kpl_md5::digest_many_with(backend, &messages, &mut out).is_err() {
                eprintln!("{name}: skipping kpl-md5 {backend}: this CPU lacks it");
                continue;
            }
            assert_eq!(out, want, "kpl-md5 {backend}");
            group.bench_function(format!("kpl-md5 {backend}"), |b| {
                b.iter(|| kpl_md5::digest_many_with(backend, black_box(&messages), &mut out))
            });
        }
        group.finish();
    }
}

criterion_group! {
    name = batches;
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .sample_size(20);
    targets = batch
}
criterion_main!(batches);
