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
//!
//! # Choices worth knowing
//!
//! - **Error codes.** Anything that keeps the bytes from being one trustworthy JSON value
//!   (syntax, encoding, byte-order mark, duplicate keys, depth, size, trailing data) is
//!   [`PARSE_ERROR`] with id `null`: none of such a message is trusted, not even its id. A JSON
//!   object of the wrong shape is [`INVALID_REQUEST`], with the id when it was readable. `params`
//!   that is not an object, including `null` and arrays, is [`INVALID_PARAMS`].
//! - **Whitespace.** JSON whitespace before and after the value is accepted, so a `\r` left by a
//!   CRLF line ending is harmless; anything else after the value is rejected.
//! - **Numbers.** Number text is kept exactly, except that `serde_json` writes exponents as a
//!   lower-case `e` with an explicit sign (`1E400` is forwarded as `1e+400`). Both spellings are
//!   the same number for every JSON parser; `serde_json::Number` offers no way to keep the other.
//! - **Ids.** Strings, or integers within ±(2^53−1) spelled canonically: `1.0`, `1e3` and `-0`
//!   are rejected so the id echoed back is spelled as it was received.
//! - **Unknown members.** Rejected at the top level and in error objects (JSON-RPC defines them
//!   completely). Kept in typed params (`extra`), because MCP adds optional params members over
//!   time; the gateway decides about them.
//! - **Reserved key.** An object whose key is `$serde_json::private::Number` is rejected:
//!   `serde_json::Value` would read it as a number.
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
