//! A running `portcullis serve` and a minimal HTTP/1.1 client for it (one request per
//! connection, `Connection: close`), so the tests need no HTTP library.

#![allow(dead_code, reason = "shared by several test files")]

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// How long the gateway may take to start listening.
const START_TIMEOUT: Duration = Duration::from_secs(20);

/// One HTTP response.
#[derive(Debug)]
pub(crate) struct Reply {
    pub(crate) status: u16,
    pub(crate) headers: HashMap<String, String>,
    pub(crate) body: String,
}

impl Reply {
    pub(crate) fn json(&self) -> Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", self.body))
    }

    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .get(&name.to_ascii_lowercase())
            .map(String::as_str)
    }
}

/// A temporary directory (by its canonical path) holding a `ws/` workspace and the
/// `portcullis.yaml` that `policy` writes for it; `serve.log` is where [`PolicyDir::serve`] logs.
pub(crate) struct PolicyDir {
    _dir: tempfile::TempDir,
    pub(crate) root: PathBuf,
}

impl PolicyDir {
    /// `policy` gets the root and returns the policy text.
    pub(crate) fn new(policy: impl FnOnce(&Path) -> String) -> PolicyDir {
        let dir = tempfile::tempdir().unwrap();
        let root = std::fs::canonicalize(dir.path()).unwrap();
        std::fs::create_dir(root.join("ws")).unwrap();
        std::fs::write(root.join("portcullis.yaml"), policy(&root)).unwrap();
        PolicyDir { _dir: dir, root }
    }

    pub(crate) fn policy(&self) -> PathBuf {
        self.root.join("portcullis.yaml")
    }

    pub(crate) fn log(&self) -> PathBuf {
        self.root.join("serve.log")
    }

    /// `portcullis serve` on this policy with `extra` arguments and `env`.
    pub(crate) fn serve(&self, extra: &[&str], env: &[(&str, &str)]) -> Serve {
        Serve::start_with_env(&self.policy(), &self.log(), extra, env)
    }
}

/// The headers of a request in `session`.
pub(crate) fn session_headers(session: &str) -> Vec<(&str, &str)> {
    vec![
        ("Mcp-Session-Id", session),
        ("MCP-Protocol-Version", "2025-06-18"),
    ]
}

/// `portcullis serve` on a free loopback port; killed on drop.
pub(crate) struct Serve {
    pub(crate) child: Child,
    pub(crate) port: u16,
}

impl Serve {
    /// Starts `portcullis serve --policy POLICY` with `extra` arguments, logging to `log`, and
    /// waits for `/healthz`.
    pub(crate) fn start(policy: &Path, log: &Path, extra: &[&str]) -> Serve {
        Self::start_with_env(policy, log, extra, &[])
    }

    /// [`Serve::start`] with `env` added to the gateway's environment.
    pub(crate) fn start_with_env(
        policy: &Path,
        log: &Path,
        extra: &[&str],
        env: &[(&str, &str)],
    ) -> Serve {
        let port = free_port();
        let child = Command::new(env!("CARGO_BIN_EXE_portcullis"))
            .arg("serve")
            .arg("--policy")
            .arg(policy)
            .arg("--listen")
            .arg(format!("127.0.0.1:{port}"))
            .args(extra)
            .env("PORTCULLIS_LOG", "info")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(log).unwrap())
            .spawn()
            .unwrap();
        let mut serve = Serve { child, port };
        let start = Instant::now();
        loop {
            if healthy(port) {
                return serve;
            }
            if let Ok(Some(status)) = serve.child.try_wait() {
                panic!(
                    "portcullis serve exited with {status}:\n{}",
                    std::fs::read_to_string(log).unwrap_or_default()
                );
            }
            assert!(
                start.elapsed() < START_TIMEOUT,
                "portcullis serve did not start"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub(crate) fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// POSTs `body` (JSON-RPC) to `path` with the usual MCP headers plus `headers`.
    pub(crate) fn post(&self, path: &str, headers: &[(&str, &str)], body: &Value) -> Reply {
        let mut all = vec![
            ("Content-Type", "application/json"),
            ("Accept", "application/json, text/event-stream"),
        ];
        all.extend_from_slice(headers);
        request(self.port, "POST", path, &all, body.to_string().as_bytes())
    }

    /// Initializes a session on `path`; returns its id.
    pub(crate) fn initialize(&self, path: &str, headers: &[(&str, &str)]) -> String {
        let reply = self.post(path, headers, &initialize_request());
        assert_eq!(reply.status, 200, "{reply:?}");
        assert!(
            reply.json()["result"]["protocolVersion"].is_string(),
            "{reply:?}"
        );
        let id = reply
            .header("mcp-session-id")
            .expect("a session id")
            .to_owned();
        let mut with_session = headers.to_vec();
        with_session.push(("Mcp-Session-Id", &id));
        let note = serde_json::json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
        assert_eq!(self.post(path, &with_session, &note).status, 202);
        id
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub(crate) fn initialize_request() -> Value {
    serde_json::json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
        "protocolVersion": "2025-11-25", "capabilities": {},
        "clientInfo": {"name": "portcullis-tests", "version": "0"}}})
}

pub(crate) fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Whether `/healthz` answers 200, without failing while the gateway is still starting.
fn healthy(port: u16) -> bool {
    let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let head =
        format!("GET /healthz HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n");
    let mut reply = String::new();
    stream.write_all(head.as_bytes()).is_ok()
        && stream.read_to_string(&mut reply).is_ok()
        && reply.starts_with("HTTP/1.1 200")
}

pub(crate) fn get(port: u16, path: &str) -> Reply {
    request(port, "GET", path, &[], b"")
}

/// One request; `Host: 127.0.0.1:PORT` unless `headers` names another.
pub(crate) fn request(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Reply {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    if !headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("host")) {
        head.push_str(&format!("Host: 127.0.0.1:{port}\r\n"));
    }
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).unwrap();
    stream.write_all(body).unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).unwrap();
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status line: {text:?}"));
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    Reply {
        status,
        headers,
        body: body.to_owned(),
    }
}

/// The sha256 of `text`, hex (as `printf %s TEXT | sha256sum` prints it), for `auth.api_keys`.
pub(crate) fn sha256(text: &str) -> String {
    let mut child = Command::new("sha256sum")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    String::from_utf8(out.stdout).unwrap()[..64].to_owned()
}
