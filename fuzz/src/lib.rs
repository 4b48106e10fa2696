//! The properties the fuzz targets check, as plain functions (so a crash input can be
//! replayed in a unit test). Each panics when a property does not hold.

use arbitrary::Arbitrary;
use kpl_codec::{
    deaggregate, parse_explicit_hash_key, write_decimal, AggregatorConfig, HashRange,
    Options, Verdict,
};
use kpl_oracle::differential::check_strict;
use kpl_oracle::reducer::User;
use kpl_oracle::{frame, AggregatedRecord};
use prost::Message;

/// Strict decoding of arbitrary bytes: framed as an aggregate (even first byte) or taken
/// as a Kinesis record's data as they are (odd). Never panics; every returned slice lies
/// inside the input; a framed well-formed protobuf agrees with the prost oracle.
pub fn decode_strict(input: &[u8]) {
    let Some((&mode, body)) = input.split_first() else {
        return;
    };
    let data = if mode & 1 == 0 { frame(body) } else { body.to_vec() };
    if let Ok(records) = deaggregate(&data, b"outer", &Options::strict()) {
        let inside = data.as_ptr_range();
        for r in records {
            for slice in [r.data, r.partition_key] {
                if !slice.is_empty() && r.aggregated {
                    assert!(inside.contains(&slice.as_ptr()), "slice outside the input");
                    assert!(
                        slice.as_ptr_range().end <= inside.end,
                        "slice runs past the input"
                    );
                }
            }
        }
    }
    if mode & 1 == 0 {
        let oracle = AggregatedRecord::decode(body);
        if let Err(e) = check_strict(body, oracle) {
            panic!("strict decoder disagrees with the oracle: {e}");
        }
    }
}

/// KCL deaggregation of arbitrary bytes with an arbitrary hash range. Input layout: byte 0
/// flags (bit 0: frame the rest as an aggregate, bit 1: apply the range), bytes 1..33 the
/// range's two ends (big-endian u128, ordered), the rest the record's data or protobuf.
pub fn deaggregate_kcl(input: &[u8]) {
    if input.len() < 33 {
        return;
    }
    let (head, body) = input.split_at(33);
    let flags = head[0];
    let a = u128::from_be_bytes(head[1..17].try_into().unwrap_or_default());
    let b = u128::from_be_bytes(head[17..33].try_into().unwrap_or_default());
    let range = HashRange::new(a.min(b), a.max(b));
    let data = if flags & 1 == 1 { frame(body) } else { body.to_vec() };
    let full = deaggregate(&data, b"pk", &Options::kcl()).expect("KCL never fails");
    let verdict = full.verdict();
    let full: Vec<_> = full.collect();
    if let Verdict::Plain(_) = verdict {
        assert_eq!(full.len(), 1);
        assert_eq!(full[0].data, &data[..], "passthrough must return the input");
        assert!(!full[0].aggregated);
    }
    for (i, r) in full.iter().enumerate() {
        assert_eq!(r.sub_sequence_number, i as u64, "sub-sequence numbers are dense");
    }
    if flags & 2 == 2 {
        let options = Options::kcl().with_shard_range(range);
        let ranged: Vec<_> = deaggregate(&data, b"pk", &options)
            .expect("KCL never fails")
            .collect();
        let plain = matches!(verdict, Verdict::Plain(_));
        if plain || full.iter().all(|r| range.contains(r.hash_key())) {
            assert_eq!(ranged, full, "records all in range must all be kept");
        } else {
            assert!(ranged.is_empty(), "the range filter is all-or-nothing");
        }
    }
}

/// Arbitrary user records and limits for [`roundtrip`].
#[derive(Debug, Arbitrary)]
pub struct RoundtripInput {
    max_size: u16,
    max_count: u8,
    records: Vec<(String, Option<EhkInput>, Vec<u8>)>,
}

/// An explicit hash key: a value printed canonically (with extra leading zeros), or any
/// text at all.
#[derive(Debug, Arbitrary)]
pub enum EhkInput {
    /// Printed in decimal with this many leading zeros.
    Value(u128, u8),
    /// Taken as it is.
    Text(String),
}

/// Aggregation of arbitrary user records under arbitrary limits: every record accepted
/// or rejected by the rules, output byte-identical to the reference reducer, limits held,
/// predicted sizes exact, and a strict round trip that loses and duplicates nothing.
pub fn roundtrip(input: RoundtripInput) {
    let config = AggregatorConfig {
        max_size: 64 + usize::from(input.max_size % 4096),
        max_count: 1 + u64::from(input.max_count % 16),
        max_record_size: 64 + usize::from(input.max_size % 4096) + usize::from(input.max_count),
    };
    let users: Vec<User> = input
        .records
        .into_iter()
        .map(|(pk, ehk, data)| User {
            pk,
            ehk: ehk.map(|e| match e {
                EhkInput::Value(v, zeros) => {
                    "0".repeat(usize::from(zeros % 4)) + &v.to_string()
                }
                EhkInput::Text(t) => t,
            }),
            data,
        })
        .collect();
    if let Err(e) = kpl_oracle::differential::check_aggregation(&users, config) {
        panic!("{e}");
    }
}

/// Explicit hash key parsing of arbitrary text, and printing of arbitrary values.
pub fn hash_key(input: &[u8]) {
    if let Ok(text) = std::str::from_utf8(input) {
        let digits = !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit());
        match parse_explicit_hash_key(text) {
            Ok(v) => {
                assert!(digits, "accepted {text:?}");
                let stripped = text.trim_start_matches('0');
                let canonical = if stripped.is_empty() { "0" } else { stripped };
                assert_eq!(v.to_string(), canonical);
            }
            Err(_) => {
                let stripped = text.trim_start_matches('0');
                let too_big = stripped.len() > 39
                    || (stripped.len() == 39 && stripped > "340282366920938463463374607431768211455");
                assert!(!digits || too_big, "rejected {text:?}");
            }
        }
    }
    let mut bytes = [0u8; 16];
    for (dst, src) in bytes.iter_mut().zip(input) {
        *dst = *src;
    }
    let value = u128::from_be_bytes(bytes);
    let mut buf = [0u8; 39];
    let printed = write_decimal(value, &mut buf);
    assert_eq!(printed, value.to_string());
    assert_eq!(parse_explicit_hash_key(printed), Ok(value), "parse(print(x)) == x");
}

pub mod fluent_bit;
pub mod lease_coordinator;
pub mod md5_batch;
pub mod serve;
pub mod sink_core;
pub mod source_core;
pub use fluent_bit::fluent_bit_chunk;
pub use lease_coordinator::{lease_coordinator, LeaseCoordinatorInput};
pub use serve::serve_request;
pub use sink_core::{sink_core, SinkCoreInput};
pub use source_core::{source_core, SourceCoreInput};
