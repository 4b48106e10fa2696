//! The sans-IO lease coordinator: [`LeaseCoordinator`].

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::{Duration, Instant};

use super::super::core::StartPosition;
use super::super::lineage::ShardNode;
use super::item::{Lease, LeaseCheckpoint};

/// How a worker takes part.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseConfig {
    /// This worker's name in `leaseOwner` (unique among the workers of the application).
    pub worker_id: String,
    /// How long a lease may go without renewal before others take it (default 10 s, as
    /// KCL's `failoverTimeMillis`).
    pub failover_time: Duration,
    /// Where new leases start when the table is empty (`AtSequenceNumber` is not
    /// available with leases: it is read as `TrimHorizon`).
    pub start: StartPosition,
    /// Most leases this worker holds (default: no limit).
    pub max_leases: usize,
}

impl LeaseConfig {
    /// The defaults for worker `worker_id`.
    pub fn new(worker_id: impl Into<String>) -> Self {
        LeaseConfig {
            worker_id: worker_id.into(),
            failover_time: Duration::from_secs(10),
            start: StartPosition::TrimHorizon,
            max_leases: usize::MAX,
        }
    }
}

/// Identifies an operation handed out by [`LeaseCoordinator::poll_call`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct LeaseCallId(pub u64);

/// An operation on the lease table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LeaseOp {
    /// Read every lease: answer [`LeaseAnswer::Scanned`].
    Scan,
    /// Write this lease if no item has its key.
    Create(Lease),
    /// If `leaseCounter = counter` and `leaseOwner` is this worker: `leaseCounter + 1`.
    Renew {
        /// The lease.
        lease_key: String,
        /// The counter this worker last wrote.
        counter: u64,
    },
    /// If `leaseCounter = counter`, the owner is `owner` (absent for `None`) and
    /// `checkpointOwner` is `checkpoint_owner` (absent for `None`): this worker becomes the
    /// owner, `checkpointOwner` is removed, `leaseCounter + 1`, and
    /// `ownerSwitchesSinceCheckpoint + 1` when the owner changes.
    Take {
        /// The lease.
        lease_key: String,
        /// The counter last seen.
        counter: u64,
        /// The owner last seen.
        owner: Option<String>,
        /// The `checkpointOwner` last seen: set only for a lease whose graceful handoff
        /// never finished (its previous owner gone).
        checkpoint_owner: Option<String>,
    },
    /// Read one lease (strongly consistent): answer [`LeaseAnswer::Scanned`] with it, or
    /// with nothing if it does not exist.
    Read {
        /// The lease.
        lease_key: String,
    },
    /// A graceful handoff, as KCL 3 starts one: if `leaseCounter = counter`, the owner is
    /// `owner` and there is no `checkpointOwner`: `checkpointOwner = owner`, and this
    /// worker becomes the owner (the counter unchanged). The previous owner stops reading,
    /// writes its last checkpoint and ends the handoff ([`LeaseOp::FinishHandoff`]); only
    /// then does this worker read.
    StartHandoff {
        /// The lease.
        lease_key: String,
        /// The counter last seen.
        counter: u64,
        /// The owner last seen, who hands the lease over.
        owner: String,
    },
    /// The end of a graceful handoff, by the previous owner: if `leaseCounter = counter`,
    /// `checkpointOwner` is this worker and the owner is `next_owner`: the checkpoint if
    /// any (`ownerSwitchesSinceCheckpoint = 0`), `checkpointOwner` removed,
    /// `leaseCounter + 1`.
    FinishHandoff {
        /// The lease.
        lease_key: String,
        /// The counter this worker last wrote.
        counter: u64,
        /// Its last checkpoint, if not written yet.
        checkpoint: Option<LeaseCheckpoint>,
        /// The owner it hands the lease to.
        next_owner: String,
    },
    /// If `leaseCounter = counter` and `leaseOwner` is this worker: set the checkpoint,
    /// `ownerSwitchesSinceCheckpoint = 0`, `leaseCounter + 1`.
    Checkpoint {
        /// The lease.
        lease_key: String,
        /// The counter this worker last wrote.
        counter: u64,
        /// The new checkpoint.
        checkpoint: LeaseCheckpoint,
    },
    /// If `leaseCounter = counter` and `leaseOwner` is this worker: remove the owner,
    /// `leaseCounter + 1` (on shutdown: others may take it at once).
    Release {
        /// The lease.
        lease_key: String,
        /// The counter this worker last wrote.
        counter: u64,
    },
}

/// An operation to make, then to answer with [`LeaseCoordinator::on_answer`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseCall {
    /// Pass it back with the answer.
    pub id: LeaseCallId,
    /// What to do.
    pub op: LeaseOp,
}

/// The answer to a [`LeaseCall`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LeaseAnswer {
    /// To [`LeaseOp::Scan`]: every item of the table.
    Scanned(Vec<Lease>),
    /// A write succeeded (the counter is one more than the condition's).
    Written,
    /// A write's condition failed.
    ConditionFailed,
    /// The call failed.
    Failed {
        /// The error code.
        code: String,
        /// The service's message.
        message: String,
    },
}

/// A change in the shards this worker reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LeaseEvent {
    /// This worker now holds the shard's lease: read it from `checkpoint`.
    Acquired {
        /// The shard.
        shard_id: String,
        /// Where its lease says it got to.
        checkpoint: LeaseCheckpoint,
    },
    /// Another worker asked for the shard's lease (a graceful handoff): stop reading the
    /// shard and delivering its records, but keep reporting the checkpoints of the records
    /// already delivered ([`LeaseCoordinator::checkpoint`]): the last of them goes with the
    /// lease, shortly, and [`LeaseEvent::Lost`] follows.
    HandingOff {
        /// The shard.
        shard_id: String,
        /// The worker that asked for it.
        to: String,
    },
    /// This worker no longer holds the shard's lease (taken by another worker, handed
    /// over, not renewed in time, or released on shutdown): stop delivering its records.
    Lost {
        /// The shard.
        shard_id: String,
    },
    /// The shard's lease was checkpointed at `SHARD_END` and let go: it is done.
    Finished {
        /// The shard.
        shard_id: String,
    },
}

