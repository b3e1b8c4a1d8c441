#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| kvnet_fuzzing::nss::run(data));
