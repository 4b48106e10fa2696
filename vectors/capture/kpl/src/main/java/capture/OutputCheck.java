package capture;

import com.fasterxml.jackson.databind.JsonNode;

import java.math.BigInteger;
import java.nio.charset.StandardCharsets;
import java.security.MessageDigest;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Base64;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * Checks that what KPL put for one request is its deterministic output, the one that depends
 * only on the records and the limits (format.md 2.6): per shard, the user records in the
 * Kinesis records, read in sequence-number order, are the shard's records in input order,
 * each Kinesis record holds exactly the records KPL's results say it holds, and every Kinesis
 * record of a shard but the last was closed by a limit (the count limit, KPL's size estimate,
 * or its trimming to the accurate size). A machine too slow for KPL's internal threads shows
 * up as an early cut or a reordering, and fails this check instead of giving wrong bytes.
 * Written from format.md's rules; it reads the aggregated format itself, so it depends on
 * nothing but the JDK.
 */
public final class OutputCheck {
    /** KPL's defaults for AggregationMaxSize and AggregationMaxCount. */
    public static final long DEFAULT_MAX_SIZE = 51_200, DEFAULT_MAX_COUNT = 4_294_967_295L;
    static final byte[] MAGIC = {(byte) 0xF3, (byte) 0x89, (byte) 0x9A, (byte) 0xC2};

    /** One user record: partition key and explicit hash key as UTF-8 bytes (ehk null if absent). */
    record User(byte[] pk, byte[] ehk, byte[] data) {
        boolean same(User o) {
            return Arrays.equals(pk, o.pk) && Arrays.equals(ehk, o.ehk) && Arrays.equals(data, o.data);
        }
    }

    /** One Kinesis record KPL put: where it was stored, and its partition key and data. */
    public record Put(String shardId, String sequenceNumber, String partitionKey, byte[] data) {}

    private OutputCheck() {}

    /**
     * null when the output is KPL's deterministic one, else what is wrong.
     *
     * @param records  the request's user records ({partition_key, explicit_hash_key?, data base64}), in order
     * @param seqOf    for each of them, the sequence number of the Kinesis record KPL says holds it
     * @param puts     every Kinesis record KPL put for them
     * @param maxSize  AggregationMaxSize (null: KPL's default)
     * @param maxCount AggregationMaxCount (null: KPL's default)
     */
    public static String check(JsonNode records, List<String> seqOf, List<Put> puts, Long maxSize, Long maxCount) {
        long size = maxSize == null ? DEFAULT_MAX_SIZE : maxSize;
        long count = maxCount == null ? DEFAULT_MAX_COUNT : maxCount;
        List<User> users = new ArrayList<>();
        for (JsonNode r : records) users.add(user(r));
        if (seqOf.size() != users.size()) return seqOf.size() + " results for " + users.size() + " user records";

        Map<String, List<Integer>> members = new HashMap<>();   // sequence number -> input indices, in input order
        for (int i = 0; i < seqOf.size(); i++) members.computeIfAbsent(seqOf.get(i), k -> new ArrayList<>()).add(i);
        Map<String, List<Put>> byShard = new LinkedHashMap<>();
        for (Put p : puts) byShard.computeIfAbsent(p.shardId(), k -> new ArrayList<>()).add(p);

        Set<Integer> seen = new LinkedHashSet<>();
        for (Map.Entry<String, List<Put>> shard : byShard.entrySet()) {
            List<Put> ps = shard.getValue();
            ps.sort((a, b) -> new BigInteger(a.sequenceNumber()).compareTo(new BigInteger(b.sequenceNumber())));
            int last = -1;
            for (int k = 0; k < ps.size(); k++) {
                Put p = ps.get(k);
                List<Integer> idx = members.get(p.sequenceNumber());
                if (idx == null) return "Kinesis record " + p.sequenceNumber() + " holds none of the request's records";
                String where = "Kinesis record " + p.sequenceNumber() + " on " + shard.getKey();
                if (idx.get(0) < last) return where + " starts with user record " + idx.get(0) + ", after user record " + last + " (out of input order)";
                last = idx.get(idx.size() - 1);
                List<User> want = new ArrayList<>();
                for (int i : idx) want.add(users.get(i));
                String content = idx.size() == 1
                        ? raw(p, want.get(0))
                        : aggregate(p, want);
                if (content != null) return where + ": " + content;
                if (k + 1 < ps.size()) {
                    User next = users.get(members.get(ps.get(k + 1).sequenceNumber()).get(0));
                    if (!closedByLimit(want, next, size, count))
                        return where + " (" + want.size() + " user records, " + accurateSize(want)
                                + " bytes) was closed before any limit (max_size " + size + ", max_count " + count + ")";
                }
                seen.addAll(idx);
            }
        }
        if (seen.size() != users.size()) return (users.size() - seen.size()) + " user records in no Kinesis record KPL put";
        return null;
    }

