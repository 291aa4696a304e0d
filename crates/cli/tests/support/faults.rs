//! Fault-injection helpers (`faults_*.rs`): a gateway process started with any environment and
//! driven by raw JSON-RPC lines, the audit log read back through `portcullis audit`, and the
//! invariants every fault test asserts:
//!
//! - nothing forwarded without a durable audit record: every call the recording upstream received
//!   has an enforced `allow` decision record for exactly that tool and those arguments, written
//!   (lower sequence number) before the call's outcome record;
//! - nothing allowed that policy would deny: the test's denied calls carry a marker that must
//!   never reach the server;
//! - the chain verifies (`portcullis audit verify`), also after a crash and a restart.

#![allow(
    dead_code,
    reason = "each fault test file uses a different part of this module"
)]

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{Receiver, channel};
use std::time::Duration;

use serde_json::{Value, json};

/// Longest wait for one answer.
pub(crate) const WAIT: Duration = Duration::from_secs(20);

/// `portcullis audit ARGS --state-dir STATE`: (exit code, stdout, stderr).
pub(crate) fn audit_cli(state: &Path, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_portcullis"))
        .arg("audit")
        .args(args)
        .arg("--state-dir")
        .arg(state)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `portcullis audit verify` must pass.
pub(crate) fn assert_verifies(state: &Path) {
    let (code, out, err) = audit_cli(state, &["verify"]);
    assert_eq!(code, 0, "the audit chain does not verify:\n{out}{err}");
}

/// Every audit record, oldest first (`{seq, prev_hash, hash, event}`).
pub(crate) fn audit_records(state: &Path) -> Vec<Value> {
    let (code, out, err) = audit_cli(state, &["export", "--jsonl"]);
    assert_eq!(code, 0, "audit export failed: {err}");
    out.lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect()
}

/// The invariant "nothing forwarded without a durable audit record", checked on every call line
/// the upstream recorded. Returns how many calls the upstream received.
pub(crate) fn assert_every_forwarded_call_was_recorded(
    recording: &str,
    records: &[Value],
) -> usize {
    let mut outcomes: HashMap<&str, u64> = HashMap::new();
    for record in records {
        let event = &record["event"];
        if event["kind"] == json!("outcome") {
            outcomes.insert(
                event["decision_id"].as_str().unwrap(),
                record["seq"].as_u64().unwrap(),
            );
        }
    }
    let mut allows: HashMap<(String, String), Vec<(u64, &str)>> = HashMap::new();
    for record in records {
        let event = &record["event"];
        if event["kind"] == json!("decision")
            && event["decision"] == json!("allow")
            && event["enforced"] == json!(true)
            && event["method"] == json!("tools/call")
        {
            let key = (
                event["tool"].as_str().unwrap_or_default().to_owned(),
                event["args_redacted"].to_string(),
            );
            allows.entry(key).or_default().push((
                record["seq"].as_u64().unwrap(),
                event["decision_id"].as_str().unwrap(),
            ));
        }
    }
    let mut forwarded = 0;
    for line in recording.lines() {
        let message: Value = serde_json::from_str(line).unwrap_or_else(|e| {
            panic!("the upstream received a line that is not JSON ({e}): {line}")
        });
        if message["method"] != json!("tools/call") {
            continue;
        }
        forwarded += 1;
        let params = &message["params"];
        let arguments = params
            .get("arguments")
            .cloned()
            .unwrap_or_else(|| json!({}));
        let key = (
            params["name"].as_str().unwrap_or_default().to_owned(),
            arguments.to_string(),
        );
        let decisions = allows.get(&key).unwrap_or_else(|| {
            panic!("the upstream received a call with no durable allow record: {line}")
        });
        assert!(
            decisions
                .iter()
                .any(|(seq, id)| outcomes.get(id).is_none_or(|outcome| outcome > seq)),
            "the decision record of {line} is not before its outcome record"
        );
    }
    forwarded
}

/// Resident memory of a process, in KiB.
pub(crate) fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("no VmRSS in /proc/{pid}/status"))
}

/// `portcullis run` started by the test with any extra arguments and environment, its stderr in
/// a file, driven by raw lines.
pub(crate) struct Proc {
    pub(crate) child: Child,
    stdin: Option<ChildStdin>,
    lines: Receiver<String>,
}

impl Proc {
    pub(crate) fn start(
        policy: &Path,
        extra: &[&str],
        env: &[(&str, &str)],
        stderr: &Path,
    ) -> Proc {
        let mut command = Command::new(env!("CARGO_BIN_EXE_portcullis"));
        command
            .arg("run")
            .arg("--policy")
            .arg(policy)
            .args(extra)
            .env("PORTCULLIS_LOG", "info")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(stderr).unwrap());
        for (key, value) in env {
            command.env(key, value);
        }
        let mut child = command.spawn().unwrap();
        let stdin = child.stdin.take();
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Proc {
            child,
            stdin,
            lines,
        }
    }

    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Takes the gateway's stdin, for a writer thread.
    pub(crate) fn take_stdin(&mut self) -> ChildStdin {
        self.stdin.take().unwrap()
    }

    /// Takes the channel of the gateway's output lines, for a reader thread.
    pub(crate) fn take_lines(&mut self) -> Receiver<String> {
        std::mem::replace(&mut self.lines, channel().1)
    }

    pub(crate) fn send(&mut self, message: &Value) {
        let stdin = self.stdin.as_mut().unwrap();
        writeln!(stdin, "{message}").unwrap();
        stdin.flush().unwrap();
    }

    /// The next response with `id`, skipping notifications and other ids.
    pub(crate) fn response(&mut self, id: i64) -> Value {
        loop {
            let line = self
                .lines
                .recv_timeout(WAIT)
                .unwrap_or_else(|e| panic!("no answer to id {id} within {WAIT:?}: {e}"));
            let value: Value = serde_json::from_str(&line).unwrap();
            if value.get("method").is_none() && value["id"] == json!(id) {
                return value;
            }
        }
    }

    pub(crate) fn request(&mut self, id: i64, method: &str, params: Value) -> Value {
        self.send(&json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}));
        self.response(id)
    }

    pub(crate) fn call(&mut self, id: i64, tool: &str, arguments: Value) -> Value {
        self.request(
            id,
            "tools/call",
            json!({"name": tool, "arguments": arguments}),
        )
    }

    pub(crate) fn init(&mut self) {
        let answer = self.request(
            0,
            "initialize",
            json!({"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "faults", "version": "1"}}),
        );
        assert!(answer.get("result").is_some(), "{answer}");
        self.send(&json!({"jsonrpc": "2.0", "method": "notifications/initialized"}));
    }

    /// Still running?
    pub(crate) fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Closes stdin and waits for the exit code.
    pub(crate) fn finish(mut self) -> i32 {
        drop(self.stdin.take());
        let deadline = std::time::Instant::now() + WAIT;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.code().unwrap_or(-1);
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the gateway did not exit"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Is the answer an enforced allow that the server answered without error?
pub(crate) fn passed(answer: &Value) -> bool {
    answer["result"]["isError"] == json!(false)
}

/// The reason class of a `tools/call` denial (`None` if the answer is not a denial).
pub(crate) fn reason_class(answer: &Value) -> Option<String> {
    answer["result"]["_meta"]["io.portcullis/decision"]["reason_class"]
        .as_str()
        .map(str::to_owned)
}
