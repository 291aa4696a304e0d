//! Approvals, receipts and leases end to end: the real `portcullis run` with the echo server, and
//! `portcullis approvals` / `portcullis lease` as separate processes on the same state directory.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    reason = "test code"
)]

#[path = "support/gateway.rs"]
mod support;

use std::io::{Read, Write};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::{Gateway, Setup, denial, echo_server};

fn policy(setup: &Setup) -> String {
    let ws = setup.ws.display();
    format!(
        r#"version: 1
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
    when: {{ server: echo, tool: echo }}
    decision: allow
  - id: hold-writes
    when: {{ server: echo, tool: write_file, args: {{ path: {{ under: {ws} }} }} }}
    decision: require_approval
    approval: {{ mode: hold, timeout: 4s }}
  - id: separate-writes
    when: {{ server: echo, tool: write_file, args: {{ path: {{ under: {ws}/sep }} }} }}
    decision: require_approval
    approval: {{ mode: hold, separate_approver: true }}
  - id: retry-reads
    when: {{ server: echo, tool: read_file, args: {{ path: {{ under: {ws} }} }} }}
    decision: require_approval
    approval: {{ mode: retry, ttl: 10m }}
  - id: short-reads
    when: {{ server: echo, tool: read_file, args: {{ path: {{ under: {ws}/short }} }} }}
    decision: require_approval
    approval: {{ mode: retry, ttl: 1s }}
  - id: deny-secrets
    when: {{ server: echo, args: {{ path: {{ glob: ["**/.env"] }} }} }}
    decision: deny
    on_deny: secrets are off limits
"#,
        bin = echo_server().display(),
        record = setup.record.display(),
    )
}

fn setup() -> Setup {
    let setup = Setup::new();
    std::fs::write(&setup.policy, policy(&setup)).unwrap();
    for dir in ["sep", "short", "leased", "other"] {
        std::fs::create_dir(setup.ws.join(dir)).unwrap();
    }
    setup
}

