//! Zero-copy views of an aggregated record: the frame, the tables and the records.
//!
//! [`Frame::split`] looks for the magic and the digest; [`Aggregate::parse`] validates the
//! protobuf in one pass and keeps only the two key tables (slices of the input, so
//! O(table entries) bookkeeping); [`Aggregate::records`] walks the records lazily.
//!
//! ```
//! use kpl_codec::view::{Aggregate, Dialect, Frame};
//!
//! // The worked example of the format notes: three user records, two partition keys.
//! let protobuf = [
//!     0x0a, 0x01, 0x61, 0x0a, 0x01, 0x62, 0x12, 0x03, 0x31, 0x32, 0x33,
//!     0x1a, 0x05, 0x08, 0x00, 0x1a, 0x01, 0x78,
//!     0x1a, 0x08, 0x08, 0x01, 0x10, 0x00, 0x1a, 0x02, 0x79, 0x7a,
//!     0x1a, 0x04, 0x08, 0x00, 0x1a, 0x00,
//! ];
//! let aggregate = Aggregate::parse(&protobuf, Dialect::Strict)?;
//! assert_eq!(aggregate.partition_keys(), &[&b"a"[..], &b"b"[..]]);
//! assert_eq!(aggregate.record_count(), 3);
//! let second = aggregate.records().nth(1).unwrap();
//! assert_eq!(second.explicit_hash_key_index, Some(0));
//! assert_eq!(second.data, b"yz");
//!
//! let mut data = kpl_codec::MAGIC.to_vec();
//! data.extend_from_slice(&protobuf);
//! data.extend_from_slice(&kpl_codec::md5(&protobuf));
//! assert!(matches!(Frame::split(&data), Frame::Framed { .. }));
//! # Ok::<(), kpl_codec::DecodeError>(())
//! ```

use alloc::vec::Vec;

use crate::error::DecodeError;
use crate::hash_key::is_decimal_hash_key;
pub use crate::wire::Dialect;
use crate::wire::{short_len_at, varint_at, Field, FieldReader, Schema, Value};
use crate::{DIGEST_LEN, MAGIC};

/// Absolute offset of the protobuf inside a Kinesis record's data.
pub const PROTOBUF_OFFSET: usize = MAGIC.len();

/// The table position KCL reads for a stored index: KCL casts the `uint64` to a Java
/// `int` first, so 2^32 is entry 0 and 2^31..2^32-1 are negative (outside any table).
///
/// ```
/// use kpl_codec::view::kcl_index;
/// assert_eq!(kcl_index(3), Some(3));
/// assert_eq!(kcl_index(1 << 32), Some(0));
/// assert_eq!(kcl_index(1 << 31), None);
/// ```
pub fn kcl_index(value: u64) -> Option<usize> {
    usize::try_from(value as u32 as i32).ok()
}

/// How a Kinesis record's data is framed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Frame<'a> {
    /// Shorter than the magic, or not starting with it: a plain record.
    NoMagic,
    /// The magic, followed by 16 bytes or fewer.
    TooShort,
    /// Magic, protobuf and digest.
    Framed {
        /// The protobuf bytes (offset 4 in the record).
        protobuf: &'a [u8],
        /// The stored MD5 (the last 16 bytes).
        digest: &'a [u8; 16],
    },
}

impl<'a> Frame<'a> {
    /// Splits a Kinesis record's data into magic, protobuf and digest.
    pub fn split(data: &'a [u8]) -> Frame<'a> {
        if data.len() < MAGIC.len() || data[..MAGIC.len()] != MAGIC {
            return Frame::NoMagic;
        }
        if data.len() <= MAGIC.len() + DIGEST_LEN {
            return Frame::TooShort;
        }
        let (rest, digest) = data.split_at(data.len() - DIGEST_LEN);
        match <&[u8; 16]>::try_from(digest) {
            Ok(digest) => Frame::Framed {
                protobuf: &rest[MAGIC.len()..],
                digest,
            },
            Err(_) => Frame::TooShort,
        }
    }
}

/// A validated `AggregatedRecord` protobuf, borrowing from the input.
#[derive(Debug, Clone)]
pub struct Aggregate<'a> {
    protobuf: &'a [u8],
    partition_keys: Vec<&'a [u8]>,
    explicit_hash_keys: Vec<&'a [u8]>,
    record_count: usize,
    max_partition_key_index: Option<u64>,
    max_explicit_hash_key_index: Option<u64>,
    dialect: Dialect,
}

