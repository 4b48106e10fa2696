module kpl/conformance/adapters/go-kinesis-aggregation

go 1.23

require (
	kpl/conformance/adapters/go-protocol v0.0.0
	github.com/aws/aws-sdk-go-v2/service/kinesis v1.6.0
	github.com/awslabs/kinesis-aggregation/go/v2 v2.0.0-20241004223953-c2774b1ab29b
)

require (
	github.com/aws/smithy-go v1.8.0 // indirect
	github.com/golang/protobuf v1.5.2 // indirect
	google.golang.org/protobuf v1.26.0 // indirect
)

// The protocol loop shared by the Go adapters.
replace kpl/conformance/adapters/go-protocol => ../go-protocol
