//! End-to-end: `portcullis run` wrapping the real `@modelcontextprotocol/server-filesystem`,
//! driven by the official Python SDK client and by raw JSON-RPC lines.
//!
//! Each test proves its refusals on the filesystem or by the gateway's own structured denial
//! (rule id, decision id, reason class), never by the server's error text: the filesystem server
//! refuses paths outside its roots by itself, so only Portcullis's fields show that the gateway
//! stopped the call before the server saw it.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    reason = "test code"
)]

mod support;

use serde_json::json;
use support::{Peers, RawGateway, SECRET, World, assert_refused, sdk_session, step, text_of};

/// Reads inside the workspace are allowed; writes only under `scratch/`; secrets never.
const POLICY: &str = r#"
version: 1
state_dir: {STATE}
servers:
  fs:
    command: ["{FS}", "{WS}"]
tools:
  fs.read_text_file: { effect: read, args: { path: path } }
  fs.list_directory: { effect: read, args: { path: path } }
  fs.write_file: { effect: write, args: { path: path } }
rules:
  - id: deny-secrets
    when: { server: fs, paths: { glob: ["**/secret*"] } }
    decision: deny
    reason: secrets are off limits
  - id: read-workspace
    when: { server: fs, effect: read, paths: { under: "{WS}" } }
    decision: allow
  - id: write-scratch
    when: { server: fs, effect: write, paths: { under: "{WS}/scratch" } }
    decision: allow
  - id: no-other-writes
    when: { server: fs, effect: write, not: { paths: { under: "{WS}/scratch" } } }
    decision: deny
    reason: writes outside scratch/ are refused
    on_deny: only the scratch directory is writable
"#;

fn world() -> (Peers, World) {
    let peers = Peers::require();
    let world = World::new();
    world.policy(&peers, POLICY);
    std::fs::create_dir_all(world.ws.join("scratch")).unwrap();
    (peers, world)
}

#[test]
fn sdk_allowed_read_returns_the_servers_content() {
    let (peers, world) = world();
    let steps = json!([
        {"op": "list_tools"},
        {"op": "call_tool", "name": "read_text_file", "arguments": {"path": world.ws_path("hello.txt")}},
        {"op": "call_tool", "name": "list_directory", "arguments": {"path": world.ws.display().to_string()}},
    ]);
    let (session, stderr) = sdk_session(&peers, &world.run_argv(&[]), &steps);
    assert_eq!(
        session["server_info"]["name"],
        json!("secure-filesystem-server"),
        "{session:#}"
    );
    let tools: Vec<&str> = step(&session, 0)["tools"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|t| t["name"].as_str())
        .collect();
    assert!(tools.contains(&"read_text_file"), "{tools:?}");

    let read = step(&session, 1);
    assert_eq!(read["is_error"], json!(false), "{read:#}\n{stderr}");
    assert_eq!(text_of(read), "hello from the workspace\n");
    // The real server's structured output, passed through untouched.
    assert_eq!(
        read["structured"]["content"],
        json!("hello from the workspace\n")
    );

    let listing = step(&session, 2);
    assert_eq!(listing["is_error"], json!(false), "{listing:#}");
    let text = text_of(listing);
    assert!(
        text.contains("[FILE] hello.txt") && text.contains("[DIR] sub"),
        "{text}"
    );
}

#[test]
fn sdk_denied_write_leaves_no_file_and_names_rule_and_decision() {
    let (peers, world) = world();
    let denied = world.ws.join("notes.txt");
    let allowed = world.ws.join("scratch/ok.txt");
    let steps = json!([
        {"op": "call_tool", "name": "write_file",
         "arguments": {"path": denied.display().to_string(), "content": "should never exist"}},
        {"op": "call_tool", "name": "write_file",
         "arguments": {"path": allowed.display().to_string(), "content": "written through the gateway"}},
    ]);
    let (session, _) = sdk_session(&peers, &world.run_argv(&[]), &steps);

    let decision_id = assert_refused(step(&session, 0), "no-other-writes", "argument");
    assert_eq!(
        step(&session, 0)["structured"]["code"],
        json!("policy_denied")
    );
    assert!(
        text_of(step(&session, 0)).contains("only the scratch directory is writable"),
        "the public reason reaches the model: {:#}",
        step(&session, 0)
    );
    assert!(
        !denied.exists(),
        "a denied write reached the server: {} exists",
        denied.display()
    );

    // The contrast that makes the proof mean something: an allowed write does land.
    assert_eq!(
        step(&session, 1)["is_error"],
        json!(false),
        "{:#}",
        step(&session, 1)
    );
    assert_eq!(
        std::fs::read_to_string(&allowed).unwrap(),
        "written through the gateway"
    );

    // The refusal is in the audit trail under the id the client was given.
    let tail = world.audit(&["tail", "--json"]);
    let tail_out = String::from_utf8_lossy(&tail.stdout);
    assert!(tail.status.success(), "audit tail failed: {tail:?}");
    assert!(
        tail_out.contains(&decision_id),
        "decision {decision_id} not in the audit trail:\n{tail_out}"
    );
}

#[test]
fn sdk_secret_reads_via_traversal_are_denied() {
    let (peers, world) = world();
    let dotdot = format!("{}/../secret.txt", world.ws.display());
    let encoded = format!("{}/sub/%2e%2e/%2e%2e/secret.txt", world.ws.display());
    let steps = json!([
        {"op": "call_tool", "name": "read_text_file", "arguments": {"path": dotdot}},
        {"op": "call_tool", "name": "read_text_file", "arguments": {"path": encoded}},
    ]);
    let (session, _) = sdk_session(&peers, &world.run_argv(&[]), &steps);
    for index in 0..2 {
        let result = step(&session, index);
        // Refused by the gateway (structured denial), not by the server's own root check.
        assert_refused(result, "deny-secrets", "argument");
    }
}

