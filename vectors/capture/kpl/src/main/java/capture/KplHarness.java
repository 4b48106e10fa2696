package capture;

import com.amazonaws.auth.AWSStaticCredentialsProvider;
import com.amazonaws.auth.BasicAWSCredentials;
import com.amazonaws.services.kinesis.producer.KinesisProducer;
import com.amazonaws.services.kinesis.producer.KinesisProducerConfiguration;
import com.amazonaws.services.kinesis.producer.UserRecordResult;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import com.google.common.util.concurrent.ListenableFuture;

import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.Base64;
import java.util.List;

/**
 * What the capture harness (Capture) and the java-kpl conformance adapter share: the
 * kinesis-mock calls made on its plain port (stream setup and read-back, never through KPL),
 * the KPL configuration, the warm-up record and the paced adding of user records.
 */
public final class KplHarness {
    public static final ObjectMapper M = new ObjectMapper();
    /** Partition key of the warm-up record (build_vectors.py looks for it). */
    public static final String WARMUP_KEY = "__warmup__";

    // HTTP/1.1: the client's default h2c upgrade hangs kinesis-mock.
    private final HttpClient http = HttpClient.newBuilder().version(HttpClient.Version.HTTP_1_1)
            .connectTimeout(Duration.ofSeconds(10)).build();
    private final int plainPort;

    public KplHarness(int plainPort) {
        this.plainPort = plainPort;
    }

    /** One Kinesis API call (JSON 1.1) on kinesis-mock's plain port. */
    public JsonNode call(String op, ObjectNode body) throws Exception {
        HttpRequest req = HttpRequest.newBuilder(URI.create("http://127.0.0.1:" + plainPort + "/"))
                .header("X-Amz-Target", "Kinesis_20131202." + op)
                .header("Content-Type", "application/x-amz-json-1.1")
                .header("X-Amz-Date", "20260101T000000Z")
                .header("Authorization", "AWS4-HMAC-SHA256 Credential=AKIAFAKE/20260101/us-east-1/kinesis/aws4_request, SignedHeaders=host, Signature=0")
                .timeout(Duration.ofSeconds(30)).POST(HttpRequest.BodyPublishers.ofString(M.writeValueAsString(body))).build();
        HttpResponse<String> r = http.send(req, HttpResponse.BodyHandlers.ofString());
        if (r.statusCode() != 200) throw new RuntimeException(op + " -> HTTP " + r.statusCode() + ": " + r.body());
        return r.body().isEmpty() ? M.createObjectNode() : M.readTree(r.body());
    }

    /** CreateStream with shardCount shards, then waits until it is ACTIVE. */
    public void createStream(String stream, int shardCount) throws Exception {
        ObjectNode cs = M.createObjectNode();
        cs.put("StreamName", stream);
        cs.put("ShardCount", shardCount);
        call("CreateStream", cs);
        awaitActive(stream);
    }

    /** Waits until the stream is ACTIVE (after CreateStream, SplitShard...). */
    public void awaitActive(String stream) throws Exception {
        for (int i = 0; ; i++) {
            ObjectNode d = M.createObjectNode();
            d.put("StreamName", stream);
            String st = call("DescribeStreamSummary", d).path("StreamDescriptionSummary").path("StreamStatus").asText();
            if (st.equals("ACTIVE")) break;
            if (i > 100) throw new RuntimeException("stream not ACTIVE: " + st);
            Thread.sleep(100);
        }
    }

    /** ListShards (the Shards array). */
    public JsonNode listShards(String stream) throws Exception {
        ObjectNode ls = M.createObjectNode();
        ls.put("StreamName", stream);
        return call("ListShards", ls).get("Shards");
    }