impl core::fmt::Display for LeaseEvent {
    /// One line for a log: `lease of shardId-000000000001 taken: reading from TRIM_HORIZON`.
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            LeaseEvent::Acquired {
                shard_id,
                checkpoint,
            } => {
                let (at, sub) = checkpoint.to_attributes();
                write!(f, "lease of {shard_id} taken: reading from {at}")?;
                if sub > 0 {
                    write!(f, " (after user record {sub})")?;
                }
                Ok(())
            }
            LeaseEvent::HandingOff { shard_id, to } => write!(
                f,
                "lease of {shard_id} asked for by {to}: handing it over with its last checkpoint"
            ),
            LeaseEvent::Lost { shard_id } => write!(f, "lease of {shard_id} no longer held"),
            LeaseEvent::Finished { shard_id } => {
                write!(f, "shard {shard_id} read to its end (SHARD_END)")
            }
        }
    }
}

/// Why a checkpoint was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseLost {
    /// The shard whose lease this worker does not hold.
    pub shard_id: String,
}

impl core::fmt::Display for LeaseLost {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(
            f,
            "the lease of shard {} is not held by this worker",
            self.shard_id
        )
    }
}

impl std::error::Error for LeaseLost {}

/// A lease as last seen in a scan.
#[derive(Debug, Clone)]
struct Seen {
    lease: Lease,
    /// When its counter was first seen at its current value.
    since: Instant,
}

/// A lease this worker holds.
#[derive(Debug, Clone)]
struct Held {
    counter: u64,
    /// The last successful write (take, renewal, checkpoint).
    written_at: Instant,
    /// An operation on it is in flight.
    busy: bool,
    /// A checkpoint to write once nothing is in flight.
    pending: Option<LeaseCheckpoint>,
    /// After a failed operation (not a failed condition): nothing before this time.
    retry_at: Option<Instant>,
    /// A write on it failed its condition: it is read to learn why (taken, or a graceful
    /// handoff asked of this worker) before anything else is done with it.
    verify: bool,
}

impl Held {
    fn new(counter: u64, now: Instant) -> Self {
        Held {
            counter,
            written_at: now,
            busy: false,
            pending: None,
            retry_at: None,
            verify: false,
        }
    }

    /// Nothing in flight on it and no failure to wait out.
    fn ready(&self, now: Instant) -> bool {
        !self.busy && self.retry_at.is_none_or(|t| t <= now)
    }
}

/// A lease this worker hands over (graceful handoff): its shard is no longer read; the
/// last checkpoint reported goes with it.
#[derive(Debug, Clone)]
struct HandingOff {
    /// The counter this worker last wrote (a handoff's start leaves it unchanged).
    counter: u64,
    /// The worker it goes to.
    next_owner: String,
    /// When this worker learnt of the handoff.
    since: Instant,
    /// The last checkpoint reported and not written yet.
    pending: Option<LeaseCheckpoint>,
    /// When to end it (checkpoints reported meanwhile go with it); again after a failure.
    finish_at: Instant,
    busy: bool,
}

/// A lease this worker asked for with a graceful handoff: its owner finishes first.
#[derive(Debug, Clone)]
struct Awaiting {
    /// When the handoff started.
    since: Instant,
    /// When to read the lease next, to see whether the handoff finished.
    read_at: Instant,
    busy: bool,
    /// Its owner never finished the handoff: the take to make instead of the next read.
    force: Option<Planned>,
}

/// A take or a handoff decided by the last scan.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Planned {
    key: String,
    counter: u64,
    owner: Option<String>,
    checkpoint_owner: Option<String>,
    /// From a live owner: a graceful handoff rather than a take.
    handoff: bool,
}

impl Planned {
    fn of(lease: &Lease, handoff: bool) -> Self {
        Planned {
            key: lease.lease_key.clone(),
            counter: lease.lease_counter,
            owner: lease.lease_owner.clone(),
            checkpoint_owner: lease.checkpoint_owner.clone(),
            handoff,
        }
    }
}

/// What an in-flight operation was for.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Purpose {
    Scan,
    Create(String),
    Renew(String),
    Take(String, u64),
    Checkpoint(String, LeaseCheckpoint),
    Release(String),
    /// A held lease read after a failed condition.
    Verify(String),
    StartHandoff(String),
    /// An awaited lease read.
    Await(String),
    FinishHandoff(String, Option<LeaseCheckpoint>),
}

