//! Shared helpers for the real-peer end-to-end tests (`peers_*.rs`).
//!
//! The peers (the npm filesystem server, `mcp-server-git`, the Python SDK driver) are installed by
//! `scripts/install-peers` into `.peers/` (or `$PORTCULLIS_PEERS_DIR`). A missing peer fails the
//! test with a message saying so: these tests are the gateway's acceptance tests, and a skipped
//! acceptance test reads as a passed one.
#![allow(
    dead_code,
    unreachable_pub,
    reason = "each test file uses a different part of this module"
)]

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitStatus, Output, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError, channel};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

/// How long one driver run or one raw response may take before the test fails. Generous: the
/// machine is shared, and node takes ~0.5 s to start the filesystem server.
pub const TIMEOUT: Duration = Duration::from_secs(45);

/// The `portcullis` binary under test.
pub fn portcullis() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_portcullis"))
}

/// The repository root.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Paths of the installed peers.
#[derive(Debug, Clone)]
pub struct Peers {
    /// `mcp-server-filesystem DIR...` (npm).
    pub filesystem: PathBuf,
    /// `mcp-server-git --repository DIR` (PyPI).
    pub git: PathBuf,
    /// The venv's Python, with the `mcp` SDK.
    pub python: PathBuf,
    /// `peers/python/mcp_client.py`, the scripted SDK client.
    pub driver: PathBuf,
}

impl Peers {
    /// The installed peers, or a test failure telling the reader how to install them.
    pub fn require() -> Peers {
        let dir = std::env::var_os("PORTCULLIS_PEERS_DIR")
            .map_or_else(|| repo_root().join(".peers"), PathBuf::from);
        let peers = Peers {
            filesystem: dir.join("node/node_modules/.bin/mcp-server-filesystem"),
            git: dir.join("venv/bin/mcp-server-git"),
            python: dir.join("venv/bin/python"),
            driver: repo_root().join("peers/python/mcp_client.py"),
        };
        for path in [&peers.filesystem, &peers.git, &peers.python, &peers.driver] {
            assert!(
                path.exists(),
                "real MCP peer `{}` is not installed: run `scripts/install-peers` first \
                 (scripts/test does); these end-to-end tests never skip",
                path.display()
            );
        }
        peers
    }
}

/// A temporary world for one test: a workspace the server may use, a secret beside it, a state
/// directory, and the policy file.
pub struct World {
    _tmp: tempfile::TempDir,
    /// The temp root (canonical, so the server and the gateway agree on every path).
    pub root: PathBuf,
    /// The workspace the server is started on.
    pub ws: PathBuf,
    /// The audit state directory.
    pub state: PathBuf,
    /// The policy file (written by [`World::policy`]).
    pub policy: PathBuf,
}

/// The secret's content: it must never appear in any answer.
pub const SECRET: &str = "hunter2-top-secret";

impl World {
    /// A fresh world: `ws/hello.txt`, `ws/sub/`, `secret.txt` outside the workspace.
    pub fn new() -> World {
        let tmp = tempfile::tempdir().expect("temp dir");
        let root = tmp.path().canonicalize().expect("canonical temp dir");
        let ws = root.join("ws");
        std::fs::create_dir_all(ws.join("sub")).expect("workspace");
        std::fs::write(ws.join("hello.txt"), "hello from the workspace\n").expect("hello");
        std::fs::write(root.join("secret.txt"), format!("{SECRET}\n")).expect("secret");
        World {
            state: root.join("state"),
            policy: root.join("portcullis.yaml"),
            _tmp: tmp,
            root,
            ws,
        }
    }

    /// Writes the policy: `{WS}`, `{ROOT}` and `{STATE}` are replaced by this world's paths and
    /// `{FS}`, `{GIT}` by the peers' executables.
    pub fn policy(&self, peers: &Peers, template: &str) {
        let text = self.expand(peers, template);
        std::fs::write(&self.policy, text).expect("write policy");
    }

    /// `template` with this world's and the peers' paths substituted.
    pub fn expand(&self, peers: &Peers, template: &str) -> String {
        template
            .replace("{WS}", &self.ws.display().to_string())
            .replace("{ROOT}", &self.root.display().to_string())
            .replace("{STATE}", &self.state.display().to_string())
            .replace("{FS}", &peers.filesystem.display().to_string())
            .replace("{GIT}", &peers.git.display().to_string())
    }

