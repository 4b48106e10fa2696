// The AWS SDK for Java v2's Kinesis PutRecords, for cli/tests/serve_clients.rs.
//
// Usage: java PutRecordsClient ENDPOINT STREAM INPUT BATCH
//
// INPUT has one record a line, PARTITION_KEY<TAB>DATA (text). The records go out in batches
// of BATCH, in order, through a KinesisClient with the SDK's default protocol (CBOR) and the
// url-connection HTTP client (HTTP/1.1); records a call answers with an ErrorCode are put
// again with the next call, at most 10 times each. Before them, one put to STREAM-missing,
// which does not exist, prints {"MissingStream": the error code of the typed exception the SDK
// threw, "Status"}. Prints JSON lines: one per HTTP request
// {"ContentType", "Target"} (seen by an ExecutionInterceptor as the request leaves) and one per
// HTTP response {"ResponseContentType", "Status"}, one per
// call {"Call", "Records", "FailedRecordCount"}, one per failed attempt {"Index", "ErrorCode",
// "ErrorMessage"} and one per stored record {"Index", "ShardId", "SequenceNumber"}.
// Credentials and region come from the environment (the SDK's default chains).

import java.io.IOException;
import java.net.URI;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Deque;
import java.util.List;

import software.amazon.awssdk.core.SdkBytes;
import software.amazon.awssdk.core.interceptor.Context;
import software.amazon.awssdk.core.interceptor.ExecutionAttributes;
import software.amazon.awssdk.core.interceptor.ExecutionInterceptor;
import software.amazon.awssdk.http.SdkHttpRequest;
import software.amazon.awssdk.http.urlconnection.UrlConnectionHttpClient;
import software.amazon.awssdk.services.kinesis.KinesisClient;
import software.amazon.awssdk.services.kinesis.model.KinesisException;
import software.amazon.awssdk.services.kinesis.model.PutRecordsRequest;
import software.amazon.awssdk.services.kinesis.model.PutRecordsRequestEntry;
import software.amazon.awssdk.services.kinesis.model.PutRecordsResponse;
import software.amazon.awssdk.services.kinesis.model.PutRecordsResultEntry;
import software.amazon.awssdk.services.kinesis.model.ResourceNotFoundException;

public final class PutRecordsClient {
    private static final int ATTEMPTS = 10;

