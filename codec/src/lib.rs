//! # kpl-codec
//!
//! A zero-copy codec for the Kinesis Producer Library (KPL) *aggregated record format*:
//! the 4-byte magic `F3 89 9A C2`, a proto2 `AggregatedRecord`, and the MD5 of that
//! protobuf.
//!
//! - [`deaggregate()`] turns one Kinesis record's data into user records that borrow from
//!   the input, under a [`Policy`]: [`Policy::Kcl`] behaves exactly like the Kinesis Client
//!   Library (passthrough of anything it cannot parse, keep-then-drop on a bad index, the
//!   all-or-nothing hash-range filter); [`Policy::Strict`] reports every defect as a typed
//!   [`DecodeError`] with its byte offset.
//! - [`Aggregator`] turns user records into the Kinesis records Java KPL would put for them,
//!   byte for byte, split where KPL splits.
//! - [`hash_key()`] and friends compute and parse 128-bit hash keys.
//! - [`view`] exposes the parsed structure (tables, records, offsets) for tools.
//!
//! The crate is sans-IO and builds `no_std` (with `alloc`) when the default `std` feature
//! is turned off. [`deaggregate_batch()`] decodes many Kinesis records at once; with the
//! optional `simd` feature (Rust 1.89) it hashes them side by side in SIMD lanes
//! ([`md5_many()`]).
//!
//! ```
//! use kpl_codec::{deaggregate, Aggregator, AggregatorConfig, InputRecord, Options};
//!
//! // Aggregate two user records the way KPL would...
//! let mut aggregator = Aggregator::new(AggregatorConfig::default())?;
//! aggregator.add(InputRecord::new("user-1", b"hello"))?;
//! aggregator.add(InputRecord::new("user-2", b"world"))?;
//! let kinesis_records: Vec<_> = aggregator.drain().collect();
//! assert_eq!(kinesis_records.len(), 1);
//! let record = &kinesis_records[0];
//! assert_eq!(record.partition_key, "a");
//!
//! // ...and read them back the way KCL would.
//! let users: Vec<_> = deaggregate(&record.data, record.partition_key.as_bytes(), &Options::kcl())?
//!     .collect();
//! assert_eq!(users.len(), 2);
//! assert_eq!(users[1].partition_key_str(), Ok("user-2"));
//! assert_eq!(users[1].data, b"world");
//! assert_eq!(users[1].sub_sequence_number, 1);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![no_std]
#![deny(missing_docs)]
#![forbid(unsafe_code)]

extern crate alloc;
#[cfg(any(feature = "std", test))]
extern crate std;

// Each item has one path: the root for the main API, `view` for the parsed structure.
mod aggregate;
mod deaggregate;
mod error;
mod hash_key;
mod java;
pub mod view;
mod wire;

pub use aggregate::{seal_all, Aggregator, AggregatorConfig, InputRecord, KinesisRecord, Unsealed};
pub use deaggregate::{
    deaggregate, deaggregate_batch, kcl_text, Deaggregated, Options, PlainReason, Policy,
    UserRecord, Verdict,
};
pub use error::{DecodeError, EncodeError, HashRangeError};
pub use hash_key::{
    hash_key, hash_keys, kcl_hash_key, parse_explicit_hash_key, write_decimal, HashRange,
};

/// The four bytes that start every aggregated record.
pub const MAGIC: [u8; 4] = [0xF3, 0x89, 0x9A, 0xC2];

/// Length of the MD5 digest that ends every aggregated record.
pub const DIGEST_LEN: usize = 16;

/// Bytes an aggregate adds around its protobuf: the magic and the digest.
pub const FRAME_OVERHEAD: usize = MAGIC.len() + DIGEST_LEN;

/// MD5 of `bytes`, the digest used both for the frame check and for hash keys.
pub fn md5(bytes: &[u8]) -> [u8; 16] {
    use md5::{Digest, Md5};
    Md5::digest(bytes).into()
}

/// The MD5 of each message of `messages` into the same index of `out`: with the `simd`
/// feature, side by side in SIMD lanes (`kpl_md5::digest_many`: AVX-512 or AVX2 when the
/// CPU has them); without it, one at a time with [`md5()`]. Same digests either way.
///
/// ```
/// let mut out = [[0u8; 16]; 2];
/// kpl_codec::md5_many(&[b"a", b"abc"], &mut out);
/// assert_eq!(out, [kpl_codec::md5(b"a"), kpl_codec::md5(b"abc")]);
/// ```
///
/// # Panics
///
/// If `out` and `messages` differ in length.
pub fn md5_many(messages: &[&[u8]], out: &mut [[u8; 16]]) {
    #[cfg(feature = "simd")]
    kpl_md5::digest_many(messages, out);
    #[cfg(not(feature = "simd"))]
    {
        assert_eq!(messages.len(), out.len(), "one output digest per message");
        for (message, out) in messages.iter().zip(out) {
            *out = md5(message);
        }
    }
}

/// The README's Rust examples, compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
pub struct ReadmeDoctests;

/// The crate README's examples, compiled as doc tests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct CrateReadmeDoctests;
