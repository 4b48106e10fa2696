//! One `[OUTPUT]` instance: a plugin-owned thread running a tokio runtime and the
//! `kpl-kinesis` sink. `FLBPluginFlushCtx` runs on Fluent Bit's 64 KiB coroutine stack, so
//! it only copies the chunk, hands it to that thread and blocks for the `FLB_*` code.

use std::collections::BTreeMap;
use std::ffi::c_int;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc as std_mpsc, Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use kpl_fluent_bit::abi::{FLB_ERROR, FLB_OK, FLB_RETRY};
use kpl_fluent_bit::log::Logger;
use kpl_fluent_bit::msgpack::events;
use kpl_kinesis::sink::{FailureReason, Outcome, PendingOutcome, Sink, SinkError, UserRecord};
use tokio::sync::mpsc;
use tokio::task::JoinSet;

use crate::records::{KeyGen, Shaper};
use crate::retry_memory::{ChunkKey, RetryMemory};
use crate::settings::{log_line, Settings};

/// Chunks awaiting a retry that an instance remembers (about 300 bytes each for a 2 MB
/// chunk of 18,000 events).
const RETRY_MEMORY_CHUNKS: usize = 4096;

/// Per-chunk log lines about records that can never be sent, before a summary.
const UNSENDABLE_LINES: usize = 5;
/// How many records of a chunk are put into the sink at once (`Sink::put_batch_until`:
/// their partition keys hashed together), between which the sink's driver, on this same
/// thread, gets to run.
const PUT_GROUP: usize = 256;

struct Job {
    tag: Vec<u8>,
    chunk: Vec<u8>,
    reply: std_mpsc::SyncSender<c_int>,
}

/// Counters for the exit summary, beside the sink's own.
#[derive(Debug, Default)]
struct Counters {
    stored: AtomicU64,
    failed: AtomicU64,
    retried_chunks: AtomicU64,
    forgotten_chunks: AtomicU64,
}

/// What a flush task needs.
struct Ctx {
    sink: Sink,
    shaper: Shaper,
    memory: Mutex<RetryMemory>,
    counters: Counters,
    log: Logger,
    /// How long a flush may wait for buffer room before it gives the rest back (RETRY).
    put_wait: Duration,
    seeds: AtomicU64,
}

/// A running instance.
pub struct Instance {
    jobs: Mutex<Option<mpsc::UnboundedSender<Job>>>,
    thread: Mutex<Option<JoinHandle<()>>>,
    log: Logger,
}

impl Instance {
    /// Starts the instance's thread and sink; returns once the sink is built (AWS
    /// credentials and region loaded), or why it could not be.
    pub fn start(settings: Settings, log: Logger, thread_name: String) -> Result<Instance, String> {
        let (jobs_tx, jobs_rx) = mpsc::unbounded_channel();
        let (ready_tx, ready_rx) = std_mpsc::sync_channel(1);
        let thread_log = log.clone();
        let thread = std::thread::Builder::new()
            .name(thread_name)
            .spawn(move || run(settings, thread_log, jobs_rx, ready_tx))
            .map_err(|e| format!("cannot start the plugin's thread: {e}"))?;
        match ready_rx.recv() {
            Ok(Ok(())) => Ok(Instance {
                jobs: Mutex::new(Some(jobs_tx)),
                thread: Mutex::new(Some(thread)),
                log,
            }),
            Ok(Err(e)) => {
                let _ = thread.join();
                Err(e)
            }
            Err(_) => {
                let _ = thread.join();
                Err("the plugin's thread ended before the sink was ready".into())
            }
        }
    }

