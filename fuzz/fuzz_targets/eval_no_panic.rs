//! cargo-fuzz target `eval_no_panic`: the property is in `fuzz/checks/eval_no_panic.rs`, shared with the replay
//! tests that run the checked-in corpus on every `cargo test`.
#![no_main]

#[path = "../checks/eval_no_panic.rs"]
mod check;

libfuzzer_sys::fuzz_target!(|data: &[u8]| check::check(data));
