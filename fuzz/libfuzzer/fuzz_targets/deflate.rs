#![no_main]
// The check lives in ringcast_fuzz::deflate (shared with the corpus replay test).
libfuzzer_sys::fuzz_target!(|data: &[u8]| ringcast_fuzz::deflate::run(data));
