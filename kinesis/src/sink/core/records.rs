//! What the core holds: each accepted user record with its bookkeeping ([`Accepted`],
//! [`Meta`]), and the Kinesis records on their way out ([`Outbound`]), which carry their
//! user records beside the bytes they send. A Kinesis record is never decoded to find its
//! user records again: they are right there, so a record taken apart (expired, re-routed
//! after a reshard) goes back through the pipeline exactly as it was put.
//!
//! Inside an aggregate, the user records are packed into one buffer ([`Packed`]) when the
//! aggregate closes: their bytes are copied while they are still in cache, and freed once
//! per aggregate at its outcome rather than twice per record. (Keeping the records as they
//! were put until their outcome cost a fifth of the core's throughput in the sink bench;
//! packed, a tenth.)
//!
//! An aggregate leaves its aggregator unsealed ([`Frame::Unsealed`]: its MD5 not computed
//! yet) and is sealed when it first goes out in a PutRecords request, together with the
//! other aggregates of that request in one multi-lane MD5 call ([`seal_batch`]).

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Instant;

use kpl_codec::{HashRange, InputRecord, Unsealed};

use super::PutEntry;
use crate::sink::outcome::{ErrorInfo, RecordId, UserRecord};

/// What the core keeps about a user record besides its bytes, from `put` to its outcome.
#[derive(Debug)]
pub(super) struct Meta {
    pub(super) id: RecordId,
    /// Its explicit hash key, else the MD5 of its partition key.
    pub(super) hash_key: u128,
    /// Data plus partition key, as counted against the buffer limits.
    pub(super) size: usize,
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

/// A user record as it was put, with its [`Meta`]: held for a map, in an open aggregate,
/// or sent alone.
#[derive(Debug)]
pub(super) struct Accepted {
    pub(super) record: UserRecord,
    pub(super) meta: Meta,
}

impl Accepted {
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

/// A user record packed into its aggregate's [`Packed`] buffer: the lengths of its parts
/// there, and its [`Meta`].
#[derive(Debug)]
pub(super) struct PackedUser {
    pub(super) partition_key_len: usize,
    pub(super) explicit_hash_key_len: Option<usize>,
    pub(super) data_len: usize,
    pub(super) meta: Meta,
}

impl PackedUser {
    /// Its bytes in the buffer.
    pub(super) fn packed_len(&self) -> usize {
        self.partition_key_len + self.explicit_hash_key_len.unwrap_or(0) + self.data_len
    }
}

/// The user records of an aggregate: each one's partition key, explicit hash key (if it
/// has one) and data, one record after the other, in order.
#[derive(Debug)]
pub(super) struct Packed {
    pub(super) bytes: Vec<u8>,
    pub(super) users: Vec<PackedUser>,
}

impl Packed {
    /// Packs the first `n` records of `open` (the aggregate's, in order), freeing their
    /// own buffers.
    fn take(open: &mut VecDeque<Accepted>, n: usize) -> Self {
        let total = open
            .range(..n)
            .map(|a| {
                let ehk = a.record.explicit_hash_key.as_ref().map_or(0, String::len);
                a.record.partition_key.len() + ehk + a.record.data.len()
            })
            .sum();
        let mut bytes = Vec::with_capacity(total);
        let mut packed = Vec::with_capacity(n);
        for Accepted { record, meta } in open.drain(..n) {
            bytes.extend_from_slice(record.partition_key.as_bytes());
            if let Some(ehk) = &record.explicit_hash_key {
                bytes.extend_from_slice(ehk.as_bytes());
            }
            bytes.extend_from_slice(&record.data);
            packed.push(PackedUser {
                partition_key_len: record.partition_key.len(),
                explicit_hash_key_len: record.explicit_hash_key.as_ref().map(String::len),
                data_len: record.data.len(),
                meta,
            });
        }
        Packed {
            bytes,
            users: packed,
        }
    }

