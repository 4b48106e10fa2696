import capture.KplHarness;
import capture.OutputCheck;
import com.amazonaws.services.kinesis.producer.KinesisProducer;
import com.amazonaws.services.kinesis.producer.KinesisProducerConfiguration;
import com.amazonaws.services.kinesis.producer.UserRecordResult;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import com.google.common.util.concurrent.Futures;
import com.google.common.util.concurrent.ListenableFuture;

import java.io.BufferedReader;
import java.io.ByteArrayOutputStream;
import java.io.FileDescriptor;
import java.io.FileOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.InputStreamReader;
import java.io.OutputStream;
import java.io.PrintStream;
import java.io.RandomAccessFile;
import java.math.BigInteger;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Base64;
import java.util.Comparator;
import java.util.HashMap;
import java.util.HashSet;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.Set;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

import static capture.KplHarness.M;

/**
 * The real Java KPL behind the conformance protocol (encode only). run.sh starts kinesis-mock
 * and proxy.js (vectors/capture/kpl) in a private network namespace, then this. Each encode
 * request goes to a fresh stream, as the capture harness does: warm-up record, KPL's shard
 * map ready, user records added one at a time (each once KPL has taken the previous one in),
 * flush; the answer is what KPL put, read from proxy.js's log of the PutRecords requests, once
 * OutputCheck has found it to be KPL's deterministic output (else the request is tried again
 * on a fresh stream, and after TRIES an error says so: never bytes that timing decided).
 * Usage: KplAdapter <kinesisPort (proxy.js, TLS)> <plainPort (kinesis-mock)> <proxy.jsonl> <kpl.log>
 */
public class KplAdapter {
    static final int CACHE = 4;               // KPL instances kept, one per distinct limits
    static final long WAIT_MS = 60_000;       // for each of: warm-up put, shard map, user puts
    static final int TRIES = 3;               // fresh streams tried before "not deterministic"

    static PrintStream proto;                 // the real standard output: protocol lines only
    static PrintStream diag;                  // the real standard error
    static KplLog kplLog;
    static ProxyLog proxyLog;
    static KplHarness mock;
    static int kinesisPort;
    static int streams;
    static final LinkedHashMap<String, KinesisProducer> producers = new LinkedHashMap<>(16, 0.75f, true);

