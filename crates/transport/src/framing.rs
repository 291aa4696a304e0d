//! Newline-delimited framing: one message per line, bounded in size.
//!
//! MCP's stdio transport frames each JSON-RPC message as one line terminated by `\n`. The peer on the
//! other end is untrusted, so the reader never holds more than a fixed number of bytes of a line, and
//! the writer refuses input that would turn one message into two.

mod channel;
mod reader;
mod writer;

#[cfg(test)]
mod tests;

pub use channel::{LineReceiver, LineSender, line_channel};
pub use reader::{
    BoundedLineReader, DEFAULT_MAX_LINE_BYTES, DISCARDED_HEAD_BYTES, Line, READ_BUFFER_BYTES,
};
pub use writer::{DEFAULT_WRITE_TIMEOUT, LineWriter, WriteLineError};

use std::future::Future;

/// Where a session reads lines from: a byte stream ([`BoundedLineReader`]) or an in-process
/// [`line_channel`].
pub trait LineSource {
    /// The next line, `Ok(None)` at end of input. Must be cancel safe (it is used in
    /// `tokio::select!`): a dropped call loses no input.
    fn next_line(&mut self) -> impl Future<Output = std::io::Result<Option<Line>>> + Send;

    /// The first bytes of the last line reported as [`Line::TooLong`].
    fn discarded_head(&self) -> &[u8];
}

/// Where a session writes lines to: a byte stream ([`LineWriter`]) or an in-process
/// [`line_channel`].
pub trait LineSink {
    /// Writes `line` as one message; see [`LineWriter::write_line`] for the errors.
    fn write_line(
        &mut self,
        line: &[u8],
    ) -> impl Future<Output = Result<(), WriteLineError>> + Send;
}

impl<R: tokio::io::AsyncRead + Unpin + Send> LineSource for BoundedLineReader<R> {
    fn next_line(&mut self) -> impl Future<Output = std::io::Result<Option<Line>>> + Send {
        BoundedLineReader::next_line(self)
    }

    fn discarded_head(&self) -> &[u8] {
        BoundedLineReader::discarded_head(self)
    }
}

impl<W: tokio::io::AsyncWrite + Unpin + Send> LineSink for LineWriter<W> {
    fn write_line(
        &mut self,
        line: &[u8],
    ) -> impl Future<Output = Result<(), WriteLineError>> + Send {
        LineWriter::write_line(self, line)
    }
}
