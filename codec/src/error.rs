//! The error types of the codec: one enum for decoding, one for encoding, and one for
//! reading a hash range from text.

use core::fmt;

/// Why the bytes of a Kinesis record are not a valid aggregated record.
///
/// Every variant carries `offset`: the byte offset, from the start of the Kinesis record's
/// data (the magic is at 0, the protobuf starts at 4), where the defect is. For structural
/// defects that is the first byte of the tag of the protobuf field concerned; for
/// `Missing*` it is the tag of the message lacking the field; for index and range defects
/// it is the tag of the record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum DecodeError {
    /// The magic is present but 16 bytes or fewer follow it.
    TooShort {
        /// Always 4, right after the magic.
        offset: usize,
    },
    /// The stored MD5 differs from the MD5 of the protobuf bytes.
    Md5Mismatch {
        /// Where the stored digest starts.
        offset: usize,
    },
    /// A tag, value, length or payload runs past the end of its enclosing message, or a
    /// group is never closed.
    Truncated {
        /// Tag of the incomplete field.
        offset: usize,
    },
    /// A varint longer than 10 bytes, or (strict) one whose value does not fit its type.
    MalformedVarint {
        /// Tag of the field holding the varint.
        offset: usize,
    },
    /// A tag with field number 0.
    FieldNumberZero {
        /// The tag.
        offset: usize,
    },
    /// Wire type 6 or 7.
    InvalidWireType {
        /// The tag.
        offset: usize,
        /// The wire type found.
        wire_type: u8,
    },
    /// A known field with another wire type than the schema's (strict only; protobuf-java
    /// skips it as unknown).
    WrongWireType {
        /// The tag.
        offset: usize,
        /// The field number.
        field: u32,
        /// The wire type found.
        wire_type: u8,
    },
    /// An end-group tag that closes no open group.
    UnexpectedEndGroup {
        /// The end-group tag.
        offset: usize,
    },
    /// Messages and groups nested deeper than 100 levels.
    RecursionLimit {
        /// The tag that goes too deep.
        offset: usize,
    },
    /// A `Record` without its required `partition_key_index`.
    MissingPartitionKeyIndex {
        /// The record's tag.
        offset: usize,
    },
    /// A `Record` without its required `data`.
    MissingData {
        /// The record's tag.
        offset: usize,
    },
    /// A `Tag` without its required `key`.
    MissingTagKey {
        /// The tag's tag.
        offset: usize,
    },
    /// A table entry that is not valid UTF-8 (strict only).
    InvalidUtf8 {
        /// The entry's tag.
        offset: usize,
    },
    /// An explicit hash key that is not a decimal number in `[0, 2^128 - 1]`.
    InvalidExplicitHashKey {
        /// The table entry's tag (strict), or the record's tag (KCL drop reason).
        offset: usize,
    },
    /// A record's partition key index points outside the table.
    PartitionKeyIndexOutOfRange {
        /// The record's tag.
        offset: usize,
        /// The index found.
        index: u64,
    },
    /// A record's explicit hash key index points outside the table.
    ExplicitHashKeyIndexOutOfRange {
        /// The record's tag.
        offset: usize,
        /// The index found.
        index: u64,
    },
    /// A record's effective hash key lies outside the shard's hash range.
    OutsideShardRange {
        /// The record's tag.
        offset: usize,
    },
}

impl DecodeError {
    /// The byte offset of the defect, from the start of the Kinesis record's data.
    pub fn offset(&self) -> usize {
        match *self {
            DecodeError::TooShort { offset }
            | DecodeError::Md5Mismatch { offset }
            | DecodeError::Truncated { offset }
            | DecodeError::MalformedVarint { offset }
            | DecodeError::FieldNumberZero { offset }
            | DecodeError::InvalidWireType { offset, .. }
            | DecodeError::WrongWireType { offset, .. }
            | DecodeError::UnexpectedEndGroup { offset }
            | DecodeError::RecursionLimit { offset }
            | DecodeError::MissingPartitionKeyIndex { offset }
            | DecodeError::MissingData { offset }
            | DecodeError::MissingTagKey { offset }
            | DecodeError::InvalidUtf8 { offset }
            | DecodeError::InvalidExplicitHashKey { offset }
            | DecodeError::PartitionKeyIndexOutOfRange { offset, .. }
            | DecodeError::ExplicitHashKeyIndexOutOfRange { offset, .. }
            | DecodeError::OutsideShardRange { offset } => offset,
        }
    }

