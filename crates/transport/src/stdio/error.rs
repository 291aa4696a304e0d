//! Errors of starting and stopping a server.

use std::path::PathBuf;
use std::time::Duration;

use thiserror::Error;

/// A server could not be started. Each message names the server, the program and what to do.
#[derive(Debug, Error)]
pub enum SpawnError {
    /// A bare program name was not found on `PATH`.
    #[error(
        "cannot start server `{server}`: `{program}` not found on PATH; install it or give its full path"
    )]
    NotOnPath {
        /// The configured server name.
        server: String,
        /// The program as configured.
        program: String,
    },
    /// A program given as a path does not exist, or its `#!` interpreter does not.
    #[error(
        "cannot start server `{server}`: `{program}` does not exist, or the interpreter on its `#!` line does not; check the path"
    )]
    NoSuchFile {
        /// The configured server name.
        server: String,
        /// The program as configured.
        program: String,
    },
    /// The program exists but may not be executed.
    #[error(
        "cannot start server `{server}`: `{program}` is not executable ({os_error}); check that it is a program or a script with a `#!` line, and has execute permission"
    )]
    NotExecutable {
        /// The configured server name.
        server: String,
        /// The program as configured.
        program: String,
        /// What the operating system said.
        os_error: std::io::Error,
    },
    /// The configured working directory is missing.
    #[error(
        "cannot start server `{server}`: working directory `{}` does not exist or is not a directory", cwd.display()
    )]
    NoWorkingDir {
        /// The configured server name.
        server: String,
        /// The configured working directory.
        cwd: PathBuf,
    },
    /// A variable name cannot be passed to a process.
    #[error(
        "cannot start server `{server}`: environment variable name `{name}` is empty or contains `=`; fix the server's `env`"
    )]
    InvalidEnvName {
        /// The configured server name.
        server: String,
        /// The offending name.
        name: String,
    },
    /// Any other failure of the operating system to start the program.
    #[error("cannot start server `{server}`: running `{program}` failed: {os_error}")]
    Os {
        /// The configured server name.
        server: String,
        /// The program as configured.
        program: String,
        /// What the operating system said.
        os_error: std::io::Error,
    },
    /// Spawning was attempted outside a Tokio runtime.
    #[error(
        "cannot start server `{server}`: no async runtime is running; this is a bug, please report"
    )]
    NoRuntime {
        /// The configured server name.
        server: String,
    },
    /// The child started without one of its pipes.
    #[error(
        "cannot start server `{server}`: its {pipe} pipe is missing; this is a bug, please report"
    )]
    MissingPipe {
        /// The configured server name.
        server: String,
        /// `stdin`, `stdout` or `stderr`.
        pipe: &'static str,
    },
}

/// A server could not be stopped cleanly.
#[derive(Debug, Error)]
pub enum ShutdownError {
    /// Waiting for the process failed.
    #[error("cannot wait for server `{server}` to exit")]
    Wait {
        /// The configured server name.
        server: String,
        /// What the operating system said.
        #[source]
        source: std::io::Error,
    },
    /// The process outlived `SIGKILL` (for example stuck in uninterruptible I/O).
    #[error("server `{server}` (pid {pid}) is still running {} ms after SIGKILL", after.as_millis())]
    Unkillable {
        /// The configured server name.
        server: String,
        /// Its process id.
        pid: u32,
        /// How long the gateway waited after `SIGKILL`.
        after: Duration,
    },
}
