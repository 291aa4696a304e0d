//! The demo's scripted agent: talks JSON-RPC to `portcullis run` over its stdio, one line a
//! message, exactly as an MCP client would.

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError, channel};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::DemoError;

/// How long the agent waits for one answer before giving up.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(30);

/// A running `portcullis run` with the agent on its stdio.
pub(super) struct Agent {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Receiver<String>,
    stderr: Option<JoinHandle<Vec<u8>>>,
    next_id: i64,
}

impl Agent {
    /// Starts `command` (the gateway) with piped stdio; its log is kept for when something fails.
    pub(super) fn start(mut command: Command) -> Result<Agent, DemoError> {
        let mut child = command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| DemoError::new(format!("cannot start `portcullis run`: {e}")))?;
        let (Some(stdout), Some(stderr)) = (child.stdout.take(), child.stderr.take()) else {
            return Err(DemoError::new(
                "the gateway's output is missing; this is a bug, please report",
            ));
        };
        let (tx, lines) = channel();
        thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let stderr = thread::spawn(move || {
            let mut buf = Vec::new();
            let _ = BufReader::new(stderr).read_to_end(&mut buf);
            buf
        });
        Ok(Agent {
            stdin: child.stdin.take(),
            child,
            lines,
            stderr: Some(stderr),
            next_id: 1,
        })
    }

    fn send(&mut self, message: &Value) -> Result<(), DemoError> {
        let stdin = self
            .stdin
            .as_mut()
            .ok_or_else(|| DemoError::new("the gateway's input is closed"))?;
        let mut bytes = serde_json::to_vec(message)
            .map_err(|e| DemoError::new(format!("cannot encode a message: {e}")))?;
        bytes.push(b'\n');
        stdin
            .write_all(&bytes)
            .and_then(|()| stdin.flush())
            .map_err(|e| DemoError::new(format!("cannot write to the gateway: {e}")))
    }

    /// Sends a request and waits for its answer (notifications in between are skipped).
    pub(super) fn request(&mut self, method: &str, params: Value) -> Result<Value, DemoError> {
        let id = self.start_request(method, params)?;
        self.answer(id, method)
    }

    /// Sends a request without waiting; [`Agent::answer`] collects its answer later.
    pub(super) fn start_request(&mut self, method: &str, params: Value) -> Result<i64, DemoError> {
        let id = self.next_id;
        self.next_id += 1;
        self.send(&json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}))?;
        Ok(id)
    }

    /// Waits for the answer to request `id` (notifications in between are skipped).
    pub(super) fn answer(&mut self, id: i64, method: &str) -> Result<Value, DemoError> {
        let deadline = Instant::now() + ANSWER_TIMEOUT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = match self.lines.recv_timeout(left) {
                Ok(line) => line,
                Err(RecvTimeoutError::Timeout) => {
                    return Err(DemoError::new(format!(
                        "no answer to `{method}` within {ANSWER_TIMEOUT:?}"
                    )));
                }
                Err(RecvTimeoutError::Disconnected) => {
                    return Err(DemoError::new(format!(
                        "the gateway closed its output before answering `{method}`"
                    )));
                }
            };
            let Ok(value) = serde_json::from_str::<Value>(&line) else {
                return Err(DemoError::new(format!(
                    "the gateway wrote something that is not JSON: {line}"
                )));
            };
            if value.get("method").is_none() && value.get("id") == Some(&json!(id)) {
                return Ok(value);
            }
        }
    }

    /// The MCP handshake; returns the server's name.
    pub(super) fn initialize(&mut self) -> Result<String, DemoError> {
        let answer = self.request(
            "initialize",
            json!({"protocolVersion": "2025-11-25", "capabilities": {},
                   "clientInfo": {"name": "portcullis-demo-agent", "version": env!("CARGO_PKG_VERSION")}}),
        )?;
        let name = answer
            .pointer("/result/serverInfo/name")
            .and_then(Value::as_str)
            .ok_or_else(|| DemoError::new(format!("initialize failed: {answer}")))?
            .to_owned();
        self.send(&json!({"jsonrpc": "2.0", "method": "notifications/initialized"}))?;
        Ok(name)
    }

    /// Closes the gateway's input and waits for it to exit; returns its log on failure.
    pub(super) fn finish(mut self) -> Result<(), DemoError> {
        drop(self.stdin.take());
        let deadline = Instant::now() + ANSWER_TIMEOUT;
        let status = loop {
            match self.child.try_wait() {
                Ok(Some(status)) => break status,
                Ok(None) if Instant::now() < deadline => thread::sleep(Duration::from_millis(20)),
                Ok(None) => return Err(DemoError::new("the gateway did not exit")),
                Err(e) => return Err(DemoError::new(format!("cannot wait for the gateway: {e}"))),
            }
        };
        if status.success() {
            Ok(())
        } else {
            Err(DemoError::new(format!(
                "the gateway exited with {status}; its log:\n{}",
                self.log()
            )))
        }
    }

    /// What the gateway logged so far (only complete once it has exited).
    pub(super) fn log(&mut self) -> String {
        self.stderr
            .take()
            .and_then(|handle| handle.join().ok())
            .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
            .unwrap_or_default()
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