/// Runs `portcullis ARGS... --state-dir STATE`; returns (exit code, stdout, stderr).
fn cli(setup: &Setup, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_portcullis"))
        .args(args)
        .arg("--state-dir")
        .arg(setup.state_dir())
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn list(setup: &Setup, all: bool) -> Vec<Value> {
    let mut args = vec!["approvals", "list", "--json"];
    if all {
        args.push("--all");
    }
    let (code, out, err) = cli(setup, &args);
    assert_eq!(code, 0, "{err}");
    out.lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// Waits until a pending approval shows up and returns it.
fn wait_pending(setup: &Setup) -> Value {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(first) = list(setup, false).into_iter().next() {
            return first;
        }
        assert!(Instant::now() < deadline, "no pending approval appeared");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn write_call(gw: &mut Gateway, id: i64, path: &Path) {
    gw.send(&json!({"jsonrpc": "2.0", "id": id, "method": "tools/call",
        "params": {"name": "write_file", "arguments": {"path": path, "content": "approved"}}}));
}

fn audit(setup: &Setup) -> Vec<Value> {
    let (code, out, err) = cli(setup, &["audit", "tail", "-n", "100", "--json"]);
    assert_eq!(code, 0, "{err}");
    out.lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap()["event"].clone())
        .collect()
}

#[test]
fn hold_approved_from_the_cli_completes_the_call_with_a_verifiable_receipt() {
    let setup = setup();
    let mut gw = setup.start();
    gw.init();
    let target = setup.ws.join("held.txt");
    write_call(&mut gw, 1, &target);
    let pending = wait_pending(&setup);
    assert_eq!(pending["tool"], json!("write_file"));
    assert_eq!(pending["effect"], json!("write"));
    assert_eq!(pending["rule"], json!("hold-writes"));
    assert_eq!(
        pending["arguments"],
        json!({"path": target, "content": "approved"})
    );
    // The session keeps serving while the call is held.
    let answer = gw.call(2, "echo", json!({"text": "still here"}));
    assert_eq!(answer["result"]["isError"], json!(false), "{answer}");
    assert!(!target.exists());

    let id = pending["id"].as_str().unwrap();
    let (code, out, err) = cli(
        &setup,
        &["approvals", "approve", id, "--as", "alice", "--note", "ok"],
    );
    assert_eq!(code, 0, "{out}{err}");
    let answer = gw.recv();
    assert_eq!(answer["id"], json!(1));
    assert_eq!(answer["result"]["isError"], json!(false), "{answer}");
    assert_eq!(std::fs::read_to_string(&target).unwrap(), "approved");

    // The decision record names the approval.
    let records = audit(&setup);
    let decision = records
        .iter()
        .find(|e| e["tool"] == json!("write_file") && e["kind"] == json!("decision"))
        .unwrap();
    assert_eq!(decision["decision"], json!("allow"));
    assert_eq!(decision["approval_id"], json!(id));

    // The receipt verifies; a tampered copy does not.
    let (code, out, err) = cli(&setup, &["approvals", "verify", id]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.starts_with("receipt ok: r-"), "{out}");
    assert!(
        out.contains("approved by alice via cli (standard assurance)"),
        "{out}"
    );
    let receipt: Value = serde_json::from_str(out.lines().nth(1).unwrap()).unwrap();
    assert_eq!(receipt["body"]["approval_id"], json!(id));
    assert_eq!(receipt["body"]["digest"], pending["digest"]);
    let file = setup.root.join("receipt.json");
    std::fs::write(&file, receipt.to_string()).unwrap();
    let (code, ..) = cli(&setup, &["approvals", "verify", file.to_str().unwrap()]);
    assert_eq!(code, 0);
    let mut forged = receipt.clone();
    forged["body"]["approver"] = json!("mallory");
    std::fs::write(&file, forged.to_string()).unwrap();
    let (code, out, _) = cli(&setup, &["approvals", "verify", file.to_str().unwrap()]);
    assert_eq!(code, 1, "{out}");
    assert!(out.starts_with("receipt INVALID"), "{out}");

    // Resolved once: a second approval is refused.
    let (code, _, err) = cli(&setup, &["approvals", "approve", id, "--as", "alice"]);
    assert_eq!(code, 1);
    assert!(err.contains("not pending"), "{err}");
}

#[test]
fn hold_denied_or_timed_out_never_reaches_the_server() {
    let setup = setup();
    let mut gw = setup.start();
    gw.init();
    let denied = setup.ws.join("denied.txt");
    write_call(&mut gw, 1, &denied);
    let id = wait_pending(&setup)["id"].as_str().unwrap().to_owned();
    let (code, _, err) = cli(
        &setup,
        &["approvals", "deny", &id, "--as", "bob", "--note", "no"],
    );
    assert_eq!(code, 0, "{err}");
    let answer = gw.recv();
    let d = denial(&answer);
    assert_eq!(d["code"], json!("approval_denied"));
    assert_eq!(d["reason_class"], json!("approval"));
    assert_eq!(d["approval_id"], json!(id));
    assert!(
        d["reason"]
            .as_str()
            .unwrap()
            .contains("a human denied it (no)"),
        "{d}"
    );

    let late = setup.ws.join("late.txt");
    write_call(&mut gw, 2, &late);
    let started = Instant::now();
    let answer = gw.recv();
    assert!(
        started.elapsed() >= Duration::from_secs(3),
        "denied too early"
    );
    let d = denial(&answer);
    assert_eq!(d["code"], json!("approval_denied"));
    assert!(d["reason"].as_str().unwrap().contains("in time"), "{d}");
    // The timed-out approval cannot be approved afterwards.
    let timed_out = d["approval_id"].as_str().unwrap();
    let (code, _, err) = cli(&setup, &["approvals", "approve", timed_out, "--as", "bob"]);
    assert_eq!(code, 1, "{err}");
    assert!(!denied.exists() && !late.exists());
    assert!(!setup.recording().contains("write_file"));
}

#[test]
fn hold_sends_progress_when_the_client_gave_a_token() {
    let setup = setup();
    let mut gw = setup.start();
    gw.init();
    gw.send(&json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
        "params": {"name": "write_file", "arguments": {"path": setup.ws.join("p.txt"), "content": "x"},
                   "_meta": {"progressToken": "tok-1"}}}));
    let note = gw.recv();
    assert_eq!(note["method"], json!("notifications/progress"), "{note}");
    assert_eq!(note["params"]["progressToken"], json!("tok-1"));
    assert_eq!(note["params"]["progress"], json!(1));
}

fn read_call(gw: &mut Gateway, id: i64, path: &Path) -> Value {
    gw.call(id, "read_file", json!({"path": path}))
}