/// The sans-IO lease coordinator: one worker's side of KCL's lease protocol. Handed the
/// lease table (scans), the results of its conditional writes, the stream's shards and the
/// time, it hands back the table operations to make and the shards this worker gains and
/// loses. No I/O, no clock.
///
/// Rules (KCL 2.x's, kept simple):
/// - every `failover_time / 3` each held lease is renewed: `leaseCounter + 1`, on condition
///   that the counter and the owner are still what this worker wrote; a failed condition
///   means another worker took it: the shard is lost at once. A lease not renewed for
///   `failover_time` (DynamoDB unreachable) is given up locally too, before anyone else may
///   take it;
/// - every `failover_time` the table is scanned. A lease whose counter has not moved for
///   `failover_time` since this worker first saw that value is expired; a lease without
///   owner is free;
/// - the target is an even share: `ceil(leases / workers)`, counting the leases not
///   finished whose parents are finished, and the workers holding a lease that is not
///   expired, plus this one. Below it, a worker takes free and expired leases (in key
///   order) up to the target; when there are none, it asks for one lease of the most
///   loaded worker if that one holds more than the target (or the target while this one
///   holds two fewer);
/// - asking is a graceful handoff, as KCL 3 makes them: the asker becomes `leaseOwner` and
///   the owner `checkpointOwner`, the counter unchanged. The owner's next renewal fails;
///   it reads the lease, stops reading the shard ([`LeaseEvent::HandingOff`]), waits
///   `failover_time / 10` for the checkpoints of the records it delivered, then writes the
///   last one and removes `checkpointOwner` in one conditional write. The asker reads the
///   lease every `failover_time / 10` and reads the shard once `checkpointOwner` is gone,
///   from that checkpoint; if it is still there after `failover_time` (the owner died),
///   the asker takes the lease. So a shard that moves between live workers is never read
///   by two at once, and is read again only from records whose checkpoint was not
///   reported in time;
/// - a lease is taken only once the leases of its shard's parents are at `SHARD_END` (or
///   gone): parents before children, across workers;
/// - taking is a conditional write on the counter and owner last seen; a checkpoint is a
///   conditional write on the counter and owner this worker wrote, which fails once the
///   lease is lost; a lease checkpointed at `SHARD_END` is let go (no longer renewed);
/// - leases are created (a write on condition the key does not exist) for shards of the
///   stream that have none, parents before children: with the start position when the
///   table is empty, at `TRIM_HORIZON` for shards born later (children must be read whole).
///
/// ```
/// use std::time::{Duration, Instant};
/// use kpl_kinesis::source::lease::{
///     Lease, LeaseAnswer, LeaseCheckpoint, LeaseConfig, LeaseCoordinator, LeaseEvent, LeaseOp,
/// };
///
/// let now = Instant::now();
/// let mut worker = LeaseCoordinator::new(LeaseConfig::new("worker-1"));
/// let scan = worker.poll_call(now).unwrap();
/// assert_eq!(scan.op, LeaseOp::Scan);
/// let free = Lease::new("shardId-0", LeaseCheckpoint::TrimHorizon);
/// worker.on_answer(scan.id, LeaseAnswer::Scanned(vec![free]), now);
/// let take = worker.poll_call(now).unwrap();
/// assert!(matches!(take.op, LeaseOp::Take { .. }));
/// worker.on_answer(take.id, LeaseAnswer::Written, now);
/// assert!(matches!(worker.poll_event(), Some(LeaseEvent::Acquired { .. })));
/// ```
#[derive(Debug)]
pub struct LeaseCoordinator {
    config: LeaseConfig,
    table: BTreeMap<String, Seen>,
    scanned: bool,
    scan_in_flight: bool,
    /// When the scan in flight (or the last one) was handed out.
    scan_started: Option<Instant>,
    next_scan: Option<Instant>,
    held: BTreeMap<String, Held>,
    /// Shards of the stream, from the source's last listing.
    shards: Vec<ShardNode>,
    creating: BTreeSet<String>,
    /// Once the first scan and listing are in: the shards that start at the configured
    /// position (those listed while the table was empty); others start at TRIM_HORIZON.
    initial: Option<BTreeSet<String>>,
    /// Whether the first scan found the table empty.
    empty_at_start: Option<bool>,
    /// After a failed create: none before this time.
    create_retry_at: Option<Instant>,
    /// Takes and handoffs decided by the last scan, not handed out yet.
    to_take: VecDeque<Planned>,
    /// Leases this worker hands over.
    handing_off: BTreeMap<String, HandingOff>,
    /// Leases this worker asked for, until their owner hands them over.
    awaiting: BTreeMap<String, Awaiting>,
    taking: BTreeSet<String>,
    in_flight: BTreeMap<LeaseCallId, Purpose>,
    next_id: u64,
    events: VecDeque<LeaseEvent>,
    shutting_down: bool,
}

impl LeaseCoordinator {
    /// A worker holding nothing yet.
    pub fn new(config: LeaseConfig) -> Self {
        LeaseCoordinator {
            config,
            table: BTreeMap::new(),
            scanned: false,
            scan_in_flight: false,
            scan_started: None,
            next_scan: None,
            held: BTreeMap::new(),
            shards: Vec::new(),
            creating: BTreeSet::new(),
            initial: None,
            empty_at_start: None,
            create_retry_at: None,
            to_take: VecDeque::new(),
            handing_off: BTreeMap::new(),
            awaiting: BTreeMap::new(),
            taking: BTreeSet::new(),
            in_flight: BTreeMap::new(),
            next_id: 0,
            events: VecDeque::new(),
            shutting_down: false,
        }
    }

    /// The configuration.
    pub fn config(&self) -> &LeaseConfig {
        &self.config
    }

    /// The shards whose leases this worker holds.
    pub fn held(&self) -> impl Iterator<Item = &str> {
        self.held.keys().map(String::as_str)
    }

    /// The shards whose leases this worker hands over: no longer read, their checkpoints
    /// still taken.
    pub fn handing_off(&self) -> impl Iterator<Item = &str> {
        self.handing_off.keys().map(String::as_str)
    }

    /// Operations handed out and not answered yet.
    pub fn in_flight(&self) -> usize {
        self.in_flight.len()
    }

    /// The next gain or loss of a shard.
    pub fn poll_event(&mut self) -> Option<LeaseEvent> {
        self.events.pop_front()
    }

    /// The stream's shards (each listing of the source): leases are made for those
    /// without one.
    pub fn on_shards(&mut self, shards: &[ShardNode]) {
        self.shards = shards.to_vec();
        self.settle_initial();
    }

