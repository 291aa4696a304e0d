//! [`BoundedLineReader`]: newline-delimited input with a hard cap on line size.

use std::mem;

use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};

/// The line limit the gateway uses for MCP messages: 4 MiB.
///
/// Large enough for any realistic tool call or result (file contents, base64 images), small enough
/// that a hostile or broken peer cannot make the gateway hold arbitrary amounts of memory per session.
pub const DEFAULT_MAX_LINE_BYTES: usize = 4 * 1024 * 1024;

/// Size of the read buffer that sits in front of the line buffer.
///
/// The reader holds at most `max_line_bytes + READ_BUFFER_BYTES` bytes at any time.
pub const READ_BUFFER_BYTES: usize = 8 * 1024;

/// How many bytes from the start of an over-long line are kept (see
/// [`BoundedLineReader::discarded_head`]).
pub const DISCARDED_HEAD_BYTES: usize = 256;

/// One unit of input from a [`BoundedLineReader`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Line {
    /// A whole line, without its trailing `\n`. A trailing `\r` is kept: JSON treats it as whitespace,
    /// and stripping it here would make the forwarded bytes differ from what was read.
    Complete(Vec<u8>),
    /// A line longer than the limit. Its bytes were dropped as they arrived, up to and excluding the
    /// next `\n` (or end of input); reading continues with the following line.
    TooLong {
        /// How many bytes the over-long line had, without its `\n`.
        bytes_discarded: usize,
    },
}

/// Reads newline-delimited lines of at most `max_line_bytes` bytes each.
///
/// The limit counts the bytes of a line without its terminating `\n` (a trailing `\r` counts). A line
/// of exactly `max_line_bytes` bytes is [`Line::Complete`]; one byte more is [`Line::TooLong`]. The
/// rest of an over-long line is skipped without being stored, so memory stays bounded by
/// `max_line_bytes + READ_BUFFER_BYTES` however long the line is.
///
/// [`next_line`](Self::next_line) is cancel safe: if its future is dropped before it completes, no
/// input is lost and the next call continues where the previous one stopped. This makes it usable in
/// `tokio::select!`.
#[derive(Debug)]
pub struct BoundedLineReader<R> {
    inner: BufReader<R>,
    max_line_bytes: usize,
    /// The bytes of the current line read so far; its capacity never exceeds `max_line_bytes`.
    line: Vec<u8>,
    /// `Some(n)` while skipping the rest of an over-long line, `n` being its length so far.
    discarding: Option<usize>,
    /// The first bytes (at most [`DISCARDED_HEAD_BYTES`]) of the last over-long line.
    head: Vec<u8>,
}

impl<R: AsyncRead + Unpin> BoundedLineReader<R> {
    /// Wraps `inner`; lines longer than `max_line_bytes` are reported as [`Line::TooLong`].
    pub fn new(inner: R, max_line_bytes: usize) -> Self {
        Self {
            inner: BufReader::with_capacity(READ_BUFFER_BYTES, inner),
            max_line_bytes,
            line: Vec::new(),
            discarding: None,
            head: Vec::new(),
        }
    }

    /// The line limit this reader was built with.
    pub fn max_line_bytes(&self) -> usize {
        self.max_line_bytes
    }

    /// Bytes of memory the reader holds for buffering right now: the line buffer's capacity plus the
    /// read buffer. Never more than `max_line_bytes + READ_BUFFER_BYTES`.
    pub fn buffer_capacity(&self) -> usize {
        self.line.capacity().saturating_add(READ_BUFFER_BYTES)
    }

    /// The first bytes (at most [`DISCARDED_HEAD_BYTES`]) of the last line reported as
    /// [`Line::TooLong`]: enough to read a message's leading `id`, so that the request it answers
    /// can be failed instead of left waiting.
    pub fn discarded_head(&self) -> &[u8] {
        &self.head
    }

    /// Reads the next line.
    ///
    /// Returns `Ok(None)` at end of input. A last line without a terminating `\n` is returned as
    /// [`Line::Complete`] (or [`Line::TooLong`]) before that. Empty lines are returned as empty
    /// [`Line::Complete`]s; skipping them is the caller's choice.
    ///
    /// # Errors
    ///
    /// Any I/O error from the underlying reader. The reader's state stays consistent, so a caller
    /// may retry after a transient error (for example `Interrupted`).
    pub async fn next_line(&mut self) -> std::io::Result<Option<Line>> {
        loop {
            let available = self.inner.fill_buf().await?;
            if available.is_empty() {
                return Ok(self.finish_at_eof());
            }
            let newline = available.iter().position(|&b| b == b'\n');
            let (chunk, consumed) = match newline {
                Some(at) => (
                    available.get(..at).unwrap_or(available),
                    at.saturating_add(1),
                ),
                None => (available, available.len()),
            };
            match self.discarding.as_mut() {
                Some(dropped) => *dropped = dropped.saturating_add(chunk.len()),
                None => {
                    let needed = self.line.len().saturating_add(chunk.len());
                    if needed <= self.max_line_bytes {
                        extend_bounded(&mut self.line, chunk, self.max_line_bytes);
                    } else {
                        // Free the partial line now rather than keeping up to the limit while the
                        // rest of the line streams past; keep only its first bytes.
                        let mut head = mem::take(&mut self.line);
                        let room = DISCARDED_HEAD_BYTES.saturating_sub(head.len());
                        head.truncate(DISCARDED_HEAD_BYTES);
                        head.extend_from_slice(
                            chunk.get(..room.min(chunk.len())).unwrap_or_default(),
                        );
                        head.shrink_to_fit();
                        self.head = head;
                        self.discarding = Some(needed);
                    }
                }
            }
            self.inner.consume(consumed);
            if newline.is_some() {
                return Ok(Some(self.take_line()));
            }
        }
    }

    fn finish_at_eof(&mut self) -> Option<Line> {
        if self.discarding.is_none() && self.line.is_empty() {
            None
        } else {
            Some(self.take_line())
        }
    }

    fn take_line(&mut self) -> Line {
        match self.discarding.take() {
            Some(bytes_discarded) => Line::TooLong { bytes_discarded },
            None => Line::Complete(mem::take(&mut self.line)),
        }
    }
}

/// Appends `chunk` to `line`, growing geometrically (for amortized linear copying) but never past
/// `max` bytes of capacity. The caller guarantees `line.len() + chunk.len() <= max`.
fn extend_bounded(line: &mut Vec<u8>, chunk: &[u8], max: usize) {
    let needed = line.len().saturating_add(chunk.len());
    if needed > line.capacity() {
        let target = needed.max(line.capacity().saturating_mul(2)).min(max);
        line.reserve_exact(target.saturating_sub(line.len()));
    }
    line.extend_from_slice(chunk);
}
