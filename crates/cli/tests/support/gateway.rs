//! Shared harness: the real `portcullis run` with the testkit echo server as upstream, driven by
//! raw JSON-RPC lines.

// Each test file uses a different part of the harness.
#![allow(dead_code, reason = "shared by several test files")]

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::OnceLock;
use std::sync::mpsc::{Receiver, RecvTimeoutError, channel};
use std::time::Duration;

use serde_json::{Value, json};

/// Longest wait for one answer; generous for a loaded machine, never reached when things work.
pub(crate) const ANSWER_TIMEOUT: Duration = Duration::from_secs(10);

/// Where Debian's `faketime` package puts the library (for clock tests: `LD_PRELOAD` it).
pub(crate) const LIBFAKETIME: &[&str] = &[
    "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1",
    "/usr/lib/aarch64-linux-gnu/faketime/libfaketime.so.1",
    "/usr/lib/faketime/libfaketime.so.1",
];

pub(crate) fn libfaketime() -> &'static str {
    LIBFAKETIME
        .iter()
        .find(|p| Path::new(p).exists())
        .copied()
        .unwrap_or_else(|| {
            panic!(
                "libfaketime is not installed (looked in {LIBFAKETIME:?}): run \
                 `scripts/install-system-deps` (apt-get install faketime); the clock-jump tests never skip"
            )
        })
}

/// The real MCP peer `name` from `.peers/` (or `PORTCULLIS_PEERS_DIR`), installed by
/// `scripts/install-peers`; fails with how to install it when it is missing.
pub(crate) fn node_peer(name: &str) -> PathBuf {
    let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let dir =
        std::env::var_os("PORTCULLIS_PEERS_DIR").map_or_else(|| repo.join(".peers"), PathBuf::from);
    let bin = dir.join("node/node_modules/.bin").join(name);
    assert!(
        bin.exists(),
        "{} is missing: run scripts/install-peers (scripts/test does) to install the real MCP peers",
        bin.display()
    );
    std::fs::canonicalize(bin).unwrap()
}

/// The echo server binary, built once per test process (a dev-dependency's binaries are not
/// built by `cargo test`, so we ask cargo for it; a no-op when it is fresh).
pub(crate) fn echo_server() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let portcullis = PathBuf::from(env!("CARGO_BIN_EXE_portcullis"));
        let profile_dir = portcullis.parent().unwrap().to_path_buf();
        let target_dir = profile_dir.parent().unwrap().to_path_buf();
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
        let mut build = Command::new(cargo);
        build
            .args([
                "build",
                "-q",
                "-p",
                "portcullis-testkit",
                "--bin",
                "portcullis-echo-server",
            ])
            .arg("--target-dir")
            .arg(&target_dir)
            .current_dir(env!("CARGO_MANIFEST_DIR"));
        if profile_dir.file_name().is_some_and(|n| n == "release") {
            build.arg("--release");
        }
        let status = build.status().expect("run cargo build for the echo server");
        assert!(status.success(), "building portcullis-echo-server failed");
        profile_dir.join("portcullis-echo-server")
    })
}

/// A temp workspace with a policy for the echo server.
pub(crate) struct Setup {
    pub(crate) dir: tempfile::TempDir,
    /// Canonical root of `dir`.
    pub(crate) root: PathBuf,
    /// The workspace the policy allows (`root/ws`).
    pub(crate) ws: PathBuf,
    pub(crate) policy: PathBuf,
    pub(crate) record: PathBuf,
    pub(crate) stderr: PathBuf,
}

/// Rules for the tests: echo-like tools allowed, reads and writes under the workspace allowed,
/// `.env` denied, `approve_me` needs an approval, `limited` carries a limit, `kill_me` kills.
pub(crate) fn policy_text(ws: &Path, record: &Path, mode: &str) -> String {
    format!(
        r#"version: 1
mode: {mode}
servers:
  echo:
    command: [{bin}]
    cwd: {ws}
    env: {{ PORTCULLIS_ECHO_RECORD: {record} }}
tools:
  echo.echo: {{ effect: read }}
  echo.read_file: {{ effect: read, args: {{ path: path }} }}
  echo.write_file: {{ effect: write, args: {{ path: path }} }}
rules:
  - id: echo-ok
    when: {{ server: echo, tool: [echo, crash, garbage, ghost, malformed_reply, sample, roots] }}
    decision: allow
  - id: read-ws
    when: {{ server: echo, tool: read_file, args: {{ path: {{ under: {ws} }} }} }}
    decision: allow
  - id: write-ws
    when: {{ server: echo, tool: write_file, args: {{ path: {{ under: {ws} }} }} }}
    decision: allow
  - id: deny-secrets
    when: {{ server: echo, args: {{ path: {{ glob: ["**/.env"] }} }} }}
    decision: deny
    on_deny: secrets are off limits
  - id: needs-approval
    when: {{ server: echo, tool: approve_me }}
    decision: require_approval
  - id: limited
    when: {{ server: echo, tool: limited }}
    decision: allow
    limit: {{ calls: 5, per: 1h, by: session }}
  - id: killer
    when: {{ server: echo, tool: kill_me }}
    decision: kill_session
  - id: resource-ok
    when: {{ server: echo, method: resources/read, tool: "file:///ok/**" }}
    decision: allow
hide: [echo.hidden_tool]
"#,
        bin = echo_server().display(),
        ws = ws.display(),
        record = record.display(),
    )
}

