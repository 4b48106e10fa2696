//! Admission control: how much the sink may buffer, from the throughput it achieves.
//!
//! A producer faster than its stream must be slowed down, not buffered until its records
//! expire (the most reported KPL failure: "Record has reached expiration"). The rule: a
//! user record is admitted only while the records already buffered could all be stored
//! within `BufferDrainTime` at the rate the sink has actually been storing user records
//! over the last few seconds, whatever limits that rate (the stream's capacity, throttling,
//! the sink's own rate limits, a slow endpoint). `BufferMinBytes` lets a shard that has
//! stored nothing in that window start and measure; an empty buffer always admits one
//! record. Sizes are costs: a record's bytes plus [`RECORD_OVERHEAD`].

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What one buffered user record costs besides its data and partition key (its
/// bookkeeping), so that many tiny records are bounded too.
pub const RECORD_OVERHEAD: usize = 64;

/// The measuring window: throughput is what was stored in the last `WINDOW`.
pub const WINDOW: Duration = Duration::from_secs(5);
const BUCKETS: usize = 20;
const BUCKET: Duration = Duration::from_millis(250);

/// Bytes stored per quarter second over the last [`WINDOW`].
#[derive(Debug, Clone)]
pub(crate) struct Throughput {
    origin: Instant,
    /// `(bucket number, cost stored in it)`, at index `bucket number % BUCKETS`.
    buckets: [(u64, u64); BUCKETS],
}

impl Throughput {
    pub(crate) fn new(now: Instant) -> Self {
        Throughput {
            origin: now,
            buckets: [(u64::MAX, 0); BUCKETS],
        }
    }

    fn bucket(&self, now: Instant) -> u64 {
        let since = now.saturating_duration_since(self.origin);
        (since.as_millis() / BUCKET.as_millis()) as u64
    }

    /// Counts `cost` as stored at `now`.
    pub(crate) fn on_stored(&mut self, cost: usize, now: Instant) {
        let b = self.bucket(now);
        let slot = &mut self.buckets[(b % BUCKETS as u64) as usize];
        if slot.0 != b {
            *slot = (b, 0);
        }
        slot.1 = slot.1.saturating_add(cost as u64);
    }

    /// Cost stored per second, over the last [`WINDOW`].
    pub(crate) fn per_second(&self, now: Instant) -> u64 {
        let b = self.bucket(now);
        let stored: u64 = self
            .buckets
            .iter()
            .filter(|(n, _)| *n != u64::MAX && *n <= b && b - *n < BUCKETS as u64)
            .map(|(_, bytes)| *bytes)
            .sum();
        (u128::from(stored) * 1000 / WINDOW.as_millis()) as u64
    }
}

/// One shard's account: what is buffered for it and what it stored lately.
#[derive(Debug, Clone)]
struct Account {
    cost: usize,
    records: usize,
    stored: Throughput,
}

/// The admission rule, shard by shard: a record is charged to the shard its hash key routes
/// to when it is put (or to the "no map yet" account), and released with its outcome, so
/// that a hot or throttled shard slows down only the records bound for it.
#[derive(Debug, Clone)]
pub(crate) struct Admission {
    drain_time: Duration,
    min_bytes: usize,
    accounts: BTreeMap<Arc<str>, Account>,
}

/// What the admission rule sees of one shard (see [`Core::shard_budget`](super::Core::shard_budget)).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShardBudget {
    /// The shard records of this hash key are charged to (empty before the first shard map).
    pub shard_id: Arc<str>,
    /// User records buffered for it.
    pub buffered_records: usize,
    /// Their cost: bytes plus [`RECORD_OVERHEAD`] each.
    pub buffered_cost: usize,
    /// Cost stored per second over the last [`WINDOW`].
    pub throughput: u64,
    /// The most cost it may buffer now: `throughput` times `BufferDrainTime`, or
    /// `BufferMinBytes` while `throughput` is 0 (`usize::MAX` when `BufferDrainTime` is 0).
    pub limit: usize,
}

impl Admission {
    /// `drain_time` zero turns the rule off (only the hard bounds apply).
    pub(crate) fn new(drain_time: Duration, min_bytes: usize) -> Self {
        Admission {
            drain_time,
            min_bytes,
            accounts: BTreeMap::new(),
        }
    }

    /// The budget of `shard` at `now`.
    pub(crate) fn budget(&self, shard: &Arc<str>, now: Instant) -> ShardBudget {
        let (records, cost, throughput) = match self.accounts.get(shard) {
            Some(a) => (a.records, a.cost, a.stored.per_second(now)),
            None => (0, 0, 0),
        };
        let limit = if self.drain_time.is_zero() {
            usize::MAX
        } else if throughput == 0 {
            // Nothing stored lately: the floor, to start and measure.
            self.min_bytes
        } else {
            // Measured: what drains in time, even when that is below the floor (a shard
            // throttled to a trickle must not hold more than it can store within the TTL).
            let drainable = u128::from(throughput) * self.drain_time.as_millis() / 1000;
            usize::try_from(drainable).unwrap_or(usize::MAX)
        };
        ShardBudget {
            shard_id: shard.clone(),
            buffered_records: records,
            buffered_cost: cost,
            throughput,
            limit,
        }
    }

