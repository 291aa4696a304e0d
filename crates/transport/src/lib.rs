//! Transports for Portcullis: stdio child processes, the Streamable HTTP client for servers
//! reached by URL, and the Host/Origin guard of the Streamable HTTP front.
//!
//! This crate moves lines of bytes; it makes no policy decisions and knows no message types. The
//! session pipeline parses what [`BoundedLineReader`] yields and writes what it decided to forward
//! with a [`LineWriter`].
//!
//! ```no_run
//! # async fn example() -> Result<(), Box<dyn std::error::Error>> {
//! use portcullis_transport::stdio::{ChildSpec, ShutdownGrace, StdioChild};
//! use portcullis_transport::{DEFAULT_MAX_LINE_BYTES, Line};
//!
//! let spec = ChildSpec::new("echo", "cat");
//! let mut child = StdioChild::spawn(spec, DEFAULT_MAX_LINE_BYTES)?;
//! let stdin = child.stdin();
//! let mut stdout = child.take_stdout().ok_or("stdout already taken")?;
//! stdin.write_line(br#"{"jsonrpc":"2.0","method":"ping","id":1}"#).await?;
//! if let Some(Line::Complete(reply)) = stdout.next_line().await? {
//!     println!("{}", String::from_utf8_lossy(&reply));
//! }
//! let outcome = child.shutdown(ShutdownGrace::default()).await?;
//! std::process::exit(portcullis_transport::stdio::exit_code_for(outcome.status));
//! # }
//! ```
#![forbid(unsafe_code)]

mod framing;
pub mod http_client;
mod http_guard;
#[cfg(unix)]
mod signal;
#[cfg(unix)]
pub mod stdio;

pub use framing::{
    BoundedLineReader, DEFAULT_MAX_LINE_BYTES, DEFAULT_WRITE_TIMEOUT, DISCARDED_HEAD_BYTES, Line,
    LineReceiver, LineSender, LineSink, LineSource, LineWriter, READ_BUFFER_BYTES, WriteLineError,
    line_channel,
};
pub use http_guard::HostGuard;
#[cfg(unix)]
pub use signal::{Signal, SignalError, SignalForwarder};