impl Setup {
    pub(crate) fn new() -> Self {
        Self::with_mode("enforce")
    }

    pub(crate) fn with_mode(mode: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let root = std::fs::canonicalize(dir.path()).unwrap();
        let ws = root.join("ws");
        std::fs::create_dir(&ws).unwrap();
        let policy = root.join("portcullis.yaml");
        let record = root.join("recording.jsonl");
        std::fs::write(&policy, policy_text(&ws, &record, mode)).unwrap();
        let stderr = root.join("stderr.log");
        Setup {
            dir,
            root,
            ws,
            policy,
            record,
            stderr,
        }
    }

    /// Every line the upstream received.
    pub(crate) fn recording(&self) -> String {
        std::fs::read_to_string(&self.record).unwrap_or_default()
    }

    pub(crate) fn log(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    pub(crate) fn state_dir(&self) -> PathBuf {
        self.root.join(".portcullis")
    }

    pub(crate) fn start(&self) -> Gateway {
        self.start_with(&[])
    }

    /// `portcullis run --policy POLICY EXTRA...`.
    pub(crate) fn start_with(&self, extra: &[&str]) -> Gateway {
        let mut child = Command::new(env!("CARGO_BIN_EXE_portcullis"))
            .arg("run")
            .arg("--policy")
            .arg(&self.policy)
            .args(extra)
            .env("PORTCULLIS_LOG", "info")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&self.stderr).unwrap())
            .spawn()
            .unwrap();
        let stdin = child.stdin.take().unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Gateway {
            child,
            stdin: Some(stdin),
            lines: rx,
        }
    }
}

pub(crate) struct Gateway {
    pub(crate) child: Child,
    stdin: Option<ChildStdin>,
    lines: Receiver<String>,
}

impl Gateway {
    pub(crate) fn send_raw(&mut self, bytes: &[u8]) {
        let stdin = self.stdin.as_mut().unwrap();
        stdin.write_all(bytes).unwrap();
        stdin.write_all(b"\n").unwrap();
        stdin.flush().unwrap();
    }

    pub(crate) fn send(&mut self, value: &Value) {
        self.send_raw(value.to_string().as_bytes());
    }

    /// The next line from the gateway, parsed.
    pub(crate) fn recv(&mut self) -> Value {
        let line = self
            .lines
            .recv_timeout(ANSWER_TIMEOUT)
            .expect("an answer from the gateway");
        serde_json::from_str(&line)
            .unwrap_or_else(|e| panic!("gateway wrote non-JSON {line:?}: {e}"))
    }

    /// Nothing more arrives within `wait`.
    pub(crate) fn assert_silent(&mut self, wait: Duration) {
        match self.lines.recv_timeout(wait) {
            Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => {}
            Ok(line) => panic!("unexpected line from the gateway: {line}"),
        }
    }

    /// Sends a request and returns its answer.
    pub(crate) fn request(&mut self, id: i64, method: &str, params: Value) -> Value {
        self.send(&json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}));
        let answer = self.recv();
        assert_eq!(
            answer["id"],
            json!(id),
            "answer to the wrong request: {answer}"
        );
        answer
    }

    pub(crate) fn call(&mut self, id: i64, tool: &str, arguments: Value) -> Value {
        self.request(
            id,
            "tools/call",
            json!({"name": tool, "arguments": arguments}),
        )
    }

    /// `initialize` + `notifications/initialized`.
    pub(crate) fn init(&mut self) {
        let answer = self.request(
            0,
            "initialize",
            json!({"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}),
        );
        assert!(answer.get("result").is_some(), "{answer}");
        self.send(&json!({"jsonrpc": "2.0", "method": "notifications/initialized"}));
    }

    /// Closes the gateway's input and waits for it to exit; returns its exit code.
    pub(crate) fn finish(mut self) -> i32 {
        drop(self.stdin.take());
        self.wait()
    }

    pub(crate) fn wait(&mut self) -> i32 {
        let deadline = std::time::Instant::now() + ANSWER_TIMEOUT;
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

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The structured denial of a `tools/call` answer.
pub(crate) fn denial(answer: &Value) -> &Value {
    let result = &answer["result"];
    assert_eq!(result["isError"], json!(true), "not a denial: {answer}");
    assert_eq!(
        result["_meta"]["io.portcullis/decision"],
        result["structuredContent"]
    );
    &result["structuredContent"]
}
