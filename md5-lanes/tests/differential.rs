//! Every backend this machine supports against the md-5 crate (one message at a time),
//! and the RFC 1321 test suite. Each test prints which backends it ran and which it
//! skipped because the CPU lacks them (`cargo test -p kpl-md5 -- --nocapture`), and
//! `backends_report` fails when an x86-64 CPU that has AVX2 was not tested with it.

use kpl_md5::{digest, digest_many, digest_many_with, Backend};
use proptest::prelude::*;

/// The backends this CPU runs, after saying which are tested and which are skipped.
fn backends(test: &str) -> Vec<Backend> {
    let (run, skipped): (Vec<Backend>, Vec<Backend>) =
        Backend::ALL.into_iter().partition(|b| b.is_supported());
    let names = |list: &[Backend]| list.iter().map(|b| b.name()).collect::<Vec<_>>().join(", ");
    println!("{test}: ran backends [{}]", names(&run));
    if !skipped.is_empty() {
        println!(
            "{test}: SKIPPED backends [{}]: this CPU lacks them",
            names(&skipped)
        );
    }
    run
}

/// md-5 over each message: the reference.
fn reference(messages: &[&[u8]]) -> Vec<[u8; 16]> {
    messages.iter().map(|m| digest(m)).collect()
}

fn check(backend: Backend, messages: &[&[u8]], what: &str) {
    let mut out = vec![[0u8; 16]; messages.len()];
    digest_many_with(backend, messages, &mut out).unwrap();
    let want = reference(messages);
    for (i, (got, want)) in out.iter().zip(&want).enumerate() {
        assert_eq!(
            got,
            want,
            "{backend}: {what}: message {i} of {} ({} bytes)",
            messages.len(),
            messages[i].len()
        );
    }
}

/// Bytes that differ from one message to the next and from one position to the next.
fn pattern(seed: usize, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (i.wrapping_mul(31) ^ seed.wrapping_mul(131) ^ (i >> 8)) as u8)
        .collect()
}

