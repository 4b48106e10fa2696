//! A prost-based reference model of the KPL aggregated record format, used as a test
//! oracle by kpl-codec's tests and fuzz targets. The model shares no code with kpl-codec;
//! only [`differential`] calls kpl-codec, to compare it with the model.
//!
//! prost decodes well-formed protobuf but does not enforce `required` fields; strings are
//! declared as `bytes` so that prost accepts invalid UTF-8 like protobuf-java does.
#![allow(missing_docs)]

pub mod differential;
pub mod reducer;

use prost::Message;

#[derive(Clone, PartialEq, Message)]
pub struct AggregatedRecord {
    #[prost(bytes = "vec", repeated, tag = "1")]
    pub partition_key_table: Vec<Vec<u8>>,
    #[prost(bytes = "vec", repeated, tag = "2")]
    pub explicit_hash_key_table: Vec<Vec<u8>>,
    #[prost(message, repeated, tag = "3")]
    pub records: Vec<Record>,
}

#[derive(Clone, PartialEq, Message)]
pub struct Record {
    #[prost(uint64, optional, tag = "1")]
    pub partition_key_index: Option<u64>,
    #[prost(uint64, optional, tag = "2")]
    pub explicit_hash_key_index: Option<u64>,
    #[prost(bytes = "vec", optional, tag = "3")]
    pub data: Option<Vec<u8>>,
    #[prost(message, repeated, tag = "4")]
    pub tags: Vec<Tag>,
}

#[derive(Clone, PartialEq, Message)]
pub struct Tag {
    #[prost(bytes = "vec", optional, tag = "1")]
    pub key: Option<Vec<u8>>,
    #[prost(bytes = "vec", optional, tag = "2")]
    pub value: Option<Vec<u8>>,
}

pub const MAGIC: [u8; 4] = [0xF3, 0x89, 0x9A, 0xC2];

/// Frames a protobuf: magic, bytes, MD5 (computed with the md-5 crate directly).
pub fn frame(protobuf: &[u8]) -> Vec<u8> {
    use md5::{Digest, Md5};
    let mut out = MAGIC.to_vec();
    out.extend_from_slice(protobuf);
    out.extend_from_slice(&Md5::digest(protobuf));
    out
}

/// A user record as the oracle sees it: (partition key, explicit hash key text, data).
pub type Owned = (Vec<u8>, Option<Vec<u8>>, Vec<u8>);

/// What a strict decoder must return for a message prost decoded: the user records, or
/// `None` when a rule prost does not enforce is broken (required fields, UTF-8 keys,
/// explicit hash key syntax, index ranges).
pub fn strict_expectation(message: &AggregatedRecord) -> Option<Vec<Owned>> {
    for record in &message.records {
        if record.partition_key_index.is_none() || record.data.is_none() {
            return None;
        }
        if record.tags.iter().any(|t| t.key.is_none()) {
            return None;
        }
    }
    for key in message
        .partition_key_table
        .iter()
        .chain(&message.explicit_hash_key_table)
    {
        if std::str::from_utf8(key).is_err() {
            return None;
        }
    }
    for key in &message.explicit_hash_key_table {
        let text = std::str::from_utf8(key).ok()?;
        if text.is_empty()
            || !text.bytes().all(|b| b.is_ascii_digit())
            || text.trim_start_matches('0').len() > 39
            || (text.trim_start_matches('0').len() == 39
                && text.trim_start_matches('0') > "340282366920938463463374607431768211455")
        {
            return None;
        }
    }
    let mut out = Vec::new();
    for record in &message.records {
        let pk = usize::try_from(record.partition_key_index?).ok()?;
        let pk = message.partition_key_table.get(pk)?;
        let ehk = match record.explicit_hash_key_index {
            None => None,
            Some(i) => {
                let i = usize::try_from(i).ok()?;
                Some(message.explicit_hash_key_table.get(i)?.clone())
            }
        };
        out.push((pk.clone(), ehk, record.data.clone()?));
    }
    Some(out)
}
