//! KCL-compatible lease coordination ([`kpl_kinesis::source::lease::LeaseCoordinator`])
//! driven by hostile input: two to four workers against a simulated lease table that
//! applies conditions as DynamoDB does (`kinesis/tests/support/sim_lease_table.rs`, included
//! by path); operations answered in any order, correctly or with a failure (DynamoDB
//! throttling or unreachable); time moved by any step or to a deadline; checkpoints (at a
//! sequence number or `SHARD_END`); workers killed, restarted under their name, shut down;
//! the table edited behind their backs (an intruder takes a lease, or asks for it with a
//! KCL 3 graceful handoff, or deletes a finished lease as KCL's cleanup does once its children
//! moved on); shards listed with lineage. Then a drain: every surviving worker answered correctly for several failover
//! times.
//!
//! Checked (a panic is a bug):
//! - a checkpoint reaches the table only through a conditional write by the lease's owner,
//!   and the coordinator's acquired/lost events for each worker alternate per shard;
//! - a checkpoint is accepted exactly for a lease held or being handed over, and a graceful
//!   handoff (the coordinator's own, or a KCL 3 leader's, played by the intruder) is
//!   finished only by the lease's `checkpointOwner`;
//! - `HandingOff` comes only for a held lease, and `Lost` after it;
//! - a lease KCL's cleanup deleted is not made again while a listed descendant has one (it
//!   would be read again from `TRIM_HORIZON`);
//! - a deadline from `poll_timeout` is in the future of a worker with nothing to do;
//! - in the drain, once two failover times passed, no shard is read by two alive workers
//!   at once (leases then move only by graceful handoffs);
//! - after the drain, every lease not finished whose parents are finished is held by
//!   exactly one alive worker (the table's owner), and the shares differ by at most one.

#[path = "../../kinesis/tests/support/sim_lease_table.rs"]
mod sim_lease_table;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use arbitrary::Arbitrary;
use kpl_codec::HashRange;
use kpl_kinesis::source::lease::{
    Lease, LeaseAnswer, LeaseCall, LeaseCheckpoint, LeaseConfig, LeaseCoordinator, LeaseEvent,
    LeaseOp,
};
use kpl_kinesis::source::{Checkpoint, ShardNode};
use sim_lease_table::Table;

const FAILOVER: Duration = Duration::from_millis(3_000);

/// The whole input.
#[derive(Debug, Arbitrary)]
pub struct LeaseCoordinatorInput {
    workers: u8,
    /// Leases in the table at the start: (parent index or none, finished).
    leases: Vec<(Option<u8>, bool)>,
    ops: Vec<Op>,
}

#[derive(Debug, Arbitrary)]
enum Op {
    Poll(u8),
    Answer(u8, u8, Fault),
    Advance(u16),
    ToDeadline(u8),
    Checkpoint(u8, u8, bool),
    Kill(u8),
    Restart(u8),
    Shutdown(u8),
    Intruder(u8),
    /// A KCL 3 leader moves a lease to another worker with a graceful handoff.
    Kcl3Handoff(u8),
    /// KCL's cleanup deletes a finished lease whose children have moved on.
    KclCleanup(u8),
    Shards(u8),
}

#[derive(Debug, Arbitrary)]
enum Fault {
    None,
    Failed,
}

struct Worker {
    coordinator: LeaseCoordinator,
    alive: bool,
    waiting: Vec<LeaseCall>,
    holding: BTreeSet<String>,
    /// Leases it hands over (from its events).
    leaving: BTreeSet<String>,
}

fn key(i: usize) -> String {
    format!("shardId-{i:012}")
}

fn worker(n: usize) -> Worker {
    let mut config = LeaseConfig::new(format!("worker-{n}"));
    config.failover_time = FAILOVER;
    Worker {
        coordinator: LeaseCoordinator::new(config),
        alive: true,
        waiting: Vec::new(),
        holding: BTreeSet::new(),
        leaving: BTreeSet::new(),
    }
}

struct Harness {
    table: Table,
    workers: Vec<Worker>,
    now: Instant,
    /// The shards last listed.
    shards: Vec<ShardNode>,
    /// Leases deleted by KCL's cleanup.
    cleaned: BTreeSet<String>,
}