    /// The records back as they were put. The lengths were taken from these very records,
    /// so every part is whole (and a partition key or explicit hash key, copied from a
    /// `String`, is UTF-8); [`Core::check_invariants`](super::Core::check_invariants)
    /// checks that the lengths add up.
    fn unpack(self) -> Vec<Accepted> {
        let mut bytes = self.bytes.into_iter();
        let mut take = |n: usize| -> Vec<u8> { bytes.by_ref().take(n).collect() };
        let text = |b: Vec<u8>| {
            String::from_utf8(b).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into())
        };
        self.users
            .into_iter()
            .map(|u| {
                let partition_key = text(take(u.partition_key_len));
                let explicit_hash_key = u.explicit_hash_key_len.map(|n| text(take(n)));
                let data = take(u.data_len);
                Accepted {
                    record: UserRecord {
                        partition_key,
                        explicit_hash_key,
                        data,
                    },
                    meta: u.meta,
                }
            })
            .collect()
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
        data: Frame,
        users: Packed,
    },
}

/// The bytes of an aggregate: its digest still to compute until it first goes out in a
/// request, then final.
#[derive(Debug)]
pub(super) enum Frame {
    /// As the aggregator emitted it: every byte final but the 16 of the MD5 (zeros).
    Unsealed(Unsealed),
    /// Sealed: what is sent.
    Sealed(Vec<u8>),
}

impl Frame {
    /// Its length (the same sealed or not).
    pub(super) fn len(&self) -> usize {
        self.bytes().len()
    }

    /// Its bytes (the digest zeros while unsealed).
    pub(super) fn bytes(&self) -> &[u8] {
        match self {
            Frame::Unsealed(u) => &u.record().data,
            Frame::Sealed(data) => data,
        }
    }

    pub(super) fn is_sealed(&self) -> bool {
        matches!(self, Frame::Sealed(_))
    }
}

/// Seals every unsealed aggregate of `batch` (a PutRecords request), hashing them all in
/// one [`kpl_codec::seal_all`] call: side by side in SIMD lanes, rather than one MD5 each
/// as they close. The bytes are those [`kpl_codec::Aggregator::add`] would have emitted.
pub(super) fn seal_batch(batch: &mut [Outbound]) {
    let mut frames = Vec::new();
    let mut unsealed = Vec::new();
    for rec in batch.iter_mut() {
        if let Payload::Aggregate { data, .. } = &mut rec.payload {
            if let Frame::Unsealed(_) = data {
                if let Frame::Unsealed(u) = std::mem::replace(data, Frame::Sealed(Vec::new())) {
                    unsealed.push(u);
                    frames.push(data);
                }
            }
        }
    }
    if unsealed.is_empty() {
        return;
    }
    for (frame, sealed) in frames.into_iter().zip(kpl_codec::seal_all(unsealed)) {
        *frame = Frame::Sealed(sealed.data);
    }
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
        let explicit_hash_key =
            kpl_codec::write_decimal(accepted.meta.hash_key, &mut digits).to_owned();
        Outbound {
            explicit_hash_key,
            hash_key: accepted.meta.hash_key,
            epoch,
            deadline: accepted.meta.deadline,
            expires: accepted.meta.expires,
            payload: Payload::Alone(accepted),
        }
    }

    /// The Kinesis record the aggregator emitted, with its user records: the first
    /// `record.user_records` of `open` (the records the aggregator holds, in order).
    pub(super) fn emitted(
        record: Unsealed,
        open: &mut VecDeque<Accepted>,
        epoch: u64,
    ) -> Option<Self> {
        let n = record.record().user_records.min(open.len());
        let first = open.range(..n);
        let deadline = first.clone().map(|a| a.meta.deadline).min()?;
        let expires = first.map(|a| a.meta.expires).min()?;
        let explicit_hash_key = record.record().explicit_hash_key.clone();
        let hash_key = record.record().hash_key;
        let payload = match n {
            // A lone record goes out raw: the aggregator's copy of it is not needed.
            1 => Payload::Alone(open.pop_front()?),
            _ => Payload::Aggregate {
                data: Frame::Unsealed(record),
                users: Packed::take(open, n),
            },
        };
        Some(Outbound {
            payload,
            explicit_hash_key,
            hash_key,
            epoch,
            deadline,
            expires,
        })
    }

    /// Bytes counted by Kinesis against its limits: data plus partition key.
    pub(super) fn size(&self) -> usize {
        match &self.payload {
            Payload::Alone(a) => a.meta.size,
            Payload::Aggregate { data, .. } => data.len() + AGGREGATE_KEY.len(),
        }
    }

    pub(super) fn is_aggregate(&self) -> bool {
        matches!(self.payload, Payload::Aggregate { .. })
    }

