//! In-process line pipes: whole lines passed between tasks as messages.
//!
//! Inside `serve`, the HTTP front, each server's session and the bridge to an HTTP server talk
//! in lines, exactly as a stdio client and server do. Over a byte pipe a writer that is cancelled
//! part-way (an HTTP client that disconnects while its large message is being written) leaves
//! half a line behind, and the next message is glued to it. A channel of whole lines cannot do
//! that: a line is either queued whole or not at all. It also skips the copy into a byte buffer
//! and the search for the newline on the other side.
//!
//! The receiving side keeps the guarantees of [`BoundedLineReader`](super::BoundedLineReader): a
//! line longer than its limit is reported as [`Line::TooLong`] with its first bytes kept, and
//! never handed on.

use std::time::Duration;

use tokio::sync::mpsc;

use super::reader::{DISCARDED_HEAD_BYTES, Line};
use super::writer::{DEFAULT_WRITE_TIMEOUT, WriteLineError};
use super::{LineSink, LineSource};

/// Creates a pipe that holds at most `capacity` lines at once (a full pipe makes the writer
/// wait, it never grows) and hands on lines of at most `max_line_bytes` bytes.
pub fn line_channel(capacity: usize, max_line_bytes: usize) -> (LineSender, LineReceiver) {
    let (tx, rx) = mpsc::channel(capacity.max(1));
    (
        LineSender {
            tx,
            timeout: DEFAULT_WRITE_TIMEOUT,
        },
        LineReceiver {
            rx,
            max_line_bytes,
            head: Vec::new(),
        },
    )
}

/// The writing end of a [`line_channel`]. Cloning is cheap; every clone feeds the same reader.
#[derive(Debug, Clone)]
pub struct LineSender {
    tx: mpsc::Sender<Vec<u8>>,
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
    /// sender's timeout ([`DEFAULT_WRITE_TIMEOUT`] unless set by [`with_timeout`](Self::with_timeout)).
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
        match tokio::time::timeout(self.timeout, self.tx.send(line)).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(_closed)) => Err(WriteLineError::Closed),
            Err(_elapsed) => Err(WriteLineError::TimedOut {
                after: self.timeout,
            }),
        }
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
        self.tx.try_send(line).map_err(|error| match error {
            mpsc::error::TrySendError::Full(_) => WriteLineError::Full,
            mpsc::error::TrySendError::Closed(_) => WriteLineError::Closed,
        })
    }

    /// Whether the reader is gone.
    pub fn is_closed(&self) -> bool {
        self.tx.is_closed()
    }
}

impl LineSink for LineSender {
    async fn write_line(&mut self, line: &[u8]) -> Result<(), WriteLineError> {
        self.send_line(line.to_vec()).await
    }
}

/// The reading end of a [`line_channel`].
#[derive(Debug)]
pub struct LineReceiver {
    rx: mpsc::Receiver<Vec<u8>>,
    max_line_bytes: usize,
    /// The first bytes (at most [`DISCARDED_HEAD_BYTES`]) of the last over-long line.
    head: Vec<u8>,
}

impl LineReceiver {
    /// The next line, or `None` once every sender is gone and the pipe is empty.
    ///
    /// Cancel safe: if the returned future is dropped before it completes, no line is lost.
    pub async fn recv_line(&mut self) -> Option<Line> {
        let line = self.rx.recv().await?;
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
        self.rx.close();
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