    /// The variant's name, e.g. `"Md5Mismatch"`: the `kind` used by the test vectors.
    pub fn kind(&self) -> &'static str {
        match self {
            DecodeError::TooShort { .. } => "TooShort",
            DecodeError::Md5Mismatch { .. } => "Md5Mismatch",
            DecodeError::Truncated { .. } => "Truncated",
            DecodeError::MalformedVarint { .. } => "MalformedVarint",
            DecodeError::FieldNumberZero { .. } => "FieldNumberZero",
            DecodeError::InvalidWireType { .. } => "InvalidWireType",
            DecodeError::WrongWireType { .. } => "WrongWireType",
            DecodeError::UnexpectedEndGroup { .. } => "UnexpectedEndGroup",
            DecodeError::RecursionLimit { .. } => "RecursionLimit",
            DecodeError::MissingPartitionKeyIndex { .. } => "MissingPartitionKeyIndex",
            DecodeError::MissingData { .. } => "MissingData",
            DecodeError::MissingTagKey { .. } => "MissingTagKey",
            DecodeError::InvalidUtf8 { .. } => "InvalidUtf8",
            DecodeError::InvalidExplicitHashKey { .. } => "InvalidExplicitHashKey",
            DecodeError::PartitionKeyIndexOutOfRange { .. } => "PartitionKeyIndexOutOfRange",
            DecodeError::ExplicitHashKeyIndexOutOfRange { .. } => "ExplicitHashKeyIndexOutOfRange",
            DecodeError::OutsideShardRange { .. } => "OutsideShardRange",
        }
    }
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let offset = self.offset();
        match *self {
            DecodeError::TooShort { .. } => {
                f.write_str("magic present but 16 bytes or fewer follow it")
            }
            DecodeError::Md5Mismatch { .. } => {
                write!(f, "stored MD5 at byte {offset} does not match the protobuf")
            }
            DecodeError::Truncated { .. } => write!(f, "field at byte {offset} is truncated"),
            DecodeError::MalformedVarint { .. } => {
                write!(f, "malformed varint in the field at byte {offset}")
            }
            DecodeError::FieldNumberZero { .. } => write!(f, "field number 0 at byte {offset}"),
            DecodeError::InvalidWireType { wire_type, .. } => {
                write!(f, "invalid wire type {wire_type} at byte {offset}")
            }
            DecodeError::WrongWireType {
                field, wire_type, ..
            } => write!(
                f,
                "field {field} has the wrong wire type {wire_type} at byte {offset}"
            ),
            DecodeError::UnexpectedEndGroup { .. } => {
                write!(f, "end-group tag at byte {offset} closes no open group")
            }
            DecodeError::RecursionLimit { .. } => {
                write!(f, "nesting deeper than 100 levels at byte {offset}")
            }
            DecodeError::MissingPartitionKeyIndex { .. } => write!(
                f,
                "record at byte {offset} lacks its required partition_key_index"
            ),
            DecodeError::MissingData { .. } => {
                write!(f, "record at byte {offset} lacks its required data")
            }
            DecodeError::MissingTagKey { .. } => {
                write!(f, "tag at byte {offset} lacks its required key")
            }
            DecodeError::InvalidUtf8 { .. } => {
                write!(f, "table entry at byte {offset} is not valid UTF-8")
            }
            DecodeError::InvalidExplicitHashKey { .. } => write!(
                f,
                "explicit hash key at byte {offset} is not a decimal number in [0, 2^128-1]"
            ),
            DecodeError::PartitionKeyIndexOutOfRange { index, .. } => write!(
                f,
                "record at byte {offset} has partition key index {index}, outside the table"
            ),
            DecodeError::ExplicitHashKeyIndexOutOfRange { index, .. } => write!(
                f,
                "record at byte {offset} has explicit hash key index {index}, outside the table"
            ),
            DecodeError::OutsideShardRange { .. } => write!(
                f,
                "record at byte {offset} has a hash key outside the shard's hash range"
            ),
        }
    }
}

#[cfg(feature = "std")]
impl std::error::Error for DecodeError {}

