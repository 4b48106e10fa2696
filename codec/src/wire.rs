//! Protobuf wire primitives: varints, tags and a field reader over one message body.
//!
//! Two dialects are supported, because the consumers we imitate disagree at the edges:
//! - [`Dialect::Java`] reads like protobuf-java (what KCL uses): tags and lengths are read
//!   as varints truncated to 32 bits, a negative length is an error, and 10-byte varints
//!   silently drop bits above 64.
//! - [`Dialect::Strict`] reads like prost: tags must fit `u32`, lengths are full `u64`, a
//!   10-byte varint that overflows `u64` is malformed.
//!
//! Both reject varints longer than 10 bytes, field number 0, wire types 6 and 7, stray
//! end-group tags, unclosed groups and nesting deeper than [`MAX_DEPTH`].
//!
//! Nothing here allocates; memory never depends on a length claimed in the input.

use crate::error::DecodeError;

/// Deepest nesting of messages and groups accepted (protobuf-java's and prost's default).
pub(crate) const MAX_DEPTH: u32 = 100;

/// Which protobuf implementation's reading rules to follow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Dialect {
    /// protobuf-java, as used by KCL.
    Java,
    /// prost-like strict reading.
    Strict,
}

pub(crate) const WIRE_VARINT: u8 = 0;
pub(crate) const WIRE_FIXED64: u8 = 1;
pub(crate) const WIRE_LEN: u8 = 2;
pub(crate) const WIRE_START_GROUP: u8 = 3;
pub(crate) const WIRE_END_GROUP: u8 = 4;
pub(crate) const WIRE_FIXED32: u8 = 5;

/// The value of one field, as far as the reader interprets it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Value<'a> {
    /// Wire type 0.
    Varint(u64),
    /// Wire type 2: the payload, borrowed from the input.
    Bytes(&'a [u8]),
    /// Fixed-size values and skipped groups.
    Skipped,
}

/// One field of a message body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Field<'a> {
    /// Field number (never 0).
    pub number: u32,
    /// Wire type (0..=5, never 4).
    pub wire_type: u8,
    /// The value.
    pub value: Value<'a>,
    /// Absolute offset of the tag's first byte.
    pub offset: usize,
    /// Absolute offset of the payload (for `Value::Bytes`).
    pub payload_offset: usize,
}

enum VarintError {
    Truncated,
    Malformed,
}

/// Reads a varint of at most 10 bytes at `pos`. Returns the value and the position after
/// it. In the strict dialect, a 10th byte above 1 (a value over `u64::MAX`) is malformed.
#[inline]
fn read_varint(buf: &[u8], pos: usize, dialect: Dialect) -> Result<(u64, usize), VarintError> {
    let Some(&first) = buf.get(pos) else {
        return Err(VarintError::Truncated);
    };
    if first < 0x80 {
        return Ok((u64::from(first), pos + 1));
    }
    let mut value = u64::from(first & 0x7F);
    let mut i = 1;
    loop {
        let Some(&byte) = buf.get(pos + i) else {
            return Err(VarintError::Truncated);
        };
        if i == 9 {
            if byte >= 0x80 {
                return Err(VarintError::Malformed);
            }
            if dialect == Dialect::Strict && byte > 1 {
                return Err(VarintError::Malformed);
            }
        }
        value |= u64::from(byte & 0x7F) << (7 * i);
        i += 1;
        if byte < 0x80 {
            return Ok((value, pos + i));
        }
    }
}

/// The fields a message knows: which field numbers (below 64) are length-delimited and
/// which are varints. Other numbers are unknown fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Schema {
    /// Bit `n` set: field `n` is length-delimited.
    pub len_fields: u64,
    /// Bit `n` set: field `n` is a varint.
    pub varint_fields: u64,
}

impl Schema {
    /// The wire type the schema gives field `number`, `None` for an unknown field.
    #[inline(always)]
    pub(crate) fn wire_type(&self, number: u32) -> Option<u8> {
        let bit = 1u64.checked_shl(number).unwrap_or(0);
        if self.len_fields & bit != 0 {
            Some(WIRE_LEN)
        } else if self.varint_fields & bit != 0 {
            Some(WIRE_VARINT)
        } else {
            None
        }
    }
}

/// A length prefix of one or two bytes (below 16 KiB) at `pos`: (length, position after
/// it). `None` for longer prefixes, which the general reader handles.
#[inline(always)]
pub(crate) fn short_len_at(buf: &[u8], pos: usize) -> Option<(usize, usize)> {
    let first = usize::from(*buf.get(pos)?);
    if first < 0x80 {
        return Some((first, pos + 1));
    }
    let second = usize::from(*buf.get(pos + 1)?);
    if second >= 0x80 {
        return None;
    }
    Some(((first & 0x7F) | (second << 7), pos + 2))
}