impl Harness {
    fn events(&mut self, w: usize) {
        let worker = &mut self.workers[w];
        while let Some(e) = worker.coordinator.poll_event() {
            match e {
                LeaseEvent::Acquired { shard_id, .. } => {
                    assert!(worker.holding.insert(shard_id), "acquired twice");
                }
                LeaseEvent::HandingOff { shard_id, .. } => {
                    assert!(
                        worker.holding.remove(&shard_id),
                        "handing off what it did not hold"
                    );
                    worker.leaving.insert(shard_id);
                }
                LeaseEvent::Lost { shard_id } => {
                    assert!(
                        worker.holding.remove(&shard_id) || worker.leaving.remove(&shard_id),
                        "lost what it did not hold"
                    );
                }
                LeaseEvent::Finished { shard_id } => {
                    assert!(
                        worker.holding.remove(&shard_id),
                        "finished what it did not hold"
                    );
                }
            }
        }
        let held: BTreeSet<String> = worker.coordinator.held().map(str::to_owned).collect();
        assert_eq!(held, worker.holding, "events and held leases disagree");
        let leaving: BTreeSet<String> = worker
            .coordinator
            .handing_off()
            .map(str::to_owned)
            .collect();
        assert_eq!(
            leaving, worker.leaving,
            "events and leases handed over disagree"
        );
    }

    fn poll(&mut self, w: usize) {
        if !self.workers[w].alive {
            return;
        }
        while let Some(call) = self.workers[w].coordinator.poll_call(self.now) {
            self.workers[w].waiting.push(call);
        }
        self.events(w);
    }

    fn answer(&mut self, w: usize, pick: usize, fault: &Fault) {
        let worker = &mut self.workers[w];
        if !worker.alive || worker.waiting.is_empty() {
            return;
        }
        let call = worker.waiting.remove(pick % worker.waiting.len());
        let id = worker.coordinator.config().worker_id.clone();
        let answer = match fault {
            Fault::None => {
                let before = self.table.items.clone();
                let answer = self.table.apply(&id, &call.op);
                match (&call.op, &answer) {
                    (LeaseOp::Checkpoint { lease_key, .. }, LeaseAnswer::Written) => {
                        let owner = before.get(lease_key).and_then(|l| l.lease_owner.clone());
                        assert_eq!(
                            owner.as_deref(),
                            Some(id.as_str()),
                            "a checkpoint by a non-owner"
                        );
                    }
                    (LeaseOp::Create(lease), LeaseAnswer::Written)
                        if self.cleaned.contains(&lease.lease_key) =>
                    {
                        let descendants = descendants(&self.shards, &lease.lease_key);
                        assert!(
                            !descendants.iter().any(|d| before.contains_key(d)),
                            "a lease made again for {}, finished and cleaned up",
                            lease.lease_key
                        );
                    }
                    (LeaseOp::FinishHandoff { lease_key, .. }, LeaseAnswer::Written) => {
                        let from = before
                            .get(lease_key)
                            .and_then(|l| l.checkpoint_owner.clone());
                        assert_eq!(
                            from.as_deref(),
                            Some(id.as_str()),
                            "a handoff finished by another"
                        );
                    }
                    _ => {}
                }
                answer
            }
            Fault::Failed => LeaseAnswer::Failed {
                code: "ProvisionedThroughputExceededException".into(),
                message: "injected".into(),
            },
        };
        worker.coordinator.on_answer(call.id, answer, self.now);
        self.events(w);
    }
}

/// Whether `n` names `parent` as one of its parents.
fn child_of(n: &ShardNode, parent: &str) -> bool {
    n.parent.as_deref() == Some(parent) || n.adjacent_parent.as_deref() == Some(parent)
}

/// The shards listed below `id`, children first.
fn descendants(shards: &[ShardNode], id: &str) -> Vec<String> {
    let mut found: Vec<String> = Vec::new();
    let mut todo = vec![id.to_owned()];
    while let Some(p) = todo.pop() {
        for n in shards {
            if child_of(n, &p) && !found.contains(&n.shard_id) {
                found.push(n.shard_id.clone());
                todo.push(n.shard_id.clone());
            }
        }
    }
    found
}

