//! [`LineWriter`]: writes one message per line and never lets a message split in two.

use std::time::Duration;

use thiserror::Error;
use tokio::io::{AsyncWrite, AsyncWriteExt};

/// How long [`LineWriter::new`] waits for one line to be written and flushed.
///
/// A peer that stops reading fills the pipe, and an unbounded write would then hang the session
/// forever. Thirty seconds is far beyond what a healthy peer needs for a 4 MiB line.
pub const DEFAULT_WRITE_TIMEOUT: Duration = Duration::from_secs(30);

/// Why a line could not be written.
#[derive(Debug, Error)]
pub enum WriteLineError {
    /// The message contains a `\n`, so it would reach the peer as two lines. Nothing was written.
    #[error(
        "message contains a newline at byte {offset} and would be split in two; nothing was sent"
    )]
    EmbeddedNewline {
        /// Byte offset of the first `\n` in the message.
        offset: usize,
    },
    /// Writing and flushing the line took longer than the writer's timeout; the peer is not reading.
    #[error("the peer did not accept the message within {} ms", after.as_millis())]
    TimedOut {
        /// The timeout that expired.
        after: Duration,
    },
    /// The underlying stream failed.
    #[error("cannot write to the peer")]
    Io(#[source] std::io::Error),
    /// An earlier write failed or timed out part-way, so the stream may end in half a message; any
    /// further line would be glued to it. The stream must be closed.
    #[error("an earlier write to the peer failed part-way; the stream is no longer usable")]
    Broken,
    /// An in-process pipe was full and the sender chose not to wait. Nothing was written.
    #[error("the peer is not keeping up; the message was dropped")]
    Full,
    /// The stream was closed (for example by a shutdown) before this write.
    #[error("the stream to the peer is closed")]
    Closed,
}

/// Writes newline-terminated lines, each flushed before the write returns.
///
/// Errors are sticky: after a failed, timed-out or cancelled write the writer refuses further
/// lines with [`WriteLineError::Broken`], because the peer may have received part of a line.
#[derive(Debug)]
pub struct LineWriter<W> {
    inner: W,
    timeout: Duration,
    broken: bool,
}

impl<W: AsyncWrite + Unpin> LineWriter<W> {
    /// Wraps `inner` with [`DEFAULT_WRITE_TIMEOUT`].
    pub fn new(inner: W) -> Self {
        Self::with_timeout(inner, DEFAULT_WRITE_TIMEOUT)
    }

    /// Wraps `inner`; each [`write_line`](Self::write_line) fails after `timeout`.
    pub fn with_timeout(inner: W, timeout: Duration) -> Self {
        Self {
            inner,
            timeout,
            broken: false,
        }
    }

    /// Writes `line` followed by `\n`, and flushes.
    ///
    /// # Errors
    ///
    /// [`WriteLineError::EmbeddedNewline`] if `line` contains `\n` (nothing is written, the writer
    /// stays usable); [`WriteLineError::TimedOut`] or [`WriteLineError::Io`] if the write fails, after
    /// which the writer is broken; [`WriteLineError::Broken`] once it is.
    pub async fn write_line(&mut self, line: &[u8]) -> Result<(), WriteLineError> {
        if let Some(offset) = line.iter().position(|&b| b == b'\n') {
            return Err(WriteLineError::EmbeddedNewline { offset });
        }
        if self.broken {
            return Err(WriteLineError::Broken);
        }
        // Broken until the whole line is out: if this future is dropped part-way (its caller was
        // cancelled), the stream may end in half a line, and the next line must not be glued
        // to it.
        self.broken = true;
        let write = async {
            self.inner.write_all(line).await?;
            self.inner.write_all(b"\n").await?;
            self.inner.flush().await
        };
        let result = match tokio::time::timeout(self.timeout, write).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(error)) => Err(WriteLineError::Io(error)),
            Err(_elapsed) => Err(WriteLineError::TimedOut {
                after: self.timeout,
            }),
        };
        self.broken = result.is_err();
        result
    }

    /// Gives back the underlying stream.
    pub fn into_inner(self) -> W {
        self.inner
    }
}