/// One `Record` of an aggregate, as stored (indices not yet resolved).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RawRecord<'a> {
    /// Absolute offset of the record's tag in the Kinesis record's data.
    pub offset: usize,
    /// Bytes the record occupies, tag and length prefix included.
    pub size: usize,
    /// `partition_key_index` (last value if repeated).
    pub partition_key_index: u64,
    /// `explicit_hash_key_index`, `None` when absent (presence, not value).
    pub explicit_hash_key_index: Option<u64>,
    /// `data` (last value if repeated).
    pub data: &'a [u8],
    /// Absolute offset of `data`.
    pub data_offset: usize,
}

impl<'a> Aggregate<'a> {
    /// Parses and validates the protobuf part of an aggregated record (the bytes between
    /// the magic and the digest; offsets in errors count the 4 magic bytes).
    ///
    /// Under [`Dialect::Java`] it accepts and rejects exactly what protobuf-java does;
    /// under [`Dialect::Strict`] it also rejects known fields with the wrong wire type,
    /// table entries that are not UTF-8, and explicit hash keys that are not decimal
    /// numbers in `[0, 2^128 - 1]`. Index ranges are not checked here.
    pub fn parse(protobuf: &'a [u8], dialect: Dialect) -> Result<Self, DecodeError> {
        let mut reader = FieldReader::new(protobuf, PROTOBUF_OFFSET, 0, dialect, AGGREGATED_RECORD);
        // Most aggregates use a handful of keys: start with room for them.
        let mut partition_keys = Vec::with_capacity(16);
        let mut explicit_hash_keys = Vec::with_capacity(16);
        let mut record_count = 0usize;
        let mut max_partition_key_index = None;
        let mut max_explicit_hash_key_index = None;
        loop {
            // Runs of records in KPL's layout are checked by a tight loop; anything else
            // (tables, other layouts, defects) goes through the general reader.
            let (body, mut pos) = (reader.body(), reader.position());
            while let Some((tag, entry, end)) = short_table_entry_at(body, pos) {
                if tag == 0x0A {
                    if dialect == Dialect::Strict && !is_utf8(entry) {
                        break;
                    }
                    partition_keys.push(entry);
                } else {
                    if dialect == Dialect::Strict && !is_decimal_hash_key(entry) {
                        break;
                    }
                    explicit_hash_keys.push(entry);
                }
                pos = end;
            }
            // Maxima as index + 1 (0: none), to keep the loop branch-free.
            let (mut pk_bound, mut ehk_bound) = (0u64, 0u64);
            while let Some(record) = kpl_record_at(body, pos, dialect) {
                pk_bound = pk_bound.max(record.partition_key_index.saturating_add(1));
                ehk_bound = ehk_bound.max(
                    record
                        .explicit_hash_key_index
                        .map_or(0, |i| i.saturating_add(1)),
                );
                record_count += 1;
                pos = record.end;
            }
            if pk_bound > 0 {
                max_partition_key_index = max_partition_key_index.max(Some(pk_bound - 1));
            }
            if ehk_bound > 0 {
                max_explicit_hash_key_index = max_explicit_hash_key_index.max(Some(ehk_bound - 1));
            }
            reader.skip_to(pos);
            let Some(field) = reader.next_field()? else {
                break;
            };
            match (field.number, field.value) {
                (1, Value::Bytes(key)) => {
                    if dialect == Dialect::Strict && !is_utf8(key) {
                        return Err(DecodeError::InvalidUtf8 {
                            offset: field.offset,
                        });
                    }
                    partition_keys.push(key);
                }
                (2, Value::Bytes(key)) => {
                    // Decimal digits are ASCII, so only a key that is not decimal needs
                    // the UTF-8 check (to report the right defect).
                    if dialect == Dialect::Strict && !is_decimal_hash_key(key) {
                        let offset = field.offset;
                        return Err(match core::str::from_utf8(key) {
                            Err(_) => DecodeError::InvalidUtf8 { offset },
                            Ok(_) => DecodeError::InvalidExplicitHashKey { offset },
                        });
                    }
                    explicit_hash_keys.push(key);
                }
                (3, Value::Bytes(body)) => {
                    let record = parse_record(&field, body, dialect, true)?;
                    max_partition_key_index =
                        max_partition_key_index.max(Some(record.partition_key_index));
                    max_explicit_hash_key_index =
                        max_explicit_hash_key_index.max(record.explicit_hash_key_index);
                    record_count += 1;
                }
                _ => {}
            }
        }
        Ok(Aggregate {
            protobuf,
            partition_keys,
            explicit_hash_keys,
            record_count,
            max_partition_key_index,
            max_explicit_hash_key_index,
            dialect,
        })
    }