    /** Every record stored in one shard, from TRIM_HORIZON: data, partition key, sequence number. */
    public ArrayNode readShard(String stream, String shardId) throws Exception {
        ObjectNode gi = M.createObjectNode();
        gi.put("StreamName", stream);
        gi.put("ShardId", shardId);
        gi.put("ShardIteratorType", "TRIM_HORIZON");
        String it = call("GetShardIterator", gi).get("ShardIterator").asText();
        ArrayNode recs = M.createArrayNode();
        for (int i = 0; i < 50 && it != null; i++) {
            ObjectNode gr = M.createObjectNode();
            gr.put("ShardIterator", it);
            gr.put("Limit", 10000);
            JsonNode resp = call("GetRecords", gr);
            for (JsonNode r : resp.get("Records")) {
                ObjectNode o = recs.addObject();
                o.put("data", r.get("Data").asText());
                o.put("partition_key", r.get("PartitionKey").asText());
                o.put("sequence_number", r.get("SequenceNumber").asText());
            }
            if (resp.get("Records").size() == 0 && resp.path("MillisBehindLatest").asLong(0) == 0) break;
            JsonNode n = resp.get("NextShardIterator");
            it = (n == null || n.isNull()) ? null : n.asText();
        }
        return recs;
    }

    /**
     * The harness's KPL configuration: everything through 127.0.0.1:kinesisPort (proxy.js, which
     * also answers STS), certificate checks off, metrics off, log level info (the adapter reads
     * KPL's "Successfully updated shard map" line), and a 5 s buffering deadline so that only
     * the size/count limits and explicit flushes decide where aggregates end. Aggregation
     * limits are left at KPL's defaults; callers set them.
     */
    public static KinesisProducerConfiguration config(int kinesisPort) {
        return new KinesisProducerConfiguration()
                .setRegion("us-east-1")
                .setCredentialsProvider(new AWSStaticCredentialsProvider(new BasicAWSCredentials("AKIAFAKEFAKEFAKEFAKE", "fakesecretfakesecretfakesecretfakesecret")))
                .setKinesisEndpoint("127.0.0.1").setKinesisPort(kinesisPort)
                .setCloudwatchEndpoint("127.0.0.1").setCloudwatchPort(kinesisPort)
                .setStsEndpoint("127.0.0.1").setStsPort(kinesisPort)
                .setVerifyCertificate(false)
                .setMetricsLevel("none")
                .setLogLevel("info")
                .setRecordMaxBufferedTime(5000)
                .setAggregationEnabled(true);
    }

    /** Adds the warm-up record, which creates KPL's per-stream pipeline and its shard map. */
    public static ListenableFuture<UserRecordResult> addWarmup(KinesisProducer kp, String stream) {
        return kp.addUserRecord(stream, WARMUP_KEY, ByteBuffer.wrap("warmup".getBytes(StandardCharsets.UTF_8)));
    }

    /** Pause after each user record (KPL_CAPTURE_ADD_INTERVAL_MS, default 10). */
    public static long addIntervalMs() {
        return Long.parseLong(System.getenv().getOrDefault("KPL_CAPTURE_ADD_INTERVAL_MS", "10"));
    }

    /**
     * Adds records ({partition_key, explicit_hash_key absent or null, data base64}) in order,
     * addIntervalMs apart, appending each future to out. What KPL's addUserRecord throws (its
     * input checks) propagates; out then holds the futures of the records added before.
     */
    public static void addPaced(KinesisProducer kp, String stream, JsonNode records, long addIntervalMs,
                                List<ListenableFuture<UserRecordResult>> out) throws InterruptedException {
        for (JsonNode r : records) {
            byte[] data = Base64.getDecoder().decode(r.get("data").asText());
            String ehk = r.hasNonNull("explicit_hash_key") ? r.get("explicit_hash_key").asText() : null;
            out.add(kp.addUserRecord(stream, r.get("partition_key").asText(), ehk, ByteBuffer.wrap(data)));
            // Pacing: KPL 0.15.12's native process handles a burst of puts on more than one
            // thread, so user records reach the aggregator out of order (observed: two
            // interleaved ordered runs). A short pause after each add keeps user order.
            Thread.sleep(addIntervalMs);
        }
    }
}
