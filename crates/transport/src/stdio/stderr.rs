//! Logging a server's stderr, line by line, bounded.

use tokio::process::ChildStderr;
use tokio::task::JoinHandle;

use crate::framing::{BoundedLineReader, Line};

/// Longest stderr line logged; longer ones are replaced by a note of their length. Stderr is
/// free-form diagnostics from an untrusted process, so it gets a small, fixed budget.
pub const MAX_STDERR_LINE_BYTES: usize = 16 * 1024;

/// The background task that logs stderr; aborted when dropped so it cannot outlive its owner (a
/// grandchild may hold the pipe open long after the server exited).
#[derive(Debug)]
pub(crate) struct StderrTask {
    handle: JoinHandle<()>,
}

impl StderrTask {
    pub(crate) fn spawn(server: String, stderr: ChildStderr) -> Self {
        Self {
            handle: tokio::spawn(log_lines(server, stderr)),
        }
    }

    /// Lets the task log what is left, for at most `limit`.
    pub(crate) async fn drain(mut self, limit: std::time::Duration) {
        if tokio::time::timeout(limit, &mut self.handle).await.is_err() {
            tracing::debug!(target: "upstream", "stderr still open after the server exited; no longer logging it");
        }
    }
}

impl Drop for StderrTask {
    fn drop(&mut self) {
        self.handle.abort();
    }
}

async fn log_lines(server: String, stderr: ChildStderr) {
    let mut reader = BoundedLineReader::new(stderr, MAX_STDERR_LINE_BYTES);
    loop {
        match reader.next_line().await {
            Ok(Some(Line::Complete(bytes))) => {
                let text = sanitize(&bytes);
                tracing::info!(target: "upstream", server = %server, "{text}");
            }
            Ok(Some(Line::TooLong { bytes_discarded })) => {
                tracing::warn!(
                    target: "upstream",
                    server = %server,
                    bytes_discarded,
                    "stderr line longer than {MAX_STDERR_LINE_BYTES} bytes not logged"
                );
            }
            Ok(None) => break,
            Err(error) => {
                tracing::warn!(target: "upstream", server = %server, %error, "cannot read stderr");
                break;
            }
        }
    }
}

/// Lossy UTF-8, without the trailing `\r`, with control characters escaped: a server must not be
/// able to forge log lines or drive the operator's terminal with escape sequences.
pub(crate) fn sanitize(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    let text = text.strip_suffix('\r').unwrap_or(&text);
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if c.is_control() && c != '\t' {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}
