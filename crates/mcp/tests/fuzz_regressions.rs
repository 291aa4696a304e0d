//! Replays the `jsonrpc_frame` fuzz corpus and crash reproducers (`fuzz/`) as an ordinary test:
//! every input that was ever interesting stays a regression test on stable Rust.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    reason = "test code"
)]

use std::path::{Path, PathBuf};

#[path = "../../../fuzz/checks/jsonrpc_frame.rs"]
mod jsonrpc_frame;

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
fn jsonrpc_frame_corpus() {
    replay("jsonrpc_frame", jsonrpc_frame::check);
}
