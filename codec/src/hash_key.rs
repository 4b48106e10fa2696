//! 128-bit hash keys: derived from partition keys, or given explicitly as decimal text.
//!
//! ```
//! use kpl_codec::{hash_key, parse_explicit_hash_key, HashRange};
//!
//! assert_eq!(hash_key(b"abcd"), 0xE2FC714C4727EE9395F324CD2E7F331F);
//! assert_eq!(parse_explicit_hash_key("000123"), Ok(123));
//! assert!(parse_explicit_hash_key("+1").is_err());
//! assert!(HashRange::FULL.contains(u128::MAX));
//! assert_eq!("0-1000".parse(), Ok(HashRange::new(0, 1000)));
//! ```

use core::fmt;
use core::str::FromStr;

use crate::error::{EncodeError, HashRangeError};

/// The hash key Kinesis derives from a partition key: the MD5 of its UTF-8 bytes, read as
/// an unsigned big-endian 128-bit integer.
pub fn hash_key(partition_key: &[u8]) -> u128 {
    u128::from_be_bytes(crate::md5(partition_key))
}

/// [`hash_key`] of every partition key of `partition_keys` into the same index of `out`,
/// the MD5s computed side by side in SIMD lanes with the `simd` feature
/// ([`crate::md5_many`]): for a producer that routes many user records at once.
///
/// ```
/// use kpl_codec::{hash_key, hash_keys};
/// let mut out = [0u128; 3];
/// hash_keys(&[b"a", b"b", b"user-17"], &mut out);
/// assert_eq!(out, [hash_key(b"a"), hash_key(b"b"), hash_key(b"user-17")]);
/// ```
///
/// # Panics
///
/// If `out` and `partition_keys` differ in length.
pub fn hash_keys(partition_keys: &[&[u8]], out: &mut [u128]) {
    assert_eq!(
        partition_keys.len(),
        out.len(),
        "one hash key per partition key"
    );
    let mut digests = alloc::vec![[0u8; 16]; partition_keys.len()];
    crate::md5_many(partition_keys, &mut digests);
    for (out, digest) in out.iter_mut().zip(digests) {
        *out = u128::from_be_bytes(digest);
    }
}

/// The hash key KCL computes for a partition key taken from an aggregate's table: MD5 of
/// the key after Java's lossy UTF-8 decoding and re-encoding. Equal to [`hash_key`] for
/// valid UTF-8; for invalid UTF-8 each malformed sequence becomes U+FFFD the way Java 17's
/// `new String(bytes, UTF_8)` replaces it (an encoded surrogate `ED A0 80` is ONE U+FFFD).
///
/// ```
/// use kpl_codec::{hash_key, kcl_hash_key};
/// assert_eq!(kcl_hash_key(b"abcd"), hash_key(b"abcd"));
/// assert_eq!(kcl_hash_key(&[0xED, 0xA0, 0x80]), hash_key("\u{FFFD}".as_bytes()));
/// ```
pub fn kcl_hash_key(partition_key: &[u8]) -> u128 {
    hash_key(crate::java::utf8_lossy(partition_key).as_bytes())
}

/// Parses an explicit hash key as the encoder accepts it: one or more ASCII digits
/// (leading zeros allowed), value at most 2^128 - 1. No sign, no spaces.
///
/// The canonical form of a key is the decimal printing of the returned value
/// (`u128`'s `Display`).
pub fn parse_explicit_hash_key(text: &str) -> Result<u128, EncodeError> {
    if text.is_empty() {
        return Err(EncodeError::InvalidExplicitHashKey { offset: 0 });
    }
    let mut value: u128 = 0;
    for (offset, byte) in text.bytes().enumerate() {
        if !byte.is_ascii_digit() {
            return Err(EncodeError::InvalidExplicitHashKey { offset });
        }
        value = value
            .checked_mul(10)
            .and_then(|v| v.checked_add(u128::from(byte - b'0')))
            .ok_or(EncodeError::InvalidExplicitHashKey { offset: text.len() })?;
    }
    Ok(value)
}

/// The decimal text of 2^128 - 1, the largest hash key.
const MAX_DECIMAL: &[u8] = b"340282366920938463463374607431768211455";

