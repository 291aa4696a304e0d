//! Test servers and fixtures for Portcullis. Not published.
//!
//! The `portcullis-echo-server` binary is a small, synchronous MCP server for end-to-end tests of
//! the gateway; the [`echo`] module holds its logic so it can be unit-tested. It is a *recording
//! upstream*: every line it receives is appended to the file named by [`RECORD_ENV`], so a test can
//! prove that a denied call never reached it.
//!
//! With `--http ADDR` the same binary serves Streamable HTTP ([`echo_http`]), the direct baseline
//! of the HTTP gateway bench.
//!
//! The `portcullis-load` binary drives an MCP server over stdio or Streamable HTTP and measures call latency; the
//! [`load`] module holds its logic (see `scripts/bench-stdio` and `docs/performance.md`).
//!
//! The [`postgres`] module gives tests real PostgreSQL databases (`scripts/pg-cluster`).
#![forbid(unsafe_code)]

pub mod echo;
pub mod echo_http;
pub mod load;
pub mod postgres;
