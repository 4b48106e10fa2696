//! A record as the bytes Fluent Bit's `kinesis_streams` output sends for it: JSON as
//! Fluent Bit writes it, `log_key`, `time_key` / `time_key_format`, and a trailing `\n`.
//!
//! This reproduces Fluent Bit 5.1.1 built for x86-64 with its defaults
//! (`json.escape_unicode` on, `json.convert_nan_to_null` off), byte for byte, including its
//! quirks (checked against the real thing: `tests/fixtures/kinesis_streams.json`):
//! - JSON (`msgpack2json` in `flb_pack.c`): of keys repeated in a map, only the last is
//!   written (str keys only); keys of any type are written as their JSON (`{1:"a"}`); bin is
//!   written like str; an ext is `"\x01\x02"`, a byte of 0x80 or more as 8 hex digits
//!   (`\xffffff80`, C's signed `char`); a float `f` is `%.1f` when `(long long) f == f`
//!   (`1.0`, `-0.0`, `1000000000000000000.0`), else `%.16g` (`1e+300`, `1.5e-07`, `nan`).
//! - Strings (`flb_utils_write_str`): every character outside ASCII is `\uXXXX` (a UTF-16
//!   surrogate pair above U+FFFF); invalid UTF-8 bytes become U+E000 + byte (private use
//!   area, written raw as UTF-8), except a lead byte whose sequence would run past the end of
//!   the string, which is dropped; `"` `\` and control characters are escaped, and so is
//!   DEL (0x7f), but only outside 16-byte blocks that need no escaping at all (an SSE2
//!   fast path copies those blocks as they are).
//! - `log_key`: every entry whose key is a str or bin that `strncmp(log_key, key, key_len)`
//!   accepts is sent (so a key that is a prefix of `log_key`, the empty key, and keys with a
//!   NUL after `log_key`, match too), and so is an entry with a non-string key after such a
//!   key; the value is sent as its JSON minus the first and last byte (a string's quotes,
//!   but also the braces of a map or a digit of a number).
//! - A value whose JSON has 2 bytes or fewer (`{}`, `""`, `42`) is discarded.
//! - `time_key`: `,"<time_key>":"<time>"}` replaces the last byte of the JSON; the key and
//!   the time are written raw, not escaped. The time is `time_key_format` (default
//!   `%Y-%m-%dT%H:%M:%S`, UTC) through glibc's `strftime`, after Fluent Bit replaces `%3N`
//!   with the milliseconds and `%9N` and `%L` with the nanoseconds. When the time comes out
//!   empty or longer than 12 × the format's length minus 1 (`%c` alone), Fluent Bit means to
//!   send the record without it, and so does this, but 5.1.1 aborts (it frees an
//!   uninitialised pointer): [`FormatOptions::validate`] refuses such formats.
//! - `log_key` and `time_key` together make the output fail at startup.
//!
//! Not reproduced: the size limits (records over 1,048,556 bytes are discarded), and
//! `json.escape_unicode off` (raw UTF-8).

mod number;
mod strftime;

use core::fmt;
use core::ops::Range;
use std::collections::HashSet;
use std::io::Write;

use crate::msgpack::{Event, Value};

pub(crate) use number::write_f;

/// How `kinesis_streams` shapes a record (same option names and defaults).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FormatOptions {
    /// Send only this key's value.
    pub log_key: Option<String>,
    /// Add the event time under this key.
    pub time_key: Option<String>,
    /// strftime format of `time_key` (Fluent Bit's default when `None`).
    pub time_key_format: Option<String>,
}

/// `time_key_format`'s default in `kinesis_streams`.
pub const DEFAULT_TIME_KEY_FORMAT: &str = "%Y-%m-%dT%H:%M:%S";

impl FormatOptions {
    /// Fails where `kinesis_streams` fails at startup (`log_key` and `time_key` together),
    /// and for a `time_key_format` whose text is empty or longer than 12 × its length minus
    /// 1 (`%c`, the empty format): on such a record Fluent Bit 5.1.1 frees an uninitialised
    /// pointer and aborts (seen with `%c`). [`kinesis_streams_records`] sends those records
    /// without the time, as Fluent Bit means to.
    pub fn validate(&self) -> Result<(), FormatError> {
        self.check_keys()?;
        if self.time_key.is_some() {
            let format = self.time_key_format();
            // A date with long names (Wednesday, September) and one with short ones.
            for seconds in [1_695_168_000, 1_683_072_000] {
                let fits = strftime::Tm::gmtime(seconds)
                    .and_then(|tm| strftime::aws_strftime_precision(format.as_bytes(), &tm, 0));
                if fits.is_none() {
                    return Err(FormatError::new(format!(
                        "time_key_format '{format}' gives no text or more than 12 × its \
                         length: kinesis_streams (5.1.1) aborts on such records"
                    )));
                }
            }
        }
        Ok(())
    }

