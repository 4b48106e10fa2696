module kpl/conformance/adapters/go-kinesis-producer

go 1.23

require (
	kpl/conformance/adapters/go-protocol v0.0.0
	github.com/a8m/kinesis-producer v0.2.1-0.20240916120605-7e5fa98d32a5
	github.com/aws/aws-sdk-go-v2 v1.30.5
	github.com/aws/aws-sdk-go-v2/service/kinesis v1.29.7
)

require (
	github.com/aws/aws-sdk-go-v2/aws/protocol/eventstream v1.6.4 // indirect
	github.com/aws/aws-sdk-go-v2/internal/configsources v1.3.17 // indirect
	github.com/aws/aws-sdk-go-v2/internal/endpoints/v2 v2.6.17 // indirect
	github.com/aws/smithy-go v1.20.4 // indirect
	github.com/jmespath/go-jmespath v0.4.0 // indirect
	github.com/jpillora/backoff v1.0.0 // indirect
	google.golang.org/protobuf v1.34.2 // indirect
)

// The protocol loop shared by the Go adapters.
replace kpl/conformance/adapters/go-protocol => ../go-protocol
