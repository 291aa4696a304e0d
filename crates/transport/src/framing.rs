//! Newline-delimited framing: one message per line, bounded in size.
//!
//! MCP's stdio transport frames each JSON-RPC message as one line terminated by `\n`. The peer on the
//! other end is untrusted, so the reader never holds more than a fixed number of bytes of a line, and
//! the writer refuses input that would turn one message into two.

mod reader;
mod writer;

#[cfg(test)]
mod tests;

pub use reader::{
    BoundedLineReader, DEFAULT_MAX_LINE_BYTES, DISCARDED_HEAD_BYTES, Line, READ_BUFFER_BYTES,
};
pub use writer::{DEFAULT_WRITE_TIMEOUT, LineWriter, WriteLineError};
