//! Policy additions for vetting and flow control: `kill_after`, `pin`, and the "can this tool
//! ever be allowed" helper used to keep `tools/list` and calls in agreement.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    reason = "test code"
)]

use portcullis_policy::CompiledPolicy;
use portcullis_policy::model::PinMode;

fn load(text: &str) -> Result<CompiledPolicy, String> {
    CompiledPolicy::from_yaml(text, "p.yaml", &|_| None).map_err(|e| e.to_string())
}

const BASE: &str = "version: 1\nservers:\n  fs: { command: [srv], pin: tofu, kill_after: { denials: 2, within: 30s } }\n  other: { command: [srv2], pin: lock }\n  plain: { command: [srv3] }\n";

#[test]
fn kill_after_of_the_server_replaces_the_policy_one() {
    let p = load(&format!("{BASE}kill_after: {{ denials: 5, within: 1m }}\n")).unwrap();
    let fs = p.kill_after("fs").unwrap();
    assert_eq!((fs.denials, fs.within.seconds()), (2, 30));
    let other = p.kill_after("other").unwrap();
    assert_eq!((other.denials, other.within.seconds()), (5, 60));
    assert!(load(BASE).unwrap().kill_after("other").is_none());
}

#[test]
fn kill_after_needs_at_least_one_denial() {
    let err = load("version: 1\nkill_after: { denials: 0, within: 1m }\n").unwrap_err();
    assert!(
        err.contains("`kill_after.denials` must be at least 1"),
        "{err}"
    );
    let err = load("version: 1\nkill_after: { denials: 1, within: 1m, extra: 1 }\n").unwrap_err();
    assert!(err.contains("extra"), "{err}");
}

#[test]
fn pin_modes_are_per_server() {
    let p = load(BASE).unwrap();
    assert_eq!(p.pin_mode("fs"), Some(PinMode::Tofu));
    assert_eq!(p.pin_mode("other"), Some(PinMode::Lock));
    assert_eq!(p.pin_mode("plain"), None);
    assert_eq!(p.pin_mode("missing"), None);
    let err = load("version: 1\nservers:\n  fs: { command: [srv], pin: always }\n").unwrap_err();
    assert!(err.contains("always"), "{err}");
}

const REACH: &str = r#"version: 1
servers:
  fs: { command: [srv] }
  other: { command: [srv2] }
tools:
  fs.read: { effect: read }
  fs.write: { effect: write }
rules:
  - id: reads
    when: { server: fs, effect: read, args: { path: { under: /ws } } }
    decision: allow
  - id: writes-approved
    when: { server: fs, tool: "write*" }
    decision: require_approval
  - id: never-write-all
    when: { server: fs, tool: write_all }
    decision: deny
  - id: deny-unless
    when: { server: fs, tool: write_some }
    unless: { principal: alice }
    decision: deny
  - id: resource-only
    when: { server: fs, tool: res, method: resources/read }
    decision: allow
hide: [fs.read_secret*]
"#;

#[test]
fn can_ever_allow_follows_the_rules() {
    let p = load(REACH).unwrap();
    assert!(
        p.can_ever_allow("fs", "read", None),
        "an allow with conditions may hold"
    );
    assert!(p.can_ever_allow("fs", "write", None), "approval counts");
    assert!(
        !p.can_ever_allow("fs", "write_all", None),
        "an unconditional deny"
    );
    assert!(
        p.can_ever_allow("fs", "write_some", None),
        "a deny with unless may not fire"
    );
    assert!(!p.can_ever_allow("fs", "delete", None), "no rule allows it");
    assert!(
        !p.can_ever_allow("fs", "res", None),
        "only resources/read is allowed"
    );
    assert!(!p.can_ever_allow("fs", "read_secret_key", None), "hidden");
    assert!(
        !p.can_ever_allow("nope", "read", None),
        "unconfigured server"
    );
    assert!(
        !p.can_ever_allow("other", "read", None),
        "no rule names the server"
    );
}
