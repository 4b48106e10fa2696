#![no_main]

libfuzzer_sys::fuzz_target!(|input: kpl_fuzz::LeaseCoordinatorInput| kpl_fuzz::lease_coordinator(input));