    /// Whether a record of `cost` may be charged to `shard` now: it fits the limit, or the
    /// shard has nothing buffered (so that every shard always makes progress).
    pub(crate) fn allows(&self, shard: &Arc<str>, cost: usize, now: Instant) -> bool {
        let b = self.budget(shard, now);
        b.buffered_records == 0 || b.buffered_cost.saturating_add(cost) <= b.limit
    }

    pub(crate) fn charge(&mut self, shard: &Arc<str>, cost: usize, now: Instant) {
        let a = self
            .accounts
            .entry(shard.clone())
            .or_insert_with(|| Account {
                cost: 0,
                records: 0,
                stored: Throughput::new(now),
            });
        a.cost += cost;
        a.records += 1;
    }

    /// The record's outcome is decided; `stored_at` when it was stored (it then counts
    /// toward its shard's throughput).
    pub(crate) fn release(&mut self, shard: &Arc<str>, cost: usize, stored_at: Option<Instant>) {
        if let Some(a) = self.accounts.get_mut(shard) {
            a.cost = a.cost.saturating_sub(cost);
            a.records = a.records.saturating_sub(1);
            if let Some(now) = stored_at {
                a.stored.on_stored(cost, now);
            }
        }
    }

    /// Each account's id, records and cost charged (what [`Core::check_invariants`]
    /// compares with the records buffered).
    ///
    /// [`Core::check_invariants`]: super::Core::check_invariants
    pub(crate) fn charged(&self) -> impl Iterator<Item = (&str, usize, usize)> + '_ {
        self.accounts
            .iter()
            .map(|(id, a)| (&**id, a.records, a.cost))
    }

    /// Forgets accounts with nothing buffered that are not in `keep` (shards gone from the
    /// map), so that the table does not grow with reshards.
    pub(crate) fn retain(&mut self, keep: impl Fn(&str) -> bool) {
        self.accounts.retain(|id, a| a.records > 0 || keep(id));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_limit_follows_what_the_shard_stored_in_the_window() {
        let t0 = Instant::now();
        let shard: Arc<str> = "s".into();
        let other: Arc<str> = "o".into();
        let mut a = Admission::new(Duration::from_secs(10), 1000);
        assert_eq!(
            a.budget(&shard, t0).limit,
            1000,
            "nothing stored yet: the floor"
        );
        // 50,000 stored within the window: 10,000/s, so 100,000 drain in 10 s.
        for i in 0..10 {
            let at = t0 + Duration::from_millis(400 * i);
            a.charge(&shard, 5000, at);
            a.release(&shard, 5000, Some(at));
        }
        let t = t0 + Duration::from_millis(3900);
        assert_eq!(a.budget(&shard, t).throughput, 10_000);
        assert_eq!(a.budget(&shard, t).limit, 100_000);
        assert_eq!(a.budget(&other, t).limit, 1000, "per shard");
        // Nothing stored for a whole window: back to the floor.
        assert_eq!(a.budget(&shard, t + WINDOW + BUCKET).limit, 1000);
        // Measured, the limit may be below the floor: a trickle holds what drains in time.
        let mut slow = Admission::new(Duration::from_secs(10), 1000);
        slow.charge(&shard, 25, t0);
        slow.release(&shard, 25, Some(t0));
        assert_eq!(slow.budget(&shard, t0).throughput, 5);
        assert_eq!(slow.budget(&shard, t0).limit, 50);
        // An empty shard takes one record whatever its size; then the limit binds.
        assert!(a.allows(&other, 5000, t));
        a.charge(&other, 5000, t);
        assert!(!a.allows(&other, 1, t));
        a.release(&other, 5000, None);
        assert_eq!(
            a.budget(&other, t).throughput,
            0,
            "a failure is not throughput"
        );
        let off = Admission::new(Duration::ZERO, 1000);
        assert_eq!(off.budget(&shard, t0).limit, usize::MAX);
    }

    #[test]
    fn old_buckets_leave_the_window() {
        let t0 = Instant::now();
        let mut w = Throughput::new(t0);
        w.on_stored(1000, t0);
        w.on_stored(4000, t0 + Duration::from_secs(3));
        assert_eq!(w.per_second(t0 + Duration::from_millis(4900)), 1000);
        // The first bucket is out once 5 s have passed since it started.
        assert_eq!(w.per_second(t0 + Duration::from_secs(5)), 800);
        // A slot reused by a later bucket forgets the old one.
        w.on_stored(10, t0 + Duration::from_secs(5));
        assert_eq!(w.per_second(t0 + Duration::from_secs(5)), 802);
    }
}
