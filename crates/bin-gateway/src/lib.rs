//! The gateway binary's library half: configuration, wiring and the demo, shared by `main`,
//! the integration tests and `cargo xtask bench`.
#![forbid(unsafe_code)]

pub mod config;
#[cfg(feature = "demo")]
pub mod demo;
pub mod readiness;
pub mod telemetry;
pub mod wiring;