/// Reads a varint at `pos` for a caller that falls back to [`FieldReader`] on any
/// problem: `None` when truncated or malformed.
#[inline(always)]
pub(crate) fn varint_at(buf: &[u8], pos: usize, dialect: Dialect) -> Option<(u64, usize)> {
    let first = *buf.get(pos)?;
    if first < 0x80 {
        return Some((u64::from(first), pos + 1));
    }
    read_varint(buf, pos, dialect).ok()
}

/// Iterates over the fields of one message body.
#[derive(Debug, Clone)]
pub(crate) struct FieldReader<'a> {
    buf: &'a [u8],
    pos: usize,
    base: usize,
    depth: u32,
    dialect: Dialect,
    schema: Schema,
}

impl<'a> FieldReader<'a> {
    /// A reader over `buf`, whose first byte is at absolute offset `base`, nested `depth`
    /// levels below the top-level message. In the strict dialect, a field that `schema`
    /// knows but that comes with another wire type is an error, detected at its tag (as
    /// prost does); protobuf-java skips it as an unknown field.
    pub(crate) fn new(
        buf: &'a [u8],
        base: usize,
        depth: u32,
        dialect: Dialect,
        schema: Schema,
    ) -> Self {
        FieldReader {
            buf,
            pos: 0,
            base,
            depth,
            dialect,
            schema,
        }
    }

    /// Reads a tag at `pos`; returns (field number, wire type, position after the tag).
    #[inline]
    fn read_tag(&self, pos: usize) -> Result<(u32, u8, usize), DecodeError> {
        let offset = self.base + pos;
        let (raw, next) = match read_varint(self.buf, pos, self.dialect) {
            Ok(v) => v,
            Err(VarintError::Truncated) => return Err(DecodeError::Truncated { offset }),
            Err(VarintError::Malformed) => return Err(DecodeError::MalformedVarint { offset }),
        };
        let tag = match self.dialect {
            // protobuf-java reads tags with readRawVarint32: the low 32 bits.
            Dialect::Java => raw as u32,
            Dialect::Strict => match u32::try_from(raw) {
                Ok(tag) => tag,
                Err(_) => return Err(DecodeError::MalformedVarint { offset }),
            },
        };
        let number = tag >> 3;
        let wire_type = (tag & 7) as u8;
        if number == 0 {
            return Err(DecodeError::FieldNumberZero { offset });
        }
        Ok((number, wire_type, next))
    }

    /// Reads the value of a field whose tag ended at `pos`. Groups are skipped here.
    #[inline]
    fn read_value(
        &self,
        number: u32,
        wire_type: u8,
        pos: usize,
        offset: usize,
    ) -> Result<(Value<'a>, usize), DecodeError> {
        let remaining = self.buf.len() - pos;
        match wire_type {
            WIRE_VARINT => match read_varint(self.buf, pos, self.dialect) {
                Ok((v, next)) => Ok((Value::Varint(v), next)),
                Err(VarintError::Truncated) => Err(DecodeError::Truncated { offset }),
                Err(VarintError::Malformed) => Err(DecodeError::MalformedVarint { offset }),
            },
            WIRE_FIXED64 if remaining >= 8 => Ok((Value::Skipped, pos + 8)),
            WIRE_FIXED32 if remaining >= 4 => Ok((Value::Skipped, pos + 4)),
            WIRE_FIXED64 | WIRE_FIXED32 => Err(DecodeError::Truncated { offset }),
            WIRE_LEN => {
                let (raw, start) = match read_varint(self.buf, pos, self.dialect) {
                    Ok(v) => v,
                    Err(VarintError::Truncated) => return Err(DecodeError::Truncated { offset }),
                    Err(VarintError::Malformed) => {
                        return Err(DecodeError::MalformedVarint { offset })
                    }
                };
                let len = match self.dialect {
                    // readRawVarint32 then a signed int: negative sizes are errors.
                    Dialect::Java => match usize::try_from(raw as u32 as i32) {
                        Ok(len) => len,
                        Err(_) => return Err(DecodeError::Truncated { offset }),
                    },
                    Dialect::Strict => usize::try_from(raw).unwrap_or(usize::MAX),
                };
                if len > self.buf.len() - start {
                    return Err(DecodeError::Truncated { offset });
                }
                Ok((Value::Bytes(&self.buf[start..start + len]), start + len))
            }
            WIRE_START_GROUP => {
                let next = self.skip_group(number, pos, offset, self.depth)?;
                Ok((Value::Skipped, next))
            }
            WIRE_END_GROUP => Err(DecodeError::UnexpectedEndGroup { offset }),
            _ => Err(DecodeError::InvalidWireType { offset, wire_type }),
        }
    }

