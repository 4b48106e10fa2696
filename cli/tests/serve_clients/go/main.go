// Command put-records puts records with aws-sdk-go-v2's Kinesis PutRecords, for
// cli/tests/serve_clients.rs.
//
// Usage: put-records ENDPOINT STREAM INPUT BATCH
//
// INPUT has one record a line, PARTITION_KEY<TAB>DATA (text). The records go out in
// batches of BATCH, in order; records a call answers with an ErrorCode are put again with
// the next call, at most 10 times each. Before them, one put to STREAM-missing, which does
// not exist, prints {"MissingStream": the code of the typed error the SDK returned}. Prints
// JSON lines: one per call {"Call", "Records",
// "FailedRecordCount"}, one per failed attempt {"Index", "ErrorCode", "ErrorMessage"} and one
// per stored record {"Index", "ShardId", "SequenceNumber"}. Credentials and region come from
// the environment (the SDK's default chain).
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
)

const attemptsPerRecord = 10

func fail(format string, args ...any) {
	fmt.Fprintf(os.Stderr, format+"\n", args...)
	os.Exit(1)
}

func main() {
	if len(os.Args) != 5 {
		fail("usage: put-records ENDPOINT STREAM INPUT BATCH")
	}
	endpoint, stream, path := os.Args[1], os.Args[2], os.Args[3]
	batch, err := strconv.Atoi(os.Args[4])
	if err != nil || batch < 1 {
		fail("bad batch size %q", os.Args[4])
	}
	file, err := os.Open(path)
	if err != nil {
		fail("%v", err)
	}
	var keys, data []string
	scanner := bufio.NewScanner(file)
	for scanner.Scan() {
		line := scanner.Text()
		if line == "" {
			continue
		}
		key, value, ok := strings.Cut(line, "\t")
		if !ok {
			fail("line without a tab: %q", line)
		}
		keys = append(keys, key)
		data = append(data, value)
	}
	if err := scanner.Err(); err != nil {
		fail("%v", err)
	}

	ctx := context.Background()
	cfg, err := config.LoadDefaultConfig(ctx)
	if err != nil {
		fail("config: %v", err)
	}
	client := kinesis.NewFromConfig(cfg, func(o *kinesis.Options) {
		o.BaseEndpoint = aws.String(endpoint)
	})

	out := json.NewEncoder(os.Stdout)

	// First a put to a stream that does not exist: the SDK must return its typed error.
	_, err = client.PutRecords(ctx, &kinesis.PutRecordsInput{
		StreamName: aws.String(stream + "-missing"),
		Records:    []types.PutRecordsRequestEntry{{PartitionKey: aws.String("k"), Data: []byte("never stored")}},
	})
	var notFound *types.ResourceNotFoundException
	switch {
	case err == nil:
		_ = out.Encode(map[string]any{"MissingStream": nil})
	case errors.As(err, &notFound):
		_ = out.Encode(map[string]any{"MissingStream": notFound.ErrorCode()})
	default:
		_ = out.Encode(map[string]any{"MissingStream": "other error: " + err.Error()})
	}
	attempts := make([]int, len(keys))
	pending := make([]int, len(keys))
	for i := range pending {
		pending[i] = i
	}
	calls := 0
	for len(pending) > 0 {
		n := min(batch, len(pending))
		indexes := pending[:n]
		pending = pending[n:]
		entries := make([]types.PutRecordsRequestEntry, len(indexes))
		for j, i := range indexes {
			entries[j] = types.PutRecordsRequestEntry{
				PartitionKey: aws.String(keys[i]),
				Data:         []byte(data[i]),
			}
		}
		callCtx, cancel := context.WithTimeout(ctx, 2*time.Minute)
		answer, err := client.PutRecords(callCtx, &kinesis.PutRecordsInput{
			StreamName: aws.String(stream),
			Records:    entries,
		})
		cancel()
		if err != nil {
			fail("PutRecords: %v", err)
		}
		calls++
		failed := int32(0)
		if answer.FailedRecordCount != nil {
			failed = *answer.FailedRecordCount
		}
		_ = out.Encode(map[string]any{"Call": calls, "Records": len(indexes), "FailedRecordCount": failed})
		if len(answer.Records) != len(indexes) {
			fail("PutRecords answered %d records for %d", len(answer.Records), len(indexes))
		}
		var retry []int
		for j, i := range indexes {
			r := answer.Records[j]
			if r.ErrorCode != nil {
				_ = out.Encode(map[string]any{"Index": i, "ErrorCode": r.ErrorCode, "ErrorMessage": r.ErrorMessage})
				attempts[i]++
				if attempts[i] >= attemptsPerRecord {
					fail("record %d failed %d times", i, attemptsPerRecord)
				}
				retry = append(retry, i)
			} else {
				_ = out.Encode(map[string]any{"Index": i, "ShardId": r.ShardId, "SequenceNumber": r.SequenceNumber})
			}
		}
		if len(retry) > 0 {
			time.Sleep(100 * time.Millisecond)
			pending = append(retry, pending...)
		}
	}
}
