//! Stdio MCP servers as child processes.
//!
//! A server is started from a [`ChildSpec`] with a cleared environment (see [`ENV_ALLOW_LIST`]),
//! its stdin and stdout become a [`StdinWriter`] and a [`BoundedLineReader`], and its stderr is
//! logged line by line under the `upstream` tracing target. [`StdioChild::shutdown`] stops it in
//! bounded time: close stdin, then `SIGTERM`, then `SIGKILL`.

mod client;
mod error;
mod shutdown;
mod spec;
mod stderr;
mod stdin;

#[cfg(test)]
mod tests;

use std::io::ErrorKind;
use std::process::{ExitStatus, Stdio};

use tokio::process::{Child, ChildStdout, Command};

use crate::framing::BoundedLineReader;
use crate::signal::{self, Signal, SignalError};

pub use client::{ClientInput, ClientOutput, client_input, client_output};
pub use error::{ShutdownError, SpawnError};
pub use shutdown::{Escalation, SIGKILL_WAIT, ShutdownGrace, ShutdownOutcome, exit_code_for};
pub use spec::{ChildSpec, ENV_ALLOW_LIST};
pub use stderr::MAX_STDERR_LINE_BYTES;
pub use stdin::StdinWriter;

use stderr::StderrTask;

/// A running stdio server.
///
/// The process is killed (`SIGKILL`) if this handle is dropped without [`shutdown`](Self::shutdown)
/// or [`wait`](Self::wait) having seen it exit, so a gateway that fails cannot leave servers behind.
///
/// The child stays in the gateway's process group. A Ctrl-C at a terminal therefore reaches the
/// server directly as well as through the gateway's [`SignalForwarder`](crate::SignalForwarder),
/// which is what a user who runs `portcullis run -- server` expects; a server may see such a signal
/// twice. Signals sent by the gateway go to the server's process only, not to processes it started
/// itself (a launcher such as `npx` must pass them on).
#[derive(Debug)]
pub struct StdioChild {
    name: String,
    child: Child,
    stdin: StdinWriter,
    stdout: Option<BoundedLineReader<ChildStdout>>,
    stderr: StderrTask,
}

impl StdioChild {
    /// Starts the server described by `spec`; lines on its stdout longer than `max_line_bytes`
    /// are reported as [`Line::TooLong`](crate::Line::TooLong).
    ///
    /// Must be called within a Tokio runtime. Each start is logged under the `upstream` target.
    ///
    /// # Errors
    ///
    /// A [`SpawnError`] that names the server and the program and says how to fix it.
    pub fn spawn(spec: ChildSpec, max_line_bytes: usize) -> Result<Self, SpawnError> {
        let server = spec.name.clone();
        if tokio::runtime::Handle::try_current().is_err() {
            return Err(SpawnError::NoRuntime { server });
        }
        if let Some(name) = spec.invalid_env_name() {
            return Err(SpawnError::InvalidEnvName {
                server,
                name: name.to_owned(),
            });
        }
        let mut command = Command::new(&spec.program);
        command
            .args(&spec.args)
            .env_clear()
            .envs(spec.child_env(|name| std::env::var_os(name)))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        if let Some(cwd) = &spec.cwd {
            // Checked up front: a missing directory fails the spawn with the same `NotFound` as a
            // missing program, and the message would point at the wrong thing.
            if !cwd.is_dir() {
                return Err(SpawnError::NoWorkingDir {
                    server,
                    cwd: cwd.clone(),
                });
            }
            command.current_dir(cwd);
        }
        let mut child = command
            .spawn()
            .map_err(|os_error| spawn_error(&spec, os_error))?;
        let missing = |pipe| SpawnError::MissingPipe {
            server: server.clone(),
            pipe,
        };
        let stdin = child.stdin.take().ok_or_else(|| missing("stdin"))?;
        let stdout = child.stdout.take().ok_or_else(|| missing("stdout"))?;
        let stderr = child.stderr.take().ok_or_else(|| missing("stderr"))?;
        tracing::info!(
            target: "upstream",
            server = %server,
            program = %spec.program,
            args = ?spec.args,
            pid = child.id(),
            "started server"
        );
        Ok(Self {
            stderr: StderrTask::spawn(server.clone(), stderr),
            name: server,
            child,
            stdin: StdinWriter::from_writer(stdin),
            stdout: Some(BoundedLineReader::new(stdout, max_line_bytes)),
        })
    }

    /// The configured server name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The process id, or `None` once the exit has been collected.
    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    /// A handle to write lines to the server's stdin (see [`StdinWriter`]).
    pub fn stdin(&self) -> StdinWriter {
        self.stdin.clone()
    }

    /// The reader of the server's stdout; `None` after the first call.
    pub fn take_stdout(&mut self) -> Option<BoundedLineReader<ChildStdout>> {
        self.stdout.take()
    }

    /// Sends `signal` to the server process, for example one the gateway itself received.
    ///
    /// # Errors
    ///
    /// [`SignalError::Exited`] once the exit has been collected (the pid may have been reused);
    /// [`SignalError::Os`] if the system refuses.
    pub fn signal(&self, signal: Signal) -> Result<(), SignalError> {
        let pid = self.pid().ok_or(SignalError::Exited { signal })?;
        tracing::info!(target: "upstream", server = %self.name, pid, "sending {signal}");
        signal::send(pid, signal)
    }

    /// Waits for the server to exit, however long that takes: a server normally runs as long as the
    /// session. For a bounded stop use [`shutdown`](Self::shutdown). Cancel safe.
    ///
    /// # Errors
    ///
    /// When the operating system cannot report the exit.
    pub async fn wait(&mut self) -> std::io::Result<ExitStatus> {
        self.child.wait().await
    }

    /// The exit status if the server has exited, without waiting.
    ///
    /// # Errors
    ///
    /// When the operating system cannot report the exit.
    pub fn try_status(&mut self) -> std::io::Result<Option<ExitStatus>> {
        self.child.try_wait()
    }
}

fn spawn_error(spec: &ChildSpec, os_error: std::io::Error) -> SpawnError {
    let server = spec.name.clone();
    let program = spec.program.clone();
    match os_error.kind() {
        ErrorKind::NotFound if spec.program.contains('/') => {
            SpawnError::NoSuchFile { server, program }
        }
        ErrorKind::NotFound => SpawnError::NotOnPath { server, program },
        // ENOEXEC: a file with execute permission that is neither a binary nor has a `#!` line.
        ErrorKind::PermissionDenied => SpawnError::NotExecutable {
            server,
            program,
            os_error,
        },
        _ if os_error.raw_os_error() == Some(nix::errno::Errno::ENOEXEC as i32) => {
            SpawnError::NotExecutable {
                server,
                program,
                os_error,
            }
        }
        _ => SpawnError::Os {
            server,
            program,
            os_error,
        },
    }
}
