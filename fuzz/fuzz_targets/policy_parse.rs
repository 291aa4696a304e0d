//! cargo-fuzz target `policy_parse`: the property is in `fuzz/checks/policy_parse.rs`, shared with the replay
//! tests that run the checked-in corpus on every `cargo test`.
#![no_main]

#[path = "../checks/policy_parse.rs"]
mod check;

libfuzzer_sys::fuzz_target!(|data: &[u8]| check::check(data));
