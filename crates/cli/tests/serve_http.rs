//! End-to-end: the real `portcullis serve` in front of two testkit echo servers, driven over raw
//! HTTP. Aggregation and routing, denials, principals in rules, API keys, session binding, the
//! Host/Origin guard, DELETE, GET and the start-up refusal without `auth`.
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
use std::process::Command;

use http::{Serve, request, sha256};
use serde_json::{Value, json};

const ALICE_KEY: &str = "alice-secret-key";
const BOB_KEY: &str = "bob-secret-key";
const ALICE: (&str, &str) = ("Authorization", "Bearer alice-secret-key");
const BOB: (&str, &str) = ("Authorization", "Bearer bob-secret-key");

struct World {
    _dir: tempfile::TempDir,
    root: PathBuf,
}

impl World {
    fn new(auth: bool) -> World {
        let dir = tempfile::tempdir().unwrap();
        let root = std::fs::canonicalize(dir.path()).unwrap();
        let ws = root.join("ws");
        std::fs::create_dir(&ws).unwrap();
        let bin = gateway::echo_server().display().to_string();
        let auth = if auth {
            format!(
                "auth:\n  api_keys:\n    - {{ principal: alice, sha256: {} }}\n    - {{ principal: bob, sha256: {} }}\n",
                sha256(ALICE_KEY),
                sha256(BOB_KEY)
            )
        } else {
            String::new()
        };
        let policy = format!(
            r#"version: 1
servers:
  echo: {{ command: [{bin}], cwd: {ws} }}
  mirror: {{ command: [{bin}], cwd: {ws} }}
tools:
  echo.read_file: {{ effect: read, args: {{ path: path }} }}
rules:
  - id: echo-ok
    when: {{ server: echo, tool: echo }}
    decision: allow
  - id: read-ws
    when: {{ server: echo, tool: read_file, args: {{ path: {{ under: {ws} }} }} }}
    decision: allow
  - id: deny-secrets
    when: {{ server: echo, args: {{ path: {{ glob: ["**/.env"] }} }} }}
    decision: deny
    on_deny: secrets are off limits
  - id: mirror-for-alice
    when: {{ server: mirror, tool: echo, principal: alice }}
    decision: allow
{auth}"#,
            ws = ws.display()
        );
        std::fs::write(root.join("portcullis.yaml"), policy).unwrap();
        World { _dir: dir, root }
    }

    fn policy(&self) -> PathBuf {
        self.root.join("portcullis.yaml")
    }

    fn log(&self) -> PathBuf {
        self.root.join("serve.log")
    }

    fn serve(&self) -> Serve {
        Serve::start(&self.policy(), &self.log(), &[])
    }
}

fn call(id: i64, name: &str, arguments: Value) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "method": "tools/call",
        "params": {"name": name, "arguments": arguments}})
}

fn with<'a>(auth: (&'a str, &'a str), session: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![
        auth,
        ("Mcp-Session-Id", session),
        ("MCP-Protocol-Version", "2025-06-18"),
    ]
}

fn denial_rule(reply: &Value) -> &str {
    assert_eq!(reply["result"]["isError"], json!(true), "{reply:#}");
    reply["result"]["structuredContent"]["rule"]
        .as_str()
        .unwrap()
}

#[test]
fn aggregate_lists_namespaced_tools_and_routes_calls() {
    let world = World::new(true);
    let serve = world.serve();
    let session = serve.initialize("/mcp", &[ALICE]);
    let headers = with(ALICE, &session);

    let list = serve.post(
        "/mcp",
        &headers,
        &json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}),
    );
    assert_eq!(list.status, 200, "{list:?}");
    let names: Vec<String> = list.json()["result"]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap().to_owned())
        .collect();
    assert!(names.contains(&"echo__echo".to_owned()), "{names:?}");
    assert!(names.contains(&"mirror__echo".to_owned()), "{names:?}");
    assert!(
        names
            .iter()
            .all(|n| n.starts_with("echo__") || n.starts_with("mirror__")),
        "{names:?}"
    );

    let reply = serve
        .post(
            "/mcp",
            &headers,
            &call(2, "echo__echo", json!({"text": "hi"})),
        )
        .json();
    assert_eq!(
        reply["result"]["content"][0]["text"],
        json!("hi"),
        "{reply:#}"
    );
    let reply = serve
        .post(
            "/mcp",
            &headers,
            &call(3, "mirror__echo", json!({"text": "yo"})),
        )
        .json();
    assert_eq!(
        reply["result"]["content"][0]["text"],
        json!("yo"),
        "{reply:#}"
    );
}

