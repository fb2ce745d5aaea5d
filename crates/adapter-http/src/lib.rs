//! `gateway-adapter-http`: the OpenAI-compatible HTTP server (being written).
#![forbid(unsafe_code)]
