//! End-to-end: `portcullis run` wrapping the real `mcp-server-git` (PyPI), driven by the official
//! Python SDK client. Reads of the repository go through; a commit needs an approval (`mode:
//! retry`), so it is refused with an approval id (reason class `approval`, code
//! `approval_pending`) and the repository gains no commit.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    reason = "test code"
)]

mod support;

use std::path::Path;
use std::process::Command;

use serde_json::json;
use support::{Peers, World, assert_refused, sdk_session, step, text_of};

const POLICY: &str = r#"
version: 1
state_dir: {STATE}
servers:
  git:
    command: ["{GIT}", "--repository", "{WS}"]
tools:
  git.git_status: { effect: read, args: { repo_path: path } }
  git.git_log: { effect: read, args: { repo_path: path } }
  git.git_add: { effect: write, args: { repo_path: path, files: "path[]" } }
  git.git_commit: { effect: write, args: { repo_path: path } }
rules:
  - id: read-repo
    when: { server: git, effect: read, paths: { under: "{WS}" } }
    decision: allow
  - id: approve-commits
    when: { server: git, tool: git_commit }
    decision: require_approval
    approval: { ttl: 10m, mode: retry }
"#;

fn git(repo: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .arg("-C")
        .arg(repo)
        .args([
            "-c",
            "user.name=E2E",
            "-c",
            "user.email=e2e@example.invalid",
        ])
        .args(args)
        .output()
        .expect("git");
    assert!(out.status.success(), "git {args:?}: {out:?}");
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn sdk_git_reads_allowed_commit_needs_approval_and_leaves_no_commit() {
    let peers = Peers::require();
    let world = World::new();
    world.policy(&peers, POLICY);
    let repo = &world.ws;
    git(repo, &["init", "-q", "-b", "main"]);
    git(repo, &["add", "hello.txt"]);
    git(repo, &["commit", "-q", "-m", "first commit"]);
    // Something to commit, staged outside the gateway.
    std::fs::write(repo.join("change.txt"), "staged change\n").unwrap();
    git(repo, &["add", "change.txt"]);
    let head_before = git(repo, &["rev-parse", "HEAD"]);

    let repo_path = repo.display().to_string();
    let steps = json!([
        {"op": "call_tool", "name": "git_status", "arguments": {"repo_path": repo_path}},
        {"op": "call_tool", "name": "git_log", "arguments": {"repo_path": repo_path}},
        {"op": "call_tool", "name": "git_commit",
         "arguments": {"repo_path": repo_path, "message": "sneaky commit"}},
    ]);
    let (session, stderr) = sdk_session(&peers, &world.run_argv(&[]), &steps);
    assert_eq!(
        session["server_info"]["name"],
        json!("mcp-git"),
        "{session:#}"
    );

    let status = step(&session, 0);
    assert_eq!(status["is_error"], json!(false), "{status:#}\n{stderr}");
    assert!(
        text_of(status).contains("change.txt"),
        "git status from the real server: {status:#}"
    );

    let log = step(&session, 1);
    assert_eq!(log["is_error"], json!(false), "{log:#}");
    assert!(text_of(log).contains("first commit"), "{log:#}");

    let commit = step(&session, 2);
    assert_refused(commit, "approve-commits", "approval");
    assert_eq!(commit["structured"]["code"], json!("approval_pending"));
    assert!(
        commit["structured"]["approval_id"].is_string(),
        "the agent is told which approval to wait for: {commit:#}"
    );

    assert_eq!(
        git(repo, &["rev-parse", "HEAD"]),
        head_before,
        "the refused commit reached the server"
    );
    assert_eq!(git(repo, &["rev-list", "--count", "HEAD"]).trim(), "1");
}
