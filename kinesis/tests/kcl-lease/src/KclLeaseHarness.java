import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.FileOutputStream;
import java.io.FileDescriptor;
import java.io.PrintStream;
import java.net.URI;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.Base64;
import java.util.HashMap;
import java.util.Map;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;
import software.amazon.awssdk.auth.credentials.AwsBasicCredentials;
import software.amazon.awssdk.auth.credentials.StaticCredentialsProvider;
import software.amazon.awssdk.http.Protocol;
import software.amazon.awssdk.http.nio.netty.NettyNioAsyncHttpClient;
import software.amazon.awssdk.regions.Region;
import software.amazon.awssdk.services.cloudwatch.CloudWatchAsyncClient;
import software.amazon.awssdk.services.dynamodb.DynamoDbAsyncClient;
import software.amazon.awssdk.services.kinesis.KinesisAsyncClient;
import software.amazon.kinesis.common.ConfigsBuilder;
import software.amazon.kinesis.common.InitialPositionInStream;
import software.amazon.kinesis.common.InitialPositionInStreamExtended;
import software.amazon.kinesis.coordinator.Scheduler;
import software.amazon.kinesis.leases.LeaseManagementConfig;
import software.amazon.kinesis.lifecycle.events.InitializationInput;
import software.amazon.kinesis.lifecycle.events.LeaseLostInput;
import software.amazon.kinesis.lifecycle.events.ProcessRecordsInput;
import software.amazon.kinesis.lifecycle.events.ShardEndedInput;
import software.amazon.kinesis.lifecycle.events.ShutdownRequestedInput;
import software.amazon.kinesis.metrics.MetricsLevel;
import software.amazon.kinesis.metrics.NullMetricsFactory;
import software.amazon.kinesis.processor.RecordProcessorCheckpointer;
import software.amazon.kinesis.processor.ShardRecordProcessor;
import software.amazon.kinesis.processor.SingleStreamTracker;
import software.amazon.kinesis.retrieval.KinesisClientRecord;
import software.amazon.kinesis.retrieval.polling.PollingConfig;

/**
 * One KCL 3.x worker (a Scheduler in polling mode) for the lease tests: reads a stream from
 * a local Kinesis (kinesis-mock) with its lease table in a local DynamoDB, and prints one
 * JSON line per event on standard output (KCL's own log goes to standard error).
 *
 * <p>Lines: every line has "event" and "worker"; "record" lines add shard, seq, subseq, pk,
 * ehk (explicit hash key or null), data (base64); "initialize" adds shard, seq, subseq (the
 * checkpoint the shard resumes from); "checkpoint" adds shard, seq, subseq (null seq for a
 * batch checkpoint: KCL then writes the batch's last record), "shard_ended", "lease_lost",
 * "shutdown_requested" add shard; "started", "stopping" (with reason), "stopped" (with
 * clean = whether the graceful shutdown finished).
 *
 * <p>Arguments (all "--name value"): see usage().
 */
public final class KclLeaseHarness {
  private static final ObjectMapper JSON = new ObjectMapper();
  private static final PrintStream OUT =
      new PrintStream(new FileOutputStream(FileDescriptor.out), true, StandardCharsets.UTF_8);

  private static String worker;
  /** "batch", "none", or a positive record count. */
  private static String checkpointMode;
  /** When the last shard was initialized or the last record or shard end handed over; 0 before. */
  private static final AtomicLong lastActivity = new AtomicLong(0);

  private static void usage() {
    System.err.println(
        "usage: KclLeaseHarness --stream S --app A --worker W --kinesis URL --dynamodb URL\n"
            + "  [--checkpoint batch|none|N]   after each batch (default), never, every N records\n"
            + "  [--idle-exit-ms MS]           stop cleanly after MS without a record, counted from\n"
            + "                                the first shard initialized (default: never)\n"
            + "  [--max-run-ms MS]             stop cleanly after MS in all (default: never)\n"
            + "  [--failover-ms MS]            failoverTimeMillis (KCL default 10000)\n"
            + "  [--idle-between-reads-ms MS]  polling pause per shard (KCL default 1500)\n"
            + "  [--max-records N]             GetRecords limit (KCL default 10000)\n"
            + "  [--shard-sync-ms MS]          shardSyncIntervalMillis (KCL default 60000)\n"
            + "  [--assignment utilization|lease-count]  KCL 3 assignment (default utilization)\n"
            + "  [--initial-position TRIM_HORIZON|LATEST] (default TRIM_HORIZON)\n"
            + "Stops cleanly (graceful shutdown, checkpoints of shutdownRequested) on SIGTERM/SIGINT.");
  }

  private static synchronized void emit(ObjectNode line) {
    OUT.println(line.toString());
  }

  private static ObjectNode line(String event) {
    ObjectNode n = JSON.createObjectNode();
    n.put("event", event);
    n.put("worker", worker);
    return n;
  }

