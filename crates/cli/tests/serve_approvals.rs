//! `portcullis serve --admin`: a call held for approval over Streamable HTTP is released by the
//! admin API the same gateway serves on its own loopback listener, and a denial by it refuses
//! the call without the server seeing it.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    reason = "test code"
)]

#[path = "support/gateway.rs"]
mod gateway;
#[path = "support/http.rs"]
mod http;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use http::{Serve, free_port, request};
use serde_json::{Value, json};

struct World {
    _dir: tempfile::TempDir,
    root: PathBuf,
}

impl World {
    fn new() -> World {
        let dir = tempfile::tempdir().unwrap();
        let root = std::fs::canonicalize(dir.path()).unwrap();
        let ws = root.join("ws");
        std::fs::create_dir(&ws).unwrap();
        let policy = format!(
            r#"version: 1
servers:
  echo:
    command: [{bin}]
    cwd: {ws}
    env: {{ PORTCULLIS_ECHO_RECORD: {record} }}
tools:
  echo.write_file: {{ effect: write, args: {{ path: path }} }}
rules:
  - id: hold-writes
    when: {{ server: echo, tool: write_file, args: {{ path: {{ under: {ws} }} }} }}
    decision: require_approval
    approval: {{ mode: hold, timeout: 30s }}
"#,
            bin = gateway::echo_server().display(),
            ws = ws.display(),
            record = root.join("record.jsonl").display(),
        );
        std::fs::write(root.join("portcullis.yaml"), policy).unwrap();
        World { _dir: dir, root }
    }

    fn recording(&self) -> String {
        std::fs::read_to_string(self.root.join("record.jsonl")).unwrap_or_default()
    }

    fn token(&self) -> String {
        std::fs::read_to_string(self.root.join(".portcullis/admin.token"))
            .unwrap()
            .trim()
            .to_owned()
    }
}

fn write_call(id: i64, path: &str) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "method": "tools/call",
        "params": {"name": "write_file", "arguments": {"path": path, "content": "x"}}})
}

/// Waits until the admin API lists one pending approval; returns its id.
fn pending(admin: u16, token: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(20);
    let bearer = format!("Bearer {token}");
    loop {
        let reply = request(
            admin,
            "GET",
            "/api/approvals",
            &[("Authorization", &bearer)],
            b"",
        );
        assert_eq!(reply.status, 200, "{reply:?}");
        if let Some(id) = reply.json()["approvals"][0]["id"].as_str() {
            return id.to_owned();
        }
        assert!(Instant::now() < deadline, "no pending approval: {reply:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn resolve(admin: u16, token: &str, id: &str, verb: &str) -> u16 {
    let bearer = format!("Bearer {token}");
    request(
        admin,
        "POST",
        &format!("/api/approvals/{id}/{verb}"),
        &[
            ("Authorization", &bearer),
            ("Content-Type", "application/json"),
        ],
        br#"{"as":"carol"}"#,
    )
    .status
}

#[test]
fn the_admin_api_of_serve_approves_and_denies_held_http_calls() {
    let world = World::new();
    let admin = free_port();
    let admin_addr = format!("127.0.0.1:{admin}");
    let serve = Serve::start(
        &world.root.join("portcullis.yaml"),
        &world.root.join("serve.log"),
        &["--admin", &admin_addr],
    );
    let session = serve.initialize("/mcp/echo", &[]);
    let headers = [
        ("Mcp-Session-Id", session.as_str()),
        ("MCP-Protocol-Version", "2025-11-25"),
    ];
    let token = world.token();
    // Without the token the admin API refuses, and the page is served.
    assert_eq!(
        request(admin, "GET", "/api/approvals", &[], b"").status,
        401
    );
    assert_eq!(request(admin, "GET", "/approvals", &[], b"").status, 200);

    let ws = world.root.join("ws");
    for (id, verb, file) in [(1, "approve", "approved.txt"), (2, "deny", "denied.txt")] {
        let path = ws.join(file).display().to_string();
        let reply = std::thread::scope(|scope| {
            let held = scope.spawn(|| serve.post("/mcp/echo", &headers, &write_call(id, &path)));
            let approval = pending(admin, &token);
            assert!(
                !world.recording().contains(file),
                "forwarded before a decision"
            );
            assert_eq!(resolve(admin, &token, &approval, verb), 200);
            held.join().unwrap()
        });
        assert_eq!(reply.status, 200, "{reply:?}");
        let body = reply.json();
        if verb == "approve" {
            assert_eq!(body["result"]["isError"], json!(false), "{body}");
            assert!(
                world.recording().contains(file),
                "approved call not forwarded"
            );
        } else {
            assert_eq!(body["result"]["isError"], json!(true), "{body}");
            assert!(!world.recording().contains(file), "denied call forwarded");
        }
    }
}

#[test]
fn serve_refuses_an_admin_address_that_is_not_loopback() {
    let world = World::new();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_portcullis"))
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--admin",
            "0.0.0.0:8751",
            "--policy",
        ])
        .arg(world.root.join("portcullis.yaml"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("only listens on loopback"), "{stderr}");
}
