//! libFuzzer entry point of the `sse_encoder` target (`gateway_test_support::targets::sse_encoder`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| gateway_test_support::targets::sse_encoder(data));
