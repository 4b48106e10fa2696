#![no_main]

libfuzzer_sys::fuzz_target!(|input: kpl_fuzz::RoundtripInput| kpl_fuzz::roundtrip(input));
