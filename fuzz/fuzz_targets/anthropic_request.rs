//! libFuzzer entry point of the `anthropic_request` target (`gateway_test_support::targets::anthropic_request`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| gateway_test_support::targets::anthropic_request(data));