  public static void main(String[] argv) throws Exception {
    Map<String, String> a = new HashMap<>();
    for (int i = 0; i < argv.length; i++) {
      if (!argv[i].startsWith("--") || i + 1 >= argv.length) {
        usage();
        System.exit(2);
      }
      a.put(argv[i].substring(2), argv[++i]);
    }
    for (String required : new String[] {"stream", "app", "worker", "kinesis", "dynamodb"}) {
      if (!a.containsKey(required)) {
        System.err.println("missing --" + required);
        usage();
        System.exit(2);
      }
    }
    String stream = a.get("stream");
    String app = a.get("app");
    worker = a.get("worker");
    checkpointMode = a.getOrDefault("checkpoint", "batch");
    if (!checkpointMode.equals("batch") && !checkpointMode.equals("none")) {
      if (Long.parseLong(checkpointMode) <= 0) {
        usage();
        System.exit(2);
      }
    }
    long idleExitMs = Long.parseLong(a.getOrDefault("idle-exit-ms", "0"));
    long maxRunMs = Long.parseLong(a.getOrDefault("max-run-ms", "0"));

    StaticCredentialsProvider creds =
        StaticCredentialsProvider.create(AwsBasicCredentials.create("AKIDTEST", "secret"));
    // HTTP/1.1: Java's HTTP/2 hangs against kinesis-mock (shared/docs/local-kinesis.md).
    KinesisAsyncClient kinesis =
        KinesisAsyncClient.builder()
            .endpointOverride(URI.create(a.get("kinesis")))
            .region(Region.US_EAST_1)
            .credentialsProvider(creds)
            .httpClientBuilder(NettyNioAsyncHttpClient.builder().protocol(Protocol.HTTP1_1))
            .build();
    DynamoDbAsyncClient dynamo =
        DynamoDbAsyncClient.builder()
            .endpointOverride(URI.create(a.get("dynamodb")))
            .region(Region.US_EAST_1)
            .credentialsProvider(creds)
            .httpClientBuilder(NettyNioAsyncHttpClient.builder().protocol(Protocol.HTTP1_1))
            .build();
    // Never called (metrics are off); pointed at a closed loopback port all the same.
    CloudWatchAsyncClient cloudWatch =
        CloudWatchAsyncClient.builder()
            .endpointOverride(URI.create("http://127.0.0.1:9"))
            .region(Region.US_EAST_1)
            .credentialsProvider(creds)
            .build();

    InitialPositionInStreamExtended initial =
        InitialPositionInStreamExtended.newInitialPosition(
            InitialPositionInStream.valueOf(a.getOrDefault("initial-position", "TRIM_HORIZON")));
    ConfigsBuilder configs =
        new ConfigsBuilder(
            new SingleStreamTracker(stream, initial),
            app,
            kinesis,
            dynamo,
            cloudWatch,
            worker,
            Processor::new);

    LeaseManagementConfig leases = configs.leaseManagementConfig();
    if (a.containsKey("failover-ms")) {
      leases.failoverTimeMillis(Long.parseLong(a.get("failover-ms")));
    }
    if (a.containsKey("shard-sync-ms")) {
      leases.shardSyncIntervalMillis(Long.parseLong(a.get("shard-sync-ms")));
    }
    String assignment = a.getOrDefault("assignment", "utilization");
    if (assignment.equals("lease-count")) {
      leases.leaseAssignmentStrategy(software.amazon.kinesis.leases.LeaseAssignmentStrategy.LEASE_COUNT_BASED);
    } else if (!assignment.equals("utilization")) {
      usage();
      System.exit(2);
    }

    PollingConfig polling = new PollingConfig(stream, kinesis);
    if (a.containsKey("idle-between-reads-ms")) {
      polling.idleTimeBetweenReadsInMillis(Long.parseLong(a.get("idle-between-reads-ms")));
    }
    if (a.containsKey("max-records")) {
      polling.maxRecords(Integer.parseInt(a.get("max-records")));
    }

    Scheduler scheduler =
        new Scheduler(
            configs.checkpointConfig(),
            configs.coordinatorConfig(),
            leases,
            configs.lifecycleConfig(),
            configs.metricsConfig().metricsLevel(MetricsLevel.NONE).metricsFactory(new NullMetricsFactory()),
            configs.processorConfig(),
            configs.retrievalConfig().retrievalSpecificConfig(polling));

    CountDownLatch stopped = new CountDownLatch(1);
    Thread runner = new Thread(scheduler, "kcl-scheduler");
    runner.setDaemon(true);

    Object stopOnce = new Object();
    boolean[] stopping = {false};
    // Emits "stopping" (the reason and the times) and shuts the scheduler down, once.
    java.util.function.Consumer<ObjectNode> stop =
        (why) -> {
          synchronized (stopOnce) {
            if (stopping[0]) {
              return;
            }
            stopping[0] = true;
          }
          emit(why);
          boolean clean;
          try {
            clean = scheduler.startGracefulShutdown().get(60, TimeUnit.SECONDS);
          } catch (Exception e) {
            System.err.println("graceful shutdown failed: " + e);
            clean = false;
          }
          ObjectNode done = line("stopped");
          done.put("clean", clean);
          emit(done);
          stopped.countDown();
        };
    Runtime.getRuntime()
        .addShutdownHook(
            new Thread(
                () -> {
                  ObjectNode n = line("stopping");
                  n.put("reason", "signal");
                  stop.accept(n);
                  try {
                    stopped.await(70, TimeUnit.SECONDS);
                  } catch (InterruptedException e) {
                    Thread.currentThread().interrupt();
                  }
                }));

    emit(line("started"));
    long start = System.nanoTime();
    runner.start();
    if (idleExitMs > 0 || maxRunMs > 0) {
      while (true) {
        Thread.sleep(100);
        long now = System.nanoTime();
        long last = lastActivity.get();
        long idle = last == 0 ? 0 : (now - last) / 1_000_000;
        long ran = (now - start) / 1_000_000;
        String reason = null;
        if (idleExitMs > 0 && idle >= idleExitMs) {
          reason = "idle";
        } else if (maxRunMs > 0 && ran >= maxRunMs) {
          reason = "max_run";
        }
        if (reason != null) {
          ObjectNode n = line("stopping");
          n.put("reason", reason);
          n.put("idle_ms", idle);
          n.put("ran_ms", ran);
          stop.accept(n);
          break;
        }
      }
      System.exit(0);
    }
    runner.join();
  }

