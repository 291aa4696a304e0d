//! The pure policy engine of Portcullis.
//!
//! Parse, check, compile, normalize and evaluate MCP tool-call policies. No I/O, no async, no
//! clock: time and the filesystem view are inputs, so the engine can be property-tested, fuzzed
//! and benchmarked in isolation.
#![forbid(unsafe_code)]

pub mod normalize;
pub mod tri;
