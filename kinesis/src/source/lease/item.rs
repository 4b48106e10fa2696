//! A lease as KCL stores it in its DynamoDB lease table: one item per shard, keyed by
//! `leaseKey` (the shard id), owned by the worker named in `leaseOwner`, kept alive by
//! incrementing `leaseCounter`, with the shard's checkpoint.

use super::super::sequence::Checkpoint;

/// The item attributes, as KCL names them.
pub mod attr {
    /// `S`, the table's hash key: the shard id.
    pub const LEASE_KEY: &str = "leaseKey";
    /// `S`: the worker holding the lease (absent: nobody).
    pub const LEASE_OWNER: &str = "leaseOwner";
    /// `N`: incremented by every renewal, take and checkpoint.
    pub const LEASE_COUNTER: &str = "leaseCounter";
    /// `S`: a sequence number or a sentinel (`TRIM_HORIZON`, `LATEST`, `AT_TIMESTAMP`,
    /// `SHARD_END`).
    pub const CHECKPOINT: &str = "checkpoint";
    /// `N`: the user record inside the checkpointed Kinesis record.
    pub const CHECKPOINT_SUB_SEQUENCE_NUMBER: &str = "checkpointSubSequenceNumber";
    /// `N`: owner changes since the last checkpoint.
    pub const OWNER_SWITCHES_SINCE_CHECKPOINT: &str = "ownerSwitchesSinceCheckpoint";
    /// `SS`: the shard's parents.
    pub const PARENT_SHARD_ID: &str = "parentShardId";
    /// `SS`: the shard's children, once known.
    pub const CHILD_SHARD_IDS: &str = "childShardIds";
    /// `S`: the first hash key of the shard.
    pub const STARTING_HASH_KEY: &str = "startingHashKey";
    /// `S`: the last hash key of the shard.
    pub const ENDING_HASH_KEY: &str = "endingHashKey";
    /// `S`: the item's kind; `LEASE` for a lease (KCL 3.5 keeps other kinds of items in the
    /// same table: `LEADER`, `CLIENT_VERSION_MIGRATION`, `WORKER_METRIC_STATS`). Items
    /// without it (KCL 1.x and 2.x tables) are leases.
    pub const ENTITY_TYPE: &str = "entityType";
    /// The `entityType` of a lease.
    pub const LEASE_ENTITY: &str = "LEASE";
    /// `S`: during a KCL 3 graceful handoff, the previous owner (while `leaseOwner` names the
    /// next).
    pub const CHECKPOINT_OWNER: &str = "checkpointOwner";
    /// `S`, `N`, `B`: a KCL two-phase checkpoint in progress; removed by every checkpoint.
    pub const PENDING_CHECKPOINT: [&str; 3] = [
        "pendingCheckpoint",
        "pendingCheckpointSubSequenceNumber",
        "pendingCheckpointState",
    ];
}

/// Where a lease's shard got to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LeaseCheckpoint {
    /// Not read yet: from the oldest record.
    TrimHorizon,
    /// Not read yet: from the records put after the reader starts.
    Latest,
    /// Not read yet: from the reader's configured timestamp.
    AtTimestamp,
    /// Read to its end: its children may be read.
    ShardEnd,
    /// Processed up to and including this user record.
    At(Checkpoint),
}

impl LeaseCheckpoint {
    /// The `checkpoint` and `checkpointSubSequenceNumber` attribute values.
    pub fn to_attributes(&self) -> (&str, u64) {
        match self {
            LeaseCheckpoint::TrimHorizon => ("TRIM_HORIZON", 0),
            LeaseCheckpoint::Latest => ("LATEST", 0),
            LeaseCheckpoint::AtTimestamp => ("AT_TIMESTAMP", 0),
            LeaseCheckpoint::ShardEnd => ("SHARD_END", 0),
            LeaseCheckpoint::At(cp) => (&cp.sequence_number, cp.sub_sequence_number),
        }
    }

    /// Reads the attribute values back; `None` for a value that is neither a sentinel nor
    /// a sequence number (decimal digits).
    pub fn from_attributes(checkpoint: &str, sub_sequence_number: u64) -> Option<Self> {
        Some(match checkpoint {
            "TRIM_HORIZON" => LeaseCheckpoint::TrimHorizon,
            "LATEST" => LeaseCheckpoint::Latest,
            "AT_TIMESTAMP" => LeaseCheckpoint::AtTimestamp,
            "SHARD_END" => LeaseCheckpoint::ShardEnd,
            seq if !seq.is_empty() && seq.bytes().all(|b| b.is_ascii_digit()) => {
                LeaseCheckpoint::At(Checkpoint::new(seq, sub_sequence_number))
            }
            _ => return None,
        })
    }
}

/// One lease item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    /// `leaseKey`: the shard id.
    pub lease_key: String,
    /// `leaseOwner`.
    pub lease_owner: Option<String>,
    /// `leaseCounter`.
    pub lease_counter: u64,
    /// `checkpoint` and `checkpointSubSequenceNumber`.
    pub checkpoint: LeaseCheckpoint,
    /// `ownerSwitchesSinceCheckpoint`.
    pub owner_switches_since_checkpoint: u64,
    /// `parentShardId`.
    pub parent_shard_ids: Vec<String>,
    /// `childShardIds`.
    pub child_shard_ids: Vec<String>,
    /// `startingHashKey`.
    pub starting_hash_key: Option<String>,
    /// `endingHashKey`.
    pub ending_hash_key: Option<String>,
    /// `checkpointOwner`: during a graceful handoff, the previous owner, which still has to
    /// write its last checkpoint while `leaseOwner` already names the next.
    pub checkpoint_owner: Option<String>,
}

impl Lease {
    /// A new lease nobody holds, at `checkpoint`.
    pub fn new(lease_key: impl Into<String>, checkpoint: LeaseCheckpoint) -> Self {
        Lease {
            lease_key: lease_key.into(),
            lease_owner: None,
            lease_counter: 0,
            checkpoint,
            owner_switches_since_checkpoint: 0,
            parent_shard_ids: Vec::new(),
            child_shard_ids: Vec::new(),
            starting_hash_key: None,
            ending_hash_key: None,
            checkpoint_owner: None,
        }
    }

    /// Whether the shard was read to its end.
    pub fn is_finished(&self) -> bool {
        self.checkpoint == LeaseCheckpoint::ShardEnd
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checkpoints_read_back_what_they_write() {
        for cp in [
            LeaseCheckpoint::TrimHorizon,
            LeaseCheckpoint::Latest,
            LeaseCheckpoint::AtTimestamp,
            LeaseCheckpoint::ShardEnd,
            LeaseCheckpoint::At(Checkpoint::new(
                "49590338271490256608559692538361571095921575989136588898",
                7,
            )),
        ] {
            let (text, sub) = cp.to_attributes();
            assert_eq!(
                LeaseCheckpoint::from_attributes(text, sub),
                Some(cp.clone())
            );
        }
        assert_eq!(LeaseCheckpoint::from_attributes("", 0), None);
        assert_eq!(LeaseCheckpoint::from_attributes("12a", 0), None);
    }
}