    /// Skips the body of a group opened by the tag at `start_offset` (at `depth`), up to
    /// and including its matching end-group tag. Returns the position after it.
    fn skip_group(
        &self,
        number: u32,
        mut pos: usize,
        start_offset: usize,
        depth: u32,
    ) -> Result<usize, DecodeError> {
        if depth >= MAX_DEPTH {
            return Err(DecodeError::RecursionLimit {
                offset: start_offset,
            });
        }
        loop {
            if pos >= self.buf.len() {
                return Err(DecodeError::Truncated {
                    offset: start_offset,
                });
            }
            let offset = self.base + pos;
            let (inner, wire_type, next) = self.read_tag(pos)?;
            if wire_type == WIRE_END_GROUP {
                if inner == number {
                    return Ok(next);
                }
                return Err(DecodeError::UnexpectedEndGroup { offset });
            }
            pos = if wire_type == WIRE_START_GROUP {
                self.skip_group(inner, next, offset, depth + 1)?
            } else {
                self.read_value(inner, wire_type, next, offset)?.1
            };
        }
    }

    /// The position of the next field in the body.
    #[inline(always)]
    pub(crate) fn position(&self) -> usize {
        self.pos
    }

    /// Skips to `pos` in the body (a position after a field the caller read itself).
    #[inline(always)]
    pub(crate) fn skip_to(&mut self, pos: usize) {
        self.pos = pos;
    }

    /// The body.
    #[inline(always)]
    pub(crate) fn body(&self) -> &'a [u8] {
        self.buf
    }

    /// Absolute offset of the body's first byte.
    #[inline(always)]
    pub(crate) fn base(&self) -> usize {
        self.base
    }

    /// The next field, `None` at the end of the body.
    #[inline]
    pub(crate) fn next_field(&mut self) -> Result<Option<Field<'a>>, DecodeError> {
        if let Some(field) = self.next_short_len_field() {
            return Ok(Some(field));
        }
        self.next_field_general()
    }

    /// Fast path for what KPL writes most: a one-byte tag of a length-delimited field
    /// with a payload shorter than 16 KiB (one- or two-byte length, no truncation), that
    /// the schema expects to be length-delimited or does not know. `None` sends the
    /// caller to the general path, which gives the same result for these bytes.
    #[inline(always)]
    fn next_short_len_field(&mut self) -> Option<Field<'a>> {
        let buf = self.buf;
        let pos = self.pos;
        let tag = *buf.get(pos)?;
        if tag >= 0x80 || tag & 7 != WIRE_LEN || tag < 8 {
            return None;
        }
        let number = u32::from(tag >> 3);
        if self.dialect == Dialect::Strict && self.schema.varint_fields & (1u64 << (tag >> 3)) != 0
        {
            return None;
        }
        let (len, start) = short_len_at(buf, pos + 1)?;
        let end = start.checked_add(len)?;
        let payload = buf.get(start..end)?;
        self.pos = end;
        Some(Field {
            number,
            wire_type: WIRE_LEN,
            value: Value::Bytes(payload),
            offset: self.base + pos,
            payload_offset: self.base + start,
        })
    }

    /// Any field, with every check.
    fn next_field_general(&mut self) -> Result<Option<Field<'a>>, DecodeError> {
        if self.pos >= self.buf.len() {
            return Ok(None);
        }
        let offset = self.base + self.pos;
        let (number, wire_type, after_tag) = self.read_tag(self.pos)?;
        if self.dialect == Dialect::Strict && wire_type <= WIRE_FIXED32 {
            if let Some(expected) = self.schema.wire_type(number) {
                if expected != wire_type {
                    return Err(DecodeError::WrongWireType {
                        offset,
                        field: number,
                        wire_type,
                    });
                }
            }
        }
        let (value, next) = self.read_value(number, wire_type, after_tag, offset)?;
        let payload_offset = match value {
            Value::Bytes(b) => self.base + (next - b.len()),
            _ => self.base + after_tag,
        };
        self.pos = next;
        Ok(Some(Field {
            number,
            wire_type,
            value,
            offset,
            payload_offset,
        }))
    }
}

/// Number of bytes of the minimal varint encoding of `value`.
#[inline]
pub(crate) const fn varint_len(value: u64) -> usize {
    // 1 byte per started group of 7 bits, at least 1.
    let bits = 64 - (value | 1).leading_zeros() as usize;
    bits.div_ceil(7)
}

