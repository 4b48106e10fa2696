//! One input instance: a plugin-owned thread reads the stream with the `kpl-kinesis`
//! source into a bounded queue; the host's collect callback (once a second, on the
//! instance's own thread) drains it into one batch of events. A batch's records are
//! checkpointed at its cleanup callback, once the host has copied the batch.

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use kpl_fluent_bit::log::Logger;
use kpl_fluent_bit::pack::Packer;
use kpl_kinesis::source::{
    CheckpointStore, FileCheckpoints, MemoryCheckpoints, Source, SourceConfig, SourceRecord,
};
use tokio::sync::{mpsc, Notify};

use crate::events::pack_event;
use crate::settings::{log_line, Settings};

/// Most bytes of events one callback hands over.
const MAX_BATCH_BYTES: usize = 16 << 20;
/// Wait before reading again after the source stopped on an error.
const RESTART_DELAY: Duration = Duration::from_secs(5);

#[derive(Default)]
struct Queue {
    records: VecDeque<SourceRecord>,
    bytes: usize,
}

struct Shared {
    queue: Mutex<Queue>,
    room: Notify,
    stop: AtomicBool,
    stopping: Notify,
    read: AtomicU64,
    handed: AtomicU64,
    defects: AtomicU64,
}

/// A running input instance.
pub struct Input {
    shared: Arc<Shared>,
    commits: mpsc::UnboundedSender<Vec<SourceRecord>>,
    thread: Option<JoinHandle<()>>,
    /// The last record of each shard in the batch the host took last.
    handed: Vec<SourceRecord>,
    /// The batch returned to the host, kept until it has copied it.
    batch: Vec<u8>,
    paused: bool,
    settings: Settings,
    log: Logger,
}

/// Checkpoints the records of a batch the host took (the last record of each shard).
fn commit(source: &mut kpl_kinesis::source::Source, batch: &[SourceRecord], log: &Logger) {
    for r in batch {
        match source.checkpoint(r) {
            Ok(()) => {}
            // Another worker holds the shard now and reads it from its lease's checkpoint:
            // this record may come again there.
            Err(e @ kpl_kinesis::source::SourceError::LeaseLost { .. }) => {
                log.debug(&format!("{e}"));
            }
            Err(e) => log.error(&format!("checkpoint of {} failed: {e}", r.shard_id)),
        }
    }
}

fn size(r: &SourceRecord) -> usize {
    r.data.len() + r.partition_key.len() + r.sequence_number.len() + 64
}

impl Input {
    /// Starts the reader thread.
    pub fn start(settings: Settings, log: Logger, name: String) -> Result<Input, String> {
        let shared = Arc::new(Shared {
            queue: Mutex::new(Queue::default()),
            room: Notify::new(),
            stop: AtomicBool::new(false),
            stopping: Notify::new(),
            read: AtomicU64::new(0),
            handed: AtomicU64::new(0),
            defects: AtomicU64::new(0),
        });
        let (commits, commits_rx) = mpsc::unbounded_channel();
        let thread_shared = shared.clone();
        let thread_settings = settings.clone();
        let thread_log = log.clone();
        let thread = std::thread::Builder::new()
            .name(name)
            .spawn(move || read(thread_settings, thread_log, thread_shared, commits_rx))
            .map_err(|e| format!("cannot start the reader thread: {e}"))?;
        log.info(&format!(
            "stream={} start={:?} checkpoint_file={}",
            settings.stream,
            settings.start,
            settings
                .checkpoint_file
                .as_deref()
                .unwrap_or("(none: in memory)")
        ));
        Ok(Input {
            shared,
            commits,
            thread: Some(thread),
            handed: Vec::new(),
            batch: Vec::new(),
            paused: false,
            settings,
            log,
        })
    }

