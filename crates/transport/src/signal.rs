//! Signals: the closed set the gateway forwards, sending them, and listening for them.

use std::fmt;

use nix::sys::signal as nix_signal;
use nix::unistd::Pid;
use thiserror::Error;
use tokio::signal::unix::{SignalKind, signal};

/// The signals Portcullis receives and passes on to a server. A closed set: the gateway forwards
/// nothing else.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Signal {
    /// `SIGINT`: interrupt (Ctrl-C).
    Interrupt,
    /// `SIGTERM`: polite request to terminate.
    Terminate,
    /// `SIGHUP`: the controlling terminal or client went away.
    Hangup,
    /// `SIGKILL`: cannot be caught; the last step of a shutdown.
    Kill,
}

impl Signal {
    /// The conventional name, for example `SIGTERM`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Interrupt => "SIGINT",
            Self::Terminate => "SIGTERM",
            Self::Hangup => "SIGHUP",
            Self::Kill => "SIGKILL",
        }
    }

    fn to_nix(self) -> nix_signal::Signal {
        match self {
            Self::Interrupt => nix_signal::Signal::SIGINT,
            Self::Terminate => nix_signal::Signal::SIGTERM,
            Self::Hangup => nix_signal::Signal::SIGHUP,
            Self::Kill => nix_signal::Signal::SIGKILL,
        }
    }
}

impl fmt::Display for Signal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A signal could not be delivered.
#[derive(Debug, Error)]
pub enum SignalError {
    /// The process has already exited and been reaped, so its pid may belong to someone else now;
    /// nothing was sent.
    #[error("cannot send {signal}: the process has already exited")]
    Exited {
        /// The signal that was not sent.
        signal: Signal,
    },
    /// The operating system refused the signal.
    #[error("cannot send {signal} to process {pid}: {os_error}")]
    Os {
        /// The signal that was not sent.
        signal: Signal,
        /// The target process.
        pid: u32,
        /// What the operating system said.
        os_error: nix::Error,
    },
}

/// Sends `signal` to the single process `pid` (not its group).
pub(crate) fn send(pid: u32, signal: Signal) -> Result<(), SignalError> {
    let os = |os_error| SignalError::Os {
        signal,
        pid,
        os_error,
    };
    // A pid that does not fit in `pid_t` cannot be a real child; refuse rather than wrap to a
    // negative number, which `kill(2)` would read as a process group.
    let raw = i32::try_from(pid).map_err(|_| os(nix::Error::ESRCH))?;
    if raw <= 0 {
        return Err(os(nix::Error::ESRCH));
    }
    nix_signal::kill(Pid::from_raw(raw), signal.to_nix()).map_err(os)
}

/// Listens for `SIGINT`, `SIGTERM` and `SIGHUP` sent to the gateway process and reports them, so the
/// gateway can pass them on to its server and start an orderly shutdown.
///
/// Once installed, these signals no longer terminate the gateway by default: the owner of the
/// forwarder must act on every signal it reports. Keep it alive for the life of the gateway.
#[derive(Debug)]
pub struct SignalForwarder {
    interrupt: tokio::signal::unix::Signal,
    terminate: tokio::signal::unix::Signal,
    hangup: tokio::signal::unix::Signal,
}

impl SignalForwarder {
    /// Installs the handlers. Must be called from within a Tokio runtime.
    ///
    /// # Errors
    ///
    /// When a handler cannot be registered (no runtime, or the OS refuses).
    pub fn install() -> std::io::Result<Self> {
        Ok(Self {
            interrupt: signal(SignalKind::interrupt())?,
            terminate: signal(SignalKind::terminate())?,
            hangup: signal(SignalKind::hangup())?,
        })
    }

    /// Waits for the next signal. Returns `None` only if the runtime's signal driver has shut down.
    ///
    /// Cancel safe: a signal that arrives while no call is pending is kept for the next call.
    /// Several deliveries of one signal between calls may be reported once.
    pub async fn recv(&mut self) -> Option<Signal> {
        tokio::select! {
            Some(()) = self.interrupt.recv() => Some(Signal::Interrupt),
            Some(()) = self.terminate.recv() => Some(Signal::Terminate),
            Some(()) = self.hangup.recv() => Some(Signal::Hangup),
            else => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::{Signal, SignalError, SignalForwarder, send};

    #[tokio::test]
    async fn forwarder_reports_a_hangup_sent_to_the_gateway() {
        let mut forwarder = SignalForwarder::install().unwrap();
        send(std::process::id(), Signal::Hangup).unwrap();
        let got = tokio::time::timeout(Duration::from_secs(5), forwarder.recv())
            .await
            .unwrap();
        assert_eq!(got, Some(Signal::Hangup));
    }

    #[test]
    fn refuses_pids_that_would_address_a_process_group() {
        let err = send(0, Signal::Terminate).unwrap_err();
        assert!(matches!(err, SignalError::Os { pid: 0, .. }), "{err:?}");
        let err = send(u32::MAX, Signal::Terminate).unwrap_err();
        assert!(matches!(err, SignalError::Os { .. }), "{err:?}");
    }

    #[test]
    fn names_are_conventional() {
        assert_eq!(Signal::Interrupt.to_string(), "SIGINT");
        assert_eq!(Signal::Kill.name(), "SIGKILL");
    }
}
