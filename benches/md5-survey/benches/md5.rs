//! MD5 throughput of each implementation over 10,000-byte and 100-byte inputs.

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};

fn input(len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (i.wrapping_mul(131) ^ (i >> 7)) as u8)
        .collect()
}

fn survey(c: &mut Criterion) {
    let expected = md5_crate_08::compute(b"abc").0;
    assert_eq!(md5_010_digest(b"abc"), expected);
    assert_eq!(md5_011_digest(b"abc"), expected);
    assert_eq!(md5_crate_07::compute(b"abc").0, expected);
    #[cfg(feature = "openssl")]
    assert_eq!(openssl_digest(b"abc"), expected);

    for (name, len) in [("10KB", 10_000usize), ("100B", 100)] {
        let data = input(len);
        let mut group = c.benchmark_group(format!("md5-{name}"));
        group.throughput(Throughput::Bytes(len as u64));
        let md5_010_name = if cfg!(feature = "asm") {
            "md-5 0.10 asm"
        } else {
            "md-5 0.10"
        };
        group.bench_function(md5_010_name, |b| {
            b.iter(|| md5_010_digest(black_box(&data)))
        });
        if !cfg!(feature = "asm") {
            group.bench_function("md-5 0.11", |b| b.iter(|| md5_011_digest(black_box(&data))));
            group.bench_function("md5 0.7", |b| {
                b.iter(|| md5_crate_07::compute(black_box(&data)).0)
            });
            group.bench_function("md5 0.8", |b| {
                b.iter(|| md5_crate_08::compute(black_box(&data)).0)
            });
            #[cfg(feature = "openssl")]
            group.bench_function("openssl", |b| b.iter(|| openssl_digest(black_box(&data))));
            // One EVP context reused across digests (finish() re-initialises it).
            #[cfg(feature = "openssl")]
            group.bench_function("openssl reused", |b| {
                let mut hasher =
                    openssl::hash::Hasher::new(openssl::hash::MessageDigest::md5()).expect("md5");
                b.iter(|| {
                    hasher.update(black_box(&data)).expect("md5");
                    hasher.finish().expect("md5")
                })
            });
        }
        group.finish();
    }
}

fn md5_010_digest(data: &[u8]) -> [u8; 16] {
    use md5_010::{Digest, Md5};
    Md5::digest(data).into()
}

fn md5_011_digest(data: &[u8]) -> [u8; 16] {
    use md5_011::{Digest, Md5};
    Md5::digest(data).into()
}

#[cfg(feature = "openssl")]
fn openssl_digest(data: &[u8]) -> [u8; 16] {
    let digest = openssl::hash::hash(openssl::hash::MessageDigest::md5(), data).expect("md5");
    let mut out = [0; 16];
    out.copy_from_slice(&digest);
    out
}

criterion_group! {
    name = md5;
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    targets = survey
}
criterion_main!(md5);
