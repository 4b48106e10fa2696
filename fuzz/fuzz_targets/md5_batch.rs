#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| kpl_fuzz::md5_batch::md5_batch(data));
