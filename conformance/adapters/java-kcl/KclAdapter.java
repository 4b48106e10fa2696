// kpl conformance adapter (protocol v1, conformance/PROTOCOL.md) for KCL, the Kinesis Client
// Library (software.amazon.kinesis:amazon-kinesis-client, from Maven Central; version pinned
// in pom.xml next to this file).
//
// decode: software.amazon.kinesis.retrieval.AggregatorUtil#deaggregate(List<KinesisClientRecord>)
//         or, with a shard_range, #deaggregate(List, BigInteger startingHashKey, BigInteger endingHashKey)
// encode: not offered (KCL is a consumer).
// Reports exactly what KCL hands back; see README.md.

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;

import software.amazon.kinesis.retrieval.AggregatorUtil;
import software.amazon.kinesis.retrieval.KinesisClientRecord;

import java.math.BigInteger;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.time.Instant;
import java.util.ArrayList;
import java.util.Base64;
import java.util.Collections;
import java.util.List;
import java.util.Map;

public final class KclAdapter {
    private static final ObjectMapper JSON = AdapterProtocol.JSON;
    private static final AggregatorUtil AGGREGATOR_UTIL = new AggregatorUtil();
    // A realistic Kinesis sequence number and arrival time for the record handed to KCL.
    private static final String SEQUENCE_NUMBER =
            "49590338271490256608559692538361571095921575989136588898";
    private static final Instant ARRIVAL = Instant.parse("2018-12-17T22:10:50.987Z");

    private KclAdapter() {}

    /** protobuf-java's version: its jar has no pom.properties, but 4.x has RuntimeVersion. */
    private static String protobufVersion() {
        try {
            Class<?> v = Class.forName("com.google.protobuf.RuntimeVersion");
            String version = v.getField("MAJOR").get(null) + "." + v.getField("MINOR").get(null)
                    + "." + v.getField("PATCH").get(null);
            Object suffix = v.getField("SUFFIX").get(null);
            return suffix == null ? version : version + suffix;
        } catch (Exception e) {
            Package p = com.google.protobuf.Message.class.getPackage();
            String v = p == null ? null : p.getImplementationVersion();
            return v == null ? "?" : v;
        }
    }

    /** The record KCL's retrieval would build from a GetRecords result. */
    private static KinesisClientRecord kinesisRecord(byte[] data, String partitionKey) {
        return KinesisClientRecord.builder()
                .sequenceNumber(SEQUENCE_NUMBER)
                .approximateArrivalTimestamp(ARRIVAL)
                .partitionKey(partitionKey)
                .data(ByteBuffer.wrap(data))
                .build();
    }

    /** The bytes an application reading record.data() gets, without moving the record's buffer. */
    private static byte[] remaining(ByteBuffer data) {
        if (data == null) {
            return new byte[0];
        }
        ByteBuffer view = data.duplicate();
        byte[] out = new byte[view.remaining()];
        view.get(out);
        return out;
    }

    private static ObjectNode hello(JsonNode req) {
        ObjectNode o = JSON.createObjectNode();
        o.put("ok", true);
        o.put("name", "amazon-kinesis-client");
        o.put("version", AdapterProtocol.mavenVersion("software.amazon.kinesis", "amazon-kinesis-client"));
        o.put("language", "java");
        o.put("encode", false);
        o.put("decode", true);
        o.putArray("policies").add("kcl");
        o.put("shard_range", true);
        o.put("bench", true);
        o.put("verify_md5_optional", false);
        ObjectNode deps = o.putObject("deps");
        deps.put("protobuf-java", protobufVersion());
        deps.put("jackson-databind", AdapterProtocol.mavenVersion("com.fasterxml.jackson.core", "jackson-databind"));
        deps.put("jaxb-api", AdapterProtocol.mavenVersion("javax.xml.bind", "jaxb-api")); // "?" when left out
        deps.put("java", System.getProperty("java.version"));
        return o;
    }

    private static ObjectNode decode(JsonNode req) {
        JsonNode md5 = req.get("verify_md5");
        if (md5 != null && !md5.isNull() && !md5.asBoolean(true)) {
            return AdapterProtocol.error("KCL always verifies MD5");
        }
        String policy = AdapterProtocol.text(req, "policy");
        if (policy != null && !policy.equals("kcl")) {
            return AdapterProtocol.error("unsupported policy " + policy + " (only kcl)");
        }
        byte[] data = Base64.getDecoder().decode(AdapterProtocol.text(req, "data") == null ? "" : AdapterProtocol.text(req, "data"));
        String pk = AdapterProtocol.text(req, "partition_key");
        if (pk == null && AdapterProtocol.text(req, "partition_key_b64") != null) {
            // KinesisClientRecord carries the key as a String: the lossy UTF-8 form.
            pk = new String(Base64.getDecoder().decode(AdapterProtocol.text(req, "partition_key_b64")),
                    StandardCharsets.UTF_8);
        }
        List<KinesisClientRecord> in = Collections.singletonList(kinesisRecord(data, pk));
        JsonNode range = req.get("shard_range");
        List<KinesisClientRecord> users;
        if (range == null || range.isNull()) {
            users = AGGREGATOR_UTIL.deaggregate(in);
        } else {
            users = AGGREGATOR_UTIL.deaggregate(in,
                    new BigInteger(range.get("start").asText()),
                    new BigInteger(range.get("end").asText()));
        }
        ObjectNode o = JSON.createObjectNode();
        o.put("ok", true);
        ArrayNode records = o.putArray("records");
        for (KinesisClientRecord u : users) {
            ObjectNode r = records.addObject();
            r.put("partition_key", u.partitionKey());
            r.put("explicit_hash_key", u.explicitHashKey());
            r.put("data", Base64.getEncoder().encodeToString(remaining(u.data())));
            r.put("sub_sequence_number", u.subSequenceNumber());
            r.put("aggregated", u.aggregated());
        }
        return o;
    }

    private static ObjectNode bench(JsonNode req) throws Exception {
        // Untimed: load the corpus and build, for every iteration, the records KCL is handed
        // (fresh KinesisClientRecords over shared byte arrays, so no buffer is reused).
        AdapterProtocol.Corpus corpus = AdapterProtocol.corpus(req);
        List<byte[]> datas = corpus.datas;
        List<String> keys = corpus.keys;
        int iterations = corpus.iterations;
        List<List<KinesisClientRecord>> inputs = new ArrayList<>(iterations * datas.size());
        for (int i = 0; i < iterations; i++) {
            for (int j = 0; j < datas.size(); j++) {
                inputs.add(Collections.singletonList(kinesisRecord(datas.get(j), keys.get(j))));
            }
        }
        long users = 0;
        long bytes = 0;
        long t0 = System.nanoTime();
        for (List<KinesisClientRecord> in : inputs) {
            for (KinesisClientRecord u : AGGREGATOR_UTIL.deaggregate(in)) {
                users++;
                bytes += u.data().remaining();
            }
        }
        return AdapterProtocol.benchAnswer(System.nanoTime() - t0, users, bytes);
    }

    public static void main(String[] args) throws Exception {
        AdapterProtocol.serve(Map.of(
                "hello", req -> hello(req),
                "decode", req -> decode(req),
                "bench", req -> bench(req)));
    }
}
