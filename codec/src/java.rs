//! Bit-exact reproductions of the Java (JDK 17) library behaviour that the
//! Kinesis Client Library relies on when it de-aggregates KPL records.
//!
//! KCL decodes protobuf `string` fields with
//! `new String(bytes, StandardCharsets.UTF_8)` and parses explicit hash keys
//! with `new java.math.BigInteger(String)`. Both differ from the obvious Rust
//! equivalents in edge cases:
//!
//! * Java's UTF-8 decoder replaces malformed input with U+FFFD using its own
//!   rules for how many bytes one replacement character consumes (for example
//!   an encoded surrogate such as `ED A0 80` becomes a single U+FFFD, where
//!   [`alloc::string::String::from_utf8_lossy`] produces three).
//! * `BigInteger` accepts any UTF-16 code unit for which
//!   `Character.digit(c, 10) >= 0`, which includes the non-ASCII decimal
//!   digits of many scripts (but no supplementary-plane digits).
//!
//! The functions here were checked differentially against a real JDK 17.

use alloc::borrow::Cow;
use alloc::string::String;

/// The replacement character Java's decoder substitutes for malformed input.
const REPLACEMENT: char = '\u{FFFD}';

/// Decodes `bytes` exactly as JDK 17's `new String(bytes, UTF_8)` does.
///
/// Valid UTF-8 is borrowed unchanged. Malformed or truncated sequences are
/// replaced by U+FFFD following the JDK's decoder, which differs from
/// [`alloc::string::String::from_utf8_lossy`] in how many bytes each
/// replacement character covers.
pub(crate) fn utf8_lossy(bytes: &[u8]) -> Cow<'_, str> {
    match core::str::from_utf8(bytes) {
        Ok(text) => Cow::Borrowed(text),
        Err(error) => Cow::Owned(decode_lossy(bytes, error.valid_up_to())),
    }
}

/// Slow path of [`utf8_lossy`]: decodes `bytes` whose first `valid_up_to`
/// bytes are known to be valid UTF-8 and which contain at least one error.
fn decode_lossy(bytes: &[u8], valid_up_to: usize) -> String {
    let mut out = String::with_capacity(bytes.len().saturating_add(8));
    let (prefix, mut rest) = bytes.split_at(valid_up_to.min(bytes.len()));
    if let Ok(prefix) = core::str::from_utf8(prefix) {
        out.push_str(prefix);
    } else {
        // Unreachable given `valid_up_to`; decode from the start instead.
        rest = bytes;
    }
    while !rest.is_empty() {
        let (decoded, consumed) = decode_one(rest);
        out.push(decoded);
        // `consumed` is always in 1..=rest.len(); `get` keeps this panic-free
        // and guarantees progress even if that invariant were broken.
        rest = rest.get(consumed.max(1)..).unwrap_or(&[]);
    }
    out
}

/// Returns whether `byte` is a UTF-8 continuation byte (`10xx_xxxx`).
const fn is_continuation(byte: u8) -> bool {
    byte & 0xC0 == 0x80
}

/// Returns whether `second` cannot follow the three-byte lead `lead`
/// (not a continuation byte, or an overlong `E0` encoding).
const fn bad_second_of_three(lead: u8, second: u8) -> bool {
    !is_continuation(second) || (lead == 0xE0 && second < 0xA0)
}

/// Returns whether `second` cannot follow the four-byte lead `lead`
/// (not a continuation byte, an overlong `F0` encoding, or above U+10FFFF
/// after an `F4`).
const fn bad_second_of_four(lead: u8, second: u8) -> bool {
    !is_continuation(second) || (lead == 0xF0 && second < 0x90) || (lead == 0xF4 && second > 0x8F)
}