#[test]
fn retry_passes_the_identical_call_exactly_once() {
    let setup = setup();
    let file = setup.ws.join("notes.txt");
    std::fs::write(&file, "the notes").unwrap();
    let mut gw = setup.start();
    gw.init();
    let answer = read_call(&mut gw, 1, &file);
    let d = denial(&answer).clone();
    assert_eq!(d["code"], json!("approval_pending"));
    let id = d["approval_id"].as_str().unwrap().to_owned();
    let text = answer["result"]["content"][0]["text"].as_str().unwrap();
    assert!(
        text.contains(&id) && text.contains("retry the identical call"),
        "{text}"
    );
    // Asking again before approval names the same approval.
    let again = read_call(&mut gw, 2, &file);
    assert_eq!(denial(&again)["approval_id"], json!(id));

    let (code, _, err) = cli(&setup, &["approvals", "approve", &id, "--as", "alice"]);
    assert_eq!(code, 0, "{err}");
    // One argument changed: not covered.
    let other = setup.ws.join("other.txt");
    let changed = read_call(&mut gw, 3, &other);
    assert_ne!(denial(&changed)["approval_id"], json!(id));
    // The identical call passes once.
    let ok = read_call(&mut gw, 4, &file);
    assert_eq!(
        ok["result"]["content"][0]["text"],
        json!("the notes"),
        "{ok}"
    );
    // A second retry is not covered: a new approval is needed.
    let second = read_call(&mut gw, 5, &file);
    let d = denial(&second);
    assert_eq!(d["code"], json!("approval_pending"));
    assert_ne!(d["approval_id"], json!(id));
    assert_eq!(setup.recording().matches("notes.txt").count(), 1);
}

#[test]
fn an_expired_approval_cannot_be_approved_or_used() {
    let setup = setup();
    let file = setup.ws.join("short/f.txt");
    std::fs::write(&file, "short").unwrap();
    let mut gw = setup.start();
    gw.init();
    let d = denial(&read_call(&mut gw, 1, &file)).clone();
    let id = d["approval_id"].as_str().unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    let (code, _, err) = cli(&setup, &["approvals", "approve", id, "--as", "alice"]);
    assert_eq!(code, 1);
    assert!(err.contains("expired"), "{err}");
    denial(&read_call(&mut gw, 2, &file));
    assert!(!setup.recording().contains("f.txt"));
}

#[test]
fn a_held_call_of_a_killed_gateway_is_never_allowed_later() {
    let setup = setup();
    let target = setup.ws.join("restart.txt");
    let mut gw = setup.start();
    gw.init();
    write_call(&mut gw, 1, &target);
    let old = wait_pending(&setup)["id"].as_str().unwrap().to_owned();
    gw.child.kill().unwrap();
    gw.child.wait().unwrap();
    drop(gw);
    // Resolving it now is refused: its gateway is gone.
    let (code, _, err) = cli(&setup, &["approvals", "approve", &old, "--as", "alice"]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("gateway session ended"), "{err}");
    // A new gateway holds the same call under a new approval.
    let mut gw = setup.start();
    gw.init();
    write_call(&mut gw, 1, &target);
    let new = wait_pending(&setup)["id"].as_str().unwrap().to_owned();
    assert_ne!(new, old);
    let all = list(&setup, true);
    let old_state = all.iter().find(|a| a["id"] == json!(old)).unwrap();
    assert_eq!(old_state["state"], json!("expired"));
    assert!(!target.exists());
}

#[test]
fn separate_approver_refuses_the_callers_own_approval() {
    let setup = setup();
    let mut gw = setup.start_with(&["--principal", "alice"]);
    gw.init();
    let target = setup.ws.join("sep/x.txt");
    write_call(&mut gw, 1, &target);
    let pending = wait_pending(&setup);
    assert_eq!(pending["principal"], json!("alice"));
    assert_eq!(pending["separate_approver"], json!(true));
    let id = pending["id"].as_str().unwrap();
    let (code, _, err) = cli(&setup, &["approvals", "approve", id, "--as", "alice"]);
    assert_eq!(code, 1);
    assert!(
        err.contains("`alice` made the call and cannot approve it"),
        "{err}"
    );
    let (code, _, err) = cli(&setup, &["approvals", "approve", id, "--as", "bob"]);
    assert_eq!(code, 0, "{err}");
    let answer = gw.recv();
    assert_eq!(answer["result"]["isError"], json!(false), "{answer}");
    assert!(target.exists());
}

/// The session id of the running gateway, from its first pending approval.
fn session_of(setup: &Setup, gw: &mut Gateway) -> String {
    let probe = setup.ws.join("probe.txt");
    denial(&read_call(gw, 100, &probe));
    list(setup, false)[0]["session"]
        .as_str()
        .unwrap()
        .to_owned()
}

fn grant(setup: &Setup, args: &[&str]) -> String {
    let mut all = vec!["lease", "grant", "--as", "alice"];
    all.extend_from_slice(args);
    let (code, out, err) = cli(setup, &all);
    assert_eq!(code, 0, "{out}{err}");
    out.split_whitespace().next().unwrap().to_owned()
}