    /// Sends a chunk and waits for its `FLB_*` code. Small on the stack: it runs on Fluent
    /// Bit's coroutine stack.
    pub fn flush(&self, tag: &[u8], chunk: &[u8]) -> c_int {
        let (reply, answer) = std_mpsc::sync_channel(1);
        let job = Job {
            tag: tag.to_vec(),
            chunk: chunk.to_vec(),
            reply,
        };
        let sent = match self.jobs.lock() {
            Ok(jobs) => jobs.as_ref().is_some_and(|tx| tx.send(job).is_ok()),
            Err(_) => false,
        };
        if !sent {
            self.log
                .error("flush after exit, or the plugin's thread is gone: chunk left to Fluent Bit's retry");
            return FLB_RETRY;
        }
        // Nothing of `self` is touched while waiting or after: should the host run Exit
        // while a worker still waits here, the instance may be gone when the answer comes.
        let log = self.log.clone();
        answer.recv().unwrap_or_else(|_| {
            log.error(
                "this flush ended without an answer (the plugin stopped, or the flush failed): chunk left to Fluent Bit's retry",
            );
            FLB_RETRY
        })
    }

    /// Stops taking chunks, lets running flushes finish, flushes the sink within the
    /// grace period, logs the summary and joins the thread.
    pub fn exit(&self) {
        if let Ok(mut jobs) = self.jobs.lock() {
            jobs.take();
        }
        let thread = self.thread.lock().ok().and_then(|mut t| t.take());
        if let Some(thread) = thread {
            if thread.join().is_err() {
                self.log.error("the plugin's thread panicked");
            }
        }
    }
}

fn run(
    settings: Settings,
    log: Logger,
    mut jobs: mpsc::UnboundedReceiver<Job>,
    ready: std_mpsc::SyncSender<Result<(), String>>,
) {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            let _ = ready.send(Err(format!("cannot start a tokio runtime: {e}")));
            return;
        }
    };
    // The sink's diagnostics go to this instance's log; the subscriber is this thread's,
    // where the runtime runs every task.
    let _subscriber = tracing::subscriber::set_default(crate::sink_log::SinkLog::new(log.clone()));
    runtime.block_on(async move {
        let sink = match build_sink(&settings).await {
            Ok(sink) => sink,
            Err(e) => {
                let _ = ready.send(Err(e));
                return;
            }
        };
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        let ctx = Arc::new(Ctx {
            sink,
            shaper: Shaper {
                partition_key: settings.partition_key.clone(),
                explicit_hash_key: settings.explicit_hash_key.clone(),
                format: settings.format.clone(),
            },
            memory: Mutex::new(RetryMemory::new(RETRY_MEMORY_CHUNKS)),
            counters: Counters::default(),
            log: log.clone(),
            put_wait: Duration::from_millis(settings.sink.record_ttl),
            seeds: AtomicU64::new(seed),
        });
        // KPL's warm-up, made explicit: records put before the first ListShards answer
        // cannot be aggregated (they go alone once their RecordMaxBufferedTime passes), and
        // Fluent Bit flushes its first chunk within 100 ms of Init. Wait for the shard map,
        // bounded; a stream that cannot be listed yet still starts, with a warning.
        let wait = Duration::from_millis(settings.sink.request_timeout.min(10_000));
        if !ctx.sink.wait_for_shard_map(wait).await {
            log.warn(&format!(
                "no shard map for stream {} within {} ms: records sent before it comes go unaggregated",
                settings.stream,
                wait.as_millis()
            ));
        }
        let _ = ready.send(Ok(()));
        log.info(&format!(
            "stream={} aggregation={} record_max_buffered_time={}ms record_ttl={}ms",
            settings.stream,
            if settings.sink.aggregation_enabled {
                "on"
            } else {
                "off"
            },
            settings.sink.record_max_buffered_time,
            settings.sink.record_ttl
        ));
        let mut running = JoinSet::new();
        while let Some(job) = jobs.recv().await {
            let ctx = ctx.clone();
            running.spawn(async move {
                let code = flush(&ctx, &job.tag, &job.chunk).await;
                let _ = job.reply.send(code);
            });
            // Reap finished flushes as we go, so the set stays small.
            while running.try_join_next().is_some() {}
        }
        // Exit: no more chunks. A flush still running (a worker the host stops late) gets
        // its records sent now rather than after `record_max_buffered_time`; whatever is
        // not settled within the grace period fails, and its flush answers RETRY.
        let grace = tokio::time::Instant::now() + settings.exit_grace;
        let draining = async { while running.join_next().await.is_some() {} };
        let _ = tokio::time::timeout_at(grace, async { tokio::join!(ctx.sink.flush(), draining) })
            .await;
        let left = grace.saturating_duration_since(tokio::time::Instant::now());
        ctx.sink.shutdown(left).await;
        log.info(&summary(&ctx));
    });
}

