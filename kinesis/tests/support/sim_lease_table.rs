//! A lease table that applies each operation's condition as DynamoDB does (counter, owner
//! and `checkpointOwner`), for the lease coordinator's scenario tests (`tests/lease_coordinator.rs`) and
//! its fuzz target (which includes this file by path).
#![allow(dead_code)]

use std::collections::BTreeMap;

use kpl_kinesis::source::lease::{Lease, LeaseAnswer, LeaseCheckpoint, LeaseOp};

/// The lease table, applying conditions as DynamoDB does.
#[derive(Debug, Default, Clone)]
pub struct Table {
    pub items: BTreeMap<String, Lease>,
    /// Every write that succeeded: (worker, op).
    pub writes: Vec<(String, LeaseOp)>,
    /// When set, every operation fails (DynamoDB unreachable).
    pub down: bool,
}

impl Table {
    pub fn with_leases(keys: &[&str]) -> Self {
        let mut t = Table::default();
        for k in keys {
            t.items.insert(
                (*k).to_owned(),
                Lease::new(*k, LeaseCheckpoint::TrimHorizon),
            );
        }
        t
    }

    pub fn apply(&mut self, worker: &str, op: &LeaseOp) -> LeaseAnswer {
        if self.down {
            return LeaseAnswer::Failed {
                code: "ServiceUnavailable".into(),
                message: "down".into(),
            };
        }
        let me = Some(worker.to_owned());
        let answer = match op {
            LeaseOp::Scan => return LeaseAnswer::Scanned(self.items.values().cloned().collect()),
            LeaseOp::Create(lease) => {
                if self.items.contains_key(&lease.lease_key) {
                    LeaseAnswer::ConditionFailed
                } else {
                    self.items.insert(lease.lease_key.clone(), lease.clone());
                    LeaseAnswer::Written
                }
            }
            LeaseOp::Renew { lease_key, counter } => match self.items.get_mut(lease_key) {
                Some(l)
                    if l.lease_counter == *counter
                        && l.lease_owner == me
                        && l.checkpoint_owner.is_none() =>
                {
                    l.lease_counter += 1;
                    LeaseAnswer::Written
                }
                _ => LeaseAnswer::ConditionFailed,
            },
            LeaseOp::Take {
                lease_key,
                counter,
                owner,
                checkpoint_owner,
            } => match self.items.get_mut(lease_key) {
                Some(l)
                    if l.lease_counter == *counter
                        && l.lease_owner == *owner
                        && l.checkpoint_owner == *checkpoint_owner =>
                {
                    if l.lease_owner != me {
                        l.owner_switches_since_checkpoint += 1;
                    }
                    l.lease_owner = me;
                    l.checkpoint_owner = None;
                    l.lease_counter += 1;
                    LeaseAnswer::Written
                }
                _ => LeaseAnswer::ConditionFailed,
            },
            LeaseOp::Read { lease_key } => {
                return LeaseAnswer::Scanned(
                    self.items.get(lease_key).cloned().into_iter().collect(),
                )
            }
            LeaseOp::StartHandoff {
                lease_key,
                counter,
                owner,
            } => match self.items.get_mut(lease_key) {
                Some(l)
                    if l.lease_counter == *counter
                        && l.lease_owner.as_ref() == Some(owner)
                        && l.checkpoint_owner.is_none() =>
                {
                    l.checkpoint_owner = Some(owner.clone());
                    l.lease_owner = me;
                    LeaseAnswer::Written
                }
                _ => LeaseAnswer::ConditionFailed,
            },
            LeaseOp::FinishHandoff {
                lease_key,
                counter,
                checkpoint,
                next_owner,
            } => match self.items.get_mut(lease_key) {
                Some(l)
                    if l.lease_counter == *counter
                        && l.checkpoint_owner == me
                        && l.lease_owner.as_ref() == Some(next_owner) =>
                {
                    if let Some(cp) = checkpoint {
                        l.checkpoint = cp.clone();
                        l.owner_switches_since_checkpoint = 0;
                    }
                    l.checkpoint_owner = None;
                    l.lease_counter += 1;
                    LeaseAnswer::Written
                }
                _ => LeaseAnswer::ConditionFailed,
            },
            LeaseOp::Checkpoint {
                lease_key,
                counter,
                checkpoint,
            } => match self.items.get_mut(lease_key) {
                Some(l) if l.lease_counter == *counter && l.lease_owner == me => {
                    l.checkpoint = checkpoint.clone();
                    l.owner_switches_since_checkpoint = 0;
                    l.lease_counter += 1;
                    LeaseAnswer::Written
                }
                _ => LeaseAnswer::ConditionFailed,
            },
            LeaseOp::Release { lease_key, counter } => match self.items.get_mut(lease_key) {
                Some(l) if l.lease_counter == *counter && l.lease_owner == me => {
                    l.lease_owner = None;
                    l.lease_counter += 1;
                    LeaseAnswer::Written
                }
                _ => LeaseAnswer::ConditionFailed,
            },
        };
        if answer == LeaseAnswer::Written {
            self.writes.push((worker.to_owned(), op.clone()));
        }
        answer
    }

    pub fn owners(&self) -> BTreeMap<String, Vec<String>> {
        let mut owners: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for l in self.items.values() {
            if let Some(o) = &l.lease_owner {
                owners
                    .entry(o.clone())
                    .or_default()
                    .push(l.lease_key.clone());
            }
        }
        owners
    }
}