/// Appends the minimal varint encoding of `value`.
#[inline]
pub(crate) fn put_varint(out: &mut alloc::vec::Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

/// Size of a length-delimited field with a one-byte tag and a payload of `len` bytes.
#[inline]
pub(crate) const fn len_field_size(len: usize) -> usize {
    1 + varint_len(len as u64) + len
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;
    use alloc::vec::Vec;

    fn fields(buf: &[u8], dialect: Dialect) -> Result<Vec<(u32, u8)>, DecodeError> {
        let unknown = Schema {
            len_fields: 0,
            varint_fields: 0,
        };
        let mut r = FieldReader::new(buf, 0, 0, dialect, unknown);
        let mut out = Vec::new();
        while let Some(f) = r.next_field()? {
            out.push((f.number, f.wire_type));
        }
        Ok(out)
    }

    #[test]
    fn varint_len_matches_encoding() {
        for v in [0u64, 1, 127, 128, 16383, 16384, u32::MAX as u64, u64::MAX] {
            let mut out = Vec::new();
            put_varint(&mut out, v);
            assert_eq!(out.len(), varint_len(v), "{v}");
            assert_eq!(
                read_varint(&out, 0, Dialect::Strict).ok(),
                Some((v, out.len()))
            );
        }
    }

    #[test]
    fn ten_byte_varint_overflow_is_strict_only() {
        let over = [0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x7F];
        assert!(read_varint(&over, 0, Dialect::Strict).is_err());
        assert_eq!(
            read_varint(&over, 0, Dialect::Java).ok(),
            Some((u64::MAX, 10))
        );
        let eleven = [0x80; 11];
        assert!(matches!(
            read_varint(&eleven, 0, Dialect::Java),
            Err(VarintError::Malformed)
        ));
    }

    #[test]
    fn groups_are_skipped_and_must_match() {
        // field 5 start group { field 1 varint 1 } field 5 end group, then field 2 varint.
        let ok = [0x2B, 0x08, 0x01, 0x2C, 0x10, 0x00];
        assert_eq!(fields(&ok, Dialect::Strict), Ok(vec![(5, 3), (2, 0)]));
        let mismatched = [0x2B, 0x34];
        assert_eq!(
            fields(&mismatched, Dialect::Java),
            Err(DecodeError::UnexpectedEndGroup { offset: 1 })
        );
        let unclosed = [0x2B, 0x08, 0x01];
        assert_eq!(
            fields(&unclosed, Dialect::Java),
            Err(DecodeError::Truncated { offset: 0 })
        );
        let stray = [0x08, 0x01, 0x2C];
        assert_eq!(
            fields(&stray, Dialect::Strict),
            Err(DecodeError::UnexpectedEndGroup { offset: 2 })
        );
    }

    #[test]
    fn deep_groups_hit_the_limit() {
        // 101 nested groups of field 1: start tags 0x0B, end tags 0x0C.
        let mut deep = vec![0x0B; 101];
        deep.extend_from_slice(&[0x0C; 101]);
        assert_eq!(
            fields(&deep, Dialect::Strict),
            Err(DecodeError::RecursionLimit { offset: 100 })
        );
        assert_eq!(fields(&deep[1..201], Dialect::Strict), Ok(vec![(1, 3)]));
    }

    #[test]
    fn java_truncates_lengths_and_tags_to_32_bits() {
        // field 1, length varint 2^32 (low 32 bits 0): an empty field under Java.
        let buf = [0x0A, 0x80, 0x80, 0x80, 0x80, 0x10];
        assert_eq!(fields(&buf, Dialect::Java), Ok(vec![(1, 2)]));
        assert_eq!(
            fields(&buf, Dialect::Strict),
            Err(DecodeError::Truncated { offset: 0 })
        );
        // tag varint 2^32 + 8 (field 1 varint after truncation), value 1.
        let tag = [0x88, 0x80, 0x80, 0x80, 0x10, 0x01];
        assert_eq!(fields(&tag, Dialect::Java), Ok(vec![(1, 0)]));
        assert_eq!(
            fields(&tag, Dialect::Strict),
            Err(DecodeError::MalformedVarint { offset: 0 })
        );
        // negative length under Java.
        let neg = [0x0A, 0xFF, 0xFF, 0xFF, 0xFF, 0x0F];
        assert!(fields(&neg, Dialect::Java).is_err());
    }

    #[test]
    fn field_zero_and_bad_wire_types() {
        assert_eq!(
            fields(&[0x02, 0x00], Dialect::Java),
            Err(DecodeError::FieldNumberZero { offset: 0 })
        );
        assert_eq!(
            fields(&[0x0E], Dialect::Java),
            Err(DecodeError::InvalidWireType {
                offset: 0,
                wire_type: 6
            })
        );
        assert_eq!(
            fields(&[0x09, 1, 2, 3], Dialect::Java),
            Err(DecodeError::Truncated { offset: 0 })
        );
    }
}
