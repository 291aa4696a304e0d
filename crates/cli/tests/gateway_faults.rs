//! Fault injection on `portcullis run`: the audit store becomes read-only under a running
//! gateway. Calls must be denied (never forwarded unrecorded), the gateway must stay up, and it
//! must recover by itself when the store is writable again.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    reason = "test code"
)]

#[path = "support/gateway.rs"]
mod support;

use std::path::Path;
use std::process::Command;

use serde_json::json;
use support::{Setup, denial};

/// Set or clear the immutable attribute. Root cannot be stopped by file modes, but an immutable
/// file refuses every write, even root's: a real read-only store, not a simulated one.
fn immutable(path: &Path, on: bool) -> bool {
    Command::new("chattr")
        .arg(if on { "+i" } else { "-i" })
        .arg(path)
        .status()
        .is_ok_and(|s| s.success())
}

#[test]
fn a_read_only_store_denies_calls_and_the_gateway_recovers() {
    let setup = Setup::new();
    let mut gw = setup.start();
    gw.init();
    assert_eq!(
        gw.call(1, "echo", json!({"text": "before"}))["result"]["isError"],
        json!(false)
    );

    let state = setup.state_dir();
    let files: Vec<_> = ["state.db", "state.db-wal"]
        .iter()
        .map(|f| state.join(f))
        .filter(|p| p.exists())
        .collect();
    let locked: Vec<_> = files.iter().filter(|p| immutable(p, true)).collect();
    assert_eq!(
        locked.len(),
        files.len(),
        "this test needs `chattr +i` on {} (root with CAP_LINUX_IMMUTABLE on ext4/xfs/btrfs, as in CI)",
        state.display()
    );

    let answer = gw.call(2, "echo", json!({"text": "while read-only"}));
    for p in &locked {
        immutable(p, false);
    }
    let d = denial(&answer).clone();
    assert_eq!(d["reason_class"], json!("internal"), "{answer}");
    assert_eq!(d["rule"], json!("internal-error"));
    assert!(!setup.recording().contains("while read-only"));
    assert!(setup.log().contains("AUDIT FAILURE"), "{}", setup.log());

    // Still serving, and writable again: the next call goes through and is recorded.
    assert_eq!(gw.request(3, "ping", json!({}))["result"], json!({}));
    let after = gw.call(4, "echo", json!({"text": "after"}));
    assert_eq!(after["result"]["isError"], json!(false), "{after}");
    assert!(setup.recording().contains("after"));
    assert_eq!(gw.finish(), 0);

    let verify = Command::new(env!("CARGO_BIN_EXE_portcullis"))
        .args(["audit", "verify", "--state-dir"])
        .arg(&state)
        .output()
        .unwrap();
    assert_eq!(
        verify.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&verify.stdout)
    );
}

/// A stop signal to the gateway is passed to the server, the gateway drains and exits with the
/// server's status (128 + 15 when the server dies of SIGTERM, as a shell reports it).
#[test]
fn sigterm_is_passed_to_the_server_and_its_status_becomes_ours() {
    let setup = Setup::new();
    let mut gw = setup.start();
    gw.init();
    assert_eq!(
        gw.call(1, "echo", json!({"text": "up"}))["result"]["isError"],
        json!(false)
    );
    let status = Command::new("kill")
        .args(["-TERM", &gw.child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let code = gw.wait();
    let log = setup.log();
    assert!(log.contains("to the server"), "{log}");
    assert_eq!(code, 143, "{log}");
}
