package capture;

import com.amazonaws.services.kinesis.producer.KinesisProducer;
import com.amazonaws.services.kinesis.producer.KinesisProducerConfiguration;
import com.amazonaws.services.kinesis.producer.UserRecordResult;
import com.google.common.util.concurrent.FutureCallback;
import com.google.common.util.concurrent.Futures;
import com.google.common.util.concurrent.ListenableFuture;
import com.google.common.util.concurrent.MoreExecutors;

import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.util.Map;
import java.util.Random;
import java.util.TreeMap;
import java.util.concurrent.atomic.AtomicLong;

/**
 * The real Java KPL fed as a user would: every line of standard input a user record with a
 * random partition key, added as fast as addUserRecord returns (KPL has no backpressure), with
 * KPL's default settings except the harness's endpoints and credentials. Prints how many
 * were stored, how many failed and why, and the time. For benches/e2e/kpl-java-slow-stream.sh.
 * Usage: Flood <kinesisPort (proxy.js, TLS)> <plainPort (kinesis-mock)> <stream> <shards>
 */
public class Flood {
    public static void main(String[] args) throws Exception {
        int kinesisPort = Integer.parseInt(args[0]);
        KplHarness mock = new KplHarness(Integer.parseInt(args[1]));
        String stream = args[2];
        mock.createStream(stream, Integer.parseInt(args[3]));
        KinesisProducerConfiguration cfg = KplHarness.config(kinesisPort)
                .setRecordMaxBufferedTime(100);   // KPL's default, not the harness's
        KinesisProducer kp = new KinesisProducer(cfg);
        AtomicLong stored = new AtomicLong(), failed = new AtomicLong();
        Map<String, Long> reasons = new TreeMap<>();
        Random random = new Random(1);
        long start = System.nanoTime();
        long n = 0;
        BufferedReader in = new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8));
        String line;
        while ((line = in.readLine()) != null) {
            String key = Long.toHexString(random.nextLong());
            ListenableFuture<UserRecordResult> f = kp.addUserRecord(stream, key,
                    ByteBuffer.wrap(line.getBytes(StandardCharsets.UTF_8)));
            n++;
            Futures.addCallback(f, new FutureCallback<>() {
                public void onSuccess(UserRecordResult r) {
                    stored.incrementAndGet();
                }

                public void onFailure(Throwable t) {
                    failed.incrementAndGet();
                    String why = t.getClass().getSimpleName();
                    if (t instanceof com.amazonaws.services.kinesis.producer.UserRecordFailedException u
                            && !u.getResult().getAttempts().isEmpty()) {
                        var last = u.getResult().getAttempts().get(u.getResult().getAttempts().size() - 1);
                        why = last.getErrorCode();
                    }
                    synchronized (reasons) {
                        reasons.merge(why, 1L, Long::sum);
                    }
                }
            }, MoreExecutors.directExecutor());
        }
        long added = System.nanoTime();
        System.out.printf("added %d user records in %.1f s; outstanding then: %d%n", n,
                (added - start) / 1e9, kp.getOutstandingRecordsCount());
        kp.flushSync();
        while (stored.get() + failed.get() < n) Thread.sleep(100);
        double seconds = (System.nanoTime() - start) / 1e9;
        System.out.printf("KPL: %d stored, %d failed %s, in %.1f s%n", stored.get(), failed.get(), reasons, seconds);
        kp.destroy();
        System.exit(0);
    }
}
