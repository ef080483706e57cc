#![no_main]
// The check lives in ringcast_fuzz::token (shared with the corpus replay test).
libfuzzer_sys::fuzz_target!(|data: &[u8]| ringcast_fuzz::token::run(data));
