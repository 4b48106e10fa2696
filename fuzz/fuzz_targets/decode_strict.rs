#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| kpl_fuzz::decode_strict(data));