    /// The collect callback: commits the previous batch if its cleanup did not (the host
    /// has it), then hands over what was read since, as one buffer of events (empty while
    /// paused).
    pub fn collect(&mut self) -> &[u8] {
        if !self.handed.is_empty() {
            let _ = self.commits.send(std::mem::take(&mut self.handed));
        }
        self.batch.clear();
        if self.paused {
            return &self.batch;
        }
        let mut packer = Packer {
            buf: std::mem::take(&mut self.batch),
        };
        let mut last: BTreeMap<Arc<str>, SourceRecord> = BTreeMap::new();
        let mut n = 0u64;
        if let Ok(mut q) = self.shared.queue.lock() {
            while packer.buf.len() < MAX_BATCH_BYTES {
                let Some(r) = q.records.pop_front() else {
                    break;
                };
                q.bytes = q.bytes.saturating_sub(size(&r));
                pack_event(
                    &mut packer,
                    &r,
                    self.settings.format,
                    &self.settings.metadata_key,
                );
                n += 1;
                last.insert(r.shard_id.clone(), r);
            }
        }
        self.shared.room.notify_one();
        self.shared.handed.fetch_add(n, Ordering::Relaxed);
        self.handed = last.into_values().collect();
        self.batch = packer.buf;
        &self.batch
    }

    /// The host copied the batch (within a millisecond of the collect): its records are
    /// committed now, and its memory may go. Committing here rather than at the next
    /// collect keeps what a lease handed over to another worker carries up to date.
    pub fn cleanup(&mut self) {
        if !self.handed.is_empty() {
            let _ = self.commits.send(std::mem::take(&mut self.handed));
        }
        self.batch = Vec::new();
    }

    /// Fluent Bit paused the input (its buffer is full): hand nothing until resumed.
    pub fn pause(&mut self) {
        self.paused = true;
    }

    /// Fluent Bit resumed the input.
    pub fn resume(&mut self) {
        self.paused = false;
    }

    /// Stops reading, checkpoints what the host took, joins the thread, logs a summary.
    pub fn exit(&mut self) {
        if !self.handed.is_empty() {
            let _ = self.commits.send(std::mem::take(&mut self.handed));
        }
        self.shared.stop.store(true, Ordering::SeqCst);
        self.shared.stopping.notify_one();
        self.shared.room.notify_one();
        if let Some(t) = self.thread.take() {
            if t.join().is_err() {
                self.log.error("the reader thread panicked");
            }
        }
        self.log.info(&format!(
            "exit: {} user records read, {} handed to Fluent Bit",
            self.shared.read.load(Ordering::Relaxed),
            self.shared.handed.load(Ordering::Relaxed)
        ));
    }
}