impl Harness {
    /// KCL's cleanup: a lease at `SHARD_END` is deleted once every child (listed, or naming
    /// it in the table) has a lease past its start. Not while a worker's create of it is
    /// still unanswered: KCL cleans up minutes after a shard's end, long after any request
    /// of that time has timed out.
    fn kcl_cleanup(&mut self, k: &str) {
        if !self.table.items.get(k).is_some_and(Lease::is_finished) {
            return;
        }
        let listed: Vec<&str> = self
            .shards
            .iter()
            .filter(|n| child_of(n, k))
            .map(|n| n.shard_id.as_str())
            .collect();
        let moved_on = |c: &str| {
            self.table.items.get(c).is_some_and(|l| {
                matches!(
                    l.checkpoint,
                    LeaseCheckpoint::At(_) | LeaseCheckpoint::ShardEnd
                )
            })
        };
        let named = self
            .table
            .items
            .values()
            .filter(|l| l.parent_shard_ids.iter().any(|p| p == k));
        let creating = self.workers.iter().any(|w| {
            w.waiting
                .iter()
                .any(|c| matches!(&c.op, LeaseOp::Create(l) if l.lease_key == k))
        });
        if listed.is_empty()
            || creating
            || !listed.iter().all(|c| moved_on(c))
            || !named.clone().all(|l| moved_on(&l.lease_key))
        {
            return;
        }
        self.table.items.remove(k);
        self.cleaned.insert(k.to_owned());
    }
}

