//! `portcullis scan` against the real filesystem and git servers and the testkit echo server, and
//! `portcullis suggest` from an observe-mode session whose suggested rules are then enforced.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    reason = "test code"
)]

#[path = "support/gateway.rs"]
mod echo_support;
mod support;

use std::path::Path;
use std::process::{Command, Output};

use serde_json::{Value, json};
use support::{Peers, RawGateway, World, portcullis, run_with_timeout};

fn cli(args: &[&str]) -> Output {
    let mut cmd = Command::new(portcullis());
    cmd.args(args);
    run_with_timeout(cmd, None)
}

fn ok(out: &Output, what: &str) -> String {
    assert!(
        out.status.success(),
        "{what} failed ({}):\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn explain(policy: &Path, call: &Value) -> Value {
    let out = cli(&[
        "explain",
        "--policy",
        &policy.display().to_string(),
        "--call",
        &call.to_string(),
        "--json",
    ]);
    serde_json::from_str(&ok(&out, "explain")).expect("explain prints JSON")
}

/// Scans `command` into `ROOT/NAME.yaml` (and `ROOT/portcullis.lock`); returns the scaffold.
fn scan(world: &World, name: &str, command: &[&str]) -> String {
    let out_file = world.root.join(format!("{name}.yaml"));
    let mut args = vec![
        "scan".to_owned(),
        "--name".to_owned(),
        name.to_owned(),
        "--out".to_owned(),
        out_file.display().to_string(),
        "--".to_owned(),
    ];
    args.extend(command.iter().map(|s| (*s).to_owned()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    ok(&cli(&args), "scan");
    std::fs::read_to_string(&out_file).expect("scaffold written")
}

fn lock(world: &World) -> Value {
    let text = std::fs::read_to_string(world.root.join("portcullis.lock")).expect("lock written");
    serde_json::from_str(&text).expect("lock is JSON")
}

/// The scaffold loads, and `explain` denies every locked tool (with the default deny).
fn assert_loads_and_denies_all(policy: &Path, server: &str, lock: &Value) {
    let checked = ok(
        &cli(&["check", "--policy", &policy.display().to_string()]),
        "check",
    );
    assert!(checked.contains("ok — 0 rules"), "{checked}");
    let tools = lock["tools"].as_object().expect("lock tools");
    assert!(!tools.is_empty());
    for key in tools.keys() {
        let tool = key
            .strip_prefix(&format!("{server}."))
            .expect("server.tool");
        let verdict = explain(
            policy,
            &json!({"server": server, "tool": tool, "arguments": {}}),
        );
        assert_eq!(verdict["decision"], json!("deny"), "{key}: {verdict}");
        assert_eq!(
            verdict["rules"],
            json!(["default-deny"]),
            "{key}: {verdict}"
        );
    }
}

#[test]
fn scan_of_the_real_filesystem_server_classifies_denies_and_locks() {
    let peers = Peers::require();
    let world = World::new();
    let fs = peers.filesystem.display().to_string();
    let ws = world.ws.display().to_string();
    let scaffold = scan(&world, "fs", &[&fs, &ws]);
    assert!(
        scaffold.contains(r#""fs.read_text_file": { effect: read, args: { "path": "path""#),
        "{scaffold}"
    );
    assert!(
        scaffold.contains(r#""fs.write_file": { effect: write, args: { "path": "path""#),
        "{scaffold}"
    );
    assert!(
        scaffold
            .contains(r#""fs.read_multiple_files": { effect: read, args: { "paths": "path[]" } }"#),
        "{scaffold}"
    );
    assert!(scaffold.contains("not trusted, review"), "{scaffold}");
    assert!(scaffold.contains("rules: []"), "{scaffold}");
    let policy = world.root.join("fs.yaml");
    let lock = lock(&world);
    assert_eq!(lock["tools"].as_object().unwrap().len(), 14, "{lock}");
    assert_loads_and_denies_all(&policy, "fs", &lock);

    // The lock is the gateway's: under `pin: lock` every tool the server lists is approved.
    let mut gw = RawGateway::start(&[
        portcullis().display().to_string(),
        "run".to_owned(),
        "--policy".to_owned(),
        policy.display().to_string(),
    ]);
    gw.initialize();
    let listed = gw.request(1, "tools/list", json!({}));
    assert!(listed.get("result").is_some(), "{listed}");
    let denied = gw.call(
        2,
        "read_text_file",
        json!({"path": world.ws_path("hello.txt")}),
    );
    assert_eq!(denied["result"]["isError"], json!(true), "{denied}");
    let (_, stderr) = gw.finish();
    let status = cli(&["pin", "status", "--policy", &policy.display().to_string()]);
    let shown = ok(&status, "pin status");
    assert_eq!(
        shown.matches("approved").count(),
        14,
        "every tool approved by the scanned lock:\n{shown}\n{stderr}"
    );
}

#[test]
fn scan_of_the_real_git_server_declares_repo_path_and_denies_all() {
    let peers = Peers::require();
    let world = World::new();
    let init = Command::new("git")
        .args(["init", "-q"])
        .current_dir(&world.ws)
        .status()
        .expect("git init");
    assert!(init.success());
    let git = peers.git.display().to_string();
    let ws = world.ws.display().to_string();
    let scaffold = scan(&world, "git", &[&git, "--repository", &ws]);
    assert!(
        scaffold.contains(r#""git.git_status": { effect: read, args: { "repo_path": "path""#),
        "{scaffold}"
    );
    assert!(
        scaffold.contains(r#""git.git_commit": { effect: write"#),
        "{scaffold}"
    );
    let lock = lock(&world);
    assert!(lock["tools"]["git.git_status"].is_string(), "{lock}");
    assert_loads_and_denies_all(&world.root.join("git.yaml"), "git", &lock);
}

#[test]
fn scan_shows_a_poisoned_description_hides_it_and_leaves_it_out_of_the_lock() {
    let world = World::new();
    let echo = echo_support::echo_server().display().to_string();
    let scaffold = scan(
        &world,
        "echo",
        &["env", "PORTCULLIS_ECHO_VARIANT=poisoned", &echo],
    );
    assert!(
        scaffold.contains("# FINDING: description: an instruction to the model (`<important>`)"),
        "{scaffold}"
    );
    assert!(
        scaffold.contains("a reference to a secret path (`~/.ssh`)"),
        "{scaffold}"
    );
    assert!(
        scaffold.contains("hide:\n  - \"echo.write_file\""),
        "{scaffold}"
    );
    let lock = lock(&world);
    assert!(lock["tools"]["echo.echo"].is_string(), "{lock}");
    assert!(lock["tools"].get("echo.write_file").is_none(), "{lock}");
    assert_loads_and_denies_all(&world.root.join("echo.yaml"), "echo", &lock);
}

#[test]
fn scan_refuses_a_url_and_existing_files() {
    let out = cli(&["scan", "--url", "https://example.com/mcp"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not in this build"));
    let world = World::new();
    std::fs::write(world.root.join("x.yaml"), "keep").unwrap();
    let out = cli(&[
        "scan",
        "--out",
        &world.root.join("x.yaml").display().to_string(),
        "--",
        "true",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        std::fs::read_to_string(world.root.join("x.yaml")).unwrap(),
        "keep"
    );
}

const OBSERVE: &str = r#"version: 1
mode: observe
servers:
  echo:
    command: ["{BIN}"]
    cwd: "{WS}"
tools:
  echo.read_file: { effect: read, args: { path: path } }
  echo.echo: { effect: read, args: { text: string } }
rules: []
"#;

#[test]
fn suggested_rules_from_observe_mode_allow_exactly_what_was_seen() {
    let setup = echo_support::Setup::with_mode("observe");
    let ws = &setup.ws;
    std::fs::create_dir_all(ws.join("sub/deeper")).unwrap();
    std::fs::create_dir_all(ws.join("other")).unwrap();
    for f in ["sub/a.txt", "sub/deeper/b.txt", "other/c.txt"] {
        std::fs::write(ws.join(f), f).unwrap();
    }
    let policy_text = OBSERVE
        .replace("{BIN}", &echo_support::echo_server().display().to_string())
        .replace("{WS}", &ws.display().to_string());
    std::fs::write(&setup.policy, &policy_text).unwrap();
    let path = |rel: &str| ws.join(rel).display().to_string();

    let mut gw = setup.start();
    gw.init();
    for (id, args) in [
        (1, json!({"path": path("sub/a.txt")})),
        (2, json!({"path": path("sub/deeper/b.txt")})),
    ] {
        let answer = gw.call(id, "read_file", args);
        assert_eq!(answer["result"]["isError"], json!(false), "{answer}");
    }
    gw.call(3, "echo", json!({"text": "hello"}));
    // A credential: stored redacted, never suggested.
    gw.call(4, "echo", json!({"text": "AKIAIOSFODNN7EXAMPLE"}));
    assert_eq!(gw.finish(), 0);

    let policy = setup.policy.display().to_string();
    let suggested = ok(&cli(&["suggest", "--policy", &policy]), "suggest");
    assert!(
        suggested.contains("covers 2 call(s)"),
        "a comment per rule says what it covers:\n{suggested}"
    );
    assert!(
        !suggested.contains("AKIAIOSFODNN7EXAMPLE") && !suggested.contains("REDACTED"),
        "{suggested}"
    );
    assert!(
        suggested.contains(&format!("\"path\": {{ under: [\"{}\"] }}", path("sub"))),
        "{suggested}"
    );

    // Pasted into the policy, enforced.
    let enforced = policy_text
        .replace("mode: observe", "mode: enforce")
        .replace("rules: []\n", &suggested);
    std::fs::write(&setup.policy, &enforced).unwrap();
    ok(&cli(&["check", "--policy", &policy]), "check");
    let verdict = |tool: &str, args: Value| {
        explain(
            &setup.policy,
            &json!({"server": "echo", "tool": tool, "arguments": args}),
        )["decision"]
            .clone()
    };
    assert_eq!(
        verdict("read_file", json!({"path": path("sub/a.txt")})),
        json!("allow")
    );
    assert_eq!(verdict("echo", json!({"text": "hello"})), json!("allow"));
    assert_eq!(
        verdict("echo", json!({"text": "AKIAIOSFODNN7EXAMPLE"})),
        json!("deny")
    );
    assert_eq!(
        verdict("write_file", json!({"path": path("sub/a.txt")})),
        json!("deny")
    );

    // And through the real gateway in enforce mode.
    let mut gw = setup.start();
    gw.init();
    for (id, rel) in [(1, "sub/a.txt"), (2, "sub/deeper/b.txt")] {
        let answer = gw.call(id, "read_file", json!({"path": path(rel)}));
        assert_eq!(answer["result"]["isError"], json!(false), "{rel}: {answer}");
        assert_eq!(answer["result"]["content"][0]["text"], json!(rel));
    }
    let sibling = gw.call(3, "read_file", json!({"path": path("other/c.txt")}));
    assert_eq!(
        echo_support::denial(&sibling)["rule"],
        json!("default-deny"),
        "{sibling}"
    );
    let echoed = gw.call(4, "echo", json!({"text": "hello"}));
    assert_eq!(echoed["result"]["isError"], json!(false), "{echoed}");
    assert_eq!(gw.finish(), 0);
}