    static User user(JsonNode r) {
        byte[] ehk = null;
        if (r.hasNonNull("explicit_hash_key"))   // KPL stores it in canonical decimal (format.md 2.3)
            ehk = new BigInteger(r.get("explicit_hash_key").asText().trim()).toString().getBytes(StandardCharsets.UTF_8);
        return new User(r.get("partition_key").asText().getBytes(StandardCharsets.UTF_8), ehk,
                Base64.getDecoder().decode(r.get("data").asText()));
    }

    /** A lone user record goes out raw, under its own key (format.md 2.4). */
    static String raw(Put p, User u) {
        if (!Arrays.equals(p.data(), u.data())) return "data is not the lone user record's";
        if (!Arrays.equals(p.partitionKey().getBytes(StandardCharsets.UTF_8), u.pk())) return "partition key is not the lone user record's";
        return null;
    }

    static String aggregate(Put p, List<User> want) {
        List<User> got;
        try {
            got = unpack(p.data());
        } catch (RuntimeException e) {
            return "not an aggregate of " + want.size() + " user records: " + e.getMessage();
        }
        if (got.size() != want.size()) return got.size() + " user records where KPL's results say " + want.size();
        for (int i = 0; i < got.size(); i++)
            if (!got.get(i).same(want.get(i))) return "user record " + i + " inside is not the input's (out of input order)";
        return null;
    }

    /**
     * True when an aggregate holding a, followed on its shard by next, ended at a limit: a
     * reached the count limit, or KPL's size estimate of a reached the size limit (then KPL
     * flushed all of a), or a and next together exceed the count or the accurate size limit
     * (then KPL's trim cut between them).
     */
    static boolean closedByLimit(List<User> a, User next, long maxSize, long maxCount) {
        if (a.size() >= maxCount || estimate(a) >= maxSize) return true;
        List<User> more = new ArrayList<>(a);
        more.add(next);
        return more.size() > maxCount || accurateSize(more) > maxSize;
    }

    /** KPL's size estimate (format.md 2.6). */
    static long estimate(List<User> us) {
        if (us.size() < 2) return accurateSize(us);
        long n = 0;
        Set<String> pks = new LinkedHashSet<>(), ehks = new LinkedHashSet<>();
        for (User u : us) {
            n += u.data().length + 5 + (u.ehk() == null ? 0 : 2);
            if (pks.add(new String(u.pk(), StandardCharsets.ISO_8859_1))) n += u.pk().length + 3;
            if (u.ehk() != null && ehks.add(new String(u.ehk(), StandardCharsets.ISO_8859_1))) n += u.ehk().length + 3;
        }
        return n;
    }

    /** The accurate size: the data for one record, else 20 + the protobuf's length (format.md 2.5). */
    static long accurateSize(List<User> us) {
        if (us.size() == 1) return us.get(0).data().length;
        Map<String, Integer> pks = new LinkedHashMap<>(), ehks = new LinkedHashMap<>();
        long n = 0;
        for (User u : us) {
            String pk = new String(u.pk(), StandardCharsets.ISO_8859_1);
            if (!pks.containsKey(pk)) {
                pks.put(pk, pks.size());
                n += field(u.pk().length);
            }
            if (u.ehk() != null) {
                String ehk = new String(u.ehk(), StandardCharsets.ISO_8859_1);
                if (!ehks.containsKey(ehk)) {
                    ehks.put(ehk, ehks.size());
                    n += field(u.ehk().length);
                }
            }
        }
        for (User u : us) {
            long rec = 1 + varintLen(pks.get(new String(u.pk(), StandardCharsets.ISO_8859_1)));
            if (u.ehk() != null) rec += 1 + varintLen(ehks.get(new String(u.ehk(), StandardCharsets.ISO_8859_1)));
            rec += field(u.data().length);
            n += field(rec);
        }
        return 20 + n;
    }

