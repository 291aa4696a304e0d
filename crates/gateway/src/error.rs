//! Why the gateway could not start or keep serving.

use std::path::PathBuf;

use portcullis_store::StoreError;
use portcullis_transport::stdio::SpawnError;

/// A reason `portcullis run` stops before or instead of serving. Each message says what to do.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum GatewayError {
    /// The policy file could not be read.
    #[error("cannot read the policy file `{}`: {source}", path.display())]
    ReadPolicy {
        /// The policy file.
        path: PathBuf,
        /// What the operating system said.
        #[source]
        source: std::io::Error,
    },
    /// The policy does not load, validate or compile; `diagnostics` is the full report.
    #[error("{diagnostics}")]
    InvalidPolicy {
        /// The rendered diagnostics of the policy engine.
        diagnostics: String,
    },
    /// `--server` names no configured server, or none was given where several are configured.
    #[error("{0}")]
    ServerSelection(String),
    /// The selected server cannot be started as a stdio server.
    #[error("{0}")]
    NotStdio(String),
    /// The state directory could not be opened.
    #[error("cannot open the state directory `{}`: {source}", path.display())]
    StateDir {
        /// The state directory.
        path: PathBuf,
        /// What the store said.
        #[source]
        source: StoreError,
    },
    /// The shared store (`store:` or `--store`) could not be opened.
    #[error("cannot open the store `{location}`: {source}")]
    Store {
        /// The store URL, password redacted.
        location: String,
        /// What the store said.
        #[source]
        source: StoreError,
    },
    /// The built-in self-test did not deny a call it must deny.
    #[error("self-test failed: {0}; refusing to serve. This is a bug in portcullis, please report")]
    SelfTest(String),
    /// The upstream server could not be started.
    #[error(transparent)]
    Spawn(#[from] SpawnError),
    /// The approvals admin API could not start (approvals).
    #[error("{0}")]
    Admin(String),
    /// Standard input or output failed, or a signal handler could not be installed.
    #[error("{what}: {source}")]
    Io {
        /// What the gateway was doing.
        what: &'static str,
        /// What the operating system said.
        #[source]
        source: std::io::Error,
    },
    /// `portcullis serve` would listen insecurely: without `auth` on a non-loopback address.
    #[error("{0}")]
    Insecure(String),
}