    fn check_keys(&self) -> Result<(), FormatError> {
        if self.log_key.is_some() && self.time_key.is_some() {
            return Err(FormatError::new(
                "'time_key' and 'log_key' can not be used together (kinesis_streams refuses \
                 to start)",
            ));
        }
        Ok(())
    }

    fn time_key_format(&self) -> &str {
        self.time_key_format
            .as_deref()
            .unwrap_or(DEFAULT_TIME_KEY_FORMAT)
    }
}

/// Why a record cannot be formatted (for example: `log_key` missing from it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FormatError {
    /// What is wrong.
    pub message: String,
}

impl FormatError {
    fn new(message: impl Into<String>) -> FormatError {
        FormatError {
            message: message.into(),
        }
    }
}

impl fmt::Display for FormatError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for FormatError {}

/// Appends the bytes `kinesis_streams` would send for `event` to `out`.
///
/// That is one record, except with a `log_key` that matches several entries of the record
/// (see the module documentation): then `kinesis_streams` sends one record per entry, and
/// this returns an error and leaves `out` as it was; [`kinesis_streams_records`] gives them
/// all. Where `kinesis_streams` sends nothing (`log_key` missing, an empty record), the
/// error says why.
pub fn kinesis_streams_data(
    event: &Event<'_>,
    options: &FormatOptions,
    out: &mut Vec<u8>,
) -> Result<(), FormatError> {
    let start = out.len();
    let mut sent = Vec::new();
    kinesis_streams_records(event, options, out, &mut sent)?;
    let mut records = sent.iter().filter(|s| s.is_ok());
    match (records.next(), records.next()) {
        (Some(_), None) => {
            // Only the record's bytes: drop what discarded values left (nothing, today).
            if let Some(Ok(range)) = sent.iter().find(|s| s.is_ok()) {
                out.copy_within(range.clone(), start);
                out.truncate(start + range.len());
            }
            Ok(())
        }
        (None, _) => {
            out.truncate(start);
            Err(sent
                .into_iter()
                .find_map(Result::err)
                .unwrap_or_else(|| FormatError::new("kinesis_streams sends nothing")))
        }
        (Some(_), Some(_)) => {
            out.truncate(start);
            Err(FormatError::new(format!(
                "log_key '{}' matches {} entries of the record: kinesis_streams sends one \
                 record for each",
                options.log_key.as_deref().unwrap_or_default(),
                sent.len()
            )))
        }
    }
}

/// What `kinesis_streams` does with each value it takes from `event`, in order: appends the
/// records' bytes to `out` back to back and pushes `Ok(range of out)` for each record sent,
/// `Err(why)` for each value it discards (Fluent Bit logs a warning for those).
///
/// Without `log_key` there is exactly one entry. With `log_key`, one per matching entry of
/// the record; when none matches, the error (Fluent Bit logs "Could not find log_key") is
/// returned instead. `log_key` and `time_key` together are an error too (check the options
/// once with [`FormatOptions::validate`]).
pub fn kinesis_streams_records(
    event: &Event<'_>,
    options: &FormatOptions,
    out: &mut Vec<u8>,
    sent: &mut Vec<Result<Range<usize>, FormatError>>,
) -> Result<(), FormatError> {
    options.check_keys()?;
    let Some(log_key) = options.log_key.as_deref() else {
        sent.push(one_record(&event.record, event, options, false, out));
        return Ok(());
    };
    let Value::Map(entries) = &event.record else {
        return Err(FormatError::new("the record is not a map"));
    };
    let mut key: Option<&[u8]> = None;
    let mut found = false;
    for (k, v) in entries {
        if let Value::Str(bytes) | Value::Bin(bytes) = k {
            key = Some(bytes);
        }
        // The last str/bin key seen stands in for keys of other types (Fluent Bit does not
        // reset it).
        if key.is_some_and(|key| strncmp_matches(log_key.as_bytes(), key)) {
            found = true;
            sent.push(one_record(v, event, options, true, out));
        }
    }
    if found {
        Ok(())
    } else {
        Err(FormatError::new(format!(
            "Could not find log_key '{log_key}' in record: kinesis_streams sends nothing for it"
        )))
    }
}