#[test]
fn leases_cover_scope_count_and_time_but_never_a_deny() {
    let setup = setup();
    let leased = setup.ws.join("leased");
    for name in ["a", "b", "c", ".env"] {
        std::fs::write(leased.join(name), name).unwrap();
    }
    std::fs::write(setup.ws.join("other/o"), "o").unwrap();
    let mut gw = setup.start();
    gw.init();
    let session = session_of(&setup, &mut gw);
    let under = format!("path={}", leased.display());
    let lease = grant(
        &setup,
        &[
            "--session",
            &session,
            "--tool",
            "read_*",
            "--args-under",
            &under,
            "--ttl",
            "30m",
            "--max-calls",
            "2",
        ],
    );
    assert!(lease.starts_with("l-"), "{lease}");
    // Never over deny.
    let d = denial(&read_call(&mut gw, 1, &leased.join(".env"))).clone();
    assert_eq!(d["rule"], json!("deny-secrets"));
    // Out of scope.
    let d = denial(&read_call(&mut gw, 2, &setup.ws.join("other/o"))).clone();
    assert_eq!(d["code"], json!("approval_pending"));
    // In scope, twice; the third is over the count.
    let ok = read_call(&mut gw, 3, &leased.join("a"));
    assert_eq!(ok["result"]["content"][0]["text"], json!("a"), "{ok}");
    let ok = read_call(&mut gw, 4, &leased.join("b"));
    assert_eq!(ok["result"]["content"][0]["text"], json!("b"), "{ok}");
    denial(&read_call(&mut gw, 5, &leased.join("c")));
    let records = audit(&setup);
    let used: Vec<&Value> = records
        .iter()
        .filter(|e| e["lease_id"] == json!(lease))
        .collect();
    assert_eq!(used.len(), 2, "{records:?}");
    assert!(used.iter().all(|e| e["decision"] == json!("allow")));

    // Revoked: covers nothing.
    let revoked = grant(
        &setup,
        &[
            "--session",
            &session,
            "--tool",
            "read_file",
            "--ttl",
            "30m",
            "--max-calls",
            "5",
        ],
    );
    let (code, ..) = cli(&setup, &["lease", "revoke", &revoked]);
    assert_eq!(code, 0);
    denial(&read_call(&mut gw, 6, &leased.join("c")));
    // Expired: covers nothing.
    grant(
        &setup,
        &[
            "--session",
            &session,
            "--tool",
            "read_file",
            "--ttl",
            "1s",
            "--max-calls",
            "5",
        ],
    );
    std::thread::sleep(Duration::from_millis(1200));
    denial(&read_call(&mut gw, 7, &leased.join("c")));
    // Another session's lease covers nothing here.
    grant(
        &setup,
        &[
            "--session",
            "s-someone-else",
            "--tool",
            "read_file",
            "--ttl",
            "30m",
            "--max-calls",
            "5",
        ],
    );
    denial(&read_call(&mut gw, 8, &leased.join("c")));
    let (code, out, _) = cli(&setup, &["lease", "list", "--all"]);
    assert_eq!(code, 0);
    assert!(out.contains("used 2/2"), "{out}");
    assert!(!setup.recording().contains("leased/c"));
}

/// One HTTP/1.1 request; returns (status, body).
fn http(addr: &str, method: &str, path: &str, token: Option<&str>, body: &str) -> (u16, String) {
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\n{auth}Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let status = response[9..12].parse().unwrap();
    let body = response
        .split_once("\r\n\r\n")
        .map(|x| x.1.to_owned())
        .unwrap_or_default();
    (status, body)
}

