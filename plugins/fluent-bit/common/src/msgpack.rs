//! A zero-copy decoder for the chunks Fluent Bit hands `FLBPluginFlushCtx`: msgpack events
//! concatenated with no outer array, each `[[EventTime, metadata], record]` (or the legacy
//! `[time, record]`).
//!
//! It accepts what Fluent Bit 5.1.1's own log event decoder (`flb_log_event_decoder.c`)
//! accepts, and reads the time the same way:
//! - the time is an EventTime (ext type 0, 8 bytes: u32 BE seconds, u32 BE nanoseconds), a
//!   non-negative integer or a float64; a negative integer, a float32, another ext or any other
//!   type is [`ChunkErrorKind::BadTime`], and so are nanoseconds of 10⁹ or more;
//! - the metadata and the record must be maps ([`ChunkErrorKind::NotAnEvent`] otherwise);
//! - group markers (EventTime seconds `0xFFFFFFFF` or `0xFFFFFFFE`, as OpenTelemetry inputs
//!   write around a group) and events whose time is negative once converted to seconds are
//!   skipped silently, as Fluent Bit's outputs skip them;
//! - a legacy float time `t` has `trunc(t)` seconds and `(t - trunc(t)) * 10⁹` nanoseconds,
//!   truncated. A float time in (-1, 0), which Fluent Bit would carry with negative
//!   nanoseconds, is `BadTime` here.
//!
//! Every value is decoded before the event's shape is checked, so a chunk that ends inside an
//! event is [`ChunkErrorKind::Truncated`] whatever its shape. Integers follow msgpack-c's
//! object model: a signed encoding of a non-negative value is [`Value::Uint`], so
//! [`Value::Int`] is always negative.
//!
//! Hostile input is expected: nothing here panics, nesting is limited to [`MAX_DEPTH`]
//! containers, and a declared length larger than what remains of the chunk is `Truncated`
//! before anything is allocated for it.

use core::fmt;

/// How many containers (arrays and maps) may enclose one another, the event's root array
/// included: a record map and 62 levels below it.
pub const MAX_DEPTH: usize = 64;

/// A decoded msgpack value, borrowing strings and binaries from the chunk.
#[derive(Debug, Clone, PartialEq)]
pub enum Value<'a> {
    /// `nil`.
    Nil,
    /// `true` / `false`.
    Bool(bool),
    /// A negative integer (msgpack keeps the sign in the type).
    Int(i64),
    /// A non-negative integer.
    Uint(u64),
    /// A float32.
    F32(f32),
    /// A float64.
    F64(f64),
    /// A str, as its raw bytes (Fluent Bit does not guarantee UTF-8).
    Str(&'a [u8]),
    /// A bin.
    Bin(&'a [u8]),
    /// An array.
    Array(Vec<Value<'a>>),
    /// A map, in the order of the chunk.
    Map(Vec<(Value<'a>, Value<'a>)>),
    /// An ext value: its type and data.
    Ext(i8, &'a [u8]),
}

/// One event of a chunk.
#[derive(Debug, Clone, PartialEq)]
pub struct Event<'a> {
    /// Seconds since the epoch.
    pub seconds: i64,
    /// Nanoseconds within the second.
    pub nanoseconds: u32,
    /// The metadata map (`Nil` for the legacy shape).
    pub metadata: Value<'a>,
    /// The record (always a map: Fluent Bit's decoder rejects anything else).
    pub record: Value<'a>,
    /// Where the event starts in the chunk.
    pub offset: usize,
    /// The event's bytes in the chunk.
    pub raw: &'a [u8],
}

/// Why a chunk could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChunkError {
    /// Byte offset in the chunk where decoding failed.
    pub offset: usize,
    /// What was wrong.
    pub kind: ChunkErrorKind,
}

/// What was wrong with a chunk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChunkErrorKind {
    /// The chunk ends inside a value. The offset is the start of the value that cannot be
    /// complete (or the chunk's length when a value's first byte is missing).
    Truncated,
    /// A byte that starts no msgpack value (0xc1).
    InvalidMarker,
    /// Nesting deeper than the decoder allows ([`MAX_DEPTH`]); the offset is the container
    /// one level too deep.
    TooDeep,
    /// The event is not `[[time, metadata], record]` or `[time, record]` with maps for the
    /// metadata and the record; the offset is the part that is wrong.
    NotAnEvent,
    /// The time is neither an EventTime ext, an integer nor a float; the offset is the time's.
    BadTime,
}