/// The property; see the module docs.
pub fn lease_coordinator(input: LeaseCoordinatorInput) {
    let n = usize::from(input.workers % 3) + 2;
    let mut table = Table::default();
    let leases: Vec<(Option<u8>, bool)> = input.leases.iter().take(12).copied().collect();
    for (i, (parent, finished)) in leases.iter().enumerate() {
        let cp = if *finished {
            LeaseCheckpoint::ShardEnd
        } else {
            LeaseCheckpoint::TrimHorizon
        };
        let mut lease = Lease::new(key(i), cp);
        if let Some(p) = parent.map(usize::from).filter(|p| *p < i) {
            lease.parent_shard_ids = vec![key(p)];
        }
        table.items.insert(key(i), lease);
    }
    let mut h = Harness {
        table,
        workers: (0..n).map(worker).collect(),
        now: Instant::now(),
        shards: Vec::new(),
        cleaned: BTreeSet::new(),
    };
    for op in input.ops.iter().take(300) {
        match op {
            Op::Poll(w) => h.poll(usize::from(*w) % n),
            Op::Answer(w, pick, fault) => h.answer(usize::from(*w) % n, usize::from(*pick), fault),
            Op::Advance(ms) => h.now += Duration::from_millis(u64::from(*ms)),
            Op::ToDeadline(w) => {
                if let Some(t) = h.workers[usize::from(*w) % n].coordinator.poll_timeout() {
                    if t > h.now {
                        h.now = t;
                    }
                }
            }
            Op::Checkpoint(w, shard, end) => {
                let w = usize::from(*w) % n;
                let cp = if *end {
                    LeaseCheckpoint::ShardEnd
                } else {
                    LeaseCheckpoint::At(Checkpoint::new(format!("{}", u64::from(*shard) + 1), 0))
                };
                let k = key(usize::from(*shard));
                let coordinator = &h.workers[w].coordinator;
                let held = coordinator
                    .held()
                    .chain(coordinator.handing_off())
                    .any(|s| s == k);
                let result = h.workers[w].coordinator.checkpoint(&k, cp);
                assert_eq!(
                    result.is_ok(),
                    held,
                    "a checkpoint accepted exactly for a lease held or handed over"
                );
            }
            Op::Kill(w) => {
                let w = usize::from(*w) % n;
                h.workers[w].alive = false;
            }
            Op::Restart(w) => {
                let w = usize::from(*w) % n;
                if !h.workers[w].alive {
                    h.workers[w] = worker(w);
                }
            }
            Op::Shutdown(w) => h.workers[usize::from(*w) % n].coordinator.shutdown(),
            Op::Intruder(shard) => {
                if let Some(l) = h.table.items.get_mut(&key(usize::from(*shard))) {
                    l.lease_owner = Some("intruder".into());
                    l.lease_counter += 1;
                }
            }
            Op::Kcl3Handoff(shard) => {
                if let Some(l) = h.table.items.get_mut(&key(usize::from(*shard))) {
                    if l.checkpoint_owner.is_none() && l.lease_owner.is_some() {
                        l.checkpoint_owner = l.lease_owner.take();
                        l.lease_owner = Some("intruder".into());
                    }
                }
            }
            Op::KclCleanup(shard) => h.kcl_cleanup(&key(usize::from(*shard))),
            Op::Shards(count) => {
                let shards: Vec<ShardNode> = (0..usize::from(*count % 16))
                    .map(|i| ShardNode {
                        shard_id: key(i),
                        parent: (i >= 2).then(|| key(i / 2 - 1)),
                        adjacent_parent: None,
                        range: HashRange::FULL,
                        open: true,
                    })
                    .collect();
                for w in &mut h.workers {
                    w.coordinator.on_shards(&shards);
                }
                h.shards = shards;
            }
        }
    }
    // The drain: the intruder's leases freed, dead or shut-down workers out, the others
    // answered correctly for ten failover times.
    for l in h.table.items.values_mut() {
        if l.lease_owner.as_deref() == Some("intruder") {
            l.lease_owner = None;
            l.checkpoint_owner = None;
            l.lease_counter += 1;
        }
    }
    let alive: Vec<usize> = (0..n)
        .filter(|w| h.workers[*w].alive && !h.workers[*w].coordinator.is_shut_down())
        .collect();
    for w in 0..n {
        let calls = std::mem::take(&mut h.workers[w].waiting);
        for call in calls {
            if h.workers[w].alive {
                h.workers[w].waiting.push(call);
            }
        }
    }
    let drain_start = h.now;
    let until = h.now + FAILOVER * 10;
    let mut rounds = 0;
    while h.now < until {
        rounds += 1;
        assert!(rounds < 100_000, "the drain does not move on");
        for &w in &alive {
            h.poll(w);
            while !h.workers[w].waiting.is_empty() {
                h.answer(w, 0, &Fault::None);
                h.poll(w);
            }
            if let Some(t) = h.workers[w].coordinator.poll_timeout() {
                assert!(
                    t > h.now,
                    "a deadline not in the future of a worker with nothing to do"
                );
            }
        }
        // Once what the input left behind has settled (a worker learns of a lease taken
        // behind its back within a renewal, a dead worker's leases move after the failover
        // time), leases move only by graceful handoffs: no shard is read by two at once.
        if h.now >= drain_start + FAILOVER * 2 {
            let mut readers: BTreeMap<&String, usize> = BTreeMap::new();
            for &w in &alive {
                for s in &h.workers[w].holding {
                    *readers.entry(s).or_default() += 1;
                }
            }
            if let Some((s, n)) = readers.iter().find(|(_, n)| **n > 1) {
                panic!("{s} read by {n} workers at once in the drain");
            }
        }
        let next = alive
            .iter()
            .filter_map(|w| h.workers[*w].coordinator.poll_timeout())
            .min()
            .unwrap_or(until);
        h.now = next.max(h.now + Duration::from_millis(1)).min(until);
    }
    // Only workers still taking part (not shutting down) count.
    let active: Vec<usize> = alive
        .iter()
        .copied()
        .filter(|w| !h.workers[*w].coordinator.is_shut_down())
        .filter(|w| h.workers[*w].coordinator.in_flight() == 0)
        .collect();
    let shutting_down = alive.len() != active.len()
        || alive
            .iter()
            .any(|w| h.workers[*w].coordinator.is_shut_down());
    if active.is_empty() || shutting_down {
        return;
    }
    let takeable: Vec<String> = h
        .table
        .items
        .values()
        .filter(|l| !l.is_finished())
        .filter(|l| {
            l.parent_shard_ids
                .iter()
                .all(|p| h.table.items.get(p).is_none_or(Lease::is_finished))
        })
        .map(|l| l.lease_key.clone())
        .collect();
    let mut per: BTreeMap<usize, usize> = active.iter().map(|w| (*w, 0)).collect();
    for k in &takeable {
        let holders: Vec<usize> = active
            .iter()
            .copied()
            .filter(|w| h.workers[*w].holding.contains(k))
            .collect();
        assert_eq!(
            holders.len(),
            1,
            "lease {k} held by {holders:?} after the drain"
        );
        let owner = h.table.items.get(k).and_then(|l| l.lease_owner.clone());
        assert_eq!(
            owner,
            Some(format!("worker-{}", holders[0])),
            "holder is not the owner"
        );
        *per.entry(holders[0]).or_default() += 1;
    }
    let max = per.values().max().copied().unwrap_or(0);
    let min = per.values().min().copied().unwrap_or(0);
    assert!(max - min <= 1, "uneven shares after the drain: {per:?}");
}