    /// Whether every record's indices point inside their tables, read as stored (no
    /// 32-bit cast). Known from the parse, without another pass.
    pub fn indices_in_range(&self) -> bool {
        let inside = |max: Option<u64>, len: usize| {
            max.is_none_or(|m| usize::try_from(m).is_ok_and(|m| m < len))
        };
        inside(self.max_partition_key_index, self.partition_keys.len())
            && inside(
                self.max_explicit_hash_key_index,
                self.explicit_hash_keys.len(),
            )
    }

    /// The partition key table, in stored order.
    pub fn partition_keys(&self) -> &[&'a [u8]] {
        &self.partition_keys
    }

    /// The explicit hash key table, in stored order.
    pub fn explicit_hash_keys(&self) -> &[&'a [u8]] {
        &self.explicit_hash_keys
    }

    /// Number of `Record` entries.
    pub fn record_count(&self) -> usize {
        self.record_count
    }

    /// The protobuf bytes this view was parsed from.
    pub fn protobuf(&self) -> &'a [u8] {
        self.protobuf
    }

    /// The records, in stored order, without allocating.
    pub fn records(&self) -> RawRecords<'a> {
        RawRecords {
            reader: FieldReader::new(
                self.protobuf,
                PROTOBUF_OFFSET,
                0,
                self.dialect,
                AGGREGATED_RECORD,
            ),
            dialect: self.dialect,
            remaining: self.record_count,
        }
    }

    /// Absolute offset (in the Kinesis record's data) of a slice taken from this
    /// aggregate, such as a table entry or a record's data.
    pub fn offset_of(&self, slice: &[u8]) -> usize {
        PROTOBUF_OFFSET + (slice.as_ptr() as usize).wrapping_sub(self.protobuf.as_ptr() as usize)
    }
}

/// Iterator over the records of an [`Aggregate`].
#[derive(Debug, Clone)]
pub struct RawRecords<'a> {
    reader: FieldReader<'a>,
    dialect: Dialect,
    remaining: usize,
}

impl<'a> RawRecords<'a> {
    /// Fast path over a validated aggregate: the next field is a record (`1A`, length
    /// shorter than 16 KiB) in KPL's layout. `None` leaves the position unchanged.
    #[inline(always)]
    fn next_kpl_record(&mut self) -> Option<RawRecord<'a>> {
        let buf = self.reader.body();
        let pos = self.reader.position();
        let found = kpl_record_at(buf, pos, self.dialect)?;
        let base = self.reader.base();
        self.reader.skip_to(found.end);
        Some(RawRecord {
            offset: base + pos,
            size: found.end - pos,
            partition_key_index: found.partition_key_index,
            explicit_hash_key_index: found.explicit_hash_key_index,
            data: buf.get(found.data_start..found.end)?,
            data_offset: base + found.data_start,
        })
    }
}