fn hex(digest: &[u8; 16]) -> String {
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn rfc_1321_test_suite() {
    let suite: [(&str, &str); 7] = [
        ("", "d41d8cd98f00b204e9800998ecf8427e"),
        ("a", "0cc175b9c0f1b6a831c399e269772661"),
        ("abc", "900150983cd24fb0d6963f7d28e17f72"),
        ("message digest", "f96b697d7cb7938d525a2f31aaf161d0"),
        (
            "abcdefghijklmnopqrstuvwxyz",
            "c3fcd3d76192e4007dfb496cca67e13b",
        ),
        (
            "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789",
            "d174ab98d277d9f5a5611c2c9f419d9f",
        ),
        (
            "12345678901234567890123456789012345678901234567890123456789012345678901234567890",
            "57edf4a22be3c955ac49da2e2107b67a",
        ),
    ];
    let messages: Vec<&[u8]> = suite.iter().map(|(m, _)| m.as_bytes()).collect();
    for backend in backends("rfc_1321_test_suite") {
        let mut out = vec![[0u8; 16]; messages.len()];
        digest_many_with(backend, &messages, &mut out).unwrap();
        for ((message, want), got) in suite.iter().zip(&out) {
            assert_eq!(hex(got), *want, "{backend}: MD5(\"{message}\")");
        }
        // And each one alone, in a lane of its own.
        for (message, want) in suite {
            let mut one = [[0u8; 16]];
            digest_many_with(backend, &[message.as_bytes()], &mut one).unwrap();
            assert_eq!(hex(&one[0]), want, "{backend} alone: MD5(\"{message}\")");
        }
    }
}

/// Every length where the padding changes shape (55/56: one or two tail blocks; 63/64,
/// 119/120, 127/128: whole blocks), each as a batch of equal lengths and all of them
/// mixed in one batch, at every batch size up to 40 (idle lanes, narrowing kernels).
#[test]
fn boundary_lengths() {
    let mut lengths = vec![0, 1, 55, 56, 57, 63, 64, 65, 119, 120, 121, 127, 128, 129];
    lengths.extend([191, 192, 1000, 4096, 10_000, 65_537]);
    let data: Vec<Vec<u8>> = (0..40)
        .map(|seed| pattern(seed, *lengths.iter().max().unwrap()))
        .collect();
    for backend in backends("boundary_lengths") {
        for &len in &lengths {
            let messages: Vec<&[u8]> = data.iter().map(|d| &d[..len]).collect();
            for size in [1, 2, 3, 7, 8, 9, 16, 17, 32, 33, 40] {
                check(backend, &messages[..size], &format!("{size} x {len} B"));
            }
        }
        let mixed: Vec<&[u8]> = data
            .iter()
            .enumerate()
            .map(|(i, d)| &d[..lengths[i % lengths.len()]])
            .collect();
        for size in 1..=mixed.len() {
            check(backend, &mixed[..size], "mixed boundary lengths");
        }
    }
}

#[test]
fn empty_messages_and_duplicates() {
    let long = pattern(7, 3000);
    let mut messages: Vec<&[u8]> = vec![b""; 50];
    for i in (0..50).step_by(3) {
        messages[i] = &long;
    }
    messages[49] = &long[..56];
    for backend in backends("empty_messages_and_duplicates") {
        check(backend, &messages, "empty and duplicate messages");
        check(backend, &messages[..1], "one empty message");
    }
}

/// One long message among many short ones: its lane works alone at the end, after the
/// kernel narrowed, and every other lane is refilled many times.
#[test]
fn long_message_among_short_ones() {
    let long = pattern(1, 200_000);
    let short: Vec<Vec<u8>> = (0..300).map(|i| pattern(i, i % 150)).collect();
    for position in [0, 150, 300] {
        let mut messages: Vec<&[u8]> = short.iter().map(Vec::as_slice).collect();
        messages.insert(position, &long);
        for backend in backends("long_message_among_short_ones") {
            check(backend, &messages, &format!("long message at {position}"));
        }
    }
}

/// `digest_many` (whatever backend it picks) agrees too, including the sizes it hashes
/// one at a time.
#[test]
fn digest_many_agrees() {
    println!("digest_many_agrees: digest_many uses {}", Backend::active());
    let data: Vec<Vec<u8>> = (0..100).map(|i| pattern(i, i * 37)).collect();
    let messages: Vec<&[u8]> = data.iter().map(Vec::as_slice).collect();
    for size in 0..messages.len() {
        let mut out = vec![[0u8; 16]; size];
        digest_many(&messages[..size], &mut out);
        assert_eq!(out, reference(&messages[..size]), "{size} messages");
    }
}

#[test]
fn unsupported_backends_are_refused() {
    for backend in Backend::ALL {
        let mut out = [[0u8; 16]];
        let result = digest_many_with(backend, &[b"x"], &mut out);
        assert_eq!(result.is_ok(), backend.is_supported(), "{backend}");
    }
    assert!(Backend::Scalar.is_supported());
}

/// On x86-64, a CPU with AVX2 must have been tested with it (the CI machine does), and
/// the report names what ran.
#[test]
fn backends_report() {
    let ran = backends("backends_report");
    if cfg!(target_arch = "x86_64") && std::is_x86_feature_detected!("avx2") {
        assert!(ran.contains(&Backend::Avx2));
    }
    if cfg!(target_arch = "x86_64")
        && std::is_x86_feature_detected!("avx512f")
        && std::is_x86_feature_detected!("avx512vl")
    {
        assert!(ran.contains(&Backend::Avx512));
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Random batches: random sizes (lanes going idle mid-batch), random lengths, random
    /// bytes, every backend.
    #[test]
    fn random_batches(
        lengths in prop::collection::vec(prop_oneof![0usize..200, 0usize..3000], 0..80),
        seed in any::<u64>(),
    ) {
        let data: Vec<Vec<u8>> = lengths
            .iter()
            .enumerate()
            .map(|(i, &len)| pattern(seed as usize ^ i, len))
            .collect();
        let messages: Vec<&[u8]> = data.iter().map(Vec::as_slice).collect();
        let want = reference(&messages);
        for backend in Backend::ALL.into_iter().filter(|b| b.is_supported()) {
            let mut out = vec![[0u8; 16]; messages.len()];
            digest_many_with(backend, &messages, &mut out).unwrap();
            prop_assert_eq!(&out, &want, "{}", backend);
        }
    }
}