    /// `path` inside the workspace, as a string.
    pub fn ws_path(&self, rel: &str) -> String {
        format!("{}/{rel}", self.ws.display())
    }

    /// The argv of `portcullis run` for this world's policy, with `extra` appended (for example
    /// `["--", "server", "args"]`).
    pub fn run_argv(&self, extra: &[&str]) -> Vec<String> {
        let mut argv = vec![
            portcullis().display().to_string(),
            "run".to_owned(),
            "--policy".to_owned(),
            self.policy.display().to_string(),
        ];
        argv.extend(extra.iter().map(|s| (*s).to_owned()));
        argv
    }

    /// Runs `portcullis audit ARGS... --state-dir STATE`.
    pub fn audit(&self, args: &[&str]) -> Output {
        let mut cmd = Command::new(portcullis());
        cmd.arg("audit")
            .args(args)
            .arg("--state-dir")
            .arg(&self.state);
        run_with_timeout(cmd, None)
    }

    /// Opens the audit database for tampering.
    pub fn audit_db(&self) -> rusqlite::Connection {
        rusqlite::Connection::open(self.state.join("state.db")).expect("open state.db")
    }
}

/// Runs the Python SDK driver with `steps` against `gateway` (an argv). Returns its JSON output
/// and the driver's stderr (which carries the gateway's log).
pub fn sdk_session(peers: &Peers, gateway: &[String], steps: &Value) -> (Value, String) {
    let mut cmd = Command::new(&peers.python);
    cmd.arg(&peers.driver)
        .arg("--script")
        .arg("-")
        .arg("--timeout")
        .arg("30")
        .arg("--")
        .args(gateway);
    let script = serde_json::to_vec(steps).expect("steps");
    let out = run_with_timeout(cmd, Some(&script));
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        out.status.success(),
        "the SDK driver failed ({}):\nstdout: {stdout}\nstderr: {stderr}",
        out.status
    );
    let value: Value = serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("driver output is not JSON ({e}):\n{stdout}\nstderr: {stderr}"));
    let results = value["results"].as_array().map_or(0, Vec::len);
    let wanted = steps.as_array().map_or(0, Vec::len);
    assert_eq!(
        results, wanted,
        "one result per step expected:\n{value:#}\nstderr: {stderr}"
    );
    (value, stderr)
}

/// Runs `cmd` (stdin from `input`), failing the test if it takes longer than [`TIMEOUT`].
pub fn run_with_timeout(mut cmd: Command, input: Option<&[u8]>) -> Output {
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {cmd:?}: {e}"));
    let mut stdin = child.stdin.take().expect("stdin");
    let input = input.map(<[u8]>::to_vec).unwrap_or_default();
    let writer = thread::spawn(move || {
        // The child may exit without reading; a broken pipe here is its business.
        let _ = stdin.write_all(&input);
    });
    let out = collect(child.stdout.take().expect("stdout"));
    let err = collect(child.stderr.take().expect("stderr"));
    let status = wait_with_timeout(&mut child, TIMEOUT, &format!("{cmd:?}"));
    let _ = writer.join();
    Output {
        status,
        stdout: out.join().expect("stdout reader"),
        stderr: err.join().expect("stderr reader"),
    }
}

fn collect(mut from: impl Read + Send + 'static) -> thread::JoinHandle<Vec<u8>> {
    thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = from.read_to_end(&mut buf);
        buf
    })
}

/// Waits for `child`, killing it and failing the test after `timeout`.
pub fn wait_with_timeout(child: &mut Child, timeout: Duration, what: &str) -> ExitStatus {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            return status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{what} did not finish within {timeout:?}");
        }
        thread::sleep(Duration::from_millis(20));
    }
}

/// The result of a `call_tool` step, as the SDK driver reports it.
pub fn step(session: &Value, index: usize) -> &Value {
    &session["results"][index]
}

/// The concatenated text content of a tool result (SDK driver or raw wire form).
pub fn text_of(result: &Value) -> String {
    result["content"]
        .as_array()
        .map(|blocks| {
            blocks
                .iter()
                .filter_map(|b| b["text"].as_str())
                .collect::<Vec<_>>()
                .join("\n")
        })
        .unwrap_or_default()
}