#[test]
fn denied_and_unroutable_calls_are_refused_with_the_rule() {
    let world = World::new(true);
    let serve = world.serve();
    let session = serve.initialize("/mcp", &[ALICE]);
    let headers = with(ALICE, &session);
    let env = world.root.join("ws/.env").display().to_string();

    let reply = serve
        .post(
            "/mcp",
            &headers,
            &call(1, "echo__read_file", json!({"path": env})),
        )
        .json();
    assert_eq!(denial_rule(&reply), "deny-secrets");
    for (id, name) in [
        (2, "nosuch__echo"),
        (3, "echo"),
        (4, "echo__a__b"),
        (5, "echo__"),
    ] {
        let reply = serve
            .post("/mcp", &headers, &call(id, name, json!({})))
            .json();
        assert_eq!(denial_rule(&reply), "unroutable-tool", "{name}");
    }
    // The single-server endpoint uses the server's own names and the same rules.
    let single = serve.initialize("/mcp/echo", &[ALICE]);
    let reply = serve
        .post(
            "/mcp/echo",
            &with(ALICE, &single),
            &call(6, "read_file", json!({"path": env})),
        )
        .json();
    assert_eq!(denial_rule(&reply), "deny-secrets");
}

#[test]
fn principals_reach_the_rules() {
    let world = World::new(true);
    let serve = world.serve();
    let alice = serve.initialize("/mcp/mirror", &[ALICE]);
    let bob = serve.initialize("/mcp/mirror", &[BOB]);
    let reply = serve
        .post(
            "/mcp/mirror",
            &with(ALICE, &alice),
            &call(1, "echo", json!({"text": "a"})),
        )
        .json();
    assert_eq!(
        reply["result"]["content"][0]["text"],
        json!("a"),
        "{reply:#}"
    );
    let reply = serve
        .post(
            "/mcp/mirror",
            &with(BOB, &bob),
            &call(1, "echo", json!({"text": "b"})),
        )
        .json();
    assert_eq!(denial_rule(&reply), "default-deny");
}

#[test]
fn credentials_are_required_and_sessions_are_bound_to_their_principal() {
    let world = World::new(true);
    let serve = world.serve();
    let no_key = serve.post("/mcp", &[], &http::initialize_request());
    assert_eq!(no_key.status, 401);
    let challenge = no_key.header("www-authenticate").unwrap();
    assert!(
        challenge.starts_with("Bearer resource_metadata=\"http://127.0.0.1:")
            && challenge.ends_with("/.well-known/oauth-protected-resource/mcp\""),
        "{challenge}"
    );
    let wrong = serve.post(
        "/mcp",
        &[("Authorization", "Bearer nope")],
        &http::initialize_request(),
    );
    assert_eq!(wrong.status, 401);
    assert!(
        wrong
            .header("www-authenticate")
            .unwrap()
            .contains("invalid_token")
    );
    let metadata = request(
        serve.port,
        "GET",
        "/.well-known/oauth-protected-resource/mcp",
        &[],
        b"",
    );
    assert_eq!(metadata.status, 200);
    assert_eq!(metadata.json()["resource"], json!(serve.url("/mcp")));

    let session = serve.initialize("/mcp", &[ALICE]);
    let ping = json!({"jsonrpc": "2.0", "id": 9, "method": "ping"});
    // Bob replays Alice's session id: refused as if it did not exist.
    let replay = serve.post("/mcp", &with(BOB, &session), &ping);
    assert_eq!(replay.status, 404, "{replay:?}");
    // Alice's id on another endpoint is not hers there either.
    assert_eq!(
        serve
            .post("/mcp/echo", &with(ALICE, &session), &ping)
            .status,
        404
    );
    assert_eq!(
        serve.post("/mcp", &with(ALICE, &session), &ping).status,
        200
    );
    // Bob cannot end it; Alice can, and then it is gone.
    let delete = |auth| {
        request(
            serve.port,
            "DELETE",
            "/mcp",
            &[auth, ("Mcp-Session-Id", &session)],
            b"",
        )
    };
    assert_eq!(delete(BOB).status, 404);
    assert_eq!(delete(ALICE).status, 200);
    assert_eq!(
        serve.post("/mcp", &with(ALICE, &session), &ping).status,
        404
    );
}

#[test]
fn foreign_hosts_and_origins_are_refused() {
    let world = World::new(true);
    let serve = world.serve();
    let init = http::initialize_request();
    let origin = serve.post(
        "/mcp",
        &[ALICE, ("Origin", "http://evil.example.com")],
        &init,
    );
    assert_eq!(origin.status, 403, "{origin:?}");
    let host = serve.post("/mcp", &[ALICE, ("Host", "evil.example.com")], &init);
    assert_eq!(host.status, 403, "{host:?}");
    let local = serve.post("/mcp", &[ALICE, ("Origin", "http://localhost:3000")], &init);
    assert_eq!(local.status, 200, "{local:?}");
}