  /** One shard's processor: prints what KCL hands it and checkpoints as told. */
  static final class Processor implements ShardRecordProcessor {
    private String shard;
    private long sinceCheckpoint;

    @Override
    public void initialize(InitializationInput in) {
      shard = in.shardId();
      ObjectNode n = line("initialize");
      n.put("shard", shard);
      n.put("seq", in.extendedSequenceNumber().sequenceNumber());
      n.put("subseq", in.extendedSequenceNumber().subSequenceNumber());
      emit(n);
      lastActivity.set(System.nanoTime());
    }

    @Override
    public void processRecords(ProcessRecordsInput in) {
      KinesisClientRecord last = null;
      for (KinesisClientRecord r : in.records()) {
        ByteBuffer data = r.data().duplicate();
        byte[] bytes = new byte[data.remaining()];
        data.get(bytes);
        ObjectNode n = line("record");
        n.put("shard", shard);
        n.put("seq", r.sequenceNumber());
        n.put("subseq", r.subSequenceNumber());
        n.put("pk", r.partitionKey());
        n.put("ehk", r.explicitHashKey());
        n.put("data", Base64.getEncoder().encodeToString(bytes));
        emit(n);
        lastActivity.set(System.nanoTime());
        last = r;
        if (!checkpointMode.equals("batch") && !checkpointMode.equals("none")) {
          sinceCheckpoint++;
          if (sinceCheckpoint >= Long.parseLong(checkpointMode)) {
            checkpointAt(in.checkpointer(), r);
            sinceCheckpoint = 0;
          }
        }
      }
      if (checkpointMode.equals("batch") && last != null) {
        checkpointAt(in.checkpointer(), last);
      }
    }

    private void checkpointAt(RecordProcessorCheckpointer cp, KinesisClientRecord r) {
      ObjectNode n = line("checkpoint");
      n.put("shard", shard);
      n.put("seq", r.sequenceNumber());
      n.put("subseq", r.subSequenceNumber());
      try {
        cp.checkpoint(r.sequenceNumber(), r.subSequenceNumber());
        n.put("ok", true);
      } catch (Exception e) {
        n.put("ok", false);
        n.put("error", e.toString());
      }
      emit(n);
    }

    @Override
    public void leaseLost(LeaseLostInput in) {
      ObjectNode n = line("lease_lost");
      n.put("shard", shard);
      emit(n);
    }

    @Override
    public void shardEnded(ShardEndedInput in) {
      // Always checkpointed (KCL's contract: the children start only after it).
      ObjectNode n = line("shard_ended");
      n.put("shard", shard);
      try {
        in.checkpointer().checkpoint();
        n.put("ok", true);
      } catch (Exception e) {
        n.put("ok", false);
        n.put("error", e.toString());
      }
      emit(n);
      lastActivity.set(System.nanoTime());
    }

    @Override
    public void shutdownRequested(ShutdownRequestedInput in) {
      ObjectNode n = line("shutdown_requested");
      n.put("shard", shard);
      if (!checkpointMode.equals("none")) {
        try {
          in.checkpointer().checkpoint();
          n.put("checkpointed", true);
        } catch (Exception e) {
          n.put("checkpointed", false);
          n.put("error", e.toString());
        }
      }
      emit(n);
    }
  }
}
