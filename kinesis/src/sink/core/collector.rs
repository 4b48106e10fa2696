//! The collector: Kinesis records past their shard's rate limiter, waiting to go out in a
//! PutRecords request, with their total size and the earliest deadline and TTL among them
//! (kept up to date, so that the core knows when a request is due and when one of them
//! expires without walking the queue).

use std::collections::VecDeque;
use std::time::Instant;

use super::records::Outbound;

#[derive(Debug, Default)]
pub(super) struct Collector {
    queue: VecDeque<Outbound>,
    /// Sum of the records' sizes.
    bytes: usize,
    /// The earliest deadline among them.
    deadline: Option<Instant>,
    /// The earliest TTL among them.
    expires: Option<Instant>,
}

impl Collector {
    pub(super) fn push(&mut self, record: Outbound) {
        self.bytes += record.size();
        self.deadline = Some(
            self.deadline
                .map_or(record.deadline, |d| d.min(record.deadline)),
        );
        self.expires = Some(
            self.expires
                .map_or(record.expires, |e| e.min(record.expires)),
        );
        self.queue.push_back(record);
    }

    pub(super) fn len(&self) -> usize {
        self.queue.len()
    }

    pub(super) fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    pub(super) fn bytes(&self) -> usize {
        self.bytes
    }

    pub(super) fn deadline(&self) -> Option<Instant> {
        self.deadline
    }

    pub(super) fn expires(&self) -> Option<Instant> {
        self.expires
    }

    pub(super) fn iter(&self) -> impl Iterator<Item = &Outbound> {
        self.queue.iter()
    }

    /// Everything, in order; the collector is left empty.
    pub(super) fn take_all(&mut self) -> VecDeque<Outbound> {
        self.bytes = 0;
        self.deadline = None;
        self.expires = None;
        std::mem::take(&mut self.queue)
    }

    /// The oldest records, at most `max_count` and `max_bytes` (but at least one), and
    /// their size.
    pub(super) fn pop_batch(
        &mut self,
        max_count: usize,
        max_bytes: usize,
    ) -> (Vec<Outbound>, usize) {
        let mut batch = Vec::new();
        let mut bytes = 0usize;
        while let Some(record) = self.queue.front() {
            let size = record.size();
            if batch.len() >= max_count || (!batch.is_empty() && bytes + size > max_bytes) {
                break;
            }
            let Some(record) = self.queue.pop_front() else {
                break;
            };
            bytes += size;
            batch.push(record);
        }
        self.bytes -= bytes;
        (self.deadline, self.expires) = (None, None);
        for record in &self.queue {
            let earliest = |t: Option<Instant>, u: Instant| Some(t.map_or(u, |t| t.min(u)));
            self.deadline = earliest(self.deadline, record.deadline);
            self.expires = earliest(self.expires, record.expires);
        }
        (batch, bytes)
    }

    /// Makes every record due at `now` at the latest (a flush).
    pub(super) fn hasten(&mut self, now: Instant) {
        for record in &mut self.queue {
            record.deadline = record.deadline.min(now);
        }
        self.deadline = self.deadline.map(|d| d.min(now));
    }
}
