//! Tool vetting end to end: pinning (tofu and lock), rug pulls, poisoned definitions, input schema
//! checks and `portcullis pin`, through the real `portcullis run` with the testkit echo server.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    reason = "test code"
)]

#[path = "support/gateway.rs"]
mod support;

use std::process::Command;

use serde_json::{Value, json};
use support::{Gateway, Setup, denial, echo_server};

const RULES: &str = r#"tools:
  echo.echo: { effect: read }
rules:
  - id: echo-ok
    when: { server: echo, tool: [echo, write_file, read_file, extra_tool] }
    decision: allow
"#;

/// Writes the policy: the echo server pinned with `pin`, serving tool-list `variant`.
fn write_policy(setup: &Setup, pin: &str, variant: &str) {
    let text = format!(
        "version: 1\nservers:\n  echo:\n    command: [{bin}]\n    cwd: {ws}\n    pin: {pin}\n    env: {{ PORTCULLIS_ECHO_RECORD: {record}, PORTCULLIS_ECHO_VARIANT: \"{variant}\" }}\n{RULES}",
        bin = echo_server().display(),
        ws = setup.ws.display(),
        record = setup.record.display(),
    );
    std::fs::write(&setup.policy, text).unwrap();
}

fn listed(gw: &mut Gateway, id: i64) -> Vec<String> {
    let answer = gw.request(id, "tools/list", json!({}));
    answer["result"]["tools"]
        .as_array()
        .unwrap_or_else(|| panic!("{answer}"))
        .iter()
        .map(|t| t["name"].as_str().unwrap().to_owned())
        .collect()
}

fn is_denied(answer: &Value) -> bool {
    answer["result"]["isError"] == json!(true) && answer["result"]["structuredContent"].is_object()
}

fn pin_cli(setup: &Setup, args: &[&str]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_portcullis"))
        .arg("pin")
        .args(args)
        .arg("--policy")
        .arg(&setup.policy)
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.code().unwrap_or(-1), text)
}

#[test]
fn tofu_hides_and_denies_a_rug_pull_until_approved() {
    let setup = Setup::new();
    write_policy(&setup, "tofu", "");
    let mut gw = setup.start();
    gw.init();
    assert_eq!(listed(&mut gw, 1), ["echo", "write_file", "read_file"]);
    assert!(!is_denied(&gw.call(2, "echo", json!({"text": "first"}))));
    assert_eq!(gw.finish(), 0);

    write_policy(&setup, "tofu", "rugpull");
    let mut gw = setup.start();
    gw.init();
    assert_eq!(listed(&mut gw, 1), ["write_file", "read_file"]);
    let d = denial(&gw.call(2, "echo", json!({"text": "pulled"}))).clone();
    assert_eq!(d["reason_class"], json!("tool-identity"), "{d}");
    assert_eq!(d["rule"], json!("tool-identity"));
    assert!(!setup.recording().contains("pulled"));
    assert_eq!(gw.finish(), 0);

    let (code, text) = pin_cli(&setup, &["status"]);
    assert_eq!(code, 1, "{text}");
    assert!(
        text.contains("pending") && text.contains("echo.echo") && text.contains("changed"),
        "{text}"
    );
    let (code, text) = pin_cli(&setup, &["approve", "echo.echo"]);
    assert_eq!(code, 0, "{text}");

    let mut gw = setup.start();
    gw.init();
    assert_eq!(listed(&mut gw, 1), ["echo", "write_file", "read_file"]);
    assert!(!is_denied(&gw.call(2, "echo", json!({"text": "approved"}))));
    assert_eq!(gw.finish(), 0);
}

#[test]
fn reordered_keys_are_not_a_change() {
    let setup = Setup::new();
    write_policy(&setup, "tofu", "");
    let mut gw = setup.start();
    gw.init();
    assert_eq!(listed(&mut gw, 1), ["echo", "write_file", "read_file"]);
    assert_eq!(gw.finish(), 0);
    write_policy(&setup, "tofu", "reordered");
    let mut gw = setup.start();
    gw.init();
    assert_eq!(listed(&mut gw, 1), ["echo", "write_file", "read_file"]);
    assert!(!is_denied(&gw.call(2, "echo", json!({"text": "same"}))));
    assert_eq!(gw.finish(), 0);
}

