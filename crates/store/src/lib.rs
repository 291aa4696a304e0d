//! State for Portcullis: the tamper-evident audit chain, approvals, leases, counters and pins.
//!
//! Every backend implements one `Store` trait; SQLite is the embedded default.
#![forbid(unsafe_code)]
