//! The gateway's own standard input and output (the client's side of `portcullis run`).
//!
//! `tokio::io::stdin()` and `stdout()` do every read and write on tokio's blocking thread pool:
//! each message crosses one more thread (a wake-up of a blocking thread, then of a worker) in
//! each direction. When the client talks to us over pipes, as MCP clients do, the pipes are
//! read and written directly from the runtime instead (non-blocking, epoll). Anything else (a
//! terminal, a file) keeps the blocking-pool path.
//!
//! Setting `O_NONBLOCK` changes the open pipe (shared by every process holding the same end),
//! which is why only pipes are converted: the client owns the other ends.

use std::io;
use std::os::fd::AsFd;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::unix::pipe;

/// The gateway's standard input.
#[derive(Debug)]
pub enum ClientInput {
    /// A pipe, read from the runtime.
    Pipe(pipe::Receiver),
    /// Anything else, read on the blocking pool.
    Blocking(tokio::io::Stdin),
}

/// The gateway's standard output.
#[derive(Debug)]
pub enum ClientOutput {
    /// A pipe, written from the runtime.
    Pipe(pipe::Sender),
    /// Anything else, written on the blocking pool.
    Blocking(tokio::io::Stdout),
}

/// Standard input, as a pipe when it is one. Must be called inside the runtime.
#[must_use]
pub fn client_input() -> ClientInput {
    match io::stdin()
        .as_fd()
        .try_clone_to_owned()
        .and_then(pipe::Receiver::from_owned_fd)
    {
        Ok(receiver) => ClientInput::Pipe(receiver),
        Err(_) => ClientInput::Blocking(tokio::io::stdin()),
    }
}

/// Standard output, as a pipe when it is one. Must be called inside the runtime.
#[must_use]
pub fn client_output() -> ClientOutput {
    match io::stdout()
        .as_fd()
        .try_clone_to_owned()
        .and_then(pipe::Sender::from_owned_fd)
    {
        Ok(sender) => ClientOutput::Pipe(sender),
        Err(_) => ClientOutput::Blocking(tokio::io::stdout()),
    }
}

impl AsyncRead for ClientInput {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            ClientInput::Pipe(pipe) => Pin::new(pipe).poll_read(cx, buf),
            ClientInput::Blocking(stdin) => Pin::new(stdin).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for ClientOutput {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            ClientOutput::Pipe(pipe) => Pin::new(pipe).poll_write(cx, buf),
            ClientOutput::Blocking(stdout) => Pin::new(stdout).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            ClientOutput::Pipe(pipe) => Pin::new(pipe).poll_flush(cx),
            ClientOutput::Blocking(stdout) => Pin::new(stdout).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            ClientOutput::Pipe(pipe) => Pin::new(pipe).poll_shutdown(cx),
            ClientOutput::Blocking(stdout) => Pin::new(stdout).poll_shutdown(cx),
        }
    }
}