async fn build_sink(settings: &Settings) -> Result<Sink, String> {
    let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest());
    if !settings.sink.region.is_empty() {
        loader = loader.region(aws_config::Region::new(settings.sink.region.clone()));
    }
    let mut sdk = loader.load().await;
    if let Some(role) = &settings.role_arn {
        let provider = aws_config::sts::AssumeRoleProvider::builder(role.clone())
            .session_name("kpl-fluent-bit")
            .configure(&sdk)
            .build()
            .await;
        sdk = sdk
            .into_builder()
            .credentials_provider(
                aws_credential_types::provider::SharedCredentialsProvider::new(provider),
            )
            .build();
    }
    let builder = Sink::builder()
        .config(settings.sink.clone())
        .sdk_config(sdk);
    let builder = if settings.stream.starts_with("arn:") {
        builder.stream_arn(settings.stream.clone())
    } else {
        builder.stream_name(settings.stream.clone())
    };
    builder.build().await.map_err(|e| log_line(&e))
}

/// What one flush did with its records.
#[derive(Default)]
struct Tally {
    /// Records that may be stored by a retry: failed for a transient reason, or not put.
    unsettled: u64,
    /// The last transient error.
    last_error: Option<String>,
    /// Records that can never be stored, logged.
    unsendable: u64,
}

/// Sends a chunk's records (those a previous delivery did not settle) and decides the
/// chunk's `FLB_*` code.
async fn flush(ctx: &Ctx, tag: &[u8], chunk: &[u8]) -> c_int {
    let key = ChunkKey::of(tag, chunk);
    let mut settled = match ctx.memory.lock() {
        Ok(mut m) => m.take(&key),
        Err(_) => Default::default(),
    };
    let tag_text = String::from_utf8_lossy(tag);
    ctx.log.debug(&format!(
        "chunk (tag {tag_text}): {} bytes, {} events settled by an earlier delivery",
        chunk.len(),
        settled.len()
    ));
    let mut keys = KeyGen::new(
        ctx.seeds
            .fetch_add(0x5851_F42D_4C95_7F2D, Ordering::Relaxed),
    );
    let deadline = tokio::time::Instant::now() + ctx.put_wait;
    let mut tally = Tally::default();
    let mut pending: Vec<(usize, PendingOutcome)> = Vec::new();
    let mut malformed = None;
    let mut room = true;
    // Records are put PUT_GROUP at a time (their partition keys hashed together, side by
    // side in SIMD lanes), in event order.
    let mut group: Vec<(usize, UserRecord)> = Vec::with_capacity(PUT_GROUP);
    let mut events = events(chunk).enumerate();
    let mut more = true;
    while more {
        while group.len() < PUT_GROUP {
            let (i, event) = match events.next() {
                None => {
                    more = false;
                    break;
                }
                Some((_, Err(e))) => {
                    malformed = Some(e);
                    more = false;
                    break;
                }
                Some((i, Ok(event))) => (i, event),
            };
            if settled.contains(i) {
                continue;
            }
            if !room {
                tally.unsettled += 1;
                continue;
            }
            match ctx.shaper.shape(&event, tag, &mut keys) {
                Ok(record) => group.push((i, record)),
                Err(reason) => {
                    unsendable(ctx, &mut tally, &tag_text, i, &reason);
                    settled.insert(i);
                }
            }
        }
        if group.is_empty() {
            continue;
        }
        let (indices, records): (Vec<usize>, Vec<UserRecord>) = group.drain(..).unzip();
        let results = ctx.sink.put_batch_until(records, Some(deadline)).await;
        for (i, result) in indices.into_iter().zip(results) {
            match result {
                Ok(p) => pending.push((i, p)),
                Err(SinkError::Invalid(e)) => {
                    unsendable(ctx, &mut tally, &tag_text, i, &e.to_string());
                    settled.insert(i);
                }
                Err(e) => {
                    if room {
                        tally.last_error = Some(match e {
                            SinkError::Full(_) => format!(
                                "no buffer room for {} ms: Kinesis is not keeping up",
                                ctx.put_wait.as_millis()
                            ),
                            e => log_line(&e),
                        });
                    }
                    tally.unsettled += 1;
                    room = false;
                }
            }
        }
        // The sink's driver runs on this same thread: let it work (answers, deadlines)
        // while a large chunk is being put.
        tokio::task::yield_now().await;
    }
    for (i, p) in pending {
        match p.await {
            Outcome::Success(_) => {
                settled.insert(i);
                ctx.counters.stored.fetch_add(1, Ordering::Relaxed);
            }
            Outcome::Failure(f) => match &f.reason {
                FailureReason::Rejected(e) if record_is_at_fault(&e.code) => {
                    unsendable(ctx, &mut tally, &tag_text, i, &log_line(&f));
                    settled.insert(i);
                }
                _ => {
                    tally.unsettled += 1;
                    tally.last_error = Some(log_line(&f));
                }
            },
        }
    }
    if tally.unsendable > UNSENDABLE_LINES as u64 {
        ctx.log.warn(&format!(
            "chunk (tag {tag_text}): {} records in all could never be sent (the first {UNSENDABLE_LINES} are logged above)",
            tally.unsendable
        ));
    }
    if tally.unsettled > 0 {
        ctx.counters.retried_chunks.fetch_add(1, Ordering::Relaxed);
        ctx.log.warn(&format!(
            "chunk (tag {tag_text}): {} records not stored yet ({}); {} already settled will not be sent again: retry",
            tally.unsettled,
            tally.last_error.as_deref().unwrap_or("unknown error"),
            settled.len()
        ));
        if let Ok(mut m) = ctx.memory.lock() {
            if m.remember(key, settled).is_some() {
                ctx.counters
                    .forgotten_chunks
                    .fetch_add(1, Ordering::Relaxed);
                ctx.log.warn(&format!(
                    "over {RETRY_MEMORY_CHUNKS} chunks await a retry: the oldest is forgotten, and its stored records would be sent again if Fluent Bit retries it"
                ));
            }
        }
        return FLB_RETRY;
    }
    if let Some(e) = malformed {
        ctx.log.error(&format!(
            "chunk (tag {tag_text}) is malformed: {e}; the {} events before that point are settled, the rest is dropped",
            settled.len()
        ));
        return FLB_ERROR;
    }
    FLB_OK
}

