// The kpl adapter protocol (conformance/PROTOCOL.md) for Java adapters: the request loop and
// the small helpers every adapter needs. Compiled into each Java adapter (its pom.xml lists
// this file next to the adapter's own), using whichever Jackson the wrapped library brings.

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;

import java.io.BufferedReader;
import java.io.BufferedWriter;
import java.io.InputStream;
import java.io.InputStreamReader;
import java.io.OutputStreamWriter;
import java.io.Writer;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Paths;
import java.util.ArrayList;
import java.util.Base64;
import java.util.List;
import java.util.Map;
import java.util.Properties;

final class AdapterProtocol {
    static final ObjectMapper JSON = new ObjectMapper();

    private AdapterProtocol() {}

    /** One operation of the protocol: a request in, its answer out. */
    interface Operation {
        ObjectNode answer(JsonNode request) throws Exception;
    }

    /** The `bench` corpus: one Kinesis record per line, loaded before any timing. */
    static final class Corpus {
        final List<byte[]> datas = new ArrayList<>();
        final List<String> keys = new ArrayList<>();
        int iterations = 1;
    }

    /** Version of a Maven artifact on the classpath, from the pom.properties its jar carries. */
    static String mavenVersion(String group, String artifact) {
        String path = "META-INF/maven/" + group + "/" + artifact + "/pom.properties";
        try (InputStream in = AdapterProtocol.class.getClassLoader().getResourceAsStream(path)) {
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

    /** An exception as one line: class and message. */
    static String oneLine(Throwable e) {
        String msg = e.getClass().getName() + (e.getMessage() == null ? "" : ": " + e.getMessage());
        return msg.replace('\r', ' ').replace('\n', ' ');
    }

    static ObjectNode error(String message) {
        ObjectNode o = JSON.createObjectNode();
        o.put("ok", false);
        o.put("error", message);
        return o;
    }

    /** A string field, null when absent or null. */
    static String text(JsonNode req, String field) {
        JsonNode n = req.get(field);
        return n == null || n.isNull() ? null : n.asText();
    }

    /** The `bench` request's corpus file and iteration count. */
    static Corpus corpus(JsonNode req) throws Exception {
        Corpus c = new Corpus();
        try (BufferedReader r = Files.newBufferedReader(Paths.get(text(req, "file")),
                StandardCharsets.UTF_8)) {
            for (String line; (line = r.readLine()) != null; ) {
                if (line.trim().isEmpty()) {
                    continue;
                }
                JsonNode rec = JSON.readTree(line);
                c.datas.add(Base64.getDecoder().decode(text(rec, "data")));
                String pk = text(rec, "partition_key");
                c.keys.add(pk == null ? "a" : pk);
            }
        }
        JsonNode it = req.get("iterations");
        c.iterations = it == null || it.isNull() ? 1 : it.asInt(1);
        return c;
    }

    /** The `bench` answer. */
    static ObjectNode benchAnswer(long nanos, long userRecords, long userBytes) {
        ObjectNode o = JSON.createObjectNode();
        o.put("ok", true);
        o.put("seconds", nanos / 1e9);
        o.put("user_records", userRecords);
        o.put("user_bytes", userBytes);
        return o;
    }

    /**
     * Answers requests from standard input, one JSON line each, until it closes. An exception
     * from the wrapped library is a result (`ok: false`), its stack trace goes to standard
     * error for diagnosis; standard output carries the answers only.
     */
    static void serve(Map<String, Operation> operations) throws Exception {
        BufferedReader in = new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8));
        Writer out = new BufferedWriter(new OutputStreamWriter(System.out, StandardCharsets.UTF_8));
        for (String line; (line = in.readLine()) != null; ) {
            if (line.trim().isEmpty()) {
                continue;
            }
            ObjectNode answer;
            try {
                JsonNode req = JSON.readTree(line);
                String op = text(req, "op");
                Operation operation = op == null ? null : operations.get(op);
                answer = operation == null ? error("unsupported op " + op) : operation.answer(req);
            } catch (Throwable e) {
                e.printStackTrace();
                answer = error(oneLine(e));
            }
            out.write(JSON.writeValueAsString(answer));
            out.write('\n');
            out.flush();
        }
    }
}
