module kpl/conformance/adapters/go-protocol

go 1.23