    /// How many user records it carries.
    pub(super) fn user_records(&self) -> usize {
        match &self.payload {
            Payload::Alone(_) => 1,
            Payload::Aggregate { users, .. } => users.users.len(),
        }
    }

    /// The bookkeeping of its user records, in order.
    pub(super) fn metas(&self) -> impl Iterator<Item = &Meta> + '_ {
        let (alone, packed) = match &self.payload {
            Payload::Alone(a) => (Some(&a.meta), &[][..]),
            Payload::Aggregate { users, .. } => (None, &users.users[..]),
        };
        alone.into_iter().chain(packed.iter().map(|u| &u.meta))
    }

    pub(super) fn metas_mut(&mut self) -> impl Iterator<Item = &mut Meta> + '_ {
        let (alone, packed) = match &mut self.payload {
            Payload::Alone(a) => (Some(&mut a.meta), &mut [][..]),
            Payload::Aggregate { users, .. } => (None, &mut users.users[..]),
        };
        alone
            .into_iter()
            .chain(packed.iter_mut().map(|u| &mut u.meta))
    }

    /// The bookkeeping of its user records, in order, taken out (their bytes dropped): for
    /// their outcomes.
    pub(super) fn into_metas(self) -> impl Iterator<Item = Meta> {
        let (alone, packed) = match self.payload {
            Payload::Alone(a) => (Some(a.meta), Vec::new()),
            Payload::Aggregate { users, .. } => (None, users.users),
        };
        alone.into_iter().chain(packed.into_iter().map(|u| u.meta))
    }

    /// Its user records as they were put, in order: to go through the pipeline again.
    pub(super) fn into_accepted(self) -> Vec<Accepted> {
        match self.payload {
            Payload::Alone(a) => vec![a],
            Payload::Aggregate { users, .. } => users.unpack(),
        }
    }

    /// Whether every user record in it lies in `range`.
    pub(super) fn fits(&self, range: HashRange) -> bool {
        self.metas().all(|u| range.contains(u.hash_key))
    }

    /// The entry of a PutRecords request that sends it. An aggregate must be sealed first
    /// ([`seal_batch`]).
    pub(super) fn entry(&self) -> PutEntry {
        let (partition_key, data) = match &self.payload {
            Payload::Alone(a) => (a.record.partition_key.clone(), a.record.data.clone()),
            Payload::Aggregate { data, .. } => (AGGREGATE_KEY.to_owned(), data.bytes().to_vec()),
        };
        PutEntry {
            partition_key,
            explicit_hash_key: self.explicit_hash_key.clone(),
            data,
            user_records: self.user_records(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn accepted(id: u64, record: UserRecord, now: Instant) -> Accepted {
        Accepted {
            meta: Meta {
                id: RecordId(id),
                hash_key: 0,
                size: record.size(),
                deadline: now,
                expires: now,
                attempts: 0,
                last_error: None,
                account: Arc::from(""),
            },
            record,
        }
    }

    #[test]
    fn packed_records_come_back_as_they_were_put() {
        let now = Instant::now();
        let records = [
            UserRecord::new("clé-ü", vec![0u8, 255, 10]),
            UserRecord::new("b", Vec::new()).with_explicit_hash_key("007"),
            UserRecord::new("c".repeat(256), vec![b'x'; 1000]).with_explicit_hash_key("0"),
            UserRecord::new("d", "after"),
        ];
        let mut open: VecDeque<Accepted> = records
            .iter()
            .enumerate()
            .map(|(i, r)| accepted(i as u64, r.clone(), now))
            .collect();
        // The first three go into an aggregate; the fourth stays open.
        let packed = Packed::take(&mut open, 3);
        assert_eq!(open.len(), 1);
        assert_eq!(open[0].record, records[3]);
        assert_eq!(
            packed.bytes.len(),
            packed
                .users
                .iter()
                .map(PackedUser::packed_len)
                .sum::<usize>()
        );
        let back = packed.unpack();
        let ids: Vec<u64> = back.iter().map(|a| a.meta.id.0).collect();
        assert_eq!(ids, [0, 1, 2]);
        let back: Vec<UserRecord> = back.into_iter().map(|a| a.record).collect();
        assert_eq!(back, records[..3]);
    }
}
