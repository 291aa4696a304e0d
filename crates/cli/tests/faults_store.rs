//! Fault injection on the audit store under a running `portcullis run`: the disk fills up, another
//! process holds the database's write lock past the busy timeout, and the gateway is killed with
//! SIGKILL in the middle of a pipelined load. Each test asserts the invariants of
//! `support/faults.rs`: nothing forwarded without a durable decision record, nothing allowed that
//! the policy denies, the chain verifies (after a restart too), and the gateway stays up where it
//! can.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    reason = "test code"
)]

#[path = "support/gateway.rs"]
mod support;

#[path = "support/faults.rs"]
mod faults;

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use faults::{
    Proc, assert_every_forwarded_call_was_recorded, assert_verifies, audit_records, passed,
    reason_class,
};
use serde_json::{Value, json};
use support::Setup;

/// A tmpfs mounted for one test, unmounted when dropped (also when the test fails).
struct Tmpfs(PathBuf);

impl Tmpfs {
    /// Mounts a tmpfs of `size` at `dir`; fails the test, saying why, when that is not possible.
    fn mount(dir: &Path, size: &str) -> Tmpfs {
        std::fs::create_dir_all(dir).unwrap();
        let out = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0700"),
                "tmpfs",
            ])
            .arg(dir)
            .output()
            .expect("run mount");
        assert!(
            out.status.success(),
            "the disk-full test needs to mount a small tmpfs (root with CAP_SYS_ADMIN, as in CI); \
             `mount -t tmpfs` failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Tmpfs(dir.to_path_buf())
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let unmounted = Command::new("umount")
            .arg(&self.0)
            .status()
            .is_ok_and(|s| s.success());
        if !unmounted {
            // Still busy (a gateway that did not exit): detach it so nothing is left mounted.
            let _ = Command::new("umount").arg("-l").arg(&self.0).status();
        }
    }
}

/// Fills the file system holding `dir` until a write fails with "no space left".
fn fill(dir: &Path) -> PathBuf {
    let path = dir.join("filler");
    let mut file = std::fs::File::create(&path).unwrap();
    let block = vec![0_u8; 4096];
    loop {
        match file.write_all(&block) {
            Ok(()) => {}
            Err(e) if e.raw_os_error() == Some(28) => break,
            Err(e) => panic!("filling {}: {e}", dir.display()),
        }
    }
    let _ = file.sync_all();
    path
}

#[test]
fn a_full_audit_disk_denies_calls_and_service_resumes_when_space_is_freed() {
    let setup = Setup::new();
    let state = setup.root.join("state-tmpfs");
    let mount = Tmpfs::mount(&state, "1m");
    let state_arg = state.display().to_string();
    let mut gw = setup.start_with(&["--state-dir", &state_arg]);
    gw.init();
    assert!(passed(&gw.call(1, "echo", json!({"text": "before-full"}))));

    let filler = fill(&state);
    let mut denied = 0;
    for id in 2..6 {
        let answer = gw.call(id, "echo", json!({"text": format!("while-full-{id}")}));
        assert_eq!(
            reason_class(&answer).as_deref(),
            Some("internal"),
            "a call with a full audit disk must be denied as internal: {answer}"
        );
        denied += 1;
    }
    assert_eq!(denied, 4);
    assert!(
        !setup.recording().contains("while-full"),
        "a call reached the server unrecorded"
    );
    assert!(setup.log().contains("AUDIT FAILURE"), "{}", setup.log());
    // Alive and answering.
    assert_eq!(gw.request(10, "ping", json!({}))["result"], json!({}));

    std::fs::remove_file(&filler).unwrap();
    let answer = gw.call(11, "echo", json!({"text": "after-free"}));
    assert!(
        passed(&answer),
        "service must resume once space is free: {answer}"
    );
    assert!(setup.recording().contains("after-free"));
    assert_eq!(gw.finish(), 0);

    assert_verifies(&state);
    let records = audit_records(&state);
    assert_eq!(
        assert_every_forwarded_call_was_recorded(&setup.recording(), &records),
        2
    );
    drop(mount);
}

#[test]
fn a_store_locked_by_another_process_denies_calls_and_the_gateway_recovers() {
    let setup = Setup::new();
    let mut gw = Proc::start(&setup.policy, &[], &[], &setup.stderr);
    gw.init();
    assert!(passed(&gw.call(1, "echo", json!({"text": "before-lock"}))));

    // Another process takes the write lock and keeps it past the gateway's busy timeout (5 s).
    let db = rusqlite::Connection::open(setup.state_dir().join("state.db")).unwrap();
    db.execute_batch("BEGIN EXCLUSIVE").unwrap();
    let started = Instant::now();
    let answer = gw.call(2, "echo", json!({"text": "while-locked"}));
    let waited = started.elapsed();
    assert_eq!(
        reason_class(&answer).as_deref(),
        Some("internal"),
        "a call whose record cannot be written must be denied as internal: {answer}\n{}",
        setup.log()
    );
    assert!(
        waited >= Duration::from_secs(4),
        "the gateway gave up before its busy timeout: {waited:?}"
    );
    // Still serving while the lock is held.
    assert_eq!(gw.request(3, "ping", json!({}))["result"], json!({}));
    assert!(gw.alive());
    assert!(!setup.recording().contains("while-locked"));
    db.execute_batch("COMMIT").unwrap();
    drop(db);

    let answer = gw.call(4, "echo", json!({"text": "after-lock"}));
    assert!(passed(&answer), "the gateway must recover: {answer}");
    assert_eq!(gw.finish(), 0);
    eprintln!("a call under a held lock was denied after {waited:?}");

    let state = setup.state_dir();
    assert_verifies(&state);
    let records = audit_records(&state);
    assert_eq!(
        assert_every_forwarded_call_was_recorded(&setup.recording(), &records),
        2
    );
    assert!(setup.log().contains("AUDIT FAILURE"), "{}", setup.log());
}

