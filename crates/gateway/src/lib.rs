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
//!     command: None,
//! })
//! .await?;
//! std::process::exit(code);
//! # }
//! ```
//!
//! # Choices worth knowing
//!
//! - **Approvals and limits** are not in this build. A `require_approval` decision is denied with
//!   reason class `approval`, and an allow that carries a `limit` is denied with `rate-limit`:
//!   until they can be honoured, "no" is the only fail-closed answer.
//! - **Audit failure** denies: if the decision record is not durable, the call is refused with
//!   reason class `internal` and never forwarded. An outcome record that fails is logged loudly;
//!   the answer has already been sent.
//! - **`kill_session`** answers the call with the denial, fails every other pending call with
//!   `-32603`, shuts the server down and exits with status 1.
#![forbid(unsafe_code)]

mod auth;
mod config;
pub mod demo;
mod denial;
mod error;
mod record;
mod reload;
mod resolver;
mod run;
mod selftest;
mod serve;
mod session;

pub use auth::{ANONYMOUS, MAX_AUTHORIZATION_BYTES};
pub use config::{
    DEFAULT_STATE_DIR, RunOptions, child_spec, load_policy, select_server, state_dir,
};
pub use denial::{DENIED_ERROR_CODE, Denial, DenialCode, META_KEY};
pub use error::GatewayError;
pub use portcullis_transport::HostGuard;
pub use record::{args_digest, redact_args};
pub use resolver::{FsResolver, MAX_SYMLINK_HOPS};
pub use run::{KILLED_EXIT_CODE, run};
pub use selftest::self_test;
pub use serve::{
    DEFAULT_LISTEN, MAX_SESSIONS, NAMESPACE_SEPARATOR, SESSION_IDLE_TIMEOUT, SHUTDOWN_DRAIN,
    ServeOptions, serve,
};
pub use session::SessionEnd;
