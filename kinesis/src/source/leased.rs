//! A [`Source`](super::Source) sharing its stream with other workers through KCL's lease
//! table: the [`LeaseCoordinator`] run beside the source's core, its table operations made
//! on DynamoDB in tasks of their own.

use std::collections::{HashMap, VecDeque};
use std::time::Duration;

use aws_sdk_dynamodb::Client;
use tokio::task::JoinSet;
use tokio::time::Instant;

use super::checkpoint::ShardPosition;
use super::core::SourceCore;
use super::lease::dynamodb::{ensure_table, execute, shut_down};
use super::lease::{
    LeaseAnswer, LeaseCallId, LeaseCheckpoint, LeaseConfig, LeaseCoordinator, LeaseEvent,
};

/// Where the leases are and who this worker is.
#[derive(Debug, Clone)]
pub struct LeaseSettings {
    /// The lease table (made with KCL's layout if missing). An application moving between
    /// KCL and kpl uses KCL's table: by default KCL names it after the application.
    pub table: String,
    /// This worker's name in `leaseOwner`, unique among the workers.
    pub worker_id: String,
    /// How long a lease may go unrenewed before others take it (default 10 s).
    pub failover_time: Duration,
    /// Most leases this worker holds (default: no limit).
    pub max_leases: usize,
    /// A DynamoDB endpoint URL (a local server); default AWS.
    pub endpoint: Option<String>,
}

impl LeaseSettings {
    /// A worker id unique among the workers of one host: the host name (`fallback` when it
    /// cannot be read) and the process id.
    pub fn default_worker_id(fallback: &str) -> String {
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .ok()
            .map(|h| h.trim().to_owned())
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| fallback.to_owned());
        format!("{host}-{}", std::process::id())
    }

    /// Table `table`, worker `worker_id`, the defaults otherwise.
    pub fn new(table: impl Into<String>, worker_id: impl Into<String>) -> Self {
        LeaseSettings {
            table: table.into(),
            worker_id: worker_id.into(),
            failover_time: Duration::from_secs(10),
            max_leases: usize::MAX,
            endpoint: None,
        }
    }
}

/// The coordinator, its client and its calls in flight.
pub(crate) struct LeaseRunner {
    coordinator: LeaseCoordinator,
    client: Client,
    table: String,
    tasks: JoinSet<LeaseAnswer>,
    calls: HashMap<tokio::task::Id, LeaseCallId>,
    listings: u64,
    /// Leases handed over or lost so far.
    moves: u64,
    /// Lease events for the consumer's log ([`NOTICES`] at most; the oldest go first).
    notices: VecDeque<LeaseEvent>,
}

/// Lease events kept for a consumer that does not read them.
const NOTICES: usize = 1024;

impl std::fmt::Debug for LeaseRunner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LeaseRunner")
            .field("table", &self.table)
            .field("coordinator", &self.coordinator)
            .finish_non_exhaustive()
    }
}

impl LeaseRunner {
    /// Makes the table if needed; nothing is taken before the source runs.
    pub(crate) async fn start(
        settings: LeaseSettings,
        sdk: &aws_config::SdkConfig,
        region: Option<String>,
        start: super::core::StartPosition,
    ) -> Result<Self, String> {
        let mut conf = aws_sdk_dynamodb::config::Builder::from(sdk);
        if let Some(region) = region.filter(|r| !r.is_empty()) {
            conf = conf.region(aws_sdk_dynamodb::config::Region::new(region));
        } else if sdk.region().is_none() {
            conf = conf.region(aws_sdk_dynamodb::config::Region::from_static("us-east-1"));
        }
        if let Some(endpoint) = settings.endpoint.clone() {
            conf = conf.endpoint_url(endpoint);
        }
        let client = Client::from_conf(conf.build());
        ensure_table(&client, &settings.table, Duration::from_secs(60)).await?;
        let coordinator = LeaseCoordinator::new(LeaseConfig {
            worker_id: settings.worker_id,
            failover_time: settings.failover_time,
            start,
            max_leases: settings.max_leases,
        });
        Ok(LeaseRunner {
            coordinator,
            client,
            table: settings.table,
            tasks: JoinSet::new(),
            calls: HashMap::new(),
            listings: 0,
            moves: 0,
            notices: VecDeque::new(),
        })
    }

    /// Whether this worker holds shard `shard_id`'s lease, or hands it over (and takes the
    /// checkpoints of the records it delivered).
    pub(crate) fn holds(&self, shard_id: &str) -> bool {
        self.coordinator
            .held()
            .chain(self.coordinator.handing_off())
            .any(|s| s == shard_id)
    }