#[test]
fn a_new_tool_after_first_contact_waits_for_approval() {
    let setup = Setup::new();
    write_policy(&setup, "tofu", "");
    let mut gw = setup.start();
    gw.init();
    assert_eq!(listed(&mut gw, 1).len(), 3);
    assert_eq!(gw.finish(), 0);
    write_policy(&setup, "tofu", "extra");
    let mut gw = setup.start();
    gw.init();
    assert!(!listed(&mut gw, 1).contains(&"extra_tool".to_owned()));
    let d = denial(&gw.call(2, "extra_tool", json!({}))).clone();
    assert_eq!(d["reason_class"], json!("tool-identity"));
    assert_eq!(gw.finish(), 0);
}

#[test]
fn a_poisoned_description_is_quarantined_with_a_readable_finding() {
    let setup = Setup::new();
    write_policy(&setup, "tofu", "poisoned");
    let mut gw = setup.start();
    gw.init();
    assert_eq!(listed(&mut gw, 1), ["echo", "read_file"]);
    let path = setup.ws.join("x").display().to_string();
    let d = denial(&gw.call(2, "write_file", json!({"path": path}))).clone();
    assert_eq!(d["reason_class"], json!("tool-identity"));
    assert_eq!(gw.finish(), 0);
    assert!(!setup.ws.join("x").exists());
    let (code, text) = pin_cli(&setup, &["status"]);
    assert_eq!(code, 1);
    assert!(
        text.contains("quarantined")
            && text.contains("echo.write_file")
            && text.contains("<important>"),
        "{text}"
    );
}

#[test]
fn calls_are_checked_against_the_pinned_input_schema() {
    let setup = Setup::new();
    write_policy(&setup, "tofu", "");
    let mut gw = setup.start();
    gw.init();
    assert!(!is_denied(&gw.call(1, "echo", json!({"text": "ok"}))));
    for (id, args) in [
        (2, json!({"text": "x", "extra": 1})),
        (3, json!({"Text": "x"})),
        (4, json!({"text": 5})),
        (5, json!({})),
    ] {
        let d = denial(&gw.call(id, "echo", args.clone())).clone();
        assert_eq!(d["reason_class"], json!("schema"), "{args}: {d}");
        assert_eq!(d["rule"], json!("input-schema"), "{args}: {d}");
    }
    assert_eq!(setup.recording().matches("tools/call").count(), 1);
    assert_eq!(gw.finish(), 0);
}

#[test]
fn a_call_sent_before_any_listing_is_decided_on_the_gateways_own_listing() {
    let setup = Setup::new();
    write_policy(&setup, "tofu", "");
    let mut gw = setup.start();
    gw.init();
    // No tools/list from the client: the gateway listed the tools itself.
    assert!(!is_denied(&gw.call(1, "echo", json!({"text": "early"}))));
    let d = denial(&gw.call(2, "extra_tool", json!({}))).clone();
    assert_eq!(d["reason_class"], json!("tool-identity"));
    assert_eq!(gw.finish(), 0);
}

#[test]
fn lock_exposes_only_locked_tools_and_pin_update_writes_the_lock() {
    let setup = Setup::new();
    write_policy(&setup, "lock", "");
    let mut gw = setup.start();
    gw.init();
    assert_eq!(listed(&mut gw, 1), Vec::<String>::new());
    assert!(is_denied(&gw.call(2, "echo", json!({"text": "x"}))));
    assert_eq!(gw.finish(), 0);

    let (code, text) = pin_cli(&setup, &["update"]);
    assert_eq!(code, 0, "{text}");
    let lock = std::fs::read_to_string(setup.root.join("portcullis.lock")).unwrap();
    assert!(lock.contains("\"echo.echo\""), "{lock}");

    let mut gw = setup.start();
    gw.init();
    assert_eq!(listed(&mut gw, 1), ["echo", "write_file", "read_file"]);
    assert!(!is_denied(&gw.call(2, "echo", json!({"text": "locked"}))));
    assert_eq!(gw.finish(), 0);

    // A rug pull against the lock is hidden and denied.
    write_policy(&setup, "lock", "rugpull");
    let mut gw = setup.start();
    gw.init();
    assert_eq!(listed(&mut gw, 1), ["write_file", "read_file"]);
    assert!(is_denied(&gw.call(2, "echo", json!({"text": "x"}))));
    assert_eq!(gw.finish(), 0);
}
