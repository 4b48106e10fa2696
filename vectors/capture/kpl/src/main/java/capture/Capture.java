package capture;

import com.amazonaws.services.kinesis.producer.KinesisProducer;
import com.amazonaws.services.kinesis.producer.KinesisProducerConfiguration;
import com.amazonaws.services.kinesis.producer.UserRecordResult;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import com.google.common.util.concurrent.ListenableFuture;

import java.io.File;
import java.util.ArrayList;
import java.util.Base64;
import java.util.List;
import java.util.concurrent.TimeUnit;

import static capture.KplHarness.M;

/**
 * Runs the real Java KPL for one scenario and records what Kinesis (kinesis-mock) stored.
 * Usage: Capture <scenario.json> <out.json> <kinesisPort(TLS, for KPL)> <plainPort(for setup/readback)>
 * The scenario's records go through KPL unchanged, added one at a time (KplHarness.addInOrder),
 * and the result is refused unless OutputCheck finds it to be KPL's deterministic output. A warm-up record is put and flushed first
 * (so KPL's shard map is ready and the scenario's records are aggregated); it is reported
 * separately and excluded by the caller.
 */
public class Capture {
    public static void main(String[] args) throws Exception {
        JsonNode sc = M.readTree(new File(args[0]));
        File out = new File(args[1]);
        int kinesisPort = Integer.parseInt(args[2]);
        KplHarness mock = new KplHarness(Integer.parseInt(args[3]));
        String stream = "kpl-capture-" + sc.get("name").asText();

        mock.createStream(stream, 1);

        KinesisProducerConfiguration cfg = KplHarness.config(kinesisPort);
        JsonNode c = sc.path("config");
        if (c.has("max_size")) cfg.setAggregationMaxSize(c.get("max_size").asLong());
        if (c.has("max_count")) cfg.setAggregationMaxCount(c.get("max_count").asLong());

        KinesisProducer kp = new KinesisProducer(cfg);
        ObjectNode result = M.createObjectNode();
        List<String> seqOf = new ArrayList<>();
        result.put("stream", stream);
        try {
            // warm-up: creates the per-stream pipeline and its shard map
            UserRecordResult w = KplHarness.addWarmup(kp, stream).get(60, TimeUnit.SECONDS);
            kp.flushSync();
            result.put("warmup_sequence_number", w.getSequenceNumber());
            Thread.sleep(3000);

            List<ListenableFuture<UserRecordResult>> fs = new ArrayList<>();
            KplHarness.addInOrder(kp, stream, sc.get("records"), 60_000, fs);
            kp.flushSync();
            ArrayNode urs = result.putArray("user_record_results");
            for (ListenableFuture<UserRecordResult> f : fs) {
                UserRecordResult u = f.get(60, TimeUnit.SECONDS);
                ObjectNode o = urs.addObject();
                o.put("successful", u.isSuccessful());
                o.put("shard_id", u.getShardId());
                o.put("sequence_number", u.getSequenceNumber());
                o.put("attempts", u.getAttempts().size());
                seqOf.add(u.getSequenceNumber());
            }
        } finally {
            kp.flushSync();
            kp.destroy();
        }

        JsonNode shards = mock.listShards(stream);
        if (shards.size() != 1) throw new RuntimeException("expected one shard: " + shards);
        result.set("shard", shards.get(0));
        ArrayNode recs = mock.readShard(stream, shards.get(0).get("ShardId").asText());
        result.set("kinesis_records", recs);
        // Refuse bytes that timing decided (an early cut, a reordering): capture again.
        List<OutputCheck.Put> puts = new ArrayList<>();
        for (JsonNode r : recs) {
            if (r.get("sequence_number").asText().equals(result.path("warmup_sequence_number").asText())) continue;
            puts.add(new OutputCheck.Put(shards.get(0).get("ShardId").asText(), r.get("sequence_number").asText(),
                    r.get("partition_key").asText(), Base64.getDecoder().decode(r.get("data").asText())));
        }
        Long maxSize = c.has("max_size") ? c.get("max_size").asLong() : null;
        Long maxCount = c.has("max_count") ? c.get("max_count").asLong() : null;
        String problem = OutputCheck.check(sc.get("records"), seqOf, puts, maxSize, maxCount);
        if (problem != null) throw new RuntimeException("KPL output not deterministic: " + problem + "; run the capture again");
        M.writerWithDefaultPrettyPrinter().writeValue(out, result);
        System.out.println("captured " + recs.size() + " Kinesis records for " + stream);
    }
}