/// Asserts that an SDK `call_tool` result is a Portcullis refusal with `rule` and `class`, and
/// returns its decision id.
pub fn assert_refused(result: &Value, rule: &str, class: &str) -> String {
    assert_eq!(result["is_error"], json!(true), "not an error: {result:#}");
    let structured = &result["structured"];
    assert_eq!(structured["rule"], json!(rule), "wrong rule in {result:#}");
    assert_eq!(
        structured["reason_class"],
        json!(class),
        "wrong reason class in {result:#}"
    );
    let decision_id = structured["decision_id"]
        .as_str()
        .unwrap_or_else(|| panic!("no decision id in {result:#}"))
        .to_owned();
    assert!(!decision_id.is_empty(), "empty decision id: {result:#}");
    let text = text_of(result);
    assert!(
        text.contains(rule) && text.contains(&decision_id),
        "the text the model reads must name the rule and the decision id: {text}"
    );
    assert!(
        !text.contains(SECRET),
        "a refusal leaked the secret: {text}"
    );
    decision_id
}

/// A gateway driven by raw JSON-RPC lines on its stdin.
pub struct RawGateway {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Receiver<String>,
    stderr: Option<thread::JoinHandle<Vec<u8>>>,
    /// Every message the gateway wrote so far, in order.
    pub seen: Vec<Value>,
}

impl RawGateway {
    /// Starts `argv` (a `portcullis run` command line).
    pub fn start(argv: &[String]) -> RawGateway {
        let (program, args) = argv.split_first().expect("argv");
        let mut child = Command::new(program)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {argv:?}: {e}"));
        let stdout = child.stdout.take().expect("stdout");
        let (tx, lines) = channel();
        thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let stderr = collect(child.stderr.take().expect("stderr"));
        RawGateway {
            stdin: child.stdin.take(),
            child,
            lines,
            stderr: Some(stderr),
            seen: Vec::new(),
        }
    }

    /// Sends one raw line (a newline is added).
    pub fn send_raw(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().expect("stdin open");
        stdin.write_all(line.as_bytes()).expect("write");
        stdin.write_all(b"\n").expect("write");
        stdin.flush().expect("flush");
    }

    /// Sends one message.
    pub fn send(&mut self, message: &Value) {
        self.send_raw(&message.to_string());
    }

    /// The next response with `id` (`null` for an error about an unreadable request), skipping
    /// notifications and other ids (they stay in [`RawGateway::seen`]).
    pub fn response(&mut self, id: &Value) -> Value {
        let deadline = Instant::now() + TIMEOUT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    let value: Value = serde_json::from_str(&line)
                        .unwrap_or_else(|e| panic!("gateway wrote non-JSON ({e}): {line}"));
                    self.seen.push(value.clone());
                    if value.get("method").is_none() && value["id"] == *id {
                        return value;
                    }
                }
                Err(RecvTimeoutError::Timeout) => panic!("no response to id {id} in {TIMEOUT:?}"),
                Err(RecvTimeoutError::Disconnected) => {
                    panic!("the gateway closed its output before answering id {id}")
                }
            }
        }
    }

    /// Sends a request and returns its response.
    pub fn request(&mut self, id: i64, method: &str, params: Value) -> Value {
        self.send(&json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}));
        self.response(&json!(id))
    }

    /// The MCP handshake: `initialize` and `notifications/initialized`.
    pub fn initialize(&mut self) -> Value {
        let init = self.request(
            0,
            "initialize",
            json!({"protocolVersion": "2025-11-25", "capabilities": {},
                   "clientInfo": {"name": "portcullis-e2e", "version": "0"}}),
        );
        assert!(init.get("result").is_some(), "initialize failed: {init}");
        self.send(&json!({"jsonrpc": "2.0", "method": "notifications/initialized"}));
        init
    }

    /// A `tools/call` and its response.
    pub fn call(&mut self, id: i64, tool: &str, arguments: Value) -> Value {
        self.request(
            id,
            "tools/call",
            json!({"name": tool, "arguments": arguments}),
        )
    }

    /// Closes the gateway's stdin and waits for it to exit; returns its status and stderr.
    pub fn finish(mut self) -> (ExitStatus, String) {
        drop(self.stdin.take());
        let status = wait_with_timeout(&mut self.child, TIMEOUT, "portcullis run");
        let stderr = self
            .stderr
            .take()
            .map(|h| h.join().expect("stderr reader"))
            .unwrap_or_default();
        (status, String::from_utf8_lossy(&stderr).into_owned())
    }
}

impl Drop for RawGateway {
    fn drop(&mut self) {
        // A failed assertion must not leave a gateway (and its server) running.
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
