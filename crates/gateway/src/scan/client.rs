//! A minimal MCP client for `portcullis scan`: start a stdio server with a cleared environment,
//! `initialize`, and list every tool. Every message is read with the strict framing of
//! `portcullis-mcp`, and every step has a deadline.

use std::time::Duration;

use portcullis_mcp::{Id, Limits, Message, parse_message};
use portcullis_transport::stdio::{ChildSpec, ShutdownGrace, StdioChild};
use portcullis_transport::{BoundedLineReader, DEFAULT_MAX_LINE_BYTES, Line};
use serde_json::{Value, json};
use tokio::process::ChildStdout;

use super::ScanError;

/// The most `tools/list` pages followed.
pub(crate) const MAX_PAGES: usize = 64;
/// The most tools accepted from one server.
pub(crate) const MAX_TOOLS: usize = 4096;
/// The protocol version offered in `initialize`.
const PROTOCOL_VERSION: &str = "2025-11-25";

/// What the server said.
pub(crate) struct Listing {
    pub(crate) init: Value,
    pub(crate) tools: Vec<Value>,
}

struct Conn {
    child: StdioChild,
    stdout: BoundedLineReader<ChildStdout>,
    timeout: Duration,
    next_id: i64,
}

impl Conn {
    async fn send(&self, message: &Value) -> Result<(), ScanError> {
        let bytes = message.to_string().into_bytes();
        tokio::time::timeout(self.timeout, self.child.stdin().write_line(&bytes))
            .await
            .map_err(|_| ScanError::Timeout("writing to the server".to_owned()))?
            .map_err(|e| ScanError::Protocol(format!("cannot write to the server: {e}")))
    }

    /// Sends a request and waits for its answer, answering the server's own requests meanwhile.
    async fn request(&mut self, method: &str, params: Value) -> Result<Value, ScanError> {
        self.next_id = self.next_id.saturating_add(1);
        let id = Id::Number(self.next_id);
        self.send(
            &json!({"jsonrpc": "2.0", "id": self.next_id, "method": method, "params": params}),
        )
        .await?;
        let deadline = tokio::time::Instant::now() + self.timeout;
        loop {
            let line = tokio::time::timeout_at(deadline, self.stdout.next_line())
                .await
                .map_err(|_| {
                    ScanError::Timeout(format!(
                        "waiting {}s for the answer to `{method}`",
                        self.timeout.as_secs()
                    ))
                })?
                .map_err(|e| ScanError::Protocol(format!("cannot read from the server: {e}")))?;
            let bytes = match line {
                None => {
                    return Err(ScanError::Protocol(format!(
                        "the server closed its output before answering `{method}`"
                    )));
                }
                Some(Line::TooLong { bytes_discarded }) => {
                    return Err(ScanError::Protocol(format!(
                        "the server sent a line of {bytes_discarded} bytes, over the limit"
                    )));
                }
                Some(Line::Complete(bytes)) => bytes,
            };
            if bytes.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            let parsed = parse_message(&bytes, &Limits::default()).map_err(|e| {
                ScanError::Protocol(format!(
                    "the server sent a message portcullis cannot read: {e}"
                ))
            })?;
            match parsed.message() {
                Message::Response { id: got, result } if *got == id => return Ok(result.clone()),
                Message::ErrorResponse {
                    id: Some(got),
                    error,
                } if *got == id => {
                    return Err(ScanError::Protocol(format!(
                        "the server answered `{method}` with error {}: {}",
                        error.code, error.message
                    )));
                }
                Message::Request {
                    id: their, method, ..
                } => {
                    let reply = if method == "ping" {
                        json!({"jsonrpc": "2.0", "id": their, "result": {}})
                    } else {
                        json!({"jsonrpc": "2.0", "id": their, "error": {"code": -32601, "message": "portcullis scan does not support this request"}})
                    };
                    self.send(&reply).await?;
                }
                // Notifications (logging, list_changed) and stray answers change nothing here.
                _ => {}
            }
        }
    }
}

/// Starts the server, lists its tools and stops it.
pub(crate) async fn list_tools(spec: ChildSpec, timeout: Duration) -> Result<Listing, ScanError> {
    let mut child = StdioChild::spawn(spec, DEFAULT_MAX_LINE_BYTES)
        .map_err(|e| ScanError::Spawn(e.to_string()))?;
    let Some(stdout) = child.take_stdout() else {
        return Err(ScanError::Protocol(
            "the server's output is not available".to_owned(),
        ));
    };
    let mut conn = Conn {
        child,
        stdout,
        timeout,
        next_id: 0,
    };
    let result = converse(&mut conn).await;
    let stopped = conn.child.shutdown(ShutdownGrace::default()).await;
    if let Err(error) = stopped {
        tracing::warn!(%error, "the scanned server did not stop cleanly");
    }
    result
}

async fn converse(conn: &mut Conn) -> Result<Listing, ScanError> {
    let init = conn
        .request(
            "initialize",
            json!({"protocolVersion": PROTOCOL_VERSION, "capabilities": {},
                   "clientInfo": {"name": "portcullis-scan", "version": env!("CARGO_PKG_VERSION")}}),
        )
        .await?;
    conn.send(&json!({"jsonrpc": "2.0", "method": "notifications/initialized"}))
        .await?;
    let mut tools = Vec::new();
    if init
        .get("capabilities")
        .and_then(|c| c.get("tools"))
        .is_none()
    {
        return Ok(Listing { init, tools });
    }
    let mut cursor: Option<String> = None;
    let mut cursors_seen = Vec::new();
    for _ in 0..MAX_PAGES {
        let params = match &cursor {
            Some(c) => json!({"cursor": c}),
            None => json!({}),
        };
        let page = conn.request("tools/list", params).await?;
        let Some(listed) = page.get("tools").and_then(Value::as_array) else {
            return Err(ScanError::Protocol(
                "the server's tools/list result has no `tools` array".to_owned(),
            ));
        };
        tools.extend(listed.iter().cloned());
        if tools.len() > MAX_TOOLS {
            return Err(ScanError::Protocol(format!(
                "the server lists more than {MAX_TOOLS} tools"
            )));
        }
        match page.get("nextCursor").and_then(Value::as_str) {
            None => return Ok(Listing { init, tools }),
            Some(next) if cursors_seen.iter().any(|c: &String| c == next) => {
                return Err(ScanError::Protocol(
                    "the server's tools/list pagination repeats a cursor".to_owned(),
                ));
            }
            Some(next) => {
                cursors_seen.push(next.to_owned());
                cursor = Some(next.to_owned());
            }
        }
    }
    Err(ScanError::Protocol(format!(
        "the server's tools/list has more than {MAX_PAGES} pages"
    )))
}
