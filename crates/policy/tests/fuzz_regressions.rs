//! Replays the `policy_parse`, `normalize_no_panic` and `eval_no_panic` fuzz corpora and crash
//! reproducers (`fuzz/`) as ordinary tests: every input that was ever interesting stays a
//! regression test on stable Rust.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    reason = "test code"
)]

use std::path::{Path, PathBuf};

#[path = "../../../fuzz/checks/policy_parse.rs"]
mod policy_parse;

#[path = "../../../fuzz/checks/normalize_no_panic.rs"]
mod normalize_no_panic;

#[path = "../../../fuzz/checks/eval_no_panic.rs"]
mod eval_no_panic;

/// Every input of `target`: its corpus (`fuzz/corpus/TARGET`, the checked-in `seed-*` files and
/// whatever a local fuzz run added) and its crash reproducers (`fuzz/regressions/TARGET`).
fn inputs(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let fuzz = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz");
    let mut inputs = Vec::new();
    for dir in ["corpus", "regressions"] {
        let Ok(entries) = std::fs::read_dir(fuzz.join(dir).join(target)) else {
            continue;
        };
        for entry in entries {
            let path = entry.unwrap().path();
            if path.is_file() {
                let bytes = std::fs::read(&path).unwrap();
                inputs.push((path, bytes));
            }
        }
    }
    inputs.sort();
    inputs
}

/// Runs `check` on every input of `target`, naming the file that fails.
fn replay(target: &str, check: fn(&[u8])) {
    let inputs = inputs(target);
    assert!(!inputs.is_empty(), "no corpus for {target}");
    for (path, bytes) in &inputs {
        let outcome = std::panic::catch_unwind(|| check(bytes));
        assert!(
            outcome.is_ok(),
            "{target}: {} fails its property",
            path.display()
        );
    }
}

#[test]
fn policy_parse_corpus() {
    replay("policy_parse", policy_parse::check);
}

#[test]
fn normalize_no_panic_corpus() {
    replay("normalize_no_panic", normalize_no_panic::check);
}

#[test]
fn eval_no_panic_corpus() {
    replay("eval_no_panic", eval_no_panic::check);
}
