//! libFuzzer entry point of the `converse_response` target (`gateway_test_support::targets::converse_response`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| gateway_test_support::targets::converse_response(data));
