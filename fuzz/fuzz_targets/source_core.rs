#![no_main]

libfuzzer_sys::fuzz_target!(|input: kpl_fuzz::SourceCoreInput| kpl_fuzz::source_core(input));
