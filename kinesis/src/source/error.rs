//! Why a source stopped reading.

use core::fmt;

use super::checkpoint::CheckpointError;

/// Why reading stopped.
#[derive(Debug)]
pub enum SourceError {
    /// Neither a stream name nor an ARN was given.
    NoStream,
    /// A Kinesis call failed with an error that retrying does not fix (or that kept
    /// coming back).
    Kinesis {
        /// The operation (`ListShards`, `GetShardIterator`, `GetRecords`).
        operation: &'static str,
        /// The error code.
        code: String,
        /// The service's message.
        message: String,
    },
    /// The checkpoint store failed.
    Checkpoint(CheckpointError),
    /// A checkpoint of a shard whose lease another worker holds now.
    LeaseLost {
        /// The shard.
        shard_id: String,
    },
    /// Nothing was in flight or scheduled, yet reading was not over (a bug): reported,
    /// never taken for the end of the stream.
    Stalled,
}

impl fmt::Display for SourceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SourceError::NoStream => f.write_str("no stream name or ARN given"),
            SourceError::Kinesis {
                operation,
                code,
                message,
            } if f.alternate() => write!(f, "{operation} failed: {code}: {message}"),
            SourceError::Kinesis {
                operation,
                code,
                message,
            } => write!(
                f,
                "{operation}: {}",
                crate::explain::describe(code, message, None)
            ),
            SourceError::Checkpoint(e) => write!(f, "checkpoint store: {e}"),
            SourceError::LeaseLost { shard_id } => {
                write!(
                    f,
                    "the lease of shard {shard_id} is held by another worker now"
                )
            }
            SourceError::Stalled => f.write_str("the source stalled (a bug in kpl-kinesis)"),
        }
    }
}

impl std::error::Error for SourceError {}

impl From<CheckpointError> for SourceError {
    fn from(e: CheckpointError) -> Self {
        SourceError::Checkpoint(e)
    }
}