#[test]
fn sdk_reads_through_a_symlink_leaving_the_workspace_are_denied() {
    let (peers, world) = world();
    let outside = world.root.join("outside");
    std::fs::create_dir_all(&outside).unwrap();
    std::fs::write(outside.join("notes.txt"), format!("{SECRET} via symlink\n")).unwrap();
    std::os::unix::fs::symlink(outside.join("notes.txt"), world.ws.join("link.txt")).unwrap();
    std::os::unix::fs::symlink(&outside, world.ws.join("linkdir")).unwrap();
    std::os::unix::fs::symlink(world.root.join("secret.txt"), world.ws.join("innocent.txt"))
        .unwrap();

    let steps = json!([
        {"op": "call_tool", "name": "read_text_file", "arguments": {"path": world.ws_path("link.txt")}},
        {"op": "call_tool", "name": "read_text_file", "arguments": {"path": world.ws_path("linkdir/notes.txt")}},
        {"op": "call_tool", "name": "read_text_file", "arguments": {"path": world.ws_path("innocent.txt")}},
        {"op": "call_tool", "name": "read_text_file", "arguments": {"path": world.ws_path("hello.txt")}},
    ]);
    let (session, _) = sdk_session(&peers, &world.run_argv(&[]), &steps);
    // The lexical path is inside the workspace, the resolved one is not: `under` does not hold
    // for every reading, so no allow; nothing else matches.
    assert_refused(step(&session, 0), "default-deny", "default");
    assert_refused(step(&session, 1), "default-deny", "default");
    // The resolved reading names the secret, so the deny rule fires.
    assert_refused(step(&session, 2), "deny-secrets", "argument");
    // The same session still serves honest reads.
    assert_eq!(
        text_of(step(&session, 3)),
        "hello from the workspace\n",
        "{:#}",
        step(&session, 3)
    );
}

#[test]
fn command_after_double_dash_replaces_the_configured_server() {
    let (peers, world) = world();
    // The configured command points at a program that does not exist; the one after `--` runs.
    let text = std::fs::read_to_string(&world.policy).unwrap().replace(
        &peers.filesystem.display().to_string(),
        "/nonexistent/server",
    );
    std::fs::write(&world.policy, text).unwrap();
    let fs = peers.filesystem.display().to_string();
    let ws = world.ws.display().to_string();
    let steps = json!([
        {"op": "call_tool", "name": "read_text_file", "arguments": {"path": world.ws_path("hello.txt")}},
    ]);
    let (session, _) = sdk_session(
        &peers,
        &world.run_argv(&["--server", "fs", "--", &fs, &ws]),
        &steps,
    );
    assert_eq!(text_of(step(&session, 0)), "hello from the workspace\n");
}

#[test]
fn raw_lines_allowed_denied_and_malformed() {
    let (_peers, world) = world();
    let mut gw = RawGateway::start(&world.run_argv(&[]));
    let init = gw.initialize();
    assert_eq!(
        init["result"]["serverInfo"]["name"],
        json!("secure-filesystem-server")
    );

    let read = gw.call(
        1,
        "read_text_file",
        json!({"path": world.ws_path("hello.txt")}),
    );
    // The server leaves `isError` out of a successful result.
    assert_ne!(read["result"]["isError"], json!(true), "{read}");
    assert_eq!(
        read["result"]["content"][0]["text"],
        json!("hello from the workspace\n")
    );

    let secret = format!("{}/../secret.txt", world.ws.display());
    let denied = gw.call(2, "read_text_file", json!({"path": secret}));
    let result = &denied["result"];
    assert_eq!(result["isError"], json!(true), "{denied}");
    assert_eq!(result["structuredContent"]["rule"], json!("deny-secrets"));
    assert_eq!(
        result["_meta"]["io.portcullis/decision"]["rule"],
        json!("deny-secrets")
    );

    // A duplicate key: parsers disagree on which value wins, so the message is refused whole and
    // never forwarded (the server would otherwise answer with one of the two files).
    let ws_hello = world.ws_path("hello.txt");
    gw.send_raw(&format!(
        r#"{{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{{"name":"read_text_file","arguments":{{"path":"{ws_hello}","path":"{secret}"}}}}}}"#
    ));
    let dup = gw.response(&serde_json::Value::Null);
    assert_eq!(dup["error"]["code"], json!(-32700), "{dup}");
    assert!(!dup.to_string().contains(SECRET));

    // A denied write over raw lines: no file.
    let target = world.ws.join("raw.txt");
    let write = gw.call(
        4,
        "write_file",
        json!({"path": target.display().to_string(), "content": "x"}),
    );
    assert_eq!(write["result"]["isError"], json!(true), "{write}");
    assert_eq!(
        write["result"]["structuredContent"]["rule"],
        json!("no-other-writes")
    );
    assert!(!target.exists());

    // The session is still healthy after all of that.
    let again = gw.call(
        5,
        "read_text_file",
        json!({"path": world.ws_path("hello.txt")}),
    );
    assert_ne!(again["result"]["isError"], json!(true), "{again}");
    // The server never answered id 3: it never saw it.
    assert!(
        !gw.seen.iter().any(|m| m["id"] == json!(3)),
        "the duplicate-key message was answered as if forwarded: {:#?}",
        gw.seen
    );
    assert!(!gw.seen.iter().any(|m| m.to_string().contains(SECRET)));

    let (status, stderr) = gw.finish();
    assert!(stderr.contains("portcullis: serving fs"), "{stderr}");
    assert!(status.code().is_some(), "{status:?}\n{stderr}");
}
