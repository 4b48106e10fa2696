// kpl conformance adapter (protocol v1, conformance/PROTOCOL.md) for the awslabs Java
// KinesisAggregator (com.amazonaws:amazon-kinesis-aggregator) and KinesisDeaggregator
// (com.amazonaws:amazon-kinesis-deaggregator), from Maven Central; versions pinned in pom.xml
// next to this file.
//
// encode: com.amazonaws.kinesis.agg.RecordAggregator#addUserRecord(pk, ehk, data) for every
//         user record, then #clearAndGet(); each AggRecord is answered as its
//         toPutRecordsRequestEntry().
// decode: com.amazonaws.kinesis.deagg.RecordDeaggregator#deaggregate(KinesisEventRecord)
//         (which hands the record to KCL 1.x's UserRecord.deaggregate).
// Reports exactly what the library hands back; see README.md.

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;

import com.amazonaws.kinesis.agg.AggRecord;
import com.amazonaws.kinesis.agg.RecordAggregator;
import com.amazonaws.kinesis.deagg.RecordDeaggregator;
import com.amazonaws.services.kinesis.clientlibrary.types.UserRecord;
import com.amazonaws.services.kinesis.model.PutRecordsRequestEntry;
import com.amazonaws.services.lambda.runtime.events.KinesisEvent;

import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Base64;
import java.util.Date;
import java.util.List;
import java.util.Map;

public final class AggregatorAdapter {
    private static final ObjectMapper JSON = AdapterProtocol.JSON;
    // A realistic Kinesis sequence number and arrival time for the record handed over, as a
    // Lambda Kinesis event would carry them.
    private static final String SEQUENCE_NUMBER =
            "49590338271490256608559692538361571095921575989136588898";
    private static final Date ARRIVAL = new Date(1545084650987L); // 2018-12-17T22:10:50.987Z

    private AggregatorAdapter() {}

    /** A request's partition key as a Java String (the lossy UTF-8 form of a _b64 key). */
    private static String partitionKey(JsonNode obj) {
        String pk = AdapterProtocol.text(obj, "partition_key");
        if (pk == null && AdapterProtocol.text(obj, "partition_key_b64") != null) {
            pk = new String(Base64.getDecoder().decode(AdapterProtocol.text(obj, "partition_key_b64")),
                    StandardCharsets.UTF_8);
        }
        return pk;
    }

    /** The bytes an application reading the buffer gets, without moving it. */
    private static byte[] remaining(ByteBuffer data) {
        if (data == null) {
            return new byte[0];
        }
        ByteBuffer view = data.duplicate();
        byte[] out = new byte[view.remaining()];
        view.get(out);
        return out;
    }

    /** The record of a Lambda Kinesis event, as the deaggregator takes it. */
    private static KinesisEvent.KinesisEventRecord eventRecord(byte[] data, String partitionKey) {
        KinesisEvent.Record r = new KinesisEvent.Record();
        r.setData(ByteBuffer.wrap(data));
        r.setPartitionKey(partitionKey);
        r.setSequenceNumber(SEQUENCE_NUMBER);
        r.setApproximateArrivalTimestamp(ARRIVAL);
        r.setKinesisSchemaVersion("1.0");
        KinesisEvent.KinesisEventRecord e = new KinesisEvent.KinesisEventRecord();
        e.setKinesis(r);
        e.setEventSource("aws:kinesis");
        e.setEventName("aws:kinesis:record");
        return e;
    }

    private static ObjectNode hello() {
        ObjectNode o = JSON.createObjectNode();
        o.put("ok", true);
        o.put("name", "amazon-kinesis-aggregator");
        o.put("version", AdapterProtocol.mavenVersion("com.amazonaws", "amazon-kinesis-aggregator"));
        o.put("language", "java");
        o.put("encode", true);
        o.put("decode", true);
        o.putArray("policies").add("native");
        o.put("shard_range", false);
        o.put("bench", true);
        o.put("verify_md5_optional", false);
        o.put("limits", false); // no setting: a fixed 1 MiB per Kinesis record
        ObjectNode deps = o.putObject("deps");
        deps.put("amazon-kinesis-deaggregator",
                AdapterProtocol.mavenVersion("com.amazonaws", "amazon-kinesis-deaggregator"));
        deps.put("amazon-kinesis-client", AdapterProtocol.mavenVersion("com.amazonaws", "amazon-kinesis-client"));
        deps.put("aws-lambda-java-events", AdapterProtocol.mavenVersion("com.amazonaws", "aws-lambda-java-events"));
        deps.put("aws-java-sdk-kinesis", AdapterProtocol.mavenVersion("com.amazonaws", "aws-java-sdk-kinesis"));
        deps.put("protobuf-java", AdapterProtocol.mavenVersion("com.google.protobuf", "protobuf-java"));
        deps.put("jackson-databind", AdapterProtocol.mavenVersion("com.fasterxml.jackson.core", "jackson-databind"));
        deps.put("jaxb-api", AdapterProtocol.mavenVersion("javax.xml.bind", "jaxb-api")); // "?" when left out
        deps.put("java", System.getProperty("java.version"));
        return o;
    }

