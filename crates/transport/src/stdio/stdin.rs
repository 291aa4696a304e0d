//! [`StdinWriter`]: the server's stdin, shared between the session and the shutdown logic.

use std::sync::Arc;

use tokio::process::ChildStdin;
use tokio::sync::Mutex;

use crate::framing::{LineWriter, WriteLineError};

/// A handle to write lines to a server's stdin.
///
/// Cloning is cheap; all clones write to the same pipe, one whole line at a time. The
/// [`StdioChild`](super::StdioChild) keeps a clone so that [`shutdown`](super::StdioChild::shutdown)
/// can close stdin even while the session still holds its handle; writes after that fail with
/// [`WriteLineError::Closed`].
#[derive(Debug, Clone)]
pub struct StdinWriter {
    inner: Arc<Mutex<Option<LineWriter<ChildStdin>>>>,
}

impl StdinWriter {
    pub(crate) fn new(writer: LineWriter<ChildStdin>) -> Self {
        Self {
            inner: Arc::new(Mutex::new(Some(writer))),
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
