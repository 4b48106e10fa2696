package capture;

import com.amazonaws.auth.AWSStaticCredentialsProvider;
import com.amazonaws.auth.BasicAWSCredentials;
import com.amazonaws.services.kinesis.producer.KinesisProducer;
import com.amazonaws.services.kinesis.producer.KinesisProducerConfiguration;
import com.amazonaws.services.kinesis.producer.Metric;
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
import java.util.Map;

/**
 * What the capture harness (Capture) and the java-kpl conformance adapter share: the
 * kinesis-mock calls made on its plain port (stream setup and read-back, never through KPL),
 * the KPL configuration, the warm-up record, the in-order adding of user records, and the
 * check that what KPL put is its deterministic output (OutputCheck).
 */
public final class KplHarness {
    public static final ObjectMapper M = new ObjectMapper();
    /** Partition key of the warm-up record (build_vectors.py looks for it). */
    public static final String WARMUP_KEY = "__warmup__";
    /** KPL's RecordMaxBufferedTime in the harness (config). */
    public static final long MAX_BUFFERED_MS = 600_000;

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
     * also answers STS), certificate checks off, metrics not uploaded (KPL still counts them, see
     * received), log level info (the adapter reads KPL's "Successfully updated shard map" line),
     * and a buffering deadline of 10 minutes, beyond any request's duration even on a loaded
     * machine, so that only the size/count limits and explicit flushes decide where aggregates
     * end. Aggregation limits are left at KPL's defaults; callers set them.
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
                .setRecordMaxBufferedTime(MAX_BUFFERED_MS)
                .setAggregationEnabled(true);
    }

    /** Adds the warm-up record, which creates KPL's per-stream pipeline and its shard map. */
    public static ListenableFuture<UserRecordResult> addWarmup(KinesisProducer kp, String stream) {
        return kp.addUserRecord(stream, WARMUP_KEY, ByteBuffer.wrap("warmup".getBytes(StandardCharsets.UTF_8)));
    }

    /**
     * How many user records KPL's native pipeline for stream has taken in: its
     * UserRecordsReceived metric for the stream, which the pipeline counts in the same call that
     * hands the record to its aggregator. KPL keeps its metrics whatever the metrics level ("none"
     * only stops uploads), so getMetrics answers it with the harness's configuration.
     */
    public static long received(KinesisProducer kp, String stream) throws Exception {
        long n = 0;
        for (Metric m : kp.getMetrics("UserRecordsReceived")) {
            Map<String, String> d = m.getDimensions();
            if (d.size() == 1 && stream.equals(d.get("StreamName"))) n = Math.max(n, Math.round(m.getSum()));
        }
        return n;
    }

    /** Waits until KPL has taken in count user records for stream (received), or throws. */
    public static void awaitReceived(KinesisProducer kp, String stream, long count, long timeoutMs) throws Exception {
        long deadline = System.nanoTime() + timeoutMs * 1_000_000L;
        long got;
        while ((got = received(kp, stream)) < count) {
            if (System.nanoTime() > deadline)
                throw new RuntimeException("KPL took in " + got + " of " + count + " user records for " + stream
                        + " within " + timeoutMs + " ms");
            Thread.sleep(1);
        }
    }

    /**
     * Adds records ({partition_key, explicit_hash_key absent or null, data base64}) in order,
     * appending each future to out, and adds the next one only once KPL's native pipeline has
     * taken the previous one in (awaitReceived): KPL 0.15.12's native process handles a burst of
     * puts on more than one thread, so without this, records reach the aggregator out of order
     * (observed: two interleaved ordered runs), and a flush can overtake the last puts. On
     * return every record has reached KPL's aggregator, so a flush now ends the request.
     * What KPL's addUserRecord throws (its input checks) propagates; out then holds the
     * futures of the records added before.
     */
    public static void addInOrder(KinesisProducer kp, String stream, JsonNode records, long timeoutMs,
                                  List<ListenableFuture<UserRecordResult>> out) throws Exception {
        long base = received(kp, stream);
        int added = 0;
        for (JsonNode r : records) {
            byte[] data = Base64.getDecoder().decode(r.get("data").asText());
            String ehk = r.hasNonNull("explicit_hash_key") ? r.get("explicit_hash_key").asText() : null;
            out.add(kp.addUserRecord(stream, r.get("partition_key").asText(), ehk, ByteBuffer.wrap(data)));
            awaitReceived(kp, stream, base + ++added, timeoutMs);
        }
    }
}