/// Whether `text` is 1 or more ASCII digits (leading zeros allowed) with a value of at
/// most 2^128 - 1: what [`parse_explicit_hash_key`] accepts, checked without arithmetic.
#[inline]
pub(crate) fn is_decimal_hash_key(text: &[u8]) -> bool {
    // Branch-free over the bytes, so the loop vectorizes.
    let non_digits = text
        .iter()
        .fold(0u8, |acc, &b| acc | u8::from(b.wrapping_sub(b'0') > 9));
    if text.is_empty() || non_digits != 0 {
        return false;
    }
    let significant = canonical_decimal(text);
    significant.len() < MAX_DECIMAL.len()
        || (significant.len() == MAX_DECIMAL.len() && significant <= MAX_DECIMAL)
}

/// `text` (decimal digits) without its leading zeros, keeping at least one digit.
pub(crate) fn canonical_decimal(text: &[u8]) -> &[u8] {
    let zeros = text.iter().take_while(|&&b| b == b'0').count();
    let keep = zeros.min(text.len().saturating_sub(1));
    text.get(keep..).unwrap_or(text)
}

/// The canonical decimal text of a hash key, written into `buf` without allocating.
///
/// ```
/// let mut buf = [0u8; 39];
/// assert_eq!(kpl_codec::write_decimal(u128::MAX, &mut buf),
///            "340282366920938463463374607431768211455");
/// ```
pub fn write_decimal(mut value: u128, buf: &mut [u8; 39]) -> &str {
    let mut start = buf.len();
    loop {
        start -= 1;
        buf[start] = b'0' + (value % 10) as u8;
        value /= 10;
        if value == 0 || start == 0 {
            break;
        }
    }
    // Only ASCII digits were written.
    core::str::from_utf8(&buf[start..]).unwrap_or("0")
}

/// An inclusive range of hash keys, such as a shard's `[StartingHashKey, EndingHashKey]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct HashRange {
    /// First hash key in the range.
    pub start: u128,
    /// Last hash key in the range (inclusive).
    pub end: u128,
}

impl HashRange {
    /// Every hash key: `[0, 2^128 - 1]`.
    pub const FULL: HashRange = HashRange {
        start: 0,
        end: u128::MAX,
    };

    /// The range `[start, end]`.
    pub const fn new(start: u128, end: u128) -> Self {
        HashRange { start, end }
    }

    /// Whether `key` lies in the range.
    pub const fn contains(&self, key: u128) -> bool {
        self.start <= key && key <= self.end
    }
}

/// Reads `START-END`: two decimal hash keys as [`parse_explicit_hash_key`] accepts them
/// (leading zeros allowed; no sign, no spaces), joined by one `-`, with `START <= END`.
/// This is how a shard's range is written on a command line or in a setting.
///
/// ```
/// use kpl_codec::{HashRange, HashRangeError};
///
/// let range: HashRange = "007-340282366920938463463374607431768211455".parse()?;
/// assert_eq!(range, HashRange::new(7, u128::MAX));
/// assert_eq!("5-3".parse::<HashRange>(), Err(HashRangeError::StartAfterEnd { start: 5, end: 3 }));
/// assert_eq!("1-2-3".parse::<HashRange>(), Err(HashRangeError::InvalidEnd { offset: 3 }));
/// # Ok::<(), HashRangeError>(())
/// ```
impl FromStr for HashRange {
    type Err = HashRangeError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let (start, end) = text.split_once('-').ok_or(HashRangeError::MissingDash)?;
        let start = parse_explicit_hash_key(start).map_err(|e| HashRangeError::InvalidStart {
            offset: key_offset(e),
        })?;
        let end_at = text.len() - end.len();
        let end = parse_explicit_hash_key(end).map_err(|e| HashRangeError::InvalidEnd {
            offset: end_at + key_offset(e),
        })?;
        if start > end {
            return Err(HashRangeError::StartAfterEnd { start, end });
        }
        Ok(HashRange::new(start, end))
    }
}

/// The offset in the key text of a [`parse_explicit_hash_key`] error.
fn key_offset(error: EncodeError) -> usize {
    match error {
        EncodeError::InvalidExplicitHashKey { offset } => offset,
        _ => 0,
    }
}

