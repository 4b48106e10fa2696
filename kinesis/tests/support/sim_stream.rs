//! A simulated stream that answers the calls of a `SourceCore` as Kinesis would: shards
//! with lineage and hash ranges, records (plain or KPL aggregates), iterators as (shard,
//! position), pages of at most `page` records, the end of a closed shard told by a page
//! without a next iterator. Pure, shared by the scenario tests (`tests/source_core.rs`)
//! and the `source_core` fuzz target (which includes this file by path).
#![allow(dead_code)]

use std::sync::Arc;

use kpl_codec::HashRange;
use kpl_kinesis::source::{
    user_records, Answer, CallError, FetchedRecord, IteratorStart, RecordsPage, Request, ShardNode,
    SourceRecord,
};

/// One Kinesis record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimRecord {
    pub sequence_number: String,
    pub partition_key: String,
    pub data: Vec<u8>,
}

/// One shard.
#[derive(Debug, Clone)]
pub struct SimShard {
    pub id: String,
    pub parent: Option<String>,
    pub adjacent_parent: Option<String>,
    pub range: HashRange,
    pub open: bool,
    pub records: Vec<SimRecord>,
}

impl SimShard {
    /// An open shard over `range` without parents.
    pub fn new(id: &str, range: HashRange) -> Self {
        SimShard {
            id: id.to_owned(),
            parent: None,
            adjacent_parent: None,
            range,
            open: true,
            records: Vec::new(),
        }
    }
}

/// The stream.
#[derive(Debug, Clone)]
pub struct SimStream {
    pub shards: Vec<SimShard>,
    /// Records per GetRecords page (at most the call's limit).
    pub page: usize,
    iterators: Vec<(usize, usize)>,
    next_sequence: u64,
}

impl SimStream {
    /// A stream of these shards, pages of up to 10,000 records.
    pub fn new(shards: Vec<SimShard>) -> Self {
        SimStream {
            shards,
            page: 10_000,
            iterators: Vec::new(),
            next_sequence: 1,
        }
    }

    /// `n` shards splitting the key space evenly, open, without records.
    pub fn even(n: usize) -> Self {
        let n = n.max(1) as u128;
        let width = u128::MAX / n;
        let shards = (0..n)
            .map(|i| {
                let start = i * width;
                let end = if i == n - 1 {
                    u128::MAX
                } else {
                    start + width - 1
                };
                let range = HashRange::new(start, end);
                SimShard::new(&format!("shardId-{i:012}"), range)
            })
            .collect();
        SimStream::new(shards)
    }

    fn index(&self, id: &str) -> Option<usize> {
        self.shards.iter().position(|s| s.id == id)
    }

    /// Appends a record to shard `shard` (by index), with the next sequence number of the
    /// stream (sequence numbers grow across the stream, as Kinesis's do).
    pub fn push(&mut self, shard: usize, partition_key: &str, data: Vec<u8>) -> String {
        let sequence_number = format!("4959{:020}", self.next_sequence);
        self.next_sequence += 1;
        if let Some(s) = self.shards.get_mut(shard) {
            s.records.push(SimRecord {
                sequence_number: sequence_number.clone(),
                partition_key: partition_key.to_owned(),
                data,
            });
        }
        sequence_number
    }

    /// Closes shard `shard` and adds `children` (each a range) as its children: a split
    /// for two, a "replacement" for one.
    pub fn split(&mut self, shard: usize, children: &[HashRange]) -> Vec<usize> {
        let Some(parent) = self.shards.get_mut(shard) else {
            return Vec::new();
        };
        parent.open = false;
        let parent_id = parent.id.clone();
        let mut made = Vec::new();
        for range in children {
            let id = format!("shardId-{:012}", self.shards.len());
            let mut child = SimShard::new(&id, *range);
            child.parent = Some(parent_id.clone());
            self.shards.push(child);
            made.push(self.shards.len() - 1);
        }
        made
    }