impl fmt::Display for ChunkError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?} at byte {}", self.kind, self.offset)
    }
}

impl std::error::Error for ChunkError {}

/// The events of a chunk, in order; after an error the iterator ends.
pub fn events(chunk: &[u8]) -> Events<'_> {
    Events {
        chunk,
        pos: 0,
        failed: false,
    }
}

/// Iterator returned by [`events`].
#[derive(Debug)]
pub struct Events<'a> {
    chunk: &'a [u8],
    pos: usize,
    failed: bool,
}

impl<'a> Iterator for Events<'a> {
    type Item = Result<Event<'a>, ChunkError>;
    fn next(&mut self) -> Option<Self::Item> {
        while !self.failed && self.pos < self.chunk.len() {
            let mut reader = Reader {
                buf: self.chunk,
                pos: self.pos,
            };
            let result = reader.event();
            self.pos = reader.pos;
            match result {
                Ok(Some(event)) => return Some(Ok(event)),
                Ok(None) => continue,
                Err(error) => {
                    self.failed = true;
                    return Some(Err(error));
                }
            }
        }
        None
    }
}

/// Decodes one msgpack value at the start of `bytes`: the value and its encoded length.
pub fn decode_value(bytes: &[u8]) -> Result<(Value<'_>, usize), ChunkError> {
    let mut reader = Reader { buf: bytes, pos: 0 };
    let value = reader.value(0)?;
    Ok((value, reader.pos))
}

/// What an event's time means once converted the way Fluent Bit converts it.
enum Time {
    /// A normal event at these seconds and nanoseconds.
    At(i64, u32),
    /// A group marker or a negative time: Fluent Bit's outputs never see it.
    Skip,
}

/// Reads the time of an event (a value already decoded), as `flb_log_event_decoder` does.
fn event_time(value: &Value<'_>) -> Result<Time, ()> {
    match value {
        Value::Uint(u) => {
            // `tv_sec = u64`: a time_t, so values past i64::MAX turn negative.
            let seconds = *u as i64;
            Ok(if seconds < 0 {
                Time::Skip
            } else {
                Time::At(seconds, 0)
            })
        }
        Value::F64(f) => {
            const LIMIT: f64 = 9_223_372_036_854_775_808.0; // 2^63
            if f.is_nan() || *f >= LIMIT || *f < -LIMIT {
                // Out of time_t's range: x86-64 converts to i64::MIN, a negative time.
                return Ok(Time::Skip);
            }
            let seconds = f.trunc() as i64;
            if seconds < 0 {
                return Ok(Time::Skip);
            }
            let fraction = (f - seconds as f64) * 1e9;
            if fraction < 0.0 {
                // (-1, 0): zero seconds and negative nanoseconds in Fluent Bit.
                return Err(());
            }
            Ok(Time::At(seconds, (fraction as u32).min(999_999_999)))
        }
        Value::Ext(0, data) => {
            let seconds = be_u32(data.get(0..4)).ok_or(())?;
            let nanoseconds = be_u32(data.get(4..8)).ok_or(())?;
            if data.len() != 8 {
                return Err(());
            }
            if seconds >= u32::MAX - 1 {
                // Group start (-1) and end (-2) markers, valid only with zero nanoseconds.
                return if nanoseconds == 0 {
                    Ok(Time::Skip)
                } else {
                    Err(())
                };
            }
            if nanoseconds >= 1_000_000_000 {
                return Err(());
            }
            Ok(Time::At(i64::from(seconds), nanoseconds))
        }
        _ => Err(()),
    }
}

fn be_u32(bytes: Option<&[u8]>) -> Option<u32> {
    Some(u32::from_be_bytes(bytes?.try_into().ok()?))
}

