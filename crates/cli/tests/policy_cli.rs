//! The policy commands (`check`, `explain`, `test`, `pack`, `schema`) as a user runs them: the
//! real binary, real files, exit codes and output.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    reason = "test code"
)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_portcullis"));
    c.env("SEARCH_TOKEN", "test-token");
    c
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn design() -> String {
    repo().join("examples/design.yaml").display().to_string()
}

fn run(args: &[&str]) -> Output {
    bin().args(args).output().expect("run portcullis")
}

fn explain_json(call: &str) -> (Value, i32) {
    let out = run(&["explain", "--policy", &design(), "--call", call, "--json"]);
    let v: Value = serde_json::from_slice(&out.stdout).expect("explain prints one JSON object");
    (v, out.status.code().unwrap_or(-1))
}

#[test]
fn explain_gives_the_design_verdicts() {
    let cases = [
        (
            r#"{"server":"fs","tool":"read_text_file","arguments":{"path":"/workspace/README.md"}}"#,
            "allow",
            "read-workspace",
        ),
        (
            r#"{"server":"fs","tool":"read_text_file","arguments":{"path":"/workspace/../etc/passwd"}}"#,
            "deny",
            "default-deny",
        ),
        (
            r#"{"server":"fs","tool":"read_text_file","arguments":{"path":"/workspace-evil/x"}}"#,
            "deny",
            "default-deny",
        ),
        (
            r#"{"server":"fs","tool":"read_text_file","arguments":{"path":"/workspace/.env/"}}"#,
            "deny",
            "deny-secrets",
        ),
        (
            r#"{"server":"fs","tool":"write_file","arguments":{"path":"/workspace/a","content":"x"}}"#,
            "require_approval",
            "approve-writes",
        ),
        (
            r#"{"server":"fs","tool":"frobnicate","arguments":{}}"#,
            "require_approval",
            "approve-writes",
        ),
        (
            r#"{"server":"billing","tool":"create_charge","arguments":{"amount":5}}"#,
            "deny",
            "unconfigured-server",
        ),
    ];
    for (call, decision, rule) in cases {
        let (v, code) = explain_json(call);
        assert_eq!(code, 0, "{call}");
        assert_eq!(v["decision"], decision, "{call}: {v}");
        assert_eq!(v["rules"][0], rule, "{call}: {v}");
        assert!(v["reason"].is_string() && v["effect"].is_string(), "{v}");
    }
}

#[test]
fn explain_reads_the_call_from_a_file_and_stdin() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("call.json");
    std::fs::write(
        &f,
        r#"{"server":"fs","tool":"read_text_file","arguments":{"path":"/workspace/x"}}"#,
    )
    .unwrap();
    let (v, code) = explain_json(&format!("@{}", f.display()));
    assert_eq!((v["decision"].as_str(), code), (Some("allow"), 0));

    let mut child = bin()
        .args(["explain", "--policy", &design(), "--call", "-", "--json"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(br#"{"server":"fs","tool":"write_file"}"#)
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["decision"], "require_approval");
}

#[test]
fn explain_denies_and_fails_on_calls_it_cannot_read() {
    for bad in [
        r#"{"server":"fs","server":"other","tool":"t"}"#,
        r#"{"server":"fs","tool":"t","arguments":[]}"#,
        r#"{"server":"fs"}"#,
        "not json",
        "\u{feff}{}",
    ] {
        let (v, code) = explain_json(bad);
        assert_eq!(code, 2, "{bad}");
        assert_eq!(v["decision"], "deny", "{bad}");
    }
}

#[test]
fn explain_human_trace_names_the_disagreeing_reading() {
    let out = run(&[
        "explain",
        "--policy",
        &design(),
        "--call",
        r#"{"server":"fs","tool":"read_text_file","arguments":{"path":"/workspace/%2e%2e/etc/passwd"}}"#,
    ]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("decision:   deny (default-deny)"), "{text}");
    assert!(
        text.contains("`/etc/passwd` (PercentDecoded) → false"),
        "{text}"
    );
}

#[test]
fn check_passes_the_design_example_with_its_lints() {
    let out = run(&["check", "--policy", &design()]);
    assert_eq!(out.status.code(), Some(0));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("warning[unreachable-rule]"), "{err}");
    let out = run(&["check", "--policy", &design(), "--deny-warnings"]);
    assert_eq!(out.status.code(), Some(1));
}

