//! `portcullis run` end to end: the real binary, the testkit echo server as a recording upstream,
//! raw JSON-RPC lines.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    reason = "test code"
)]

#[path = "support/gateway.rs"]
mod support;

use std::os::unix::fs::symlink;
use std::time::Duration;

use serde_json::json;
use support::{Setup, denial};

#[test]
fn allowed_call_reaches_the_server_and_returns_its_result() {
    let setup = Setup::new();
    let mut gw = setup.start();
    gw.init();
    let answer = gw.call(1, "echo", json!({"text": "hello"}));
    assert_eq!(
        answer["result"],
        json!({"content": [{"type": "text", "text": "hello"}], "isError": false})
    );
    assert!(setup.recording().contains(r#""text":"hello""#));
    assert_eq!(gw.finish(), 0);
    assert!(
        setup
            .log()
            .contains("portcullis: serving echo under policy"),
        "{}",
        setup.log()
    );
}

#[test]
fn start_up_line_names_policy_hash_mode_and_state() {
    let setup = Setup::new();
    let gw = setup.start();
    assert_eq!(gw.finish(), 0);
    let log = setup.log();
    let line = log
        .lines()
        .find(|l| l.starts_with("portcullis: serving"))
        .unwrap_or_else(|| panic!("{log}"));
    let state = setup.state_dir();
    assert!(
        line.contains(&format!("audit in {}", state.display())),
        "{line}"
    );
    assert!(line.contains(", mode enforce,"), "{line}");
    assert!(line.contains("(sha256 "), "{line}");
}

#[test]
fn denied_read_never_reaches_the_server() {
    let setup = Setup::new();
    let mut gw = setup.start();
    gw.init();
    let answer = gw.call(1, "read_file", json!({"path": "/etc/hostname"}));
    let d = denial(&answer);
    assert_eq!(d["rule"], json!("default-deny"));
    assert_eq!(d["reason_class"], json!("default"));
    assert_eq!(d["code"], json!("policy_denied"));
    let text = answer["result"]["content"][0]["text"].as_str().unwrap();
    assert!(text.contains(d["decision_id"].as_str().unwrap()), "{text}");
    assert!(!setup.recording().contains("/etc/hostname"));
    assert_eq!(gw.finish(), 0);
}

#[test]
fn deny_rule_shows_its_public_reason_and_nothing_else() {
    let setup = Setup::new();
    let mut gw = setup.start();
    gw.init();
    let path = setup.ws.join(".env");
    let answer = gw.call(1, "read_file", json!({"path": path}));
    let d = denial(&answer);
    assert_eq!(d["rule"], json!("deny-secrets"));
    assert_eq!(d["reason"], json!("secrets are off limits"));
    assert_eq!(d["reason_class"], json!("argument"));
    let text = answer.to_string();
    assert!(
        !text.contains("**/.env") && !text.contains("read-ws"),
        "{text}"
    );
    assert!(!setup.recording().contains(".env"));
}

#[test]
fn denied_write_leaves_no_file() {
    let setup = Setup::new();
    let mut gw = setup.start();
    gw.init();
    let outside = setup.root.join("outside.txt");
    let answer = gw.call(1, "write_file", json!({"path": outside, "content": "x"}));
    denial(&answer);
    assert!(!outside.exists());
    let inside = setup.ws.join("inside.txt");
    let answer = gw.call(2, "write_file", json!({"path": inside, "content": "x"}));
    assert_eq!(answer["result"]["isError"], json!(false), "{answer}");
    assert_eq!(std::fs::read_to_string(&inside).unwrap(), "x");
}

#[test]
fn traversal_is_denied() {
    let setup = Setup::new();
    std::fs::write(setup.root.join("secret.txt"), "s").unwrap();
    let mut gw = setup.start();
    gw.init();
    let path = format!("{}/../secret.txt", setup.ws.display());
    denial(&gw.call(1, "read_file", json!({"path": path})));
    let encoded = format!("{}/%2e%2e/secret.txt", setup.ws.display());
    denial(&gw.call(2, "read_file", json!({"path": encoded})));
    assert!(!setup.recording().contains("secret.txt"));
}

#[test]
fn symlink_escapes_are_denied() {
    let setup = Setup::new();
    let secret = setup.root.join("secret");
    std::fs::create_dir(&secret).unwrap();
    std::fs::write(secret.join("key"), "k").unwrap();
    symlink(&secret, setup.ws.join("link")).unwrap();
    symlink(secret.join("key"), setup.ws.join("key-link")).unwrap();
    let mut gw = setup.start();
    gw.init();
    denial(&gw.call(1, "read_file", json!({"path": setup.ws.join("link/key")})));
    denial(&gw.call(2, "read_file", json!({"path": setup.ws.join("key-link")})));
    // A new file under the linked directory: the write would land outside.
    let target = setup.ws.join("link/new.txt");
    denial(&gw.call(3, "write_file", json!({"path": target, "content": "x"})));
    assert!(!secret.join("new.txt").exists());
    assert!(!setup.recording().contains("link"), "{}", setup.recording());
}

#[test]
fn request_before_initialize_is_refused_but_ping_passes() {
    let setup = Setup::new();
    let mut gw = setup.start();
    let answer = gw.request(1, "tools/call", json!({"name": "echo", "arguments": {}}));
    assert_eq!(answer["error"]["code"], json!(-32600), "{answer}");
    let answer = gw.request(2, "tools/list", json!({}));
    assert_eq!(answer["error"]["code"], json!(-32600), "{answer}");
    let answer = gw.request(3, "ping", json!({}));
    assert_eq!(answer["result"], json!({}), "{answer}");
    assert!(!setup.recording().contains("tools/"));
}

#[test]
fn server_discover_and_unknown_methods_get_method_not_found() {
    let setup = Setup::new();
    let mut gw = setup.start();
    gw.init();
    for (id, method) in [
        (1, "server/discover"),
        (2, "tasks/get"),
        (3, "sampling/createMessage"),
    ] {
        let answer = gw.request(id, method, json!({}));
        assert_eq!(answer["error"]["code"], json!(-32601), "{answer}");
    }
    // Unknown notifications are dropped, not answered.
    gw.send(&json!({"jsonrpc": "2.0", "method": "notifications/made_up"}));
    gw.assert_silent(Duration::from_millis(200));
    let rec = setup.recording();
    assert!(
        !rec.contains("server/discover") && !rec.contains("tasks/get") && !rec.contains("made_up"),
        "{rec}"
    );
}

#[test]
fn hidden_tools_are_removed_from_tools_list_and_denied() {
    let setup = Setup::new();
    let mut gw = setup.start();
    gw.init();
    let answer = gw.request(1, "tools/list", json!({}));
    let names: Vec<&str> = answer["result"]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["echo", "write_file", "read_file"]);
    let d = denial(&gw.call(2, "hidden_tool", json!({}))).clone();
    assert_eq!(d["rule"], json!("hidden-tool"));
    assert_eq!(d["reason_class"], json!("tool-identity"));
}

#[test]
fn resource_denial_is_an_application_error() {
    let setup = Setup::new();
    let mut gw = setup.start();
    gw.init();
    let answer = gw.request(1, "resources/read", json!({"uri": "file:///etc/passwd"}));
    assert_eq!(answer["error"]["code"], json!(-31001), "{answer}");
    assert_eq!(answer["error"]["data"]["rule"], json!("default-deny"));
    let answer = gw.request(2, "resources/read", json!({"uri": "file:///ok/a"}));
    assert_eq!(
        answer["result"]["contents"][0]["text"],
        json!("resource body"),
        "{answer}"
    );
    let answer = gw.request(3, "prompts/get", json!({"name": "p"}));
    assert_eq!(answer["error"]["code"], json!(-31001), "{answer}");
    assert!(!setup.recording().contains("/etc/passwd"));
}

#[test]
fn sampling_from_the_server_is_refused_and_never_reaches_the_client() {
    let setup = Setup::new();
    let mut gw = setup.start();
    gw.init();
    let answer = gw.call(1, "sample", json!({}));
    assert_eq!(
        answer["result"]["content"][0]["text"],
        json!("sampling requested")
    );
    gw.assert_silent(Duration::from_millis(200));
    let rec = setup.recording();
    let refusal = rec
        .lines()
        .find(|l| l.contains(r#""id":"srv-1""#))
        .unwrap_or_else(|| panic!("{rec}"));
    let refusal: serde_json::Value = serde_json::from_str(refusal).unwrap();
    assert_eq!(refusal["error"]["code"], json!(-32601));
}

#[test]
fn roots_list_from_the_server_passes_and_the_answer_goes_back() {
    let setup = Setup::new();
    let mut gw = setup.start();
    gw.init();
    gw.send(&json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "roots", "arguments": {}}}));
    let first = gw.recv();
    let second = gw.recv();
    let (request, answer) = if first.get("method").is_some() {
        (first, second)
    } else {
        (second, first)
    };
    assert_eq!(request["method"], json!("roots/list"));
    assert_eq!(answer["id"], json!(1));
    gw.send(&json!({"jsonrpc": "2.0", "id": request["id"], "result": {"roots": []}}));
    // A response to a request the server never sent is dropped.
    gw.send(&json!({"jsonrpc": "2.0", "id": "never-sent", "result": {}}));
    gw.request(2, "ping", json!({}));
    let rec = setup.recording();
    assert!(rec.contains(r#""id":"srv-roots","result""#), "{rec}");
    assert!(!rec.contains("never-sent"), "{rec}");
}

#[test]
fn responses_with_unknown_ids_and_malformed_lines_from_the_server_are_dropped() {
    let setup = Setup::new();
    let mut gw = setup.start();
    gw.init();
    let answer = gw.call(1, "ghost", json!({}));
    assert_eq!(answer["result"]["content"][0]["text"], json!("after ghost"));
    let answer = gw.call(2, "garbage", json!({}));
    assert_eq!(
        answer["result"]["content"][0]["text"],
        json!("after garbage")
    );
    gw.assert_silent(Duration::from_millis(200));
    assert!(
        setup.log().contains("dropped a response from the server"),
        "{}",
        setup.log()
    );
}

#[test]
fn a_malformed_answer_to_a_pending_call_becomes_an_internal_error() {
    let setup = Setup::new();
    let mut gw = setup.start();
    gw.init();
    let answer = gw.call(1, "malformed_reply", json!({}));
    assert_eq!(answer["error"]["code"], json!(-32603), "{answer}");
    assert_eq!(
        gw.call(2, "echo", json!({"text": "still here"}))["result"]["isError"],
        json!(false)
    );
}

#[test]
fn server_crash_mid_call_fails_the_call_and_exits_with_the_server_status() {
    let setup = Setup::new();
    let mut gw = setup.start();
    gw.init();
    let answer = gw.call(1, "crash", json!({}));
    assert_eq!(answer["error"]["code"], json!(-32603), "{answer}");
    assert!(
        answer["error"]["message"]
            .as_str()
            .unwrap()
            .contains("server exited")
    );
    assert_eq!(gw.wait(), portcullis_testkit::echo::CRASH_STATUS);
}

#[test]
fn kill_session_answers_the_call_then_ends_the_session() {
    let setup = Setup::new();
    let mut gw = setup.start();
    gw.init();
    let d = denial(&gw.call(1, "kill_me", json!({}))).clone();
    assert_eq!(d["code"], json!("session_killed"));
    assert_eq!(gw.wait(), 1);
    assert!(!setup.recording().contains("kill_me"));
}

#[test]
fn a_policy_that_does_not_load_refuses_to_start() {
    let setup = Setup::new();
    std::fs::write(
        &setup.policy,
        "version: 1\nrules: [{ id: x, decison: allow }]\n",
    )
    .unwrap();
    let gw = setup.start();
    assert_eq!(gw.finish(), 2);
    assert!(setup.log().contains("refusing to start"), "{}", setup.log());
}

#[test]
fn an_unusable_state_dir_refuses_to_start() {
    let setup = Setup::new();
    std::fs::write(setup.state_dir(), "a file, not a directory").unwrap();
    let gw = setup.start();
    assert_eq!(gw.finish(), 2);
    assert!(
        setup.log().contains("cannot open the state directory"),
        "{}",
        setup.log()
    );
}

#[test]
fn an_audit_store_that_fails_denies_calls_and_the_gateway_stays_up() {
    let setup = Setup::new();
    let mut gw = setup.start();
    gw.init();
    assert_eq!(
        gw.call(1, "echo", json!({"text": "a"}))["result"]["isError"],
        json!(false)
    );
    // Break the signed head: the writer refuses to extend a chain it cannot vouch for.
    let db = rusqlite::Connection::open(setup.state_dir().join("state.db")).unwrap();
    db.execute("UPDATE chain_head SET signature = '00'", [])
        .unwrap();
    drop(db);
    let d = denial(&gw.call(2, "echo", json!({"text": "must not pass"}))).clone();
    assert_eq!(d["reason_class"], json!("internal"));
    assert_eq!(d["code"], json!("internal_error"));
    assert!(!setup.recording().contains("must not pass"));
    let answer = gw.request(3, "ping", json!({}));
    assert_eq!(answer["result"], json!({}));
    assert!(setup.log().contains("AUDIT FAILURE"));
}

#[test]
fn observe_mode_forwards_would_be_denials_and_says_so() {
    let setup = Setup::with_mode("observe");
    let mut gw = setup.start();
    gw.init();
    let outside = setup.root.join("observed.txt");
    let answer = gw.call(1, "write_file", json!({"path": outside, "content": "x"}));
    assert_eq!(answer["result"]["isError"], json!(false), "{answer}");
    assert!(outside.exists());
    assert_eq!(gw.finish(), 0);
    let log = setup.log();
    assert!(log.contains("WARNING: observe mode"), "{log}");
    assert!(log.contains("WOULD DENY"), "{log}");
    assert!(log.contains(", mode observe,"), "{log}");
}

#[test]
fn hot_reload_applies_a_good_policy_and_keeps_the_last_good_one_on_error() {
    let setup = Setup::new();
    let mut gw = setup.start();
    gw.init();
    assert_eq!(
        gw.call(1, "echo", json!({"text": "a"}))["result"]["isError"],
        json!(false)
    );
    // Broken: the old policy stays.
    std::fs::write(&setup.policy, "version: 1\nbogus: true\n").unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(
        gw.call(2, "echo", json!({"text": "b"}))["result"]["isError"],
        json!(false)
    );
    assert!(
        setup.log().contains("keeping the last good policy"),
        "{}",
        setup.log()
    );
    // Good but without the echo rule: echo is now denied.
    let text = support::policy_text(&setup.ws, &setup.record, "enforce")
        .replace("tool: [echo, ", "tool: [");
    std::fs::write(&setup.policy, text).unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    let d = denial(&gw.call(3, "echo", json!({"text": "c"}))).clone();
    assert_eq!(d["rule"], json!("default-deny"));
    assert!(setup.log().contains("policy reloaded"));
}