/// A cursor over a chunk.
struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn error(offset: usize, kind: ChunkErrorKind) -> ChunkError {
        ChunkError { offset, kind }
    }

    /// Decodes the event at the cursor: `Ok(None)` for one Fluent Bit skips.
    fn event(&mut self) -> Result<Option<Event<'a>>, ChunkError> {
        let start = self.pos;
        // The whole value first, as msgpack_unpack_next does before any shape check.
        let root = self.value(0)?;
        let raw = self.buf.get(start..self.pos).unwrap_or_default();
        let not_an_event = |offset| Err(Self::error(offset, ChunkErrorKind::NotAnEvent));
        let mut items = match root {
            Value::Array(items) if items.len() == 2 => items.into_iter(),
            _ => return not_an_event(start),
        };
        let (Some(head), Some(record)) = (items.next(), items.next()) else {
            return not_an_event(start);
        };
        // Offsets of the parts, for errors only: the raw bytes are decoded again then.
        let parts = || element_offsets(raw).map(|o| o.map(|o| start + o));
        let (time, metadata, v2) = match head {
            Value::Array(header) => {
                let mut header = header.into_iter();
                match (header.next(), header.next(), header.next()) {
                    (Some(time), Some(metadata), None) => (time, metadata, true),
                    _ => return not_an_event(parts()?[0]),
                }
            }
            time => (time, Value::Nil, false),
        };
        let time_offset = || -> Result<usize, ChunkError> {
            let [head, _] = parts()?;
            if !v2 {
                return Ok(head);
            }
            let header = self.buf.get(head..).unwrap_or_default();
            Ok(head + element_offsets(header)?[0])
        };
        if !matches!(time, Value::Uint(_) | Value::F64(_) | Value::Ext(..)) {
            return Err(Self::error(time_offset()?, ChunkErrorKind::BadTime));
        }
        if v2 && !matches!(metadata, Value::Map(_)) {
            let [head, _] = parts()?;
            let header = self.buf.get(head..).unwrap_or_default();
            return not_an_event(head + element_offsets(header)?[1]);
        }
        if !matches!(record, Value::Map(_)) {
            return not_an_event(parts()?[1]);
        }
        match event_time(&time) {
            Err(()) => Err(Self::error(time_offset()?, ChunkErrorKind::BadTime)),
            Ok(Time::Skip) => Ok(None),
            Ok(Time::At(seconds, nanoseconds)) => Ok(Some(Event {
                seconds,
                nanoseconds,
                metadata,
                record,
                offset: start,
                raw,
            })),
        }
    }

    /// Takes `n` bytes for the value that starts at `start`.
    fn take(&mut self, n: usize, start: usize) -> Result<&'a [u8], ChunkError> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|end| *end <= self.buf.len())
            .ok_or(Self::error(start, ChunkErrorKind::Truncated))?;
        let bytes = self.buf.get(self.pos..end).unwrap_or_default();
        self.pos = end;
        Ok(bytes)
    }

    fn array<const N: usize>(&mut self, start: usize) -> Result<[u8; N], ChunkError> {
        let bytes = self.take(N, start)?;
        bytes
            .try_into()
            .map_err(|_| Self::error(start, ChunkErrorKind::Truncated))
    }

    /// A big-endian length of 1, 2 or 4 bytes.
    fn length(&mut self, width: u8, start: usize) -> Result<usize, ChunkError> {
        Ok(match width {
            1 => usize::from(self.array::<1>(start)?[0]),
            2 => usize::from(u16::from_be_bytes(self.array(start)?)),
            _ => u32::from_be_bytes(self.array(start)?) as usize,
        })
    }

    /// Decodes the value at the cursor; `depth` containers enclose it.
    fn value(&mut self, depth: usize) -> Result<Value<'a>, ChunkError> {
        let start = self.pos;
        let marker = self.array::<1>(start)?[0];
        Ok(match marker {
            0x00..=0x7f => Value::Uint(u64::from(marker)),
            0x80..=0x8f => self.map(usize::from(marker & 0x0f), depth, start)?,
            0x90..=0x9f => self.list(usize::from(marker & 0x0f), depth, start)?,
            0xa0..=0xbf => Value::Str(self.take(usize::from(marker & 0x1f), start)?),
            0xc0 => Value::Nil,
            0xc1 => return Err(Self::error(start, ChunkErrorKind::InvalidMarker)),
            0xc2 => Value::Bool(false),
            0xc3 => Value::Bool(true),
            0xc4..=0xc6 => {
                let n = self.length(1 << (marker - 0xc4), start)?;
                Value::Bin(self.take(n, start)?)
            }
            0xc7..=0xc9 => {
                let n = self.length(1 << (marker - 0xc7), start)?;
                let kind = self.array::<1>(start)?[0] as i8;
                Value::Ext(kind, self.take(n, start)?)
            }
            0xca => Value::F32(f32::from_be_bytes(self.array(start)?)),
            0xcb => Value::F64(f64::from_be_bytes(self.array(start)?)),
            0xcc => Value::Uint(u64::from(self.array::<1>(start)?[0])),
            0xcd => Value::Uint(u64::from(u16::from_be_bytes(self.array(start)?))),
            0xce => Value::Uint(u64::from(u32::from_be_bytes(self.array(start)?))),
            0xcf => Value::Uint(u64::from_be_bytes(self.array(start)?)),
            0xd0 => signed(i64::from(self.array::<1>(start)?[0] as i8)),
            0xd1 => signed(i64::from(i16::from_be_bytes(self.array(start)?))),
            0xd2 => signed(i64::from(i32::from_be_bytes(self.array(start)?))),
            0xd3 => signed(i64::from_be_bytes(self.array(start)?)),
            0xd4..=0xd8 => {
                let kind = self.array::<1>(start)?[0] as i8;
                Value::Ext(kind, self.take(1 << (marker - 0xd4), start)?)
            }
            0xd9..=0xdb => {
                let n = self.length(1 << (marker - 0xd9), start)?;
                Value::Str(self.take(n, start)?)
            }
            0xdc | 0xdd => {
                let n = self.length(2 << (marker - 0xdc), start)?;
                self.list(n, depth, start)?
            }
            0xde | 0xdf => {
                let n = self.length(2 << (marker - 0xde), start)?;
                self.map(n, depth, start)?
            }
            0xe0..=0xff => Value::Int(i64::from(marker as i8)),
        })
    }

    /// Checks a container of `n` entries of at least `min` bytes each can fit and nest.
    fn container(
        &self,
        n: usize,
        min: usize,
        depth: usize,
        start: usize,
    ) -> Result<(), ChunkError> {
        if depth >= MAX_DEPTH {
            return Err(Self::error(start, ChunkErrorKind::TooDeep));
        }
        let left = self.buf.len().saturating_sub(self.pos);
        if n.saturating_mul(min) > left {
            return Err(Self::error(start, ChunkErrorKind::Truncated));
        }
        Ok(())
    }

    fn list(&mut self, n: usize, depth: usize, start: usize) -> Result<Value<'a>, ChunkError> {
        self.container(n, 1, depth, start)?;
        let mut items = Vec::with_capacity(n);
        for _ in 0..n {
            items.push(self.value(depth + 1)?);
        }
        Ok(Value::Array(items))
    }

    fn map(&mut self, n: usize, depth: usize, start: usize) -> Result<Value<'a>, ChunkError> {
        self.container(n, 2, depth, start)?;
        let mut entries = Vec::with_capacity(n);
        for _ in 0..n {
            let key = self.value(depth + 1)?;
            let value = self.value(depth + 1)?;
            entries.push((key, value));
        }
        Ok(Value::Map(entries))
    }
}

