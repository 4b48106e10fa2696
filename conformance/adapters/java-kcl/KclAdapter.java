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

import java.io.BufferedReader;
import java.io.BufferedWriter;
import java.io.InputStream;
import java.io.InputStreamReader;
import java.io.OutputStreamWriter;
import java.io.Writer;
import java.math.BigInteger;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Paths;
import java.time.Instant;
import java.util.ArrayList;
import java.util.Base64;
import java.util.Collections;
import java.util.List;
import java.util.Properties;

public final class KclAdapter {
    private static final ObjectMapper JSON = new ObjectMapper();
    private static final AggregatorUtil AGGREGATOR_UTIL = new AggregatorUtil();
    // A realistic Kinesis sequence number and arrival time for the record handed to KCL.
    private static final String SEQUENCE_NUMBER =
            "49590338271490256608559692538361571095921575989136588898";
    private static final Instant ARRIVAL = Instant.parse("2018-12-17T22:10:50.987Z");

    private KclAdapter() {}

    /** Version of a Maven artifact on the classpath, from the pom.properties its jar carries. */
    private static String mavenVersion(String group, String artifact) {
        String path = "META-INF/maven/" + group + "/" + artifact + "/pom.properties";
        try (InputStream in = KclAdapter.class.getClassLoader().getResourceAsStream(path)) {
            if (in == null) {
                return "?";
            }
            Properties p = new Properties();
            p.load(in);
            return p.getProperty("version", "?");
        } catch (Exception e) {
            return "?";
        }
    }

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

    private static String oneLine(Throwable e) {
        String msg = e.getClass().getName() + (e.getMessage() == null ? "" : ": " + e.getMessage());
        return msg.replace('\r', ' ').replace('\n', ' ');
    }

    private static ObjectNode error(String message) {
        ObjectNode o = JSON.createObjectNode();
        o.put("ok", false);
        o.put("error", message);
        return o;
    }

    private static String text(JsonNode req, String field) {
        JsonNode n = req.get(field);
        return n == null || n.isNull() ? null : n.asText();
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
        o.put("version", mavenVersion("software.amazon.kinesis", "amazon-kinesis-client"));
        o.put("language", "java");
        o.put("encode", false);
        o.put("decode", true);
        o.putArray("policies").add("kcl");
        o.put("shard_range", true);
        o.put("bench", true);
        o.put("verify_md5_optional", false);
        ObjectNode deps = o.putObject("deps");
        deps.put("protobuf-java", protobufVersion());
        deps.put("jackson-databind", mavenVersion("com.fasterxml.jackson.core", "jackson-databind"));
        deps.put("jaxb-api", mavenVersion("javax.xml.bind", "jaxb-api")); // "?" when left out
        deps.put("java", System.getProperty("java.version"));
        return o;
    }

    private static ObjectNode decode(JsonNode req) {
        JsonNode md5 = req.get("verify_md5");
        if (md5 != null && !md5.isNull() && !md5.asBoolean(true)) {
            return error("KCL always verifies MD5");
        }
        String policy = text(req, "policy");
        if (policy != null && !policy.equals("kcl")) {
            return error("unsupported policy " + policy + " (only kcl)");
        }
        byte[] data = Base64.getDecoder().decode(text(req, "data") == null ? "" : text(req, "data"));
        String pk = text(req, "partition_key");
        if (pk == null && text(req, "partition_key_b64") != null) {
            // KinesisClientRecord carries the key as a String: the lossy UTF-8 form.
            pk = new String(Base64.getDecoder().decode(text(req, "partition_key_b64")),
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
        List<byte[]> datas = new ArrayList<>();
        List<String> keys = new ArrayList<>();
        try (BufferedReader r = Files.newBufferedReader(Paths.get(text(req, "file")),
                StandardCharsets.UTF_8)) {
            for (String line; (line = r.readLine()) != null; ) {
                if (line.isBlank()) {
                    continue;
                }
                JsonNode rec = JSON.readTree(line);
                datas.add(Base64.getDecoder().decode(text(rec, "data")));
                String pk = text(rec, "partition_key");
                keys.add(pk == null ? "a" : pk);
            }
        }
        JsonNode it = req.get("iterations");
        int iterations = it == null || it.isNull() ? 1 : it.asInt(1);
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
        long t1 = System.nanoTime();
        ObjectNode o = JSON.createObjectNode();
        o.put("ok", true);
        o.put("seconds", (t1 - t0) / 1e9);
        o.put("user_records", users);
        o.put("user_bytes", bytes);
        return o;
    }

    public static void main(String[] args) throws Exception {
        BufferedReader in = new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8));
        Writer out = new BufferedWriter(new OutputStreamWriter(System.out, StandardCharsets.UTF_8));
        for (String line; (line = in.readLine()) != null; ) {
            if (line.isBlank()) {
                continue;
            }
            ObjectNode answer;
            try {
                JsonNode req = JSON.readTree(line);
                String op = text(req, "op");
                if ("hello".equals(op)) {
                    answer = hello(req);
                } else if ("decode".equals(op)) {
                    answer = decode(req);
                } else if ("bench".equals(op)) {
                    answer = bench(req);
                } else {
                    answer = error("unsupported op " + op);
                }
            } catch (Throwable e) { // KCL threw: an error is a result
                e.printStackTrace(); // stderr, kept by the runner for diagnosis
                answer = error(oneLine(e));
            }
            out.write(JSON.writeValueAsString(answer));
            out.write('\n');
            out.flush();
        }
    }
}
