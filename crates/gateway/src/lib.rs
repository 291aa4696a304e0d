//! The Portcullis session pipeline: parse → evaluate → audit → forward → record the outcome.
//!
//! [`run`] wraps one stdio MCP server for one stdio client (`portcullis run`). Every client
//! message passes the strict framing of `portcullis-mcp`; `tools/call`, `resources/read` and
//! `prompts/get` are evaluated against the policy with a real-filesystem [`FsResolver`], the
//! decision is made durable in the audit chain, and only then is the call forwarded — or refused
//! with a [`Denial`] the model can read.
//!
//! ```no_run
//! # async fn example() -> Result<(), portcullis_gateway::GatewayError> {
//! use portcullis_gateway::{RunOptions, run};
//!
//! let code = run(RunOptions {
//!     policy: "portcullis.yaml".into(),
//!     server: Some("fs".into()),
//!     state_dir: None,
//!     store: None,
//!     command: None,
//!     principal: None,
//!     admin: None,
//! })
//! .await?;
//! std::process::exit(code);
//! # }
//! ```
//!
//! # Choices worth knowing
//!
//! - **Approvals** (see `docs/approvals.md`): a `require_approval` decision is turned into `allow`
//!   only by a scope lease or by a human's approval bound to the exact call; otherwise the call is
//!   held or denied. In observe mode nothing is held.
//! - **Limits** are reserved in the store before forwarding and given back on a JSON-RPC error;
//!   a counter that fails denies (`internal`). **Vetting** (`pin:` on a server) hides and denies
//!   new, changed and poisoned tools and checks calls against the pinned input schema.
//! - **Audit failure** denies: if the decision record is not durable, the call is refused with
//!   reason class `internal` and never forwarded. An outcome record that fails is logged loudly;
//!   the answer has already been sent.
//! - **`kill_session`** answers the call with the denial, fails every other pending call with
//!   `-32603`, shuts the server down and exits with status 1.
#![forbid(unsafe_code)]

pub mod admin;
pub mod approvals;
mod auth;
mod config;
pub mod demo;
mod denial;
mod error;
mod limits;
mod metrics;
mod record;
mod reload;
mod resolver;
mod run;
pub mod scan;
mod selftest;
mod serve;
mod session;
pub mod suggest;
mod telemetry;
mod vetting;

pub use auth::{ANONYMOUS, MAX_AUTHORIZATION_BYTES};
pub use config::{
    DEFAULT_STATE_DIR, RunOptions, child_spec, load_policy, open_store, select_server, state_dir,
};
pub use denial::{DENIED_ERROR_CODE, Denial, DenialCode, META_KEY};
pub use error::GatewayError;
pub use portcullis_transport::HostGuard;
pub use record::{args_digest, redact_args};
pub use resolver::{FsResolver, MAX_SYMLINK_HOPS};
pub use run::{KILLED_EXIT_CODE, run};
pub use selftest::self_test;
pub use serve::{
    DEFAULT_LISTEN, MAX_SESSIONS, METRICS_TOKEN_FILE, NAMESPACE_SEPARATOR, SESSION_IDLE_TIMEOUT,
    SHUTDOWN_DRAIN, ServeOptions, serve,
};
pub use session::SessionEnd;
pub use vetting::pins::{LOCK_FILE, LockError, LockFile, fingerprint};