#[test]
fn transport_rules_are_enforced() {
    let world = World::new(false);
    let serve = world.serve();
    // No auth section on loopback: anonymous.
    let session = serve.initialize("/mcp/echo", &[]);
    let headers = [("Mcp-Session-Id", session.as_str())];
    // The GET stream is SSE only, and only for a session of this principal and endpoint.
    let get = request(serve.port, "GET", "/mcp/echo", &headers, b"");
    assert_eq!(get.status, 406);
    let sse = ("Accept", "text/event-stream");
    let get = request(serve.port, "GET", "/mcp/echo", &[sse], b"");
    assert_eq!(get.status, 400);
    let get = request(serve.port, "GET", "/mcp", &[sse, headers[0]], b"");
    assert_eq!(get.status, 404);
    let old = serve.post(
        "/mcp/echo",
        &[headers[0], ("MCP-Protocol-Version", "2024-01-01")],
        &json!({"jsonrpc": "2.0", "id": 1, "method": "ping"}),
    );
    assert_eq!(old.status, 400);
    let batch = serve.post(
        "/mcp/echo",
        &headers,
        &json!([{"jsonrpc": "2.0", "id": 1, "method": "ping"}]),
    );
    assert_eq!(batch.status, 400);
    let dup = request(serve.port, "POST", "/mcp/echo", &[headers[0], ("Content-Type", "application/json")],
        br#"{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"echo","name":"read_file","arguments":{}}}"#);
    assert_eq!(dup.status, 400);
    let no_session = serve.post(
        "/mcp/echo",
        &[],
        &json!({"jsonrpc": "2.0", "id": 3, "method": "ping"}),
    );
    assert_eq!(no_session.status, 400);
    assert_eq!(
        serve
            .post("/mcp/nosuch", &[], &http::initialize_request())
            .status,
        404
    );
    let ok = serve
        .post(
            "/mcp/echo",
            &headers,
            &call(4, "echo", json!({"text": "anon"})),
        )
        .json();
    assert_eq!(ok["result"]["content"][0]["text"], json!("anon"));
    let audit = std::fs::read_to_string(world.log()).unwrap();
    assert!(audit.contains("started a session"), "{audit}");
}

#[test]
fn refuses_to_start_without_auth_on_a_public_address() {
    let world = World::new(false);
    let out = Command::new(env!("CARGO_BIN_EXE_portcullis"))
        .args(["serve", "--listen", "0.0.0.0:0", "--policy"])
        .arg(world.policy())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("the policy has no `auth` section"),
        "{stderr}"
    );
    assert!(stderr.contains("refusing to start"), "{stderr}");
}

#[test]
fn decisions_are_audited_with_the_principal() {
    let world = World::new(true);
    let serve = world.serve();
    let session = serve.initialize("/mcp/echo", &[ALICE]);
    let reply = serve
        .post(
            "/mcp/echo",
            &with(ALICE, &session),
            &call(1, "echo", json!({"text": "x"})),
        )
        .json();
    assert_eq!(reply["result"]["content"][0]["text"], json!("x"));
    drop(serve);
    let out = Command::new(env!("CARGO_BIN_EXE_portcullis"))
        .args(["audit", "export", "--jsonl", "--policy"])
        .arg(world.policy())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let decision = text
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .map(|r| r["event"].clone())
        .find(|r| r["kind"] == json!("decision") && r["tool"] == json!("echo"))
        .unwrap_or_else(|| {
            panic!(
                "no decision record: {text} {}",
                String::from_utf8_lossy(&out.stderr)
            )
        });
    assert_eq!(decision["principal"], json!("alice"));
    assert_eq!(decision["decision"], json!("allow"));
}

#[test]
fn stops_cleanly_on_sigterm() {
    let world = World::new(false);
    let mut serve = world.serve();
    let session = serve.initialize("/mcp/echo", &[]);
    let headers = [("Mcp-Session-Id", session.as_str())];
    let reply = serve.post(
        "/mcp/echo",
        &headers,
        &call(1, "echo", json!({"text": "x"})),
    );
    assert_eq!(reply.status, 200);
    let status = Command::new("kill")
        .args(["-TERM", &serve.child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let start = std::time::Instant::now();
    let exit = loop {
        if let Some(exit) = serve.child.try_wait().unwrap() {
            break exit;
        }
        assert!(
            start.elapsed() < std::time::Duration::from_secs(20),
            "serve did not stop"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    assert_eq!(
        exit.code(),
        Some(0),
        "{}",
        std::fs::read_to_string(world.log()).unwrap()
    );
}

#[test]
fn sessions_past_max_sessions_are_refused_until_one_ends() {
    let world = World::new(false);
    let serve = Serve::start(&world.policy(), &world.log(), &["--max-sessions", "2"]);
    let first = serve.initialize("/mcp/echo", &[]);
    let _second = serve.initialize("/mcp/echo", &[]);
    let third = serve.post("/mcp/echo", &[], &http::initialize_request());
    assert_eq!(third.status, 503, "{third:?}");
    // Ending a session frees its place.
    let ended = request(
        serve.port,
        "DELETE",
        "/mcp/echo",
        &[("Mcp-Session-Id", first.as_str())],
        b"",
    );
    assert!(ended.status < 300, "{ended:?}");
    let _third = serve.initialize("/mcp/echo", &[]);
}
