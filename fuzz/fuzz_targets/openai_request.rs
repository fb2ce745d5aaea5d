//! libFuzzer entry point of the `openai_request` target (`gateway_test_support::targets::openai_request`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| gateway_test_support::targets::openai_request(data));
