//! libFuzzer entry point of the `event_stream` target (`gateway_test_support::targets::event_stream`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| gateway_test_support::targets::event_stream(data));
