//! End-to-end: the audit chain written by a real session (the official Python SDK client, the real
//! `@modelcontextprotocol/server-filesystem` behind `portcullis run`) verifies, and
//! `portcullis audit verify` exits 1 naming the record after any edit or deletion made with SQLite.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    reason = "test code"
)]

mod support;

use serde_json::{Value, json};
use support::{Peers, World, sdk_session, step};

const POLICY: &str = r#"
version: 1
state_dir: {STATE}
servers:
  fs:
    command: ["{FS}", "{WS}"]
tools:
  fs.read_text_file: { effect: read, args: { path: path } }
  fs.write_file: { effect: write, args: { path: path } }
rules:
  - id: read-workspace
    when: { server: fs, effect: read, paths: { under: "{WS}" } }
    decision: allow
"#;

/// One session with two allowed reads and a denied write; returns the world holding its log.
fn audited_world() -> World {
    let peers = Peers::require();
    let world = World::new();
    world.policy(&peers, POLICY);
    let hello = world.ws_path("hello.txt");
    let steps = json!([
        {"op": "call_tool", "name": "read_text_file", "arguments": {"path": hello}},
        {"op": "call_tool", "name": "write_file",
         "arguments": {"path": world.ws_path("new.txt"), "content": "no"}},
        {"op": "call_tool", "name": "read_text_file", "arguments": {"path": hello}},
    ]);
    let (session, _) = sdk_session(&peers, &world.run_argv(&[]), &steps);
    assert_eq!(
        step(&session, 1)["structured"]["rule"],
        json!("default-deny")
    );
    world
}

fn records(world: &World) -> Vec<Value> {
    let out = world.audit(&["export", "--jsonl"]);
    assert!(out.status.success(), "audit export: {out:?}");
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn verify(world: &World) -> (Option<i32>, String) {
    let out = world.audit(&["verify"]);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code(), text)
}

/// The `seq` of the decision record of the first `write_file` call.
fn denied_write_seq(records: &[Value]) -> i64 {
    records
        .iter()
        .find(|r| r["event"]["tool"] == json!("write_file"))
        .and_then(|r| r["seq"].as_i64())
        .unwrap_or_else(|| panic!("no write_file record in {records:#?}"))
}

#[test]
fn audit_chain_of_a_real_session_verifies() {
    let world = audited_world();
    let (code, text) = verify(&world);
    assert_eq!(code, Some(0), "{text}");
    assert!(text.contains("audit chain ok"), "{text}");

    let records = records(&world);
    // Decisions for three calls, outcomes for the two forwarded ones (plus whatever tools/list
    // the SDK sent on its own, which is not evaluated).
    let decisions: Vec<&Value> = records
        .iter()
        .filter(|r| r["event"]["kind"] == json!("decision"))
        .collect();
    assert_eq!(decisions.len(), 3, "{records:#?}");
    let denied = decisions
        .iter()
        .find(|r| r["event"]["tool"] == json!("write_file"))
        .unwrap();
    assert_eq!(denied["event"]["decision"], json!("deny"));
    assert_eq!(denied["event"]["rules"], json!(["default-deny"]));
    let outcomes = records
        .iter()
        .filter(|r| r["event"]["kind"] == json!("outcome"))
        .count();
    assert_eq!(outcomes, 2, "{records:#?}");

    let tail = world.audit(&["tail", "-n", "3"]);
    assert!(tail.status.success(), "{tail:?}");
    assert_eq!(
        String::from_utf8_lossy(&tail.stdout).lines().count(),
        3,
        "{tail:?}"
    );
}

#[test]
fn audit_verify_names_an_edited_record() {
    let world = audited_world();
    let seq = denied_write_seq(&records(&world));
    // Turn the recorded denial into an allow, as someone covering their tracks would.
    let changed = world
        .audit_db()
        .execute(
            "UPDATE audit SET body = replace(body, '\"decision\":\"deny\"', '\"decision\":\"allow\"') WHERE seq = ?1",
            [seq],
        )
        .unwrap();
    assert_eq!(changed, 1);
    let (code, text) = verify(&world);
    assert_eq!(code, Some(1), "{text}");
    assert!(
        text.contains(&format!("BROKEN at record {seq}")),
        "verify must name record {seq}: {text}"
    );
}

#[test]
fn audit_verify_names_a_deleted_record() {
    let world = audited_world();
    let seq = denied_write_seq(&records(&world));
    let changed = world
        .audit_db()
        .execute("DELETE FROM audit WHERE seq = ?1", [seq])
        .unwrap();
    assert_eq!(changed, 1);
    let (code, text) = verify(&world);
    assert_eq!(code, Some(1), "{text}");
    // The break shows at the record after the gap, and the message names the missing one.
    assert!(
        text.contains(&format!("BROKEN at record {}", seq + 1))
            && text.contains(&format!("record {seq} is missing")),
        "verify must name where the chain breaks: {text}"
    );
}
