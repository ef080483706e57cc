#![no_main]
// The check lives in ringcast_fuzz::v1 (shared with the corpus replay test).
libfuzzer_sys::fuzz_target!(|data: &[u8]| ringcast_fuzz::v1::run(data));
