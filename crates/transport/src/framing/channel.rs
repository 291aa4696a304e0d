//! In-process line pipes: whole lines passed between tasks as messages.
//!
//! Inside `serve`, the HTTP front, each server's session and the bridge to an HTTP server talk
//! in lines, exactly as a stdio client and server do. Over a byte pipe a writer that is cancelled
//! part-way (an HTTP client that disconnects while its large message is being written) leaves
//! half a line behind, and the next message is glued to it. A channel of whole lines cannot do
//! that: a line is either queued whole or not at all. It also skips the copy into a byte buffer
//! and the search for the newline on the other side.
//!
//! Like the byte pipes it replaces, a channel is bounded in bytes, not in messages: it holds at
//! most `capacity` bytes of lines (a line longer than that waits for the channel to be empty and
//! then passes alone), so many small messages can be queued while a large one is on its way.
//!
//! The receiving side keeps the guarantees of [`BoundedLineReader`](super::BoundedLineReader): a
//! line longer than its limit is reported as [`Line::TooLong`] with its first bytes kept, and
//! never handed on.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore, TryAcquireError, mpsc};

use super::reader::{DISCARDED_HEAD_BYTES, Line};
use super::writer::{DEFAULT_WRITE_TIMEOUT, WriteLineError};
use super::{LineSink, LineSource};

/// A queued line and its share of the channel's byte budget, given back when it is read.
type Queued = (Vec<u8>, OwnedSemaphorePermit);

/// Creates a pipe that holds at most `capacity_bytes` bytes of lines at once (a full pipe makes
/// the writer wait, it never grows) and hands on lines of at most `max_line_bytes` bytes.
pub fn line_channel(capacity_bytes: usize, max_line_bytes: usize) -> (LineSender, LineReceiver) {
    let capacity = u32::try_from(capacity_bytes.max(1)).unwrap_or(u32::MAX);
    let budget = Arc::new(Semaphore::new(capacity as usize));
    let (tx, rx) = mpsc::unbounded_channel();
    (
        LineSender {
            tx,
            budget: Arc::clone(&budget),
            capacity,
            timeout: DEFAULT_WRITE_TIMEOUT,
        },
        LineReceiver {
            rx,
            budget,
            max_line_bytes,
            head: Vec::new(),
        },
    )
}

/// The writing end of a [`line_channel`]. Cloning is cheap; every clone feeds the same reader.
#[derive(Debug, Clone)]
pub struct LineSender {
    tx: mpsc::UnboundedSender<Queued>,
    budget: Arc<Semaphore>,
    capacity: u32,
    timeout: Duration,
}

impl LineSender {
    /// The same sender with `timeout` in place of [`DEFAULT_WRITE_TIMEOUT`] for
    /// [`send_line`](Self::send_line).
    #[must_use]
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Queues `line` (without its `\n`), waiting while the pipe is full, for at most the
    /// sender's timeout ([`DEFAULT_WRITE_TIMEOUT`] unless [`with_timeout`](Self::with_timeout)
    /// set another).
    ///
    /// Cancel safe: if the returned future is dropped before it completes, nothing was queued.
    ///
    /// # Errors
    ///
    /// [`WriteLineError::EmbeddedNewline`] if `line` contains `\n` (over a byte pipe it would
    /// become two messages, so it is refused here too); [`WriteLineError::TimedOut`] if the
    /// reader did not make room in time; [`WriteLineError::Closed`] once the reader is gone.
    pub async fn send_line(&self, line: Vec<u8>) -> Result<(), WriteLineError> {
        if let Some(offset) = line.iter().position(|&b| b == b'\n') {
            return Err(WriteLineError::EmbeddedNewline { offset });
        }
        let budget = Arc::clone(&self.budget);
        let permit =
            match tokio::time::timeout(self.timeout, budget.acquire_many_owned(self.cost(&line)))
                .await
            {
                Ok(Ok(permit)) => permit,
                Ok(Err(_closed)) => return Err(WriteLineError::Closed),
                Err(_elapsed) => {
                    return Err(WriteLineError::TimedOut {
                        after: self.timeout,
                    });
                }
            };
        self.tx
            .send((line, permit))
            .map_err(|_closed| WriteLineError::Closed)
    }

    /// Queues `line` only if there is room now, for a sender that must not wait on a slow
    /// reader.
    ///
    /// # Errors
    ///
    /// As [`send_line`](Self::send_line), with [`WriteLineError::Full`] when the pipe is full.
    pub fn try_send_line(&self, line: Vec<u8>) -> Result<(), WriteLineError> {
        if let Some(offset) = line.iter().position(|&b| b == b'\n') {
            return Err(WriteLineError::EmbeddedNewline { offset });
        }
        let permit = Arc::clone(&self.budget)
            .try_acquire_many_owned(self.cost(&line))
            .map_err(|error| match error {
                TryAcquireError::NoPermits => WriteLineError::Full,
                TryAcquireError::Closed => WriteLineError::Closed,
            })?;
        self.tx
            .send((line, permit))
            .map_err(|_closed| WriteLineError::Closed)
    }

    /// Whether the reader is gone.
    pub fn is_closed(&self) -> bool {
        self.tx.is_closed()
    }

    /// The bytes of budget `line` takes: its length (at least one, so empty lines are bounded
    /// too), and at most the whole capacity, so that any line can pass once the pipe is empty.
    fn cost(&self, line: &[u8]) -> u32 {
        u32::try_from(line.len())
            .unwrap_or(u32::MAX)
            .clamp(1, self.capacity)
    }
}

impl LineSink for LineSender {
    async fn write_line(&mut self, line: &[u8]) -> Result<(), WriteLineError> {
        self.send_line(line.to_vec()).await
    }
}

/// The reading end of a [`line_channel`]. Dropping it closes the channel: waiting and later
/// writers get [`WriteLineError::Closed`].
#[derive(Debug)]
pub struct LineReceiver {
    rx: mpsc::UnboundedReceiver<Queued>,
    budget: Arc<Semaphore>,
    max_line_bytes: usize,
    /// The first bytes (at most [`DISCARDED_HEAD_BYTES`]) of the last over-long line.
    head: Vec<u8>,
}

impl LineReceiver {
    /// The next line, or `None` once every sender is gone and the pipe is empty.
    ///
    /// Cancel safe: if the returned future is dropped before it completes, no line is lost.
    pub async fn recv_line(&mut self) -> Option<Line> {
        // The permit goes back to the budget here, as the line leaves the pipe.
        let (line, _permit) = self.rx.recv().await?;
        if line.len() <= self.max_line_bytes {
            return Some(Line::Complete(line));
        }
        let mut head = line;
        let bytes_discarded = head.len();
        head.truncate(DISCARDED_HEAD_BYTES);
        head.shrink_to_fit();
        self.head = head;
        Some(Line::TooLong { bytes_discarded })
    }

    /// The first bytes (at most [`DISCARDED_HEAD_BYTES`]) of the last line reported as
    /// [`Line::TooLong`].
    pub fn discarded_head(&self) -> &[u8] {
        &self.head
    }

    /// Refuses further lines; those already queued can still be read.
    pub fn close(&mut self) {
        self.budget.close();
        self.rx.close();
    }
}

impl Drop for LineReceiver {
    fn drop(&mut self) {
        // A writer waiting for room would otherwise wait for its whole timeout.
        self.budget.close();
    }
}

impl LineSource for LineReceiver {
    async fn next_line(&mut self) -> std::io::Result<Option<Line>> {
        Ok(self.recv_line().await)
    }

    fn discarded_head(&self) -> &[u8] {
        &self.head
    }
}
