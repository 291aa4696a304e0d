//! End-to-end: the official Python SDK client over Streamable HTTP, through the real
//! `portcullis serve`, in front of two real servers (`@modelcontextprotocol/server-everything`
//! and `@modelcontextprotocol/server-filesystem`, both stdio). Aggregation with namespaced calls,
//! a denied call, 401 without a key, 403 for a foreign Origin, and a session id replayed by
//! another principal.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    reason = "test code"
)]

#[path = "support/http.rs"]
mod http;
mod support;

use std::path::PathBuf;
use std::process::Command;

use http::{Serve, sha256};
use serde_json::{Value, json};
use support::{Peers, repo_root, run_with_timeout};

struct World {
    _dir: tempfile::TempDir,
    root: PathBuf,
    peers: Peers,
}

fn everything(peers: &Peers) -> PathBuf {
    let bin = peers.filesystem.with_file_name("mcp-server-everything");
    assert!(
        bin.exists(),
        "real MCP peer `{}` is not installed: run `scripts/install-peers` first; these end-to-end tests never skip",
        bin.display()
    );
    bin
}

impl World {
    fn new() -> World {
        let peers = Peers::require();
        let dir = tempfile::tempdir().unwrap();
        let root = std::fs::canonicalize(dir.path()).unwrap();
        let ws = root.join("ws");
        std::fs::create_dir(&ws).unwrap();
        std::fs::write(ws.join("notes.txt"), "hello from the workspace\n").unwrap();
        std::fs::write(ws.join(".env"), "TOKEN=do-not-leak\n").unwrap();
        let policy = format!(
            r#"version: 1
servers:
  everything: {{ command: [{everything}] }}
  fs: {{ command: [{fs}, {ws}], cwd: {ws} }}
tools:
  fs.read_text_file: {{ effect: read, args: {{ path: path, head: number, tail: number }} }}
rules:
  - id: everything-echo
    when: {{ server: everything, tool: [echo, get-sum] }}
    decision: allow
  - id: read-ws
    when: {{ server: fs, tool: read_text_file, args: {{ path: {{ under: {ws} }} }} }}
    decision: allow
  - id: deny-secrets
    when: {{ server: fs, args: {{ path: {{ glob: ["**/.env"] }} }} }}
    decision: deny
    on_deny: secrets are off limits
auth:
  api_keys:
    - {{ principal: alice, sha256: {alice} }}
    - {{ principal: bob, sha256: {bob} }}
"#,
            everything = everything(&peers).display(),
            fs = peers.filesystem.display(),
            ws = ws.display(),
            alice = sha256("alice-key"),
            bob = sha256("bob-key"),
        );
        std::fs::write(root.join("portcullis.yaml"), policy).unwrap();
        World {
            _dir: dir,
            root,
            peers,
        }
    }

    fn serve(&self) -> Serve {
        Serve::start(
            &self.root.join("portcullis.yaml"),
            &self.root.join("serve.log"),
            &[],
        )
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.root.join("serve.log")).unwrap_or_default()
    }

    /// Runs the SDK driver against `url` with `headers`; returns its exit code and JSON output.
    fn sdk(&self, url: &str, headers: &[&str], steps: &Value) -> (i32, Value) {
        let mut cmd = Command::new(&self.peers.python);
        cmd.arg(repo_root().join("peers/python/mcp_client.py"))
            .args(["--script", "-", "--timeout", "30", "--http", url]);
        for header in headers {
            cmd.args(["--header", header]);
        }
        let out = run_with_timeout(cmd, Some(&serde_json::to_vec(steps).unwrap()));
        let stdout = String::from_utf8_lossy(&out.stdout);
        let value = serde_json::from_str(&stdout).unwrap_or_else(|e| {
            panic!(
                "driver output is not JSON ({e}): {stdout}\nstderr: {}\ngateway: {}",
                String::from_utf8_lossy(&out.stderr),
                self.log()
            )
        });
        (out.status.code().unwrap_or(-1), value)
    }
}

fn text(result: &Value) -> &str {
    result["content"][0]["text"].as_str().unwrap_or_default()
}