impl<'a> Iterator for RawRecords<'a> {
    type Item = RawRecord<'a>;

    #[inline(always)]
    fn next(&mut self) -> Option<RawRecord<'a>> {
        if self.remaining == 0 {
            return None;
        }
        if let Some(record) = self.next_kpl_record() {
            self.remaining -= 1;
            return Some(record);
        }
        while self.remaining > 0 {
            // The aggregate was validated, so errors cannot happen; stop if one did.
            let field = self.reader.next_field().ok()??;
            if let (3, Value::Bytes(body)) = (field.number, field.value) {
                self.remaining -= 1;
                return parse_record(&field, body, self.dialect, false).ok();
            }
        }
        None
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (0, Some(self.remaining))
    }
}

/// `AggregatedRecord`: both tables (1, 2) and the records (3) are length-delimited.
const AGGREGATED_RECORD: Schema = Schema {
    len_fields: 0b1110,
    varint_fields: 0,
};

/// `Record`: the indices (1, 2) are varints, data (3) and tags (4) length-delimited.
const RECORD: Schema = Schema {
    len_fields: 0b1_1000,
    varint_fields: 0b110,
};

/// `Tag`: key (1) and value (2) are strings.
const TAG: Schema = Schema {
    len_fields: 0b110,
    varint_fields: 0,
};

/// Parses one `Record` message body; `check_tags` also validates its `Tag` messages.
#[inline]
fn parse_record<'a>(
    field: &Field<'a>,
    body: &'a [u8],
    dialect: Dialect,
    check_tags: bool,
) -> Result<RawRecord<'a>, DecodeError> {
    if let Some(record) = parse_kpl_record(field, body, dialect) {
        return Ok(record);
    }
    parse_any_record(field, body, dialect, check_tags)
}

/// A table entry at `pos` with a one-byte tag (`0A` partition key, `12` explicit hash key)
/// and a one-byte length, fully inside `buf`: (tag, entry, position after it).
#[inline(always)]
fn short_table_entry_at(buf: &[u8], pos: usize) -> Option<(u8, &[u8], usize)> {
    let tag = *buf.get(pos)?;
    if tag != 0x0A && tag != 0x12 {
        return None;
    }
    let len = usize::from(*buf.get(pos + 1)?);
    if len >= 0x80 {
        return None;
    }
    let end = pos + 2 + len;
    Some((tag, buf.get(pos + 2..end)?, end))
}

/// Whether `bytes` are valid UTF-8, with a branch-free ASCII check first.
#[inline(always)]
fn is_utf8(bytes: &[u8]) -> bool {
    bytes.iter().fold(0u8, |acc, &b| acc | b) < 0x80 || core::str::from_utf8(bytes).is_ok()
}

/// A record field found at some position by [`kpl_record_at`].
#[derive(Debug, Clone, Copy)]
struct KplRecord {
    /// Position after the record field (and after its data).
    end: usize,
    /// Position of the data.
    data_start: usize,
    partition_key_index: u64,
    explicit_hash_key_index: Option<u64>,
}

