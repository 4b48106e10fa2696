import capture.KplHarness;
import com.amazonaws.services.kinesis.producer.KinesisProducer;
import com.amazonaws.services.kinesis.producer.KinesisProducerConfiguration;
import com.amazonaws.services.kinesis.producer.UserRecordFailedException;
import com.amazonaws.services.kinesis.producer.UserRecordResult;
import com.google.common.util.concurrent.FutureCallback;
import com.google.common.util.concurrent.Futures;
import com.google.common.util.concurrent.ListenableFuture;
import com.google.common.util.concurrent.MoreExecutors;

import java.io.BufferedReader;
import java.io.FileInputStream;
import java.io.InputStreamReader;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.util.Map;
import java.util.TreeMap;
import java.util.concurrent.atomic.AtomicLong;

/**
 * The real Java KPL at full speed, for benches/e2e/producer-vs-kpl.sh: every line of FILE
 * ("partition key TAB data", from `serve-load gen`) is one user record, added with
 * addUserRecord as fast as KPL takes it, with the back-pressure KPL's README points to
 * (while getOutstandingRecordsCount() is above MAX_OUTSTANDING, sleep 1 ms); then
 * flushSync, wait for every future, destroy (which ends the native daemon) and exit.
 * Configuration: the capture harness's (endpoint, fake credentials, VerifyCertificate
 * false, metrics not uploaded) with KPL's defaults for the rest (RecordMaxBufferedTime
 * 100 ms, aggregation, RateLimit 150, CollectionMaxCount 500), except the timeouts that
 * benches/e2e/sink-vs-kinesis-mock.sh also raises for `kpl put` (RequestTimeout 120 s,
 * RecordTtl 600 s) and log level warning.
 * Usage: KplFullSpeed <kinesis port (TLS)> <stream> <file> <max outstanding>
 */
public class KplFullSpeed {
    public static void main(String[] args) throws Exception {
        int port = Integer.parseInt(args[0]);
        String stream = args[1];
        long maxOutstanding = Long.parseLong(args[3]);
        KinesisProducerConfiguration cfg = KplHarness.config(port)
                .setRecordMaxBufferedTime(100)
                .setRequestTimeout(120_000)
                .setRecordTtl(600_000)
                .setLogLevel("warning");
        long start = System.nanoTime();
        KinesisProducer kp = new KinesisProducer(cfg);
        AtomicLong stored = new AtomicLong(), failed = new AtomicLong();
        Map<String, Long> reasons = new TreeMap<>();
        FutureCallback<UserRecordResult> callback = new FutureCallback<>() {
            public void onSuccess(UserRecordResult r) {
                stored.incrementAndGet();
            }

            public void onFailure(Throwable t) {
                failed.incrementAndGet();
                String why = t.getClass().getSimpleName();
                if (t instanceof UserRecordFailedException u && !u.getResult().getAttempts().isEmpty()) {
                    var attempts = u.getResult().getAttempts();
                    why = attempts.get(attempts.size() - 1).getErrorCode();
                }
                synchronized (reasons) {
                    reasons.merge(why, 1L, Long::sum);
                }
            }
        };
        long n = 0, waits = 0;
        try (BufferedReader in = new BufferedReader(new InputStreamReader(
                new FileInputStream(args[2]), StandardCharsets.UTF_8), 1 << 16)) {
            String line;
            while ((line = in.readLine()) != null) {
                int tab = line.indexOf('\t');
                while (kp.getOutstandingRecordsCount() > maxOutstanding) {
                    waits++;
                    Thread.sleep(1);
                }
                ListenableFuture<UserRecordResult> f = kp.addUserRecord(stream, line.substring(0, tab),
                        ByteBuffer.wrap(line.substring(tab + 1).getBytes(StandardCharsets.UTF_8)));
                Futures.addCallback(f, callback, MoreExecutors.directExecutor());
                n++;
            }
        }
        double added = (System.nanoTime() - start) / 1e9;
        kp.flushSync();
        while (stored.get() + failed.get() < n) Thread.sleep(10);
        double seconds = (System.nanoTime() - start) / 1e9;
        System.out.printf("KPL: %d user records added in %.1f s (%d back-pressure waits of 1 ms); "
                + "%d stored, %d failed %s; all done in %.1f s%n",
                n, added, waits, stored.get(), failed.get(), reasons, seconds);
        kp.destroy();
        // destroy() kills the native daemon; give the JVM's process reaper time to wait for it,
        // so that its CPU time is added to the JVM's children's (wait4) before we exit.
        Thread.sleep(1000);
        System.exit(failed.get() == 0 ? 0 : 1);
    }
}