    public static void main(String[] args) throws IOException, InterruptedException {
        if (args.length != 4) {
            System.err.println("usage: PutRecordsClient ENDPOINT STREAM INPUT BATCH");
            System.exit(2);
        }
        String endpoint = args[0];
        String stream = args[1];
        int batch = Integer.parseInt(args[3]);
        List<String> keys = new ArrayList<>();
        List<String> data = new ArrayList<>();
        for (String line : Files.readAllLines(Path.of(args[2]), StandardCharsets.UTF_8)) {
            if (line.isEmpty()) {
                continue;
            }
            int tab = line.indexOf('\t');
            if (tab < 0) {
                throw new IllegalArgumentException("line without a tab: " + line);
            }
            keys.add(line.substring(0, tab));
            data.add(line.substring(tab + 1));
        }

        ExecutionInterceptor headers = new ExecutionInterceptor() {
            @Override
            public void beforeTransmission(Context.BeforeTransmission context, ExecutionAttributes attributes) {
                SdkHttpRequest request = context.httpRequest();
                System.out.println("{\"ContentType\":" + json(request.firstMatchingHeader("Content-Type").orElse(null))
                        + ",\"Target\":" + json(request.firstMatchingHeader("X-Amz-Target").orElse(null)) + "}");
            }

            @Override
            public void afterTransmission(Context.AfterTransmission context, ExecutionAttributes attributes) {
                System.out.println("{\"ResponseContentType\":"
                        + json(context.httpResponse().firstMatchingHeader("Content-Type").orElse(null))
                        + ",\"Status\":" + context.httpResponse().statusCode() + "}");
            }
        };
        try (KinesisClient client = KinesisClient.builder()
                .endpointOverride(URI.create(endpoint))
                .httpClientBuilder(UrlConnectionHttpClient.builder()
                        .connectionTimeout(Duration.ofSeconds(10))
                        .socketTimeout(Duration.ofMinutes(2)))
                .overrideConfiguration(c -> c.addExecutionInterceptor(headers))
                .build()) {
            // First a put to a stream that does not exist: the SDK must throw its typed exception.
            try {
                client.putRecords(PutRecordsRequest.builder()
                        .streamName(stream + "-missing")
                        .records(PutRecordsRequestEntry.builder()
                                .partitionKey("k")
                                .data(SdkBytes.fromUtf8String("never stored"))
                                .build())
                        .build());
                System.out.println("{\"MissingStream\":null}");
            } catch (ResourceNotFoundException e) {
                System.out.println("{\"MissingStream\":" + json(e.awsErrorDetails().errorCode())
                        + ",\"Status\":" + e.statusCode() + "}");
            } catch (KinesisException e) {
                System.out.println("{\"MissingStream\":" + json("other error: " + e.getMessage()) + "}");
            }
            int[] attempts = new int[keys.size()];
            Deque<Integer> pending = new ArrayDeque<>();
            for (int i = 0; i < keys.size(); i++) {
                pending.add(i);
            }
            int calls = 0;
            while (!pending.isEmpty()) {
                List<Integer> indexes = new ArrayList<>();
                List<PutRecordsRequestEntry> entries = new ArrayList<>();
                while (!pending.isEmpty() && indexes.size() < batch) {
                    int i = pending.removeFirst();
                    indexes.add(i);
                    entries.add(PutRecordsRequestEntry.builder()
                            .partitionKey(keys.get(i))
                            .data(SdkBytes.fromUtf8String(data.get(i)))
                            .build());
                }
                PutRecordsResponse answer = client.putRecords(PutRecordsRequest.builder()
                        .streamName(stream)
                        .records(entries)
                        .build());
                calls++;
                Integer failed = answer.failedRecordCount();
                System.out.println("{\"Call\":" + calls + ",\"Records\":" + indexes.size()
                        + ",\"FailedRecordCount\":" + (failed == null ? 0 : failed) + "}");
                if (answer.records().size() != indexes.size()) {
                    throw new IllegalStateException("PutRecords answered " + answer.records().size()
                            + " records for " + indexes.size());
                }
                List<Integer> retry = new ArrayList<>();
                for (int j = 0; j < indexes.size(); j++) {
                    int i = indexes.get(j);
                    PutRecordsResultEntry r = answer.records().get(j);
                    if (r.errorCode() != null) {
                        System.out.println("{\"Index\":" + i + ",\"ErrorCode\":" + json(r.errorCode())
                                + ",\"ErrorMessage\":" + json(r.errorMessage()) + "}");
                        if (++attempts[i] >= ATTEMPTS) {
                            throw new IllegalStateException("record " + i + " failed " + ATTEMPTS + " times");
                        }
                        retry.add(i);
                    } else {
                        System.out.println("{\"Index\":" + i + ",\"ShardId\":" + json(r.shardId())
                                + ",\"SequenceNumber\":" + json(r.sequenceNumber()) + "}");
                    }
                }
                if (!retry.isEmpty()) {
                    Thread.sleep(100);
                    for (int k = retry.size() - 1; k >= 0; k--) {
                        pending.addFirst(retry.get(k));
                    }
                }
            }
        }
        System.out.flush();
    }

    /** A JSON string (or null). */
    private static String json(String s) {
        if (s == null) {
            return "null";
        }
        StringBuilder b = new StringBuilder("\"");
        for (char c : s.toCharArray()) {
            switch (c) {
                case '"' -> b.append("\\\"");
                case '\\' -> b.append("\\\\");
                default -> {
                    if (c < 0x20) {
                        b.append(String.format("\\u%04x", (int) c));
                    } else {
                        b.append(c);
                    }
                }
            }
        }
        return b.append('"').toString();
    }
}
