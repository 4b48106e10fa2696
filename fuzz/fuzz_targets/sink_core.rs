#![no_main]

libfuzzer_sys::fuzz_target!(|input: kpl_fuzz::SinkCoreInput| kpl_fuzz::sink_core(input));