/// Writes `START-END` in canonical decimal, the text [`HashRange`]'s `FromStr` reads back.
impl fmt::Display for HashRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.start, self.end)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::ToString;

    #[test]
    fn anchors_from_the_format_notes() {
        assert_eq!(hash_key(b"abcd"), 0xE2FC714C4727EE9395F324CD2E7F331F);
        assert_eq!(hash_key(b"a"), 16955237001963240173058271559858726497);
    }

    #[test]
    fn explicit_hash_key_syntax() {
        assert_eq!(parse_explicit_hash_key("0"), Ok(0));
        assert_eq!(parse_explicit_hash_key("000"), Ok(0));
        let max = u128::MAX.to_string();
        assert_eq!(parse_explicit_hash_key(&max), Ok(u128::MAX));
        let over = "340282366920938463463374607431768211456";
        assert_eq!(
            parse_explicit_hash_key(over),
            Err(EncodeError::InvalidExplicitHashKey { offset: 39 })
        );
        for bad in ["", "+1", "-1", " 1", "1 ", "1.0", "0x10", "١"] {
            assert!(parse_explicit_hash_key(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn the_arithmetic_free_check_agrees_with_the_parser() {
        let mut cases: alloc::vec::Vec<alloc::string::String> = [
            "",
            "0",
            "00",
            "007",
            "1a",
            "+1",
            " 1",
            "340282366920938463463374607431768211455",
            "0340282366920938463463374607431768211455",
            "340282366920938463463374607431768211456",
            "999999999999999999999999999999999999999",
            "1000000000000000000000000000000000000000",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        for v in [0u128, 1, 10, u64::MAX as u128, u128::MAX - 1, u128::MAX] {
            cases.push(v.to_string());
            cases.push(alloc::format!("000{v}"));
        }
        for case in &cases {
            assert_eq!(
                is_decimal_hash_key(case.as_bytes()),
                parse_explicit_hash_key(case).is_ok(),
                "{case:?}"
            );
            if let Ok(v) = parse_explicit_hash_key(case) {
                assert_eq!(canonical_decimal(case.as_bytes()), v.to_string().as_bytes());
            }
        }
    }

    #[test]
    fn hash_ranges_from_text() {
        let ok = |text: &str| text.parse::<HashRange>();
        assert_eq!(ok("0-0"), Ok(HashRange::new(0, 0)));
        assert_eq!(ok("00-010"), Ok(HashRange::new(0, 10)));
        let full = alloc::format!("0-{}", u128::MAX);
        assert_eq!(ok(&full), Ok(HashRange::FULL));
        // Each defect, with the byte it is at in the whole text.
        let cases: [(&str, HashRangeError); 12] = [
            ("", HashRangeError::MissingDash),
            ("1", HashRangeError::MissingDash),
            ("-1", HashRangeError::InvalidStart { offset: 0 }),
            ("1-", HashRangeError::InvalidEnd { offset: 2 }),
            ("a-b", HashRangeError::InvalidStart { offset: 0 }),
            ("12-3b", HashRangeError::InvalidEnd { offset: 4 }),
            ("1-2-3", HashRangeError::InvalidEnd { offset: 3 }),
            ("+1-2", HashRangeError::InvalidStart { offset: 0 }),
            ("1 - 2", HashRangeError::InvalidStart { offset: 1 }),
            (" 1-2", HashRangeError::InvalidStart { offset: 0 }),
            (
                "340282366920938463463374607431768211456-0",
                HashRangeError::InvalidStart { offset: 39 },
            ),
            ("2-1", HashRangeError::StartAfterEnd { start: 2, end: 1 }),
        ];
        for (text, error) in cases {
            assert_eq!(ok(text), Err(error), "{text:?}");
        }
        let over = "0-340282366920938463463374607431768211456";
        assert_eq!(ok(over), Err(HashRangeError::InvalidEnd { offset: 41 }));
    }

    #[test]
    fn hash_ranges_print_as_they_parse() {
        for range in [
            HashRange::new(0, 0),
            HashRange::new(7, 1000),
            HashRange::FULL,
        ] {
            assert_eq!(range.to_string().parse(), Ok(range));
        }
        assert_eq!(HashRange::new(7, 1000).to_string(), "7-1000");
    }

    #[test]
    fn decimal_printing_round_trips() {
        let mut buf = [0u8; 39];
        for v in [0u128, 9, 10, 12345, u64::MAX as u128, u128::MAX] {
            assert_eq!(write_decimal(v, &mut buf), v.to_string());
        }
    }
}
