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
