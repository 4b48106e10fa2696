//! What the sink reports: exactly one [`Outcome`] per user record it accepted.

use core::fmt;
use std::sync::Arc;

use kpl_codec::EncodeError;

/// A user record to put: owned, as it must outlive the call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserRecord {
    /// 1 to 256 characters.
    pub partition_key: String,
    /// Decimal digits, at most 2^128 - 1; `None` to hash the partition key.
    pub explicit_hash_key: Option<String>,
    /// The payload.
    pub data: Vec<u8>,
}

impl UserRecord {
    /// A record with a partition key and data.
    pub fn new(partition_key: impl Into<String>, data: impl Into<Vec<u8>>) -> Self {
        UserRecord {
            partition_key: partition_key.into(),
            explicit_hash_key: None,
            data: data.into(),
        }
    }

    /// The same record with an explicit hash key.
    pub fn with_explicit_hash_key(mut self, explicit_hash_key: impl Into<String>) -> Self {
        self.explicit_hash_key = Some(explicit_hash_key.into());
        self
    }

    /// Bytes counted against the buffer and request limits: data plus partition key.
    pub fn size(&self) -> usize {
        self.data.len() + self.partition_key.len()
    }
}

/// The sink's handle on an accepted user record, unique for the sink's life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RecordId(pub u64);

/// An error code and message, as Kinesis (or the transport) gave them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErrorInfo {
    /// `ProvisionedThroughputExceededException`, `InternalFailure`, `ResourceNotFoundException`,
    /// `Timeout`, ...
    pub code: String,
    /// The service's message.
    pub message: String,
}

/// The line for a person ([`crate::explain::describe`]); with `{:#}`, the raw
/// `code: message`.
impl fmt::Display for ErrorInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if f.alternate() {
            write!(f, "{}: {}", self.code, self.message)
        } else {
            f.write_str(&crate::explain::describe(&self.code, &self.message, None))
        }
    }
}

/// Where a user record ended up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Success {
    /// The shard that stored it.
    pub shard_id: Arc<str>,
    /// The Kinesis record's sequence number (shared by the user records of one aggregate).
    pub sequence_number: Arc<str>,
    /// Its position inside the aggregate (0 for a record sent alone).
    pub sub_sequence_number: u64,
    /// Whether it went inside an aggregate.
    pub aggregated: bool,
    /// PutRecords requests that carried it, this one included.
    pub attempts: u32,
}

/// Why a user record was not stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FailureReason {
    /// Kinesis refused it with an error that retrying cannot fix (validation, not found,
    /// access denied, a record over the stream's size limit).
    Rejected(ErrorInfo),
    /// `RecordTtl` passed while it was being retried; the last error seen, if any.
    Expired(Option<ErrorInfo>),
    /// The sink was shut down before it could be sent.
    Shutdown,
    /// The aggregator refused a record that `put` had accepted as valid (a bug in the
    /// sink: please report).
    Internal(String),
}

/// A user record that was not stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// Why.
    pub reason: FailureReason,
    /// PutRecords requests that carried it.
    pub attempts: u32,
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.reason {
            // `{:#}`: the raw code and message of the error.
            FailureReason::Rejected(e) if f.alternate() => write!(f, "rejected: {e:#}")?,
            FailureReason::Rejected(e) => write!(f, "rejected: {e}")?,
            FailureReason::Expired(Some(e)) if f.alternate() => {
                write!(f, "record TTL passed; last error {e:#}")?
            }
            FailureReason::Expired(Some(e)) => write!(f, "record TTL passed; last error: {e}")?,
            FailureReason::Expired(None) => {
                f.write_str("record TTL passed before it could be sent")?
            }
            FailureReason::Shutdown => f.write_str("sink shut down before it was sent")?,
            FailureReason::Internal(m) => write!(f, "internal error: {m}")?,
        }
        write!(f, " (after {} attempts)", self.attempts)
    }
}

/// The one outcome of a user record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Stored.
    Success(Success),
    /// Not stored.
    Failure(Failure),
}

impl Outcome {
    /// Whether the record was stored.
    pub fn is_success(&self) -> bool {
        matches!(self, Outcome::Success(_))
    }
}

/// Why `put` did not accept a record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PutError {
    /// The record is invalid (empty or long key, bad explicit hash key, too large).
    Invalid(EncodeError),
    /// The buffer limits are reached; the record is handed back. Try again after outcomes
    /// have been taken.
    Full(UserRecord),
}

impl fmt::Display for PutError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PutError::Invalid(e) => write!(f, "invalid record: {e}"),
            PutError::Full(_) => f.write_str("sink buffer full"),
        }
    }
}

impl std::error::Error for PutError {}
