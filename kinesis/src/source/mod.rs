//! The consumer side: reading a stream's user records the way KCL hands them over, with
//! checkpoints.
//!
//! [`SourceCore`] is the sans-IO state machine: handed ListShards, GetShardIterator and
//! GetRecords answers and the time, it hands back the next calls to make, the user records
//! to deliver and the checkpoints to save. It lists the shards, reads each with GetRecords
//! polling, follows child shards after a reshard (parents read to their end first, so
//! records of one partition key stay in order), and yields user records deaggregated under
//! KCL's policy with each shard's hash-range filter (switchable), each with its shard id,
//! sequence number and sub-sequence number. [`Source`] (feature `driver`) runs it on tokio
//! and the AWS SDK.
//!
//! Checkpoints are (sequence number, sub-sequence number) per shard in a
//! [`CheckpointStore`] ([`MemoryCheckpoints`], [`FileCheckpoints`]); a restarted source
//! re-reads from the checkpointed Kinesis record (AT_SEQUENCE_NUMBER) and skips the user
//! records at or before the checkpoint, so nothing is lost or repeated.
//!
//! Limits: one consumer per stream and checkpoint store (no leases, no load balancing
//! across processes). Beyond that, use KCL (leases in DynamoDB) or Enhanced Fan-Out with
//! one registered consumer per application. GetRecords polling only; SubscribeToShard is
//! not used.
//!
//! The pure parts ([`SourceCore`], [`ShardTree`] lineage, [`Checkpoint`] comparisons,
//! [`user_records`]) need neither tokio nor the AWS SDK.

mod checkpoint;
mod core;
#[cfg(feature = "driver")]
mod driver;
mod error;
pub mod lease;
#[cfg(feature = "dynamodb")]
mod leased;
mod lineage;
mod records;
mod sequence;

pub use self::checkpoint::{
    CheckpointError, CheckpointStore, FileCheckpoints, MemoryCheckpoints, ShardPosition,
};
pub use self::core::{
    Answer, Call, CallError, CallId, FetchedRecord, IteratorStart, RecordsPage, Request,
    SourceConfig, SourceCore, StartPosition, ATTEMPTS,
};
#[cfg(feature = "driver")]
pub use self::driver::{Source, SourceBuilder};
pub use self::error::SourceError;
#[cfg(feature = "dynamodb")]
pub use self::leased::LeaseSettings;
pub use self::lineage::{ShardNode, ShardTree};
pub use self::records::{
    user_records, user_records_batch, user_records_under, KinesisRecordRef, SourceRecord,
};
pub use self::sequence::{compare_sequence_numbers, Checkpoint};