/// Why a user record or a configuration cannot be encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum EncodeError {
    /// The partition key is empty.
    EmptyPartitionKey,
    /// The partition key has more than 256 UTF-16 code units (KPL's count).
    PartitionKeyTooLong {
        /// Its length in UTF-16 code units.
        utf16_units: usize,
    },
    /// The explicit hash key is not 1 or more ASCII digits with a value of at most
    /// 2^128 - 1.
    InvalidExplicitHashKey {
        /// Offset in the key text of the first offending character (its length when the
        /// key is empty or too large).
        offset: usize,
    },
    /// Data plus partition key exceed the Kinesis record limit.
    RecordTooLarge {
        /// Data length plus UTF-8 partition key length.
        size: usize,
        /// The configured Kinesis record limit.
        limit: usize,
    },
    /// `max_size` outside 64..=10,485,760.
    InvalidMaxSize {
        /// The value given.
        value: u64,
    },
    /// `max_count` outside 1..=4,294,967,295.
    InvalidMaxCount {
        /// The value given.
        value: u64,
    },
    /// `max_record_size` outside 64..=10,485,760.
    InvalidMaxRecordSize {
        /// The value given.
        value: u64,
    },
}

impl EncodeError {
    /// The variant's name, e.g. `"RecordTooLarge"`: the `kind` used by the test vectors.
    pub fn kind(&self) -> &'static str {
        match self {
            EncodeError::EmptyPartitionKey => "EmptyPartitionKey",
            EncodeError::PartitionKeyTooLong { .. } => "PartitionKeyTooLong",
            EncodeError::InvalidExplicitHashKey { .. } => "InvalidExplicitHashKey",
            EncodeError::RecordTooLarge { .. } => "RecordTooLarge",
            EncodeError::InvalidMaxSize { .. } => "InvalidMaxSize",
            EncodeError::InvalidMaxCount { .. } => "InvalidMaxCount",
            EncodeError::InvalidMaxRecordSize { .. } => "InvalidMaxRecordSize",
        }
    }
}

impl fmt::Display for EncodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            EncodeError::EmptyPartitionKey => f.write_str("partition key is empty"),
            EncodeError::PartitionKeyTooLong { utf16_units } => write!(
                f,
                "partition key has {utf16_units} UTF-16 code units, more than 256"
            ),
            EncodeError::InvalidExplicitHashKey { offset } => write!(
                f,
                "explicit hash key is not a decimal number in [0, 2^128-1] (at byte {offset})"
            ),
            EncodeError::RecordTooLarge { size, limit } => write!(
                f,
                "data plus partition key is {size} bytes, over the Kinesis record limit of {limit}"
            ),
            EncodeError::InvalidMaxSize { value } => {
                write!(f, "max_size {value} is outside 64..=10485760")
            }
            EncodeError::InvalidMaxCount { value } => {
                write!(f, "max_count {value} is outside 1..=4294967295")
            }
            EncodeError::InvalidMaxRecordSize { value } => {
                write!(f, "max_record_size {value} is outside 64..=10485760")
            }
        }
    }
}

#[cfg(feature = "std")]
impl std::error::Error for EncodeError {}

/// Why a text is not a hash range `START-END` (two decimal hash keys, `START <= END`), as
/// [`HashRange`](crate::HashRange)'s `FromStr` reads it.
///
/// Offsets are byte offsets into the whole text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum HashRangeError {
    /// There is no `-` between START and END.
    MissingDash,
    /// START is not 1 or more ASCII digits with a value of at most 2^128 - 1.
    InvalidStart {
        /// Offset of the first offending character (the dash when START is empty or too
        /// large).
        offset: usize,
    },
    /// END is not 1 or more ASCII digits with a value of at most 2^128 - 1.
    InvalidEnd {
        /// Offset of the first offending character (the text's length when END is empty
        /// or too large).
        offset: usize,
    },
    /// START is greater than END.
    StartAfterEnd {
        /// The value of START.
        start: u128,
        /// The value of END.
        end: u128,
    },
}

impl fmt::Display for HashRangeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            HashRangeError::MissingDash => f.write_str("no '-' between START and END"),
            HashRangeError::InvalidStart { offset } => {
                write!(f, "START is not a decimal hash key (at byte {offset})")
            }
            HashRangeError::InvalidEnd { offset } => {
                write!(f, "END is not a decimal hash key (at byte {offset})")
            }
            HashRangeError::StartAfterEnd { start, end } => {
                write!(f, "START {start} is greater than END {end}")
            }
        }
    }
}

#[cfg(feature = "std")]
impl std::error::Error for HashRangeError {}
