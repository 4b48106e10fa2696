//! The NDJSON shapes `kpl` prints: decoded user records and encoded Kinesis records.

use std::io::Write;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use kpl_codec::{KinesisRecord, UserRecord};
use serde::Serialize;

/// One user record printed by `kpl decode`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DecodedLine {
    /// The partition key (lossy text when it is not valid UTF-8).
    #[serde(rename = "PartitionKey")]
    pub partition_key: String,
    /// The exact partition key bytes in base64, only when they are not valid UTF-8.
    #[serde(rename = "PartitionKeyBase64", skip_serializing_if = "Option::is_none")]
    pub partition_key_base64: Option<String>,
    /// The explicit hash key as stored, `null` when the record has none.
    #[serde(rename = "ExplicitHashKey")]
    pub explicit_hash_key: Option<String>,
    /// The exact explicit hash key bytes in base64, only when they are not valid UTF-8.
    #[serde(
        rename = "ExplicitHashKeyBase64",
        skip_serializing_if = "Option::is_none"
    )]
    pub explicit_hash_key_base64: Option<String>,
    /// The data, in base64.
    #[serde(rename = "Data")]
    pub data: String,
    /// Position among the user records of its Kinesis record.
    #[serde(rename = "SubSequenceNumber")]
    pub sub_sequence_number: u64,
    /// Whether it came out of an aggregate.
    #[serde(rename = "Aggregated")]
    pub aggregated: bool,
    /// The Kinesis record's sequence number, when the input carried one.
    #[serde(rename = "SequenceNumber", skip_serializing_if = "Option::is_none")]
    pub sequence_number: Option<String>,
}

/// Text of a key plus, when it is not valid UTF-8, its exact bytes in base64.
fn lossless(bytes: &[u8]) -> (String, Option<String>) {
    match std::str::from_utf8(bytes) {
        Ok(text) => (text.to_owned(), None),
        Err(_) => (
            String::from_utf8_lossy(bytes).into_owned(),
            Some(BASE64.encode(bytes)),
        ),
    }
}

impl DecodedLine {
    /// The line for one user record.
    pub fn new(record: &UserRecord<'_>, sequence_number: Option<&str>) -> Self {
        let (partition_key, partition_key_base64) = lossless(record.partition_key);
        let (explicit_hash_key, explicit_hash_key_base64) = match record.explicit_hash_key {
            Some(bytes) => {
                let (text, exact) = lossless(bytes);
                (Some(text), exact)
            }
            None => (None, None),
        };
        DecodedLine {
            partition_key,
            partition_key_base64,
            explicit_hash_key,
            explicit_hash_key_base64,
            data: BASE64.encode(record.data),
            sub_sequence_number: record.sub_sequence_number,
            aggregated: record.aggregated,
            sequence_number: sequence_number.map(str::to_owned),
        }
    }
}

/// One Kinesis record printed by `kpl encode`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EncodedLine {
    /// The Kinesis record's partition key.
    #[serde(rename = "PartitionKey")]
    pub partition_key: String,
    /// The Kinesis record's explicit hash key (always set).
    #[serde(rename = "ExplicitHashKey")]
    pub explicit_hash_key: String,
    /// The Kinesis record's data, in base64.
    #[serde(rename = "Data")]
    pub data: String,
}

impl From<&KinesisRecord> for EncodedLine {
    fn from(record: &KinesisRecord) -> Self {
        EncodedLine {
            partition_key: record.partition_key.clone(),
            explicit_hash_key: record.explicit_hash_key.clone(),
            data: BASE64.encode(&record.data),
        }
    }
}

/// Writes `value` as one line of JSON.
pub fn write_line<T: Serialize>(out: &mut dyn Write, value: &T) -> std::io::Result<()> {
    serde_json::to_writer(&mut *out, value).map_err(std::io::Error::from)?;
    out.write_all(b"\n")
}