    /// Whether this worker reads shard `shard_id` (holds its lease, not handing it over).
    pub(crate) fn reads(&self, shard_id: &str) -> bool {
        self.coordinator.held().any(|s| s == shard_id)
    }

    /// The next lease event not handed to the consumer yet.
    pub(crate) fn poll_notice(&mut self) -> Option<LeaseEvent> {
        self.notices.pop_front()
    }

    /// How many times a shard stopped being this worker's to read.
    pub(crate) fn moves(&self) -> u64 {
        self.moves
    }

    /// Passes lease events to the core, new listings to the coordinator, and the core's
    /// checkpoints to the leases.
    pub(crate) fn exchange(&mut self, core: &mut SourceCore) {
        while let Some(event) = self.coordinator.poll_event() {
            match &event {
                LeaseEvent::Acquired {
                    shard_id,
                    checkpoint,
                } => {
                    tracing::info!(shard = %shard_id, ?checkpoint, "lease taken");
                    core.assign(shard_id, checkpoint);
                }
                LeaseEvent::HandingOff { shard_id, to } => {
                    tracing::info!(shard = %shard_id, to = %to, "lease asked for by another worker: handing it over");
                    core.hand_over(shard_id);
                    self.moves += 1;
                }
                LeaseEvent::Lost { shard_id } => {
                    tracing::info!(shard = %shard_id, "lease lost");
                    self.moves += 1;
                    core.revoke(shard_id);
                }
                LeaseEvent::Finished { shard_id } => {
                    tracing::debug!(shard = %shard_id, "lease finished (SHARD_END)");
                    core.revoke(shard_id);
                }
            }
            // Kept for the consumer's log, a bounded number.
            if self.notices.len() == NOTICES {
                self.notices.pop_front();
            }
            self.notices.push_back(event);
        }
        if core.listings() != self.listings {
            self.listings = core.listings();
            self.coordinator.on_shards(&core.shards());
        }
        while let Some((shard, position)) = core.poll_save() {
            let checkpoint = match position {
                ShardPosition::At(cp) => LeaseCheckpoint::At(cp),
                ShardPosition::Finished => LeaseCheckpoint::ShardEnd,
            };
            // A lease lost meanwhile: its new holder checkpoints it.
            let _ = self.coordinator.checkpoint(&shard, checkpoint);
        }
    }

    /// Hands out the operations due now.
    pub(crate) fn start_calls(&mut self, now: Instant) {
        let worker = self.coordinator.config().worker_id.clone();
        while let Some(call) = self.coordinator.poll_call(now.into_std()) {
            let client = self.client.clone();
            let table = self.table.clone();
            let worker = worker.clone();
            let handle = self
                .tasks
                .spawn(async move { execute(&client, &table, &worker, call.op).await });
            self.calls.insert(handle.id(), call.id);
        }
    }

    /// When the coordinator wants to act next.
    pub(crate) fn timeout(&self) -> Option<Instant> {
        self.coordinator.poll_timeout().map(Instant::from_std)
    }

    /// Whether operations are in flight.
    pub(crate) fn busy(&self) -> bool {
        !self.tasks.is_empty()
    }

    /// Waits for the next answer and hands it to the coordinator (pending for ever when
    /// nothing is in flight: use beside other branches).
    pub(crate) async fn answer(&mut self) {
        let Some(done) = self.tasks.join_next_with_id().await else {
            return std::future::pending().await;
        };
        let (task, answer) = match done {
            Ok(done) => done,
            Err(e) => (
                e.id(),
                LeaseAnswer::Failed {
                    code: "TaskFailed".into(),
                    message: format!("the lease call's task failed: {e}"),
                },
            ),
        };
        if let Some(id) = self.calls.remove(&task) {
            self.coordinator
                .on_answer(id, answer, Instant::now().into_std());
        }
    }

    /// Writes the pending checkpoints, releases every lease (others may take them at
    /// once), within `limit`.
    pub(crate) async fn shutdown(&mut self, limit: Duration) {
        // Answers of calls in flight first, so the coordinator knows its counters.
        let deadline = Instant::now() + limit;
        while self.busy() && Instant::now() < deadline {
            let _ = tokio::time::timeout_at(deadline, self.answer()).await;
        }
        let remaining = deadline.saturating_duration_since(Instant::now());
        shut_down(&mut self.coordinator, &self.client, &self.table, remaining).await;
    }
}
