//! Stopping a server in bounded time, and reporting how it ended.

use std::os::unix::process::ExitStatusExt;
use std::process::ExitStatus;
use std::time::Duration;

use tokio::time::{Instant, timeout, timeout_at};

use super::{ShutdownError, StdioChild};
use crate::signal::{Signal, SignalError};

/// How long to wait after `SIGKILL` before giving up on a process. `SIGKILL` cannot be caught, but a
/// process in uninterruptible I/O only dies when that I/O ends; the gateway must not hang on it.
pub const SIGKILL_WAIT: Duration = Duration::from_secs(5);

/// How long stderr may keep draining into the log after the server exited.
const STDERR_DRAIN: Duration = Duration::from_millis(500);

/// How long [`StdioChild::shutdown`] lets a server stop at each step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShutdownGrace {
    /// After closing its stdin, before `SIGTERM`.
    pub after_stdin_close: Duration,
    /// After `SIGTERM`, before `SIGKILL`.
    pub after_sigterm: Duration,
}

impl Default for ShutdownGrace {
    /// Two seconds, then three: MCP servers exit on end of input almost at once; the margin covers
    /// a server flushing its own state, and a user pressing Ctrl-C waits at most about five seconds.
    fn default() -> Self {
        Self {
            after_stdin_close: Duration::from_secs(2),
            after_sigterm: Duration::from_secs(3),
        }
    }
}

/// Which step of a shutdown ended the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Escalation {
    /// It exited on end of input (or had already exited): no signal was sent.
    None,
    /// It exited after `SIGTERM`.
    Sigterm,
    /// It had to be killed with `SIGKILL`.
    Sigkill,
}

/// How a server ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShutdownOutcome {
    /// Its exit status.
    pub status: ExitStatus,
    /// What it took.
    pub escalation: Escalation,
}

/// The exit code a wrapper should exit with for `status`: the code itself, or `128 + n` for a
/// process killed by signal `n` (the shell convention, so `SIGKILL` gives 137).
pub fn exit_code_for(status: ExitStatus) -> i32 {
    match (status.code(), status.signal()) {
        (Some(code), _) => code,
        (None, Some(signal)) => signal.saturating_add(128),
        // Neither exited nor signalled cannot be a finished process; never report success for it.
        (None, None) => 1,
    }
}

impl StdioChild {
    /// Stops the server: closes its stdin, waits up to `grace.after_stdin_close`, sends `SIGTERM`,
    /// waits up to `grace.after_sigterm`, sends `SIGKILL` and waits up to [`SIGKILL_WAIT`]. Each
    /// escalation is logged. Stdin is closed even if the session still holds a [`super::StdinWriter`].
    ///
    /// # Errors
    ///
    /// [`ShutdownError::Wait`] if the exit cannot be collected, [`ShutdownError::Unkillable`] if the
    /// process survives `SIGKILL` for [`SIGKILL_WAIT`] (it is left to the operating system).
    pub async fn shutdown(
        mut self,
        grace: ShutdownGrace,
    ) -> Result<ShutdownOutcome, ShutdownError> {
        let server = self.name.clone();
        let wait_error = |source| ShutdownError::Wait {
            server: server.clone(),
            source,
        };

        let deadline = Instant::now() + grace.after_stdin_close;
        if timeout_at(deadline, self.stdin.close()).await.is_err() {
            tracing::warn!(target: "upstream", server = %server, "stdin is busy with a write; cannot close it");
        }
        let mut escalation = Escalation::None;
        let mut exited = timeout_at(deadline, self.child.wait()).await;

        if exited.is_err() {
            tracing::info!(
                target: "upstream",
                server = %server,
                "server still running {} ms after its stdin closed; sending SIGTERM",
                grace.after_stdin_close.as_millis()
            );
            escalation = Escalation::Sigterm;
            self.signal_for_shutdown(Signal::Terminate);
            exited = timeout(grace.after_sigterm, self.child.wait()).await;
        }

        if exited.is_err() {
            tracing::warn!(
                target: "upstream",
                server = %server,
                "server still running {} ms after SIGTERM; sending SIGKILL",
                grace.after_sigterm.as_millis()
            );
            escalation = Escalation::Sigkill;
            if let Err(error) = self.child.start_kill() {
                tracing::warn!(target: "upstream", server = %server, %error, "cannot send SIGKILL");
            }
            exited = timeout(SIGKILL_WAIT, self.child.wait()).await;
        }

        let status = match exited {
            Ok(result) => result.map_err(wait_error)?,
            Err(_elapsed) => {
                return Err(ShutdownError::Unkillable {
                    server: server.clone(),
                    pid: self.child.id().unwrap_or_default(),
                    after: SIGKILL_WAIT,
                });
            }
        };
        tracing::info!(target: "upstream", server = %server, %status, "server exited");
        self.stderr.drain(STDERR_DRAIN).await;
        Ok(ShutdownOutcome { status, escalation })
    }

    /// Sends a shutdown signal; failure is logged, not returned, because the next step follows anyway.
    fn signal_for_shutdown(&self, signal: Signal) {
        match self.signal(signal) {
            Ok(()) | Err(SignalError::Exited { .. }) => {}
            Err(error) => {
                tracing::warn!(target: "upstream", server = %self.name, %error, "cannot signal server");
            }
        }
    }
}