/// msgpack-c's object model: a signed encoding of a non-negative value is a positive integer.
fn signed(value: i64) -> Value<'static> {
    match u64::try_from(value) {
        Ok(u) => Value::Uint(u),
        Err(_) => Value::Int(value),
    }
}

/// The offsets of the first two elements of the (already decoded) array at the start of
/// `bytes`, relative to `bytes`.
fn element_offsets(bytes: &[u8]) -> Result<[usize; 2], ChunkError> {
    let header = match bytes.first() {
        Some(0x90..=0x9f) => 1,
        Some(0xdc) => 3,
        Some(0xdd) => 5,
        _ => 0,
    };
    let first = bytes.get(header..).unwrap_or_default();
    let (_, len) = decode_value(first)?;
    Ok([header, header + len])
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// The golden fixture of `fluent-bit.md`: two events from Fluent Bit 5.1.1's dummy input
    /// with metadata, 168 bytes, tag `fx.meta`.
    pub(crate) const GOLDEN: &str = concat!(
        "9292d7006b082134148a0be181a16da17888a76d657373616765a568656c6c6fa56c6576656ca4696e666f",
        "a16e2aa166cb3fe0000000000000a26f6bc3a46e6f6e65c0a36172729201a161a36f626a81a16ba176",
        "9292d7006b08213418b1156581a16da17888a76d657373616765a568656c6c6fa56c6576656ca4696e666f",
        "a16e2aa166cb3fe0000000000000a26f6bc3a46e6f6e65c0a36172729201a161a36f626a81a16ba176",
    );

    pub(crate) fn hex(text: &str) -> Vec<u8> {
        let digits: Vec<u8> = text
            .bytes()
            .filter(u8::is_ascii_hexdigit)
            .map(|c| match c {
                b'0'..=b'9' => c - b'0',
                b'a'..=b'f' => c - b'a' + 10,
                _ => c - b'A' + 10,
            })
            .collect();
        digits.chunks(2).map(|p| p[0] << 4 | p[1]).collect()
    }

    fn s(text: &str) -> Value<'_> {
        Value::Str(text.as_bytes())
    }

    fn all(chunk: &[u8]) -> Vec<Result<Event<'_>, ChunkError>> {
        events(chunk).collect()
    }

    fn only_error(chunk: &[u8]) -> ChunkError {
        let results = all(chunk);
        let last = results.last().cloned();
        assert!(results[..results.len() - 1].iter().all(Result::is_ok));
        last.expect("one result").expect_err("an error")
    }

    fn err(offset: usize, kind: ChunkErrorKind) -> ChunkError {
        ChunkError { offset, kind }
    }

    #[test]
    fn golden_fixture() {
        let chunk = hex(GOLDEN);
        assert_eq!(chunk.len(), 168);
        let decoded: Vec<Event<'_>> = events(&chunk).map(Result::unwrap).collect();
        assert_eq!(decoded.len(), 2);
        let record = Value::Map(vec![
            (s("message"), s("hello")),
            (s("level"), s("info")),
            (s("n"), Value::Uint(42)),
            (s("f"), Value::F64(0.5)),
            (s("ok"), Value::Bool(true)),
            (s("none"), Value::Nil),
            (s("arr"), Value::Array(vec![Value::Uint(1), s("a")])),
            (s("obj"), Value::Map(vec![(s("k"), s("v"))])),
        ]);
        let seconds = [0x6b08_2134, 0x6b08_2134];
        let nanoseconds = [0x148a_0be1, 0x18b1_1565];
        for (i, event) in decoded.iter().enumerate() {
            assert_eq!(event.seconds, seconds[i]);
            assert_eq!(event.nanoseconds, nanoseconds[i]);
            assert_eq!(event.metadata, Value::Map(vec![(s("m"), s("x"))]));
            assert_eq!(event.record, record);
            assert_eq!(event.offset, 84 * i);
            assert_eq!(event.raw, &chunk[84 * i..84 * (i + 1)]);
        }
    }

    #[test]
    fn legacy_shapes() {
        // [int, {}], [float, {}], [ext, {}]
        let chunk =
            hex("92 ce 6553f100 80  92 cb 41d954fc40a00000 81a178c0  92 d700 00000005 00000007 80");
        let decoded: Vec<Event<'_>> = events(&chunk).map(Result::unwrap).collect();
        assert_eq!(
            (decoded[0].seconds, decoded[0].nanoseconds),
            (1_700_000_000, 0)
        );
        assert_eq!(decoded[0].metadata, Value::Nil);
        assert_eq!(
            (decoded[1].seconds, decoded[1].nanoseconds),
            (1_700_000_002, 500_000_000)
        );
        assert_eq!(decoded[1].record, Value::Map(vec![(s("x"), Value::Nil)]));
        assert_eq!((decoded[2].seconds, decoded[2].nanoseconds), (5, 7));
        assert_eq!(decoded[2].offset, 21);
    }

    #[test]
    fn every_type() {
        let bytes = hex(concat!(
            "dc 0019", // array16 of 25
            "c0 c2 c3 7f e0 ff",
            "cc ff cd ffff ce ffffffff cf ffffffffffffffff",
            "d0 80 d1 8000 d2 80000000 d3 8000000000000000 d3 0000000000000001",
            "ca 3f800000 cb bff0000000000000",
            "c4 01 aa c5 0001 bb c6 00000001 cc",
            "d4 01 01 d5 02 0102 d6 03 01020304 d7 ff 0102030405060708 d8 04 000102030405060708090a0b0c0d0e0f",
        ));
        let (value, len) = decode_value(&bytes).unwrap();
        let string_bytes = hex(
            "dd 00000007 a0 d9 01 61 da 0001 62 db 00000001 63 c7 01 05 aa c8 0001 06 bb c9 00000001 07 cc",
        );
        let (strings, _) = decode_value(&string_bytes).unwrap();
        let map_bytes = hex("92 de 0001 01 02 df 00000001 80 90");
        let (maps, _) = decode_value(&map_bytes).unwrap();
        assert_eq!(len, bytes.len());
        let sixteen: Vec<u8> = (0..16).collect();
        assert_eq!(
            value,
            Value::Array(vec![
                Value::Nil,
                Value::Bool(false),
                Value::Bool(true),
                Value::Uint(127),
                Value::Int(-32),
                Value::Int(-1),
                Value::Uint(255),
                Value::Uint(65535),
                Value::Uint(u64::from(u32::MAX)),
                Value::Uint(u64::MAX),
                Value::Int(-128),
                Value::Int(-32768),
                Value::Int(i64::from(i32::MIN)),
                Value::Int(i64::MIN),
                Value::Uint(1),
                Value::F32(1.0),
                Value::F64(-1.0),
                Value::Bin(&[0xaa]),
                Value::Bin(&[0xbb]),
                Value::Bin(&[0xcc]),
                Value::Ext(1, &[1]),
                Value::Ext(2, &[1, 2]),
                Value::Ext(3, &[1, 2, 3, 4]),
                Value::Ext(-1, &[1, 2, 3, 4, 5, 6, 7, 8]),
                Value::Ext(4, &sixteen),
            ])
        );
        assert_eq!(
            strings,
            Value::Array(vec![
                s(""),
                s("a"),
                s("b"),
                s("c"),
                Value::Ext(5, &[0xaa]),
                Value::Ext(6, &[0xbb]),
                Value::Ext(7, &[0xcc]),
            ])
        );
        assert_eq!(
            maps,
            Value::Array(vec![
                Value::Map(vec![(Value::Uint(1), Value::Uint(2))]),
                Value::Map(vec![(Value::Map(vec![]), Value::Array(vec![]))]),
            ])
        );
    }

    #[test]
    fn group_markers_and_negative_times_are_skipped() {
        let chunk = hex(concat!(
            "92 92 d700 ffffffff 00000000 80 80", // group start
            "92 92 d700 fffffffe 00000000 80 80", // group end
            "92 cf ffffffffffffffff 80",          // u64 past i64::MAX: negative time_t
            "92 cb bff8000000000000 80",          // -1.5
            "92 cb 7ff8000000000000 80",          // NaN
            "92 92 d700 00000001 00000002 80 81 a1 61 01",
        ));
        let decoded: Vec<Event<'_>> = events(&chunk).map(Result::unwrap).collect();
        assert_eq!(decoded.len(), 1);
        assert_eq!((decoded[0].seconds, decoded[0].nanoseconds), (1, 2));
        assert_eq!(decoded[0].offset, 61);
    }

    #[test]
    fn truncated() {
        let golden = hex(GOLDEN);
        // Cut inside the last str ("v" at 166).
        assert_eq!(
            only_error(&golden[..167]),
            err(166, ChunkErrorKind::Truncated)
        );
        // Cut inside the second record: its map (at 84 + 17) declares 8 entries, more than
        // the bytes left can hold.
        assert_eq!(
            only_error(&golden[..84 + 20]),
            err(84 + 17, ChunkErrorKind::Truncated)
        );
        // An array that cannot hold one byte per element: the array's offset.
        assert_eq!(
            only_error(&golden[..84 + 2]),
            err(84, ChunkErrorKind::Truncated)
        );
        // No byte left for a value's marker: the chunk's length.
        assert_eq!(
            only_error(&hex("92 d9 01 61")),
            err(4, ChunkErrorKind::Truncated)
        );
        // A marker without its payload: the marker's offset.
        assert_eq!(
            only_error(&golden[..84 + 4]),
            err(84 + 2, ChunkErrorKind::Truncated)
        );
        // Declared lengths far beyond the chunk, without allocating them.
        assert_eq!(
            only_error(&hex("db ffffffff 61")),
            err(0, ChunkErrorKind::Truncated)
        );
        assert_eq!(
            only_error(&hex("92 dd ffffffff c0")),
            err(1, ChunkErrorKind::Truncated)
        );
        assert_eq!(
            only_error(&hex("92 80 df 7fffffff 01 02")),
            err(2, ChunkErrorKind::Truncated)
        );
        assert_eq!(
            only_error(&hex("c9 ffffffff 00")),
            err(0, ChunkErrorKind::Truncated)
        );
        assert_eq!(
            only_error(&hex("cb 0000")),
            err(0, ChunkErrorKind::Truncated)
        );
        assert_eq!(only_error(&hex("da 00")), err(0, ChunkErrorKind::Truncated));
    }

    #[test]
    fn invalid_marker() {
        assert_eq!(
            only_error(&hex("92 92 d700 0000000100000000 80 81 a1 61 c1")),
            err(16, ChunkErrorKind::InvalidMarker)
        );
    }

    #[test]
    fn too_deep() {
        // The event's two arrays, then 62 more nested arrays: 64 containers.
        let mut ok = hex("92 92 d700 0000000100000000 80 81 a1 61");
        ok.extend([0x91; 62]);
        ok.push(0xc0);
        assert_eq!(all(&ok).len(), 1);
        assert!(all(&ok)[0].is_ok());
        let mut deep = hex("92 92 d700 0000000100000000 80 81 a1 61");
        deep.extend([0x91; 63]);
        deep.push(0xc0);
        assert_eq!(only_error(&deep), err(16 + 62, ChunkErrorKind::TooDeep));
    }

    #[test]
    fn not_an_event() {
        let error = |text| only_error(&hex(text));
        assert_eq!(error("81 a1 61 01"), err(0, ChunkErrorKind::NotAnEvent));
        assert_eq!(error("93 01 80 80"), err(0, ChunkErrorKind::NotAnEvent));
        assert_eq!(
            error("92 93 01 80 80 80"),
            err(1, ChunkErrorKind::NotAnEvent)
        );
        // Metadata not a map.
        assert_eq!(
            error("92 92 d700 0000000100000000 90 80"),
            err(12, ChunkErrorKind::NotAnEvent)
        );
        // Record not a map.
        assert_eq!(
            error("92 92 01 80 a1 61"),
            err(4, ChunkErrorKind::NotAnEvent)
        );
        assert_eq!(error("92 01 91 01"), err(2, ChunkErrorKind::NotAnEvent));
        // A good event first, then the error once, then nothing.
        let mut chunk = hex(GOLDEN);
        chunk.extend(hex("01 92 01 80"));
        let results = all(&chunk);
        assert_eq!(results.len(), 3);
        assert_eq!(results[2], Err(err(168, ChunkErrorKind::NotAnEvent)));
    }

    #[test]
    fn bad_time() {
        let error = |text| only_error(&hex(text));
        assert_eq!(error("92 ff 80"), err(1, ChunkErrorKind::BadTime));
        assert_eq!(error("92 ca 3f800000 80"), err(1, ChunkErrorKind::BadTime));
        assert_eq!(error("92 a1 61 80"), err(1, ChunkErrorKind::BadTime));
        assert_eq!(error("92 92 c0 80 80"), err(2, ChunkErrorKind::BadTime));
        // Ext of another type or size.
        assert_eq!(
            error("92 92 d701 0000000100000000 80 80"),
            err(2, ChunkErrorKind::BadTime)
        );
        assert_eq!(
            error("92 92 d600 00000001 80 80"),
            err(2, ChunkErrorKind::BadTime)
        );
        // Nanoseconds out of range; a group marker with nanoseconds.
        assert_eq!(
            error("92 92 d700 000000013b9aca00 80 80"),
            err(2, ChunkErrorKind::BadTime)
        );
        assert_eq!(
            error("92 92 d700 ffffffff00000001 80 80"),
            err(2, ChunkErrorKind::BadTime)
        );
        // A float time in (-1, 0).
        assert_eq!(
            error("92 cb bfe0000000000000 80"),
            err(1, ChunkErrorKind::BadTime)
        );
        // A bad time in an array16 root.
        assert_eq!(error("dc 0002 c0 80"), err(3, ChunkErrorKind::BadTime));
    }

    #[test]
    fn empty_chunk() {
        assert!(all(&[]).is_empty());
    }
}