/// `strncmp(log_key, key, key.len()) == 0`, `log_key` being a C string.
fn strncmp_matches(log_key: &[u8], key: &[u8]) -> bool {
    for (i, &k) in key.iter().enumerate() {
        let l = log_key.get(i).copied().unwrap_or(0);
        if l != k {
            return false;
        }
        if l == 0 {
            return true;
        }
    }
    true
}

/// `process_event`: one value's record, appended to `out`.
fn one_record(
    value: &Value<'_>,
    event: &Event<'_>,
    options: &FormatOptions,
    strip: bool,
    out: &mut Vec<u8>,
) -> Result<Range<usize>, FormatError> {
    let start = out.len();
    write_json(value, out);
    let written = out.len() - start;
    if written <= 2 {
        out.truncate(start);
        return Err(FormatError::new(
            "kinesis_streams discards a record whose JSON has 2 bytes or fewer (\"Found empty \
             log message\")",
        ));
    }
    if strip {
        // "flb_msgpack_to_json will encase the value in quotes": the first and last bytes go.
        out.pop();
        out.remove(start);
    }
    if let Some(time_key) = options.time_key.as_deref() {
        let Some(tm) = strftime::Tm::gmtime(event.seconds) else {
            out.truncate(start);
            return Err(FormatError::new(format!(
                "Could not create time stamp for {} unix seconds: kinesis_streams discards \
                 the record",
                event.seconds
            )));
        };
        let format = options.time_key_format();
        // None: Fluent Bit logs "Failed to add time_key" and (5.1.1) aborts; see validate.
        if let Some(time) =
            strftime::aws_strftime_precision(format.as_bytes(), &tm, event.nanoseconds)
        {
            // A C string: the key ends at its first NUL.
            let key = time_key
                .as_bytes()
                .split(|b| *b == 0)
                .next()
                .unwrap_or_default();
            out.pop();
            out.extend_from_slice(b",\"");
            out.extend_from_slice(key);
            out.extend_from_slice(b"\":\"");
            out.extend_from_slice(&time);
            out.extend_from_slice(b"\"}");
        }
    }
    out.push(b'\n');
    Ok(start..out.len())
}

/// A value as `flb_msgpack_to_json` writes it (see the module documentation).
pub fn write_json(value: &Value<'_>, out: &mut Vec<u8>) {
    match value {
        Value::Nil => out.extend_from_slice(b"null"),
        Value::Bool(true) => out.extend_from_slice(b"true"),
        Value::Bool(false) => out.extend_from_slice(b"false"),
        Value::Uint(u) => {
            let _ = write!(out, "{u}");
        }
        Value::Int(i) => {
            let _ = write!(out, "{i}");
        }
        Value::F32(f) => number::write_json_float(f64::from(*f), out),
        Value::F64(f) => number::write_json_float(*f, out),
        Value::Str(bytes) | Value::Bin(bytes) => {
            out.push(b'"');
            write_str(bytes, out);
            out.push(b'"');
        }
        Value::Ext(_, data) => {
            out.push(b'"');
            for &byte in *data {
                // "%02x" of a signed char promoted to int.
                let _ = write!(out, "\\x{:02x}", i32::from(byte as i8) as u32);
            }
            out.push(b'"');
        }
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_json(item, out);
            }
            out.push(b']');
        }
        Value::Map(entries) => {
            out.push(b'{');
            let kept = last_of_each_key(entries);
            let mut first = true;
            for ((key, value), keep) in entries.iter().zip(kept) {
                if !keep {
                    continue;
                }
                if !first {
                    out.push(b',');
                }
                first = false;
                write_json(key, out);
                out.push(b':');
                write_json(value, out);
            }
            out.push(b'}');
        }
    }
}