#[test]
fn sdk_client_uses_two_servers_through_the_aggregate_endpoint() {
    let world = World::new();
    let serve = world.serve();
    let ws = world.root.join("ws");
    let steps = json!([
        {"op": "list_tools"},
        {"op": "call_tool", "name": "everything__echo", "arguments": {"message": "hi there"}},
        {"op": "call_tool", "name": "fs__read_text_file", "arguments": {"path": ws.join("notes.txt")}},
        {"op": "call_tool", "name": "fs__read_text_file", "arguments": {"path": ws.join(".env")}},
        {"op": "call_tool", "name": "everything__get-env", "arguments": {}},
        {"op": "call_tool", "name": "nosuch__tool", "arguments": {}},
    ]);
    let (code, out) = world.sdk(
        &serve.url("/mcp"),
        &["Authorization: Bearer alice-key"],
        &steps,
    );
    assert_eq!(code, 0, "{out:#}\n{}", world.log());
    assert_eq!(out["server_info"]["name"], json!("portcullis"), "{out:#}");
    let results = out["results"].as_array().unwrap();
    let names: Vec<&str> = results[0]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|t| t["name"].as_str())
        .collect();
    for wanted in [
        "everything__echo",
        "everything__get-sum",
        "fs__read_text_file",
    ] {
        assert!(names.contains(&wanted), "{wanted} missing from {names:?}");
    }
    // Tools no rule allows are left out of the list (vetting), on the aggregate endpoint too.
    for hidden in ["everything__get-env", "fs__write_file"] {
        assert!(!names.contains(&hidden), "{hidden} listed in {names:?}");
    }
    assert_eq!(results[1]["is_error"], json!(false), "{:#}", results[1]);
    assert!(text(&results[1]).contains("hi there"), "{:#}", results[1]);
    assert_eq!(results[2]["is_error"], json!(false), "{:#}", results[2]);
    assert_eq!(text(&results[2]), "hello from the workspace\n");
    // Denied by rule, by default, and unroutable: refusals the model can read.
    for (index, rule) in [
        (3, "deny-secrets"),
        (4, "default-deny"),
        (5, "unroutable-tool"),
    ] {
        let result = &results[index];
        assert_eq!(result["is_error"], json!(true), "{result:#}");
        assert!(
            text(result).contains(&format!("rule `{rule}`")),
            "{result:#}"
        );
        assert!(!text(result).contains("do-not-leak"), "{result:#}");
    }
}

#[test]
fn sdk_client_without_a_key_or_from_a_foreign_origin_cannot_connect() {
    let world = World::new();
    let serve = world.serve();
    let steps = json!([{"op": "list_tools"}]);
    let (code, out) = world.sdk(&serve.url("/mcp"), &[], &steps);
    assert_eq!(code, 1, "{out:#}");
    assert!(
        out["connect_error"]
            .as_str()
            .unwrap()
            .contains("Unauthorized"),
        "{out:#}"
    );
    let (code, out) = world.sdk(
        &serve.url("/mcp"),
        &[
            "Authorization: Bearer alice-key",
            "Origin: http://evil.example.com",
        ],
        &steps,
    );
    assert_eq!(code, 1, "{out:#}");
    assert!(
        out["connect_error"]
            .as_str()
            .unwrap()
            .contains("Forbidden: Origin not allowed"),
        "{out:#}"
    );
    assert!(
        world
            .log()
            .contains("refused a request from a foreign Origin"),
        "{}",
        world.log()
    );
}

#[test]
fn sdk_client_cannot_use_another_principals_session() {
    let world = World::new();
    let serve = world.serve();
    let alice = serve.initialize("/mcp/everything", &[("Authorization", "Bearer alice-key")]);
    // Bob presents Alice's session id on every request, including his initialize.
    let steps = json!([{"op": "call_tool", "name": "echo", "arguments": {"message": "hijack"}}]);
    let session = format!("Mcp-Session-Id: {alice}");
    let (code, out) = world.sdk(
        &serve.url("/mcp/everything"),
        &["Authorization: Bearer bob-key", &session],
        &steps,
    );
    assert_eq!(code, 1, "{out:#}");
    assert!(
        out["connect_error"]
            .as_str()
            .unwrap()
            .contains("Not Found: unknown session"),
        "{out:#}"
    );
    assert!(
        world
            .log()
            .contains("refused a session id that belongs to another principal"),
        "{}",
        world.log()
    );
    // Alice's session is untouched.
    let ping = json!({"jsonrpc": "2.0", "id": 5, "method": "ping"});
    let reply = serve.post(
        "/mcp/everything",
        &[
            ("Authorization", "Bearer alice-key"),
            ("Mcp-Session-Id", &alice),
        ],
        &ping,
    );
    assert_eq!(reply.status, 200, "{reply:?}");
}

