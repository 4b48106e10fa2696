//! What the core holds: each accepted user record with its bookkeeping ([`Accepted`]), and
//! the Kinesis records on their way out ([`Outbound`]), which carry their user records
//! beside the bytes they send. A Kinesis record is never decoded to find its user records
//! again: they are right there, so a record taken apart (expired, re-routed after a
//! reshard) goes back through the pipeline exactly as it was put.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Instant;

use kpl_codec::{HashRange, InputRecord, KinesisRecord};

use super::PutEntry;
use crate::sink::outcome::{ErrorInfo, RecordId, UserRecord};

/// A user record `put` accepted, and what the core keeps about it until its outcome.
#[derive(Debug)]
pub(super) struct Accepted {
    /// The record as it was put.
    pub(super) record: UserRecord,
    pub(super) id: RecordId,
    /// Its explicit hash key, else the MD5 of its partition key.
    pub(super) hash_key: u128,
    /// When it should be sent at the latest (put time + `RecordMaxBufferedTime`; reset
    /// when it goes through the pipeline again, but never past `expires`).
    pub(super) deadline: Instant,
    /// When it fails if not stored (put time + `RecordTtl`).
    pub(super) expires: Instant,
    /// PutRecords requests that carried it.
    pub(super) attempts: u32,
    /// Boxed: most records never see one, and this struct is moved along the pipeline.
    pub(super) last_error: Option<Box<ErrorInfo>>,
    /// The shard whose admission account it is charged to (empty: no map when put).
    pub(super) account: Arc<str>,
}

impl Accepted {
    /// Bytes counted against the buffer limits: data plus partition key.
    pub(super) fn size(&self) -> usize {
        self.record.size()
    }

    /// The record as the aggregator takes it.
    pub(super) fn input(&self) -> InputRecord<'_> {
        input_of(&self.record)
    }
}

/// A user record as the aggregator takes it.
pub(super) fn input_of(record: &UserRecord) -> InputRecord<'_> {
    InputRecord {
        partition_key: &record.partition_key,
        explicit_hash_key: record.explicit_hash_key.as_deref(),
        data: &record.data,
    }
}

/// What a Kinesis record sends, with the user records it carries.
#[derive(Debug)]
pub(super) enum Payload {
    /// One user record sent as it is: its own partition key and data.
    Alone(Accepted),
    /// A KPL aggregate (partition key `"a"`) of two or more user records, in order.
    Aggregate {
        /// The framed aggregate, as the aggregator built it from `users`.
        data: Vec<u8>,
        users: Vec<Accepted>,
    },
}

/// A Kinesis record on its way out: in its shard's ready queue, the collector, a retry, a
/// request in flight, or parked.
#[derive(Debug)]
pub(super) struct Outbound {
    pub(super) payload: Payload,
    /// The first user record's hash key, in decimal: always sent, as KPL does.
    pub(super) explicit_hash_key: String,
    /// Its value: where the record lands.
    pub(super) hash_key: u128,
    /// The shard map generation it was built (or last checked) with.
    pub(super) epoch: u64,
    /// When it should be sent at the latest: its oldest user record's deadline.
    pub(super) deadline: Instant,
    /// The earliest TTL of its user records.
    pub(super) expires: Instant,
}

/// The partition key of every aggregate.
const AGGREGATE_KEY: &str = "a";

impl Outbound {
    /// A user record sent alone, as KPL sends it: its own key, its hash key explicit.
    pub(super) fn alone(accepted: Accepted, epoch: u64) -> Self {
        let mut digits = [0u8; 39];
        let explicit_hash_key = kpl_codec::write_decimal(accepted.hash_key, &mut digits).to_owned();
        Outbound {
            explicit_hash_key,
            hash_key: accepted.hash_key,
            epoch,
            deadline: accepted.deadline,
            expires: accepted.expires,
            payload: Payload::Alone(accepted),
        }
    }

    /// The Kinesis record the aggregator emitted, with its user records: the first
    /// `record.user_records` of `open` (the records the aggregator holds, in order).
    pub(super) fn emitted(
        record: KinesisRecord,
        open: &mut VecDeque<Accepted>,
        epoch: u64,
    ) -> Option<Self> {
        let n = record.user_records.min(open.len());
        let payload = match n {
            0 => return None,
            // A lone record goes out raw: the aggregator's copy of it is not needed.
            1 => Payload::Alone(open.pop_front()?),
            _ => Payload::Aggregate {
                data: record.data,
                users: open.drain(..n).collect(),
            },
        };
        let users = payload_users(&payload);
        let deadline = users.iter().map(|u| u.deadline).min()?;
        let expires = users.iter().map(|u| u.expires).min()?;
        Some(Outbound {
            payload,
            explicit_hash_key: record.explicit_hash_key,
            hash_key: record.hash_key,
            epoch,
            deadline,
            expires,
        })
    }

    /// Bytes counted by Kinesis against its limits: data plus partition key.
    pub(super) fn size(&self) -> usize {
        match &self.payload {
            Payload::Alone(a) => a.size(),
            Payload::Aggregate { data, .. } => data.len() + AGGREGATE_KEY.len(),
        }
    }

    pub(super) fn is_aggregate(&self) -> bool {
        matches!(self.payload, Payload::Aggregate { .. })
    }

    /// Its user records, in order.
    pub(super) fn users(&self) -> &[Accepted] {
        payload_users(&self.payload)
    }

    pub(super) fn users_mut(&mut self) -> &mut [Accepted] {
        match &mut self.payload {
            Payload::Alone(a) => std::slice::from_mut(a),
            Payload::Aggregate { users, .. } => users,
        }
    }

    /// Its user records, in order, taken out.
    pub(super) fn into_users(
        self,
    ) -> std::iter::Chain<std::option::IntoIter<Accepted>, std::vec::IntoIter<Accepted>> {
        match self.payload {
            Payload::Alone(a) => Some(a).into_iter().chain(Vec::new()),
            Payload::Aggregate { users, .. } => None.into_iter().chain(users),
        }
    }

    /// Whether every user record in it lies in `range`.
    pub(super) fn fits(&self, range: HashRange) -> bool {
        self.users().iter().all(|u| range.contains(u.hash_key))
    }

    /// The entry of a PutRecords request that sends it.
    pub(super) fn entry(&self) -> PutEntry {
        let (partition_key, data) = match &self.payload {
            Payload::Alone(a) => (a.record.partition_key.clone(), a.record.data.clone()),
            Payload::Aggregate { data, .. } => (AGGREGATE_KEY.to_owned(), data.clone()),
        };
        PutEntry {
            partition_key,
            explicit_hash_key: self.explicit_hash_key.clone(),
            data,
            user_records: self.users().len(),
        }
    }
}

fn payload_users(payload: &Payload) -> &[Accepted] {
    match payload {
        Payload::Alone(a) => std::slice::from_ref(a),
        Payload::Aggregate { users, .. } => users,
    }
}