/// Which entries `msgpack2json` writes: all but a str key that appears again later.
fn last_of_each_key(entries: &[(Value<'_>, Value<'_>)]) -> Vec<bool> {
    let mut seen: HashSet<&[u8]> = HashSet::new();
    let mut keep: Vec<bool> = entries
        .iter()
        .rev()
        .map(|(key, _)| match key {
            Value::Str(bytes) => seen.insert(bytes),
            _ => true,
        })
        .collect();
    keep.reverse();
    keep
}

/// `flb_utils_write_str_escaped` as Fluent Bit 5.1.1 runs it on x86-64 (SSE2, signed `char`).
pub fn write_str(s: &[u8], out: &mut Vec<u8>) {
    const BLOCK: usize = 16;
    let plain = |block: &[u8]| {
        block
            .iter()
            .all(|&b| b > 0x1f && b != b'"' && b != b'\\' && b < 0x80)
    };
    let mut i = 0;
    loop {
        // The fast path: blocks that need no escaping are copied as they are.
        let copied = i;
        while s.get(i..i + BLOCK).is_some_and(plain) {
            i += BLOCK;
        }
        out.extend_from_slice(s.get(copied..i).unwrap_or_default());
        // Then up to one block's worth of characters, one by one.
        for _ in 0..BLOCK {
            let Some(&c) = s.get(i) else {
                return;
            };
            if c < 0x80 {
                escape_ascii(c, out);
                i += 1;
                continue;
            }
            // A byte of 0x80 or more is a negative char: the "beyond 0xFFFF" branch.
            let length = sequence_length(c);
            if i + length > s.len() {
                // A sequence cut by the end of the string: its lead byte is dropped, and the
                // one-by-one loop ends here.
                i += 1;
                break;
            }
            i = utf8_sequence(s, i, length, out);
        }
    }
}

fn escape_ascii(c: u8, out: &mut Vec<u8>) {
    match c {
        b'"' => out.extend_from_slice(b"\\\""),
        b'\\' => out.extend_from_slice(b"\\\\"),
        b'\n' => out.extend_from_slice(b"\\n"),
        b'\r' => out.extend_from_slice(b"\\r"),
        b'\t' => out.extend_from_slice(b"\\t"),
        0x08 => out.extend_from_slice(b"\\b"),
        0x0c => out.extend_from_slice(b"\\f"),
        0x00..=0x1f | 0x7f => {
            let _ = write!(out, "\\u{:04x}", c);
        }
        _ => out.push(c),
    }
}

/// `flb_utf8_len`: the sequence length a lead byte announces (1 for a continuation byte, up
/// to 6 for 0xfc..=0xff).
fn sequence_length(lead: u8) -> usize {
    match lead {
        0xc0..=0xdf => 2,
        0xe0..=0xef => 3,
        0xf0..=0xf7 => 4,
        0xf8..=0xfb => 5,
        0xfc..=0xff => 6,
        _ => 1,
    }
}

/// Writes the sequence of `length` bytes at `i` (they are all in `s`) and returns where the
/// next character starts.
fn utf8_sequence(s: &[u8], i: usize, length: usize, out: &mut Vec<u8>) -> usize {
    let mut decoder = Utf8::default();
    let mut taken = 0;
    let mut valid = true;
    while taken < length {
        let Some(&byte) = s.get(i + taken) else {
            break;
        };
        if decoder.push(byte).is_err() {
            valid = false;
            if taken == 0 {
                // An invalid lead byte stands alone.
                taken = 1;
            }
            break;
        }
        taken += 1;
    }
    if valid {
        let cp = decoder.codepoint;
        if cp > 0xffff {
            let v = cp - 0x1_0000;
            let _ = write!(
                out,
                "\\u{:04x}\\u{:04x}",
                0xd800 + (v >> 10),
                0xdc00 + (v & 0x3ff)
            );
        } else {
            let _ = write!(out, "\\u{:04x}", cp);
        }
    } else {
        // Each byte of the bad sequence becomes U+E000 + byte, as UTF-8.
        for &byte in s.get(i..i + taken).unwrap_or_default() {
            out.extend_from_slice(&[0xee, 0x80 | (byte >> 6), 0x80 | (byte & 0x3f)]);
        }
    }
    i + taken
}

/// `flb_utf8_decode`'s state machine: overlong forms are accepted, surrogates and code points
/// past U+10FFFF are not.
#[derive(Default)]
struct Utf8 {
    /// Continuation bytes still expected.
    pending: u32,
    codepoint: u32,
}

