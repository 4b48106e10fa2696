// kpl conformance adapter (protocol v1) for the Go module
// github.com/awslabs/kinesis-aggregation/go/v2 (its deaggregator; the module has no aggregator).
//
// decode: deaggregator.DeaggregateRecords([]types.Record{one record}); a panic is recovered and
// answered as {"ok": false, "error": "panic: ..."}, a returned error as ok: false.
// Reports exactly what the module hands back; see README.md.
package main

import (
	"kpl/conformance/adapters/go-protocol"

	"bufio"
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/awslabs/kinesis-aggregation/go/v2/deaggregator"
)

const peerModule = "github.com/awslabs/kinesis-aggregation/go/v2"

var magic = []byte{0xF3, 0x89, 0x9A, 0xC2}

type request struct {
	Op             string  `json:"op"`
	Data           string  `json:"data"`
	PartitionKey   *string `json:"partition_key"`
	PartitionKeyB6 *string `json:"partition_key_b64"`
	File           string  `json:"file"`
	Iterations     *int    `json:"iterations"`
}

func requestKey(s, b64 *string) (string, error) {
	if s != nil {
		return *s, nil
	}
	if b64 != nil {
		raw, err := base64.StdEncoding.DecodeString(*b64)
		return string(raw), err
	}
	return "", nil
}

func hello() map[string]any {
	return map[string]any{
		"ok": true, "name": peerModule, "version": protocol.ModuleVersion(peerModule), "language": "go",
		"encode": false, "decode": true, "policies": []string{"native"}, "bench": true,
		"shard_range": false, "verify_md5_optional": false,
		"deps": map[string]string{
			"github.com/aws/aws-sdk-go-v2/service/kinesis": protocol.ModuleVersion("github.com/aws/aws-sdk-go-v2/service/kinesis"),
			"github.com/golang/protobuf":                   protocol.ModuleVersion("github.com/golang/protobuf"),
			"google.golang.org/protobuf":                   protocol.ModuleVersion("google.golang.org/protobuf"),
			"go":                                           protocol.GoVersion(),
		},
	}
}

// deaggregate calls the peer on one record, turning a panic into an error that starts "panic: ".
func deaggregate(rec types.Record) (users []types.Record, err error) {
	defer func() {
		if r := recover(); r != nil {
			users, err = nil, fmt.Errorf("panic: %v", r)
		}
	}()
	return deaggregator.DeaggregateRecords([]types.Record{rec})
}

func decode(req *request) map[string]any {
	data, err := base64.StdEncoding.DecodeString(req.Data)
	if err != nil {
		return protocol.Fail("adapter: bad base64 in data: " + err.Error())
	}
	pk, err := requestKey(req.PartitionKey, req.PartitionKeyB6)
	if err != nil {
		return protocol.Fail("adapter: bad base64 in partition_key_b64: " + err.Error())
	}
	seq := "49590338271490256608559692538361571095921575989136588898"
	in := types.Record{Data: data, PartitionKey: &pk, SequenceNumber: &seq}
	users, err := deaggregate(in)
	if err != nil {
		return protocol.Fail(err.Error())
	}
	// The module says nothing about which records came out of an aggregate. It hands a
	// passed-through record back as the input value itself (same PartitionKey pointer), while
	// every user record gets a fresh key variable; so a record is "aggregated" when the input
	// started with the magic and the record is not the input handed back.
	hasMagic := bytes.HasPrefix(data, magic)
	records := make([]map[string]any, 0, len(users))
	for i := range users {
		u := &users[i]
		r := map[string]any{
			"data":                base64.StdEncoding.EncodeToString(u.Data),
			"explicit_hash_key":   nil, // types.Record has no explicit hash key field
			"sub_sequence_number": i,   // nor a sub-sequence number: the position
			"aggregated":          hasMagic && u.PartitionKey != in.PartitionKey,
		}
		protocol.KeyField(r, "partition_key", u.PartitionKey)
		records = append(records, r)
	}
	return map[string]any{"ok": true, "records": records}
}

func bench(req *request) map[string]any {
	f, err := os.Open(req.File)
	if err != nil {
		return protocol.Fail("adapter: " + err.Error())
	}
	defer f.Close()
	var inputs []types.Record
	rd := bufio.NewReader(f)
	for {
		line, err := rd.ReadBytes('\n')
		if len(bytes.TrimSpace(line)) > 0 {
			var r request
			if err := json.Unmarshal(line, &r); err != nil {
				return protocol.Fail("adapter: bad corpus line: " + err.Error())
			}
			data, err := base64.StdEncoding.DecodeString(r.Data)
			if err != nil {
				return protocol.Fail("adapter: bad corpus data: " + err.Error())
			}
			pk := "a"
			if r.PartitionKey != nil {
				pk = *r.PartitionKey
			}
			inputs = append(inputs, types.Record{Data: data, PartitionKey: &pk})
		}
		if err == io.EOF {
			break
		} else if err != nil {
			return protocol.Fail("adapter: " + err.Error())
		}
	}
	iterations := 1
	if req.Iterations != nil {
		iterations = *req.Iterations
	}
	n, nbytes := 0, 0
	t0 := time.Now()
	for it := 0; it < iterations; it++ {
		for _, in := range inputs {
			users, err := deaggregate(in)
			if err != nil {
				return protocol.Fail(err.Error())
			}
			for _, u := range users {
				n++
				nbytes += len(u.Data)
			}
		}
	}
	seconds := time.Since(t0).Seconds()
	return map[string]any{"ok": true, "seconds": seconds, "user_records": n, "user_bytes": nbytes}
}

func main() {
	protocol.Serve(map[string]func(*request) map[string]any{
		"hello":  func(*request) map[string]any { return hello() },
		"decode": decode,
		"bench":  bench,
	})
}
