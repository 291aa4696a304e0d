//! The pure policy engine of Portcullis.
//!
//! Parse, check, compile, normalize and evaluate MCP tool-call policies. No I/O, no async, no
//! clock: time and the filesystem view are inputs, so the engine can be property-tested, fuzzed
//! and benchmarked in isolation.
//!
//! ```
//! use portcullis_policy::{Call, CompiledPolicy, Decision, EvalContext, evaluate};
//!
//! let yaml = r#"
//! version: 1
//! servers:
//!   fs: { command: [server-filesystem, /workspace], cwd: /workspace }
//! tools:
//!   fs.read_text_file: { effect: read, args: { path: path } }
//! rules:
//!   - id: read-workspace
//!     when: { server: fs, effect: read, args: { path: { under: /workspace } } }
//!     decision: allow
//! "#;
//! let policy = CompiledPolicy::from_yaml(yaml, "policy.yaml", &|_| None).unwrap();
//! let args = serde_json::json!({"path": "/workspace/../etc/passwd"});
//! let call = Call::tool_call("fs", "read_text_file", args.as_object().unwrap().clone());
//! let verdict = evaluate(&policy, &call, &EvalContext::default());
//! assert_eq!(verdict.decision, Decision::Deny);
//! ```
#![forbid(unsafe_code)]

pub mod call;
pub mod check;
pub mod compile;
pub mod decision;
pub mod error;
pub mod eval;
pub mod load;
pub mod model;
pub mod normalize;
mod number;
pub mod pack;
pub mod schema;
pub mod tri;

pub use crate::call::{Call, ToolHints};
pub use crate::compile::{CompiledPolicy, ServerInfo, compile, load_policy};
pub use crate::decision::{Decision, Effect, Mode, ReasonClass};
pub use crate::error::{PolicyError, PolicyErrors};
pub use crate::eval::{EvalContext, Evaluation, RuleTrace, evaluate, explain};
pub use crate::tri::Tri;
