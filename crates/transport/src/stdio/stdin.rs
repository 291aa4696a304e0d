//! [`StdinWriter`]: the server's stdin, shared between the session and the shutdown logic.

use std::sync::Arc;

use tokio::io::AsyncWrite;
use tokio::sync::Mutex;

use crate::framing::{LineSender, LineWriter, WriteLineError};

/// A handle to write lines to a server's stdin.
///
/// Cloning is cheap; all clones write to the same pipe, one whole line at a time. The
/// [`StdioChild`](super::StdioChild) keeps a clone so that [`shutdown`](super::StdioChild::shutdown)
/// can close stdin even while the session still holds its handle; writes after that fail with
/// [`WriteLineError::Closed`].
#[derive(Clone)]
pub struct StdinWriter {
    inner: Arc<Mutex<Option<Sink>>>,
}

/// What carries the lines.
enum Sink {
    /// A byte stream: a child's stdin.
    Bytes(LineWriter<BoxedWrite>),
    /// An in-process [`line_channel`](crate::line_channel) to a task of this process (an HTTP
    /// upstream's bridge, a shared server's dispatcher, a session's client side).
    Lines(LineSender),
}

impl std::fmt::Debug for StdinWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StdinWriter").finish_non_exhaustive()
    }
}

/// A child's stdin, or any other byte sink.
type BoxedWrite = Box<dyn AsyncWrite + Send + Unpin>;

impl StdinWriter {
    /// A writer of lines into any byte sink.
    pub fn from_writer<W: AsyncWrite + Send + Unpin + 'static>(writer: W) -> Self {
        let boxed: BoxedWrite = Box::new(writer);
        Self::with(Sink::Bytes(LineWriter::new(boxed)))
    }

    /// A writer into an in-process [`line_channel`](crate::line_channel), for upstreams that
    /// are tasks of this process rather than child processes.
    pub fn from_sender(sender: LineSender) -> Self {
        Self::with(Sink::Lines(sender))
    }

    fn with(sink: Sink) -> Self {
        Self {
            inner: Arc::new(Mutex::new(Some(sink))),
        }
    }

    /// Writes `line` and `\n` and flushes, bounded by the writer's timeout.
    ///
    /// Over an in-process channel this is cancel safe: a dropped call queued the whole line or
    /// nothing. Over a byte stream a dropped call may have written part of the line.
    ///
    /// # Errors
    ///
    /// As [`LineWriter::write_line`], and [`WriteLineError::Closed`] once stdin was closed.
    pub async fn write_line(&self, line: &[u8]) -> Result<(), WriteLineError> {
        let mut guard = self.inner.lock().await;
        match guard.as_mut() {
            Some(Sink::Bytes(writer)) => writer.write_line(line).await,
            Some(Sink::Lines(sender)) => sender.send_line(line.to_vec()).await,
            None => Err(WriteLineError::Closed),
        }
    }

    /// Closes stdin, so a well-behaved server sees end of input and exits. Idempotent.
    ///
    /// Waits for a write in progress to finish (each write is bounded by its timeout).
    pub async fn close(&self) {
        drop(self.inner.lock().await.take());
    }
}