    public static void main(String[] args) throws Exception {
        proto = new PrintStream(new FileOutputStream(FileDescriptor.out), true, StandardCharsets.UTF_8);
        diag = System.err;
        kplLog = new KplLog(new FileOutputStream(args[3], true));
        // KPL and the AWS SDK log through slf4j-simple to System.err, and some libraries print to
        // System.out: both go to the KPL log file, never to the protocol channel.
        PrintStream logStream = new PrintStream(kplLog, true, StandardCharsets.UTF_8);
        System.setErr(logStream);
        System.setOut(logStream);
        kinesisPort = Integer.parseInt(args[0]);
        mock = new KplHarness(Integer.parseInt(args[1]));
        proxyLog = new ProxyLog(args[2]);
        Runtime.getRuntime().addShutdownHook(new Thread(KplAdapter::destroyAll));

        BufferedReader in = new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8));
        String line;
        while ((line = in.readLine()) != null) {
            if (line.isBlank()) continue;
            ObjectNode answer;
            try {
                JsonNode req = M.readTree(line);
                String op = req.path("op").asText();
                if (op.equals("hello")) answer = hello();
                else if (op.equals("encode")) answer = encode(req);
                else answer = error("unsupported op " + op);
            } catch (Throwable t) {
                t.printStackTrace(diag);
                t.printStackTrace(System.err);
                answer = error("adapter: " + t);
            }
            proto.println(M.writeValueAsString(answer));
        }
        destroyAll();
        System.exit(0);
    }

    static ObjectNode error(String message) {
        ObjectNode o = M.createObjectNode();
        o.put("ok", false);
        o.put("error", message.replaceAll("\\s+", " ").trim());
        return o;
    }

    static ObjectNode hello() throws IOException {
        ObjectNode o = M.createObjectNode();
        o.put("ok", true);
        o.put("name", "amazon-kinesis-producer");
        o.put("version", kplVersion());
        o.put("language", "java");
        o.put("encode", true);
        o.put("decode", false);
        o.putArray("policies");
        o.put("bench", false);
        o.put("shard_layout", true);
        return o;
    }

    /** The version of the KPL jar on the classpath (its Maven pom.properties). */
    static String kplVersion() throws IOException {
        try (InputStream s = KinesisProducer.class.getResourceAsStream(
                "/META-INF/maven/com.amazonaws/amazon-kinesis-producer/pom.properties")) {
            if (s == null) return "?";
            Properties p = new Properties();
            p.load(s);
            return p.getProperty("version", "?");
        }
    }

    /** A KPL instance with these aggregation limits (null: KPL's default), reused across requests. */
    static KinesisProducer producer(Long maxSize, Long maxCount) {
        String key = maxSize + "/" + maxCount;
        KinesisProducer kp = producers.get(key);
        if (kp != null) return kp;
        // Limits KPL refuses are its own error (IllegalArgumentException), answered as such.
        KinesisProducerConfiguration cfg = KplHarness.config(kinesisPort);
        if (maxSize != null) cfg.setAggregationMaxSize(maxSize);
        if (maxCount != null) cfg.setAggregationMaxCount(maxCount);
        if (producers.size() >= CACHE) {
            Iterator<Map.Entry<String, KinesisProducer>> it = producers.entrySet().iterator();
            Map.Entry<String, KinesisProducer> eldest = it.next();
            it.remove();
            eldest.getValue().destroy();
        }
        kp = new KinesisProducer(cfg);
        producers.put(key, kp);
        return kp;
    }

    static synchronized void destroyAll() {
        for (KinesisProducer kp : producers.values()) {
            try {
                kp.destroy();
            } catch (Throwable ignored) {
            }
        }
        producers.clear();
    }

    /** Flushes repeatedly (one flush emits one prefix of an aggregate) until every put is done. */
    static void flushUntilDone(KinesisProducer kp, List<ListenableFuture<UserRecordResult>> fs) throws Exception {
        ListenableFuture<List<UserRecordResult>> all = Futures.successfulAsList(fs);
        long deadline = System.currentTimeMillis() + WAIT_MS;
        while (true) {
            kp.flush();
            try {
                all.get(25, TimeUnit.MILLISECONDS);
                return;
            } catch (TimeoutException e) {
                if (System.currentTimeMillis() > deadline)
                    throw new RuntimeException("KPL did not complete " + fs.size() + " put(s) within " + WAIT_MS + " ms");
            }
        }
    }

    static Long limit(JsonNode limits, String name) {
        JsonNode v = limits.get(name);
        return v == null || v.isNull() ? null : v.asLong();
    }

    static ObjectNode encode(JsonNode req) throws Exception {
        JsonNode records = req.path("records");
        JsonNode limits = req.path("limits");
        JsonNode layout = req.get("shards");
        boolean hasLayout = layout != null && !layout.isNull();
        if (hasLayout && (!layout.isArray() || layout.size() == 0))
            return error("adapter: shards must be a non-empty array");
        int shardCount = hasLayout ? layout.size() : 1;
        // max_record_size has no KPL setting (its only limit is the fixed 1 MiB data check).
        Long maxSize = limit(limits, "max_size"), maxCount = limit(limits, "max_count");
        KinesisProducer kp;
        try {
            kp = producer(maxSize, maxCount);
        } catch (IllegalArgumentException e) {
            return error("KinesisProducerConfiguration: " + e.getMessage());
        }

        String problem = null;
        for (int t = 1; t <= TRIES; t++) {
            try {
                return encodeOnce(kp, records, layout, shardCount, maxSize, maxCount);
            } catch (NotDeterministic e) {
                problem = e.getMessage();
                diag.println("java-kpl: try " + t + " of " + TRIES + ": " + problem);
            }
        }
        return error("KPL output not deterministic after " + TRIES + " tries on fresh streams: " + problem);
    }

    /** KPL's output was cut or reordered by timing (OutputCheck): the request is tried again. */
    static final class NotDeterministic extends Exception {
        NotDeterministic(String message) {
            super(message);
        }
    }

    /** One try of an encode request, on a fresh stream. */
    static ObjectNode encodeOnce(KinesisProducer kp, JsonNode records, JsonNode layout, int shardCount,
                                 Long maxSize, Long maxCount) throws Exception {
        boolean hasLayout = layout != null && !layout.isNull();
        String stream = "kpl-adapter-" + (++streams);
        mock.createStream(stream, shardCount);
        if (hasLayout) {
            String problem = compareLayout(layout, openShards(stream));
            if (problem != null) {
                // kinesis-mock's even split differs from AWS's by one (see local-kinesis.md):
                // build the requested ranges by splitting a one-shard stream instead.
                stream = stream + "-split";
                problem = buildBySplitting(stream, layout);
                if (problem != null) return error("adapter: cannot give the stream the requested shard layout: " + problem);
            }
        }

        // Warm-up: creates the stream's pipeline in KPL, whose shard map update starts then.
        List<ListenableFuture<UserRecordResult>> warm = new ArrayList<>();
        warm.add(KplHarness.addWarmup(kp, stream));
        flushUntilDone(kp, warm);
        int found = kplLog.awaitShardMap(stream, WAIT_MS);
        if (found != shardCount)
            return error("adapter: KPL's shard map for " + stream + " has " + found + " shards, expected " + shardCount);
        proxyLog.skipToEnd();   // everything logged so far predates the user records

        List<ListenableFuture<UserRecordResult>> fs = new ArrayList<>();
        String rejected = null;
        try {
            KplHarness.addInOrder(kp, stream, records, WAIT_MS, fs);
        } catch (IllegalArgumentException e) {
            rejected = "IllegalArgumentException: " + e.getMessage() + " (user record " + fs.size() + ")";
        }
        flushUntilDone(kp, fs);   // records added before a rejected one are put all the same
        if (rejected != null) return error(rejected);

        Set<String> userSeq = new HashSet<>();
        List<String> seqOf = new ArrayList<>();
        for (ListenableFuture<UserRecordResult> f : fs) {
            UserRecordResult u = f.get();
            if (!u.isSuccessful()) {
                String why = u.getAttempts().isEmpty() ? "no attempt" : u.getAttempts().get(u.getAttempts().size() - 1).getErrorMessage();
                return error("KPL failed to put a user record: " + why);
            }
            userSeq.add(u.getSequenceNumber());
            seqOf.add(u.getSequenceNumber());
        }

        ArrayNode out = M.createArrayNode();
        List<OutputCheck.Put> puts = new ArrayList<>();
        Set<String> putSeq = new HashSet<>();
        for (JsonNode e : proxyLog.readNew()) {
            String target = e.path("target").asText("");
            boolean many = target.endsWith(".PutRecords");
            if (!many && !target.endsWith(".PutRecord")) continue;
            JsonNode rq = M.readTree(Base64.getDecoder().decode(e.get("body_b64").asText()));
            if (!stream.equals(rq.path("StreamName").asText(null))
                    && !rq.path("StreamARN").asText("").endsWith("/" + stream)) continue;
            if (e.path("status").asInt() != 200) continue;   // KPL retries; the retry is logged later
            JsonNode rs = M.readTree(Base64.getDecoder().decode(e.get("resp_b64").asText()));
            JsonNode rqs = many ? rq.get("Records") : M.createArrayNode().add(rq);
            JsonNode rss = many ? rs.get("Records") : M.createArrayNode().add(rs);
            for (int i = 0; i < rqs.size(); i++) {
                JsonNode r = rqs.get(i), s = rss.get(i);
                if (!s.hasNonNull("SequenceNumber")) continue;   // failed, retried later
                ObjectNode k = out.addObject();
                k.put("partition_key", r.get("PartitionKey").asText());
                if (r.hasNonNull("ExplicitHashKey")) k.put("explicit_hash_key", r.get("ExplicitHashKey").asText());
                else k.putNull("explicit_hash_key");
                k.put("data", r.path("Data").asText(""));
                k.put("shard_id", s.path("ShardId").asText());
                k.put("sequence_number", s.get("SequenceNumber").asText());
                putSeq.add(s.get("SequenceNumber").asText());
                puts.add(new OutputCheck.Put(s.path("ShardId").asText(), s.get("SequenceNumber").asText(),
                        r.get("PartitionKey").asText(), Base64.getDecoder().decode(r.path("Data").asText(""))));
            }
        }
        // Every Kinesis record logged is one a user record landed in, and every user record's
        // Kinesis record was logged: nothing from elsewhere mixed in, nothing missed.
        if (!putSeq.equals(userSeq))
            return error("adapter: proxy log (" + putSeq.size() + " Kinesis records) disagrees with KPL's results ("
                    + userSeq.size() + " sequence numbers)");
        // The map must have stayed READY: a second update (KPL invalidates its map when a put
        // lands on an unexpected shard) would have sent records raw meanwhile.
        int updates = kplLog.updatesOf(stream);
        if (updates != 1)
            return error("adapter: KPL updated its shard map for " + stream + " " + updates + " times during the request");
        String problem = OutputCheck.check(records, seqOf, puts, maxSize, maxCount);
        if (problem != null) throw new NotDeterministic(stream + ": " + problem);
        ObjectNode o = M.createObjectNode();
        o.put("ok", true);
        o.put("stream", stream);
        o.set("kinesis_records", out);
        return o;
    }

    /** The open shards, as KPL's shard map asks for them (ShardFilter AT_LATEST). */
    static JsonNode openShards(String stream) throws Exception {
        ObjectNode ls = M.createObjectNode();
        ls.put("StreamName", stream);
        ls.putObject("ShardFilter").put("Type", "AT_LATEST");
        ArrayNode open = M.createArrayNode();
        for (JsonNode s : mock.call("ListShards", ls).get("Shards"))
            if (s.path("SequenceNumberRange").path("EndingSequenceNumber").isNull()
                    || s.path("SequenceNumberRange").path("EndingSequenceNumber").isMissingNode()) open.add(s);
        return open;
    }

    /**
     * Creates stream with one shard and splits it at each requested starting hash key, in
     * order; null when its open shards then have exactly the requested ranges.
     */
    static String buildBySplitting(String stream, JsonNode layout) throws Exception {
        List<BigInteger> starts = new ArrayList<>();
        for (JsonNode s : layout) starts.add(new BigInteger(s.path("starting_hash_key").asText()));
        starts.sort(null);
        mock.createStream(stream, 1);
        for (BigInteger start : starts) {
            if (start.signum() == 0) continue;
            String target = null;
            for (JsonNode s : openShards(stream)) {
                BigInteger lo = new BigInteger(s.path("HashKeyRange").path("StartingHashKey").asText());
                BigInteger hi = new BigInteger(s.path("HashKeyRange").path("EndingHashKey").asText());
                if (lo.compareTo(start) < 0 && start.compareTo(hi) <= 0) target = s.path("ShardId").asText();
            }
            if (target == null) return "no open shard to split at " + start;
            ObjectNode sp = M.createObjectNode();
            sp.put("StreamName", stream);
            sp.put("ShardToSplit", target);
            sp.put("NewStartingHashKey", start.toString());
            mock.call("SplitShard", sp);
            mock.awaitActive(stream);
        }
        return compareLayout(layout, openShards(stream));
    }

    /** null when ListShards gives exactly the requested ranges, else what differs. */
    static String compareLayout(JsonNode layout, JsonNode shards) {
        List<BigInteger[]> want = new ArrayList<>(), got = new ArrayList<>();
        for (JsonNode s : layout)
            want.add(new BigInteger[]{new BigInteger(s.path("starting_hash_key").asText()), new BigInteger(s.path("ending_hash_key").asText())});
        for (JsonNode s : shards)
            got.add(new BigInteger[]{new BigInteger(s.path("HashKeyRange").path("StartingHashKey").asText()),
                    new BigInteger(s.path("HashKeyRange").path("EndingHashKey").asText())});
        Comparator<BigInteger[]> byStart = Comparator.comparing(a -> a[0]);
        want.sort(byStart);
        got.sort(byStart);
        boolean same = want.size() == got.size();
        for (int i = 0; same && i < want.size(); i++)
            same = want.get(i)[0].equals(got.get(i)[0]) && want.get(i)[1].equals(got.get(i)[1]);
        if (same) return null;
        StringBuilder b = new StringBuilder("ListShards gives");
        for (BigInteger[] r : got) b.append(" [").append(r[0]).append(", ").append(r[1]).append("]");
        b.append("; requested");
        for (BigInteger[] r : want) b.append(" [").append(r[0]).append(", ").append(r[1]).append("]");
        return b.toString();
    }

    /**
     * Where KPL's log lines (slf4j-simple on System.err, including the native process's lines
     * KPL relays) go: a file, and a watch for "Successfully updated shard map for stream", which
     * KPL's native ShardMap logs right after it becomes READY.
     */
    static final class KplLog extends OutputStream {
        static final Pattern READY = Pattern.compile("Successfully updated shard map for stream \"([^\"]+)\".*?[Ff]ound (\\d+) shards");
        static final Pattern UPDATING = Pattern.compile("Updating shard map for stream \"([^\"]+)\"");
        final OutputStream file;
        final ByteArrayOutputStream line = new ByteArrayOutputStream();
        final Map<String, Integer> ready = new HashMap<>();
        final Map<String, Integer> updates = new HashMap<>();

        KplLog(OutputStream file) {
            this.file = file;
        }

        @Override
        public synchronized void write(int b) throws IOException {
            file.write(b);
            if (b == '\n') {
                String text = line.toString(StandardCharsets.UTF_8);
                Matcher u = UPDATING.matcher(text);
                if (u.find()) updates.merge(u.group(1), 1, Integer::sum);
                Matcher m = READY.matcher(text);
                if (m.find()) {
                    ready.put(m.group(1), Integer.parseInt(m.group(2)));
                    notifyAll();
                }
                line.reset();
            } else {
                line.write(b);
            }
        }

        @Override
        public synchronized void write(byte[] b, int off, int len) throws IOException {
            for (int i = 0; i < len; i++) write(b[off + i]);
        }

        @Override
        public synchronized void flush() throws IOException {
            file.flush();
        }

        /** Waits until KPL's shard map for stream is ready; the number of shards it found. */
        synchronized int awaitShardMap(String stream, long timeoutMs) throws InterruptedException {
            long deadline = System.currentTimeMillis() + timeoutMs;
            while (!ready.containsKey(stream)) {
                long left = deadline - System.currentTimeMillis();
                if (left <= 0) throw new RuntimeException("KPL's shard map for " + stream + " was not ready within " + timeoutMs + " ms");
                wait(left);
            }
            return ready.remove(stream);
        }

        /** How many times KPL started updating its shard map for stream (then forgets it). */
        synchronized int updatesOf(String stream) {
            Integer n = updates.remove(stream);
            return n == null ? 0 : n;
        }
    }

    /** proxy.js's log (JSON lines), read incrementally; entries ordered by arrival at the proxy. */
    static final class ProxyLog {
        final RandomAccessFile f;   // kept open: proxy.js created it before listening
        long pos;

        ProxyLog(String path) throws IOException {
            this.f = new RandomAccessFile(path, "r");
        }

        List<JsonNode> readNew() throws IOException {
            List<JsonNode> entries = new ArrayList<>();
            long end = f.length();
            if (end <= pos) return entries;
            byte[] buf = new byte[(int) (end - pos)];
            f.seek(pos);
            f.readFully(buf);
            int last = -1;
            for (int i = buf.length - 1; i >= 0; i--) if (buf[i] == '\n') { last = i; break; }
            if (last < 0) return entries;   // only a partial line so far
            pos += last + 1;
            for (String l : new String(buf, 0, last + 1, StandardCharsets.UTF_8).split("\n"))
                if (!l.isBlank()) entries.add(M.readTree(l));
            entries.sort(Comparator.comparingLong(e -> e.path("n").asLong()));
            return entries;
        }

        void skipToEnd() throws IOException {
            readNew();
        }
    }
}