    private static void addEntry(ArrayNode out, AggRecord agg) {
        PutRecordsRequestEntry e = agg.toPutRecordsRequestEntry();
        ObjectNode kr = out.addObject();
        kr.put("partition_key", e.getPartitionKey());
        kr.put("explicit_hash_key", e.getExplicitHashKey());
        kr.put("data", Base64.getEncoder().encodeToString(remaining(e.getData())));
    }

    private static ObjectNode encode(JsonNode req) {
        RecordAggregator aggregator = new RecordAggregator();
        ArrayNode krs = JSON.createArrayNode();
        JsonNode records = req.get("records");
        int i = 0;
        if (records != null) {
            for (JsonNode rec : records) {
                String pk = partitionKey(rec);
                String ehk = AdapterProtocol.text(rec, "explicit_hash_key");
                byte[] data = Base64.getDecoder().decode(AdapterProtocol.text(rec, "data") == null ? "" : AdapterProtocol.text(rec, "data"));
                try {
                    AggRecord full = aggregator.addUserRecord(pk, ehk, data);
                    if (full != null) {
                        addEntry(krs, full);
                    }
                } catch (Exception e) {
                    ObjectNode o = AdapterProtocol.error("record " + i + ": " + AdapterProtocol.oneLine(e));
                    o.set("kinesis_records_before_error", krs);
                    return o;
                }
                i++;
            }
        }
        AggRecord last = aggregator.clearAndGet();
        if (last != null) {
            addEntry(krs, last);
        }
        ObjectNode o = JSON.createObjectNode();
        o.put("ok", true);
        o.set("kinesis_records", krs);
        return o;
    }

    private static ObjectNode decode(JsonNode req) {
        JsonNode md5 = req.get("verify_md5");
        if (md5 != null && !md5.isNull() && !md5.asBoolean(true)) {
            return AdapterProtocol.error("the deaggregator always verifies MD5");
        }
        String policy = AdapterProtocol.text(req, "policy");
        if (policy != null && !policy.equals("native")) {
            return AdapterProtocol.error("unsupported policy " + policy + " (only native)");
        }
        byte[] data = Base64.getDecoder().decode(AdapterProtocol.text(req, "data") == null ? "" : AdapterProtocol.text(req, "data"));
        List<UserRecord> users = RecordDeaggregator.deaggregate(eventRecord(data, partitionKey(req)));
        ObjectNode o = JSON.createObjectNode();
        o.put("ok", true);
        ArrayNode records = o.putArray("records");
        for (UserRecord u : users) {
            ObjectNode r = records.addObject();
            r.put("partition_key", u.getPartitionKey());
            r.put("explicit_hash_key", u.getExplicitHashKey());
            r.put("data", Base64.getEncoder().encodeToString(remaining(u.getData())));
            r.put("sub_sequence_number", u.getSubSequenceNumber());
            r.put("aggregated", u.isAggregated());
        }
        return o;
    }

    private static ObjectNode bench(JsonNode req) throws Exception {
        // Untimed: load the corpus and build, for every iteration, the event records handed
        // to the deaggregator (fresh records over shared byte arrays, so no buffer is reused).
        AdapterProtocol.Corpus corpus = AdapterProtocol.corpus(req);
        List<byte[]> datas = corpus.datas;
        List<String> keys = corpus.keys;
        int iterations = corpus.iterations;
        List<KinesisEvent.KinesisEventRecord> inputs = new ArrayList<>(iterations * datas.size());
        for (int i = 0; i < iterations; i++) {
            for (int j = 0; j < datas.size(); j++) {
                inputs.add(eventRecord(datas.get(j), keys.get(j)));
            }
        }
        long users = 0;
        long bytes = 0;
        long t0 = System.nanoTime();
        for (KinesisEvent.KinesisEventRecord in : inputs) {
            for (UserRecord u : RecordDeaggregator.deaggregate(in)) {
                users++;
                bytes += u.getData().remaining();
            }
        }
        return AdapterProtocol.benchAnswer(System.nanoTime() - t0, users, bytes);
    }

    public static void main(String[] args) throws Exception {
        AdapterProtocol.serve(Map.of(
                "hello", req -> hello(),
                "encode", req -> encode(req),
                "decode", req -> decode(req),
                "bench", req -> bench(req)));
    }
}
