//! `portcullis audit`: the chain a real session wrote verifies, can be read and exported, and an
//! edited record is found.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    reason = "test code"
)]

#[path = "support/gateway.rs"]
mod support;

use std::process::{Command, Output};

use serde_json::{Value, json};
use support::{Setup, denial};

fn audit(setup: &Setup, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_portcullis"))
        .arg("audit")
        .args(args)
        .arg("--policy")
        .arg(&setup.policy)
        .output()
        .unwrap()
}

/// A session with one allowed and one denied call; returns the exported records.
fn session(setup: &Setup) -> Vec<Value> {
    let mut gw = setup.start();
    gw.init();
    gw.call(
        1,
        "echo",
        json!({"text": "token AKIAIOSFODNN7EXAMPLE here"}),
    );
    denial(&gw.call(2, "read_file", json!({"path": "/etc/shadow"})));
    assert_eq!(gw.finish(), 0);
    let out = audit(setup, &["export", "--jsonl"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn a_session_writes_decision_and_outcome_records_that_verify() {
    let setup = Setup::new();
    let records = session(&setup);
    let kinds: Vec<(&str, Option<&str>)> = records
        .iter()
        .map(|r| {
            (
                r["event"]["kind"].as_str().unwrap(),
                r["event"]["decision"].as_str(),
            )
        })
        .collect();
    assert_eq!(
        kinds,
        [
            ("decision", Some("allow")),
            ("outcome", None),
            ("decision", Some("deny"))
        ]
    );
    let allow = &records[0]["event"];
    assert_eq!(allow["enforced"], json!(true));
    assert_eq!(allow["rules"], json!(["echo-ok"]));
    assert_eq!(allow["args_digest"].as_str().unwrap().len(), 64);
    assert!(
        !allow["args_redacted"]
            .to_string()
            .contains("AKIAIOSFODNN7EXAMPLE"),
        "{allow}"
    );
    let outcome = &records[1]["event"];
    assert_eq!(outcome["outcome"], json!("ok"));
    assert_eq!(outcome["decision_id"], allow["decision_id"]);
    assert!(outcome["duration_us"].is_u64());
    assert_eq!(records[2]["event"]["reason_class"], json!("default"));

    let out = audit(&setup, &["verify"]);
    assert_eq!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("audit chain ok: 3 records"));

    let out = audit(&setup, &["tail", "-n", "1", "--json"]);
    let last: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(last["seq"], json!(3));
}

#[test]
fn verify_names_an_edited_record() {
    let setup = Setup::new();
    session(&setup);
    let db = rusqlite::Connection::open(setup.state_dir().join("state.db")).unwrap();
    db.execute(
        "UPDATE audit SET body = replace(body, '\"decision\":\"deny\"', '\"decision\":\"allow\"') WHERE seq = 3",
        [],
    )
    .unwrap();
    drop(db);
    let out = audit(&setup, &["verify"]);
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("BROKEN at record 3"), "{text}");
}

#[test]
fn audit_reads_the_state_dir_directly_and_fails_cleanly_without_one() {
    let setup = Setup::new();
    session(&setup);
    let out = Command::new(env!("CARGO_BIN_EXE_portcullis"))
        .args(["audit", "verify", "--state-dir"])
        .arg(setup.state_dir())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let out = Command::new(env!("CARGO_BIN_EXE_portcullis"))
        .args(["audit", "tail", "--state-dir"])
        .arg(setup.root.join("nowhere"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no audit log"));
}

#[test]
fn verify_with_trusted_signers_accepts_only_the_keys_given() {
    let setup = Setup::new();
    session(&setup);
    let out = audit(&setup, &["verify"]);
    let text = String::from_utf8(out.stdout).unwrap();
    let key = text.trim().rsplit(' ').next().unwrap().to_owned();
    assert_eq!(key.len(), 64, "{text}");

    let out = audit(&setup, &["verify", "--trusted-signer", &key.to_uppercase()]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let other = "ab".repeat(32);
    let out = audit(&setup, &["verify", "--trusted-signer", &other]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("NOT TRUSTED") && text.contains(&key),
        "{text}"
    );

    let file = setup.root.join("signers.txt");
    std::fs::write(
        &file,
        format!("# the gateways we run\n{other}\n{key}  # this one\n"),
    )
    .unwrap();
    let out = audit(
        &setup,
        &["verify", "--trusted-signers", file.to_str().unwrap()],
    );
    assert_eq!(out.status.code(), Some(0), "{out:?}");

    // Malformed keys and empty files are usage errors that say how to fix them.
    for args in [
        vec!["verify", "--trusted-signer", "not-a-key"],
        vec!["verify", "--trusted-signer", &key[..60]],
    ] {
        let out = audit(&setup, &args);
        assert_eq!(out.status.code(), Some(2), "{out:?}");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("help:"),
            "{out:?}"
        );
    }
    std::fs::write(&file, "# nobody\n").unwrap();
    let out = audit(
        &setup,
        &["verify", "--trusted-signers", file.to_str().unwrap()],
    );
    assert_eq!(out.status.code(), Some(2), "{out:?}");
}