    /// Closes shards `a` and `b` and adds their merged child.
    pub fn merge(&mut self, a: usize, b: usize) -> Option<usize> {
        let (ra, rb) = (self.shards.get(a)?.range, self.shards.get(b)?.range);
        let range = HashRange::new(ra.start.min(rb.start), ra.end.max(rb.end));
        let id = format!("shardId-{:012}", self.shards.len());
        let mut child = SimShard::new(&id, range);
        child.parent = Some(self.shards[a].id.clone());
        child.adjacent_parent = Some(self.shards[b].id.clone());
        self.shards[a].open = false;
        self.shards[b].open = false;
        self.shards.push(child);
        Some(self.shards.len() - 1)
    }

    /// The correct answer to `request`.
    pub fn answer(&mut self, request: &Request) -> Answer {
        match request {
            Request::ListShards => Answer::Shards(
                self.shards
                    .iter()
                    .map(|s| ShardNode {
                        shard_id: s.id.clone(),
                        parent: s.parent.clone(),
                        adjacent_parent: s.adjacent_parent.clone(),
                        range: s.range,
                        open: s.open,
                    })
                    .collect(),
            ),
            Request::GetShardIterator { shard_id, start } => {
                let Some(shard) = self.index(shard_id) else {
                    return failed("ResourceNotFoundException", "no such shard", false);
                };
                let records = &self.shards[shard].records;
                let find = |seq: &str| records.iter().position(|r| r.sequence_number == seq);
                let position = match start {
                    IteratorStart::TrimHorizon | IteratorStart::AtTimestamp(_) => 0,
                    IteratorStart::Latest => records.len(),
                    IteratorStart::AtSequenceNumber(seq) => match find(seq) {
                        Some(p) => p,
                        None => return failed("InvalidArgumentException", "not in shard", false),
                    },
                    IteratorStart::AfterSequenceNumber(seq) => match find(seq) {
                        Some(p) => p + 1,
                        None => return failed("InvalidArgumentException", "not in shard", false),
                    },
                };
                self.iterators.push((shard, position));
                Answer::Iterator(Some(format!("iterator-{}", self.iterators.len() - 1)))
            }
            Request::GetRecords {
                iterator, limit, ..
            } => {
                let found = iterator
                    .strip_prefix("iterator-")
                    .and_then(|n| n.parse::<usize>().ok())
                    .and_then(|n| self.iterators.get(n).copied());
                let Some((shard, position)) = found else {
                    return failed("InvalidArgumentException", "bad iterator", false);
                };
                let limit = usize::try_from(*limit).unwrap_or(1).max(1);
                let spec = &self.shards[shard];
                let end = spec.records.len().min(position + self.page.min(limit));
                let records = spec.records[position.min(end)..end]
                    .iter()
                    .map(|r| FetchedRecord {
                        sequence_number: r.sequence_number.clone(),
                        partition_key: r.partition_key.clone(),
                        data: r.data.clone(),
                        approximate_arrival: None,
                    })
                    .collect();
                let at_end = end == spec.records.len();
                let next_iterator = if !spec.open && at_end {
                    None
                } else {
                    self.iterators.push((shard, end));
                    Some(format!("iterator-{}", self.iterators.len() - 1))
                };
                Answer::Records(RecordsPage {
                    records,
                    next_iterator,
                    millis_behind_latest: Some(if at_end { 0 } else { 1_000 }),
                })
            }
        }
    }

    /// What a KCL consumer gets from shard `shard` (by index): the user records of each of
    /// its Kinesis records, under KCL's policy and the shard's range.
    pub fn user_records(&self, shard: usize) -> Vec<SourceRecord> {
        let Some(s) = self.shards.get(shard) else {
            return Vec::new();
        };
        let id: Arc<str> = Arc::from(s.id.as_str());
        s.records
            .iter()
            .flat_map(|r| {
                let seq: Arc<str> = Arc::from(r.sequence_number.as_str());
                user_records(&id, Some(s.range), &seq, &r.partition_key, &r.data, None)
            })
            .collect()
    }
}

/// A failed call.
pub fn failed(code: &str, message: &str, retryable: bool) -> Answer {
    Answer::Failed(CallError {
        code: code.to_owned(),
        message: message.to_owned(),
        retryable,
    })
}