    fn settle_initial(&mut self) {
        if self.initial.is_some() || self.shards.is_empty() {
            return;
        }
        if let Some(empty) = self.empty_at_start {
            self.initial = Some(if empty {
                self.shards.iter().map(|s| s.shard_id.clone()).collect()
            } else {
                BTreeSet::new()
            });
        }
    }

    /// Records that shard `shard_id` was processed up to `checkpoint` (written as soon as
    /// no other operation on the lease is in flight, or with the lease when it is handed
    /// over). Refused when this worker neither holds nor hands over the lease.
    pub fn checkpoint(
        &mut self,
        shard_id: &str,
        checkpoint: LeaseCheckpoint,
    ) -> Result<(), LeaseLost> {
        if let Some(held) = self.held.get_mut(shard_id) {
            held.pending = Some(checkpoint);
            return Ok(());
        }
        if let Some(leaving) = self.handing_off.get_mut(shard_id) {
            leaving.pending = Some(checkpoint);
            return Ok(());
        }
        Err(LeaseLost {
            shard_id: shard_id.to_owned(),
        })
    }

    /// Whether checkpoints wait to be written (or are being written).
    pub fn has_pending_checkpoints(&self) -> bool {
        self.held.values().any(|h| h.pending.is_some())
            || self.handing_off.values().any(|h| h.pending.is_some())
            || self
                .in_flight
                .values()
                .any(|p| matches!(p, Purpose::Checkpoint(..) | Purpose::FinishHandoff(..)))
    }

    /// Stops taking and renewing; pending checkpoints are written, then every held lease
    /// is released. Done once [`is_shut_down`](Self::is_shut_down).
    pub fn shutdown(&mut self) {
        self.shutting_down = true;
        self.to_take.clear();
        // Leases asked for are left to their owners' handoff (or to expire).
        self.awaiting.clear();
    }

    /// After [`shutdown`](Self::shutdown): every lease released, handed over (or lost) and
    /// nothing in flight.
    pub fn is_shut_down(&self) -> bool {
        self.shutting_down
            && self.held.is_empty()
            && self.handing_off.is_empty()
            && self.in_flight.is_empty()
    }

    /// The next operation to make now, if any.
    pub fn poll_call(&mut self, now: Instant) -> Option<LeaseCall> {
        self.expire_held(now);
        // A create's pause once over is no deadline any more (it would wake a driver at
        // once, for ever).
        if self.create_retry_at.is_some_and(|t| t <= now) {
            self.create_retry_at = None;
        }
        // A lease whose write failed its condition is read first: taken, or handed over?
        let verify = self
            .held
            .iter()
            .find(|(_, h)| h.verify && h.ready(now))
            .map(|(k, _)| k.clone());
        if let Some(key) = verify {
            if let Some(h) = self.held.get_mut(&key) {
                h.busy = true;
            }
            let op = LeaseOp::Read {
                lease_key: key.clone(),
            };
            return Some(self.call(Purpose::Verify(key), op));
        }
        // Checkpoints first: they carry the application's progress.
        let checkpoint = self
            .held
            .iter()
            .find(|(_, h)| !h.verify && h.ready(now) && h.pending.is_some())
            .map(|(k, _)| k.clone());
        if let Some(key) = checkpoint {
            let held = self.held.get_mut(&key)?;
            let cp = held.pending.take()?;
            held.busy = true;
            let op = LeaseOp::Checkpoint {
                lease_key: key.clone(),
                counter: held.counter,
                checkpoint: cp.clone(),
            };
            return Some(self.call(Purpose::Checkpoint(key, cp), op));
        }
        // Handoffs whose wait for the last checkpoints is over.
        let finish = self
            .handing_off
            .iter()
            .find(|(_, h)| !h.busy && h.finish_at <= now)
            .map(|(k, _)| k.clone());
        if let Some(key) = finish {
            let leaving = self.handing_off.get_mut(&key)?;
            leaving.busy = true;
            let checkpoint = leaving.pending.take();
            let op = LeaseOp::FinishHandoff {
                lease_key: key.clone(),
                counter: leaving.counter,
                checkpoint: checkpoint.clone(),
                next_owner: leaving.next_owner.clone(),
            };
            return Some(self.call(Purpose::FinishHandoff(key, checkpoint), op));
        }
        if self.shutting_down {
            let release = self
                .held
                .iter()
                .find(|(_, h)| !h.verify && h.ready(now))
                .map(|(k, h)| (k.clone(), h.counter));
            let (key, counter) = release?;
            if let Some(h) = self.held.get_mut(&key) {
                h.busy = true;
            }
            let op = LeaseOp::Release {
                lease_key: key.clone(),
                counter,
            };
            return Some(self.call(Purpose::Release(key), op));
        }
        if !self.scan_in_flight && self.next_scan.is_none_or(|t| t <= now) {
            self.scan_in_flight = true;
            self.scan_started = Some(now);
            self.next_scan = Some(now + self.config.failover_time);
            return Some(self.call(Purpose::Scan, LeaseOp::Scan));
        }
        let due = self
            .held
            .iter()
            .find(|(_, h)| {
                !h.verify
                    && h.ready(now)
                    && now.saturating_duration_since(h.written_at) >= self.renew_interval()
            })
            .map(|(k, h)| (k.clone(), h.counter));
        if let Some((key, counter)) = due {
            if let Some(h) = self.held.get_mut(&key) {
                h.busy = true;
            }
            let op = LeaseOp::Renew {
                lease_key: key.clone(),
                counter,
            };
            return Some(self.call(Purpose::Renew(key), op));
        }
        // Leases asked for: read to see whether their owner handed them over.
        let awaited = self
            .awaiting
            .iter()
            .find(|(_, a)| !a.busy && a.read_at <= now)
            .map(|(k, _)| k.clone());
        if let Some(key) = awaited {
            let a = self.awaiting.get_mut(&key)?;
            a.busy = true;
            if let Some(plan) = a.force.take() {
                let op = LeaseOp::Take {
                    lease_key: key.clone(),
                    counter: plan.counter,
                    owner: plan.owner,
                    checkpoint_owner: plan.checkpoint_owner,
                };
                return Some(self.call(Purpose::Take(key, plan.counter), op));
            }
            let op = LeaseOp::Read {
                lease_key: key.clone(),
            };
            return Some(self.call(Purpose::Await(key), op));
        }
        if let Some(plan) = self.to_take.pop_front() {
            self.taking.insert(plan.key.clone());
            return Some(match (plan.handoff, plan.owner) {
                (true, Some(owner)) => {
                    let op = LeaseOp::StartHandoff {
                        lease_key: plan.key.clone(),
                        counter: plan.counter,
                        owner,
                    };
                    self.call(Purpose::StartHandoff(plan.key), op)
                }
                (_, owner) => {
                    let op = LeaseOp::Take {
                        lease_key: plan.key.clone(),
                        counter: plan.counter,
                        owner,
                        checkpoint_owner: plan.checkpoint_owner,
                    };
                    self.call(Purpose::Take(plan.key, plan.counter), op)
                }
            });
        }
        if self.scanned && !self.shutting_down && self.create_retry_at.is_none_or(|t| t <= now) {
            if let Some(lease) = self.missing_lease() {
                self.creating.insert(lease.lease_key.clone());
                let key = lease.lease_key.clone();
                return Some(self.call(Purpose::Create(key), LeaseOp::Create(lease)));
            }
        }
        None
    }

