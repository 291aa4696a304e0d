//! JSON-RPC 2.0 and MCP message types with strict framing.
//!
//! Everything that crosses the wire between an MCP client, Portcullis and an MCP server is parsed
//! here first. The parser is deliberately stricter than `serde_json`: it rejects duplicate keys,
//! byte-order marks, non-UTF-8 input, batches and out-of-range ids, so that the gateway and the
//! server can never read one message two different ways. No I/O happens in this crate.
//!
//! ```
//! use portcullis_mcp::{ClientMethod, Limits, Message, ToolCallParams, parse_message};
//!
//! let line = br#"{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"read","arguments":{"path":"/ws/a"}}}"#;
//! let parsed = parse_message(line, &Limits::default())?;
//! let Message::Request { id, method, params } = parsed.message() else { unreachable!() };
//! assert_eq!(ClientMethod::classify(method), ClientMethod::ToolsCall);
//! let call = ToolCallParams::parse(id, params.as_ref())?;
//! assert_eq!(call.name, "read");
//! // Forward exactly what was evaluated.
//! assert_eq!(parsed.to_bytes()?, line);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![forbid(unsafe_code)]

mod error;
mod json;
mod jsonrpc;
mod limits;
mod methods;
mod params;
mod results;

pub use error::{
    FrameError, FrameErrorKind, INTERNAL_ERROR, INVALID_PARAMS, INVALID_REQUEST, METHOD_NOT_FOUND,
    PARSE_ERROR, error_response,
};
pub use json::{JsonError, Pointer, parse_json};
pub use jsonrpc::{Id, MAX_SAFE_INTEGER, Message, Parsed, RpcError, parse_message};
pub use limits::{DEFAULT_MAX_DEPTH, DEFAULT_MAX_MESSAGE_BYTES, Limits};
pub use methods::{ClientMethod, ClientNotification, ListMethod, ServerRequest};
pub use params::{
    ClientInfo, InitializeParams, ParamsError, PromptGetParams, ResourceReadParams, ToolCallParams,
};
pub use results::{response, tool_error_result};