/// What the load writes: allowed echo calls, and every fifth call one the policy denies (a path
/// outside the workspace, or a `.env` inside it) carrying a marker that must never reach the server.
fn load_call(setup: &Setup, i: i64) -> Value {
    let (tool, arguments) = match i % 10 {
        3 => (
            "read_file",
            json!({"path": setup.root.join(format!("outside-DENIED-{i}.txt"))}),
        ),
        8 => (
            "read_file",
            json!({"path": setup.ws.join(format!("DENIED-{i}/.env"))}),
        ),
        _ => ("echo", json!({"text": format!("load-{i}")})),
    };
    json!({"jsonrpc": "2.0", "id": i, "method": "tools/call", "params": {"name": tool, "arguments": arguments}})
}

#[test]
fn kill_9_under_load_leaves_a_verifiable_chain_covering_every_forwarded_call() {
    const CALLS: i64 = 20_000;
    let setup = Setup::new();
    let mut child = Command::new(env!("CARGO_BIN_EXE_portcullis"))
        .arg("run")
        .arg("--policy")
        .arg(&setup.policy)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&setup.stderr).unwrap())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    writeln!(
        stdin,
        "{}",
        json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}})
    )
    .unwrap();
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    assert!(line.contains("\"result\""), "{line}");
    writeln!(
        stdin,
        "{}",
        json!({"jsonrpc": "2.0", "method": "notifications/initialized"})
    )
    .unwrap();

    // Pipeline every call from one thread; count answers on another.
    let calls: Vec<String> = (1..=CALLS)
        .map(|i| load_call(&setup, i).to_string())
        .collect();
    let writer = std::thread::spawn(move || {
        for call in calls {
            if writeln!(stdin, "{call}").is_err() {
                break; // the gateway is gone
            }
        }
    });
    let (tx, answers) = std::sync::mpsc::channel::<Value>();
    let reader = std::thread::spawn(move || {
        for line in stdout.lines() {
            let Ok(line) = line else { break };
            let value: Value = serde_json::from_str(&line).unwrap();
            if tx.send(value).is_err() {
                break;
            }
        }
    });

    // Kill it mid-way: after a few thousand answers, with thousands more in flight.
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut seen = Vec::new();
    while seen.len() < 3_000 {
        let left = deadline.saturating_duration_since(Instant::now());
        seen.push(answers.recv_timeout(left).expect("answers under load"));
    }
    child.kill().unwrap(); // SIGKILL
    let status = child.wait().unwrap();
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&status),
        Some(9)
    );
    writer.join().unwrap();
    reader.join().unwrap();
    seen.extend(answers.try_iter());
    assert!(
        (seen.len() as i64) < CALLS,
        "the kill came too late to be mid-load"
    );
    // The echo server sees end of input and exits; give it a moment to finish its recording.
    std::thread::sleep(Duration::from_millis(500));

    let state = setup.state_dir();
    assert_verifies(&state);
    let recording = setup.recording();
    assert!(
        !recording.contains("DENIED"),
        "a denied call reached the server"
    );
    let records = audit_records(&state);
    let forwarded = assert_every_forwarded_call_was_recorded(&recording, &records);
    assert!(forwarded >= 2_000, "only {forwarded} calls were forwarded");
    for answer in &seen {
        let id = answer["id"].as_i64().unwrap();
        let denied = matches!(id % 10, 3 | 8);
        assert_eq!(
            !passed(answer),
            denied,
            "call {id} got the wrong verdict: {answer}"
        );
    }
    let last_seq = records.last().unwrap()["seq"].as_u64().unwrap();
    eprintln!(
        "kill -9 after {} answers: {forwarded} calls reached the server, {} audit records",
        seen.len(),
        records.len()
    );

    // Restart on the same state: the chain continues.
    let mut gw = setup.start();
    gw.init();
    let answer = gw.call(1, "echo", json!({"text": "after-restart"}));
    assert!(passed(&answer), "{answer}");
    assert_eq!(gw.finish(), 0);
    assert_verifies(&state);
    let after = audit_records(&state);
    assert!(after.last().unwrap()["seq"].as_u64().unwrap() > last_seq);
    assert!(
        after
            .iter()
            .any(|r| r["event"]["args_redacted"]["text"] == json!("after-restart"))
    );
}