#[test]
fn check_reports_file_line_column_and_help() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("p.yaml");
    std::fs::write(
        &f,
        "version: 1\nrules:\n  - id: a\n    when: { server: fs, unles: 3 }\n    decision: allow\n",
    )
    .unwrap();
    let out = run(&["check", "--policy", f.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("p.yaml:4:"), "{err}");
    assert!(err.contains("unknown field `unles`"), "{err}");
    assert!(err.contains("help:"), "{err}");
}

#[test]
fn check_refuses_a_missing_environment_variable() {
    let out = Command::new(env!("CARGO_BIN_EXE_portcullis"))
        .args(["check", "--policy", &design()])
        .env_remove("SEARCH_TOKEN")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("environment variable `SEARCH_TOKEN` is not set")
    );
}

#[test]
fn test_command_counts_and_fails() {
    let dir = tempfile::tempdir().unwrap();
    let cases = dir.path().join("cases.yaml");
    std::fs::write(
        &cases,
        r#"cases:
  - name: read ok
    call: { server: fs, tool: read_text_file, arguments: { path: /workspace/a } }
    expect: allow
    rules: [read-workspace]
  - name: wrong on purpose
    call: { server: fs, tool: read_text_file, arguments: { path: /etc/passwd } }
    expect: allow
"#,
    )
    .unwrap();
    let out = run(&["test", "--policy", &design(), cases.to_str().unwrap()]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains("FAIL wrong on purpose: expected allow, got deny by [default-deny]"),
        "{text}"
    );
    assert!(text.contains("1 passed, 1 failed"), "{text}");
}

#[test]
fn gap_finder_reports_extra_arguments_on_allowed_calls() {
    let dir = tempfile::tempdir().unwrap();
    let cases = dir.path().join("cases.yaml");
    std::fs::write(
        &cases,
        "cases:\n  - name: read\n    call: { server: fs, tool: read_text_file, arguments: { path: /workspace/a } }\n    expect: allow\n",
    )
    .unwrap();
    let out = run(&[
        "test",
        "--policy",
        &design(),
        cases.to_str().unwrap(),
        "--gaps",
    ]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(
        text.contains("GAP  read: an extra, undeclared argument is still allowed"),
        "{text}"
    );
}

#[test]
fn pack_detects_drift() {
    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("p.yaml");
    let bundle = dir.path().join("b.json");
    let text = std::fs::read_to_string(design()).unwrap();
    std::fs::write(&policy, &text).unwrap();
    let out = run(&[
        "pack",
        "--policy",
        policy.to_str().unwrap(),
        "--out",
        bundle.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(0));
    let sha = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    assert_eq!(sha.len(), 64);
    // Comments and key order do not change the hash.
    std::fs::write(&policy, format!("# a comment\n{text}")).unwrap();
    let out = run(&[
        "pack",
        "--policy",
        policy.to_str().unwrap(),
        "--check",
        bundle.to_str().unwrap(),
    ]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // A change in meaning does.
    std::fs::write(&policy, text.replace("ttl: 10m", "ttl: 11m")).unwrap();
    let out = run(&[
        "pack",
        "--policy",
        policy.to_str().unwrap(),
        "--check",
        bundle.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("drift"));
}

#[test]
fn published_schema_is_current() {
    let out = run(&["schema"]);
    let published = std::fs::read_to_string(repo().join("docs/policy.schema.json")).unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        published,
        "run `portcullis schema > docs/policy.schema.json`"
    );
}

#[test]
fn usage_errors_exit_2() {
    let out = run(&["explain"]);
    assert_eq!(out.status.code(), Some(2));
}