/// A top-level record field at `pos` in KPL's layout: tag `1A`, a length shorter than
/// 16 KiB, then a body `08 <pk index> [10 <ehk index>] 1A <len> <data>` and nothing else.
/// `None` for anything else, which the general reader then handles; for the bytes it
/// accepts, the result is the general reader's.
///
/// It reads the body in place rather than calling [`kpl_record`] on a sub-slice: the
/// shared version costs 8 % more instructions per record in the validation pass
/// (callgrind), so the few lines of layout checks are written twice on purpose.
#[inline(always)]
fn kpl_record_at(buf: &[u8], pos: usize, dialect: Dialect) -> Option<KplRecord> {
    if *buf.get(pos)? != 0x1A {
        return None;
    }
    let (len, start) = short_len_at(buf, pos + 1)?;
    let end = start.checked_add(len)?;
    if end > buf.len() || *buf.get(start)? != 0x08 {
        return None;
    }
    let (partition_key_index, mut at) = varint_at(buf, start + 1, dialect)?;
    let mut explicit_hash_key_index = None;
    if buf.get(at) == Some(&0x10) {
        let (index, next) = varint_at(buf, at + 1, dialect)?;
        explicit_hash_key_index = Some(index);
        at = next;
    }
    if buf.get(at) != Some(&0x1A) {
        return None;
    }
    let (data_len, data_start) = varint_at(buf, at + 1, dialect)?;
    if data_start > end || usize::try_from(data_len).ok()? != end - data_start {
        return None;
    }
    Some(KplRecord {
        end,
        data_start,
        partition_key_index,
        explicit_hash_key_index,
    })
}

/// Fast path for the layout KPL writes: `08 <pk index> [10 <ehk index>] 1A <len> <data>`
/// and nothing else. `None` for any other layout (or any defect), which the general
/// reader then handles; for the bytes it accepts, the result is the general reader's.
#[inline(always)]
fn parse_kpl_record<'a>(
    field: &Field<'a>,
    body: &'a [u8],
    dialect: Dialect,
) -> Option<RawRecord<'a>> {
    kpl_record(field.offset, field.payload_offset, body, dialect)
}

/// [`parse_kpl_record`] for a record whose tag is at `offset` and body at
/// `payload_offset`.
#[inline(always)]
fn kpl_record(
    offset: usize,
    payload_offset: usize,
    body: &[u8],
    dialect: Dialect,
) -> Option<RawRecord<'_>> {
    if body.first() != Some(&0x08) {
        return None;
    }
    let (partition_key_index, mut pos) = varint_at(body, 1, dialect)?;
    let mut explicit_hash_key_index = None;
    if body.get(pos) == Some(&0x10) {
        let (index, next) = varint_at(body, pos + 1, dialect)?;
        explicit_hash_key_index = Some(index);
        pos = next;
    }
    if body.get(pos) != Some(&0x1A) {
        return None;
    }
    let (len, start) = varint_at(body, pos + 1, dialect)?;
    if usize::try_from(len).ok()? != body.len() - start {
        return None;
    }
    Some(RawRecord {
        offset,
        size: payload_offset + body.len() - offset,
        partition_key_index,
        explicit_hash_key_index,
        data: body.get(start..)?,
        data_offset: payload_offset + start,
    })
}

/// The general `Record` reader: any field order, unknown fields, repeated values, tags.
fn parse_any_record<'a>(
    field: &Field<'a>,
    body: &'a [u8],
    dialect: Dialect,
    check_tags: bool,
) -> Result<RawRecord<'a>, DecodeError> {
    let mut reader = FieldReader::new(body, field.payload_offset, 1, dialect, RECORD);
    let mut partition_key_index = None;
    let mut explicit_hash_key_index = None;
    let mut data = None;
    while let Some(inner) = reader.next_field()? {
        match (inner.number, inner.value) {
            (1, Value::Varint(v)) => partition_key_index = Some(v),
            (2, Value::Varint(v)) => explicit_hash_key_index = Some(v),
            (3, Value::Bytes(b)) => data = Some((b, inner.payload_offset)),
            (4, Value::Bytes(tag)) if check_tags => check_tag(&inner, tag, dialect)?,
            (4, Value::Bytes(_)) => {}
            _ => {}
        }
    }
    let Some(partition_key_index) = partition_key_index else {
        return Err(DecodeError::MissingPartitionKeyIndex {
            offset: field.offset,
        });
    };
    let Some((data, data_offset)) = data else {
        return Err(DecodeError::MissingData {
            offset: field.offset,
        });
    };
    Ok(RawRecord {
        offset: field.offset,
        size: field.payload_offset + body.len() - field.offset,
        partition_key_index,
        explicit_hash_key_index,
        data,
        data_offset,
    })
}