/// Whether Kinesis refused a record for something in the record itself, which no retry
/// fixes. Other refusals (the stream not found, access denied, a KMS key disabled) are
/// about the setup, which may be fixed while Fluent Bit retries: those records are retried,
/// not dropped.
fn record_is_at_fault(code: &str) -> bool {
    matches!(code, "ValidationException" | "InvalidArgumentException")
}

fn unsendable(ctx: &Ctx, tally: &mut Tally, tag: &str, index: usize, reason: &str) {
    tally.unsendable += 1;
    ctx.counters.failed.fetch_add(1, Ordering::Relaxed);
    if tally.unsendable <= UNSENDABLE_LINES as u64 {
        ctx.log.warn(&format!(
            "record {index} of a chunk (tag {tag}) can never be stored, dropped: {reason}"
        ));
    }
}

fn summary(ctx: &Ctx) -> String {
    let stats = ctx.sink.stats();
    let retries: u64 = stats.retries_by_code.values().sum();
    let by_code: BTreeMap<_, _> = stats.retries_by_code.iter().collect();
    let c = &ctx.counters;
    format!(
        "exit: {} records stored, {} failed for good, {} Kinesis records, {} PutRecords calls, {} retries {:?}, {} chunks retried, {} forgotten",
        c.stored.load(Ordering::Relaxed),
        c.failed.load(Ordering::Relaxed),
        stats.kinesis_records_stored,
        stats.put_records_calls,
        retries,
        by_code,
        c.retried_chunks.load(Ordering::Relaxed),
        c.forgotten_chunks.load(Ordering::Relaxed),
    )
}
