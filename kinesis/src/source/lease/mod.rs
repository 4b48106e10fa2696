//! Many consumers of one stream: KCL-compatible leases. Each shard has a lease item in a
//! DynamoDB table (KCL's layout: [`item::attr`]); workers renew the leases they hold, take
//! expired ones and balance toward an even share, so that every shard is read by one
//! worker at a time and a dead worker's shards move on after the failover time. The
//! checkpoint of each shard lives in its lease, so an application can move between KCL and
//! kpl with its checkpoints.
//!
//! [`LeaseCoordinator`] is the sans-IO state machine of one worker; the tokio + DynamoDB
//! shell runs it beside the source's.

mod coordinator;
#[cfg(feature = "dynamodb")]
pub mod dynamodb;
pub mod item;

pub use self::coordinator::{
    LeaseAnswer, LeaseCall, LeaseCallId, LeaseConfig, LeaseCoordinator, LeaseEvent, LeaseLost,
    LeaseOp,
};
pub use self::item::{Lease, LeaseCheckpoint};