fn read(
    settings: Settings,
    log: Logger,
    shared: Arc<Shared>,
    mut commits: mpsc::UnboundedReceiver<Vec<SourceRecord>>,
) {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            log.error(&format!("cannot start a tokio runtime: {e}"));
            return;
        }
    };
    let store: Arc<dyn CheckpointStore> = match &settings.checkpoint_file {
        Some(path) => Arc::new(FileCheckpoints::new(path)),
        None => Arc::new(MemoryCheckpoints::default()),
    };
    runtime.block_on(async move {
        let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest());
        if !settings.region.is_empty() {
            loader = loader.region(aws_config::Region::new(settings.region.clone()));
        }
        let sdk = loader.load().await;
        let stopped = || shared.stop.load(Ordering::SeqCst);
        while !stopped() {
            let mut builder = Source::builder()
                .sdk_config(sdk.clone())
                .checkpoints(store.clone())
                .config(SourceConfig {
                    start: settings.start.clone(),
                    follow: true,
                    poll_interval: settings.poll_interval,
                    policy: settings.policy,
                    ..SourceConfig::default()
                });
            builder = if settings.stream.starts_with("arn:") {
                builder.stream_arn(settings.stream.clone())
            } else {
                builder.stream_name(settings.stream.clone())
            };
            if !settings.endpoint.is_empty() {
                builder = builder.endpoint_url(settings.endpoint.clone());
            }
            if !settings.region.is_empty() {
                builder = builder.region(settings.region.clone());
            }
            if let Some(leases) = &settings.leases {
                builder = builder.leases(leases.clone());
            }
            let mut source = match builder.build().await {
                Ok(s) => s,
                Err(e) => {
                    log.error(&format!("cannot read the stream: {}; retrying in {RESTART_DELAY:?}", log_line(&e)));
                    let _ = tokio::time::timeout(RESTART_DELAY, shared.stopping.notified()).await;
                    continue;
                }
            };
            let mut moved = source.leases_moved();
            loop {
                // With lease_table: the shards this instance takes and gives up.
                while let Some(event) = source.poll_lease_event() {
                    log.info(&event.to_string());
                }
                if source.leases_moved() != moved {
                    // A shard handed over to another worker (or lost): its records not given
                    // to Fluent Bit yet are that worker's to read, from the checkpoint.
                    moved = source.leases_moved();
                    if let Ok(mut q) = shared.queue.lock() {
                        let before = q.records.len();
                        q.records.retain(|r| source.reads(&r.shard_id));
                        q.bytes = q.records.iter().map(size).sum();
                        let dropped = before - q.records.len();
                        if dropped > 0 {
                            log.debug(&format!("{dropped} records of shards now read by another worker dropped before Fluent Bit got them"));
                        }
                    }
                }
                while let Ok(batch) = commits.try_recv() {
                    commit(&mut source, &batch, &log);
                }
                if stopped() {
                    break;
                }
                let full = shared.queue.lock().map(|q| q.bytes >= settings.buffer_bytes).unwrap_or(false);
                if full {
                    // Fluent Bit is not taking records (paused, or slower than the stream).
                    let _ = tokio::time::timeout(Duration::from_millis(200), shared.room.notified()).await;
                    continue;
                }
                let next = tokio::select! {
                    next = source.next() => next,
                    // Commits as soon as the host took a batch (not at the next record): a
                    // lease handed over carries them.
                    Some(batch) = commits.recv() => {
                        commit(&mut source, &batch, &log);
                        continue;
                    }
                    _ = shared.stopping.notified() => break,
                };
                match next {
                    Some(Ok(r)) => {
                        shared.read.fetch_add(1, Ordering::Relaxed);
                        if let Some(defect) = &r.defect {
                            let n = shared.defects.fetch_add(1, Ordering::Relaxed) + 1;
                            if n <= 5 || n.is_multiple_of(100) {
                                log.warn(&format!(
                                    "strict policy: Kinesis record {} of {} handed over whole ({n} so far): {defect}",
                                    r.sequence_number, r.shard_id
                                ));
                            }
                        }
                        if let Ok(mut q) = shared.queue.lock() {
                            q.bytes += size(&r);
                            q.records.push_back(r);
                        }
                    }
                    Some(Err(e)) => {
                        log.error(&format!("reading stopped: {}; resuming from the last checkpoint in {RESTART_DELAY:?}", log_line(&e)));
                        // Records read but not handed yet will be read again.
                        if let Ok(mut q) = shared.queue.lock() {
                            *q = Queue::default();
                        }
                        let _ = tokio::time::timeout(RESTART_DELAY, shared.stopping.notified()).await;
                        break;
                    }
                    None => break,
                }
            }
            if stopped() {
                // The commits so far through the source (with leases: written to them),
                // then the leases released so that other workers take the shards at once.
                while let Ok(batch) = commits.try_recv() {
                    for r in &batch {
                        let _ = source.checkpoint(r);
                    }
                }
                source.shutdown(Duration::from_secs(5)).await;
            }
        }
        // Last commits (the batch the host took before Exit), straight to the store.
        while let Ok(batch) = commits.try_recv() {
            for r in &batch {
                let shard = r.shard_id.to_string();
                let cp = kpl_kinesis::source::ShardPosition::At(r.checkpoint());
                if let Err(e) = store.save(&shard, &cp) {
                    log.error(&format!("checkpoint of {shard} failed: {e}"));
                }
            }
        }
    });
}
