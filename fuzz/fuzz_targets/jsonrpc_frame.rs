//! cargo-fuzz target `jsonrpc_frame`: the property is in `fuzz/checks/jsonrpc_frame.rs`, shared with the replay
//! tests that run the checked-in corpus on every `cargo test`.
#![no_main]

#[path = "../checks/jsonrpc_frame.rs"]
mod check;

libfuzzer_sys::fuzz_target!(|data: &[u8]| check::check(data));
