//! Pinning the real reference servers' tool lists (`@modelcontextprotocol/server-filesystem` and
//! `server-everything` from `.peers/`, installed by `scripts/install-peers`).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    reason = "test code"
)]

#[path = "support/gateway.rs"]
mod support;

use serde_json::{Value, json};
use support::{Setup, denial, node_peer};

fn node_path() -> String {
    std::env::var("PATH").unwrap_or_default()
}

fn names(answer: &Value) -> Vec<String> {
    answer["result"]["tools"]
        .as_array()
        .unwrap_or_else(|| panic!("{answer}"))
        .iter()
        .map(|t| t["name"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn server_filesystem_tools_are_pinned_and_an_extra_argument_is_denied() {
    let setup = Setup::new();
    std::fs::write(setup.ws.join("a.txt"), "hello").unwrap();
    let text = format!(
        r#"version: 1
servers:
  fs:
    command: [{bin}, {ws}]
    cwd: {ws}
    pin: tofu
    env: {{ PATH: "{path}" }}
tools:
  fs.read_text_file: {{ effect: read, args: {{ path: path }} }}
  fs.list_directory: {{ effect: read, args: {{ path: path }} }}
rules:
  - id: read-ws
    when: {{ server: fs, tool: [read_text_file, list_directory], args: {{ path: {{ under: {ws} }} }} }}
    decision: allow
"#,
        bin = node_peer("mcp-server-filesystem").display(),
        ws = setup.ws.display(),
        path = node_path(),
    );
    std::fs::write(&setup.policy, text).unwrap();
    let mut gw = setup.start();
    gw.init();
    // Only the tools the policy can allow are listed.
    let listed = names(&gw.request(1, "tools/list", json!({})));
    assert_eq!(
        listed,
        ["read_text_file", "list_directory"],
        "{}",
        setup.log()
    );
    let file = setup.ws.join("a.txt").display().to_string();
    let ok = gw.call(2, "read_text_file", json!({"path": file}));
    assert_eq!(ok["result"]["content"][0]["text"], json!("hello"), "{ok}");
    let d = denial(&gw.call(
        3,
        "read_text_file",
        json!({"path": file, "encoding": "latin1"}),
    ))
    .clone();
    assert_eq!(d["reason_class"], json!("schema"), "{d}");
    let d = denial(&gw.call(4, "read_text_file", json!({"path": file, "head": "3"}))).clone();
    assert_eq!(d["reason_class"], json!("schema"), "{d}");
    assert_eq!(gw.finish(), 0);

    // Every listed tool was pinned at first sight, none held back.
    let store = portcullis_store::SqliteStore::open(&setup.state_dir()).unwrap();
    let pins = store.pins(Some("fs")).unwrap();
    assert_eq!(pins.len(), 14, "{pins:?}");
    let held: Vec<_> = pins
        .iter()
        .filter(|p| p.status != portcullis_store::PinStatus::Approved)
        .map(|p| (p.tool.clone(), p.finding.clone()))
        .collect();
    assert!(held.is_empty(), "{held:?}");
}

#[test]
fn server_everything_tools_are_pinned_without_false_findings() {
    let setup = Setup::new();
    let text = format!(
        r#"version: 1
servers:
  everything:
    command: [{bin}]
    pin: tofu
    env: {{ PATH: "{path}" }}
rules:
  - id: echo
    when: {{ server: everything, tool: echo }}
    decision: allow
"#,
        bin = node_peer("mcp-server-everything").display(),
        path = node_path(),
    );
    std::fs::write(&setup.policy, text).unwrap();
    let mut gw = setup.start();
    gw.init();
    // server-everything sends notifications (tools/list_changed among them): skip them.
    let answer = |gw: &mut support::Gateway, id: i64, method: &str, params: Value| {
        gw.send(&json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}));
        loop {
            let line = gw.recv();
            if line["id"] == json!(id) {
                return line;
            }
        }
    };
    let listed = names(&answer(&mut gw, 1, "tools/list", json!({})));
    assert_eq!(listed, ["echo"], "{}", setup.log());
    let ok = answer(
        &mut gw,
        2,
        "tools/call",
        json!({"name": "echo", "arguments": {"message": "hi"}}),
    );
    assert!(ok["result"]["isError"] != json!(true), "{ok}");
    assert_eq!(gw.finish(), 0);
    let store = portcullis_store::SqliteStore::open(&setup.state_dir()).unwrap();
    let pins = store.pins(Some("everything")).unwrap();
    assert!(pins.len() >= 10, "{pins:?}");
    let held: Vec<_> = pins
        .iter()
        .filter(|p| p.status != portcullis_store::PinStatus::Approved)
        .map(|p| (p.tool.clone(), p.finding.clone()))
        .collect();
    assert!(held.is_empty(), "{held:?}");
}