/// Decodes one character (or one U+FFFD) from the non-empty `rest`, returning
/// it together with the number of bytes it consumed (between 1 and
/// `rest.len()`), following JDK 17's UTF-8 decoder.
fn decode_one(rest: &[u8]) -> (char, usize) {
    match *rest {
        [lead, ..] if lead < 0x80 => (char::from(lead), 1),
        // Two-byte sequences: C2..DF followed by one continuation byte.
        [lead @ 0xC2..=0xDF, second, ..] if is_continuation(second) => {
            let scalar = (u32::from(lead & 0x1F) << 6) | u32::from(second & 0x3F);
            (char::from_u32(scalar).unwrap_or(REPLACEMENT), 2)
        }
        // Three-byte sequences: E0..EF.
        [lead @ 0xE0..=0xEF, second, third, ..] => {
            if bad_second_of_three(lead, second) {
                (REPLACEMENT, 1)
            } else if !is_continuation(third) {
                (REPLACEMENT, 2)
            } else {
                let scalar = (u32::from(lead & 0x0F) << 12)
                    | (u32::from(second & 0x3F) << 6)
                    | u32::from(third & 0x3F);
                // An encoded surrogate (ED A0..BF xx) is one U+FFFD for all
                // three bytes; `from_u32` rejects exactly the surrogates here.
                (char::from_u32(scalar).unwrap_or(REPLACEMENT), 3)
            }
        }
        // Truncated three-byte sequence at the end of the input.
        [lead @ 0xE0..=0xEF, second] => {
            if bad_second_of_three(lead, second) {
                (REPLACEMENT, 1)
            } else {
                (REPLACEMENT, 2)
            }
        }
        // Four-byte sequences: F0..F4 (F5..F7 are never valid leads).
        [lead @ 0xF0..=0xF4, second, ref tail @ ..] => {
            if bad_second_of_four(lead, second) {
                return (REPLACEMENT, 1);
            }
            match *tail {
                [third, fourth, ..] => {
                    if !is_continuation(third) {
                        (REPLACEMENT, 2)
                    } else if !is_continuation(fourth) {
                        (REPLACEMENT, 3)
                    } else {
                        let scalar = (u32::from(lead & 0x07) << 18)
                            | (u32::from(second & 0x3F) << 12)
                            | (u32::from(third & 0x3F) << 6)
                            | u32::from(fourth & 0x3F);
                        (char::from_u32(scalar).unwrap_or(REPLACEMENT), 4)
                    }
                }
                // Truncated at the end of the input after three bytes.
                [third] => {
                    if is_continuation(third) {
                        (REPLACEMENT, 3)
                    } else {
                        (REPLACEMENT, 2)
                    }
                }
                // Truncated at the end of the input after two bytes.
                [] => (REPLACEMENT, 2),
            }
        }
        // Anything else (stray continuation bytes, C0, C1, F5..FF, a lone
        // lead byte at the end, a lead followed by a non-continuation byte)
        // replaces exactly one byte. (`[]` is never passed in.)
        [..] => (REPLACEMENT, 1),
    }
}

/// Outcome of parsing a decimal string the way `new BigInteger(String)` does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BigIntegerParse {
    /// Java parses the text to a value in `0..=2^128-1`.
    Value(u128),
    /// Java parses the text, but the value is negative or exceeds `2^128-1`.
    OutOfRange,
    /// Java throws `NumberFormatException`.
    Invalid,
}

/// The 37 UTF-16 code units for which `Character.digit(c, 10) == 0` in
/// JDK 17 (Unicode `Nd` zeros in the BMP); the digits one to nine follow each
/// of them consecutively.
const ZERO_DIGITS: [u16; 37] = [
    0x0030, 0x0660, 0x06F0, 0x07C0, 0x0966, 0x09E6, 0x0A66, 0x0AE6, 0x0B66, 0x0BE6, 0x0C66, 0x0CE6,
    0x0D66, 0x0DE6, 0x0E50, 0x0ED0, 0x0F20, 0x1040, 0x1090, 0x17E0, 0x1810, 0x1946, 0x19D0, 0x1A80,
    0x1A90, 0x1B50, 0x1BB0, 0x1C40, 0x1C50, 0xA620, 0xA8D0, 0xA900, 0xA9D0, 0xA9F0, 0xAA50, 0xABF0,
    0xFF10,
];