#[test]
fn conformance_suite_passes_through_the_gateway() {
    Peers::require();
    // The script bounds each suite run itself (`timeout`), so no harness timeout here.
    let out = Command::new(repo_root().join("scripts/conformance"))
        .env("PORTCULLIS_BIN", env!("CARGO_BIN_EXE_portcullis"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "scripts/conformance failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("dns-rebinding-protection"), "{stdout}");
}

/// `mcp-server-everything streamableHttp` on a free loopback port; killed on drop.
struct HttpEverything {
    child: std::process::Child,
    port: u16,
}

impl HttpEverything {
    fn start(peers: &Peers, log: &std::path::Path) -> HttpEverything {
        let port = http::free_port();
        let child = Command::new(everything(peers))
            .arg("streamableHttp")
            .env("PORT", port.to_string())
            .stdin(std::process::Stdio::null())
            .stdout(std::fs::File::create(log).unwrap())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let start = std::time::Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                start.elapsed() < std::time::Duration::from_secs(30),
                "server-everything did not listen"
            );
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        HttpEverything { child, port }
    }
}

impl Drop for HttpEverything {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn sdk_client_reaches_an_http_server_and_a_stdio_server_with_progress_and_elicitation() {
    let world = World::new();
    let remote = HttpEverything::start(&world.peers, &world.root.join("remote.log"));
    let policy = format!(
        r#"version: 1
servers:
  remote: {{ url: "http://127.0.0.1:{port}/mcp", headers: {{ X-Gateway: portcullis }} }}
  local: {{ command: [{everything}] }}
rules:
  - id: demo-tools
    when: {{ tool: [echo, trigger-long-running-operation, trigger-elicitation-request, get-roots-list] }}
    decision: allow
auth:
  api_keys:
    - {{ principal: alice, sha256: {alice} }}
"#,
        port = remote.port,
        everything = everything(&world.peers).display(),
        alice = sha256("alice-key"),
    );
    std::fs::write(world.root.join("portcullis.yaml"), policy).unwrap();
    let serve = world.serve();
    let steps = json!([
        {"op": "list_tools"},
        {"op": "call_tool", "name": "remote__echo", "arguments": {"message": "over http"}},
        {"op": "call_tool", "name": "local__echo", "arguments": {"message": "over stdio"}},
        {"op": "call_tool", "name": "remote__get-env", "arguments": {}},
        {"op": "call_tool", "name": "remote__trigger-long-running-operation",
         "arguments": {"duration": 1, "steps": 2}, "progress": true},
        {"op": "call_tool", "name": "local__trigger-long-running-operation",
         "arguments": {"duration": 1, "steps": 2}, "progress": true},
        {"op": "call_tool", "name": "remote__trigger-elicitation-request", "arguments": {}},
        {"op": "call_tool", "name": "local__get-roots-list", "arguments": {}},
    ]);
    let mut cmd = Command::new(&world.peers.python);
    cmd.arg(repo_root().join("peers/python/mcp_client.py"))
        .args([
            "--script",
            "-",
            "--timeout",
            "30",
            "--http",
            &serve.url("/mcp"),
            "--header",
            "Authorization: Bearer alice-key",
            "--elicit",
            "accept",
            "--elicit-content",
            r#"{"name": "Ann"}"#,
            "--root",
            "file:///srv/project",
        ]);
    let out = run_with_timeout(cmd, Some(&serde_json::to_vec(&steps).unwrap()));
    let out: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "driver output is not JSON ({e}): {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            world.log()
        )
    });
    let results = out["results"].as_array().unwrap();
    let names: Vec<&str> = results[0]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|t| t["name"].as_str())
        .collect();
    assert!(names.contains(&"remote__echo"), "{names:?}");
    assert!(names.contains(&"local__echo"), "{names:?}");
    assert!(!names.contains(&"remote__get-env"), "{names:?}");
    assert_eq!(text(&results[1]), "Echo: over http", "{:#}", results[1]);
    assert_eq!(text(&results[2]), "Echo: over stdio", "{:#}", results[2]);
    assert!(
        text(&results[3]).contains("rule `default-deny`"),
        "{:#}",
        results[3]
    );
    for index in [4, 5] {
        let result = &results[index];
        assert_eq!(result["is_error"], json!(false), "{result:#}");
        assert_eq!(
            result["progress"].as_array().map(Vec::len),
            Some(2),
            "progress notifications reach the HTTP client: {result:#}"
        );
    }
    // The HTTP server's elicitation reached the client over HTTP and its answer came back.
    assert!(
        results[6]["content"].to_string().contains("Ann"),
        "{:#}\n{}",
        results[6],
        world.log()
    );
    assert_eq!(
        out["elicitations"].as_array().map(Vec::len),
        Some(1),
        "{out:#}"
    );
    assert!(
        text(&results[7]).contains("file:///srv/project"),
        "{:#}",
        results[7]
    );
}