fn admin_address(setup: &Setup) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let log = setup.log();
        if let Some(line) = log
            .lines()
            .find(|l| l.contains("approvals admin API on http://"))
        {
            let rest = line.split("http://").nth(1).unwrap();
            return rest.split_whitespace().next().unwrap().to_owned();
        }
        assert!(Instant::now() < deadline, "no admin address in {log}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn admin_api_needs_the_token_and_approves_a_held_call() {
    let setup = setup();
    let mut gw = setup.start_with(&["--admin", "127.0.0.1:0"]);
    gw.init();
    let addr = admin_address(&setup);
    let token_file = setup.state_dir().join("admin.token");
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(&token_file).unwrap().permissions(),
    );
    assert_eq!(mode & 0o777, 0o600);
    let token = std::fs::read_to_string(&token_file)
        .unwrap()
        .trim()
        .to_owned();

    let (status, _) = http(&addr, "GET", "/api/approvals", None, "");
    assert_eq!(status, 401);
    let (status, _) = http(&addr, "GET", "/api/approvals", Some("wrong"), "");
    assert_eq!(status, 401);
    let (status, page) = http(&addr, "GET", "/approvals", None, "");
    assert_eq!(status, 200);
    assert!(page.contains("Pending approvals"));

    let target = setup.ws.join("via-admin.txt");
    write_call(&mut gw, 1, &target);
    let id = wait_pending(&setup)["id"].as_str().unwrap().to_owned();
    let (status, body) = http(&addr, "GET", "/api/approvals", Some(&token), "");
    assert_eq!(status, 200);
    let listed: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(listed["approvals"][0]["id"], json!(id));
    let path = format!("/api/approvals/{id}/approve");
    let (status, _) = http(&addr, "POST", &path, None, "{}");
    assert_eq!(status, 401);
    let (status, body) = http(
        &addr,
        "POST",
        &path,
        Some(&token),
        r#"{"note":"looks fine","as":"carol"}"#,
    );
    assert_eq!(status, 200, "{body}");
    let receipt: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(receipt["receipt"]["body"]["channel"], json!("admin"));
    let answer = gw.recv();
    assert_eq!(answer["result"]["isError"], json!(false), "{answer}");
    assert!(target.exists());
    let (status, _) = http(&addr, "POST", &path, Some(&token), "");
    assert_eq!(status, 409);
}

/// The peers directory (`$PORTCULLIS_PEERS_DIR`, else `<repo>/.peers`), installed by
/// `scripts/install-peers`, which `scripts/test` runs first.
fn peers_python() -> std::path::PathBuf {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let dir = std::env::var_os("PORTCULLIS_PEERS_DIR")
        .map_or_else(|| repo.join(".peers"), std::path::PathBuf::from);
    let python = dir.join("venv/bin/python");
    assert!(
        python.is_file(),
        "the Python MCP SDK peer is missing at {}: run scripts/install-peers (scripts/test does)",
        python.display()
    );
    python
}

fn python_client(setup: &Setup, elicit: &str, target: &Path) -> Value {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let steps = json!([{"op": "call_tool", "name": "write_file",
        "arguments": {"path": target, "content": "elicited"}}]);
    let script = setup.root.join(format!("steps-{elicit}.json"));
    std::fs::write(&script, steps.to_string()).unwrap();
    let out = Command::new(peers_python())
        .arg(repo.join("peers/python/mcp_client.py"))
        .arg("--script")
        .arg(&script)
        .args(["--elicit", elicit])
        .args(if elicit == "accept" {
            vec!["--elicit-content", r#"{"approve": true}"#]
        } else {
            vec![]
        })
        .arg("--")
        .arg(env!("CARGO_BIN_EXE_portcullis"))
        .args(["run", "--policy"])
        .arg(&setup.policy)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("{e}: {stdout}\n{}", String::from_utf8_lossy(&out.stderr)))
}

#[test]
fn elicitation_with_the_python_sdk_client() {
    let setup = setup();
    let accepted = setup.ws.join("elicited.txt");
    let out = python_client(&setup, "accept", &accepted);
    let result = &out["results"][0];
    assert_eq!(result["is_error"], json!(false), "{out}");
    assert_eq!(std::fs::read_to_string(&accepted).unwrap(), "elicited");
    let asked = &out["elicitations"][0];
    let message = asked["message"].as_str().unwrap();
    assert!(
        message.contains("write_file") && message.contains("effect: write"),
        "{message}"
    );
    assert!(
        message.contains(&accepted.display().to_string()),
        "{message}"
    );
    // The receipt records the lower-assurance channel.
    let all = list(&setup, true);
    let approval = all.iter().find(|a| a["state"] == json!("used")).unwrap();
    assert_eq!(approval["channel"], json!("elicitation"));
    let (code, out_text, _) = cli(
        &setup,
        &["approvals", "verify", approval["id"].as_str().unwrap()],
    );
    assert_eq!(code, 0);
    assert!(out_text.contains("(lower assurance)"), "{out_text}");

    for answer in ["decline", "cancel"] {
        let target = setup.ws.join(format!("{answer}.txt"));
        let out = python_client(&setup, answer, &target);
        assert_eq!(out["results"][0]["is_error"], json!(true), "{out}");
        let structured = &out["results"][0]["structured"];
        assert_eq!(structured["code"], json!("approval_denied"), "{out}");
        assert!(!target.exists());
    }
}