    /// When to call [`poll_call`](Self::poll_call) again if nothing is answered before.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let mut wake = None;
        let mut at = |t: Instant| wake = Some(wake.map_or(t, |w: Instant| w.min(t)));
        if !self.shutting_down {
            if let Some(t) = self.next_scan {
                at(t);
            }
        }
        for h in self.held.values().filter(|h| !h.busy) {
            let ready = h.retry_at.unwrap_or(h.written_at);
            if !self.shutting_down {
                at((h.written_at + self.renew_interval()).max(ready));
            } else {
                at(ready);
            }
            if h.pending.is_some() || h.verify {
                at(ready);
            }
            // Given up locally if not renewed in time.
            at(h.written_at + self.config.failover_time);
        }
        for h in self.handing_off.values().filter(|h| !h.busy) {
            at(h.finish_at);
            at(h.since + self.config.failover_time);
        }
        for a in self.awaiting.values().filter(|a| !a.busy) {
            at(a.read_at);
        }
        if let Some(t) = self.create_retry_at {
            at(t);
        }
        wake
    }

    /// Takes the answer to operation `id` (unknown ids are ignored).
    pub fn on_answer(&mut self, id: LeaseCallId, answer: LeaseAnswer, now: Instant) {
        let Some(purpose) = self.in_flight.remove(&id) else {
            return;
        };
        match purpose {
            Purpose::Scan => {
                self.scan_in_flight = false;
                if let LeaseAnswer::Scanned(leases) = answer {
                    self.on_scan(leases, now);
                } else {
                    // Scanned again soon.
                    self.next_scan = Some(now + self.config.failover_time / 4);
                }
            }
            Purpose::Create(key) => {
                self.creating.remove(&key);
                if answer == LeaseAnswer::Written || answer == LeaseAnswer::ConditionFailed {
                    // Made here or by another worker: the next scan shows it.
                    self.next_scan = Some(now);
                } else {
                    self.create_retry_at = Some(now + self.retry_delay());
                }
            }
            Purpose::Take(key, counter) => {
                self.taking.remove(&key);
                let forced = self.awaiting.remove(&key).is_some();
                if answer == LeaseAnswer::Written && !self.shutting_down {
                    let checkpoint = self
                        .table
                        .get(&key)
                        .map_or(LeaseCheckpoint::TrimHorizon, |s| s.lease.checkpoint.clone());
                    self.held.insert(key.clone(), Held::new(counter + 1, now));
                    self.events.push_back(LeaseEvent::Acquired {
                        shard_id: key,
                        checkpoint,
                    });
                } else if forced && !self.shutting_down && answer != LeaseAnswer::Written {
                    // The handoff may have finished meanwhile: read again.
                    self.await_lease(key, now, now);
                }
            }
            Purpose::StartHandoff(key) => {
                self.taking.remove(&key);
                if answer == LeaseAnswer::Written && !self.shutting_down {
                    let since = now;
                    self.await_lease(key, since, now + self.retry_delay());
                }
            }
            Purpose::Await(key) => self.on_awaited(key, answer, now),
            Purpose::Verify(key) => self.on_verified(key, answer, now),
            Purpose::FinishHandoff(key, cp) => match answer {
                LeaseAnswer::Written | LeaseAnswer::ConditionFailed => {
                    if answer == LeaseAnswer::Written {
                        if let (Some(seen), Some(cp)) = (self.table.get_mut(&key), cp) {
                            seen.lease.checkpoint = cp;
                        }
                    }
                    if self.handing_off.remove(&key).is_some() {
                        self.events.push_back(LeaseEvent::Lost { shard_id: key });
                    }
                }
                _ => {
                    let delay = self.retry_delay();
                    if let Some(h) = self.handing_off.get_mut(&key) {
                        h.busy = false;
                        h.finish_at = now + delay;
                        if h.pending.is_none() {
                            h.pending = cp;
                        }
                    }
                }
            },
            Purpose::Renew(key) => match answer {
                LeaseAnswer::Written => {
                    if let Some(h) = self.held.get_mut(&key) {
                        h.counter += 1;
                        h.written_at = now;
                        h.busy = false;
                        h.retry_at = None;
                    }
                }
                LeaseAnswer::ConditionFailed => self.verify(&key, None),
                _ => self.failed(&key, now, None),
            },
            Purpose::Checkpoint(key, cp) => match answer {
                LeaseAnswer::Written => {
                    let finished = cp == LeaseCheckpoint::ShardEnd;
                    if let Some(h) = self.held.get_mut(&key) {
                        h.counter += 1;
                        h.written_at = now;
                        h.busy = false;
                        h.retry_at = None;
                    }
                    if let Some(seen) = self.table.get_mut(&key) {
                        seen.lease.checkpoint = cp;
                    }
                    if finished {
                        // Done: let go (no longer renewed).
                        self.held.remove(&key);
                        self.events
                            .push_back(LeaseEvent::Finished { shard_id: key });
                    }
                }
                LeaseAnswer::ConditionFailed => self.verify(&key, Some(cp)),
                _ => self.failed(&key, now, Some(cp)),
            },
            Purpose::Release(key) => match answer {
                LeaseAnswer::Written | LeaseAnswer::ConditionFailed => self.lose(&key),
                _ => self.failed(&key, now, None),
            },
        }
    }

    /// A held lease's write failed its condition: it is read before anything else is done
    /// with it (a checkpoint that did not go is kept, unless a newer one came).
    fn verify(&mut self, key: &str, checkpoint: Option<LeaseCheckpoint>) {
        if let Some(h) = self.held.get_mut(key) {
            h.busy = false;
            h.verify = true;
            if h.pending.is_none() {
                h.pending = checkpoint;
            }
        }
    }

    /// The answer to reading a held lease whose write failed its condition: a graceful
    /// handoff asked of this worker, or the lease is lost.
    fn on_verified(&mut self, key: String, answer: LeaseAnswer, now: Instant) {
        let me = self.config.worker_id.as_str();
        match answer {
            LeaseAnswer::Scanned(found) => {
                let lease = found.into_iter().find(|l| l.lease_key == key);
                let handoff = lease.as_ref().and_then(|l| {
                    let next = l.lease_owner.as_deref().filter(|o| *o != me)?;
                    (l.checkpoint_owner.as_deref() == Some(me))
                        .then(|| (next.to_owned(), l.lease_counter))
                });
                match handoff {
                    Some((next_owner, counter)) => self.hand_off(&key, next_owner, counter, now),
                    None => self.lose(&key),
                }
                if let Some(lease) = lease {
                    self.remember(lease, now);
                }
            }
            _ => {
                // Read again after a pause (given up if not settled within the failover
                // time, as any held lease).
                let delay = self.retry_delay();
                if let Some(h) = self.held.get_mut(&key) {
                    h.busy = false;
                    h.retry_at = Some(now + delay);
                }
            }
        }
    }

    /// Starts handing a held lease over to `next_owner`: its shard is no longer read, and
    /// the checkpoints reported within the grace go with it.
    fn hand_off(&mut self, key: &str, next_owner: String, counter: u64, now: Instant) {
        let Some(held) = self.held.remove(key) else {
            return;
        };
        self.handing_off.insert(
            key.to_owned(),
            HandingOff {
                counter,
                next_owner: next_owner.clone(),
                since: now,
                pending: held.pending,
                finish_at: now + self.retry_delay(),
                busy: false,
            },
        );
        self.events.push_back(LeaseEvent::HandingOff {
            shard_id: key.to_owned(),
            to: next_owner,
        });
    }

    /// Waits for a lease asked for, reading it at `read_at`.
    fn await_lease(&mut self, key: String, since: Instant, read_at: Instant) {
        let since = self.awaiting.get(&key).map_or(since, |a| a.since);
        self.awaiting.insert(
            key,
            Awaiting {
                since,
                read_at,
                busy: false,
                force: None,
            },
        );
    }

    /// The answer to reading a lease asked for.
    fn on_awaited(&mut self, key: String, answer: LeaseAnswer, now: Instant) {
        let Some(awaiting) = self.awaiting.get(&key).cloned() else {
            return;
        };
        let me = self.config.worker_id.as_str();
        let LeaseAnswer::Scanned(found) = answer else {
            self.await_lease(key, awaiting.since, now + self.retry_delay());
            return;
        };
        let Some(lease) = found.into_iter().find(|l| l.lease_key == key) else {
            self.awaiting.remove(&key);
            return;
        };
        if lease.lease_owner.as_deref() != Some(me) || self.shutting_down {
            // Taken by another worker meanwhile.
            self.awaiting.remove(&key);
        } else if lease.checkpoint_owner.is_none() {
            // Handed over: read from the checkpoint its previous owner left.
            self.awaiting.remove(&key);
            let checkpoint = lease.checkpoint.clone();
            if lease.is_finished() {
                // Nothing left to read in it.
            } else {
                self.held
                    .insert(key.clone(), Held::new(lease.lease_counter, now));
                self.events.push_back(LeaseEvent::Acquired {
                    shard_id: key.clone(),
                    checkpoint,
                });
            }
        } else if now.saturating_duration_since(awaiting.since) >= self.config.failover_time {
            // Its owner never finished: take it as the lease now stands.
            self.await_lease(key.clone(), awaiting.since, now);
            if let Some(a) = self.awaiting.get_mut(&key) {
                a.force = Some(Planned::of(&lease, false));
            }
        } else {
            self.await_lease(key.clone(), awaiting.since, now + self.retry_delay());
        }
        self.remember(lease, now);
    }

    /// A lease as just read: the table's view of it.
    fn remember(&mut self, lease: Lease, now: Instant) {
        let since = match self.table.get(&lease.lease_key) {
            Some(old)
                if old.lease.lease_counter == lease.lease_counter
                    && old.lease.lease_owner == lease.lease_owner =>
            {
                old.since
            }
            _ => now,
        };
        self.table
            .insert(lease.lease_key.clone(), Seen { lease, since });
    }

    fn renew_interval(&self) -> Duration {
        self.config.failover_time / 3
    }

    /// The wait after a failed operation (DynamoDB throttling or unreachable).
    fn retry_delay(&self) -> Duration {
        self.config.failover_time / 10
    }

    /// An operation on a held lease failed (not its condition): tried again after a
    /// pause; a checkpoint is written again unless a newer one came meanwhile.
    fn failed(&mut self, key: &str, now: Instant, checkpoint: Option<LeaseCheckpoint>) {
        let delay = self.retry_delay();
        if let Some(h) = self.held.get_mut(key) {
            h.busy = false;
            h.retry_at = Some(now + delay);
            if h.pending.is_none() {
                h.pending = checkpoint;
            }
        }
    }

    fn call(&mut self, purpose: Purpose, op: LeaseOp) -> LeaseCall {
        let id = LeaseCallId(self.next_id);
        self.next_id += 1;
        self.in_flight.insert(id, purpose);
        LeaseCall { id, op }
    }

    fn lose(&mut self, key: &str) {
        if self.held.remove(key).is_some() {
            self.events.push_back(LeaseEvent::Lost {
                shard_id: key.to_owned(),
            });
        }
    }

    /// Leases not written for `failover_time` are given up before others may take them.
    fn expire_held(&mut self, now: Instant) {
        let failover = self.config.failover_time;
        let stale: Vec<String> = self
            .held
            .iter()
            .filter(|(_, h)| !h.busy && now.saturating_duration_since(h.written_at) >= failover)
            .map(|(k, _)| k.clone())
            .collect();
        for key in stale {
            self.lose(&key);
        }
        // A handoff that cannot be finished (DynamoDB unreachable) is given up the same way.
        let stuck: Vec<String> = self
            .handing_off
            .iter()
            .filter(|(_, h)| !h.busy && now.saturating_duration_since(h.since) >= failover)
            .map(|(k, _)| k.clone())
            .collect();
        for key in stuck {
            self.handing_off.remove(&key);
            self.events.push_back(LeaseEvent::Lost { shard_id: key });
        }
    }

    /// Whether the table (as last seen) names `worker` as the owner of lease `key`.
    fn owned_by(&self, key: &str, worker: &str) -> bool {
        self.table
            .get(key)
            .is_some_and(|s| s.lease.lease_owner.as_deref() == Some(worker))
    }

    fn expired(&self, seen: &Seen, now: Instant) -> bool {
        seen.lease.lease_owner.is_none()
            || now.saturating_duration_since(seen.since) >= self.config.failover_time
    }

    fn parents_done(&self, lease: &Lease) -> bool {
        lease.parent_shard_ids.iter().all(|p| {
            self.table
                .get(p)
                .is_none_or(|parent| parent.lease.is_finished())
        })
    }

    fn on_scan(&mut self, leases: Vec<Lease>, now: Instant) {
        self.scanned = true;
        if self.empty_at_start.is_none() {
            self.empty_at_start = Some(leases.is_empty());
            self.settle_initial();
        }
        let mut table = BTreeMap::new();
        for lease in leases {
            let since = match self.table.get(&lease.lease_key) {
                Some(old)
                    if old.lease.lease_counter == lease.lease_counter
                        && old.lease.lease_owner == lease.lease_owner =>
                {
                    old.since
                }
                _ => now,
            };
            table.insert(lease.lease_key.clone(), Seen { lease, since });
        }
        self.table = table;
        // A held lease now owned by someone else (or gone) is lost, or handed over when
        // this worker is its `checkpointOwner`; not one written since the scan was handed
        // out (taken meanwhile: the scan shows it as it was before).
        let me = self.config.worker_id.clone();
        let scanned_at = self.scan_started;
        let lost: Vec<String> = self
            .held
            .iter()
            .filter(|(k, h)| {
                !h.busy
                    && !h.verify
                    && scanned_at.is_none_or(|t| h.written_at < t)
                    && !self.owned_by(k, &me)
            })
            .map(|(k, _)| k.clone())
            .collect();
        for key in lost {
            let handoff = self.table.get(&key).and_then(|s| {
                let next = s.lease.lease_owner.clone()?;
                (s.lease.checkpoint_owner.as_deref() == Some(me.as_str()))
                    .then_some((next, s.lease.lease_counter))
            });
            match handoff {
                Some((next_owner, counter)) => self.hand_off(&key, next_owner, counter, now),
                None => self.lose(&key),
            }
        }
        // A lease asked for that another worker took meanwhile is not awaited any more.
        let gone: Vec<String> = self
            .awaiting
            .iter()
            .filter(|(k, a)| {
                !a.busy && scanned_at.is_none_or(|t| a.since < t) && !self.owned_by(k, &me)
            })
            .map(|(k, _)| k.clone())
            .collect();
        for key in gone {
            self.awaiting.remove(&key);
        }
        if !self.shutting_down {
            self.plan_takes(now);
        }
    }

    /// Decides which leases to take after a scan (see the module docs).
    fn plan_takes(&mut self, now: Instant) {
        self.to_take.clear();
        let me = self.config.worker_id.as_str();
        let candidates: Vec<&Seen> = self
            .table
            .values()
            .filter(|s| !s.lease.is_finished() && self.parents_done(&s.lease))
            .collect();
        let mut load: BTreeMap<&str, usize> = BTreeMap::new();
        load.insert(me, 0);
        for s in &candidates {
            if let Some(owner) = s.lease.lease_owner.as_deref() {
                if owner == me {
                    continue;
                }
                if !self.expired(s, now) {
                    *load.entry(owner).or_default() += 1;
                }
            }
        }
        // Leases held, asked for, and being taken or asked for now.
        let mine = self.held.len() + self.awaiting.len() + self.taking.len();
        let target = candidates
            .len()
            .div_ceil(load.len())
            .min(self.config.max_leases);
        if mine >= target {
            return;
        }
        let want = target - mine;
        let busy = |key: &String| {
            self.held.contains_key(key)
                || self.taking.contains(key)
                || self.awaiting.contains_key(key)
                || self.handing_off.contains_key(key)
        };
        let free: Vec<Planned> = candidates
            .iter()
            .filter(|s| !busy(&s.lease.lease_key))
            .filter(|s| {
                // Ours in the table but not held (a restart under the same id) and not in a
                // handoff, free, or expired (a handoff that never finished included).
                (s.lease.lease_owner.as_deref() == Some(me) && s.lease.checkpoint_owner.is_none())
                    || self.expired(s, now)
            })
            .map(|s| Planned::of(&s.lease, false))
            .take(want)
            .collect();
        if !free.is_empty() {
            self.to_take.extend(free);
            return;
        }
        // Ask the most loaded worker for one, with a graceful handoff.
        let Some((victim, most)) = load
            .iter()
            .filter(|(w, _)| **w != me)
            .max_by_key(|(w, n)| (**n, std::cmp::Reverse(**w)))
            .map(|(w, n)| (w.to_string(), *n))
        else {
            return;
        };
        if most > target || (most == target && mine + 1 < target) {
            let ask = candidates
                .iter()
                .filter(|s| s.lease.lease_owner.as_deref() == Some(victim.as_str()))
                .filter(|s| s.lease.checkpoint_owner.is_none())
                .filter(|s| !busy(&s.lease.lease_key))
                .map(|s| Planned::of(&s.lease, true))
                .next();
            self.to_take.extend(ask);
        }
    }

    /// The ancestors of every shard that has a lease: done, with or without a lease of their
    /// own. KCL deletes a finished parent's lease once its children have moved on, and
    /// making it again would read the whole shard a second time. Lineage comes from the
    /// listing and from the leases themselves (their parent shard ids), so a listing that
    /// lacks the children (one made before the split) does not bring a deleted parent back.
    fn superseded(&self) -> BTreeSet<&str> {
        let listed: BTreeMap<&str, &ShardNode> = self
            .shards
            .iter()
            .map(|n| (n.shard_id.as_str(), n))
            .collect();
        let parents = |id: &str| -> Vec<&str> {
            let from_listing = listed
                .get(id)
                .into_iter()
                .flat_map(|n| [&n.parent, &n.adjacent_parent])
                .flatten()
                .map(String::as_str);
            let from_lease = self
                .table
                .get(id)
                .into_iter()
                .flat_map(|s| s.lease.parent_shard_ids.iter())
                .map(String::as_str);
            from_listing.chain(from_lease).collect()
        };
        let mut done = BTreeSet::new();
        let mut todo: Vec<&str> = self.table.keys().map(String::as_str).collect();
        while let Some(id) = todo.pop() {
            for parent in parents(id) {
                if done.insert(parent) {
                    todo.push(parent);
                }
            }
        }
        done
    }

    /// A lease to create for a shard of the stream that has none.
    fn missing_lease(&self) -> Option<Lease> {
        let known = |id: &str| self.table.contains_key(id) || self.creating.contains(id);
        let initial = self.initial.as_ref()?;
        let latest = matches!(self.config.start, StartPosition::Latest);
        // Worked out only once a shard without a lease turns up (rarely, after a reshard).
        let done = std::cell::OnceCell::new();
        let done = || done.get_or_init(|| self.superseded());
        // A listed parent gets its lease first (a child whose parent's lease is missing would
        // look free to take, its parent gone), unless it is never to get one: a shard closed
        // before a LATEST start, or done (`superseded`).
        let waits_for = |id: &str| {
            if self.table.contains_key(id) || done().contains(id) {
                return false;
            }
            self.shards
                .iter()
                .any(|p| p.shard_id == id && !(latest && !p.open && initial.contains(id)))
        };
        for node in &self.shards {
            if known(&node.shard_id) || done().contains(node.shard_id.as_str()) {
                continue;
            }
            if [&node.parent, &node.adjacent_parent]
                .into_iter()
                .flatten()
                .any(|p| waits_for(p))
            {
                continue;
            }
            let checkpoint = if initial.contains(&node.shard_id) {
                match self.config.start {
                    StartPosition::Latest if !node.open => continue,
                    StartPosition::Latest => LeaseCheckpoint::Latest,
                    StartPosition::AtTimestamp(_) => LeaseCheckpoint::AtTimestamp,
                    _ => LeaseCheckpoint::TrimHorizon,
                }
            } else {
                // Born after the table was first filled: read whole.
                LeaseCheckpoint::TrimHorizon
            };
            let mut lease = Lease::new(node.shard_id.clone(), checkpoint);
            lease.parent_shard_ids = [&node.parent, &node.adjacent_parent]
                .into_iter()
                .flatten()
                .cloned()
                .collect();
            lease.starting_hash_key = Some(node.range.start.to_string());
            lease.ending_hash_key = Some(node.range.end.to_string());
            return Some(lease);
        }
        None
    }
}
