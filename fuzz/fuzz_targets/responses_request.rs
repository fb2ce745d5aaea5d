//! libFuzzer entry point of the `responses_request` target (`gateway_test_support::targets::responses_request`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| gateway_test_support::targets::responses_request(data));
