//! `gateway-test-support`: test-only helpers that span crates (nothing shipped depends on it).
//!
//! - [`shapes`]: botocore's shape rules for Bedrock Runtime, checking the Converse bodies the
//!   adapter writes against the committed service model.
//! - [`targets`]: the fuzz targets, one function per parser or encoder, shared by cargo-fuzz
//!   (`fuzz/`, nightly) and the property tests in `tests/` (stable, part of `cargo test`).
#![forbid(unsafe_code)]

pub mod shapes;
pub mod targets;