/// Returns `Character.digit(c, 10)` for `c`, or `None` where Java returns -1.
///
/// Characters outside the BMP are never digits for `BigInteger`, which looks
/// at UTF-16 code units (surrogates are not digits).
fn decimal_digit(c: char) -> Option<u8> {
    let unit = u16::try_from(u32::from(c)).ok()?;
    // ZERO_DIGITS is sorted: find the last zero not greater than `unit`.
    let index = match ZERO_DIGITS.binary_search(&unit) {
        Ok(_) => return Some(0),
        Err(insert_at) => insert_at.checked_sub(1)?,
    };
    let zero = *ZERO_DIGITS.get(index)?;
    let offset = unit.checked_sub(zero)?;
    if offset <= 9 {
        u8::try_from(offset).ok()
    } else {
        None
    }
}

/// Parses `text` with the semantics of Java's `new BigInteger(text)`.
///
/// The text is an optional single leading `+` or `-` followed by one or more
/// characters that `Character.digit(c, 10)` accepts (including non-ASCII BMP
/// decimal digits); anything else, including whitespace, is
/// [`BigIntegerParse::Invalid`]. Values that parse but do not fit in a `u128`
/// (negative values, or values above `2^128-1`) are
/// [`BigIntegerParse::OutOfRange`]; `-0` is zero. Arbitrarily long inputs are
/// handled without overflow or allocation.
pub(crate) fn parse_big_integer(text: &str) -> BigIntegerParse {
    let (negative, digits) = match text.as_bytes().first() {
        Some(b'-') => (true, text.get(1..).unwrap_or("")),
        Some(b'+') => (false, text.get(1..).unwrap_or("")),
        _ => (false, text),
    };
    if digits.is_empty() {
        return BigIntegerParse::Invalid;
    }
    let mut value: u128 = 0;
    let mut overflow = false;
    for c in digits.chars() {
        let Some(digit) = decimal_digit(c) else {
            return BigIntegerParse::Invalid;
        };
        if !overflow {
            // Leading zeros keep `value` at zero, so they are skipped for free.
            match value
                .checked_mul(10)
                .and_then(|v| v.checked_add(u128::from(digit)))
            {
                Some(next) => value = next,
                None => overflow = true,
            }
        }
    }
    if overflow || (negative && value != 0) {
        BigIntegerParse::OutOfRange
    } else {
        BigIntegerParse::Value(value)
    }
}

#[cfg(test)]
mod tests {
    //! Expected values below were produced by `OpenJDK` 17.0.15
    //! (`new String(bytes, UTF_8)` and `new BigInteger(String)`).

    use super::{parse_big_integer, utf8_lossy, BigIntegerParse};
    use alloc::borrow::Cow;
    use alloc::string::String;
    use alloc::vec::Vec;

    /// Builds a string of `count` replacement characters.
    fn repl(count: usize) -> String {
        "\u{FFFD}".repeat(count)
    }

    #[test]
    fn valid_utf8_is_borrowed() {
        for input in [
            &b""[..],
            b"ABC",
            b"\xC3\xA9",
            b"\xED\x9F\xBF",
            b"\xEF\xBF\xBF",
            b"\xF0\x9F\x98\x80",
            b"\xF4\x8F\xBF\xBF",
        ] {
            let decoded = utf8_lossy(input);
            assert!(matches!(decoded, Cow::Borrowed(_)));
            assert_eq!(decoded.as_bytes(), input);
        }
    }

