//! The load driver behind `portcullis-load`: drives an MCP server over stdio or Streamable HTTP
//! with `tools/call` requests and measures the latency of each call.
//!
//! Over stdio the driver spawns the server (`command`); over HTTP (`url`) it connects to a server
//! someone else started, with keep-alive connections that each carry their own MCP session (see
//! `load/http.rs`).
//!
//! Two schedules:
//! - **closed loop** ([`Schedule::Closed`]): `concurrency` calls are in flight; each answer sends
//!   the next call at once. This measures service time and saturation throughput.
//! - **open loop** ([`Schedule::Open`]): call `i` is due at `start + i / rate`, whatever happened
//!   to earlier calls, and its latency is measured from that *scheduled* time, not from when it
//!   was actually written. A server that stalls therefore pays for every call that should have
//!   been sent during the stall (no coordinated omission).
//!
//! Why plain threads and blocking pipes rather than tokio: the tokio timer has a resolution of one
//! millisecond, which at 2,000 calls/s would send calls in bursts and add up to a millisecond of
//! driver-made latency; `std::thread::sleep` uses the kernel's high-resolution timers. The closed
//! loop runs on one thread (read an answer, write the next call) so that the driver adds no
//! thread wake-up of its own to each round trip. The machine the gateway is measured on may have
//! two cores; the driver should take as little of them as possible.
//!
//! The run is bounded: at most `calls` calls, and no call is sent after `time_limit`; calls still
//! unanswered `DRAIN_GRACE` after that are counted as lost and the server is killed.
//!
//! ```no_run
//! use std::time::Duration;
//! use portcullis_testkit::load::{Options, Schedule, run};
//!
//! let options = Options {
//!     command: vec!["portcullis-echo-server".into()],
//!     calls: 10_000,
//!     warmup: 500,
//!     schedule: Schedule::Closed { concurrency: 8 },
//!     time_limit: Duration::from_secs(30),
//!     text: "hello".to_owned(),
//!     label: "direct c=8".to_owned(),
//!     server_stderr: None,
//!     url: None,
//!     connections: 16,
//!     idle_sessions: 0,
//! };
//! let report = run(&options)?;
//! if let Some(latency) = &report.latency_us {
//!     println!("{} calls/s, p50 {} µs, p99 {} µs", report.throughput, latency.p50, latency.p99);
//! }
//! # Ok::<(), portcullis_testkit::load::LoadError>(())
//! ```

pub mod disk;
mod http;
mod report;
mod stdio;
#[cfg(test)]
mod tests;

use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

pub use report::{Percentiles, Report, compare_table, runs_table};

/// How long calls still in flight may take to be answered once sending has stopped.
pub const DRAIN_GRACE: Duration = Duration::from_secs(5);

/// How long the `initialize` handshake may take (the gateway's start-up opens its store and runs
/// a self-test first).
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(30);

/// When calls are sent.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Schedule {
    /// Keep this many calls in flight.
    Closed {
        /// Calls in flight (at least 1).
        concurrency: u32,
    },
    /// Send calls at this fixed rate, per second.
    Open {
        /// Calls per second (greater than 0).
        rate: f64,
    },
}

/// One load run.
#[derive(Debug, Clone)]
pub struct Options {
    /// The server command and its arguments.
    pub command: Vec<OsString>,
    /// Calls to send, warm-up included.
    pub calls: u64,
    /// The first calls, not measured (connection set-up, caches, the store's first pages).
    pub warmup: u64,
    /// When calls are sent.
    pub schedule: Schedule,
    /// No call is sent after this long.
    pub time_limit: Duration,
    /// The `text` argument of every `echo` call.
    pub text: String,
    /// A name for the run, carried into the report.
    pub label: String,
    /// Where the server's standard error goes (`None`: inherited).
    pub server_stderr: Option<PathBuf>,
    /// Drive a Streamable HTTP server at this URL (`http://HOST:PORT/PATH`) instead of spawning
    /// `command`.
    pub url: Option<String>,
    /// HTTP, open loop: connections (each with its own session) that take the scheduled calls.
    /// Closed loop uses one connection per call in flight.
    pub connections: u32,
    /// HTTP: sessions opened before the run and left idle (connections open) until it ends.
    pub idle_sessions: u32,
}

/// Why a run could not be made.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The options make no sense.
    #[error("invalid options: {0}")]
    Options(&'static str),
    /// The server could not be started.
    #[error("cannot start the server `{command}`: {source}")]
    Spawn {
        /// The command, as given.
        command: String,
        /// The cause.
        source: std::io::Error,
    },
    /// Reading from or writing to the server failed.
    #[error("talking to the server: {0}")]
    Io(#[from] std::io::Error),
    /// The server closed its output or sent something unusable before the handshake completed.
    #[error("handshake failed: {0}")]
    Handshake(String),
    /// A driver thread ended abnormally (this is a bug, please report).
    #[error("a driver thread panicked (this is a bug, please report)")]
    Thread,
}

/// Makes one run; see the module documentation.
///
/// # Errors
///
/// When the options are invalid, the server cannot be started or the handshake fails. Calls that
/// fail or go unanswered are counted in the report, not returned as errors.
pub fn run(options: &Options) -> Result<Report, LoadError> {
    if options.command.is_empty() && options.url.is_none() {
        return Err(LoadError::Options("no server command given"));
    }
    if options.calls <= options.warmup {
        return Err(LoadError::Options("calls must be greater than warmup"));
    }
    match options.schedule {
        Schedule::Closed { concurrency: 0 } => {
            return Err(LoadError::Options("concurrency must be at least 1"));
        }
        Schedule::Open { rate } if !(rate.is_finite() && rate > 0.0) => {
            return Err(LoadError::Options("rate must be a positive number"));
        }
        _ => {}
    }
    match &options.url {
        Some(url) => http::run(options, url),
        None => stdio::run(options),
    }
}
