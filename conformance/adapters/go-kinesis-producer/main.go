// kpl conformance adapter (protocol v1) for the Go module github.com/a8m/kinesis-producer.
//
// encode: a producer.Producer (MaxConnections 1, a flush interval of a day) whose Client is a
// fake Putter that captures every PutRecords input (no network); the user records are Put in
// order, then Stop() drains the aggregator and flushes; the captured entries are the answer.
// The module does not deaggregate: decode is not offered. Reports exactly what the producer
// would put; see README.md.
package main

import (
	"kpl/conformance/adapters/go-protocol"

	"context"
	"encoding/base64"
	"fmt"
	"log"
	"os"
	"strings"
	"sync"
	"time"

	producer "github.com/a8m/kinesis-producer"
	"github.com/aws/aws-sdk-go-v2/aws"
	k "github.com/aws/aws-sdk-go-v2/service/kinesis"
	ktypes "github.com/aws/aws-sdk-go-v2/service/kinesis/types"
)

const peerModule = "github.com/a8m/kinesis-producer"

type userRecord struct {
	PartitionKey    *string `json:"partition_key"`
	PartitionKeyB64 *string `json:"partition_key_b64"`
	Data            string  `json:"data"`
	// explicit_hash_key(_b64) is read by nobody: Producer.Put takes none.
}

type limits struct {
	MaxSize       *int64 `json:"max_size"`
	MaxCount      *int64 `json:"max_count"`
	MaxRecordSize *int64 `json:"max_record_size"`
}

type request struct {
	Op      string       `json:"op"`
	Records []userRecord `json:"records"`
	Limits  *limits      `json:"limits"`
}

func hello() map[string]any {
	return map[string]any{
		"ok": true, "name": peerModule, "version": protocol.ModuleVersion(peerModule), "language": "go",
		"encode": true, "decode": false, "policies": []string{}, "bench": false,
		"shard_range": false, "limits": true, "limits_honoured": []string{"max_size", "max_count"},
		"deps": map[string]string{
			"github.com/aws/aws-sdk-go-v2":                 protocol.ModuleVersion("github.com/aws/aws-sdk-go-v2"),
			"github.com/aws/aws-sdk-go-v2/service/kinesis": protocol.ModuleVersion("github.com/aws/aws-sdk-go-v2/service/kinesis"),
			"google.golang.org/protobuf":                   protocol.ModuleVersion("google.golang.org/protobuf"),
			"go":                                           protocol.GoVersion(),
		},
	}
}

// capture is the fake Kinesis client: it records every PutRecords input, in call order, and
// reports every entry as put.
type capture struct {
	mu      sync.Mutex
	entries []ktypes.PutRecordsRequestEntry
}

func (c *capture) PutRecords(_ context.Context, in *k.PutRecordsInput, _ ...func(*k.Options)) (*k.PutRecordsOutput, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	results := make([]ktypes.PutRecordsResultEntry, len(in.Records))
	for i := range in.Records {
		c.entries = append(c.entries, in.Records[i])
		results[i] = ktypes.PutRecordsResultEntry{
			ShardId:        aws.String("shardId-000000000000"),
			SequenceNumber: aws.String(fmt.Sprint(len(c.entries))),
		}
	}
	return &k.PutRecordsOutput{FailedRecordCount: aws.Int32(0), Records: results}, nil
}

func (c *capture) records() []map[string]any {
	c.mu.Lock()
	defer c.mu.Unlock()
	krs := make([]map[string]any, 0, len(c.entries))
	for i := range c.entries {
		e := &c.entries[i]
		kr := map[string]any{"data": base64.StdEncoding.EncodeToString(e.Data), "explicit_hash_key": nil}
		if e.ExplicitHashKey != nil {
			kr["explicit_hash_key"] = *e.ExplicitHashKey
		}
		protocol.KeyField(kr, "partition_key", e.PartitionKey)
		krs = append(krs, kr)
	}
	return krs
}

// newProducer calls producer.New, which panics on a configuration it refuses.
func newProducer(cfg *producer.Config) (p *producer.Producer, err error) {
	defer func() {
		if r := recover(); r != nil {
			p, err = nil, fmt.Errorf("panic: %v", r)
		}
	}()
	return producer.New(cfg), nil
}

func encode(req *request) map[string]any {
	type input struct {
		pk   string
		data []byte
	}
	inputs := make([]input, 0, len(req.Records))
	for i, r := range req.Records {
		var pk string
		switch {
		case r.PartitionKey != nil:
			pk = *r.PartitionKey
		case r.PartitionKeyB64 != nil:
			raw, err := base64.StdEncoding.DecodeString(*r.PartitionKeyB64)
			if err != nil {
				return protocol.Fail(fmt.Sprintf("adapter: record %d: bad partition_key_b64: %v", i, err))
			}
			pk = string(raw)
		}
		data, err := base64.StdEncoding.DecodeString(r.Data)
		if err != nil {
			return protocol.Fail(fmt.Sprintf("adapter: record %d: bad base64 in data: %v", i, err))
		}
		inputs = append(inputs, input{pk, data})
	}

	client := &capture{}
	cfg := &producer.Config{
		StreamName:     "kpl-conformance",
		FlushInterval:  24 * time.Hour, // never by time: only batch limits and Stop flush
		MaxConnections: 1,              // one PutRecords at a time, so the capture keeps the order
		Logger:         &producer.StdLogger{Logger: log.New(os.Stderr, "kinesis-producer: ", 0)},
		Client:         client,
	}
	if req.Limits != nil {
		if req.Limits.MaxSize != nil {
			cfg.AggregateBatchSize = int(*req.Limits.MaxSize)
		}
		if req.Limits.MaxCount != nil {
			cfg.AggregateBatchCount = int(*req.Limits.MaxCount)
		}
		// max_record_size: no setting (a constant 1 MiB inside the module).
	}
	p, err := newProducer(cfg)
	if err != nil {
		return protocol.Fail(err.Error())
	}
	p.Start()
	var putErrs []string
	for i, in := range inputs {
		if err := p.Put(in.data, in.pk); err != nil {
			putErrs = append(putErrs, fmt.Sprintf("record %d: %v", i, err))
		}
	}
	p.Stop() // drains the aggregator and waits for every flush
	krs := client.records()
	if len(putErrs) > 0 {
		return map[string]any{"ok": false, "error": protocol.OneLine(strings.Join(putErrs, "; ")),
			"kinesis_records_before_error": krs}
	}
	return map[string]any{"ok": true, "kinesis_records": krs}
}

func main() {
	protocol.Serve(map[string]func(*request) map[string]any{
		"hello":  func(*request) map[string]any { return hello() },
		"encode": encode,
	})
}