impl Utf8 {
    fn push(&mut self, byte: u8) -> Result<(), ()> {
        if self.pending == 0 {
            (self.codepoint, self.pending) = match byte {
                0x00..=0x7f => (u32::from(byte), 0),
                0xc0..=0xdf => (u32::from(byte & 0x1f), 1),
                0xe0..=0xef => (u32::from(byte & 0x0f), 2),
                0xf0..=0xf7 => (u32::from(byte & 0x07), 3),
                _ => return Err(()),
            };
            return Ok(());
        }
        if byte & 0xc0 != 0x80 {
            return Err(());
        }
        self.codepoint = self.codepoint << 6 | u32::from(byte & 0x3f);
        self.pending -= 1;
        if self.pending == 0
            && ((0xd800..=0xdfff).contains(&self.codepoint) || self.codepoint > 0x10_ffff)
        {
            return Err(());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::msgpack::events;

    fn string(bytes: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        write_str(bytes, &mut out);
        out
    }

    #[test]
    fn ascii_escapes() {
        assert_eq!(
            string(b"q\" b\\ s/ \x08\x0c\n\r\t \x00\x01\x0b\x1f\x7f"),
            b"q\\\" b\\\\ s/ \\b\\f\\n\\r\\t \\u0000\\u0001\\u000b\\u001f\\u007f".to_vec()
        );
    }

    #[test]
    fn del_inside_a_plain_block_is_copied() {
        // 16 bytes with nothing else to escape: the SSE2 fast path copies DEL as it is.
        assert_eq!(
            string(b"0123456789abcde\x7f"),
            b"0123456789abcde\x7f".to_vec()
        );
        assert_eq!(
            string(b"0123456789abcd\x7f"),
            b"0123456789abcd\\u007f".to_vec()
        );
        // A block after a slow one: 16 one-by-one characters, then the fast path again.
        let mut input = b"\"123456789abcdef".to_vec();
        input.extend_from_slice(b"0123456789abcde\x7f\x7f");
        let mut expected = b"\\\"123456789abcdef0123456789abcde\x7f\\u007f".to_vec();
        assert_eq!(string(&input), expected);
        // Once a block needs escaping, its DEL is escaped.
        input = b"0123456789abcd\x7f\"".to_vec();
        expected = b"0123456789abcd\\u007f\\\"".to_vec();
        assert_eq!(string(&input), expected);
    }

    #[test]
    fn unicode() {
        assert_eq!(string("é✓".as_bytes()), b"\\u00e9\\u2713".to_vec());
        assert_eq!(string("😀".as_bytes()), b"\\ud83d\\ude00".to_vec());
        // Overlong forms are decoded, not rejected.
        assert_eq!(
            string(b"\xc0\x80 \xe0\x80\xaf"),
            b"\\u0000 \\u002f".to_vec()
        );
    }

    #[test]
    fn invalid_utf8() {
        // A lone continuation byte, and an invalid lead byte with room after it.
        assert_eq!(string(b"\x80abcdef"), b"\xee\x82\x80abcdef".to_vec());
        assert_eq!(string(b"\xffabcdef"), b"\xee\x83\xbfabcdef".to_vec());
        // A lead byte whose sequence runs past the end is dropped.
        assert_eq!(string(b"ab\xff"), b"ab".to_vec());
        assert_eq!(string(b"ab\xc3"), b"ab".to_vec());
        // The cut 4-byte lead goes; its continuation bytes are invalid lead bytes.
        assert_eq!(
            string(b"\xf0\x9f\x98"),
            b"\xee\x82\x9f\xee\x82\x98".to_vec()
        );
        // A bad continuation: the good prefix is mapped, the bad byte starts over.
        assert_eq!(string(b"\xc3(x"), b"\xee\x83\x83(x".to_vec());
        // A surrogate is rejected at its last byte.
        assert_eq!(
            string(b"\xed\xa0\x80"),
            b"\xee\x83\xad\xee\x82\xa0\xee\x82\x80".to_vec()
        );
    }

    #[test]
    fn values() {
        let chunk = crate::msgpack::tests::hex(concat!(
            "92 92 d700 0000000100000000 80",
            "88 a1 61 01 a1 62 ff a1 63 ca 3dcccccd a1 64 c4 02 6869",
            "a1 65 d5 05 7f80 01 a1 61 a1 61 02 c0 93 c0 c2 c3",
        ));
        let event = events(&chunk).next().unwrap().unwrap();
        let mut out = Vec::new();
        write_json(&event.record, &mut out);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            r#"{"b":-1,"c":0.1000000014901161,"d":"hi","e":"\x7f\xffffff80",1:"a","a":2,null:[null,false,true]}"#
        );
    }

    fn event_of(record: &str) -> Vec<u8> {
        let mut chunk = crate::msgpack::tests::hex("92 92 d700 6553f100 075bcd15 80");
        chunk.extend(crate::msgpack::tests::hex(record));
        chunk
    }

    fn data(record: &str, options: &FormatOptions) -> Result<String, FormatError> {
        let chunk = event_of(record);
        let event = events(&chunk).next().unwrap().unwrap();
        let mut out = b"prefix".to_vec();
        kinesis_streams_data(&event, options, &mut out)?;
        Ok(String::from_utf8(out).unwrap())
    }

    fn log_key(key: &str) -> FormatOptions {
        FormatOptions {
            log_key: Some(key.into()),
            ..FormatOptions::default()
        }
    }

    #[test]
    fn kinesis_streams_shapes() {
        let defaults = FormatOptions::default();
        assert_eq!(
            data("81 a1 6d a2 6869", &defaults).unwrap(),
            "prefix{\"m\":\"hi\"}\n"
        );
        assert!(data("80", &defaults).is_err());
        let message = log_key("message");
        // {"message":"hi"} → hi
        assert_eq!(
            data("81 a7 6d657373616765 a2 6869", &message).unwrap(),
            "prefixhi\n"
        );
        // {"message":12345} → 234 (the first and last digits go)
        assert_eq!(
            data("81 a7 6d657373616765 cd 3039", &message).unwrap(),
            "prefix234\n"
        );
        // {"message":42} → discarded, {"message":{"a":1}} → "a":1
        assert!(data("81 a7 6d657373616765 2a", &message).is_err());
        assert_eq!(
            data("81 a7 6d657373616765 81 a1 61 01", &message).unwrap(),
            "prefix\"a\":1\n"
        );
        // Missing.
        let missing = data("81 a1 78 01", &message).unwrap_err();
        assert!(
            missing.message.contains("Could not find log_key"),
            "{missing}"
        );
        // {"m":"ab","message":"cd"}: "m" is a prefix of "message", both are sent.
        assert!(data("82 a1 6d a2 6162 a7 6d657373616765 a2 6364", &message).is_err());
        let chunk = event_of("83 a1 6d a2 6162 a7 6d657373616765 a2 6364 01 a3 656667");
        let event = events(&chunk).next().unwrap().unwrap();
        let (mut out, mut sent) = (Vec::new(), Vec::new());
        kinesis_streams_records(&event, &message, &mut out, &mut sent).unwrap();
        let records: Vec<&[u8]> = sent.iter().map(|r| &out[r.clone().unwrap()]).collect();
        assert_eq!(records, [&b"ab\n"[..], b"cd\n", b"efg\n"]);
    }

    #[test]
    fn time_key() {
        let options = |format: Option<&str>| FormatOptions {
            time_key: Some("t".into()),
            time_key_format: format.map(Into::into),
            ..FormatOptions::default()
        };
        assert_eq!(
            data("81 a1 61 01", &options(None)).unwrap(),
            "prefix{\"a\":1,\"t\":\"2023-11-14T22:13:20\"}\n"
        );
        assert_eq!(
            data("81 a1 61 01", &options(Some("%s.%3N"))).unwrap(),
            "prefix{\"a\":1,\"t\":\"1700000000.123\"}\n"
        );
        assert_eq!(
            data("81 a1 61 01", &options(Some("%c"))).unwrap(),
            "prefix{\"a\":1}\n"
        );
        assert!(options(Some("%c")).validate().is_err());
        assert!(options(Some("")).validate().is_err());
        assert!(options(Some("%c ")).validate().is_ok());
        assert!(options(None).validate().is_ok());
        let both = FormatOptions {
            log_key: Some("a".into()),
            ..options(None)
        };
        assert!(data("81 a1 61 01", &both).is_err());
    }
}
