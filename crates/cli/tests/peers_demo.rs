//! End-to-end: `portcullis demo` runs the gateway around its built-in sample server and prints an
//! allow, a deny with its rule and reason, a held write a human approves and one a human denies,
//! a traversal attempt, the
//! audit trail and a verified chain, exiting 0. It needs no installed peers.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    reason = "test code"
)]

mod support;

use std::process::Command;

use support::{portcullis, run_with_timeout};

#[test]
fn demo_shows_allow_deny_approval_traversal_and_a_verified_audit_trail() {
    let mut demo = Command::new(portcullis());
    demo.arg("demo");
    let out = run_with_timeout(demo, None);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "demo failed ({}):\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let expected_in_order = [
        "── the built-in policy ──",
        "── the session",
        "1. read the project README",
        "ALLOWED  the server answered: \"# Demo project",
        "3. read the API key in .env",
        "DENIED   rule deny-secrets, reason class argument: secrets are off limits",
        "4. write a file: the call is held until a human approves it",
        "HELD     pending approval a-",
        "human → portcullis approvals approve a-",
        "ALLOWED  the server answered: \"wrote ",
        "5. overwrite the README: the human says no",
        "HELD     pending approval a-",
        "human → portcullis approvals deny a-",
        "DENIED   rule approve-writes, reason class approval:",
        "6. climb out of the workspace with ../",
        "DENIED   rule default-deny, reason class default:",
        "── the audit trail: portcullis audit tail",
        "approved by demo-human through cli",
        "── portcullis audit verify ──",
        "audit chain ok: 10 records",
        "Every call was decided as the policy says",
    ];
    let mut from = 0;
    for needle in expected_in_order {
        let Some(at) = stdout[from..].find(needle) else {
            panic!("`{needle}` missing (or out of order) in the demo output:\n{stdout}");
        };
        from += at + needle.len();
    }
    assert!(
        !stdout.contains("sk-demo-not-a-real-key"),
        "the demo's secret leaked:\n{stdout}"
    );
    assert!(!stdout.contains("!!"), "{stdout}");
    // Each denial's decision id is in the audit trail.
    for line in stdout.lines().filter(|l| l.contains("decision d-")) {
        let id = line.split_whitespace().nth(1).unwrap();
        assert_eq!(
            stdout.matches(id).count(),
            2,
            "decision {id} should appear in the session and once in the trail:\n{stdout}"
        );
    }
}