/// Validates one `Tag` message body: `key` is required.
fn check_tag(field: &Field<'_>, body: &[u8], dialect: Dialect) -> Result<(), DecodeError> {
    let mut reader = FieldReader::new(body, field.payload_offset, 2, dialect, TAG);
    let mut has_key = false;
    while let Some(inner) = reader.next_field()? {
        if let (1, Value::Bytes(_)) = (inner.number, inner.value) {
            has_key = true;
        }
    }
    if has_key {
        Ok(())
    } else {
        Err(DecodeError::MissingTagKey {
            offset: field.offset,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_boundaries() {
        assert_eq!(Frame::split(&[0xF3, 0x89, 0x9A]), Frame::NoMagic);
        assert_eq!(Frame::split(&[0u8; 40]), Frame::NoMagic);
        let mut twenty = MAGIC.to_vec();
        twenty.extend_from_slice(&[0; 16]);
        assert_eq!(Frame::split(&twenty), Frame::TooShort);
        twenty.push(0);
        assert!(matches!(
            Frame::split(&twenty),
            Frame::Framed { protobuf, .. } if protobuf.len() == 1
        ));
    }

    #[test]
    fn missing_required_fields() {
        // record with data only
        let no_pk = [0x1A, 0x02, 0x1A, 0x00];
        assert_eq!(
            Aggregate::parse(&no_pk, Dialect::Java).err(),
            Some(DecodeError::MissingPartitionKeyIndex { offset: 4 })
        );
        let no_data = [0x0A, 0x00, 0x1A, 0x02, 0x08, 0x00];
        assert_eq!(
            Aggregate::parse(&no_data, Dialect::Java).err(),
            Some(DecodeError::MissingData { offset: 6 })
        );
        // tag without key: record { pk 0, data "", tag { value "" } }
        let no_key = [0x1A, 0x08, 0x08, 0x00, 0x1A, 0x00, 0x22, 0x02, 0x12, 0x00];
        assert_eq!(
            Aggregate::parse(&no_key, Dialect::Java).err(),
            Some(DecodeError::MissingTagKey { offset: 10 })
        );
    }

    #[test]
    fn wrong_wire_type_is_unknown_for_java_only() {
        // pk table entry sent as a varint
        let buf = [0x08, 0x05];
        let agg = Aggregate::parse(&buf, Dialect::Java);
        assert!(agg.is_ok_and(|a| a.partition_keys().is_empty()));
        assert_eq!(
            Aggregate::parse(&buf, Dialect::Strict).err(),
            Some(DecodeError::WrongWireType {
                offset: 4,
                field: 1,
                wire_type: 0
            })
        );
    }

    #[test]
    fn interleaved_fields_and_last_value_wins() {
        // record first (pk index 0 then 1, data "x" then "y"), tables afterwards
        let buf = [
            0x1A, 0x0A, 0x08, 0x00, 0x1A, 0x01, b'x', 0x08, 0x01, 0x1A, 0x01, b'y', 0x0A, 0x01,
            b'p', 0x0A, 0x01, b'q',
        ];
        let agg = Aggregate::parse(&buf, Dialect::Strict).unwrap();
        let rec = agg.records().next().unwrap();
        assert_eq!(rec.partition_key_index, 1);
        assert_eq!(rec.data, b"y");
        assert_eq!(rec.data_offset, 4 + 11);
        assert_eq!(agg.partition_keys(), &[&b"p"[..], &b"q"[..]]);
        assert_eq!(agg.offset_of(agg.partition_keys()[1]), 4 + 17);
    }
}
