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

import java.io.File;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.ByteBuffer;
import java.util.ArrayList;
import java.util.Base64;
import java.util.List;
import java.util.concurrent.TimeUnit;

/**
 * Runs the real Java KPL for one scenario and records what Kinesis (kinesis-mock) stored.
 * Usage: Capture <scenario.json> <out.json> <kinesisPort(TLS, for KPL)> <plainPort(for setup/readback)>
 * The scenario's records go through KPL unchanged. A warm-up record is put and flushed first
 * (so KPL's shard map is ready and the scenario's records are aggregated); it is reported
 * separately and excluded by the caller.
 */
public class Capture {
    static final ObjectMapper M = new ObjectMapper();
    static final HttpClient H = HttpClient.newBuilder().version(HttpClient.Version.HTTP_1_1).connectTimeout(java.time.Duration.ofSeconds(10)).build();
    static int plainPort;

    static JsonNode call(String op, ObjectNode body) throws Exception {
        HttpRequest req = HttpRequest.newBuilder(URI.create("http://127.0.0.1:" + plainPort + "/"))
                .header("X-Amz-Target", "Kinesis_20131202." + op)
                .header("Content-Type", "application/x-amz-json-1.1")
                .header("X-Amz-Date", "20260101T000000Z")
                .header("Authorization", "AWS4-HMAC-SHA256 Credential=AKIAFAKE/20260101/us-east-1/kinesis/aws4_request, SignedHeaders=host, Signature=0")
                .timeout(java.time.Duration.ofSeconds(30)).POST(HttpRequest.BodyPublishers.ofString(M.writeValueAsString(body))).build();
        HttpResponse<String> r = H.send(req, HttpResponse.BodyHandlers.ofString());
        if (r.statusCode() != 200) throw new RuntimeException(op + " -> HTTP " + r.statusCode() + ": " + r.body());
        return r.body().isEmpty() ? M.createObjectNode() : M.readTree(r.body());
    }

    public static void main(String[] args) throws Exception {
        JsonNode sc = M.readTree(new File(args[0]));
        File out = new File(args[1]);
        int kinesisPort = Integer.parseInt(args[2]);
        plainPort = Integer.parseInt(args[3]);
        String stream = "kpl-capture-" + sc.get("name").asText();

        ObjectNode cs = M.createObjectNode();
        cs.put("StreamName", stream);
        cs.put("ShardCount", 1);
        call("CreateStream", cs);
        for (int i = 0; ; i++) {
            ObjectNode d = M.createObjectNode();
            d.put("StreamName", stream);
            String st = call("DescribeStreamSummary", d).path("StreamDescriptionSummary").path("StreamStatus").asText();
            if (st.equals("ACTIVE")) break;
            if (i > 100) throw new RuntimeException("stream not ACTIVE: " + st);
            Thread.sleep(100);
        }

        KinesisProducerConfiguration cfg = new KinesisProducerConfiguration()
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
        JsonNode c = sc.path("config");
        if (c.has("max_size")) cfg.setAggregationMaxSize(c.get("max_size").asLong());
        if (c.has("max_count")) cfg.setAggregationMaxCount(c.get("max_count").asLong());

        KinesisProducer kp = new KinesisProducer(cfg);
        ObjectNode result = M.createObjectNode();
        result.put("stream", stream);
        try {
            // warm-up: creates the per-stream pipeline and its shard map
            UserRecordResult w = kp.addUserRecord(stream, "__warmup__", ByteBuffer.wrap("warmup".getBytes("UTF-8"))).get(60, TimeUnit.SECONDS);
            kp.flushSync();
            result.put("warmup_sequence_number", w.getSequenceNumber());
            Thread.sleep(3000);

            long addIntervalMs = Long.parseLong(System.getenv().getOrDefault("KPL_CAPTURE_ADD_INTERVAL_MS", "10"));
            result.put("add_interval_ms", addIntervalMs);
            List<ListenableFuture<UserRecordResult>> fs = new ArrayList<>();
            for (JsonNode r : sc.get("records")) {
                byte[] data = Base64.getDecoder().decode(r.get("data").asText());
                String ehk = r.has("explicit_hash_key") ? r.get("explicit_hash_key").asText() : null;
                fs.add(kp.addUserRecord(stream, r.get("partition_key").asText(), ehk, ByteBuffer.wrap(data)));
                // Pacing: KPL 0.15.12's native process handles a burst of puts on more than one
                // thread, so user records reach the aggregator out of order (observed: two
                // interleaved ordered runs). A short pause after each add keeps user order.
                Thread.sleep(addIntervalMs);
            }
            kp.flushSync();
            ArrayNode urs = result.putArray("user_record_results");
            for (ListenableFuture<UserRecordResult> f : fs) {
                UserRecordResult u = f.get(60, TimeUnit.SECONDS);
                ObjectNode o = urs.addObject();
                o.put("successful", u.isSuccessful());
                o.put("shard_id", u.getShardId());
                o.put("sequence_number", u.getSequenceNumber());
                o.put("attempts", u.getAttempts().size());
            }
        } finally {
            kp.flushSync();
            kp.destroy();
        }

        ObjectNode ls = M.createObjectNode();
        ls.put("StreamName", stream);
        JsonNode shards = call("ListShards", ls).get("Shards");
        if (shards.size() != 1) throw new RuntimeException("expected one shard: " + shards);
        result.set("shard", shards.get(0));
        ObjectNode gi = M.createObjectNode();
        gi.put("StreamName", stream);
        gi.put("ShardId", shards.get(0).get("ShardId").asText());
        gi.put("ShardIteratorType", "TRIM_HORIZON");
        String it = call("GetShardIterator", gi).get("ShardIterator").asText();
        ArrayNode recs = result.putArray("kinesis_records");
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
        M.writerWithDefaultPrettyPrinter().writeValue(out, result);
        System.out.println("captured " + recs.size() + " Kinesis records for " + stream);
    }
}
