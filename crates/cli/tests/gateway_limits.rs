//! Flow control end to end: rate limits and budgets, trips, and taint from responses, through the
//! real `portcullis run` with the testkit echo server as upstream.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    reason = "test code"
)]

#[path = "support/gateway.rs"]
mod support;

use std::collections::HashMap;

use serde_json::{Value, json};
use support::{Setup, denial, echo_server};

/// A setup whose policy has the echo server and the given `tools`/`rules` (YAML, indented as
/// top-level sections).
fn setup_with(body: &str) -> Setup {
    let setup = Setup::new();
    let text = format!(
        "version: 1\nservers:\n  echo:\n    command: [{bin}]\n    cwd: {ws}\n    env: {{ PORTCULLIS_ECHO_RECORD: {record} }}\n{body}",
        bin = echo_server().display(),
        ws = setup.ws.display(),
        record = setup.record.display(),
    );
    std::fs::write(&setup.policy, text).unwrap();
    setup
}

fn is_denied(answer: &Value) -> bool {
    answer["result"]["isError"] == json!(true) && answer["result"]["structuredContent"].is_object()
}

/// How many `tools/call` lines for `tool` reached the upstream.
fn forwarded(setup: &Setup, tool: &str) -> usize {
    let needle = format!(r#""name":"{tool}""#);
    setup
        .recording()
        .lines()
        .filter(|l| l.contains("tools/call") && l.contains(&needle))
        .count()
}

// Windows of 366 days: fixed windows start at multiples of their length since the epoch, and an
// hour window made these tests fail when a run crossed the hour (seen at 05:00:00).
const LIMITED: &str = r#"tools:
  echo.echo: { effect: read }
rules:
  - id: ten-calls
    when: { server: echo, tool: echo }
    decision: allow
    limit: { calls: 10, per: 366d, by: session }
"#;

#[test]
fn hundred_parallel_calls_against_a_limit_of_ten_let_exactly_ten_through() {
    let setup = setup_with(LIMITED);
    let mut gw = setup.start();
    gw.init();
    for id in 1..=100 {
        gw.send(&json!({"jsonrpc": "2.0", "id": id, "method": "tools/call",
            "params": {"name": "echo", "arguments": {"text": format!("call {id}")}}}));
    }
    let mut answers = HashMap::new();
    for _ in 0..100 {
        let answer = gw.recv();
        answers.insert(answer["id"].as_i64().unwrap(), answer);
    }
    assert_eq!(answers.len(), 100);
    let denied: Vec<&Value> = answers.values().filter(|a| is_denied(a)).collect();
    assert_eq!(answers.len() - denied.len(), 10);
    for d in &denied {
        let d = denial(d);
        assert_eq!(d["reason_class"], json!("rate-limit"), "{d}");
        assert_eq!(d["code"], json!("limit_exceeded"), "{d}");
        assert_eq!(d["rule"], json!("ten-calls"), "{d}");
    }
    assert_eq!(forwarded(&setup, "echo"), 10);
    assert_eq!(gw.finish(), 0);
}

#[test]
fn a_session_limit_does_not_spill_into_the_next_session() {
    let setup = setup_with(LIMITED.replace("calls: 10", "calls: 2").as_str());
    for _ in 0..2 {
        let mut gw = setup.start();
        gw.init();
        assert!(!is_denied(&gw.call(1, "echo", json!({"text": "a"}))));
        assert!(!is_denied(&gw.call(2, "echo", json!({"text": "b"}))));
        assert!(is_denied(&gw.call(3, "echo", json!({"text": "c"}))));
        assert_eq!(gw.finish(), 0);
    }
}

#[test]
fn a_global_limit_is_shared_by_sessions() {
    let setup = setup_with(
        LIMITED
            .replace("calls: 10", "calls: 2")
            .replace("by: session", "by: global")
            .as_str(),
    );
    let mut gw = setup.start();
    gw.init();
    assert!(!is_denied(&gw.call(1, "echo", json!({"text": "a"}))));
    assert_eq!(gw.finish(), 0);
    let mut gw = setup.start();
    gw.init();
    assert!(!is_denied(&gw.call(1, "echo", json!({"text": "b"}))));
    let d = denial(&gw.call(2, "echo", json!({"text": "c"}))).clone();
    assert_eq!(d["reason_class"], json!("rate-limit"));
    assert_eq!(gw.finish(), 0);
}

#[test]
fn a_json_rpc_error_from_the_upstream_gives_the_charge_back() {
    let setup = setup_with(
        r#"rules:
  - id: one-call
    when: { server: echo, tool: [rpc_error, echo] }
    decision: allow
    limit: { calls: 1, per: 366d }
"#,
    );
    let mut gw = setup.start();
    gw.init();
    for id in 1..=3 {
        let answer = gw.call(id, "rpc_error", json!({}));
        assert_eq!(answer["error"]["code"], json!(-32000), "{answer}");
    }
    // Every failed call was given back, so the one allowed call is still there.
    assert!(!is_denied(&gw.call(4, "echo", json!({"text": "ok"}))));
    assert!(is_denied(&gw.call(5, "echo", json!({"text": "no"}))));
    assert_eq!(gw.finish(), 0);
}

#[test]
fn a_budget_sums_an_argument_and_denies_what_it_cannot_read() {
    let setup = setup_with(
        r#"rules:
  - id: spend
    when: { server: echo, tool: echo }
    decision: allow
    limit: { sum: amount, max: 100, per: 366d, by: principal }
"#,
    );
    let mut gw = setup.start();
    gw.init();
    assert!(!is_denied(&gw.call(
        1,
        "echo",
        json!({"text": "a", "amount": 60})
    )));
    let d = denial(&gw.call(2, "echo", json!({"text": "b", "amount": 41}))).clone();
    assert_eq!(d["reason_class"], json!("rate-limit"));
    assert!(!is_denied(&gw.call(
        3,
        "echo",
        json!({"text": "c", "amount": 40})
    )));
    let d = denial(&gw.call(4, "echo", json!({"text": "d", "amount": "1"}))).clone();
    assert_eq!(d["reason_class"], json!("argument"));
    let d = denial(&gw.call(5, "echo", json!({"text": "e"}))).clone();
    assert_eq!(d["reason_class"], json!("argument"));
    assert_eq!(forwarded(&setup, "echo"), 2);
    assert_eq!(gw.finish(), 0);
}

#[test]
fn a_counter_that_cannot_be_written_denies_with_internal() {
    let setup = setup_with(LIMITED);
    let mut gw = setup.start();
    gw.init();
    assert!(!is_denied(&gw.call(1, "echo", json!({"text": "a"}))));
    // Take the counters away from under the gateway, as a damaged database would.
    let db = setup.state_dir().join("state.db");
    let conn = rusqlite::Connection::open(&db).unwrap();
    conn.execute_batch("ALTER TABLE counters RENAME TO counters_gone")
        .unwrap();
    let d = denial(&gw.call(2, "echo", json!({"text": "b"}))).clone();
    assert_eq!(d["reason_class"], json!("internal"), "{d}");
    assert_eq!(d["code"], json!("internal_error"), "{d}");
    assert_eq!(forwarded(&setup, "echo"), 1);
    drop(conn);
    assert_eq!(gw.finish(), 0);
}

const PROBED: &str = r#"kill_after: { denials: 3, within: 1m }
tools:
  echo.echo: { effect: read }
rules:
  - id: echo-ok
    when: { server: echo, tool: echo }
    decision: allow
"#;

#[test]
fn kill_after_ends_a_session_that_keeps_probing() {
    let setup = setup_with(PROBED);
    let mut gw = setup.start();
    gw.init();
    assert!(is_denied(&gw.call(
        1,
        "read_file",
        json!({"path": "/etc/passwd"})
    )));
    assert!(!is_denied(&gw.call(2, "echo", json!({"text": "fine"}))));
    assert!(is_denied(&gw.call(
        3,
        "write_file",
        json!({"path": "/tmp/x"})
    )));
    let d = denial(&gw.call(4, "read_file", json!({"path": "/etc/shadow"}))).clone();
    assert_eq!(d["rule"], json!("default-deny"));
    assert_eq!(gw.wait(), 1, "the third denial ends the session");
    assert!(setup.log().contains("kill_after"), "{}", setup.log());
}

#[test]
fn a_server_kill_after_replaces_the_policy_one() {
    let setup = setup_with(
        &PROBED
            .replace("kill_after: { denials: 3, within: 1m }\n", "")
            .replace(
                "tools:",
                "    kill_after: { denials: 1, within: 1m }\ntools:",
            ),
    );
    let mut gw = setup.start();
    gw.init();
    assert!(is_denied(&gw.call(
        1,
        "read_file",
        json!({"path": "/etc/passwd"})
    )));
    assert_eq!(gw.wait(), 1);
}

const TRIFECTA: &str = r#"tools:
  echo.read_file: { effect: read, args: { path: path } }
  echo.echo: { effect: network }
rules:
  - id: read-ws
    when: { server: echo, tool: read_file, args: { path: { under: WS } } }
    decision: allow
  - id: env-taints
    when: { server: echo, tool: read_file, args: { path: { glob: ["**/.env"] } } }
    decision: allow
    taint: [secret]
  - id: send
    when: { server: echo, tool: echo }
    decision: allow
  - id: no-exfiltration
    when: { effect: network, labels: [secret] }
    decision: deny
    on_deny: this session has handled a secret
"#;

const PRIVATE_KEY: &str = "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZW\n-----END OPENSSH PRIVATE KEY-----\n";

fn trifecta() -> Setup {
    let setup = setup_with("");
    let body = TRIFECTA.replace("WS", &setup.ws.display().to_string());
    let text = std::fs::read_to_string(&setup.policy).unwrap() + &body;
    std::fs::write(&setup.policy, text).unwrap();
    setup
}

#[test]
fn trifecta_a_credential_in_a_response_blocks_network_calls_for_the_session_only() {
    let setup = trifecta();
    std::fs::write(setup.ws.join("notes.txt"), PRIVATE_KEY).unwrap();
    let mut gw = setup.start();
    gw.init();
    assert!(!is_denied(&gw.call(1, "echo", json!({"text": "before"}))));
    let answer = gw.call(
        2,
        "read_file",
        json!({"path": setup.ws.join("notes.txt").display().to_string()}),
    );
    assert!(!is_denied(&answer), "{answer}");
    let d = denial(&gw.call(3, "echo", json!({"text": "exfiltrate"}))).clone();
    assert_eq!(d["rule"], json!("no-exfiltration"));
    assert_eq!(d["reason_class"], json!("tainted-session"));
    assert!(!setup.recording().contains("exfiltrate"));
    assert_eq!(gw.finish(), 0);

    // A fresh session starts clean.
    let mut gw = setup.start();
    gw.init();
    assert!(!is_denied(&gw.call(1, "echo", json!({"text": "fresh"}))));
    assert_eq!(gw.finish(), 0);
}

#[test]
fn trifecta_a_tainting_rule_blocks_network_calls_after_it() {
    let setup = trifecta();
    std::fs::write(setup.ws.join(".env"), "PLAIN=value\n").unwrap();
    let mut gw = setup.start();
    gw.init();
    let answer = gw.call(
        1,
        "read_file",
        json!({"path": setup.ws.join(".env").display().to_string()}),
    );
    assert!(!is_denied(&answer), "{answer}");
    let d = denial(&gw.call(2, "echo", json!({"text": "exfiltrate"}))).clone();
    assert_eq!(d["rule"], json!("no-exfiltration"));
    assert_eq!(gw.finish(), 0);
}
