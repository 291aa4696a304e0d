//! JSON-RPC 2.0 and MCP message types with strict framing.
//!
//! Everything that crosses the wire between an MCP client, Portcullis and an MCP server is parsed
//! here first. The parser is deliberately stricter than `serde_json`: it rejects duplicate keys,
//! byte-order marks, non-UTF-8 input, batches and out-of-range ids, so that the gateway and the
//! server can never read one message two different ways. No I/O happens in this crate.
#![forbid(unsafe_code)]

mod json;
mod limits;

pub use json::{JsonError, Pointer, parse_json};
pub use limits::{DEFAULT_MAX_DEPTH, DEFAULT_MAX_MESSAGE_BYTES, Limits};
