//! [`StdinWriter`]: the server's stdin, shared between the session and the shutdown logic.

use std::sync::Arc;

use tokio::io::AsyncWrite;
use tokio::sync::Mutex;

use crate::framing::{LineWriter, WriteLineError};

/// A handle to write lines to a server's stdin.
///
/// Cloning is cheap; all clones write to the same pipe, one whole line at a time. The
/// [`StdioChild`](super::StdioChild) keeps a clone so that [`shutdown`](super::StdioChild::shutdown)
/// can close stdin even while the session still holds its handle; writes after that fail with
/// [`WriteLineError::Closed`].
#[derive(Clone)]
pub struct StdinWriter {
    inner: Arc<Mutex<Option<LineWriter<BoxedWrite>>>>,
}

impl std::fmt::Debug for StdinWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StdinWriter").finish_non_exhaustive()
    }
}

/// Whatever carries the lines: a child's stdin, or an in-process pipe to an HTTP upstream.
type BoxedWrite = Box<dyn AsyncWrite + Send + Unpin>;

impl StdinWriter {
    /// A writer of lines into any byte sink, for upstreams that are not child processes (the
    /// Streamable HTTP client reads the other end of an in-process pipe).
    pub fn from_writer<W: AsyncWrite + Send + Unpin + 'static>(writer: W) -> Self {
        let boxed: BoxedWrite = Box::new(writer);
        Self {
            inner: Arc::new(Mutex::new(Some(LineWriter::new(boxed)))),
        }
    }

    /// Writes `line` and `\n` and flushes, bounded by the writer's timeout.
    ///
    /// # Errors
    ///
    /// As [`LineWriter::write_line`], and [`WriteLineError::Closed`] once stdin was closed.
    pub async fn write_line(&self, line: &[u8]) -> Result<(), WriteLineError> {
        let mut guard = self.inner.lock().await;
        match guard.as_mut() {
            Some(writer) => writer.write_line(line).await,
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
