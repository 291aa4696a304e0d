//! Transports for Portcullis: stdio child processes and (later) Streamable HTTP.
//!
//! This crate moves framed messages; it makes no policy decisions.
#![forbid(unsafe_code)]

mod framing;
#[cfg(unix)]
mod signal;

pub use framing::{
    BoundedLineReader, DEFAULT_MAX_LINE_BYTES, DEFAULT_WRITE_TIMEOUT, Line, LineWriter,
    READ_BUFFER_BYTES, WriteLineError,
};
#[cfg(unix)]
pub use signal::{Signal, SignalError, SignalForwarder};
