//! Transports for Portcullis: stdio child processes and (later) Streamable HTTP.
//!
//! This crate moves framed messages; it makes no policy decisions.
#![forbid(unsafe_code)]
