#![no_main]
// The check lives in ringcast_fuzz::http_request (shared with the corpus replay test).
libfuzzer_sys::fuzz_target!(|data: &[u8]| ringcast_fuzz::http_request::run(data));