    #[test]
    fn malformed_utf8_matches_java() {
        let cases: &[(&[u8], String)] = &[
            // Encoded surrogates: one U+FFFD for all three bytes.
            (b"\xED\xA0\x80", repl(1)),
            (b"\xED\xBF\xBF\xED\xB0\x80", repl(2)),
            (b"\xED\xA0\x41", repl(1) + "A"),
            (b"\xED\xA0", repl(1)),
            // Overlong and out-of-range sequences: one U+FFFD per byte.
            (b"\xE0\x80\x80", repl(3)),
            (b"\xE0\x9F\xBF", repl(3)),
            (b"\xF0\x80\x80\x80", repl(4)),
            (b"\xF4\x90\x80\x80", repl(4)),
            (b"\xF5\x80\x80\x80", repl(4)),
            (b"\xF7\xBF\xBF\xBF", repl(4)),
            (b"\xC0\x80", repl(2)),
            (b"\xC1\xBF", repl(2)),
            (b"\xF8\x80", repl(2)),
            (b"\xFE\xFF", repl(2)),
            (b"\x80\xBF", repl(2)),
            (b"A\xFFB", String::from("A") + &repl(1) + "B"),
            // Truncated sequences.
            (b"\xC2", repl(1)),
            (b"\xE1\x80", repl(1)),
            (b"\xE2\x82", repl(1)),
            (b"\xF0\x90", repl(1)),
            (b"\xF0\x90\x80", repl(1)),
            (b"\xE1\x41", repl(1) + "A"),
            (b"\xF0\x90\x41", repl(1) + "A"),
            (b"\xF0\x90\x80\x41", repl(1) + "A"),
            (b"\xE1\x80\xC2\xA9", repl(1) + "\u{A9}"),
            (b"\xF1\x80\x80\xC3\xA9", repl(1) + "\u{E9}"),
        ];
        for (input, expected) in cases {
            let decoded = utf8_lossy(input);
            assert!(matches!(decoded, Cow::Owned(_)), "{input:02X?}");
            assert_eq!(decoded, expected.as_str(), "{input:02X?}");
        }
    }

    #[test]
    fn big_integer_matches_java() {
        use BigIntegerParse::{Invalid, OutOfRange, Value};
        let cases: &[(&str, BigIntegerParse)] = &[
            ("0", Value(0)),
            ("-0", Value(0)),
            ("-000", Value(0)),
            ("+0", Value(0)),
            ("+42", Value(42)),
            ("00000000000000000000000001", Value(1)),
            ("\u{661}\u{662}", Value(12)),
            ("\u{FF11}", Value(1)),
            ("\u{660}", Value(0)),
            ("-\u{660}", Value(0)),
            ("\u{967}\u{968}\u{969}", Value(123)),
            ("1\u{FF10}\u{660}", Value(100)),
            ("\u{BE6}", Value(0)),
            ("\u{BE7}", Value(1)),
            ("340282366920938463463374607431768211455", Value(u128::MAX)),
            ("340282366920938463463374607431768211456", OutOfRange),
            ("-340282366920938463463374607431768211455", OutOfRange),
            ("-1", OutOfRange),
            ("-5", OutOfRange),
            ("-\u{661}", OutOfRange),
            ("", Invalid),
            ("+", Invalid),
            ("-", Invalid),
            (" 1", Invalid),
            ("1 ", Invalid),
            ("\t1", Invalid),
            ("\u{A0}1", Invalid),
            ("+-1", Invalid),
            ("1-", Invalid),
            ("--1", Invalid),
            ("++1", Invalid),
            ("1a", Invalid),
            ("1_000", Invalid),
            ("0x10", Invalid),
            ("\u{1D7CF}", Invalid),
            ("\u{B2}", Invalid),
            ("\u{2460}", Invalid),
        ];
        for (text, expected) in cases {
            assert_eq!(parse_big_integer(text), *expected, "{text:?}");
        }
    }

    #[test]
    fn big_integer_long_inputs() {
        let mut zeros = "0".repeat(1000);
        zeros.push('5');
        assert_eq!(parse_big_integer(&zeros), BigIntegerParse::Value(5));
        let negative = String::from("-") + &zeros;
        assert_eq!(parse_big_integer(&negative), BigIntegerParse::OutOfRange);
        let nines = "9".repeat(10_000);
        assert_eq!(parse_big_integer(&nines), BigIntegerParse::OutOfRange);
        let mut bad: Vec<u8> = nines.into_bytes();
        bad.push(b'x');
        let bad = String::from_utf8(bad).unwrap_or_default();
        assert_eq!(parse_big_integer(&bad), BigIntegerParse::Invalid);
    }
}
