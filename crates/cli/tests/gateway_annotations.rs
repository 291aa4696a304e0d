//! Tool annotations from the real `@modelcontextprotocol/server-filesystem` (installed into
//! `.peers/` by `scripts/install-peers`) in classification, through `portcullis run`: without
//! `trust_annotations` an undeclared tool stays `unknown`; with it and `pin:`, a tool the server
//! marks `readOnlyHint: true` is a read; a tool the policy wrongly declares `read` but the server
//! marks destructive is contested and refused, even by a rule that allows reads.

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

fn names(answer: &Value) -> Vec<String> {
    let mut names: Vec<String> = answer["result"]["tools"]
        .as_array()
        .unwrap_or_else(|| panic!("{answer}"))
        .iter()
        .map(|t| t["name"].as_str().unwrap().to_owned())
        .collect();
    names.sort();
    names
}

/// A policy over the real filesystem server that declares only `write_file`, and wrongly.
fn policy(setup: &Setup, server_extra: &str) -> String {
    format!(
        r#"version: 1
servers:
  fs:
    command: [{bin}, {ws}]
    cwd: {ws}
    env: {{ PATH: "{path}" }}
    {server_extra}
tools:
  fs.write_file: {{ effect: read, args: {{ path: path, content: string }} }}
rules:
  - id: reads
    when: {{ server: fs, effect: read }}
    decision: allow
"#,
        bin = node_peer("mcp-server-filesystem").display(),
        ws = setup.ws.display(),
        path = std::env::var("PATH").unwrap_or_default(),
    )
}

#[test]
fn trusted_vetted_annotations_make_read_only_tools_reads_and_contest_a_wrong_declaration() {
    let setup = Setup::new();
    std::fs::write(setup.ws.join("a.txt"), "hello").unwrap();
    std::fs::write(
        &setup.policy,
        policy(&setup, "pin: tofu\n    trust_annotations: true"),
    )
    .unwrap();
    let mut gw = setup.start();
    gw.init();
    let listed = names(&gw.request(1, "tools/list", json!({})));
    // Every read-only tool is listed now that it can be allowed; the destructive ones are not,
    // and neither is `write_file`, whose declared `read` the server contests.
    for tool in [
        "list_directory",
        "read_text_file",
        "search_files",
        "get_file_info",
    ] {
        assert!(listed.contains(&tool.to_owned()), "{tool}: {listed:?}");
    }
    for tool in ["write_file", "edit_file", "move_file", "create_directory"] {
        assert!(!listed.contains(&tool.to_owned()), "{tool}: {listed:?}");
    }

    let file = setup.ws.join("a.txt").display().to_string();
    let ok = gw.call(2, "read_text_file", json!({"path": file}));
    assert_eq!(
        ok["result"]["content"][0]["text"],
        json!("hello"),
        "{ok}\n{}",
        setup.log()
    );
    let d = denial(&gw.call(
        3,
        "write_file",
        json!({"path": setup.ws.join("b.txt").display().to_string(), "content": "x"}),
    ))
    .clone();
    assert_eq!(d["code"], json!("policy_denied"), "{d}");
    let d = denial(&gw.call(
        4,
        "move_file",
        json!({"source": file, "destination": setup.ws.join("c.txt").display().to_string()}),
    ))
    .clone();
    assert_eq!(d["code"], json!("policy_denied"), "{d}");
    assert_eq!(gw.finish(), 0);
    assert!(
        !setup.ws.join("b.txt").exists(),
        "the write reached the server"
    );
    assert!(
        setup.ws.join("a.txt").exists(),
        "the move reached the server"
    );
}

#[test]
fn without_trust_an_undeclared_tool_stays_unknown_but_a_contest_still_counts() {
    let setup = Setup::new();
    std::fs::write(setup.ws.join("a.txt"), "hello").unwrap();
    // No `pin:`: the annotations the client's own tools/list relays can only tighten.
    std::fs::write(&setup.policy, policy(&setup, "trust_annotations: false")).unwrap();
    let mut gw = setup.start();
    gw.init();
    let listed = names(&gw.request(1, "tools/list", json!({})));
    assert!(listed.is_empty(), "{listed:?}");
    let file = setup.ws.join("a.txt").display().to_string();
    let d = denial(&gw.call(2, "read_text_file", json!({"path": file}))).clone();
    assert_eq!(d["code"], json!("policy_denied"), "{d}");
    let d = denial(&gw.call(
        3,
        "write_file",
        json!({"path": setup.ws.join("b.txt").display().to_string(), "content": "x"}),
    ))
    .clone();
    assert_eq!(d["code"], json!("policy_denied"), "{d}");
    assert_eq!(gw.finish(), 0);
    assert!(
        !setup.ws.join("b.txt").exists(),
        "the write reached the server"
    );
}

#[test]
fn annotations_never_loosen_without_a_listing() {
    // The client calls `write_file` before any tools/list: the gateway has not seen the
    // server's annotations, so the (wrong) declaration stands — what the operator wrote.
    let setup = Setup::new();
    std::fs::write(&setup.policy, policy(&setup, "trust_annotations: true")).unwrap();
    let mut gw = setup.start();
    gw.init();
    let d = denial(&gw.call(
        2,
        "list_directory",
        json!({"path": setup.ws.display().to_string()}),
    ))
    .clone();
    assert_eq!(
        d["rule"],
        json!("default-deny"),
        "undeclared and unvetted: {d}"
    );
    assert_eq!(gw.finish(), 0);
}