    /** Bytes of a length-delimited field with a one-byte key and a payload of len bytes. */
    static long field(long len) {
        return 1 + varintLen(len) + len;
    }

    static int varintLen(long v) {
        int n = 1;
        while ((v >>>= 7) != 0) n++;
        return n;
    }

    /** The user records of a KPL aggregate (magic, AggregatedRecord, MD5); throws when it is not one. */
    static List<User> unpack(byte[] d) {
        if (d.length < 20 || !Arrays.equals(Arrays.copyOf(d, 4), MAGIC)) throw new IllegalArgumentException("no magic");
        byte[] body = Arrays.copyOfRange(d, 4, d.length - 16);
        try {
            if (!Arrays.equals(MessageDigest.getInstance("MD5").digest(body), Arrays.copyOfRange(d, d.length - 16, d.length)))
                throw new IllegalArgumentException("MD5 mismatch");
        } catch (java.security.NoSuchAlgorithmException e) {
            throw new IllegalStateException(e);
        }
        List<byte[]> pks = new ArrayList<>(), ehks = new ArrayList<>();
        List<long[]> recs = new ArrayList<>();   // pk index, ehk index or -1, data offset, data length
        Reader top = new Reader(body, 0, body.length);
        while (top.more()) {
            long key = top.varint();
            if ((key & 7) != 2) throw new IllegalArgumentException("unexpected wire type at top level");
            int len = (int) top.varint(), at = top.pos;
            top.skip(len);
            if (key >>> 3 == 1) pks.add(Arrays.copyOfRange(body, at, at + len));
            else if (key >>> 3 == 2) ehks.add(Arrays.copyOfRange(body, at, at + len));
            else if (key >>> 3 == 3) {
                long[] rec = {-1, -1, -1, 0};
                Reader r = new Reader(body, at, at + len);
                while (r.more()) {
                    long k = r.varint();
                    if (k == 0x08) rec[0] = r.varint();
                    else if (k == 0x10) rec[1] = r.varint();
                    else if (k == 0x1A) { rec[3] = r.varint(); rec[2] = r.pos; r.skip((int) rec[3]); }
                    else if ((k & 7) == 2) r.skip((int) r.varint());
                    else throw new IllegalArgumentException("unexpected field in a record");
                }
                recs.add(rec);
            }
        }
        List<User> out = new ArrayList<>();
        for (long[] rec : recs) {
            if (rec[0] < 0 || rec[0] >= pks.size() || rec[2] < 0 || rec[1] >= ehks.size())
                throw new IllegalArgumentException("bad record");
            out.add(new User(pks.get((int) rec[0]), rec[1] < 0 ? null : ehks.get((int) rec[1]),
                    Arrays.copyOfRange(body, (int) rec[2], (int) (rec[2] + rec[3]))));
        }
        return out;
    }

    static final class Reader {
        final byte[] b;
        int pos;
        final int end;

        Reader(byte[] b, int pos, int end) {
            this.b = b;
            this.pos = pos;
            this.end = end;
        }

        boolean more() {
            return pos < end;
        }

        long varint() {
            long v = 0;
            for (int shift = 0; shift < 64; shift += 7) {
                if (pos >= end) throw new IllegalArgumentException("truncated varint");
                byte x = b[pos++];
                v |= (long) (x & 0x7F) << shift;
                if (x >= 0) return v;
            }
            throw new IllegalArgumentException("varint too long");
        }

        void skip(int len) {
            if (len < 0 || len > end - pos) throw new IllegalArgumentException("truncated field");
            pos += len;
        }
    }
}
