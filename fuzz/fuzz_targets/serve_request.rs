#![no_main]

// Byte 0 picks the protocol (bit 0: CBOR) and the operation (bit 1: PutRecord); the rest
// is the request body `kpl serve` would read.
libfuzzer_sys::fuzz_target!(|data: &[u8]| kpl_fuzz::serve_request(data));
